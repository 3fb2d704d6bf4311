//! Token-level parsers. Each skips leading whitespace and comments (`#` to the end of the
//! line; like Loki's Go scanner, also `//` and `/* */`), then reads one token.

use crate::duration::parse_duration;
use crate::format::parse_bytes;

use super::{PErr, Res};

/// Words that are always keywords and can never be label names (case-insensitive).
pub(crate) const RESERVED: &[&str] = &[
    "by", "without", "bool", "on", "ignoring", "group_left", "group_right", "offset", "or", "and", "unless", "json",
    "logfmt", "regexp", "unpack", "pattern", "label_format", "line_format", "decolorize", "drop", "keep", "unwrap",
    "variants", "of",
];

/// Function names: keywords only when a `(` (or `by (`/`without (`) follows.
const FUNCTIONS: &[(&str, &str)] = &[
    ("rate", "RATE"),
    ("rate_counter", "RATE_COUNTER"),
    ("count_over_time", "COUNT_OVER_TIME"),
    ("bytes_rate", "BYTES_RATE"),
    ("bytes_over_time", "BYTES_OVER_TIME"),
    ("avg_over_time", "AVG_OVER_TIME"),
    ("sum_over_time", "SUM_OVER_TIME"),
    ("min_over_time", "MIN_OVER_TIME"),
    ("max_over_time", "MAX_OVER_TIME"),
    ("stdvar_over_time", "STDVAR_OVER_TIME"),
    ("stddev_over_time", "STDDEV_OVER_TIME"),
    ("quantile_over_time", "QUANTILE_OVER_TIME"),
    ("first_over_time", "FIRST_OVER_TIME"),
    ("last_over_time", "LAST_OVER_TIME"),
    ("absent_over_time", "ABSENT_OVER_TIME"),
    ("vector", "VECTOR"),
    ("sum", "SUM"),
    ("avg", "AVG"),
    ("max", "MAX"),
    ("min", "MIN"),
    ("count", "COUNT"),
    ("stddev", "STDDEV"),
    ("stdvar", "STDVAR"),
    ("bottomk", "BOTTOMK"),
    ("topk", "TOPK"),
    ("sort", "SORT"),
    ("sort_desc", "SORT_DESC"),
    ("approx_topk", "APPROX_TOPK"),
    ("bytes", "BYTES_CONV"),
    ("duration", "DURATION_CONV"),
    ("duration_seconds", "DURATION_SECONDS_CONV"),
    ("ip", "ip"),
    ("label_replace", "label_replace"),
];

/// Loki's token declaration order, which orders the "expecting ..." list of its errors.
const TOKEN_ORDER: &[&str] = &[
    "BYTES", "IDENTIFIER", "STRING", "NUMBER", "FUNCTION_FLAG", "DURATION", "RANGE", "=", "=~", "!~", "!>", "{", "}",
    "[", "]", ",", ".", "|~", "|=", "|>", "(", ")", "by", "without", "bool", "json", "regexp", "logfmt", "|",
    "line_format", "label_format", "unwrap", "unpack", "offset", "pattern", "ip", "on", "ignoring", "group_left",
    "group_right", "decolorize", "drop", "keep", "or", "and", "unless", "==", "!=", "<", "<=", ">", ">=", "+", "-",
    "*", "/", "%", "^",
];

pub(crate) fn token_rank(name: &str) -> usize {
    TOKEN_ORDER.iter().position(|t| *t == name).unwrap_or(TOKEN_ORDER.len())
}

/// Skips whitespace and comments.
pub(crate) fn skip_ws(mut i: &str) -> &str {
    loop {
        i = i.trim_start_matches([' ', '\t', '\n', '\r']);
        if let Some(r) = i.strip_prefix('#').or_else(|| i.strip_prefix("//")) {
            i = r.find('\n').map_or("", |p| &r[p..]);
        } else if let Some(r) = i.strip_prefix("/*") {
            match r.find("*/") {
                Some(p) => i = &r[p + 2..],
                None => return i, // left for the caller to report
            }
        } else {
            return i;
        }
    }
}

/// A fixed token (punctuation or operator).
pub(crate) fn sym<'a>(s: &'static str) -> impl Fn(&'a str) -> Res<'a, &'a str> {
    move |i| {
        let j = skip_ws(i);
        match j.strip_prefix(s) {
            Some(r) => Ok((r, &j[..s.len()])),
            None => Err(nom::Err::Error(PErr::expecting(j, s))),
        }
    }
}

pub(crate) fn peek_sym(i: &str, s: &str) -> bool {
    skip_ws(i).starts_with(s)
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The raw identifier-like word at the start of `i` (after whitespace), and what follows.
pub(crate) fn word(i: &str) -> Option<(&str, &str)> {
    let j = skip_ws(i);
    let mut chars = j.char_indices();
    match chars.next() {
        Some((_, c)) if is_ident_start(c) => {}
        _ => return None,
    }
    let end = j.char_indices().find(|(_, c)| !is_ident_char(*c)).map_or(j.len(), |(k, _)| k);
    Some((&j[..end], &j[end..]))
}

/// A keyword, case-insensitive, as a whole word.
pub(crate) fn kw<'a>(w: &'static str) -> impl Fn(&'a str) -> Res<'a, &'a str> {
    move |i| match word(i) {
        Some((found, rest)) if found.eq_ignore_ascii_case(w) => Ok((rest, found)),
        _ => Err(nom::Err::Error(PErr::expecting(skip_ws(i), w))),
    }
}

pub(crate) fn is_kw(i: &str, w: &str) -> bool {
    word(i).is_some_and(|(found, _)| found.eq_ignore_ascii_case(w))
}

/// Whether the word at `i` is a function name used as one: followed by `(`, or by
/// `by (`/`without (`.
pub(crate) fn function_at(i: &str) -> Option<(&'static str, &str)> {
    let (w, rest) = word(i)?;
    let lower = w.to_ascii_lowercase();
    let (name, _) = FUNCTIONS.iter().find(|(n, _)| *n == lower)?;
    let after = skip_ws(rest);
    let grouped = ["by", "without"].iter().any(|g| is_kw(after, g) && peek_sym(word(after).map_or("", |x| x.1), "("));
    (after.starts_with('(') || grouped).then_some((name, rest))
}

/// A label name: an identifier that is not a reserved word.
pub(crate) fn ident(i: &str) -> Res<'_, &str> {
    let j = skip_ws(i);
    match word(j) {
        Some((w, rest)) if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w)) => Ok((rest, w)),
        _ => Err(nom::Err::Error(PErr::expecting(j, "IDENTIFIER"))),
    }
}

/// A double-quoted string with Go escapes, or a raw backtick string. Returns the value and
/// the input at its start (for error positions).
pub(crate) fn string(i: &str) -> Res<'_, (String, &str)> {
    let j = skip_ws(i);
    if let Some(r) = j.strip_prefix('`') {
        return match r.find('`') {
            Some(p) => Ok((&r[p + 1..], (r[..p].to_string(), j))),
            None => Err(PErr::fatal(j, "literal not terminated".into())),
        };
    }
    if j.starts_with('"') {
        return match silt_storage::unquote_prefix(j) {
            Ok((v, used)) => Ok((&j[used..], (v, j))),
            Err(e) if e.contains("unterminated") || e.contains("newline") => Err(PErr::fatal(j, "literal not terminated".into())),
            Err(_) => Err(PErr::fatal(j, "invalid char escape".into())),
        };
    }
    Err(nom::Err::Error(PErr::expecting(j, "STRING")))
}

/// A number as Go's scanner reads it: `12`, `1.5`, `.5`, `1e3`, `0x1F`, `1_000`.
/// Returns the text.
fn number_text(j: &str) -> Option<&str> {
    let b = j.as_bytes();
    if b.len() > 1 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        let end = 2 + j[2..].find(|c: char| !(c.is_ascii_hexdigit() || c == '_')).unwrap_or(j.len() - 2);
        return (end > 2).then(|| &j[..end]);
    }
    let mut k = 0;
    let digits = |k: &mut usize| {
        let s = *k;
        while *k < b.len() && (b[*k].is_ascii_digit() || (b[*k] == b'_' && *k > s)) {
            *k += 1;
        }
        *k > s
    };
    let int = digits(&mut k);
    let mut frac = false;
    if k < b.len() && b[k] == b'.' {
        k += 1;
        frac = digits(&mut k);
    }
    if !int && !frac {
        return None;
    }
    if k < b.len() && (b[k] == b'e' || b[k] == b'E') {
        let mut e = k + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        let s = e;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > s {
            k = e;
        }
    }
    Some(&j[..k])
}

fn parse_number(text: &str) -> Option<f64> {
    let t = text.replace('_', "");
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    t.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NumTok {
    Number(f64),
    /// Nanoseconds.
    Duration(i64),
    Bytes(u64),
}

/// A NUMBER, DURATION or BYTES token, decided as Loki's lexer decides: a number followed
/// by duration characters that parse as a duration is a DURATION (`5m`, `250ms`), else by
/// byte-size characters that parse as a size is BYTES (`5MB`, `1.5KiB`), else a NUMBER.
/// Returns the token and its text.
pub(crate) fn number_token(i: &str) -> Res<'_, (NumTok, &str)> {
    let j = skip_ws(i);
    let Some(text) = number_text(j) else { return Err(nom::Err::Error(PErr::expecting(j, "NUMBER"))) };
    let after = &j[text.len()..];
    let dur_len = after.find(|c: char| !(c.is_ascii_digit() || "nuµmshdwy.".contains(c))).unwrap_or(after.len());
    if dur_len > 0 {
        let t = &j[..text.len() + dur_len];
        if let Some(ns) = parse_duration(t) {
            return Ok((&j[t.len()..], (NumTok::Duration(ns), t)));
        }
    }
    let bytes_len = after.find(|c: char| !(c.is_ascii_digit() || "BikKMGTP.".contains(c))).unwrap_or(after.len());
    if bytes_len > 0 {
        let t = &j[..text.len() + bytes_len];
        if let Some(b) = parse_bytes(t) {
            return Ok((&j[t.len()..], (NumTok::Bytes(b), t)));
        }
    }
    match parse_number(text) {
        Some(v) => Ok((after, (NumTok::Number(v), text))),
        None => Err(PErr::fatal(j, format!("unable to parse literal as a float: {text}"))),
    }
}

/// `[5m]`: a range, in Prometheus' duration syntax only (no fractions, no spaces).
pub(crate) fn range(i: &str) -> Res<'_, i64> {
    let j = skip_ws(i);
    let Some(r) = j.strip_prefix('[') else { return Err(nom::Err::Error(PErr::expecting(j, "RANGE"))) };
    let Some(end) = r.find(']') else { return Err(PErr::fatal(j, "missing closing ']' in duration".into())) };
    let text = &r[..end];
    if text.is_empty() {
        return Err(PErr::fatal(j, "empty duration string".into()));
    }
    match parse_duration(text) {
        Some(ns) if ns > 0 && !text.contains('.') && !text.starts_with(['-', '+']) => Ok((&r[end + 1..], ns)),
        _ => Err(PErr::fatal(j, duration_error(text))),
    }
}

fn duration_error(text: &str) -> String {
    let unit_start = text.find(|c: char| !c.is_ascii_digit());
    match unit_start {
        Some(p) if p > 0 && text[p..].chars().all(|c| c.is_alphabetic()) => {
            format!("unknown unit {:?} in duration {text:?}", &text[p..])
        }
        _ => format!("not a valid duration string: {text:?}"),
    }
}

/// A DURATION token, optionally negative (`offset -5m`).
pub(crate) fn duration(i: &str) -> Res<'_, i64> {
    let j = skip_ws(i);
    let (neg, k) = match j.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, j),
    };
    match number_token(k) {
        Ok((rest, (NumTok::Duration(ns), _))) => Ok((rest, if neg { -ns } else { ns })),
        _ => Err(nom::Err::Error(PErr::expecting(j, "DURATION"))),
    }
}

/// Names the token at the start of `rest` as Loki's error messages do; the flag says
/// whether Loki's lexer assembles it from several characters (it then reports line 0).
pub(crate) fn describe_token(rest: &str) -> (String, bool) {
    let rest = skip_ws(rest);
    let Some(c) = rest.chars().next() else { return ("$end".into(), false) };
    if c == '"' || c == '`' {
        return ("STRING".into(), false);
    }
    if c == '[' {
        return ("RANGE".into(), true);
    }
    if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
        return match number_token(rest) {
            Ok((_, (NumTok::Duration(_), _))) => ("DURATION".into(), true),
            Ok((_, (NumTok::Bytes(_), _))) => ("BYTES".into(), true),
            _ => ("NUMBER".into(), false),
        };
    }
    if rest.starts_with("--strict") || rest.starts_with("--keep-empty") {
        return ("FUNCTION_FLAG".into(), true);
    }
    if let Some((w, _)) = word(rest) {
        let lower = w.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) {
            return (lower, false);
        }
        if function_at(rest).is_some() {
            let name = FUNCTIONS.iter().find(|(n, _)| *n == lower).map_or("IDENTIFIER", |(_, t)| t);
            return (name.to_string(), false);
        }
        return ("IDENTIFIER".into(), false);
    }
    for op in ["|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<="] {
        if rest.starts_with(op) {
            return (op.into(), true);
        }
    }
    (c.to_string(), false)
}
