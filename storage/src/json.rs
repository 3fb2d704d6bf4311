//! Loki's `json` parser: every scalar of a JSON object becomes a label, nested keys joined
//! with `_` (`{"a":{"b":1}}` gives `a_b="1"`), arrays skipped, strings unescaped, numbers
//! and booleans as written. A small scanner over the bytes: no tree is built. The query
//! crate's `| json` stage runs it, and so does compaction, to build [field
//! columns](crate::fields) that must give exactly what the stage would.

use std::borrow::Cow;

/// How deep objects and arrays may nest. The scanner recurses, so a line of a hundred
/// thousand `[` would otherwise overflow the stack of whatever thread reads it (a query,
/// compaction). Deeper lines get a parse error (Loki's `JSONParserErr`) instead.
pub const MAX_DEPTH: usize = 1000;

/// Calls `emit(name, value)` for every scalar of the object in `s`. Errors describe the
/// first malformed byte.
pub fn flatten(s: &str, emit: &mut dyn FnMut(&str, &str)) -> Result<(), String> {
    let mut p = Parser { s, b: s.as_bytes(), i: 0, key: String::new(), depth: 0 };
    p.ws();
    if p.peek() != Some(b'{') {
        // jsonparser's wording, which Loki reports in __error_details__.
        return Err("Value looks like object, but can't find closing '}' symbol".into());
    }
    // Like Loki's parser, bytes after the object are not looked at.
    p.object(emit)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// The current key path, `a_b_`.
    key: String,
    /// Containers open around the cursor (see [`MAX_DEPTH`]).
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", c as char, self.i))
        }
    }

    /// Runs `f` one container deeper, or fails past [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels at offset {}", self.i));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn object(&mut self, emit: &mut dyn FnMut(&str, &str)) -> Result<(), String> {
        self.nested(|p| p.object_body(emit))
    }

    fn object_body(&mut self, emit: &mut dyn FnMut(&str, &str)) -> Result<(), String> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let k = self.string()?;
            self.expect(b':')?;
            self.ws();
            let depth = self.key.len();
            match self.peek() {
                Some(b'{') => {
                    self.key.push_str(&k);
                    self.key.push('_');
                    self.object(emit)?;
                }
                Some(b'[') => self.skip_value()?,
                Some(b'"') => {
                    let v = self.string()?;
                    self.emit_at(depth, &k, &v, emit);
                }
                Some(_) => {
                    let start = self.i;
                    self.scalar()?;
                    // Delimited by ASCII bytes, so on character boundaries.
                    let raw = &self.s[start..self.i];
                    if raw != "null" {
                        self.emit_at(depth, &k, raw, emit);
                    }
                }
                None => return Err("unexpected end of JSON input".into()),
            }
            self.key.truncate(depth);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(format!("expected ',' or '}}' at offset {}", self.i)),
            }
        }
    }

    /// Emits `key = value` under the current key path (top-level keys as they are).
    fn emit_at(&mut self, depth: usize, key: &str, value: &str, emit: &mut dyn FnMut(&str, &str)) {
        if depth == 0 {
            emit(key, value);
        } else {
            self.key.push_str(key);
            emit(&self.key, value);
        }
    }

    fn scalar(&mut self) -> Result<(), String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
        let raw = &self.b[start..self.i];
        let ok = matches!(raw, b"true" | b"false" | b"null")
            || (!raw.is_empty() && raw.iter().all(|c| c.is_ascii_digit() || b"+-.eE".contains(c)) && raw.iter().any(u8::is_ascii_digit));
        if ok {
            Ok(())
        } else {
            Err(format!("invalid value at offset {start}"))
        }
    }

    fn skip_value(&mut self) -> Result<(), String> {
        self.ws();
        match self.peek() {
            Some(b'{') | Some(b'[') => self.nested(Self::skip_container),
            Some(b'"') => self.string().map(|_| ()),
            Some(_) => self.scalar(),
            None => Err("unexpected end of JSON input".into()),
        }
    }

    fn skip_container(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'{') | Some(b'[') => {
                let close = if self.peek() == Some(b'{') { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if close == b'}' {
                        self.ws();
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip_value()?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(format!("malformed container at offset {}", self.i)),
                    }
                }
            }
            _ => Err(format!("expected a container at offset {}", self.i)),
        }
    }

    /// A JSON string, unescaped: borrowed from the line when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        if self.peek() != Some(b'"') {
            return Err(format!("expected '\"' at offset {}", self.i));
        }
        self.i += 1;
        let start = self.i;
        // Fast path: no escapes.
        match quote_or_backslash(&self.b[start..]) {
            Some(n) if self.b[start + n] == b'"' => {
                // Quotes are ASCII, so both ends are character boundaries.
                self.i = start + n + 1;
                return Ok(Cow::Borrowed(&self.s[start..start + n]));
            }
            Some(n) => self.i = start + n,
            None => self.i = self.b.len(),
        }
        let mut out: Vec<u8> = self.b[start..self.i].to_vec();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map(Cow::Owned).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'/' => out.push(b'/'),
                        b'\\' => out.push(b'\\'),
                        b'"' => out.push(b'"'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xd800..0xdc00).contains(&cp) && self.b.get(self.i..self.i + 2) == Some(b"\\u") {
                                self.i += 2;
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => return Err(format!("invalid escape '\\{}'", other as char)),
                    }
                }
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16).map_err(|e| e.to_string())
    }
}

/// The first `"` or `\\` in `b`. JSON keys and most values are short, where a word at a
/// time beats a vectorised search's setup; longer strings go to `memchr`.
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() && i < 32 {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        // A zero byte of `w ^ c` is a byte equal to `c`; the lowest flagged byte is exact.
        let (q, s) = (w ^ (ONES * b'"' as u64), w ^ (ONES * b'\\' as u64));
        let hits = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & HIGHS;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < 32 {
        return b[i..].iter().position(|&c| c == b'"' || c == b'\\').map(|p| i + p);
    }
    memchr::memchr2(b'"', b'\\', &b[i..]).map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        flatten(s, &mut |k, v| out.push((k.to_string(), v.to_string())))?;
        Ok(out)
    }

    #[test]
    fn flattens_like_loki() {
        let got = all(r#"{"a":1,"b":{"c":"x\"y","d":{"e":true}},"arr":[1,{"z":2}],"n":null,"f":-0.5e3,"u":"\u00e9"}"#).unwrap();
        let want = [("a", "1"), ("b_c", "x\"y"), ("b_d_e", "true"), ("f", "-0.5e3"), ("u", "é")];
        assert_eq!(got, want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 100k levels of arrays and of objects, each inside an object: these used to
        // overflow the stack of the thread that read them.
        let arrays = format!(r#"{{"x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(all(&arrays).unwrap_err().contains("nesting deeper than"));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
        assert!(all(&objects).unwrap_err().contains("nesting deeper than"));
        let fine = format!(r#"{{"x":{}{},"y":1}}"#, "[".repeat(MAX_DEPTH - 2), "]".repeat(MAX_DEPTH - 2));
        assert_eq!(all(&fine).unwrap(), vec![("y".to_string(), "1".to_string())]);
    }

    #[test]
    fn finds_the_first_quote_or_backslash() {
        for len in 0..80 {
            for at in 0..len {
                for c in [b'"', b'\\'] {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                    // Bytes that differ from the targets by one bit or by a borrow.
                    for (k, x) in b.iter_mut().enumerate().take(at) {
                        *x = [b'#', b'!', 0x5d, 0x5b, 0xa2, 0xdc, 0x00][k % 7];
                    }
                    assert_eq!(quote_or_backslash(&b), Some(at), "len {len} at {at}");
                }
            }
            assert_eq!(quote_or_backslash(&vec![b'x'; len]), None);
        }
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        for bad in ["", "[1]", "\"s\"", "{\"a\":}", "{\"a\":1", "{\"a\" 1}", "{\"a\":tru}", "level=info msg=x"] {
            assert!(all(bad).is_err(), "{bad}");
        }
    }
}
