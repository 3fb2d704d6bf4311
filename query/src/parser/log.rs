//! Log queries: the stream selector and the pipeline (line filters, parsers, label filters,
//! formatters), and the log part of range aggregations (unwrap, range, offset).

use nom::branch::alt;
use nom::Parser;
use silt_storage::{is_valid_label_name, MatchOp, Matcher};

use super::lex::{ident, is_kw, kw, number_token, peek_sym, range, skip_ws, string, sym, word, NumTok};
use super::{cut, PErr, Res};
use crate::ast::{
    CmpOp, Extraction, LabelFilter, LabelFmt, LineFilter, LineFilterOp, LineFilterValue, LogExpr, NamedMatcher, Stage,
    Unwrap, UnwrapConv,
};

fn match_op(i: &str) -> Res<'_, MatchOp> {
    alt((
        sym("=~").map(|_| MatchOp::Re),
        sym("!~").map(|_| MatchOp::NotRe),
        sym("!=").map(|_| MatchOp::Neq),
        sym("=").map(|_| MatchOp::Eq),
    ))
    .parse(i)
}

fn new_matcher<'a>(name: &str, op: MatchOp, value: String, at: &'a str) -> Result<Matcher, nom::Err<PErr<'a>>> {
    Matcher::new(name, op, value).map_err(|e| PErr::fatal(at, regex_message(&e.to_string())))
}

/// `name op "value"`
fn matcher(i: &str) -> Res<'_, Matcher> {
    let (i, name) = ident(i)?;
    let (i, op) = match_op(i)?;
    let (i, (value, at)) = string(i)?;
    Ok((i, new_matcher(name, op, value, at)?))
}

/// `{a="b", c=~"d"}`; `{}` parses (and fails validation).
pub(super) fn selector(i: &str) -> Res<'_, Vec<Matcher>> {
    let (mut i, _) = sym("{")(i)?;
    let mut out = Vec::new();
    if let Ok((r, _)) = sym("}")(i) {
        return Ok((r, out));
    }
    loop {
        let (r, m) = cut(matcher(i))?;
        out.push(m);
        match cut(alt((sym("}"), sym(","))).parse(r))? {
            (r, "}") => return Ok((r, out)),
            (r, _) => i = r,
        }
    }
}

/// A log query: a selector and its pipeline, stopping before `| unwrap`.
pub(super) fn log_expr(i: &str) -> Res<'_, LogExpr> {
    let (i, selector) = selector(i)?;
    let (i, pipeline) = pipeline(i)?;
    Ok((i, LogExpr { selector, pipeline }))
}

/// Pipeline stages until something that is not one (or `| unwrap`).
pub(super) fn pipeline(mut i: &str) -> Res<'_, Vec<Stage>> {
    let mut out = Vec::new();
    loop {
        let j = skip_ws(i);
        let lf_op = [
            ("|=", LineFilterOp::Contains),
            ("|~", LineFilterOp::Regex),
            ("|>", LineFilterOp::Pattern),
            ("!=", LineFilterOp::NotContains),
            ("!~", LineFilterOp::NotRegex),
            ("!>", LineFilterOp::NotPattern),
        ]
        .into_iter()
        .find(|(s, _)| j.starts_with(s));
        if let Some((s, op)) = lf_op {
            // `!=` after a log query could also be a binary operator on a metric query; a
            // line filter always has a string or ip() next.
            let after = &j[s.len()..];
            if !(peek_sym(after, "\"") || peek_sym(after, "`") || is_kw(after, "ip")) && op.is_negated() {
                return Ok((i, out));
            }
            let (r, filters) = cut(line_filter(after, op))?;
            out.extend(filters.into_iter().map(Stage::LineFilter));
            i = r;
            continue;
        }
        let Some(after_pipe) = j.strip_prefix('|') else { return Ok((i, out)) };
        if is_kw(after_pipe, "unwrap") {
            return Ok((i, out));
        }
        let (r, stage) = cut(stage(after_pipe))?;
        out.push(stage);
        i = r;
    }
}

/// The values of one line filter: a string or `ip("...")`, with `or` alternatives. For a
/// negative operator, Loki turns `!= "a" or "b"` into `!= "a" != "b"`; so do we.
fn line_filter(i: &str, op: LineFilterOp) -> Res<'_, Vec<LineFilter>> {
    let mut values = Vec::new();
    let (mut i, v) = line_filter_value(i, op)?;
    values.push(v);
    while let Some((_, after_or)) = word(i).filter(|(w, _)| w.eq_ignore_ascii_case("or")) {
        if !(peek_sym(after_or, "\"") || peek_sym(after_or, "`") || is_kw(after_or, "ip")) {
            break;
        }
        let (r, v) = line_filter_value(after_or, op)?;
        values.push(v);
        i = r;
    }
    let filters = if op.is_negated() {
        values.into_iter().map(|v| LineFilter { op, values: vec![v] }).collect()
    } else {
        vec![LineFilter { op, values }]
    };
    Ok((i, filters))
}

fn line_filter_value(i: &str, op: LineFilterOp) -> Res<'_, LineFilterValue> {
    if is_kw(i, "ip") && peek_sym(word(i).map_or("", |w| w.1), "(") {
        let (i, _) = kw("ip")(i)?;
        let (i, _) = sym("(")(i)?;
        let (i, (v, _)) = string(i)?;
        let (i, _) = sym(")")(i)?;
        return Ok((i, LineFilterValue::Ip(v)));
    }
    let (r, (v, at)) = string(i).map_err(|e| match e {
        nom::Err::Error(mut p) => {
            p.expected.push("ip");
            nom::Err::Error(p)
        }
        other => other,
    })?;
    match op {
        LineFilterOp::Regex | LineFilterOp::NotRegex => {
            if let Err(e) = regex::Regex::new(&v) {
                return Err(PErr::fatal(at, regex_message(&e.to_string())));
            }
        }
        LineFilterOp::Pattern | LineFilterOp::NotPattern => {
            if let Err(e) = crate::pattern::Pattern::parse(&v) {
                return Err(PErr::fatal(at, format!("invalid pattern: {e}")));
            }
        }
        _ => {}
    }
    Ok((r, LineFilterValue::Str(v)))
}

/// One `| ...` stage (the `|` is consumed).
fn stage(i: &str) -> Res<'_, Stage> {
    let Some((w, rest)) = word(i) else { return label_filter(i).map(|(r, f)| (r, Stage::LabelFilter(f))) };
    match w.to_ascii_lowercase().as_str() {
        "json" => {
            let (r, params) = extractions(rest)?;
            Ok((r, Stage::Json(params)))
        }
        "logfmt" => {
            let (mut r, mut strict, mut keep_empty) = (rest, false, false);
            loop {
                let j = skip_ws(r);
                if let Some(x) = j.strip_prefix("--strict").filter(|x| !x.starts_with(|c: char| c.is_alphanumeric() || c == '-')) {
                    strict = true;
                    r = x;
                } else if let Some(x) = j.strip_prefix("--keep-empty").filter(|x| !x.starts_with(|c: char| c.is_alphanumeric() || c == '-')) {
                    keep_empty = true;
                    r = x;
                } else {
                    break;
                }
            }
            let (r, params) = extractions(r)?;
            Ok((r, Stage::Logfmt { strict, keep_empty, params }))
        }
        "regexp" => {
            let (r, (re, at)) = string(rest)?;
            check_regexp_parser(&re).map_err(|e| PErr::invalid(at, format!("invalid regexp parser: {e}")))?;
            Ok((r, Stage::Regexp(re)))
        }
        "pattern" => {
            let (r, (p, at)) = string(rest)?;
            crate::pattern::Pattern::parse_named(&p).map_err(|e| PErr::invalid(at, format!("invalid pattern parser: {e}")))?;
            Ok((r, Stage::Pattern(p)))
        }
        "unpack" => Ok((rest, Stage::Unpack)),
        "decolorize" => Ok((rest, Stage::Decolorize)),
        "line_format" => {
            let (r, (t, _)) = string(rest)?;
            Ok((r, Stage::LineFormat(t)))
        }
        "label_format" => {
            let mut out = Vec::new();
            let mut r = rest;
            loop {
                let (x, dst) = ident(r)?;
                let (x, _) = sym("=")(x)?;
                let (x, f) = match string(x) {
                    Ok((x, (template, _))) => (x, LabelFmt::Template { dst: dst.to_string(), template }),
                    Err(nom::Err::Error(_)) => {
                        let (x, src) = ident(x).map_err(|e| match e {
                            nom::Err::Error(mut p) => {
                                p.expected.push("STRING");
                                nom::Err::Error(p)
                            }
                            other => other,
                        })?;
                        (x, LabelFmt::Rename { dst: dst.to_string(), src: src.to_string() })
                    }
                    Err(e) => return Err(e),
                };
                out.push(f);
                match sym(",")(x) {
                    Ok((x, _)) => r = x,
                    Err(_) => return Ok((x, Stage::LabelFormat(out))),
                }
            }
        }
        "drop" | "keep" => {
            let mut out = Vec::new();
            let mut r = rest;
            loop {
                let (x, name) = ident(r)?;
                let (x, n) = match match_op(x) {
                    Ok((x, op)) => {
                        let (x, (v, at)) = string(x)?;
                        (x, NamedMatcher::Matcher(new_matcher(name, op, v, at)?))
                    }
                    Err(_) => (x, NamedMatcher::Name(name.to_string())),
                };
                out.push(n);
                match sym(",")(x) {
                    Ok((x, _)) => r = x,
                    Err(_) => {
                        let s = if w.eq_ignore_ascii_case("drop") { Stage::Drop(out) } else { Stage::Keep(out) };
                        return Ok((x, s));
                    }
                }
            }
        }
        _ => label_filter(i).map(|(r, f)| (r, Stage::LabelFilter(f))),
    }
}

/// `a="x.y", b, c="list[0]"` after `json` or `logfmt`; none is fine.
fn extractions(i: &str) -> Res<'_, Vec<Extraction>> {
    let mut out = Vec::new();
    let Ok((mut r, mut name)) = ident(i) else { return Ok((i, out)) };
    loop {
        let (x, e) = match sym("=")(r) {
            Ok((x, _)) => {
                let (x, (expr, _)) = string(x)?;
                (x, Extraction { name: name.to_string(), expr })
            }
            Err(_) => (r, Extraction { name: name.to_string(), expr: name.to_string() }),
        };
        out.push(e);
        match sym(",")(x) {
            Ok((x, _)) => {
                let (x, n) = ident(x)?;
                r = x;
                name = n;
            }
            Err(_) => return Ok((x, out)),
        }
    }
}

/// Validates a `regexp` stage: it compiles, and its named captures are valid, distinct
/// label names (at least one).
fn check_regexp_parser(re: &str) -> Result<(), String> {
    let r = regex::Regex::new(re).map_err(|e| regex_message(&e.to_string()))?;
    let mut seen = Vec::new();
    for name in r.capture_names().flatten() {
        if !is_valid_label_name(name) {
            return Err(format!("invalid extracted label name '{name}'"));
        }
        if seen.contains(&name) {
            return Err(format!("duplicate extracted label name '{name}'"));
        }
        seen.push(name);
    }
    if seen.is_empty() {
        return Err("at least one named capture must be supplied".into());
    }
    Ok(())
}

/// Label filters: `and` binds tighter than `or` (both left-associative); a `,` or a plain
/// space between two filters means `and` and, as in Loki's grammar (where the parser
/// always shifts on them), takes everything to its right as its right-hand side:
/// `a or b c` is `a or (b and c)`, `a b, c or d` is `a and (b and (c or d))`.
///
/// Parsed with explicit operator and operand stacks, so a long chain cannot exhaust the
/// stack; only parentheses recurse, and their depth is bounded by [`super::MAX_NESTING`].
pub(super) fn label_filter(i: &str) -> Res<'_, LabelFilter> {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        Or,
        And,
        /// `,` or a space: never reduced by a later operator.
        Join,
    }
    fn reduce(operands: &mut Vec<LabelFilter>, op: Op) {
        let b = operands.pop().expect("two operands");
        let a = operands.pop().expect("two operands");
        operands.push(match op {
            Op::Or => LabelFilter::Or(Box::new(a), Box::new(b)),
            Op::And | Op::Join => LabelFilter::And(Box::new(a), Box::new(b)),
        });
    }
    let (mut i, first) = label_filter_atom(i)?;
    let mut operands = vec![first];
    let mut ops: Vec<Op> = Vec::new();
    loop {
        let (r, op) = if let Ok((r, _)) = sym(",")(i) {
            (r, Op::Join)
        } else if is_kw(i, "or") {
            (kw("or")(i)?.0, Op::Or)
        } else if is_kw(i, "and") {
            (kw("and")(i)?.0, Op::And)
        } else if starts_label_filter(i) {
            (i, Op::Join)
        } else {
            break;
        };
        // Reduce what binds at least as tightly (left-associative), never past a join.
        let prec = |o: Op| match o {
            Op::Join => 0,
            Op::Or => 1,
            Op::And => 2,
        };
        if op != Op::Join {
            while let Some(&top) = ops.last() {
                if top == Op::Join || prec(top) < prec(op) {
                    break;
                }
                ops.pop();
                reduce(&mut operands, top);
            }
        }
        ops.push(op);
        let (r, atom) = label_filter_atom(r)?;
        operands.push(atom);
        i = r;
    }
    while let Some(op) = ops.pop() {
        reduce(&mut operands, op);
    }
    Ok((i, operands.pop().expect("one result")))
}

/// Whether a label filter starts here (a label name or `(`), for the space-separated form.
fn starts_label_filter(i: &str) -> bool {
    peek_sym(i, "(") || ident(i).is_ok()
}

fn label_filter_atom(i: &str) -> Res<'_, LabelFilter> {
    if let Ok((r, _)) = sym("(")(i) {
        let (r, f) = label_filter(r)?;
        let (r, _) = sym(")")(r)?;
        return Ok((r, f));
    }
    let (i, name) = ident(i).map_err(|e| match e {
        nom::Err::Error(mut p) => {
            p.expected.push("(");
            nom::Err::Error(p)
        }
        other => other,
    })?;
    let ops: [(&str, Option<CmpOp>, Option<MatchOp>); 9] = [
        ("==", Some(CmpOp::Eq), None),
        ("=~", None, Some(MatchOp::Re)),
        ("!=", Some(CmpOp::Neq), Some(MatchOp::Neq)),
        ("!~", None, Some(MatchOp::NotRe)),
        (">=", Some(CmpOp::Gte), None),
        ("<=", Some(CmpOp::Lte), None),
        ("=", Some(CmpOp::Eq), Some(MatchOp::Eq)),
        (">", Some(CmpOp::Gt), None),
        ("<", Some(CmpOp::Lt), None),
    ];
    let j = skip_ws(i);
    let Some(&(s, cmp, mop)) = ops.iter().find(|(s, _, _)| j.starts_with(s)) else {
        let mut e = PErr::at(j);
        e.expected.extend(["=", "=~", "!~", "!=", "==", ">", ">=", "<", "<="]);
        return Err(nom::Err::Error(e));
    };
    let r = &j[s.len()..];
    let name = name.to_string();
    if let Some(mop) = mop {
        if let Ok((r, (v, at))) = string(r) {
            return Ok((r, LabelFilter::Str(new_matcher(&name, mop, v, at)?)));
        }
        if matches!(mop, MatchOp::Eq | MatchOp::Neq) && is_kw(r, "ip") {
            let (r, _) = kw("ip")(r)?;
            let (r, _) = sym("(")(r)?;
            let (r, (pattern, _)) = string(r)?;
            let (r, _) = sym(")")(r)?;
            return Ok((r, LabelFilter::Ip { name, negated: mop == MatchOp::Neq, pattern }));
        }
    }
    let Some(op) = cmp else { return Err(nom::Err::Error(PErr::expecting(skip_ws(r), "STRING"))) };
    let (r, v) = signed_value(r)?;
    Ok((
        r,
        match v {
            NumTok::Number(value) => LabelFilter::Number { name, op, value },
            NumTok::Duration(value) => LabelFilter::Duration { name, op, value },
            NumTok::Bytes(value) => LabelFilter::Bytes { name, op, value },
        },
    ))
}

/// A number, duration or byte size, with an optional sign on numbers and durations.
fn signed_value(i: &str) -> Res<'_, NumTok> {
    let j = skip_ws(i);
    let (sign, k) = match j.as_bytes().first() {
        Some(b'-') => (-1.0, &j[1..]),
        Some(b'+') => (1.0, &j[1..]),
        _ => (1.0, j),
    };
    let (r, (t, _)) = number_token(k).map_err(|e| match e {
        nom::Err::Error(mut p) => {
            p.expected.extend(["BYTES", "DURATION"]);
            nom::Err::Error(p)
        }
        other => other,
    })?;
    match t {
        NumTok::Number(v) => Ok((r, NumTok::Number(sign * v))),
        NumTok::Duration(d) => Ok((r, NumTok::Duration(if sign < 0.0 { -d } else { d }))),
        NumTok::Bytes(_) if sign < 0.0 => Err(nom::Err::Error(PErr::at(k))),
        b => Ok((r, b)),
    }
}

/// `| unwrap label`, `| unwrap bytes(label)` ... and its post-filters.
pub(super) fn unwrap(i: &str) -> Res<'_, Unwrap> {
    let (i, _) = sym("|")(i)?;
    let (i, _) = kw("unwrap")(i)?;
    let convs = [("bytes", UnwrapConv::Bytes), ("duration_seconds", UnwrapConv::DurationSeconds), ("duration", UnwrapConv::Duration)];
    let conv = word(i).and_then(|(w, rest)| {
        let c = convs.iter().find(|(n, _)| w.eq_ignore_ascii_case(n))?;
        peek_sym(rest, "(").then_some((c.1, rest))
    });
    let (mut i, conv, label) = match conv {
        Some((conv, rest)) => {
            let (r, _) = cut(sym("(")(rest))?;
            let (r, label) = cut(ident(r))?;
            let (r, _) = cut(sym(")")(r))?;
            (r, conv, label)
        }
        None => {
            let (r, label) = cut(ident(i))?;
            (r, UnwrapConv::None, label)
        }
    };
    let mut post_filters = Vec::new();
    while let Some(after) = skip_ws(i).strip_prefix('|').filter(|a| !a.starts_with(['=', '~', '>'])) {
        let (r, f) = cut(label_filter(after))?;
        post_filters.push(f);
        i = r;
    }
    Ok((i, Unwrap { conv, label: label.to_string(), post_filters }))
}

/// `offset 5m` after a range, if present.
pub(super) fn offset(i: &str) -> Res<'_, i64> {
    if !is_kw(i, "offset") {
        return Ok((i, 0));
    }
    let (i, _) = kw("offset")(i)?;
    cut(super::lex::duration(i))
}

/// The log part of a range aggregation, in any of the placements Loki accepts:
/// `S[r]`, `S | p[r]`, `S | p | unwrap x[r]`, `S[r] | p | unwrap x`, each optionally in
/// parentheses, with `offset` right after the range.
/// A log query with its optional unwrap and, once seen, `(range, offset)`.
type PartialRange = (LogExpr, Option<Unwrap>, Option<(i64, i64)>);

pub(super) fn partial_range(i: &str) -> Res<'_, PartialRange> {
    if let Ok((r, _)) = sym("(")(i) {
        let (r, (log, unwrap, ro)) = partial_range(r)?;
        let (r, _) = sym(")")(r)?;
        if ro.is_some() {
            return Ok((r, (log, unwrap, ro)));
        }
        return match range(r) {
            Ok((r, rng)) => {
                let (r, off) = offset(r)?;
                Ok((r, (log, unwrap, Some((rng, off)))))
            }
            Err(nom::Err::Error(_)) => Ok((r, (log, unwrap, None))),
            Err(e) => Err(e),
        };
    }
    let (r, mut log) = log_expr(i)?;
    let (r, mut unwrap_part) = match unwrap(r) {
        Ok((r, u)) => (r, Some(u)),
        Err(nom::Err::Error(_)) => (r, None),
        Err(e) => return Err(e),
    };
    match range(r) {
        Ok((r, rng)) => {
            let (mut r, off) = offset(r)?;
            if log.pipeline.is_empty() && unwrap_part.is_none() {
                let (x, p) = pipeline(r)?;
                log.pipeline = p;
                r = x;
                if let Ok((x, u)) = unwrap(r) {
                    unwrap_part = Some(u);
                    r = x;
                }
            }
            Ok((r, (log, unwrap_part, Some((rng, off)))))
        }
        Err(nom::Err::Error(_)) => Ok((r, (log, unwrap_part, None))),
        Err(e) => Err(e),
    }
}

/// Loki reports regex errors with Go's wording, `error parsing regexp: ...`; ours carries
/// the Rust regex crate's explanation in its place.
pub(super) fn regex_message(e: &str) -> String {
    let detail = e.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(e).trim();
    let detail = detail.trim_start_matches("error: ");
    format!("error parsing regexp: {detail}")
}
