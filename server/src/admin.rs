//! The small endpoints Grafana, logcli and Logs Drilldown call besides queries:
//! `/loki/api/v1/status/buildinfo`, `/loki/api/v1/format_query`, `/config`,
//! `/loki/api/v1/drilldown-limits`.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::Access;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::params::ApiRequest;
use crate::AppState;

/// The Loki API level silt implements, reported where clients read Loki's version to
/// decide which features to use (Grafana, Logs Drilldown).
pub const LOKI_API_VERSION: &str = "3.6.0";

/// JSON as Go's `encoding/json` Encoder writes it: `<`, `>`, `&` escaped, a final newline.
pub fn go_json(status: StatusCode, v: &serde_json::Value) -> Response {
    let mut s = v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    s.push('\n');
    (status, [("content-type", "application/json; charset=utf-8")], s).into_response()
}

/// `GET /loki/api/v1/status/buildinfo`: Prometheus' build-info shape.
pub async fn buildinfo() -> Response {
    go_json(
        StatusCode::OK,
        &serde_json::json!({
            "version": LOKI_API_VERSION,
            "revision": format!("silt-{}", env!("CARGO_PKG_VERSION")),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }),
    )
}

/// `/loki/api/v1/format_query`: the query in LogQL's canonical form, or Loki's
/// `invalid-query` answer.
pub async fn format_query(ApiRequest { params, .. }: ApiRequest) -> Result<Response, ApiError> {
    let p = params;
    Ok(match silt_query::parse(p.get("query").unwrap_or("")) {
        Ok(e) => go_json(StatusCode::OK, &serde_json::json!({"status": "success", "data": e.to_string()})),
        Err(e) => go_json(StatusCode::BAD_REQUEST, &serde_json::json!({"status": "invalid-query", "error": e.to_string()})),
    })
}

/// `GET /loki/api/v1/drilldown-limits`: the limits Logs Drilldown adapts to, for the
/// request's tenant.
pub async fn drilldown_limits(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = state.auth.tenant(&headers, Access::Read)?;
    let l = state.limits.get(&tenant);
    Ok(go_json(
        StatusCode::OK,
        &serde_json::json!({
            "limits": published_limits(l),
            "pattern_ingester_enabled": true,
            "version": LOKI_API_VERSION,
            "mode": "active",
        }),
    ))
}

/// The limits Loki publishes to Drilldown, with Loki's names and value formats.
fn published_limits(l: &Limits) -> serde_json::Value {
    serde_json::json!({
        "discover_log_levels": l.discover_log_levels,
        "discover_service_name": l.discover_service_name,
        "log_level_fields": l.log_level_fields,
        "max_entries_limit_per_query": l.max_entries_limit_per_query,
        "max_line_size_truncate": l.ingest.max_line_size_truncate,
        "max_query_length": silt_query::duration::format_duration(l.max_query_length.as_nanos() as i64),
        "max_query_series": l.max_query_series,
        "query_timeout": silt_query::duration::format_duration(l.query_timeout.as_nanos() as i64),
        "volume_enabled": true,
        "volume_max_series": 1000,
    })
}

/// `GET /config`: the running configuration as YAML, in Loki's layout where Loki has the
/// same setting (`auth_enabled`, `server`, `limits_config`, `overrides`). Secrets are never
/// shown.
pub async fn config(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    state.auth.tenant(&headers, Access::Admin)?;
    let mut y = String::new();
    let _ = writeln!(y, "auth_enabled: {}", state.auth.enabled());
    let _ = writeln!(y, "multi_tenant_queries_enabled: {}", state.auth.multi_tenant());
    let _ = writeln!(y, "auth_tokens: {}", state.auth.token_count());
    let c = state.store.config();
    let _ = writeln!(y, "storage:\n  data_dir: {}\n  wal_sync: {}", yaml_str(&c.data_dir.display().to_string()), c.wal_sync);
    let _ = writeln!(y, "  flush_max_bytes: {}\n  flush_max_age: {}", c.flush_max_bytes, dur(c.flush_max_age));
    let _ = writeln!(y, "  out_of_order_window: {}", dur(c.out_of_order_window));
    let k = &state.compactor;
    let _ = writeln!(y, "compactor:\n  compaction_interval: {}\n  retention_enabled: {}", dur(k.compaction_interval), k.retention_enabled);
    let _ = writeln!(y, "  delete_request_cancel_period: {}\n  target_chunk_size: {}", dur(k.delete_request_cancel_period), k.target_chunk_size);
    let _ = writeln!(y, "limits_config:");
    limits_yaml(&mut y, state.limits.defaults(), "  ");
    let overrides = state.limits.overrides();
    if !overrides.is_empty() {
        let _ = writeln!(y, "overrides:");
        for (tenant, l) in overrides {
            let _ = writeln!(y, "  {}:", yaml_str(tenant));
            limits_yaml(&mut y, l, "    ");
        }
    }
    Ok(([("content-type", "text/plain; charset=utf-8")], y).into_response())
}

fn dur(d: std::time::Duration) -> String {
    silt_query::duration::format_duration(d.as_nanos() as i64)
}

fn yaml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn yaml_list(v: &[String]) -> String {
    format!("[{}]", v.iter().map(|s| yaml_str(s)).collect::<Vec<_>>().join(", "))
}

fn limits_yaml(y: &mut String, l: &Limits, ind: &str) {
    let i = &l.ingest;
    let rate = |r: f64| if r.is_finite() { format!("{}", r / 1048576.0) } else { "0".into() };
    let lines = [
        ("ingestion_rate_mb", rate(i.ingestion_rate_bytes)),
        ("ingestion_burst_size_mb", rate(i.ingestion_burst_bytes)),
        ("max_line_size", i.max_line_size.to_string()),
        ("max_line_size_truncate", i.max_line_size_truncate.to_string()),
        ("max_label_names_per_series", i.labels.max_names.to_string()),
        ("max_label_name_length", i.labels.max_name_len.to_string()),
        ("max_label_value_length", i.labels.max_value_len.to_string()),
        ("reject_old_samples", i.reject_old_samples.to_string()),
        ("reject_old_samples_max_age", dur(i.reject_old_samples_max_age)),
        ("creation_grace_period", dur(i.creation_grace_period)),
        ("allow_structured_metadata", i.allow_structured_metadata.to_string()),
        ("max_structured_metadata_size", i.max_structured_metadata_size.to_string()),
        ("max_structured_metadata_entries_count", i.max_structured_metadata_entries_count.to_string()),
        ("max_global_streams_per_user", i.max_streams.to_string()),
        ("per_stream_rate_limit", if i.per_stream_rate_bytes.is_finite() { (i.per_stream_rate_bytes as u64).to_string() } else { "0".into() }),
        ("discover_service_name", yaml_list(&l.discover_service_name)),
        ("discover_log_levels", l.discover_log_levels.to_string()),
        ("log_level_fields", yaml_list(&l.log_level_fields)),
        ("max_entries_limit_per_query", l.max_entries_limit_per_query.to_string()),
        ("max_query_series", l.max_query_series.to_string()),
        ("max_query_length", dur(l.max_query_length)),
        ("query_timeout", dur(l.query_timeout)),
        ("max_concurrent_tail_requests", l.max_concurrent_tail_requests.to_string()),
        ("retention_period", dur(std::time::Duration::from_nanos(l.retention.period.max(0) as u64))),
        ("deletion_mode", deletion_mode(l.deletion_mode).to_string()),
    ];
    for (k, v) in lines {
        let _ = writeln!(y, "{ind}{k}: {v}");
    }
    if !l.retention.streams.is_empty() {
        let _ = writeln!(y, "{ind}retention_stream:");
        for r in &l.retention.streams {
            let _ = writeln!(y, "{ind}  - selector: {}\n{ind}    priority: {}\n{ind}    period: {}", yaml_str(&r.selector), r.priority, dur(std::time::Duration::from_nanos(r.period.max(0) as u64)));
        }
    }
}

fn deletion_mode(m: crate::limits::DeletionMode) -> &'static str {
    use crate::limits::DeletionMode::*;
    match m {
        Disabled => "disabled",
        FilterOnly => "filter-only",
        FilterAndDelete => "filter-and-delete",
    }
}
