//! Label matchers (`=`, `!=`, `=~`, `!~`). Regexes are fully anchored, as in Loki and
//! Prometheus, and compiled once; the label index evaluates a matcher once per distinct
//! label value, never once per row.

use std::fmt;

use regex::Regex;

use crate::error::StoreError;
use crate::labels::write_go_quoted;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Eq,
    Neq,
    Re,
    NotRe,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Neq => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Self, StoreError> {
        let value = value.into();
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => Some(compile_anchored(&value)?),
            _ => None,
        };
        Ok(Matcher { name: name.into(), op, value, re })
    }

    /// Whether a label value matches; an absent label is matched as the empty string.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Neq => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// True when the matcher also selects streams that lack the label altogether.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

/// Compiles a matcher regex anchored at both ends, with `.` matching newlines, the way
/// Prometheus' `labels.NewMatcher` does.
pub fn compile_anchored(re: &str) -> Result<Regex, StoreError> {
    Regex::new(&format!("^(?s:{re})$"))
        .map_err(|e| StoreError::InvalidInput(format!("invalid regular expression {re:?}: {}", first_line(&e.to_string()))))
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim_start_matches("error: ")
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}
impl Eq for Matcher {}
impl std::hash::Hash for Matcher {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.name.hash(h);
        self.op.hash(h);
        self.value.hash(h);
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.op.as_str())?;
        write_go_quoted(f, &self.value)
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_fully_anchored() {
        let m = Matcher::new("a", MatchOp::Re, "db|kube.*").unwrap();
        assert!(m.matches("db"));
        assert!(m.matches("kubelet"));
        assert!(!m.matches("xdb"));
        assert!(!m.matches("dbx"));
        let n = Matcher::new("a", MatchOp::NotRe, "us-.*").unwrap();
        assert!(n.matches("eu-west-1"));
        assert!(!n.matches("us-east-1"));
        assert!(n.matches_empty());
    }

    #[test]
    fn bad_regex_is_an_input_error() {
        assert!(Matcher::new("a", MatchOp::Re, "(unclosed").unwrap_err().is_client_error());
    }
}
