//! Loki's legacy read API, still used by older clients: `/api/prom/query`,
//! `/api/prom/label`, `/api/prom/label/{name}/values` (`/api/prom/series` is served by
//! the v1 handler, as in Loki).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use silt_query::ast::Expr;
use silt_query::LogQuery;

use crate::auth::Access;
use crate::error::ApiError;
use crate::params::{ApiRequest, Params};
use crate::AppState;

const HOUR_NS: i64 = 3_600_000_000_000;

/// `/api/prom/query`: a log query over a range (with the legacy `regexp` parameter), in
/// the legacy shape `{"streams":[{"labels":"{..}","entries":[{"ts","line"}]}]}`.
pub async fn query(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let tenant = state.auth.tenant(&headers, Access::Read)?;
    let p = params;
    let mut query = p.get("query").unwrap_or("").to_string();
    if let Some(re) = p.get("regexp") {
        // Loki appends `|~ "<regexp>"` to the log selector's pipeline.
        let mut quoted = String::new();
        silt_storage::write_go_quoted(&mut quoted, re).map_err(|e| ApiError::internal(e.to_string()))?;
        query = format!("{query} |~ {quoted}");
    }
    let expr = match silt_query::parse(&query)? {
        Expr::Log(e) => e,
        Expr::Metric(_) => return Err(ApiError::bad_request("legacy endpoints only support streams result type")),
    };
    let (start, end) = p.range(HOUR_NS)?;
    let limit = p.limit(100)?;
    let limits = state.limits.get(&tenant);
    if limits.max_entries_limit_per_query > 0 && limit > limits.max_entries_limit_per_query {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {})",
            limits.max_entries_limit_per_query
        )));
    }
    let lq = LogQuery { expr, start, end, limit, direction: p.direction()?, interval: 0, categorize: false };
    let streams = crate::query_api::with_timeout(limits, state.engine.log_query(std::slice::from_ref(&tenant), &lq)).await?;
    let streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| {
            let entries: Vec<serde_json::Value> = s.entries.iter().map(|e| serde_json::json!({"ts": rfc3339_nano(e.ts), "line": e.line})).collect();
            serde_json::json!({"labels": s.labels.to_string(), "entries": entries})
        })
        .collect();
    Ok(Json(serde_json::json!({"streams": streams})).into_response())
}

/// Go's `time.RFC3339Nano` in UTC: the fraction without trailing zeros.
fn rfc3339_nano(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    let frac = ns.rem_euclid(1_000_000_000);
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if frac != 0 {
        s.push('.');
        s.push_str(format!("{frac:09}").trim_end_matches('0'));
    }
    s.push('Z');
    s
}

fn values(v: Vec<String>) -> Response {
    if v.is_empty() {
        return Json(serde_json::json!({})).into_response();
    }
    Json(serde_json::json!({"values": v})).into_response()
}

struct Meta {
    tenant: silt_storage::TenantId,
    matchers: Vec<silt_storage::Matcher>,
    start: i64,
    end: i64,
}

fn meta(state: &AppState, p: Params, headers: &HeaderMap) -> Result<Meta, ApiError> {
    let tenant = state.auth.tenant(headers, Access::Read)?;
    let (start, end) = p.range(6 * HOUR_NS)?;
    let matchers = match p.get("query") {
        Some(sel) => silt_query::parse_selector(sel)?,
        None => Vec::new(),
    };
    Ok(Meta { tenant, matchers, start, end })
}

/// `/api/prom/label`: `{"values":[names]}`.
pub async fn labels(State(state): State<AppState>, ApiRequest { params, headers }: ApiRequest) -> Result<Response, ApiError> {
    let m = meta(&state, params, &headers)?;
    Ok(values(state.store.label_names(&m.tenant, &m.matchers, m.start, m.end)))
}

/// `/api/prom/label/{name}/values`: `{"values":[values]}`.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiRequest { params, headers }: ApiRequest,
) -> Result<Response, ApiError> {
    let m = meta(&state, params, &headers)?;
    Ok(values(state.store.label_values(&m.tenant, &name, &m.matchers, m.start, m.end)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_rfc3339_nano() {
        assert_eq!(super::rfc3339_nano(1_568_399_542_380_001_319), "2019-09-13T18:32:22.380001319Z");
        assert_eq!(super::rfc3339_nano(1_568_399_542_380_000_000), "2019-09-13T18:32:22.38Z");
        assert_eq!(super::rfc3339_nano(1_568_399_542_000_000_000), "2019-09-13T18:32:22Z");
    }
}
