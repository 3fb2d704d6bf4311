//! The query endpoints: `/loki/api/v1/query_range`, `/query`, `/labels`,
//! `/label/{name}/values`, with Loki's parameters and JSON shapes.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use silt_query::ast::Expr;
use silt_query::{parse, parse_selector, LogQuery, StreamResult};
use silt_storage::Labels;

use crate::error::ApiError;
use crate::params::Params;
use crate::{tenant_from, AppState};

const HOUR_NS: i64 = 3_600_000_000_000;
/// Loki's default `limit` for log queries.
const DEFAULT_LIMIT: usize = 100;

pub async fn query_range(
    State(state): State<AppState>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant_from(&headers)?;
    let p = Params::from_request(&method, q.as_deref(), &headers, &body)?;
    let query = p.get("query").unwrap_or("");
    let (start, end) = p.range(HOUR_NS)?;
    let limit = p.limit(DEFAULT_LIMIT)?;
    let direction = p.direction()?;
    let expr = parse(query)?;
    match expr {
        Expr::Log(expr) => {
            let max = state.limits.max_entries_limit_per_query;
            if max > 0 && limit > max {
                return Err(ApiError::bad_request(format!(
                    "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
                )));
            }
            let lq = LogQuery { expr, start, end, limit, direction };
            let streams = state.engine.log_query(&tenant, &lq).await?;
            Ok(Json(Success { status: "success", data: StreamsData { result_type: "streams", result: streams.iter().map(StreamJson).collect() } })
                .into_response())
        }
        Expr::Metric(_) => Err(ApiError::bad_request("metric queries are not supported yet")),
    }
}

pub async fn query_instant(
    State(_state): State<AppState>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    tenant_from(&headers)?;
    let p = Params::from_request(&method, q.as_deref(), &headers, &body)?;
    match parse(p.get("query").unwrap_or(""))? {
        Expr::Log(_) => Err(ApiError::bad_request(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        )),
        Expr::Metric(_) => Err(ApiError::bad_request("metric queries are not supported yet")),
    }
}

/// What the metadata endpoints share: tenant, optional `query` selector, and a range that
/// defaults to the last 6 hours, as in Loki.
struct MetadataRequest {
    tenant: silt_storage::TenantId,
    params: Params,
    matchers: Vec<silt_storage::Matcher>,
    start: i64,
    end: i64,
}

impl MetadataRequest {
    fn parse(method: &Method, q: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Result<Self, ApiError> {
        let tenant = tenant_from(headers)?;
        let params = Params::from_request(method, q, headers, body)?;
        let (start, end) = params.range(6 * HOUR_NS)?;
        let matchers = match params.get("query") {
            Some(sel) => parse_selector(sel)?,
            None => Vec::new(),
        };
        Ok(MetadataRequest { tenant, params, matchers, start, end })
    }
}

pub async fn labels(State(state): State<AppState>, method: Method, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&method, q.as_deref(), &headers, &body)?;
    Ok(string_list(state.store.label_names(&r.tenant, &r.matchers, r.start, r.end)))
}

pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&method, q.as_deref(), &headers, &body)?;
    Ok(string_list(state.store.label_values(&r.tenant, &name, &r.matchers, r.start, r.end)))
}

/// `/loki/api/v1/series`: the label sets of the streams matching any `match[]` selector
/// (all streams when none is given) with entries in the range.
pub async fn series(State(state): State<AppState>, method: Method, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let r = MetadataRequest::parse(&method, q.as_deref(), &headers, &body)?;
    let selectors: Vec<&String> = r.params.all("match[]").iter().chain(r.params.all("match")).filter(|s| !s.is_empty()).collect();
    let mut found: std::collections::BTreeSet<Labels> = std::collections::BTreeSet::new();
    if selectors.is_empty() {
        found.extend(state.store.series(&r.tenant, &r.matchers, r.start, r.end));
    }
    for sel in selectors {
        found.extend(state.store.series(&r.tenant, &parse_selector(sel)?, r.start, r.end));
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
    result: Vec<StreamJson<'a>>,
}

/// `{"stream": {labels}, "values": [["<ns>", "<line>"], ...]}`
struct StreamJson<'a>(&'a StreamResult);

impl Serialize for StreamJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("stream", &LabelsJson(&self.0.labels))?;
        m.serialize_entry("values", &ValuesJson(&self.0.entries))?;
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

struct ValuesJson<'a>(&'a [(i64, String)]);

impl Serialize for ValuesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (ts, line) in self.0 {
            seq.serialize_element(&(ts.to_string(), line))?;
        }
        seq.end()
    }
}
