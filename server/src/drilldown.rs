//! The endpoints Grafana's Logs Drilldown is built on: `/detected_labels`,
//! `/detected_fields`, `/detected_field/{name}/values` and `/patterns`, with Loki's
//! parameters and shapes. Where Loki estimates (HyperLogLog cardinalities) silt counts
//! exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use silt_query::ast::{Expr, LogExpr, Stage};
use silt_query::pipeline::{EntryLabels, Pipeline};
use silt_query::{Direction, LogQuery};

use crate::admin::go_json;
use crate::auth::Access;
use crate::error::ApiError;
use crate::params::{ApiRequest, Params};
use crate::AppState;

const HOUR_NS: i64 = 3_600_000_000_000;

fn request(state: &AppState, p: Params, headers: &HeaderMap) -> Result<(silt_storage::TenantId, Params, i64, i64), ApiError> {
    let tenant = state.auth.tenant(headers, Access::Read)?;
    let (start, end) = p.range(HOUR_NS)?;
    Ok((tenant, p, start, end))
}

/// `/loki/api/v1/detected_labels`: the stream labels worth browsing, with their
/// cardinality. Labels whose every value is a number or a UUID are left out (but not
/// `cluster`, `namespace`, `instance`, `pod`, nor 0/1 flags), as in Loki.
pub async fn detected_labels(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let (tenant, p, start, end) = request(&state, params, &headers)?;
    let matchers = match p.get("query") {
        Some(sel) => silt_query::parse_selector(sel)?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for name in state.store.label_names(&tenant, &matchers, start, end) {
        let values = state.store.label_values(&tenant, &name, &matchers, start, end);
        if keep_label(&name, &values) {
            out.push(if values.is_empty() { serde_json::json!({"label": name}) } else { serde_json::json!({"label": name, "cardinality": values.len()}) });
        }
    }
    if out.is_empty() {
        return Ok(go_json(StatusCode::OK, &serde_json::json!({})));
    }
    Ok(go_json(StatusCode::OK, &serde_json::json!({"detectedLabels": out})))
}

/// Loki's `shouldRejectLabel`, inverted.
fn keep_label(name: &str, values: &[String]) -> bool {
    if matches!(name, "cluster" | "namespace" | "instance" | "pod") {
        return true;
    }
    if values.is_empty() {
        return false;
    }
    let all_ids = values.iter().all(|v| is_go_float(v) || is_uuid(v));
    if values.len() <= 2 && values.iter().all(|v| v == "0" || v == "1") {
        return true;
    }
    !all_ids
}

/// Go's `strconv.ParseFloat` accepts what Rust's does plus hex floats and `_` separators;
/// close enough for "is this value a number".
fn is_go_float(v: &str) -> bool {
    let t = v.replace('_', "");
    t.parse::<f64>().is_ok() || (t.starts_with("0x") || t.starts_with("0X")) && i64::from_str_radix(&t[2..], 16).is_ok()
}

/// `google/uuid.Parse`: hyphenated, `urn:uuid:`, braced, or 32 hex digits.
fn is_uuid(v: &str) -> bool {
    let v = v.strip_prefix("urn:uuid:").unwrap_or(v);
    let v = v.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(v);
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    match v.len() {
        32 => hex(v),
        36 => {
            let b = v.as_bytes();
            [8, 13, 18, 23].iter().all(|&i| b[i] == b'-') && hex(&v.replace('-', ""))
        }
        _ => false,
    }
}

/// The newest `line_limit` entries of the query, categorized (stream labels, structured
/// metadata, parsed labels apart): what Loki samples for field detection.
async fn sample(state: &AppState, tenant: &silt_storage::TenantId, p: &Params, start: i64, end: i64) -> Result<Vec<silt_query::StreamResult>, ApiError> {
    let expr = match silt_query::parse(p.get("query").unwrap_or(""))? {
        Expr::Log(e) => e,
        Expr::Metric(_) => return Err(ApiError::bad_request("only log selector is supported")),
    };
    let line_limit = match p.get("line_limit") {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => n as usize,
            Ok(_) => return Err(ApiError::bad_request("limit must be a positive value")),
            Err(_) => return Err(ApiError::bad_request(format!("invalid line_limit: cannot parse \"{v}\" as an integer"))),
        },
    };
    let max = state.limits.get(tenant).max_entries_limit_per_query;
    if max > 0 && line_limit > max {
        return Err(ApiError::bad_request(format!("max entries limit per query exceeded, limit > max_entries_limit_per_query ({line_limit} > {max})")));
    }
    let q = LogQuery { expr, start, end, limit: line_limit, direction: Direction::Backward, interval: 0, categorize: true };
    Ok(state.engine.log_query(std::slice::from_ref(tenant), &q).await?)
}

/// The field `limit` (alias `field_limit`), default 1000.
fn field_limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit").or_else(|| p.get("field_limit")) {
        None => Ok(1000),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n as usize),
            Ok(_) => Err(ApiError::bad_request("limit must be a positive value")),
            Err(_) => Err(ApiError::bad_request(format!("invalid limit: cannot parse \"{v}\" as an integer"))),
        },
    }
}

/// Parses lines as Loki's field detection does: `json`, else `logfmt`.
struct FieldParsers {
    json: Pipeline,
    logfmt: Pipeline,
}

impl FieldParsers {
    fn new() -> Result<Self, ApiError> {
        let stage = |q: &str| -> Result<Pipeline, ApiError> {
            let Expr::Log(LogExpr { pipeline, .. }) = silt_query::parse(q)? else { unreachable!("a log query") };
            Pipeline::compile(&pipeline).map_err(ApiError::from)
        };
        Ok(FieldParsers { json: stage(r#"{a="b"} | json"#)?, logfmt: stage(r#"{a="b"} | logfmt"#)? })
    }

    /// The labels the first parser that succeeds extracts from `line`, and its name.
    fn parse(&self, line: &str, stream: &silt_storage::Labels, ts: i64) -> Option<(&'static str, Vec<(String, String)>)> {
        for (name, p) in [("json", &self.json), ("logfmt", &self.logfmt)] {
            let labels = EntryLabels::new(stream.iter(), std::iter::empty());
            if let Some((_, out)) = p.process(line, labels, ts) {
                if out.has_error() {
                    continue;
                }
                let parsed: Vec<(String, String)> = out.into_categorized().into_iter().filter(|(c, _, _)| *c == b'p').map(|(_, n, v)| (n, v)).collect();
                return Some((name, parsed));
            }
        }
        None
    }
}

#[derive(Default)]
struct Field {
    kind: &'static str,
    values: BTreeSet<String>,
    parsers: BTreeSet<&'static str>,
}

/// Loki's `determineType`, first match wins.
fn field_type(v: &str) -> &'static str {
    if v.parse::<i64>().is_ok() {
        "int"
    } else if is_go_float(v) || matches!(v, "Inf" | "+Inf" | "-Inf" | "NaN" | "inf" | "nan") {
        "float"
    } else if matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False") {
        "boolean"
    } else if silt_query::duration::parse_go_duration(v).is_some() {
        "duration"
    } else if silt_query::format::parse_bytes(v).is_some() {
        "bytes"
    } else {
        "string"
    }
}

const INTERNAL: &[&str] = &["__error__", "__error_details__", "__preserve_error__"];

/// Every field of the sampled entries: structured metadata (no parser), the query's own
/// parsed labels, and what json or logfmt finds in the line.
async fn collect_fields(state: &AppState, tenant: &silt_storage::TenantId, p: &Params, start: i64, end: i64, limit: usize) -> Result<BTreeMap<String, Field>, ApiError> {
    let streams = sample(state, tenant, p, start, end).await?;
    let parsers = FieldParsers::new()?;
    let mut fields: BTreeMap<String, Field> = BTreeMap::new();
    let add = |fields: &mut BTreeMap<String, Field>, name: &str, value: &str, parser: Option<&'static str>| {
        if INTERNAL.contains(&name) {
            return;
        }
        if !fields.contains_key(name) && fields.len() >= limit {
            return;
        }
        let f = fields.entry(name.to_string()).or_default();
        f.kind = field_type(value);
        f.values.insert(value.to_string());
        if let Some(p) = parser {
            f.parsers.insert(p);
        }
    };
    for s in &streams {
        for e in &s.entries {
            for (n, v) in &e.metadata {
                add(&mut fields, n, v, None);
            }
            let found = parsers.parse(&e.line, &s.labels, e.ts);
            let parser = found.as_ref().map(|(name, _)| *name);
            for (n, v) in &e.parsed {
                add(&mut fields, n, v, parser);
            }
            if let Some((name, parsed)) = &found {
                for (n, v) in parsed {
                    add(&mut fields, n, v, Some(name));
                }
            }
        }
    }
    Ok(fields)
}

/// `/loki/api/v1/detected_fields`.
pub async fn detected_fields(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let (tenant, p, start, end) = request(&state, params, &headers)?;
    let limit = field_limit(&p)?;
    let fields = collect_fields(&state, &tenant, &p, start, end, limit).await?;
    if fields.is_empty() {
        return Ok(go_json(StatusCode::OK, &serde_json::json!({})));
    }
    let out: Vec<serde_json::Value> = fields
        .iter()
        .map(|(name, f)| {
            let parsers = if f.parsers.is_empty() { serde_json::Value::Null } else { serde_json::json!(f.parsers) };
            serde_json::json!({"label": name, "type": f.kind, "cardinality": f.values.len(), "parsers": parsers})
        })
        .collect();
    Ok(go_json(StatusCode::OK, &serde_json::json!({"fields": out, "limit": limit})))
}

/// `/loki/api/v1/detected_field/{name}/values`.
pub async fn detected_field_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiRequest { params, headers }: ApiRequest,
) -> Result<Response, ApiError> {
    let (tenant, p, start, end) = request(&state, params, &headers)?;
    let limit = field_limit(&p)?;
    let streams = sample(&state, &tenant, &p, start, end).await?;
    let parsers = FieldParsers::new()?;
    let mut values: BTreeSet<String> = BTreeSet::new();
    'entries: for s in &streams {
        for e in &s.entries {
            if values.len() >= limit {
                break 'entries;
            }
            values.extend(e.metadata.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.clone()));
            let parsed = e.parsed.iter().cloned().chain(parsers.parse(&e.line, &s.labels, e.ts).map(|(_, p)| p).unwrap_or_default());
            values.extend(parsed.filter(|(n, _)| *n == name).map(|(_, v)| humanized_bytes(&v).unwrap_or(v)));
        }
    }
    if values.is_empty() {
        return Ok(go_json(StatusCode::OK, &serde_json::json!({})));
    }
    Ok(go_json(StatusCode::OK, &serde_json::json!({"limit": limit, "values": values})))
}

/// Loki shows byte-like parsed values in go-humanize's SI form without the space
/// (`1536KiB`... → `1.6MB`).
fn humanized_bytes(v: &str) -> Option<String> {
    const UNITS: &[&str] = &["b", "kib", "kb", "mib", "mb", "gib", "gb", "tib", "tb", "pib", "pb", "eib", "eb", "ki", "k", "mi", "m", "gi", "g", "ti", "t", "pi", "p", "ei", "e"];
    let lower = v.to_ascii_lowercase();
    if !UNITS.iter().any(|u| lower.ends_with(u)) {
        return None;
    }
    let n = silt_query::format::parse_bytes(v)? as f64;
    if n < 10.0 {
        return Some(format!("{n}B"));
    }
    const SIZES: &[&str] = &["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = (n.ln() / 1000f64.ln()).floor().min(6.0);
    let val = (n / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    Some(if val < 10.0 { format!("{val:.1}{}", SIZES[e as usize]) } else { format!("{val:.0}{}", SIZES[e as usize]) })
}

/// `/loki/api/v1/patterns`: the line patterns of the selected streams with their counts
/// per step, most frequent first. Loki mines these continuously in its pattern ingester;
/// silt mines them at query time over the range (see [`Patterns`]).
pub async fn patterns(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let (tenant, p, start, end) = request(&state, params, &headers)?;
    let selector = silt_query::parse_selector(p.get("query").unwrap_or(""))?;
    let step = match p.get("step") {
        Some(v) => crate::query_api::parse_step(v)?,
        None => crate::query_api::default_step(start, end),
    };
    if step <= 0 {
        return Err(ApiError::bad_request("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    let log = LogExpr { selector, pipeline: Vec::<Stage>::new() };
    let mut miner = Patterns::default();
    state
        .engine
        .scan_entries(std::slice::from_ref(&tenant), &log, start, end, &mut |ts, line, labels| {
            let level = labels.iter().find(|(n, _)| n == crate::discover::DETECTED_LEVEL).map_or("unknown", |(_, v)| v.as_str());
            miner.add(line, level, ts - ts.rem_euclid(step));
            Ok(())
        })
        .await?;
    let data: Vec<serde_json::Value> = miner
        .finish()
        .into_iter()
        .map(|c| {
            let samples: Vec<serde_json::Value> = c.samples.iter().map(|(t, n)| serde_json::json!([t.div_euclid(1_000_000_000), n])).collect();
            serde_json::json!({"pattern": c.pattern(), "level": c.level, "samples": samples})
        })
        .collect();
    Ok(go_json(StatusCode::OK, &serde_json::json!({"status": "success", "data": data})))
}

/// A simplified Drain: lines are split into whitespace tokens; a line joins the cluster
/// of the same level and token count whose tokens match in at least 30% of places (tokens
/// with digits count as variable), and differing tokens become `<_>`. At most 300
/// clusters are kept per level and length; patterns seen fewer than 30 times are dropped,
/// and at most 300 are returned, as Loki prunes.
#[derive(Default)]
pub struct Patterns {
    clusters: HashMap<(String, usize), Vec<Cluster>>,
}

pub struct Cluster {
    tokens: Vec<Option<String>>,
    level: String,
    total: u64,
    samples: BTreeMap<i64, u64>,
}

impl Cluster {
    fn pattern(&self) -> String {
        self.tokens.iter().map(|t| t.as_deref().unwrap_or("<_>")).collect::<Vec<_>>().join(" ")
    }
}

const MAX_LINE: usize = 3000;
const MAX_CLUSTERS: usize = 300;
const MIN_TOTAL: u64 = 30;
const SIMILARITY: f64 = 0.3;

impl Patterns {
    pub fn add(&mut self, line: &str, level: &str, bucket: i64) {
        if line.len() > MAX_LINE {
            return;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            return;
        }
        let variable = |t: &str| t.bytes().any(|b| b.is_ascii_digit());
        let group = self.clusters.entry((level.to_string(), tokens.len())).or_default();
        let best = group
            .iter_mut()
            .map(|c| {
                let same = c.tokens.iter().zip(&tokens).filter(|(a, b)| a.as_deref() == Some(**b) || (a.is_none() && variable(b))).count();
                (same as f64 / tokens.len() as f64, c)
            })
            .filter(|(sim, _)| *sim >= SIMILARITY)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let cluster = match best {
            Some((_, c)) => {
                for (slot, t) in c.tokens.iter_mut().zip(&tokens) {
                    if slot.as_deref() != Some(*t) {
                        *slot = None;
                    }
                }
                c
            }
            None => {
                if group.len() >= MAX_CLUSTERS {
                    return;
                }
                let tokens = tokens.iter().map(|t| (!variable(t)).then(|| t.to_string())).collect();
                group.push(Cluster { tokens, level: level.to_string(), total: 0, samples: BTreeMap::new() });
                group.last_mut().expect("just pushed")
            }
        };
        cluster.total += 1;
        *cluster.samples.entry(bucket).or_default() += 1;
    }

    /// The clusters worth showing, most frequent first.
    pub fn finish(self) -> Vec<Cluster> {
        let mut all: Vec<Cluster> = self.clusters.into_values().flatten().filter(|c| c.total >= MIN_TOTAL).collect();
        all.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.pattern().cmp(&b.pattern())));
        all.truncate(MAX_CLUSTERS);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_that_are_ids_are_not_detected() {
        assert!(keep_label("app", &["api".into(), "db".into()]));
        assert!(!keep_label("user_id", &["1".into(), "2".into(), "3".into()]));
        assert!(keep_label("pod", &["1".into(), "2".into(), "3".into()]), "static labels always");
        assert!(keep_label("flag", &["0".into(), "1".into()]));
        assert!(!keep_label("trace", &["0f8fad5b-d9cb-469f-a165-70867728950e".into(), "7c9e6679-7425-40de-944b-e07fc1f90ae7".into()]));
        assert!(!keep_label("empty", &[]));
    }

    #[test]
    fn types_as_loki_determines_them() {
        assert_eq!(field_type("12"), "int");
        assert_eq!(field_type("1.5"), "float");
        assert_eq!(field_type("true"), "boolean");
        assert_eq!(field_type("150ms"), "duration");
        assert_eq!(field_type("10KB"), "bytes");
        assert_eq!(field_type("GET"), "string");
        assert_eq!(humanized_bytes("1536KiB").as_deref(), Some("1.6MB"));
        assert_eq!(humanized_bytes("5m").as_deref(), Some("5.0MB"));
        assert_eq!(humanized_bytes("GET"), None);
    }

    #[test]
    fn patterns_cluster_similar_lines() {
        let mut p = Patterns::default();
        for i in 0..40 {
            p.add(&format!("GET /api/users/{i} 200 in {i}ms"), "info", (i / 20) * 10);
            p.add("connection reset by peer", "error", 0);
        }
        p.add("rare line seen once", "info", 0);
        let out = p.finish();
        assert_eq!(out.len(), 2);
        // Tokens with digits are variable: a whole token becomes `<_>`.
        assert_eq!(out[0].pattern(), "GET <_> <_> in <_>");
        assert_eq!(out[0].samples.values().copied().collect::<Vec<_>>(), [20, 20]);
        assert_eq!(out[1].pattern(), "connection reset by peer");
        assert_eq!(out[1].level, "error");
    }
}
