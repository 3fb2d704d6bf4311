//! The LogQL parser, written with `nom` over the query text. Errors carry Loki's wording
//! and positions: `parse error at line 1, col 15: syntax error: unexpected $end, expecting
//! } or ,` for syntax errors (at the offending token), `parse error : <message>` for
//! validation errors about the whole query.
//!
//! Layout: [`lex`] has the token-level parsers (whitespace and comments, keywords,
//! strings, numbers, durations, bytes, ranges); [`log`] the selector and pipeline; [`metric`]
//! aggregations and binary operators with Loki's precedence.

mod lex;
mod log;
mod metric;
pub(crate) use metric::fold;

use nom::error::{ErrorKind, ParseError as NomParseError};
use nom::IResult;
use silt_storage::Matcher;

use crate::ast::{Expr, LogExpr};
use crate::error::ParseError;

/// Loki's limit on the size of a query string.
pub const MAX_QUERY_BYTES: usize = 131_072;

/// How deeply `(`, `{` and `[` may nest. Loki has no such limit (its parser is a table
/// machine); a recursive-descent parser needs one to never overflow its stack. Real
/// queries nest a handful of levels.
pub const MAX_NESTING: usize = 64;

pub(crate) const EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses and validates a LogQL query.
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    if query.len() >= MAX_QUERY_BYTES {
        return Err(ParseError::whole(format!("input size too long ({} > {MAX_QUERY_BYTES})", query.len())));
    }
    let depth = nesting_depth(query);
    if depth > MAX_NESTING {
        return Err(ParseError::whole(format!("query nesting too deep ({depth} > {MAX_NESTING})")));
    }
    let result = (|i| {
        let (i, e) = metric::expr(i)?;
        let i = lex::skip_ws(i);
        if i.is_empty() {
            Ok((i, e))
        } else {
            Err(nom::Err::Error(PErr::at(i)))
        }
    })(query);
    let node = match result {
        Ok((_, e)) => e,
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => return Err(e.into_parse_error(query)),
        Err(nom::Err::Incomplete(_)) => return Err(ParseError::whole("incomplete input".into())),
    };
    let expr = match node {
        metric::Node::Log(l) => {
            check_selector(&l)?;
            Expr::Log(l)
        }
        metric::Node::Metric(m) => Expr::Metric(m),
    };
    Ok(expr)
}

/// The deepest nesting of brackets outside strings and comments.
fn nesting_depth(q: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | '{' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    max
}

/// Parses a bare stream selector, as the `query` and `match[]` parameters of the metadata
/// endpoints carry it, with the same validation as a query.
pub fn parse_selector(query: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(query)? {
        Expr::Log(l) if l.pipeline.is_empty() => Ok(l.selector),
        _ => Err(ParseError::whole("only label matchers are supported".into())),
    }
}

/// Loki's rule: a selector needs one matcher that does not match the empty string.
pub(crate) fn check_selector(l: &LogExpr) -> Result<(), ParseError> {
    if l.selector.iter().any(|m| !m.matches_empty()) {
        Ok(())
    } else {
        Err(ParseError::whole(EMPTY_COMPATIBLE.into()))
    }
}

impl ParseError {
    pub(crate) fn whole(message: String) -> Self {
        ParseError { line: 0, col: 0, message }
    }
}

/// nom's error for this parser: where it failed and what it expected there; for errors
/// that are not about syntax (a bad regex, a validation rule), the message to report and
/// whether it is positioned.
#[derive(Debug)]
pub(crate) struct PErr<'a> {
    rest: &'a str,
    expected: Vec<&'static str>,
    message: Option<String>,
    /// Validation errors about the whole query print without a position.
    whole: bool,
}

impl<'a> PErr<'a> {
    pub(crate) fn at(rest: &'a str) -> Self {
        PErr { rest, expected: Vec::new(), message: None, whole: false }
    }
    pub(crate) fn expecting(rest: &'a str, what: &'static str) -> Self {
        PErr { rest, expected: vec![what], message: None, whole: false }
    }
    /// An error at a position with its own message (lexer errors, bad regexes).
    pub(crate) fn fatal(rest: &'a str, message: String) -> nom::Err<Self> {
        nom::Err::Failure(PErr { rest, expected: Vec::new(), message: Some(message), whole: false })
    }
    /// A validation error about the whole query: `parse error : <message>`.
    pub(crate) fn invalid(rest: &'a str, message: String) -> nom::Err<Self> {
        nom::Err::Failure(PErr { rest, expected: Vec::new(), message: Some(message), whole: true })
    }

    fn into_parse_error(self, query: &str) -> ParseError {
        if self.whole {
            return ParseError::whole(self.message.unwrap_or_default());
        }
        let rest = lex::skip_ws(self.rest);
        let offset = query.len() - rest.len();
        let before = &query[..offset];
        let mut line = before.matches('\n').count() + 1;
        let col = before[before.rfind('\n').map_or(0, |p| p + 1)..].chars().count() + 1;
        let (token, multi_char) = lex::describe_token(rest);
        // Loki's lexer reports line 0 for tokens it assembles from several characters.
        if multi_char {
            line = 0;
        }
        let message = self.message.unwrap_or_else(|| {
            let mut m = format!("syntax error: unexpected {token}");
            let mut expected = self.expected;
            expected.sort_by_key(|e| lex::token_rank(e));
            expected.dedup();
            if !expected.is_empty() && expected.len() <= 4 {
                m.push_str(", expecting ");
                m.push_str(&expected.join(" or "));
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

pub(crate) type Res<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// Turns a recoverable error into a failure: past this point the input is committed.
pub(crate) fn cut<T>(r: Res<'_, T>) -> Res<'_, T> {
    r.map_err(|e| match e {
        nom::Err::Error(e) => nom::Err::Failure(e),
        other => other,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod proptest_ast;
