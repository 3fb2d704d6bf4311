//! The LogQL syntax tree. `Display` prints Loki's canonical form (what `format_query`
//! returns): the rules are Loki's `String()` methods, including their quirks (ranges
//! printed after the whole pipeline, `offset 5m0s`, `( a , b )` for label filter `and`).

use std::fmt::{self, Write as _};

use silt_storage::{write_go_quoted, Matcher};

use crate::format::{float_go, float_plain, go_duration, human_bytes, prom_duration};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// `{selector} stage stage ...`
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    LineFilter(LineFilter),
    /// `| json`, or `| json a="x.y", b="list[0]"`.
    Json(Vec<Extraction>),
    /// `| logfmt --strict --keep-empty a="x"`
    Logfmt { strict: bool, keep_empty: bool, params: Vec<Extraction> },
    Regexp(String),
    Pattern(String),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(String),
    LabelFormat(Vec<LabelFmt>),
    Drop(Vec<NamedMatcher>),
    Keep(Vec<NamedMatcher>),
    Decolorize,
}

/// One extraction of a `json` or `logfmt` stage: label `name` from `expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub name: String,
    pub expr: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LabelFmt {
    /// `dst=src`
    Rename { dst: String, src: String },
    /// `dst="{{ template }}"`
    Template { dst: String, template: String },
}

/// A `drop`/`keep` argument: a label name, or a matcher on it.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedMatcher {
    Name(String),
    Matcher(Matcher),
}

/// `|= "a"`, `!~ "re"`, `|> "<_> pattern"`, `|= ip("10.0.0.0/8")`; positive operators may
/// have `or` alternatives (negative ones are split into separate filters, as Loki does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineFilter {
    pub op: LineFilterOp,
    /// The first value and any `or` alternatives; at least one.
    pub values: Vec<LineFilterValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LineFilterValue {
    Str(String),
    Ip(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    Contains,
    NotContains,
    Regex,
    NotRegex,
    Pattern,
    NotPattern,
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        }
    }

    pub fn is_negated(self) -> bool {
        matches!(self, LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Neq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }
}

/// A label filter expression (`| status >= 400 and level="error"`).
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// Written `and`, `,` or with a space between the two sides.
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name = "v"`, `!=`, `=~`, `!~`.
    Str(Matcher),
    /// `name = ip("...")` / `name != ip("...")`.
    Ip { name: String, negated: bool, pattern: String },
    Number { name: String, op: CmpOp, value: f64 },
    /// Nanoseconds.
    Duration { name: String, op: CmpOp, value: i64 },
    Bytes { name: String, op: CmpOp, value: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConv {
    None,
    Bytes,
    Duration,
    DurationSeconds,
}

/// `| unwrap [conv(]label[)] | post-filter ...`
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    pub conv: UnwrapConv,
    pub label: String,
    pub post_filters: Vec<LabelFilter>,
}

/// The log part of a range aggregation: a log query, an optional unwrap, a range and an
/// optional offset (nanoseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    pub range: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    StdvarOverTime,
    StddevOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
    AbsentOverTime,
}

pub const RANGE_OPS: &[(&str, RangeOp)] = &[
    ("count_over_time", RangeOp::CountOverTime),
    ("rate", RangeOp::Rate),
    ("rate_counter", RangeOp::RateCounter),
    ("bytes_over_time", RangeOp::BytesOverTime),
    ("bytes_rate", RangeOp::BytesRate),
    ("avg_over_time", RangeOp::AvgOverTime),
    ("sum_over_time", RangeOp::SumOverTime),
    ("min_over_time", RangeOp::MinOverTime),
    ("max_over_time", RangeOp::MaxOverTime),
    ("stdvar_over_time", RangeOp::StdvarOverTime),
    ("stddev_over_time", RangeOp::StddevOverTime),
    ("quantile_over_time", RangeOp::QuantileOverTime),
    ("first_over_time", RangeOp::FirstOverTime),
    ("last_over_time", RangeOp::LastOverTime),
    ("absent_over_time", RangeOp::AbsentOverTime),
];

impl RangeOp {
    pub fn as_str(self) -> &'static str {
        RANGE_OPS.iter().find(|(_, o)| *o == self).map(|(n, _)| *n).expect("every op is listed")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
    ApproxTopk,
}

pub const VECTOR_OPS: &[(&str, VectorOp)] = &[
    ("sum", VectorOp::Sum),
    ("avg", VectorOp::Avg),
    ("min", VectorOp::Min),
    ("max", VectorOp::Max),
    ("count", VectorOp::Count),
    ("stddev", VectorOp::Stddev),
    ("stdvar", VectorOp::Stdvar),
    ("topk", VectorOp::Topk),
    ("bottomk", VectorOp::Bottomk),
    ("sort", VectorOp::Sort),
    ("sort_desc", VectorOp::SortDesc),
    ("approx_topk", VectorOp::ApproxTopk),
];

impl VectorOp {
    pub fn as_str(self) -> &'static str {
        VECTOR_OPS.iter().find(|(_, o)| *o == self).map(|(n, _)| *n).expect("every op is listed")
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Unless,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Unless => "unless",
            BinOp::Eq => "==",
            BinOp::Neq => "!=",
            BinOp::Gt => ">",
            BinOp::Gte => ">=",
            BinOp::Lt => "<",
            BinOp::Lte => "<=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
        }
    }

    /// Loki's precedence, 1 (loosest) to 6.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }

    pub fn is_set_op(self) -> bool {
        matches!(self, BinOp::Or | BinOp::And | BinOp::Unless)
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }
}

/// `on (a) group_left (b)` / `ignoring (a) group_right`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorMatching {
    pub on: bool,
    pub labels: Vec<String>,
    pub group: Option<GroupModifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupModifier {
    pub left: bool,
    pub include: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    RangeAgg { op: RangeOp, param: Option<f64>, range: Box<LogRange>, grouping: Option<Grouping> },
    VectorAgg { op: VectorOp, param: Option<i64>, inner: Box<MetricExpr>, grouping: Option<Grouping> },
    Binary { op: BinOp, lhs: Box<MetricExpr>, rhs: Box<MetricExpr>, return_bool: bool, matching: Option<VectorMatching> },
    Literal(f64),
    Vector(f64),
    LabelReplace { inner: Box<MetricExpr>, dst: String, replacement: String, src: String, regex: String },
}

// ------------------------------------------------------------------------------------
// Canonical printing
// ------------------------------------------------------------------------------------

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

fn write_selector(f: &mut fmt::Formatter<'_>, ms: &[Matcher]) -> fmt::Result {
    f.write_char('{')?;
    for (i, m) in ms.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{m}")?;
    }
    f.write_char('}')
}

impl fmt::Display for LogExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_selector(f, &self.selector)?;
        for s in &self.pipeline {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

fn write_extractions(f: &mut fmt::Formatter<'_>, params: &[Extraction]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        write!(f, "{}=", p.name)?;
        write_go_quoted(f, &p.expr)?;
    }
    Ok(())
}

/// `| keyword "string"`, the form of `regexp`, `pattern` and `line_format`.
fn keyword_string(f: &mut fmt::Formatter<'_>, keyword: &str, s: &str) -> fmt::Result {
    write!(f, "| {keyword} ")?;
    write_go_quoted(f, s)
}

fn write_named(f: &mut fmt::Formatter<'_>, ns: &[NamedMatcher]) -> fmt::Result {
    for (i, n) in ns.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        match n {
            NamedMatcher::Name(n) => f.write_str(n)?,
            NamedMatcher::Matcher(m) => write!(f, "{m}")?,
        }
    }
    Ok(())
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => lf.fmt(f),
            Stage::Json(params) => {
                f.write_str("| json")?;
                if !params.is_empty() {
                    f.write_char(' ')?;
                    write_extractions(f, params)?;
                }
                Ok(())
            }
            Stage::Logfmt { strict, keep_empty, params } => {
                f.write_str("| logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                if !params.is_empty() {
                    f.write_char(' ')?;
                    write_extractions(f, params)?;
                }
                Ok(())
            }
            Stage::Regexp(re) => keyword_string(f, "regexp", re),
            Stage::Pattern(p) => keyword_string(f, "pattern", p),
            Stage::Unpack => f.write_str("| unpack"),
            Stage::LabelFilter(lf) => write!(f, "| {lf}"),
            Stage::LineFormat(t) => keyword_string(f, "line_format", t),
            Stage::LabelFormat(fmts) => {
                f.write_str("| label_format ")?;
                for (i, l) in fmts.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    match l {
                        LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}")?,
                        LabelFmt::Template { dst, template } => {
                            write!(f, "{dst}=")?;
                            write_go_quoted(f, template)?;
                        }
                    }
                }
                Ok(())
            }
            Stage::Drop(ns) => {
                f.write_str("| drop ")?;
                write_named(f, ns)
            }
            Stage::Keep(ns) => {
                f.write_str("| keep ")?;
                write_named(f, ns)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

impl fmt::Display for LineFilterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineFilterValue::Str(s) => write_go_quoted(f, s),
            LineFilterValue::Ip(s) => {
                f.write_str("ip(")?;
                write_go_quoted(f, s)?;
                f.write_char(')')
            }
        }
    }
}

impl fmt::Display for LineFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        for (i, v) in self.values.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " or " })?;
            v.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(a, b) => write!(f, "( {a} , {b} )"),
            LabelFilter::Or(a, b) => write!(f, "( {a} or {b} )"),
            LabelFilter::Str(m) => write!(f, "{m}"),
            LabelFilter::Ip { name, negated, pattern } => {
                write!(f, "{name}{}ip(", if *negated { "!=" } else { "=" })?;
                write_go_quoted(f, pattern)?;
                f.write_char(')')
            }
            LabelFilter::Number { name, op, value } => write!(f, "{name}{}{}", op.as_str(), float_plain(*value)),
            LabelFilter::Duration { name, op, value } => write!(f, "{name}{}{}", op.as_str(), go_duration(*value)),
            LabelFilter::Bytes { name, op, value } => write!(f, "{name}{}{}", op.as_str(), human_bytes(*value)),
        }
    }
}

impl fmt::Display for Unwrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.conv {
            UnwrapConv::None => write!(f, " | unwrap {}", self.label)?,
            UnwrapConv::Bytes => write!(f, " | unwrap bytes({})", self.label)?,
            UnwrapConv::Duration => write!(f, " | unwrap duration({})", self.label)?,
            UnwrapConv::DurationSeconds => write!(f, " | unwrap duration_seconds({})", self.label)?,
        }
        for p in &self.post_filters {
            write!(f, " | {p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LogRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            u.fmt(f)?;
        }
        write!(f, "[{}]", prom_duration(self.range))?;
        if self.offset != 0 {
            write!(f, " offset {}", go_duration(self.offset))?;
        }
        Ok(())
    }
}

fn write_labels(f: &mut fmt::Formatter<'_>, labels: &[String]) -> fmt::Result {
    f.write_char('(')?;
    f.write_str(&labels.join(","))?;
    f.write_char(')')
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.without { " without " } else { " by " })?;
        write_labels(f, &self.labels)
    }
}

impl fmt::Display for MetricExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::RangeAgg { op, param, range, grouping } => {
                write!(f, "{}(", op.as_str())?;
                if let Some(p) = param {
                    write!(f, "{},", float_plain(*p))?;
                }
                write!(f, "{range})")?;
                if let Some(g) = grouping {
                    g.fmt(f)?;
                }
                Ok(())
            }
            MetricExpr::VectorAgg { op, param, inner, grouping } => {
                f.write_str(op.as_str())?;
                if let Some(g) = grouping {
                    // `by ()` is the same as no grouping and is not printed; `without ()` is.
                    if g.without || !g.labels.is_empty() {
                        g.fmt(f)?;
                    }
                }
                f.write_char('(')?;
                if let Some(p) = param {
                    write!(f, "{p},")?;
                }
                write!(f, "{inner})")
            }
            MetricExpr::Binary { op, lhs, rhs, return_bool, matching } => {
                write!(f, "({lhs} {}", op.as_str())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    if m.on || !m.labels.is_empty() {
                        f.write_str(if m.on { " on " } else { " ignoring " })?;
                        write_labels(f, &m.labels)?;
                        f.write_char(' ')?;
                        if let Some(g) = &m.group {
                            f.write_str(if g.left { "group_left" } else { "group_right" })?;
                            if !g.include.is_empty() {
                                f.write_char(' ')?;
                                write_labels(f, &g.include)?;
                            }
                        }
                    }
                }
                write!(f, " {rhs})")
            }
            MetricExpr::Literal(v) => f.write_str(&float_go(*v)),
            MetricExpr::Vector(v) => write!(f, "vector({v:.6})"),
            MetricExpr::LabelReplace { inner, dst, replacement, src, regex } => {
                write!(f, "label_replace({inner},")?;
                for (i, s) in [dst, replacement, src, regex].into_iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_go_quoted(f, s)?;
                }
                f.write_char(')')
            }
        }
    }
}

impl MetricExpr {
    /// The log selectors this expression reads, left to right.
    pub fn log_ranges(&self) -> Vec<&LogRange> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a MetricExpr, out: &mut Vec<&'a LogRange>) {
            match e {
                MetricExpr::RangeAgg { range, .. } => out.push(range),
                MetricExpr::VectorAgg { inner, .. } | MetricExpr::LabelReplace { inner, .. } => walk(inner, out),
                MetricExpr::Binary { lhs, rhs, .. } => {
                    walk(lhs, out);
                    walk(rhs, out);
                }
                MetricExpr::Literal(_) | MetricExpr::Vector(_) => {}
            }
        }
        walk(self, &mut out);
        out
    }
}
