//! Loki's log deletion API, `/loki/api/v1/delete`: `POST`/`PUT` to request a deletion,
//! `GET` to list requests, `DELETE` to cancel one. Parameters, statuses and messages are
//! Loki 3's (errors as Go's `http.Error`: plain text and a newline).
//!
//! A request hides its entries from every read at once; once `delete_request_cancel_period`
//! has passed, the maintenance pass removes them from disk (tenants in `filter-and-delete`
//! mode; `filter-only` tenants keep them on disk, hidden).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use silt_query::format::go_duration;
use silt_storage::{CancelError, DeleteRequest, TenantId};

use crate::auth::Access;
use crate::error::ApiError;
use crate::limits::DeletionMode;
use crate::params::{now_ns, ApiRequest};
use crate::AppState;

const NS_PER_MS: i64 = 1_000_000;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg).http_error()
}

/// The tenant, when deletion is available to it.
fn tenant(state: &AppState, req: &ApiRequest, access: Access) -> Result<TenantId, ApiError> {
    let t = state.auth.tenant(&req.headers, access).map_err(ApiError::http_error)?;
    if state.limits.get(&t).deletion_mode == DeletionMode::Disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "deletion is not available for this tenant").http_error());
    }
    Ok(t)
}

/// `POST|PUT /loki/api/v1/delete?query=..&start=..[&end=..][&max_interval=..]`
pub async fn create(State(state): State<AppState>, req: ApiRequest) -> Result<StatusCode, ApiError> {
    let t = tenant(&state, &req, Access::Write)?;
    let p = &req.params;
    let query = p.get("query").filter(|q| !q.is_empty()).ok_or_else(|| bad("query not set"))?;
    let compiled = silt_query::delete::compile_delete_query(query).map_err(bad)?;
    let start = match p.get("start").filter(|s| !s.is_empty()) {
        None => return Err(bad("start time not set")),
        Some(s) => parse_delete_time(s).ok_or_else(|| bad("invalid start time: require unix seconds or RFC3339 format"))?,
    };
    let now_ms = now_ns() / NS_PER_MS;
    let end = match p.get("end").filter(|s| !s.is_empty()) {
        None => now_ms,
        Some(s) => {
            let e = parse_delete_time(s).ok_or_else(|| bad("invalid end time: require unix seconds or RFC3339 format"))?;
            if e > now_ms {
                return Err(bad("deletes in the future are not allowed"));
            }
            e
        }
    };
    if start > end {
        return Err(bad("start time can't be greater than end time"));
    }
    // Loki splits requests with filters into `max_interval` shards; silt processes a
    // request whole, but checks the parameter as Loki does.
    if let (Some(mi), true) = (p.get("max_interval"), compiled.entries.is_some()) {
        let iv = silt_query::duration::parse_duration(mi).filter(|d| *d >= 1_000_000_000).ok_or_else(|| bad("invalid max_interval: valid time units are 's', 'm', 'h'"))?;
        let span = end.saturating_sub(start).saturating_mul(NS_PER_MS);
        if iv > span {
            return Err(bad(format!("max_interval can't be greater than the interval to be deleted ({})", go_duration(span))));
        }
    }
    // Times far before 1970 (RFC3339 allows year 1) saturate rather than overflow.
    state.store.add_delete_request(&t, query, start.saturating_mul(NS_PER_MS), end.saturating_mul(NS_PER_MS), now_ns())?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /loki/api/v1/delete`: the tenant's requests, oldest first.
pub async fn list(State(state): State<AppState>, req: ApiRequest) -> Result<Response, ApiError> {
    let t = tenant(&state, &req, Access::Read)?;
    let list: Vec<Value> = state.store.delete_requests(&t).iter().map(|r| request_json(&t, r)).collect();
    Ok(axum::Json(list).into_response())
}

/// `DELETE /loki/api/v1/delete?request_id=..[&force=true]`
pub async fn cancel(State(state): State<AppState>, req: ApiRequest) -> Result<StatusCode, ApiError> {
    let t = tenant(&state, &req, Access::Write)?;
    let id = req.params.get("request_id").unwrap_or("");
    let force = req.params.get("force") == Some("true");
    let period = state.compactor.delete_request_cancel_period_ns();
    match state.store.cancel_delete_request(&t, id, now_ns(), period, force) {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(CancelError::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, CancelError::NotFound.to_string()).http_error()),
        Err(CancelError::PastDeadline(p)) => Err(bad(format!(
            "Cancellation of partially completed delete request or delete request past the deadline of {} since its creation is not allowed. To force, use the ?force query parameter",
            go_duration(p)
        ))),
        Err(CancelError::Store(e)) => Err(ApiError::internal(e).http_error()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// One request as Loki lists it: times in seconds, to the millisecond.
fn request_json(t: &TenantId, r: &DeleteRequest) -> Value {
    json!({
        "request_id": r.request_id,
        "start_time": seconds(r.start),
        "end_time": seconds(r.end),
        "query": r.query,
        "status": r.status.as_str(),
        "created_at": seconds(r.created_at),
        "user_id": t.as_str(),
    })
}

/// Unix ns as Prometheus' `model.Time` marshals: seconds, with up to 3 decimals.
fn seconds(ns: i64) -> Value {
    let ms = ns.div_euclid(NS_PER_MS);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// Loki's delete times: RFC3339 (to the millisecond), or Unix seconds written with exactly
/// 10 characters. Returns Unix ms.
fn parse_delete_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if s.len() != 10 {
        return None;
    }
    let f: f64 = s.parse().ok().filter(|f: &f64| f.is_finite())?;
    Some((f * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_times_are_loki_s() {
        assert_eq!(parse_delete_time("1591616227"), Some(1_591_616_227_000));
        assert_eq!(parse_delete_time("2020-06-08T11:37:07.123456Z"), Some(1_591_616_227_123));
        for bad in ["1591616227000", "1591616227.5", "yesterday", ""] {
            assert_eq!(parse_delete_time(bad), None, "{bad}");
        }
        assert_eq!(seconds(1_660_653_094_000_000_000), json!(1660653094));
        assert_eq!(seconds(1_660_770_050_104_000_000), json!(1660770050.104));
    }
}
