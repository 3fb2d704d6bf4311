//! Label sets: the identity of a stream. Kept sorted by name so that equal sets are equal
//! byte for byte, print the same way Loki prints them, and hash to the same fingerprint.

use std::fmt::{self, Write as _};

use xxhash_rust::xxh3::Xxh3;

use crate::error::StoreError;

/// Loki's default limits on stream labels (`max_label_names_per_series`,
/// `max_label_name_length`, `max_label_value_length`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelLimits {
    pub max_names: usize,
    pub max_name_len: usize,
    pub max_value_len: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits { max_names: 15, max_name_len: 1024, max_value_len: 2048 }
    }
}

/// Why a stream's labels were refused: Loki's discard reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    pub reason: &'static str,
    pub message: String,
}

impl std::fmt::Display for LabelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A sorted, duplicate-free set of `name="value"` pairs.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set from pairs in any order. Fails on a duplicate name.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = v.windows(2).find(|w| w[0].0 == w[1].0) {
            let name = w[0].0.clone();
            let ls = Labels(v);
            return Err(StoreError::InvalidInput(format!(
                "stream '{ls}' has duplicate label name: '{name}'"
            )));
        }
        Ok(Labels(v))
    }

    /// Parses Loki's text form, `{name="value", ...}`, as sent in protobuf pushes.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let err = |why: &str| StoreError::InvalidInput(format!("error parsing labels '{s}' with error: {why}"));
        let mut p = s.trim();
        p = p.strip_prefix('{').ok_or_else(|| err("expected '{'"))?;
        p = p.trim_end().strip_suffix('}').ok_or_else(|| err("expected '}'"))?;
        let mut pairs = Vec::new();
        let mut rest = p.trim_start();
        while !rest.is_empty() {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if name_len == 0 {
                return Err(err("expected a label name"));
            }
            let name = &rest[..name_len];
            rest = rest[name_len..].trim_start();
            rest = rest.strip_prefix('=').ok_or_else(|| err("expected '='"))?.trim_start();
            let (value, used) = unquote_prefix(rest).map_err(|e| err(&e))?;
            pairs.push((name.to_string(), value));
            rest = rest[used..].trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            } else if !rest.is_empty() {
                return Err(err("expected ',' or '}'"));
            }
        }
        Labels::from_pairs(pairs)
    }

    /// Checks Loki's rules for stream labels: at least one pair, valid names, no empty
    /// values (Loki drops empty-valued labels; we reject them so a stream's identity is
    /// unambiguous), and the length limits.
    /// Loki's label checks on a pushed stream, in Loki's order. `service_name` does not
    /// count towards the label-name limit (Loki adds it itself).
    pub fn validate(&self, limits: &LabelLimits) -> Result<(), LabelError> {
        let err = |reason, message| Err(LabelError { reason, message });
        if self.0.is_empty() {
            return err("missing_labels", "error at least one label pair is required per stream".into());
        }
        let names = self.0.len() - usize::from(self.get("service_name").is_some());
        if names > limits.max_names {
            return err("max_label_names_per_series", format!("entry for stream '{self}' has {names} label names; limit {}", limits.max_names));
        }
        for (name, value) in &self.0 {
            if !is_valid_label_name(name) {
                return err("invalid_labels", format!("error parsing labels '{self}' with error: invalid label name '{name}'"));
            }
            if name.len() > limits.max_name_len {
                return err("label_name_too_long", format!("stream '{self}' has label name too long: '{name}'"));
            }
            if value.len() > limits.max_value_len {
                return err("label_value_too_long", format!("stream '{self}' has label value too long: '{value}'"));
            }
        }
        Ok(())
    }

    /// Removes pairs with an empty value: Loki treats `{a=""}` as "no label a".
    pub fn without_empty_values(mut self) -> Self {
        self.0.retain(|(_, v)| !v.is_empty());
        self
    }

    /// A stable 64-bit hash of the canonical form (xxh3; the same set always gives the
    /// same value, across restarts and machines).
    pub fn fingerprint(&self) -> u64 {
        let mut h = Xxh3::new();
        for (n, v) in &self.0 {
            h.update(n.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }

    /// Inserts or replaces one pair, keeping the set sorted.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }
}

/// Loki's (and Prometheus') label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for Labels {
    /// `{a="1", b="2"}`: Loki's and Prometheus' text form, values quoted like Go's `%q`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
            f.write_char('=')?;
            write_go_quoted(f, v)?;
        }
        f.write_char('}')
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Writes `s` as Go's `strconv.Quote` would: printable characters as they are, the rest escaped.
pub fn write_go_quoted(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{7}' => out.write_str("\\a")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            '\u{b}' => out.write_str("\\v")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32)?,
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    write!(out, "\\u{:04x}", c as u32)?
                } else {
                    write!(out, "\\U{:08x}", c as u32)?
                }
            }
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Reads one double-quoted, Go-escaped string at the start of `s`; returns the value and
/// the number of bytes consumed. Shared by the label text form and LogQL.
pub fn unquote_prefix(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err("expected '\"'".into()),
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e { 'x' => 2, 'u' => 4, _ => 8 };
                        let mut v = 0u32;
                        for _ in 0..n {
                            let (_, h) = chars.next().ok_or("short escape")?;
                            v = v * 16 + h.to_digit(16).ok_or("invalid hex escape")?;
                        }
                        if e == 'x' {
                            // Go's \x is a byte; only ASCII bytes make sense in a UTF-8 string.
                            if v > 0x7f {
                                return Err("invalid \\x escape for UTF-8 string".into());
                            }
                        }
                        out.push(char::from_u32(v).ok_or("invalid unicode escape")?);
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, d) = chars.next().ok_or("short octal escape")?;
                            v = v * 8 + d.to_digit(8).ok_or("invalid octal escape")?;
                        }
                        if v > 0x7f {
                            return Err("invalid octal escape for UTF-8 string".into());
                        }
                        out.push(char::from_u32(v).ok_or("invalid octal escape")?);
                    }
                    other => return Err(format!("unknown escape sequence \\{other}")),
                }
            }
            '\n' => return Err("newline in string".into()),
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_printed_like_loki() {
        let l = Labels::from_pairs([("job", "x"), ("app", "a\"b")]).unwrap();
        assert_eq!(l.to_string(), r#"{app="a\"b", job="x"}"#);
        assert_eq!(Labels::parse(&l.to_string()).unwrap(), l);
    }

    #[test]
    fn fingerprint_ignores_input_order() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]).unwrap();
        let b = Labels::parse(r#"{ b="2",a="1" }"#).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = Labels::from_pairs([("a", "12")]).unwrap();
        let d = Labels::from_pairs([("a", "1"), ("2", "")]).unwrap();
        assert_ne!(c.fingerprint(), d.fingerprint());
    }

    #[test]
    fn duplicate_names_rejected() {
        let e = Labels::parse(r#"{a="1", a="2"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate label name: 'a'"), "{e}");
    }

    #[test]
    fn validation_messages() {
        let lim = LabelLimits::default();
        assert!(Labels::default().validate(&lim).unwrap_err().to_string().contains("at least one label pair"));
        let bad = Labels::from_pairs([("1a", "x")]).unwrap();
        assert!(bad.validate(&lim).unwrap_err().to_string().contains("invalid label name '1a'"));
        let long = Labels::from_pairs([("a", "x".repeat(2049))]).unwrap();
        assert!(long.validate(&lim).unwrap_err().to_string().contains("label value too long"));
        let many = Labels::from_pairs((0..16).map(|i| (format!("l{i}"), "v"))).unwrap();
        assert!(many.validate(&lim).unwrap_err().to_string().contains("has 16 label names; limit 15"));
    }

    #[test]
    fn parse_errors_are_clear() {
        for bad in ["", "{", "a=\"b\"", "{a=b}", "{a=\"b\" c=\"d\"}", "{=\"x\"}", "{a=\"unterminated}"] {
            let e = Labels::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("error parsing labels"), "{bad}: {e}");
        }
    }

    #[test]
    fn go_escapes() {
        let (v, n) = unquote_prefix(r#""a\tb\u00e9\x41\101" rest"#).unwrap();
        assert_eq!(v, "a\tbéAA");
        assert_eq!(n, 20);
        let mut s = String::new();
        write_go_quoted(&mut s, "a\nb\u{1}é").unwrap();
        assert_eq!(s, r#""a\nb\x01é""#);
    }
}
