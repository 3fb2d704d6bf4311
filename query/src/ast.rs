//! The LogQL syntax tree. `Display` prints the canonical form (what `format_query` returns).
//!
//! Shaped for the whole language: an [`Expr`] is a log query (selector + pipeline) today;
//! metric expressions join as further variants, and pipeline stages (parsers, label
//! filters, formatters) as further [`Stage`] variants.

use std::fmt;

use silt_storage::{write_go_quoted, Matcher};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Log(LogExpr),
}

/// `{selector} | stage | stage ...`
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    LineFilter(LineFilter),
}

/// `|= "a"`, `!= "a"`, `|~ "re"`, `!~ "re"`, each with optional `or "b"` alternatives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineFilter {
    pub op: LineFilterOp,
    /// The first value and any `or` alternatives; at least one.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    Contains,
    NotContains,
    Regex,
    NotRegex,
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
        }
    }

    pub fn is_negated(self) -> bool {
        matches!(self, LineFilterOp::NotContains | LineFilterOp::NotRegex)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
        }
    }
}

impl fmt::Display for LogExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.selector.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
        for s in &self.pipeline {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => lf.fmt(f),
        }
    }
}

impl fmt::Display for LineFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        for (i, v) in self.values.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " or " })?;
            write_go_quoted(f, v)?;
        }
        Ok(())
    }
}
