//! The log pipeline: Loki's stages applied to one entry at a time. An entry starts as its
//! line and its labels (stream labels, then structured metadata) and leaves, if not
//! filtered out, with a possibly rewritten line and the labels Loki would report.
//!
//! Loki's rules kept here: line filters move ahead of the stages before them up to the
//! nearest `line_format`, `unpack` or label filter; a parsed label that clashes with a
//! stream label or structured metadata is renamed `<name>_extracted`; a stage that fails
//! sets `__error__` (and `__error_details__`) and keeps the entry.

pub mod logfmt;
mod template;

use std::borrow::Cow;

use regex::Regex;
use silt_storage::{is_valid_label_name, Matcher};

use crate::ast::{CmpOp, LabelFilter, NamedMatcher, Stage};
use crate::error::QueryError;
use crate::line_filter::LineFilterChain;
use crate::pattern::{Node, Pattern};

pub const ERROR_LABEL: &str = "__error__";
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Stream,
    Metadata,
    Parsed,
}

impl Origin {
    /// The one-byte code of the categorized form: `s`, `m` or `p`.
    fn code(self) -> u8 {
        match self {
            Origin::Stream => b's',
            Origin::Metadata => b'm',
            Origin::Parsed => b'p',
        }
    }
}

/// The labels of one entry while it moves through the pipeline. Stream labels and
/// structured metadata are borrowed from where they are stored; only labels a stage
/// sets are owned.
#[derive(Debug, Clone, Default)]
pub struct EntryLabels<'a> {
    labels: Vec<(Cow<'a, str>, Cow<'a, str>, Origin)>,
}

impl<'a> EntryLabels<'a> {
    pub fn new(stream: impl IntoIterator<Item = (&'a str, &'a str)>, metadata: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let stream = stream.into_iter();
        // Room for a few parsed labels too: most entries get some, and then need no regrowth.
        let mut labels: Vec<(Cow<'a, str>, Cow<'a, str>, Origin)> = Vec::with_capacity(stream.size_hint().0 + 4);
        labels.extend(stream.map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v), Origin::Stream)));
        for (n, v) in metadata {
            // Structured metadata named like a stream label is renamed, as Loki does.
            let name = if labels.iter().any(|l| l.0 == n && l.2 == Origin::Stream) { Cow::Owned(format!("{n}_extracted")) } else { Cow::Borrowed(n) };
            match labels.iter_mut().find(|l| l.0 == name) {
                Some(l) => l.1 = Cow::Borrowed(v),
                None => labels.push((name, Cow::Borrowed(v), Origin::Metadata)),
            }
        }
        EntryLabels { labels }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|l| l.0 == name).map(|l| l.1.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|l| (l.0.as_ref(), l.1.as_ref()))
    }

    pub fn has_error(&self) -> bool {
        self.get(ERROR_LABEL).is_some()
    }

    fn set(&mut self, name: &str, value: &str, origin: Origin) {
        match self.labels.iter_mut().find(|l| l.0 == name) {
            Some(l) => match &mut l.1 {
                Cow::Owned(v) => {
                    v.clear();
                    v.push_str(value);
                }
                v => *v = Cow::Owned(value.to_string()),
            },
            None => self.labels.push((Cow::Owned(name.to_string()), Cow::Owned(value.to_string()), origin)),
        }
    }

    /// A label found by a parser: sanitised, renamed `<name>_extracted` if the stream or
    /// its metadata has it already, and kept only if `wanted` (see [`Needed`]) wants it.
    fn set_parsed(&mut self, raw_name: &str, value: &str, wanted: Option<&Needed>) {
        if let Some(name) = self.parsed_name(raw_name, wanted) {
            self.set(&name, value, Origin::Parsed);
        }
    }

    /// [`Self::set_parsed`] for a name and value that outlive the entry: borrowed, not copied.
    fn set_parsed_borrowed(&mut self, raw_name: &'a str, value: &'a str, wanted: Option<&Needed>) {
        let Some(name) = self.parsed_name(raw_name, wanted) else { return };
        match self.labels.iter_mut().find(|l| l.0 == name) {
            Some(l) => l.1 = Cow::Borrowed(value),
            None => self.labels.push((name, Cow::Borrowed(value), Origin::Parsed)),
        }
    }

    /// The label a parser's key becomes: sanitised, `<name>_extracted` when the stream or
    /// its metadata has the name, `None` when empty or not `wanted`.
    fn parsed_name<'n>(&self, raw_name: &'n str, wanted: Option<&Needed>) -> Option<Cow<'n, str>> {
        let mut name = sanitize(raw_name);
        if name.is_empty() {
            return None;
        }
        if self.labels.iter().any(|l| l.0 == name && l.2 != Origin::Parsed) {
            name.to_mut().push_str("_extracted");
        }
        (!wanted.is_some_and(|w| !w.wants(&name))).then_some(name)
    }

    fn set_error(&mut self, error: &str, details: Option<&str>) {
        if self.has_error() {
            return; // the first error is kept
        }
        self.set(ERROR_LABEL, error, Origin::Parsed);
        if let Some(d) = details {
            self.set(ERROR_DETAILS_LABEL, d, Origin::Parsed);
        }
    }

    fn retain(&mut self, f: impl Fn(&str, &str) -> bool) {
        self.labels.retain(|l| f(&l.0, &l.1));
    }

    /// The final labels with where each came from: `b's'` stream, `b'm'` structured
    /// metadata, `b'p'` parsed (and error labels), for the categorized response form.
    pub fn into_categorized(self) -> Vec<(u8, String, String)> {
        let mut v: Vec<(u8, String, String)> = self
            .labels
            .into_iter()
            .map(|(n, val, o)| (o.code(), n.into_owned(), val.into_owned()))
            .collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    }

    /// The final labels, sorted by name, encoded like structured metadata with each name
    /// prefixed by where the label came from (see [`Self::into_categorized`]).
    pub fn encode_categorized(&self, out: &mut Vec<u8>) {
        let mut order: Vec<&(Cow<'a, str>, Cow<'a, str>, Origin)> = self.labels.iter().collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        let mut name = String::new();
        for (n, v, o) in order {
            name.clear();
            name.push(o.code() as char);
            name.push_str(n);
            silt_storage::codec::encode_metadata([(name.as_str(), v.as_ref())], out);
        }
    }

    /// The final label set, sorted; empty values stay (Loki reports `{a=""}`).
    pub fn into_pairs(self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self.labels.into_iter().map(|l| (l.0.into_owned(), l.1.into_owned())).collect();
        v.sort();
        v
    }
}

/// The labels a query can observe after the pipeline, when that is a known, small set
/// (a metric query grouped `by` a few labels): parsers then keep only these, and skip
/// the work of building every other label. Stream labels, structured metadata and the
/// error labels are always kept.
#[derive(Debug, Clone, Default)]
pub struct Needed {
    /// Final label names (after `_extracted` renaming) to keep. A handful, so a list:
    /// comparing a few short names beats hashing every key a parser finds.
    names: Vec<String>,
    /// The same names as a parser may find them (also without `_extracted`), to drop
    /// the others before anything is copied.
    raw: Vec<String>,
    /// `lengths[n]`: some name in `names` or `raw` is `n` bytes long.
    lengths: Vec<bool>,
}

impl Needed {
    pub fn new<'n>(names: impl IntoIterator<Item = &'n str>) -> Needed {
        let mut n = Needed::default();
        let add = |list: &mut Vec<String>, name: &str| {
            if !list.iter().any(|x| x == name) {
                list.push(name.to_string());
            }
        };
        for name in names.into_iter().chain([ERROR_LABEL, ERROR_DETAILS_LABEL]) {
            add(&mut n.names, name);
            add(&mut n.raw, name);
            if let Some(base) = name.strip_suffix("_extracted") {
                add(&mut n.raw, base);
            }
        }
        // A sanitised key may still gain `_extracted` on a clash: its base counts too.
        for name in n.raw.iter().chain(&n.names) {
            if n.lengths.len() <= name.len() {
                n.lengths.resize(name.len() + 1, false);
            }
            n.lengths[name.len()] = true;
        }
        n
    }

    fn wants(&self, name: &str) -> bool {
        self.names.iter().any(|x| x == name)
    }

    /// Whether a parser's key may become a wanted label. Keys that sanitising changes
    /// are passed on, to be judged by their final name.
    #[inline]
    fn may_want(&self, raw_name: &str) -> bool {
        // This runs for every key of every parsed line: most keys have a length no wanted
        // name has (nor one more, for a leading digit), and are answered here, inline.
        let n = raw_name.len();
        let fits = |len: usize| self.lengths.get(len).copied().unwrap_or(false);
        if !fits(n) && !fits(n + 1) && raw_name.is_ascii() {
            return false;
        }
        self.may_want_slow(raw_name)
    }

    fn may_want_slow(&self, raw_name: &str) -> bool {
        let n = raw_name.len();
        let fits = |len: usize| self.lengths.get(len).copied().unwrap_or(false);
        if fits(n) && self.raw.iter().any(|x| x == raw_name) {
            return true;
        }
        // Sanitising turns each character into one byte (and puts `_` before a leading
        // digit): an ASCII key of a length no wanted name has cannot become one.
        if raw_name.is_ascii() && !fits(n) && !(raw_name.starts_with(|c: char| c.is_ascii_digit()) && fits(n + 1)) {
            return false;
        }
        !is_valid_label_name(raw_name)
    }
}

/// Loki's label name sanitising: characters outside `[a-zA-Z0-9_]` become `_`, and a
/// leading digit gets a `_` in front.
pub fn sanitize(name: &str) -> Cow<'_, str> {
    if is_valid_label_name(name) {
        return Cow::Borrowed(name);
    }
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    Cow::Owned(out)
}

enum Step {
    Line(LineFilterChain),
    Json(Vec<(String, Vec<PathPart>)>),
    Logfmt { strict: bool, keep_empty: bool, params: Vec<(String, String)> },
    Regexp(Regex),
    Pattern(Pattern),
    Unpack,
    LabelFilter(LabelFilter),
    Drop(Vec<NamedMatcher>),
    Keep(Vec<NamedMatcher>),
    Decolorize(Regex),
    LineFormat(template::LineTemplate),
    LabelFormat(Vec<(String, LabelFmtStep)>),
}

enum LabelFmtStep {
    Rename(String),
    Template(template::LineTemplate),
}

/// One element of a `json` extraction path: `a.b[0]["c d"]`.
#[derive(Debug, Clone, PartialEq)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn parse_path(expr: &str) -> Result<Vec<PathPart>, QueryError> {
    let bad = || QueryError::BadRequest(format!("invalid json extraction expression {expr:?}"));
    let mut out = Vec::new();
    let mut rest = expr;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let inner = r[..end].trim();
            if let Some(q) = inner.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                out.push(PathPart::Key(q.to_string()));
            } else {
                out.push(PathPart::Index(inner.parse().map_err(|_| bad())?));
            }
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            out.push(PathPart::Key(r[..end].to_string()));
            rest = &r[end..];
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// A compiled pipeline, built once per query.
pub struct Pipeline {
    steps: Vec<Step>,
    /// Labels to keep from parsers, when only some can be observed (see [`Needed`]).
    needed: Option<Needed>,
}

const ANSI: &str = r"[\x1b\x{9b}][\[\]()#;?]*(?:(?:(?:[a-zA-Z\d]*(?:;[a-zA-Z\d]*)*)?\x07)|(?:(?:\d{1,4}(?:;\d{0,4})*)?[\dA-PRZcf-ntqry=><~]))";

/// The ANSI escape regex, compiled once per process.
fn ansi_regex() -> Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(ANSI).expect("valid ANSI regex")).clone()
}

impl Pipeline {
    pub fn compile(stages: &[Stage]) -> Result<Pipeline, QueryError> {
        let mut steps = Vec::new();
        for stage in hoist_line_filters(stages) {
            steps.push(match stage {
                Stage::LineFilter(f) => Step::Line(LineFilterChain::compile(std::iter::once(f))?),
                Stage::Json(params) => Step::Json(params.iter().map(|p| Ok((p.name.clone(), parse_path(&p.expr)?))).collect::<Result<_, QueryError>>()?),
                Stage::Logfmt { strict, keep_empty, params } => Step::Logfmt {
                    strict: *strict,
                    keep_empty: *keep_empty,
                    params: params.iter().map(|p| (p.name.clone(), p.expr.clone())).collect(),
                },
                Stage::Regexp(re) => Step::Regexp(Regex::new(re).map_err(|e| QueryError::BadRequest(e.to_string()))?),
                Stage::Pattern(p) => Step::Pattern(Pattern::parse_named(p).map_err(|e| QueryError::BadRequest(e.to_string()))?),
                Stage::Unpack => Step::Unpack,
                Stage::LabelFilter(f) => {
                    check_ip_patterns(f)?;
                    Step::LabelFilter(f.clone())
                }
                Stage::Drop(n) => Step::Drop(n.clone()),
                Stage::Keep(n) => Step::Keep(n.clone()),
                Stage::Decolorize => Step::Decolorize(ansi_regex()),
                Stage::LineFormat(t) => Step::LineFormat(template::LineTemplate::compile(t).map_err(QueryError::BadRequest)?),
                Stage::LabelFormat(fmts) => Step::LabelFormat(
                    check_label_formats(fmts)?
                        .iter()
                        .map(|f| match f {
                            crate::ast::LabelFmt::Rename { dst, src } => Ok((dst.clone(), LabelFmtStep::Rename(src.clone()))),
                            crate::ast::LabelFmt::Template { dst, template } => {
                                Ok((dst.clone(), LabelFmtStep::Template(template::LineTemplate::compile(template).map_err(QueryError::BadRequest)?)))
                            }
                        })
                        .collect::<Result<_, QueryError>>()?,
                ),
            });
        }
        Ok(Pipeline { steps, needed: None })
    }

    /// The same pipeline with parsers keeping only the `needed` labels. The caller
    /// vouches that nothing else is observed: the stages after the parsers look only at
    /// those labels (no templates, no `keep`/`drop`), and an entry with an error is
    /// re-run through the full pipeline if its other labels are reported.
    pub fn projected(mut self, needed: Needed) -> Pipeline {
        self.needed = Some(needed);
        self
    }

    /// Runs the pipeline on one entry (`ts` in Unix ns). `None` when a stage filtered it
    /// out. The line is borrowed until a stage rewrites it.
    pub fn process<'a>(&self, line: impl Into<Cow<'a, str>>, labels: EntryLabels<'a>, ts: i64) -> Option<(Cow<'a, str>, EntryLabels<'a>)> {
        self.run(line.into(), labels, ts, None)
    }

    /// [`Self::process`] for an entry whose `| json` result is known: `fields` are the
    /// values, of the keys its line has among those the parser keeps (the [`Needed`]
    /// names), of an exact row of compaction's field columns (see
    /// [`silt_storage::fields`]). Only for a pipeline [`Self::json_fields`] accepts; the
    /// line is not looked at and may be empty.
    pub fn process_fields<'a>(&self, line: &'a str, labels: EntryLabels<'a>, ts: i64, fields: &[(&'a str, &'a str)]) -> Option<(Cow<'a, str>, EntryLabels<'a>)> {
        self.run(Cow::Borrowed(line), labels, ts, Some(fields))
    }

    /// The JSON keys to read from field columns instead of parsing lines, when this
    /// projected pipeline looks at nothing else: a `json` stage without parameters, then
    /// label filters only.
    pub fn json_fields(&self) -> Option<Vec<String>> {
        let needed = self.needed.as_ref()?;
        let (first, rest) = self.steps.split_first()?;
        let plain_json = matches!(first, Step::Json(params) if params.is_empty());
        (plain_json && rest.iter().all(|s| matches!(s, Step::LabelFilter(_)))).then(|| needed.raw.clone())
    }

    fn run<'a>(&self, mut line: Cow<'a, str>, mut labels: EntryLabels<'a>, ts: i64, fields: Option<&[(&'a str, &'a str)]>) -> Option<(Cow<'a, str>, EntryLabels<'a>)> {
        let wanted = self.needed.as_ref();
        let may_want = |k: &str| wanted.is_none_or(|w| w.may_want(k));
        for step in &self.steps {
            match step {
                Step::Line(f) => {
                    if !f.matches(line.as_bytes()) {
                        return None;
                    }
                }
                Step::Json(params) if params.is_empty() && fields.is_some() => {
                    // Exact rows have valid, distinct names none of which ends in
                    // `_extracted`: the order they are set in does not matter.
                    for &(k, v) in fields.unwrap_or_default() {
                        labels.set_parsed_borrowed(k, v, wanted);
                    }
                }
                Step::Json(params) if params.is_empty() => {
                    // Kept aside until the whole line parsed: a malformed line gets the
                    // error and none of its labels.
                    Found::with(|found| {
                        let r = silt_storage::json::flatten(&line, &mut |k, v| {
                            if may_want(k) {
                                found.push(k, v)
                            }
                        });
                        match r {
                            Ok(()) => {
                                for (k, v) in found.pairs() {
                                    labels.set_parsed(k, v, wanted);
                                }
                            }
                            Err(e) => labels.set_error("JSONParserErr", Some(&e)),
                        }
                    });
                }
                Step::Json(params) => {
                    let mut found: Vec<(String, Option<String>)> = Vec::new();
                    // Extraction paths address nested values and arrays directly.
                    match json_lookup(&line, params, &mut found) {
                        Ok(()) => {
                            for (k, v) in found {
                                match v {
                                    Some(v) => labels.set_parsed(&k, &v, wanted),
                                    // A path with no value gives "", unless the label exists.
                                    None if labels.get(&k).is_none() => labels.set_parsed(&k, "", wanted),
                                    None => {}
                                }
                            }
                        }
                        Err(e) => labels.set_error("JSONParserErr", Some(&e)),
                    }
                }
                Step::Logfmt { strict, keep_empty, params } => {
                    Found::with(|found| {
                        let r = logfmt::parse(&line, *strict, &mut |k, v| {
                            if !params.is_empty() || may_want(k) {
                                found.push(k, v)
                            }
                        });
                        if let Err(e) = r {
                            labels.set_error("LogfmtParserErr", Some(&e));
                        }
                        if params.is_empty() {
                            for (k, v) in found.pairs() {
                                if *keep_empty || !v.is_empty() {
                                    labels.set_parsed(k, v, wanted);
                                }
                            }
                        } else {
                            // With extraction params every named label exists, "" when absent.
                            for (name, key) in params {
                                let v = found.pairs().iter().rev().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str());
                                labels.set_parsed(name, v, wanted);
                            }
                        }
                    });
                }
                Step::Regexp(re) => {
                    if let Some(c) = re.captures(&line) {
                        for name in re.capture_names().flatten() {
                            labels.set_parsed(name, c.name(name).map_or("", |m| m.as_str()), wanted);
                        }
                    }
                }
                Step::Pattern(p) => {
                    for (name, value) in match_pattern(p, &line) {
                        labels.set_parsed(name, value, wanted);
                    }
                }
                Step::Unpack => match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line) {
                    // Only top-level strings count, and only a packed line (one with
                    // `_entry`) is unpacked: otherwise Loki leaves the entry as it is.
                    Ok(obj) => {
                        if let Some(serde_json::Value::String(entry)) = obj.get("_entry") {
                            for (k, v) in &obj {
                                if let (false, serde_json::Value::String(v)) = (k == "_entry", v) {
                                    labels.set_parsed(k, v, wanted);
                                }
                            }
                            line = Cow::Owned(entry.clone());
                        }
                    }
                    Err(e) => labels.set_error("JSONParserErr", Some(&e.to_string())),
                },
                Step::LabelFilter(f) => {
                    let (keep, err) = eval_label_filter(f, &labels);
                    if !keep {
                        return None;
                    }
                    if let Some(details) = err {
                        labels.set_error("LabelFilterErr", Some(&details));
                    }
                }
                Step::Drop(names) => labels.retain(|n, v| !names.iter().any(|m| named_matches(m, n, v))),
                Step::Keep(names) => {
                    labels.retain(|n, v| n == ERROR_LABEL || n == ERROR_DETAILS_LABEL || names.iter().any(|m| named_matches(m, n, v)))
                }
                Step::Decolorize(re) => {
                    if let Cow::Owned(s) = re.replace_all(&line, "") {
                        line = Cow::Owned(s);
                    }
                }
                Step::LineFormat(t) => match t.render(labels.iter(), &line, ts) {
                    Ok(l) => line = Cow::Owned(l),
                    Err(e) => labels.set_error("TemplateFormatErr", Some(&e)),
                },
                Step::LabelFormat(fmts) => {
                    // As in Loki, every template of one stage sees the labels as they were
                    // when the stage's first template ran, not what earlier ones set.
                    let mut data: Option<Vec<(String, String)>> = None;
                    for (dst, f) in fmts {
                        match f {
                            LabelFmtStep::Rename(src) => {
                                // Set, then delete the source: `a=a` removes `a`, as in Loki.
                                if let Some(v) = labels.get(src).map(str::to_string) {
                                    labels.set(dst, &v, Origin::Parsed);
                                    labels.retain(|n, _| n != src);
                                }
                            }
                            LabelFmtStep::Template(t) => {
                                let data = data.get_or_insert_with(|| labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
                                match t.render(data.iter().map(|(k, v)| (k.as_str(), v.as_str())), &line, ts) {
                                    Ok(v) => labels.set(dst, &v, Origin::Parsed),
                                    Err(e) => labels.set_error("TemplateFormatErr", Some(&e)),
                                }
                            }
                        }
                    }
                }
            }
        }
        Some((line, labels))
    }
}

/// An `ip("...")` label filter with a pattern that does not parse fails the query (400),
/// as in Loki.
fn check_ip_patterns(f: &LabelFilter) -> Result<(), QueryError> {
    match f {
        LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
            check_ip_patterns(a)?;
            check_ip_patterns(b)
        }
        LabelFilter::Ip { pattern, .. } => crate::ip::IpPattern::parse(pattern).map(|_| ()).map_err(QueryError::BadRequest),
        _ => Ok(()),
    }
}

/// Loki's rules for one `label_format` stage: `__error__` cannot be set, and a label may
/// be named once.
fn check_label_formats(fmts: &[crate::ast::LabelFmt]) -> Result<&[crate::ast::LabelFmt], QueryError> {
    let mut seen: Vec<&str> = Vec::new();
    for f in fmts {
        let dst = match f {
            crate::ast::LabelFmt::Rename { dst, .. } | crate::ast::LabelFmt::Template { dst, .. } => dst.as_str(),
        };
        if dst == ERROR_LABEL {
            return Err(QueryError::BadRequest(format!("{ERROR_LABEL} cannot be formatted")));
        }
        if seen.contains(&dst) {
            return Err(QueryError::BadRequest(format!("multiple label name '{dst}' not allowed in a single format operation")));
        }
        seen.push(dst);
    }
    Ok(fmts)
}

/// The key/value pairs a parser found in one line, kept aside until the line is done.
/// One per thread, reused from line to line: the strings keep their capacity, so a
/// parsed line costs no allocation here.
#[derive(Default)]
struct Found {
    pairs: Vec<(String, String)>,
    n: usize,
}

impl Found {
    /// Runs `f` with the thread's (emptied) scratch list.
    fn with<R>(f: impl FnOnce(&mut Found) -> R) -> R {
        thread_local! {
            static FOUND: std::cell::RefCell<Found> = std::cell::RefCell::new(Found::default());
        }
        FOUND.with(|cell| match cell.try_borrow_mut() {
            Ok(mut found) => {
                found.n = 0;
                let r = f(&mut found);
                // What one huge line needed is not kept for the thread's lifetime.
                if found.pairs.len() > 256 || found.pairs.iter().any(|(k, v)| k.capacity() + v.capacity() > 1 << 16) {
                    found.pairs = Vec::new();
                }
                r
            }
            // Not reentered today; a fresh list keeps it correct if it ever is.
            Err(_) => f(&mut Found::default()),
        })
    }

    fn push(&mut self, k: &str, v: &str) {
        if self.n == self.pairs.len() {
            self.pairs.push(Default::default());
        }
        let (pk, pv) = &mut self.pairs[self.n];
        pk.clear();
        pk.push_str(k);
        pv.clear();
        pv.push_str(v);
        self.n += 1;
    }

    fn pairs(&self) -> &[(String, String)] {
        &self.pairs[..self.n]
    }
}

fn named_matches(m: &NamedMatcher, name: &str, value: &str) -> bool {
    match m {
        NamedMatcher::Name(n) => n == name,
        NamedMatcher::Matcher(mt) => mt.name == name && mt.matches(value),
    }
}

/// Loki moves each line filter ahead of the stages before it, up to the nearest
/// `line_format`, `unpack` or label filter (stages that change the line or may drop on
/// labels): so `| decolorize |= "x"` matches the coloured line.
fn hoist_line_filters(stages: &[Stage]) -> Vec<&Stage> {
    let mut out: Vec<&Stage> = Vec::with_capacity(stages.len());
    for s in stages {
        if let Stage::LineFilter(_) = s {
            let mut at = out.len();
            while at > 0 {
                match out[at - 1] {
                    Stage::LineFilter(_) | Stage::LineFormat(_) | Stage::Unpack | Stage::LabelFilter(_) => break,
                    _ => at -= 1,
                }
            }
            out.insert(at, s);
        } else {
            out.push(s);
        }
    }
    out
}

/// Loki's pattern parser: a leading literal must start the line; then each capture takes
/// the text up to the first occurrence of the literal after it. A literal that is not found
/// ends matching with the capture taking the rest; later captures stay unset.
fn match_pattern<'a, 'p>(p: &'p Pattern, line: &'a str) -> Vec<(&'p str, &'a str)> {
    let mut out = Vec::new();
    if line.is_empty() {
        return out;
    }
    let mut rest = line;
    let mut nodes = p.nodes.iter().peekable();
    if let Some(Node::Literal(l)) = nodes.peek() {
        match rest.strip_prefix(l.as_str()) {
            Some(r) => rest = r,
            None => return out,
        }
        nodes.next();
    }
    while let Some(n) = nodes.next() {
        let Node::Capture(name) = n else { continue };
        let (value, done) = match nodes.next() {
            Some(Node::Literal(l)) => match rest.find(l.as_str()) {
                Some(pos) => {
                    let v = &rest[..pos];
                    rest = &rest[pos + l.len()..];
                    (v, false)
                }
                None => (std::mem::take(&mut rest), true),
            },
            _ => (std::mem::take(&mut rest), true),
        };
        if let Some(name) = name {
            out.push((name.as_str(), value));
        }
        if done {
            break;
        }
    }
    out
}

/// Evaluates a label filter as Loki does: a label the filter needs that is missing drops
/// the entry; a value that does not convert counts as a match and reports its error
/// (Loki keeps such an entry, marked `__error__="LabelFilterErr"`). `and` runs both sides,
/// `or` stops at a match.
fn eval_label_filter(f: &LabelFilter, labels: &EntryLabels) -> (bool, Option<String>) {
    let typed = |name: &str, conv: &dyn Fn(&str) -> Result<f64, String>, op: CmpOp, want: f64| match labels.get(name) {
        None => (false, None),
        Some(v) => match conv(v) {
            Ok(x) => (compare(op, x, want), None),
            Err(e) => (true, Some(e)),
        },
    };
    match f {
        LabelFilter::And(a, b) => {
            let (x, ex) = eval_label_filter(a, labels);
            let (y, ey) = eval_label_filter(b, labels);
            (x && y, ex.or(ey))
        }
        LabelFilter::Or(a, b) => {
            let (x, ex) = eval_label_filter(a, labels);
            if x {
                return (true, ex);
            }
            eval_label_filter(b, labels)
        }
        LabelFilter::Str(m) => (matcher_on(m, labels), None),
        // As in Loki, an entry that already has an error passes (only string matchers
        // filter those), and the value is scanned for an address like a line is.
        LabelFilter::Ip { .. } if labels.has_error() => (true, None),
        LabelFilter::Ip { name, negated, pattern } => match labels.get(name) {
            None => (false, None),
            Some(v) => (crate::ip::IpPattern::parse(pattern).is_ok_and(|p| p.matches_line(v)) != *negated, None),
        },
        LabelFilter::Number { name, op, value } => typed(
            name,
            &crate::format::parse_float_go,
            *op,
            *value,
        ),
        LabelFilter::Duration { name, op, value } => typed(
            name,
            &|v| crate::duration::parse_go_duration(v).map(|d| d as f64).ok_or_else(|| format!("time: invalid duration {v:?}")),
            *op,
            *value as f64,
        ),
        LabelFilter::Bytes { name, op, value } => typed(
            name,
            &|v| crate::format::parse_bytes_go(v).map(|b| b as f64),
            *op,
            *value as f64,
        ),
    }
}

/// The labels that decide whether an entry survives `stages`, when a pipeline projected
/// to them (see [`Pipeline::projected`]) decides it as the full one would: no stage reads
/// or rewrites labels wholesale (templates, `drop`, `keep`, `unpack`). `None` too when
/// there is no label filter, as the projection would then decide nothing.
pub fn survival_labels(stages: &[Stage]) -> Option<Needed> {
    let mut names = Vec::new();
    let filters = filtered_labels(stages, &mut names)?;
    (filters > 0).then(|| Needed::new(names))
}

/// Adds to `out` the labels the label filters among `stages` read, and returns how many
/// filters there are; `None` when a stage reads or rewrites labels wholesale (templates,
/// `drop`, `keep`, `unpack`), so that no short list of labels decides the outcome.
pub(crate) fn filtered_labels<'s>(stages: &'s [Stage], out: &mut Vec<&'s str>) -> Option<usize> {
    let mut filters = 0;
    for stage in stages {
        match stage {
            Stage::LabelFilter(f) => {
                filters += 1;
                filter_names(f, out);
            }
            Stage::LineFormat(_) | Stage::LabelFormat(_) | Stage::Drop(_) | Stage::Keep(_) | Stage::Unpack => return None,
            _ => {}
        }
    }
    Some(filters)
}

/// The label names a label filter reads.
pub(crate) fn filter_names<'f>(f: &'f LabelFilter, out: &mut Vec<&'f str>) {
    match f {
        LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
            filter_names(a, out);
            filter_names(b, out);
        }
        LabelFilter::Str(m) => out.push(&m.name),
        LabelFilter::Ip { name, .. } | LabelFilter::Number { name, .. } | LabelFilter::Duration { name, .. } | LabelFilter::Bytes { name, .. } => out.push(name),
    }
}

/// Whether a label filter keeps an entry (post-unwrap filters in metric queries).
pub(crate) fn label_filter_keeps(f: &LabelFilter, labels: &EntryLabels) -> bool {
    eval_label_filter(f, labels).0
}

fn matcher_on(m: &Matcher, labels: &EntryLabels) -> bool {
    m.matches(labels.get(&m.name).unwrap_or(""))
}

fn compare(op: CmpOp, a: f64, b: f64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Neq => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Gte => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Lte => a <= b,
    }
}

/// `json a="b.c", d="e[0]"`: looks up each path. Objects and arrays found at a path are
/// returned as their JSON text, `null` as "", a missing path as `None`.
fn json_lookup(line: &str, params: &[(String, Vec<PathPart>)], out: &mut Vec<(String, Option<String>)>) -> Result<(), String> {
    if line.is_empty() {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    for (name, path) in params {
        let mut cur = Some(&v);
        for part in path {
            cur = match (cur, part) {
                (Some(serde_json::Value::Object(o)), PathPart::Key(k)) => o.get(k),
                (Some(serde_json::Value::Array(a)), PathPart::Index(i)) => a.get(*i),
                _ => None,
            };
        }
        let value = match cur {
            None => None,
            Some(serde_json::Value::Null) => Some(String::new()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        out.push((name.clone(), value));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
