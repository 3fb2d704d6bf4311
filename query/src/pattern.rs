//! Loki's pattern expressions (`<ip> - - <_> "<method> <path> <_>"`), used by the
//! `pattern` parser stage and the `|>` / `!>` line filters: literal text and captures,
//! `<name>` for a named capture and `<_>` for one that is matched and discarded.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Literal(String),
    /// `None` for `<_>`.
    Capture(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn capture_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic()) && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

impl Pattern {
    /// Parses a pattern; `<` that does not open a well-formed capture is literal text.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(inner) = rest.strip_prefix('<') {
                if let Some(end) = inner.find('>') {
                    let name = &inner[..end];
                    if capture_name(name) {
                        if !lit.is_empty() {
                            nodes.push(Node::Literal(std::mem::take(&mut lit)));
                        }
                        if matches!(nodes.last(), Some(Node::Capture(_))) {
                            return Err(PatternError("consecutive capture found".into()));
                        }
                        nodes.push(Node::Capture((name != "_").then(|| name.to_string())));
                        rest = &inner[end + 1..];
                        continue;
                    }
                }
            }
            let c = rest.chars().next().expect("non-empty");
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            nodes.push(Node::Literal(lit));
        }
        if nodes.is_empty() {
            return Err(PatternError("empty pattern".into()));
        }
        Ok(Pattern { nodes })
    }

    /// Parses a pattern for the `pattern` stage: it needs a named capture, and names must
    /// be distinct.
    pub fn parse_named(s: &str) -> Result<Pattern, PatternError> {
        let p = Pattern::parse(s)?;
        let names: Vec<&str> = p.names().collect();
        if names.is_empty() {
            return Err(PatternError("at least one capture is required".into()));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(PatternError(format!("duplicate capture name ({n})")));
            }
        }
        Ok(p)
    }

    /// The `|>` line filter test: the literals appear in order (a literal after a capture
    /// not right where the capture starts, so captures are non-empty); a pattern ending in a
    /// capture needs text left for it, one ending in a literal must end the line. The first
    /// literal may be anywhere, as in Loki.
    pub fn test(&self, line: &str) -> bool {
        if line.is_empty() {
            return false;
        }
        let mut pos = 0;
        let mut after_capture = false;
        for (i, n) in self.nodes.iter().enumerate() {
            match n {
                Node::Capture(_) => after_capture = true,
                Node::Literal(l) => {
                    let Some(found) = line[pos..].find(l.as_str()) else { return false };
                    if i > 0 && after_capture && found == 0 {
                        return false;
                    }
                    pos += found + l.len();
                    after_capture = false;
                }
            }
        }
        if after_capture {
            pos < line.len()
        } else {
            pos == line.len()
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Capture(Some(name)) => Some(name.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captures_and_literals() {
        let p = Pattern::parse_named(r#"<ip> - - <_> "<method> <path> <_>""#).unwrap();
        assert_eq!(p.names().collect::<Vec<_>>(), vec!["ip", "method", "path"]);
        assert_eq!(p.nodes[1], Node::Literal(" - - ".into()));
        assert!(Pattern::parse("a <b-c> d").unwrap().names().next().is_none(), "not a capture: literal");
        assert!(Pattern::parse_named("no captures").is_err());
        assert!(Pattern::parse("<a><b>").is_err());
        assert!(Pattern::parse_named("<a> <a>").is_err());
    }

    #[test]
    fn line_filter_test_is_lokis() {
        let t = |p: &str, l: &str| Pattern::parse(p).unwrap().test(l);
        assert!(!t("<_> bar", "foo bar baz"));
        assert!(t("<_> baz", "foo bar baz"));
        assert!(t("foo <_>", "foo bar baz"));
        assert!(!t("<_> bar <_>", " bar "));
        assert!(t(r#"<_> "POST <_>" 302 <_>"#, r#"1.2.3.4 - - [x] "POST /login HTTP/1.1" 302 12"#));
    }
}
