//! Compiled line filters. Built once per query: substring filters keep one
//! `memmem::Finder` each, regex filters one compiled `regex::bytes::Regex` (Go RE2
//! semantics, unanchored, as Loki's line filters are).

use memchr::memmem::Finder;
use regex::bytes::Regex;

use crate::ast::{LineFilter, LineFilterOp, LineFilterValue};
use crate::error::QueryError;

#[derive(Debug)]
enum Needle {
    /// `|= ""` and `|~ ""` match every line.
    Everything,
    Substring(Box<Finder<'static>>),
    Regex(Regex),
    Ip(crate::ip::IpPattern),
    Pattern(crate::pattern::Pattern),
}

impl Needle {
    #[inline]
    fn is_match(&self, line: &[u8]) -> bool {
        match self {
            Needle::Everything => true,
            Needle::Substring(f) => f.find(line).is_some(),
            Needle::Regex(r) => r.is_match(line),
            Needle::Ip(p) => std::str::from_utf8(line).is_ok_and(|l| p.matches_line(l)),
            Needle::Pattern(p) => std::str::from_utf8(line).is_ok_and(|l| p.test(l)),
        }
    }
}

/// One filter: a line passes when any alternative matches (for `|=`, `|~`), or when none
/// does (for `!=`, `!~`).
#[derive(Debug)]
struct Compiled {
    negate: bool,
    alternatives: Vec<Needle>,
}

/// A chain of line filters; a line must pass all of them.
#[derive(Debug)]
pub struct LineFilterChain {
    filters: Vec<Compiled>,
}

impl LineFilterChain {
    pub fn compile<'a>(filters: impl IntoIterator<Item = &'a LineFilter>) -> Result<Self, QueryError> {
        let mut out = Vec::new();
        for f in filters {
            let regex = matches!(f.op, LineFilterOp::Regex | LineFilterOp::NotRegex);
            let pattern = matches!(f.op, LineFilterOp::Pattern | LineFilterOp::NotPattern);
            let mut alternatives = Vec::with_capacity(f.values.len());
            for v in &f.values {
                let v = match v {
                    LineFilterValue::Str(s) => s,
                    LineFilterValue::Ip(p) => {
                        alternatives.push(Needle::Ip(crate::ip::IpPattern::parse(p).map_err(QueryError::BadRequest)?));
                        continue;
                    }
                };
                if pattern {
                    let p = crate::pattern::Pattern::parse(v).map_err(|e| QueryError::BadRequest(format!("invalid pattern {v:?}: {e}")))?;
                    if p.names().next().is_some() {
                        return Err(QueryError::BadRequest(format!("invalid pattern {v:?}: named captures are not allowed")));
                    }
                    alternatives.push(Needle::Pattern(p));
                    continue;
                }
                alternatives.push(if v.is_empty() {
                    Needle::Everything
                } else if regex {
                    Needle::Regex(Regex::new(v).map_err(|e| QueryError::BadRequest(format!("invalid regex {v:?}: {e}")))?)
                } else {
                    Needle::Substring(Box::new(Finder::new(v.as_bytes()).into_owned()))
                });
            }
            out.push(Compiled { negate: f.op.is_negated(), alternatives });
        }
        Ok(LineFilterChain { filters: out })
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    #[inline]
    pub fn matches(&self, line: &[u8]) -> bool {
        self.filters.iter().all(|f| f.alternatives.iter().any(|n| n.is_match(line)) != f.negate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(fs: &[(LineFilterOp, &[&str])]) -> LineFilterChain {
        let fs: Vec<LineFilter> =
            fs.iter().map(|(op, v)| LineFilter { op: *op, values: v.iter().map(|s| LineFilterValue::Str(s.to_string())).collect() }).collect();
        LineFilterChain::compile(&fs).unwrap()
    }

    #[test]
    fn semantics_of_each_operator() {
        use LineFilterOp::*;
        let c = chain(&[(Contains, &["POST"]), (NotContains, &["201"])]);
        assert!(c.matches(b"POST /x 500"));
        assert!(!c.matches(b"POST /x 201"));
        assert!(!c.matches(b"GET /x 500"));
        let r = chain(&[(Regex, &["(?i)fatal|deadlock"])]);
        assert!(r.matches(b"xx FATAL yy"));
        assert!(!r.matches(b"ok"));
        let nr = chain(&[(NotRegex, &["level=(info|debug)"])]);
        assert!(nr.matches(b"level=warn"));
        assert!(!nr.matches(b"a level=info b"));
        let or = chain(&[(Contains, &["a", "b"])]);
        assert!(or.matches(b"xbx") && or.matches(b"xax") && !or.matches(b"c"));
        let nor = chain(&[(NotContains, &["a", "b"])]);
        assert!(!nor.matches(b"xbx") && nor.matches(b"c"));
        assert!(chain(&[(Contains, &[""])]).matches(b""));
    }
}
