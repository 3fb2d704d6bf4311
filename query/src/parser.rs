//! The LogQL parser, written with `nom`. Errors carry Loki's wording and 1-based
//! positions: `parse error at line 1, col 15: syntax error: unexpected $end, expecting } or ,`.
//!
//! Whitespace and `#` comments may appear between any two tokens.

use nom::error::{ErrorKind, ParseError as NomParseError};
use nom::{IResult, Parser};
use silt_storage::{unquote_prefix, MatchOp, Matcher};

use crate::ast::{Expr, LineFilter, LineFilterOp, LogExpr, Stage};
use crate::error::ParseError;

/// Loki's limit on the size of a query string.
pub const MAX_QUERY_BYTES: usize = 131_072;

const EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses and validates a LogQL query.
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParseError {
            line: 0,
            col: 0,
            message: format!("query too large: {} bytes, limit {MAX_QUERY_BYTES}", query.len()),
        });
    }
    let result = (|i| {
        let (i, e) = log_expr(i)?;
        let i = skip_ws(i);
        if i.is_empty() {
            Ok((i, e))
        } else {
            Err(nom::Err::Error(PErr::at(i)))
        }
    })(query);
    let expr = match result {
        Ok((_, e)) => e,
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => return Err(e.into_parse_error(query)),
        Err(nom::Err::Incomplete(_)) => unreachable!("complete parsers never ask for more input"),
    };
    validate(&expr)?;
    Ok(Expr::Log(expr))
}

/// Parses a bare stream selector, as the `query` and `match[]` parameters of the metadata
/// endpoints carry it, with the same validation as a query.
pub fn parse_selector(query: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(query)? {
        Expr::Log(l) if l.pipeline.is_empty() => Ok(l.selector),
        Expr::Log(_) => Err(ParseError { line: 0, col: 0, message: "only a stream selector is allowed here".into() }),
    }
}

fn validate(e: &LogExpr) -> Result<(), ParseError> {
    if !e.selector.iter().any(|m| !m.matches_empty()) {
        return Err(ParseError { line: 0, col: 0, message: EMPTY_COMPATIBLE.into() });
    }
    Ok(())
}

/// nom's error for this parser: where it failed, what it expected there, and for errors
/// that are not about syntax (a bad regex), the message to report.
#[derive(Debug)]
pub(crate) struct PErr<'a> {
    rest: &'a str,
    expected: Vec<&'static str>,
    message: Option<String>,
}

impl<'a> PErr<'a> {
    fn at(rest: &'a str) -> Self {
        PErr { rest, expected: Vec::new(), message: None }
    }
    fn expecting(rest: &'a str, what: &'static str) -> Self {
        PErr { rest, expected: vec![what], message: None }
    }
    fn fatal(rest: &'a str, message: String) -> nom::Err<Self> {
        nom::Err::Failure(PErr { rest, expected: Vec::new(), message: Some(message) })
    }

    fn into_parse_error(self, query: &str) -> ParseError {
        let offset = query.len() - self.rest.len();
        let before = &query[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |p| offset - p - 1) + 1;
        let message = self.message.unwrap_or_else(|| {
            let mut m = format!("syntax error: unexpected {}", describe_token(self.rest));
            if !self.expected.is_empty() {
                m.push_str(", expecting ");
                m.push_str(&self.expected.join(" or "));
            }
            m
        });
        ParseError { line, col, message }
    }
}

impl<'a> NomParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _: ErrorKind) -> Self {
        PErr::at(input)
    }
    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
    /// Of two failed alternatives, report the one that got further; at the same place,
    /// everything either expected.
    fn or(mut self, other: Self) -> Self {
        match self.rest.len().cmp(&other.rest.len()) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal => {
                for e in other.expected {
                    if !self.expected.contains(&e) {
                        self.expected.push(e);
                    }
                }
                self
            }
        }
    }
}

type Res<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// Names the token at the start of `rest` the way Loki's error messages do.
fn describe_token(rest: &str) -> String {
    let rest = skip_ws(rest);
    let Some(c) = rest.chars().next() else { return "$end".into() };
    if c == '"' || c == '`' {
        return "STRING".into();
    }
    if c.is_ascii_digit() {
        return "NUMBER".into();
    }
    if c.is_alphabetic() || c == '_' {
        return "IDENTIFIER".into();
    }
    for op in ["|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<="] {
        if rest.starts_with(op) {
            return op.into();
        }
    }
    c.to_string()
}

/// Skips whitespace and `#` comments (to the end of their line).
pub(crate) fn skip_ws(mut i: &str) -> &str {
    loop {
        i = i.trim_start();
        match i.strip_prefix('#') {
            Some(r) => i = r.find('\n').map_or("", |p| &r[p..]),
            None => return i,
        }
    }
}

/// A fixed token, after optional whitespace.
fn sym<'a>(s: &'static str) -> impl Fn(&'a str) -> Res<'a, &'a str> {
    move |i| {
        let j = skip_ws(i);
        match j.strip_prefix(s) {
            Some(r) => Ok((r, &j[..s.len()])),
            None => Err(nom::Err::Error(PErr::expecting(j, s))),
        }
    }
}

fn identifier(i: &str) -> Res<'_, &str> {
    let j = skip_ws(i);
    let mut end = 0;
    for (k, c) in j.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (k > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        end = k + c.len_utf8();
    }
    if end == 0 {
        return Err(nom::Err::Error(PErr::expecting(j, "IDENTIFIER")));
    }
    Ok((&j[end..], &j[..end]))
}

/// A double-quoted string with Go escapes, or a raw backtick string. Returns the value
/// and the input at its start (for error positions).
fn string(i: &str) -> Res<'_, (String, &str)> {
    let j = skip_ws(i);
    if let Some(r) = j.strip_prefix('`') {
        return match r.find('`') {
            Some(p) => Ok((&r[p + 1..], (r[..p].to_string(), j))),
            None => Err(PErr::fatal(j, "literal not terminated".into())),
        };
    }
    if j.starts_with('"') {
        return match unquote_prefix(j) {
            Ok((v, used)) => Ok((&j[used..], (v, j))),
            Err(e) => Err(PErr::fatal(j, format!("invalid string: {e}"))),
        };
    }
    Err(nom::Err::Error(PErr::expecting(j, "STRING")))
}

fn match_op(i: &str) -> Res<'_, MatchOp> {
    nom::branch::alt((
        sym("=~").map(|_| MatchOp::Re),
        sym("!~").map(|_| MatchOp::NotRe),
        sym("!=").map(|_| MatchOp::Neq),
        sym("=").map(|_| MatchOp::Eq),
    ))
    .parse(i)
}

fn matcher(i: &str) -> Res<'_, Matcher> {
    let (i, name) = identifier(i)?;
    let (i, op) = match_op(i)?;
    let (i, (value, at)) = string(i)?;
    let m = Matcher::new(name, op, value).map_err(|e| PErr::fatal(at, regex_message(&e.to_string())))?;
    Ok((i, m))
}

/// `{a="b", c=~"d"}`, with an optional trailing comma; `{}` parses and fails validation.
fn selector(i: &str) -> Res<'_, Vec<Matcher>> {
    let (mut i, _) = sym("{")(i)?;
    let mut out = Vec::new();
    if let Ok((r, _)) = sym("}")(i) {
        return Ok((r, out));
    }
    loop {
        let (r, m) = matcher(i)?;
        out.push(m);
        i = r;
        match nom::branch::alt((sym("}"), sym(","))).parse(i)? {
            (r, "}") => return Ok((r, out)),
            (r, _) => {
                i = r;
                if let Ok((r, _)) = sym("}")(i) {
                    return Ok((r, out));
                }
            }
        }
    }
}

fn line_filter_op(i: &str) -> Res<'_, LineFilterOp> {
    nom::branch::alt((
        sym("|=").map(|_| LineFilterOp::Contains),
        sym("!=").map(|_| LineFilterOp::NotContains),
        sym("|~").map(|_| LineFilterOp::Regex),
        sym("!~").map(|_| LineFilterOp::NotRegex),
    ))
    .parse(i)
}

/// `|= "a" or "b"`: an operator, a string, and any `or` alternatives.
fn line_filter(i: &str) -> Res<'_, LineFilter> {
    let (mut i, op) = line_filter_op(i)?;
    let mut values = Vec::new();
    loop {
        let (r, (v, at)) = string(i)?;
        if matches!(op, LineFilterOp::Regex | LineFilterOp::NotRegex) {
            if let Err(e) = regex::Regex::new(&v) {
                return Err(PErr::fatal(at, regex_message(&e.to_string())));
            }
        }
        values.push(v);
        i = r;
        // `or` followed by a string is an alternative; anything else is not ours.
        match (sym("or"), string).parse(i) {
            Ok(_) => i = sym("or")(i)?.0,
            Err(_) => return Ok((i, LineFilter { op, values })),
        }
    }
}

fn stage(i: &str) -> Res<'_, Stage> {
    line_filter.map(Stage::LineFilter).parse(i)
}

fn log_expr(i: &str) -> Res<'_, LogExpr> {
    let (mut i, selector) = selector(i)?;
    let mut pipeline = Vec::new();
    loop {
        match stage(i) {
            Ok((r, s)) => {
                pipeline.push(s);
                i = r;
            }
            Err(nom::Err::Error(_)) => return Ok((i, LogExpr { selector, pipeline })),
            Err(e) => return Err(e),
        }
    }
}

/// Loki reports regex errors with Go's wording, `error parsing regexp: ...`; ours carries
/// the Rust regex crate's explanation in its place.
fn regex_message(e: &str) -> String {
    let detail = e.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(e).trim();
    let detail = detail.trim_start_matches("error: ");
    format!("error parsing regexp: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(q: &str) -> String {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).to_string()
    }

    fn err(q: &str) -> String {
        parse(q).expect_err(q).to_string()
    }

    #[test]
    fn selectors_and_filters_print_canonically() {
        assert_eq!(ok(r#"{service="db",cluster="eu-west-1"}"#), r#"{service="db", cluster="eu-west-1"}"#);
        assert_eq!(ok(r#"{ a =~ "x|y" , b!~`u.*`, }"#), r#"{a=~"x|y", b!~"u.*"}"#);
        assert_eq!(
            ok(r#"{a="b"} |= "x" != `y` |~ "(?i)z" !~ "w" |= "p" or "q""#),
            r#"{a="b"} |= "x" != "y" |~ "(?i)z" !~ "w" |= "p" or "q""#
        );
        assert_eq!(ok("{a=\"b\"} # a comment\n |= \"\\\"quoted\\\"\""), r#"{a="b"} |= "\"quoted\"""#);
    }

    #[test]
    fn reprint_reparses_to_the_same_tree() {
        for q in [r#"{a="b\n"} |= "é\t" or "x""#, r#"{a=~".+", b!=""} !~ "\\d+""#] {
            let e = parse(q).unwrap();
            assert_eq!(parse(&e.to_string()).unwrap(), e);
        }
    }

    #[test]
    fn loki_error_messages() {
        assert_eq!(err(r#"{service="api""#), "parse error at line 1, col 15: syntax error: unexpected $end, expecting } or ,");
        assert_eq!(err("{}"), format!("parse error : {EMPTY_COMPATIBLE}"));
        assert_eq!(err(r#"{service=~".*"}"#), format!("parse error : {EMPTY_COMPATIBLE}"));
        assert!(err(r#"{a="b"} |~ "(unclosed""#).starts_with("parse error at line 1, col 12: error parsing regexp:"));
        assert!(err(r#"{a=~"(x"}"#).contains("error parsing regexp"));
        assert_eq!(err("{a=\"b\"}\n  foo"), "parse error at line 2, col 3: syntax error: unexpected IDENTIFIER");
        assert!(err(r#"{a="b"} |= "x" or"#).contains("unexpected IDENTIFIER"));
        assert!(err("{a=\"b").contains("invalid string"));
        assert!(err(&format!("{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES))).contains("query too large"));
    }

    #[test]
    fn empty_compatible_rules() {
        assert!(parse(r#"{a!=""}"#).is_ok());
        assert!(parse(r#"{a=~".+"}"#).is_ok());
        assert!(parse(r#"{a=""}"#).is_err());
        assert!(parse(r#"{a!="x"}"#).is_err());
    }
}
