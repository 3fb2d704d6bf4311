//! What Loki adds to pushed data by default, which Grafana's Logs Drilldown relies on:
//! a `service_name` stream label (`discover_service_name`) and a `detected_level`
//! structured-metadata field per entry (`discover_log_levels`). Both follow Loki's rules
//! exactly and can be turned off per tenant.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use silt_storage::{Labels, PushRequest};

use crate::limits::Limits;

pub const SERVICE_NAME: &str = "service_name";
pub const UNKNOWN_SERVICE: &str = "unknown_service";
pub const DETECTED_LEVEL: &str = "detected_level";

/// Adds `service_name` and `detected_level` where the tenant's limits ask for them.
pub fn apply(req: &mut PushRequest, limits: &Limits) {
    for s in &mut req.streams {
        if !limits.discover_service_name.is_empty() {
            add_service_name(&mut s.labels, &limits.discover_service_name);
        }
        if limits.discover_log_levels && limits.ingest.allow_structured_metadata {
            // A level among the stream labels holds for every entry: looked up once.
            let from_stream = stream_level(&s.labels, &limits.log_level_fields);
            for e in &mut s.entries {
                add_level(from_stream.as_deref(), &mut e.metadata, &e.line, &limits.log_level_fields);
            }
        }
    }
}

/// Loki's internal streams (aggregated metrics, patterns) are left alone.
fn is_internal(labels: &Labels) -> bool {
    labels.get("__aggregated_metric__").is_some() || labels.get("__pattern__").is_some()
}

/// The first label of `candidates` with a value names the service; else
/// `unknown_service`. An existing `service_name` is kept.
pub fn add_service_name(labels: &mut Labels, candidates: &[String]) {
    if labels.get(SERVICE_NAME).is_some() || is_internal(labels) {
        return;
    }
    let name = candidates.iter().find_map(|c| labels.get(c).filter(|v| !v.is_empty())).unwrap_or(UNKNOWN_SERVICE).to_string();
    labels.set(SERVICE_NAME, &name);
}

/// Loki's `extractLogLevel`: an existing `detected_level` is normalised in place; else a
/// level field among the stream labels, then among the structured metadata; else one read
/// from the entry. Appended as the last structured-metadata pair.
pub fn add_detected_level(labels: &Labels, metadata: &mut Vec<(String, String)>, line: &str, fields: &[String]) {
    add_level(stream_level(labels, fields).as_deref(), metadata, line, fields);
}

/// The level a stream label gives (normalised), if any.
fn stream_level(labels: &Labels, fields: &[String]) -> Option<String> {
    fields.iter().find_map(|f| labels.get(f)).map(|v| normalize(v).into_owned())
}

/// [`add_detected_level`] with the stream's own level already looked up.
fn add_level(from_stream: Option<&str>, metadata: &mut Vec<(String, String)>, line: &str, fields: &[String]) {
    if let Some(existing) = metadata.iter_mut().find(|(n, _)| n == DETECTED_LEVEL) {
        existing.1 = normalize(&existing.1).into_owned();
        return;
    }
    let level = if let Some(v) = from_stream {
        v.to_string()
    } else if let Some(v) = fields.iter().find_map(|f| metadata.iter().find(|(n, _)| n == f).map(|(_, v)| v.as_str())) {
        normalize(v).into_owned()
    } else {
        from_entry(metadata, line, fields).to_string()
    };
    if !level.is_empty() {
        metadata.push((DETECTED_LEVEL.to_string(), level));
    }
}

/// Loki's level spellings; anything else is kept as it is.
fn normalize(v: &str) -> Cow<'_, str> {
    known_level(v).map_or(Cow::Borrowed(v), Cow::Borrowed)
}

fn known_level(v: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("trc", "trace"),
        ("debug", "debug"),
        ("dbg", "debug"),
        ("info", "info"),
        ("inf", "info"),
        ("information", "info"),
        ("warn", "warn"),
        ("wrn", "warn"),
        ("warning", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("critical", "critical"),
        ("fatal", "fatal"),
    ];
    TABLE.iter().find(|(k, _)| k.eq_ignore_ascii_case(v)).map(|(_, l)| *l)
}

/// The level from the entry itself: OTLP's `severity_number`, a level field of a JSON or
/// logfmt line, else a level word in the text.
fn from_entry(metadata: &[(String, String)], line: &str, fields: &[String]) -> &'static str {
    if let Some((_, n)) = metadata.iter().find(|(n, v)| n == "severity_number" && !v.is_empty()) {
        return match n.parse::<i64>() {
            Err(_) => "info",
            Ok(0) => "unknown",
            Ok(n) if n <= 4 => "trace",
            Ok(n) if n <= 8 => "debug",
            Ok(n) if n <= 12 => "info",
            Ok(n) if n <= 16 => "warn",
            Ok(n) if n <= 20 => "error",
            Ok(n) if n <= 24 => "fatal",
            Ok(_) => "unknown",
        };
    }
    let found = if looks_like_json(line) {
        json_level(line, fields)
    } else if !line.is_empty() && line.contains('=') {
        if !may_have_key(line, fields) {
            return from_text(line);
        }
        logfmt_level(line, fields).map(Cow::Owned)
    } else {
        return from_text(line);
    };
    found.as_deref().and_then(known_level).unwrap_or_else(|| from_text(line))
}

/// Loki's test: the first non-space character is `{` and the last non-space byte `}`.
fn looks_like_json(line: &str) -> bool {
    line.trim_start().starts_with('{') && line.trim_end().ends_with('}')
}

/// The first string value, in document order, whose key is a level field, at the top
/// level or one object down. Borrowed from the line unless it has escapes.
fn json_level<'l>(line: &'l str, fields: &[String]) -> Option<Cow<'l, str>> {
    match (JsonScan { line, b: line.as_bytes(), i: 0 }).top(fields) {
        Some(found) => found.map(Cow::Borrowed),
        None => json_level_by_serde(line, fields),
    }
}

/// A byte scan of a JSON line for [`json_level`], without allocating: most pushed JSON
/// lines are plain objects with the level among the first keys. Every method returns
/// `None` where it is unsure (an escape, a control character, malformed or very deep
/// JSON); the caller then asks serde, so the answer is always serde's. Where it does
/// answer, the part of the line it read is valid JSON.
struct JsonScan<'l> {
    line: &'l str,
    b: &'l [u8],
    i: usize,
}

impl<'l> JsonScan<'l> {
    /// `Some(found)` when sure; `None` to let serde decide.
    fn top(&mut self, fields: &[String]) -> Option<Option<&'l str>> {
        self.ws();
        self.object(0, fields)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The object at the cursor, searched to `depth` 1 like serde's walk: a level key's
    /// string value ends the search, any other value of a level key is passed over, and
    /// at the top level an object value is searched too.
    fn object(&mut self, depth: usize, fields: &[String]) -> Option<Option<&'l str>> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(None);
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.eat(b':')?;
            let next = self.peek()?;
            if fields.iter().any(|f| f == key) {
                if next == b'"' {
                    return Some(Some(self.string()?));
                }
                self.skip(0)?;
            } else if depth == 0 && next == b'{' {
                if let Some(found) = self.object(1, fields)? {
                    return Some(Some(found));
                }
            } else {
                self.skip(0)?;
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(None);
                }
                _ => return None,
            }
        }
    }

    /// The string at the cursor (at its `"`), when it has no escape or control character.
    fn string(&mut self) -> Option<&'l str> {
        let start = self.i + 1;
        let len = memchr::memchr2(b'"', b'\\', &self.b[start..])?;
        if self.b[start + len] != b'"' || self.b[start..start + len].iter().any(|&c| c < 0x20) {
            return None;
        }
        self.i = start + len + 1;
        // Between two ASCII quotes: on character boundaries.
        Some(&self.line[start..start + len])
    }

    /// Passes over the value at the cursor; `None` where serde might disagree.
    fn skip(&mut self, nesting: usize) -> Option<()> {
        if nesting > 100 {
            return None; // serde stops at 128 levels
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let close = if self.b[self.i] == b'{' { b'}' } else { b']' };
                self.i += 1;
                if self.eat(close).is_some() {
                    return Some(());
                }
                loop {
                    if close == b'}' {
                        if self.peek()? != b'"' {
                            return None;
                        }
                        self.string()?;
                        self.eat(b':')?;
                    }
                    self.skip(nesting + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then(|| self.i += word.len())
    }

    /// A number as JSON spells it: `-?(0|[1-9][0-9]*)(.[0-9]+)?`. Exponents and very
    /// long numbers are left to serde, which fails on those out of an f64's range.
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) || i - self.i > 300 {
            return None;
        }
        self.i = i;
        Some(())
    }
}

/// [`json_level`] by a serde walk: handles escapes and decides malformed lines.
fn json_level_by_serde<'l>(line: &'l str, fields: &[String]) -> Option<Cow<'l, str>> {
    struct Finder<'f, 'l> {
        fields: &'f [String],
        depth: usize,
        found: &'f mut Option<Cow<'l, str>>,
    }
    impl<'l> DeserializeSeed<'l> for Finder<'_, 'l> {
        type Value = ();
        fn deserialize<D: Deserializer<'l>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'l> Visitor<'l> for Finder<'_, 'l> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'l>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<Cow<'l, str>>()? {
                if self.found.is_some() {
                    map.next_value::<IgnoredAny>()?;
                } else if self.fields.iter().any(|f| *f == key) {
                    if let StrValue(Some(s)) = map.next_value::<StrValue<'l>>()? {
                        *self.found = Some(s);
                        // Found: stop reading the rest of the line.
                        return Err(serde::de::Error::custom("found"));
                    }
                } else if self.depth + 1 < 2 {
                    map.next_value_seed(Finder { fields: self.fields, depth: self.depth + 1, found: &mut *self.found })?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'l>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(line);
    // A malformed object simply has no level field; what was found before the error (or
    // the early stop) counts.
    let _ = Finder { fields, depth: 0, found: &mut found }.deserialize(&mut de);
    found
}

/// A JSON value read for its string, if it is one: borrowed from the input when it has
/// no escapes; any other value is skipped. Spares a `serde_json::Value` (and its
/// allocations) per pushed line.
struct StrValue<'l>(Option<Cow<'l, str>>);

impl<'l> serde::Deserialize<'l> for StrValue<'l> {
    fn deserialize<D: Deserializer<'l>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'l> Visitor<'l> for V {
            type Value = StrValue<'l>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'l str) -> Result<Self::Value, E> {
                Ok(StrValue(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrValue(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StrValue(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StrValue(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StrValue(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StrValue(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(StrValue(None))
            }
            fn visit_map<A: MapAccess<'l>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrValue(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'l>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StrValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether some `key=` of the line could be one of `fields`: every logfmt key runs from
/// a space, a closing quote or the start to an `=`. A cheap necessary condition that spares the full
/// parse for lines with `=` but no level field, such as access logs with `rt=0.012`.
fn may_have_key(line: &str, fields: &[String]) -> bool {
    let b = line.as_bytes();
    memchr::memchr_iter(b'=', b).any(|eq| {
        let start = b[..eq].iter().rposition(|&c| c <= b' ' || c == b'"').map_or(0, |i| i + 1);
        let key = &b[start..eq];
        fields.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(key))
    })
}

/// The value of the level field with the lowest index in `fields`, keys compared without
/// case.
fn logfmt_level(line: &str, fields: &[String]) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let _ = silt_query::pipeline::logfmt::parse_until(line, false, &mut |k, v| {
        if let Some(i) = fields.iter().position(|f| f.eq_ignore_ascii_case(k)) {
            if best.as_ref().is_none_or(|b| i < b.0) {
                best = Some((i, v.to_string()));
            }
        }
        // The first field cannot be beaten: the rest of the line need not be read.
        best.as_ref().is_none_or(|b| b.0 > 0)
    });
    best.map(|b| b.1)
}

/// Loki's `detectLevelFromLogLine`: the first occurrence of each level word, in a fixed
/// order, counts if it stands alone (no letter, digit or `_` on either side).
fn from_text(line: &str) -> &'static str {
    use std::cell::RefCell;
    use std::sync::LazyLock;
    const WORDS: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("debug", "debug"),
        ("fatal", "fatal"),
        ("critical", "critical"),
        ("error", "error"),
        ("err", "error"),
        ("warning", "warn"),
        ("warn", "warn"),
        ("info", "info"),
    ];
    // Built once: this runs for every pushed line without a level field.
    static FINDERS: LazyLock<Vec<(memchr::memmem::Finder<'static>, usize, &'static str)>> =
        LazyLock::new(|| WORDS.iter().map(|(w, l)| (memchr::memmem::Finder::new(w.as_bytes()), w.len(), *l)).collect());
    thread_local! {
        static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    // Every word holds one of these: one vectorised pass rules out most lines (access
    // logs, most klog and database lines), instead of a search per word.
    static ANY_ROOT: LazyLock<regex::bytes::Regex> = LazyLock::new(|| regex::bytes::Regex::new("trace|debug|fatal|critical|err|warn|info").expect("a valid pattern"));
    LOWER.with(|buf| {
        let mut b = buf.borrow_mut();
        b.clear();
        b.extend_from_slice(line.as_bytes());
        b.make_ascii_lowercase();
        if !ANY_ROOT.is_match(&b) {
            return "unknown";
        }
        // Byte-wise like Loki: a byte of a multi-byte character counts as a letter.
        let boundary = |i: Option<usize>| i.and_then(|i| b.get(i)).is_none_or(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80));
        for (finder, len, level) in FINDERS.iter() {
            if let Some(pos) = finder.find(&b) {
                if boundary(pos.checked_sub(1)) && boundary(Some(pos + len)) {
                    return *level;
                }
            }
        }
        "unknown"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_LOG_LEVEL_FIELDS;

    fn fields() -> Vec<String> {
        DEFAULT_LOG_LEVEL_FIELDS.iter().map(|s| s.to_string()).collect()
    }

    fn level(labels: &[(&str, &str)], metadata: &[(&str, &str)], line: &str) -> Option<String> {
        let labels = Labels::from_pairs(labels.iter().copied()).unwrap();
        let mut md: Vec<(String, String)> = metadata.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        add_detected_level(&labels, &mut md, line, &fields());
        md.into_iter().find(|(n, _)| n == DETECTED_LEVEL).map(|(_, v)| v)
    }

    /// The byte scan either agrees with serde or leaves the line to it.
    fn scan_agrees(line: &str) {
        let f = fields();
        if let Some(found) = (JsonScan { line, b: line.as_bytes(), i: 0 }).top(&f) {
            assert_eq!(found.map(Cow::Borrowed), json_level_by_serde(line, &f), "{line:?}");
        }
    }

    #[test]
    fn json_scan_agrees_with_serde_on_every_prefix() {
        let lines = [
            r#"{"ts":"2026-11-23T12:01:14Z","level":"info","msg":"done","status":200,"duration_ms":15.4}"#,
            r#" { "a" : [1, -2.5, {"b": [true, false, null]}, "x"], "n": {"m": {"level": "deep"}, "lvl": "warn"} } "#,
            r#"{"level":3,"x":{},"y":[],"severity":"debug"}"#,
            r#"{"a":01,"level":"warn"}"#,
            r#"{"a":1e3,"level":"warn"}"#,
            r#"{"a":-,"level":"warn"}"#,
            r#"{"a":"tab	in","level":"warn"}"#,
            r#"{"a":"é","lé":"x","level":"érreur"}"#,
            r#"{"k\u0065y":1,"level":"info"}"#,
            r#"{"a" 1,"level":"info"}"#,
            r#"{"a":1 "level":"info"}"#,
            r#"{"a":tru,"level":"info"}"#,
            r#"{"a":[1,],"level":"info"}"#,
            r#"{,"level":"info"}"#,
            r#"{"level":{"x":"y"},"LEVEL":"error"}"#,
        ];
        for line in lines {
            for end in (0..=line.len()).filter(|&e| line.is_char_boundary(e)) {
                scan_agrees(&line[..end]);
                scan_agrees(&format!("{}}}", &line[..end]));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn json_scan_agrees_with_serde(parts in proptest::collection::vec(proptest::sample::select(vec![
            "{", "}", "[", "]", ",", ":", " ", "\"", "\\", "\"level\"", "\"lvl\"", "\"msg\"", "\"info\"", "\"x\"",
            "0", "12", "-3.5", "1e2", ".", "true", "nul", "null", "\t", "é",
        ]), 0..24)) {
            scan_agrees(&format!("{{{}", parts.concat()));
        }
    }

    #[test]
    fn every_level_word_is_found_in_text() {
        for (word, level) in [("trace", "trace"), ("debug", "debug"), ("fatal", "fatal"), ("critical", "critical"), ("error", "error"), ("err", "error"), ("warning", "warn"), ("warn", "warn"), ("info", "info")] {
            assert_eq!(from_text(&format!("at 12:00 {} here", word.to_uppercase())), level, "{word}");
            assert_eq!(from_text(&format!("[{word}]")), level, "{word}");
        }
        assert_eq!(from_text("nothing to see"), "unknown");
    }

    #[test]
    fn service_name_from_the_first_candidate() {
        let c: Vec<String> = crate::limits::DEFAULT_SERVICE_NAME_LABELS.iter().map(|s| s.to_string()).collect();
        let mut l = Labels::from_pairs([("job", "j"), ("app", "a")]).unwrap();
        add_service_name(&mut l, &c);
        assert_eq!(l.get(SERVICE_NAME), Some("a"), "app comes before job");
        let mut l = Labels::from_pairs([("env", "x")]).unwrap();
        add_service_name(&mut l, &c);
        assert_eq!(l.get(SERVICE_NAME), Some(UNKNOWN_SERVICE));
        let mut l = Labels::from_pairs([("service_name", "kept"), ("app", "a")]).unwrap();
        add_service_name(&mut l, &c);
        assert_eq!(l.get(SERVICE_NAME), Some("kept"));
        let mut l = Labels::from_pairs([("__pattern__", "x")]).unwrap();
        add_service_name(&mut l, &c);
        assert_eq!(l.get(SERVICE_NAME), None, "internal streams are left alone");
    }

    #[test]
    fn levels_as_loki_detects_them() {
        assert_eq!(level(&[("level", "WARNING")], &[], "x").as_deref(), Some("warn"), "a stream label, normalised");
        assert_eq!(level(&[], &[("severity", "notice")], "x").as_deref(), Some("notice"), "unknown spellings kept");
        assert_eq!(level(&[], &[("detected_level", "ERR")], "x").as_deref(), Some("error"), "existing one normalised");
        assert_eq!(level(&[], &[("severity_number", "17")], "x").as_deref(), Some("error"));
        assert_eq!(level(&[], &[], r#"{"msg":"x","level":"debug"}"#).as_deref(), Some("debug"));
        assert_eq!(level(&[], &[], r#"{"log":{"level":"trace"}}"#).as_deref(), Some("trace"), "one level down");
        assert_eq!(level(&[], &[], r#"{"a":{"b":{"level":"fine"}},"m":"an error"}"#).as_deref(), Some("error"), "too deep: from the text");
        assert_eq!(level(&[], &[], r#"{"level":3,"msg":"ok"}"#).as_deref(), Some("unknown"), "numbers do not count");
        assert_eq!(level(&[], &[], r#"{"lvl":"w\u0061rn","msg":"error"}"#).as_deref(), Some("warn"), "escapes read");
        assert_eq!(level(&[], &[], r#"{"level":{"x":[1]},"severity":"debug"}"#).as_deref(), Some("debug"), "objects skipped");
        assert_eq!(level(&[], &[], r#"{"level":["x"],"msg":"info"}"#).as_deref(), Some("info"), "arrays skipped");
        assert_eq!(level(&[], &[], r#"{"level":"notice","msg":"an error"}"#).as_deref(), Some("error"), "unknown value: from the text");
        assert_eq!(level(&[], &[], "ts=1 LVL=wrn msg=hi").as_deref(), Some("warn"), "logfmt keys without case");
        assert_eq!(level(&[], &[], "lvl=debug level=info").as_deref(), Some("info"), "the earlier field wins");
        assert_eq!(level(&[], &[], "GET /x 500 Internal Server Error").as_deref(), Some("error"));
        assert_eq!(level(&[], &[], "xerror error").as_deref(), Some("unknown"), "only the first occurrence");
        assert_eq!(level(&[], &[], "WARN: disk").as_deref(), Some("warn"));
        assert_eq!(level(&[], &[], "all good").as_deref(), Some("unknown"));
        assert_eq!(level(&[], &[], r#"msg="a b"level=debug x=1"#).as_deref(), Some("debug"), "a key right after a quoted value");
        assert_eq!(level(&[], &[], "GET /x 200 rt=0.01 uct=0 a warning").as_deref(), Some("warn"), "no level key: from the text");
        assert_eq!(level(&[], &[], "a=1 b=2 Severity=ERROR").as_deref(), Some("error"));
        assert_eq!(level(&[], &[("level", "")], "error").as_deref(), None, "an empty level field adds nothing");
    }
}
