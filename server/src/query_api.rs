//! The query endpoints: `/loki/api/v1/query_range`, `/query`, `/labels`,
//! `/label/{name}/values`, with Loki's parameters and JSON shapes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use silt_query::ast::Expr;
use silt_query::{parse, parse_selector, LogQuery, StreamResult};
use silt_storage::Labels;

use crate::error::ApiError;
use crate::params::{ApiRequest, Params};
use crate::AppState;

const HOUR_NS: i64 = 3_600_000_000_000;
/// Loki's default `limit` for log queries.
const DEFAULT_LIMIT: usize = 100;

pub async fn query_range(
    State(state): State<AppState>,
    ApiRequest { params, headers }: ApiRequest,
) -> Result<Response, ApiError> {
    let tenants = state.auth.tenants(&headers)?;
    let limits = state.limits.for_tenants(&tenants);
    let p = params;
    let query = p.get("query").unwrap_or("");
    let (start, end) = p.range(HOUR_NS)?;
    let limit = p.limit(DEFAULT_LIMIT)?;
    let direction = p.direction()?;
    let interval = match p.get("interval") {
        Some(v) => parse_step(v)?,
        None => 0,
    };
    if interval < 0 {
        return Err(ApiError::bad_request("interval must be >= 0"));
    }
    let expr = parse(query)?;
    match expr {
        Expr::Log(expr) => {
            let max = limits.max_entries_limit_per_query;
            if max > 0 && limit > max {
                return Err(ApiError::bad_request(format!(
                    "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
                )));
            }
            // Grafana asks for Loki's categorized form by default.
            let categorize = headers
                .get("x-loki-response-encoding-flags")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"));
            let lq = LogQuery { expr, start, end, limit, direction, interval, categorize };
            check_query_length(start, end, &limits)?;
            let streams = with_timeout(&limits, state.engine.log_query(&tenants, &lq)).await?;
            let data = StreamsData {
                result_type: "streams",
                encoding_flags: categorize.then_some(["categorize-labels"]),
                result: streams.iter().map(|s| StreamJson(s, categorize)).collect(),
            };
            Ok(Json(Success { status: "success", data }).into_response())
        }
        Expr::Metric(m) => {
            let step = match p.get("step") {
                Some(v) => parse_step(v)?,
                // Loki's default: one point per range/250, at least a second.
                None => default_step(start, end),
            };
            if step <= 0 {
                return Err(ApiError::bad_request("zero or negative query resolution step widths are not accepted. Try a positive integer"));
            }
            if span(start, end) / step as i128 > MAX_POINTS as i128 {
                return Err(ApiError::bad_request(
                    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
                ));
            }
            // Like Loki's query frontend, evaluate at multiples of the step: the start is
            // rounded down and the end up to the step grid.
            let start = start - start.rem_euclid(step);
            let end = if end.rem_euclid(step) == 0 { end } else { (end - end.rem_euclid(step)).saturating_add(step) };
            check_query_length(start, end, &limits)?;
            let r = with_timeout(&limits, state.engine.metric_query(&tenants, &m, start, end, step)).await?;
            check_series_limit(&r, limits.max_query_series)?;
            Ok(metric_json(r))
        }
    }
}

/// `end - start` without overflow: the parameters may be anywhere in the i64 range.
fn span(start: i64, end: i64) -> i128 {
    end as i128 - start as i128
}

/// Loki's default step: one point per range/250, in whole seconds, at least a second.
pub(crate) fn default_step(start: i64, end: i64) -> i64 {
    let secs = (span(start, end) / 250 / 1_000_000_000).max(1);
    i64::try_from(secs * 1_000_000_000).unwrap_or(i64::MAX)
}

/// Loki's `max_query_length`: a range longer than the tenant's limit is refused.
fn check_query_length(start: i64, end: i64, limits: &crate::Limits) -> Result<(), ApiError> {
    let max = i64::try_from(limits.max_query_length.as_nanos()).unwrap_or(i64::MAX);
    let length = end.saturating_sub(start);
    if max > 0 && length > max {
        let fmt = silt_query::duration::format_duration;
        return Err(ApiError::bad_request(format!("the query time range exceeds the limit (query length: {}, limit: {})", fmt(length), fmt(max))));
    }
    Ok(())
}

/// Loki's `query_timeout`: a query still running after it fails with 504 (its work is
/// dropped with the future). One that ends past its deadline before the timer fires (the
/// timer has a resolution of a millisecond) has run too long all the same: it fails too,
/// as Loki's, whose context has expired by then.
pub(crate) async fn with_timeout<T>(limits: &crate::Limits, f: impl std::future::Future<Output = Result<T, silt_query::QueryError>>) -> Result<T, ApiError> {
    if limits.query_timeout.is_zero() {
        return Ok(f.await?);
    }
    let started = std::time::Instant::now();
    match tokio::time::timeout(limits.query_timeout, f).await {
        Ok(r) if started.elapsed() <= limits.query_timeout => Ok(r?),
        _ => Err(ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed",
        )),
    }
}

/// Loki's `max_query_series`: a metric query returning more series fails.
fn check_series_limit(r: &silt_query::MetricResult, max: usize) -> Result<(), ApiError> {
    let n = match r {
        silt_query::MetricResult::Matrix(s) => s.len(),
        silt_query::MetricResult::Vector(_, s) => s.len(),
        silt_query::MetricResult::Scalar(..) => 0,
    };
    if max > 0 && n > max {
        return Err(ApiError::bad_request(format!(
            "maximum number of series ({max}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reduce the time range of the query, or increase the maximum series limit"
        )));
    }
    Ok(())
}

/// Loki refuses range queries of more than this many points per series.
const MAX_POINTS: i64 = 11_000;

/// `step` as float seconds (`300`, `0.5`) or a duration (`5m`).
pub(crate) fn parse_step(v: &str) -> Result<i64, ApiError> {
    if let Ok(f) = v.parse::<f64>() {
        if f.is_finite() {
            return Ok((f * 1e9).round() as i64);
        }
    }
    silt_query::duration::parse_duration(v)
        .ok_or_else(|| ApiError::bad_request(format!("invalid step: cannot parse \"{v}\" to a valid duration")))
}

/// A timestamp as Loki writes it in metric results: seconds, millisecond precision.
fn ts_json(ns: i64) -> serde_json::Value {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        serde_json::Value::from(ms / 1000)
    } else {
        serde_json::Number::from_f64(ms as f64 / 1000.0).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn labels_json(l: &Labels) -> serde_json::Value {
    serde_json::Value::Object(l.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v))).collect())
}

fn metric_json(r: silt_query::MetricResult) -> Response {
    use serde_json::json;
    use silt_query::format::float_plain;
    let data = match r {
        silt_query::MetricResult::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|(l, pts)| json!({
                "metric": labels_json(l),
                "values": pts.iter().map(|(t, v)| json!([ts_json(*t), float_plain(*v)])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        silt_query::MetricResult::Vector(t, samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|(l, v)| json!({"metric": labels_json(l), "value": [ts_json(t), float_plain(*v)]})).collect::<Vec<_>>(),
        }),
        // Loki writes a scalar's timestamp in milliseconds.
        silt_query::MetricResult::Scalar(t, v) => json!({"resultType": "scalar", "result": [t.div_euclid(1_000_000), float_plain(v)]}),
    };
    Json(json!({"status": "success", "data": data})).into_response()
}

pub async fn query_instant(
    State(state): State<AppState>,
    ApiRequest { params, headers }: ApiRequest,
) -> Result<Response, ApiError> {
    let tenants = state.auth.tenants(&headers)?;
    let limits = state.limits.for_tenants(&tenants);
    let p = params;
    let time = match p.get("time") {
        Some(v) => crate::params::parse_time(v).ok_or_else(|| ApiError::bad_request(format!("invalid time: cannot parse \"{v}\" to a valid timestamp")))?,
        None => crate::params::now_ns(),
    };
    match parse(p.get("query").unwrap_or(""))? {
        Expr::Log(_) => Err(ApiError::bad_request(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        )),
        Expr::Metric(m) => {
            let r = with_timeout(&limits, state.engine.metric_query(&tenants, &m, time, time, 0)).await?;
            check_series_limit(&r, limits.max_query_series)?;
            Ok(metric_json(r))
        }
    }
}

/// What the metadata endpoints share: tenants, optional `query` selector, and a range that
/// defaults to the last 6 hours, as in Loki.
struct MetadataRequest {
    tenants: Vec<silt_storage::TenantId>,
    params: Params,
    matchers: Vec<silt_storage::Matcher>,
    start: i64,
    end: i64,
}

impl MetadataRequest {
    fn parse(state: &AppState, params: Params, headers: &HeaderMap) -> Result<Self, ApiError> {
        let tenants = state.auth.tenants(headers)?;
        let (start, end) = params.range(6 * HOUR_NS)?;
        let matchers = match params.get("query") {
            Some(sel) => parse_selector(sel)?,
            None => Vec::new(),
        };
        Ok(MetadataRequest { tenants, params, matchers, start, end })
    }

    fn multi(&self) -> bool {
        self.tenants.len() > 1
    }

    /// The tenants `matchers` select and the matchers left for their streams (Loki's
    /// multi-tenant rules on `__tenant_id__`).
    fn split(&self, matchers: &[silt_storage::Matcher]) -> (Vec<silt_storage::TenantId>, Vec<silt_storage::Matcher>) {
        silt_query::provider::split_tenant_matchers(&self.tenants, matchers)
    }
}

pub async fn labels(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&state, params, &headers)?;
    let (tenants, matchers) = r.split(&r.matchers);
    let mut names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for t in &tenants {
        names.extend(state.store.label_names(t, &matchers, r.start, r.end));
    }
    if r.multi() && !tenants.is_empty() {
        if names.remove(silt_query::provider::TENANT_LABEL) {
            names.insert(silt_query::provider::ORIGINAL_TENANT_LABEL.to_string());
        }
        names.insert(silt_query::provider::TENANT_LABEL.to_string());
    }
    Ok(string_list(names.into_iter().collect()))
}

pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiRequest { params, headers }: ApiRequest,
) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&state, params, &headers)?;
    let (tenants, matchers) = r.split(&r.matchers);
    if r.multi() && name == silt_query::provider::TENANT_LABEL {
        return Ok(string_list(tenants.iter().map(|t| t.to_string()).collect()));
    }
    let name = if r.multi() && name == silt_query::provider::ORIGINAL_TENANT_LABEL { silt_query::provider::TENANT_LABEL.to_string() } else { name };
    let mut values: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for t in &tenants {
        values.extend(state.store.label_values(t, &name, &matchers, r.start, r.end));
    }
    Ok(string_list(values.into_iter().collect()))
}

/// `/loki/api/v1/series`: the label sets of the streams matching any `match[]` selector
/// (all streams when none is given) with entries in the range.
pub async fn series(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&state, params, &headers)?;
    let mut selectors: Vec<Vec<silt_storage::Matcher>> = Vec::new();
    for sel in r.params.all("match[]").iter().chain(r.params.all("match")).filter(|s| !s.is_empty()) {
        selectors.push(parse_selector(sel)?);
    }
    if selectors.is_empty() {
        selectors.push(r.matchers.clone());
    }
    let mut found: std::collections::BTreeSet<Labels> = std::collections::BTreeSet::new();
    for sel in &selectors {
        let (tenants, matchers) = r.split(sel);
        for t in &tenants {
            for l in state.store.series(t, &matchers, r.start, r.end) {
                found.insert(if r.multi() { silt_query::provider::tenant_stream(t, 0, &l).1 } else { l });
            }
        }
    }
    let data: Vec<LabelsJson<'_>> = found.iter().map(LabelsJson).collect();
    Ok(Json(Success { status: "success", data }).into_response())
}

/// `{"status":"success","data":[...]}`; like Loki, `data` is left out when empty.
fn string_list(v: Vec<String>) -> Response {
    if v.is_empty() {
        Json(serde_json::json!({"status": "success"})).into_response()
    } else {
        Json(Success { status: "success", data: v }).into_response()
    }
}

#[derive(Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

#[derive(Serialize)]
struct StreamsData<'a> {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    #[serde(rename = "encodingFlags", skip_serializing_if = "Option::is_none")]
    encoding_flags: Option<[&'static str; 1]>,
    result: Vec<StreamJson<'a>>,
}

/// `{"stream": {labels}, "values": [["<ns>", "<line>"], ...]}`; categorized, each value
/// also has `{"structuredMetadata": {...}, "parsed": {...}}` (empty parts left out).
struct StreamJson<'a>(&'a StreamResult, bool);

impl Serialize for StreamJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("stream", &LabelsJson(&self.0.labels))?;
        m.serialize_entry("values", &ValuesJson(&self.0.entries, self.1))?;
        m.end()
    }
}

struct PairsJson<'a>(&'a [(String, String)]);

impl Serialize for PairsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct CategoriesJson<'a>(&'a silt_query::EntryResult);

impl Serialize for CategoriesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if !self.0.metadata.is_empty() {
            m.serialize_entry("structuredMetadata", &PairsJson(&self.0.metadata))?;
        }
        if !self.0.parsed.is_empty() {
            m.serialize_entry("parsed", &PairsJson(&self.0.parsed))?;
        }
        m.end()
    }
}

pub struct LabelsJson<'a>(pub &'a Labels);

impl Serialize for LabelsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct ValuesJson<'a>(&'a [silt_query::EntryResult], bool);

impl Serialize for ValuesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            if self.1 {
                seq.serialize_element(&(e.ts.to_string(), &e.line, CategoriesJson(e)))?;
            } else {
                seq.serialize_element(&(e.ts.to_string(), &e.line))?;
            }
        }
        seq.end()
    }
}

/// `/loki/api/v1/index/stats`: `{"streams","chunks","entries","bytes"}` of the matching
/// streams in the range. Loki estimates these from its index; silt counts exactly.
pub async fn index_stats(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&state, params, &headers)?;
    let (vols, parts) = state.engine.volumes(&r.tenants, &r.matchers, r.start, r.end).await?;
    let entries: u64 = vols.iter().map(|v| v.entries).sum();
    let bytes: u64 = vols.iter().map(|v| v.bytes).sum();
    let chunks = if vols.is_empty() { 0 } else { parts };
    Ok(Json(serde_json::json!({"streams": vols.len(), "chunks": chunks, "entries": entries, "bytes": bytes})).into_response())
}

/// How `/index/volume` groups streams: by the label names of the selector, or by
/// `targetLabels`; `aggregateBy=labels` gives one series per label name (value "").
struct VolumeGrouping {
    limit: usize,
    by_labels: bool,
    targets: Vec<String>,
    explicit_targets: bool,
}

impl VolumeGrouping {
    fn parse(r: &MetadataRequest) -> Result<Self, ApiError> {
        let limit = r.params.limit(100)?;
        let by_labels = match r.params.get("aggregateBy") {
            None | Some("series") => false,
            Some("labels") => true,
            Some(_) => return Err(ApiError::bad_request("invalid aggregation option")),
        };
        let explicit_targets = r.params.get("targetLabels").is_some();
        let targets: Vec<String> = match r.params.get("targetLabels") {
            Some(t) => t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            None => {
                let mut names: Vec<String> = r.matchers.iter().map(|m| m.name.clone()).collect();
                names.dedup();
                names
            }
        };
        Ok(VolumeGrouping { limit, by_labels, targets, explicit_targets })
    }

    /// Bytes per group in `[start, end)`, the `limit` largest, largest first.
    async fn volumes(&self, state: &AppState, r: &MetadataRequest, start: i64, end: i64) -> Result<Vec<(Labels, u64)>, ApiError> {
        let (vols, _) = state.engine.volumes(&r.tenants, &r.matchers, start, end).await?;
        let mut groups: std::collections::BTreeMap<Labels, u64> = std::collections::BTreeMap::new();
        for v in &vols {
            if self.by_labels {
                for (name, _) in v.labels.iter().filter(|(n, _)| !self.explicit_targets || self.targets.iter().any(|t| t == n)) {
                    let key = Labels::from_pairs([(name, "")]).map_err(ApiError::from)?;
                    *groups.entry(key).or_default() += v.bytes;
                }
            } else {
                let pairs: Vec<(&str, &str)> = v.labels.iter().filter(|(n, _)| self.targets.iter().any(|t| t == n)).collect();
                if pairs.is_empty() {
                    continue;
                }
                *groups.entry(Labels::from_pairs(pairs).map_err(ApiError::from)?).or_default() += v.bytes;
            }
        }
        let mut sorted: Vec<(Labels, u64)> = groups.into_iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted.truncate(self.limit);
        Ok(sorted)
    }
}

/// `/loki/api/v1/index/volume`: bytes per group (see [`VolumeGrouping`]) as a vector at
/// `end`.
pub async fn index_volume(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&state, params, &headers)?;
    let g = VolumeGrouping::parse(&r)?;
    let sorted = g.volumes(&state, &r, r.start, r.end).await?;
    let ts = ts_json(r.end);
    let result: Vec<serde_json::Value> =
        sorted.iter().map(|(l, b)| serde_json::json!({"metric": labels_json(l), "value": [ts.clone(), b.to_string()]})).collect();
    Ok(Json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})).into_response())
}

/// `/loki/api/v1/index/volume_range`: the same per `step` bucket, as Loki's frontend
/// splits it: buckets aligned to the step, each stamped with its end (1 ms before the next
/// boundary, the last with `end`), `limit` applied per bucket. A vector when no series has
/// more than one point, as in Loki.
pub async fn index_volume_range(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&state, params, &headers)?;
    let g = VolumeGrouping::parse(&r)?;
    let step = match r.params.get("step") {
        Some(v) => parse_step(v)?,
        None => default_step(r.start, r.end),
    };
    if step <= 0 {
        return Err(ApiError::bad_request("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    if span(r.start, r.end) / step as i128 > MAX_POINTS as i128 {
        return Err(ApiError::bad_request(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    const MS: i64 = 1_000_000;
    let mut series: std::collections::BTreeMap<Labels, Vec<(i64, u64)>> = std::collections::BTreeMap::new();
    let mut from = r.start;
    let mut boundary = r.start - r.start.rem_euclid(step) + step;
    loop {
        let last = boundary > r.end;
        let through = if last { r.end } else { boundary - MS };
        // The bucket is [from, through]; volumes take an exclusive end.
        for (l, b) in g.volumes(&state, &r, from, through + 1).await? {
            series.entry(l).or_default().push((through, b));
        }
        if last {
            break;
        }
        from = boundary;
        boundary += step;
    }
    let matrix = series.values().any(|pts| pts.len() > 1);
    let mut ordered: Vec<(&Labels, &Vec<(i64, u64)>)> = series.iter().collect();
    ordered.sort_by(|a, b| b.1[0].1.cmp(&a.1[0].1).then_with(|| a.0.cmp(b.0)));
    let result: Vec<serde_json::Value> = ordered
        .iter()
        .map(|(l, pts)| {
            if matrix {
                serde_json::json!({"metric": labels_json(l), "values": pts.iter().map(|(t, b)| serde_json::json!([ts_json(*t), b.to_string()])).collect::<Vec<_>>()})
            } else {
                serde_json::json!({"metric": labels_json(l), "value": [ts_json(pts[0].0), pts[0].1.to_string()]})
            }
        })
        .collect();
    let kind = if matrix { "matrix" } else { "vector" };
    Ok(Json(serde_json::json!({"status": "success", "data": {"resultType": kind, "result": result}})).into_response())
}
