//! Compiled line filters. Built once per query: substring filters keep one
//! `memmem::Finder` each, regex filters one compiled `regex::bytes::Regex` (Go RE2
//! semantics, unanchored, as Loki's line filters are).
//!
//! A regex is often mostly literal text. A pattern that is nothing but a literal becomes
//! a substring search; otherwise the longest literal every match must contain is looked
//! for first, with `memmem`, and the regex runs only on lines that have it. The regex's
//! own prefilter looks for a literal it can start a match at, usually a common prefix
//! (`/api/v1/` in `/api/v1/.+ 50[0-9]`); the rarer text later in the pattern rules out
//! most lines at a fraction of the cost.

use arrow::array::{Array, BooleanArray, ByteView, StringViewArray, MAX_INLINE_VIEW_LEN};
use memchr::memmem::Finder;
use regex::bytes::Regex;

use crate::ast::{LineFilter, LineFilterOp, LineFilterValue};
use crate::error::QueryError;

#[derive(Debug)]
enum Needle {
    /// `|= ""` and `|~ ""` match every line.
    Everything,
    Substring(Box<Finder<'static>>),
    /// A regex, and a literal each match contains.
    Regex(Regex, Option<Box<Finder<'static>>>),
    Ip(crate::ip::IpPattern),
    Pattern(crate::pattern::Pattern),
}

impl Needle {
    #[inline]
    fn is_match(&self, line: &[u8]) -> bool {
        match self {
            Needle::Everything => true,
            Needle::Substring(f) => f.find(line).is_some(),
            Needle::Regex(r, must) => must.as_ref().is_none_or(|f| f.find(line).is_some()) && r.is_match(line),
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
                    let re = Regex::new(v).map_err(|e| QueryError::BadRequest(format!("invalid regex {v:?}: {e}")))?;
                    match literals::of_regex(v) {
                        literals::Required::Whole(lit) => Needle::Substring(Box::new(Finder::new(&lit).into_owned())),
                        literals::Required::Contains(lit) => Needle::Regex(re, Some(Box::new(Finder::new(&lit).into_owned()))),
                        literals::Required::Nothing => Needle::Regex(re, None),
                    }
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

    /// [`Self::matches`] on every line of `lines` (false for a null). A chain with a
    /// literal every kept line contains (`|= "x"`, or a regex's required literal) looks
    /// for it once over each run of lines that lie one after another in a buffer (as
    /// lines read from a Parquet page do), not line by line: one long search instead of a
    /// short one per line, and only the lines it finds it in are checked further.
    pub fn matches_views(&self, lines: &StringViewArray) -> BooleanArray {
        let n = lines.len();
        // The longest such literal: the rarest, most likely.
        let driver = self.filters.iter().enumerate().filter_map(|(k, f)| match f.alternatives.as_slice() {
            [Needle::Substring(l)] | [Needle::Regex(_, Some(l))] if !f.negate => Some((k, l)),
            _ => None,
        });
        let Some((k, finder)) = driver.max_by_key(|(k, l)| (l.needle().len(), std::cmp::Reverse(*k))) else {
            return (0..n).map(|i| Some(lines.is_valid(i) && self.matches(lines.value(i).as_bytes()))).collect();
        };
        // The chain, once the driving literal is known to be in the line.
        let rest = |line: &[u8]| {
            self.filters.iter().enumerate().all(|(j, f)| {
                if j != k {
                    return f.alternatives.iter().any(|a| a.is_match(line)) != f.negate;
                }
                match &f.alternatives[0] {
                    Needle::Regex(r, _) => r.is_match(line),
                    _ => true,
                }
            })
        };
        let len = finder.needle().len();
        let mut keep = arrow::array::BooleanBufferBuilder::new(n);
        keep.append_n(n, false);
        let (views, buffers) = (lines.views(), lines.data_buffers());
        // A line of its own: inline in its view, or null.
        let alone = |i: usize| lines.is_null(i) || views[i] as u32 <= MAX_INLINE_VIEW_LEN;
        // Where each line of the current run ends in its buffer.
        let mut ends: Vec<usize> = Vec::new();
        let mut i = 0;
        while i < n {
            if alone(i) {
                if lines.is_valid(i) && finder.find(lines.value(i).as_bytes()).is_some() && rest(lines.value(i).as_bytes()) {
                    keep.set_bit(i, true);
                }
                i += 1;
                continue;
            }
            // The run: lines from `i` on in the same buffer, each starting at or after
            // the end of the one before (gaps, such as Parquet's length prefixes, are
            // searched too, and hits in them ignored).
            let first = ByteView::from(views[i]);
            let (buffer, start) = (first.buffer_index, first.offset as usize);
            ends.clear();
            ends.push(start + first.length as usize);
            let mut j = i + 1;
            while j < n && !alone(j) {
                let v = ByteView::from(views[j]);
                if v.buffer_index != buffer || (v.offset as usize) < ends[ends.len() - 1] {
                    break;
                }
                ends.push(v.offset as usize + v.length as usize);
                j += 1;
            }
            let data = &buffers[buffer as usize][..ends[ends.len() - 1]];
            let (mut pos, mut r) = (start, 0usize);
            while let Some(hit) = finder.find(&data[pos..]) {
                let at = pos + hit;
                // The first line of the run that ends after byte `at`.
                r += ends[r..].partition_point(|&e| e <= at);
                let row_start = ByteView::from(views[i + r]).offset as usize;
                if at < row_start {
                    // In the gap before the line: look again from its start.
                    pos = row_start;
                    continue;
                }
                // A hit that runs past the line's end is no match; no later hit in this
                // line can end inside it either.
                if at + len <= ends[r] && rest(lines.value(i + r).as_bytes()) {
                    keep.set_bit(i + r, true);
                }
                pos = ends[r];
                r += 1;
                if r == ends.len() {
                    break;
                }
            }
            i = j;
        }
        // Null lines were never kept: false, not null, as `matches` answers.
        BooleanArray::new(keep.finish(), None)
    }
}

impl silt_storage::LinePredicate for LineFilterChain {
    fn keep(&self, lines: &StringViewArray) -> BooleanArray {
        self.matches_views(lines)
    }
}

/// A literal every line that `pattern` matches contains, if the pattern has one: what the
/// needle index can look up for `|~`.
pub(crate) fn required_literal(pattern: &str) -> Option<String> {
    match literals::of_regex(pattern) {
        literals::Required::Whole(l) | literals::Required::Contains(l) => String::from_utf8(l).ok(),
        literals::Required::Nothing => None,
    }
}

/// What the text of every match of a regex must contain.
mod literals {
    use regex_syntax::hir::{Hir, HirKind};

    pub(super) enum Required {
        /// The pattern is this literal and nothing else.
        Whole(Vec<u8>),
        /// Every match contains this literal.
        Contains(Vec<u8>),
        Nothing,
    }

    /// Shorter literals are found in too many lines to be worth a scan of their own.
    const MIN_LEN: usize = 3;

    pub(super) fn of_regex(pattern: &str) -> Required {
        // Parsed as `regex` parses it; a pattern it accepted but this rejects is simply
        // not prefiltered.
        let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else { return Required::Nothing };
        if let HirKind::Literal(l) = hir.kind() {
            if !l.0.is_empty() {
                return Required::Whole(l.0.to_vec());
            }
        }
        let mut found = Vec::new();
        required(&hir, &mut found);
        match found.into_iter().max_by_key(Vec::len) {
            Some(l) if l.len() >= MIN_LEN => Required::Contains(l),
            _ => Required::Nothing,
        }
    }

    /// Pushes literals every match of `h` contains. Alternations, optional parts and
    /// zero-width assertions contribute nothing and end a run of adjacent literals.
    fn required(h: &Hir, out: &mut Vec<Vec<u8>>) {
        match h.kind() {
            HirKind::Literal(l) => out.push(l.0.to_vec()),
            HirKind::Capture(c) => required(&c.sub, out),
            HirKind::Repetition(r) if r.min >= 1 => required(&r.sub, out),
            HirKind::Concat(items) => {
                let mut run = Vec::new();
                for it in items {
                    match literal(it) {
                        Some(bytes) => run.extend_from_slice(bytes),
                        None => {
                            if !run.is_empty() {
                                out.push(std::mem::take(&mut run));
                            }
                            required(it, out);
                        }
                    }
                }
                if !run.is_empty() {
                    out.push(run);
                }
            }
            _ => {}
        }
    }

    fn literal(h: &Hir) -> Option<&[u8]> {
        match h.kind() {
            HirKind::Literal(l) => Some(&l.0),
            HirKind::Capture(c) => literal(&c.sub),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

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

    #[test]
    fn required_literals_of_regexes() {
        use literals::{of_regex, Required};
        let contains = |p: &str| match of_regex(p) {
            Required::Contains(l) => Some(String::from_utf8(l).unwrap()),
            Required::Whole(l) => Some(format!("whole:{}", String::from_utf8(l).unwrap())),
            Required::Nothing => None,
        };
        assert_eq!(contains(r#"/api/v1/(orders|cart)/[0-9]+ HTTP/1\.1" 50[0-9]"#).as_deref(), Some(r#" HTTP/1.1" 50"#));
        assert_eq!(contains("error").as_deref(), Some("whole:error"));
        assert_eq!(contains("a(bcd)e+fgh").as_deref(), Some("abcd"));
        assert_eq!(contains("(?i)error"), None, "case-insensitive: no literal");
        assert_eq!(contains("foo|barbaz"), None);
        assert_eq!(contains("(timeout)?x"), None);
        assert_eq!(contains(r"\bpanic\b: .*"), Some("panic".into()));
        assert_eq!(contains("ab.cd"), None, "too short");
        assert_eq!(contains(""), None);
    }

    /// Lines as a Parquet page hands them out as views: one buffer, each line after a
    /// gap (Parquet's length prefix; here bytes that may hold a literal), short lines
    /// inline.
    fn page_views(lines: &[Option<String>], gap: &str) -> StringViewArray {
        let mut buf = Vec::new();
        let mut at = Vec::new();
        for l in lines {
            buf.extend_from_slice(gap.as_bytes());
            at.push(buf.len() as u32);
            buf.extend_from_slice(l.as_deref().unwrap_or("").as_bytes());
        }
        let mut b = arrow::array::StringViewBuilder::new();
        let block = b.append_block(arrow::buffer::Buffer::from(buf));
        for (l, at) in lines.iter().zip(at) {
            match l {
                Some(l) => b.try_append_view(block, at, l.len() as u32).unwrap(),
                None => b.append_null(),
            }
        }
        b.finish()
    }

    /// Over view arrays of every layout (lines one after another, with gaps, inline,
    /// across buffers, out of order, sliced, with nulls, and literals that run across
    /// line ends or sit in the gaps) the answer is the line-by-line one, for every kind
    /// of chain.
    #[test]
    fn whole_run_search_answers_as_line_by_line() {
        use LineFilterOp::*;
        let chains = [
            chain(&[(Contains, &["abc"])]),
            chain(&[(Contains, &["abc"]), (NotContains, &["x"])]),
            chain(&[(NotContains, &["x"]), (Regex, &["abc(x|y)+"])]),
            chain(&[(Regex, &[r"x\dabc"])]),
            chain(&[(Contains, &["abc", "y"])]),
            chain(&[(NotRegex, &["abc"])]),
            chain(&[(Contains, &["a"]), (Contains, &["bca"])]),
        ];
        let words = ["a", "b", "c", "ab", "bc", "abc", "x", "y", "1", "\u{e9}", "", "bbbbbb", "cabcab"];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % m as u64) as usize
        };
        for round in 0..400 {
            let rows = next(40);
            // Lines of 0 to 20 words: about half are longer than an inline view holds.
            let lines: Vec<Option<String>> = (0..rows)
                .map(|_| (next(10) != 0).then(|| (0..next(21)).map(|_| words[next(words.len())]).collect()))
                .collect();
            let gap = ["", "abc", "1abc", "x1ab"][round % 4];
            let mut full = match round % 5 {
                0 => StringViewArray::from(lines.clone()),
                // Two buffers: the second array's lines in another one.
                1 => {
                    let (a, b) = lines.split_at(rows / 2);
                    let (a, b) = (page_views(a, gap), page_views(b, gap));
                    arrow::compute::concat(&[&a, &b]).unwrap().as_string_view().clone()
                }
                // Out of order: views pointing backwards in their buffer.
                2 => {
                    let idx = arrow::array::UInt32Array::from_iter_values((0..rows as u32).map(|i| if i % 3 == 0 { rows as u32 - 1 - i } else { i }));
                    arrow::compute::take(&page_views(&lines, gap), &idx, None).unwrap().as_string_view().clone()
                }
                _ => page_views(&lines, gap),
            };
            if round % 7 == 0 {
                // Null lines whose views still point at bytes (a literal may be found there).
                let filled: Vec<Option<String>> = (0..rows).map(|i| Some(if i % 2 == 0 { "abcx1abc abcx1abcy" } else { "y" }.to_string())).collect();
                let (views, buffers, _) = page_views(&filled, gap).into_parts();
                let nulls = arrow::buffer::NullBuffer::from((0..rows).map(|i| i % 4 != 0).collect::<Vec<bool>>());
                full = StringViewArray::new(views, buffers, Some(nulls));
            }
            let (a, len) = (next(rows + 1), next(rows + 1));
            let sliced = full.slice(a, len.min(rows - a));
            for (c, ch) in chains.iter().enumerate() {
                let got = ch.matches_views(&sliced);
                assert_eq!(got.null_count(), 0);
                for i in 0..sliced.len() {
                    let want = sliced.is_valid(i) && ch.matches(sliced.value(i).as_bytes());
                    assert_eq!(got.value(i), want, "round {round}, chain {c}, line {:?}", sliced.is_valid(i).then(|| sliced.value(i)));
                }
            }
        }
    }

    /// Prefiltered regexes keep exactly the lines the bare regex keeps.
    #[test]
    fn prefiltered_regexes_match_like_the_regex() {
        let patterns = [
            r#"/api/v1/(orders|cart)/[0-9]+ HTTP/1\.1" 50[0-9]"#,
            "error",
            "err(or)?",
            r"\bpanic\b: .*done",
            "^start",
            "end$",
            "a(bcd)e+fgh",
            "(?i)ErRoR",
            "x{2}yyz",
            "(?-u:\\xff)abc",
        ];
        let words = ["/api/v1/orders/12 HTTP/1.1\" 503", "/api/v1/cart/ HTTP/1.1\" 500", "error", "err", "panic: x done", "start", "end", "abcdeefgh", "ERROR", "xxyyz", "abc", " ", "\u{e9}"];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for p in patterns {
            let plain = Regex::new(p).unwrap();
            let c = chain(&[(LineFilterOp::Regex, &[p])]);
            for _ in 0..2000 {
                let mut line = String::new();
                for _ in 0..(rng % 5) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    line.push_str(words[(rng % words.len() as u64) as usize]);
                }
                rng = rng.wrapping_add(0x9e37_79b9);
                assert_eq!(c.matches(line.as_bytes()), plain.is_match(line.as_bytes()), "{p} on {line:?}");
            }
        }
    }
}
