//! `/metrics` in Prometheus' text format, with Loki's metric names where Loki has one
//! (`loki_request_duration_seconds`, `loki_distributor_lines_received_total`,
//! `loki_discarded_samples_total`, ...) and `silt_` ones for the storage engine. Also the
//! request middleware that feeds the request histogram and gives each request a traced id.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use silt_storage::metrics::Histogram;
use silt_storage::{PushOutcome, Store};

/// dskit's default request-duration buckets, which Loki uses.
const REQUEST_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0];

#[derive(Default)]
pub struct Metrics {
    /// `(method, route, status, ws)` → latency histogram.
    requests: Mutex<BTreeMap<(String, String, u16, bool), Histogram>>,
    /// tenant → (lines, bytes) received.
    received: Mutex<BTreeMap<String, (u64, u64)>>,
    /// (reason, tenant) → (lines, bytes) discarded.
    discarded: Mutex<BTreeMap<(&'static str, String), (u64, u64)>>,
    /// Open live-tail connections.
    pub tail_active: AtomicI64,
    next_request_id: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, ws: bool, started: Instant) {
        let mut m = self.requests.lock().unwrap();
        m.entry((method.to_string(), route.to_string(), status, ws)).or_insert_with(|| Histogram::new(REQUEST_BUCKETS)).observe(started.elapsed());
    }

    /// Counts a push: what arrived, and what was dropped by reason.
    pub fn observe_push(&self, tenant: &str, lines: u64, bytes: u64, outcome: &PushOutcome) {
        {
            let mut r = self.received.lock().unwrap();
            let e = r.entry(tenant.to_string()).or_default();
            e.0 += lines;
            e.1 += bytes;
        }
        if !outcome.discarded.is_empty() {
            let mut d = self.discarded.lock().unwrap();
            for (reason, (l, b)) in &outcome.discarded {
                let e = d.entry((reason, tenant.to_string())).or_default();
                e.0 += l;
                e.1 += b;
            }
        }
    }

    /// The whole exposition.
    pub fn render(&self, store: &Store) -> String {
        let mut out = String::with_capacity(8192);
        header(&mut out, "loki_build_info", "gauge", "Build information of silt (named as Loki's).");
        let _ = writeln!(out, "loki_build_info{{version=\"{}\",branch=\"\",revision=\"\",goversion=\"\"}} 1", env!("CARGO_PKG_VERSION"));

        header(&mut out, "loki_request_duration_seconds", "histogram", "Time (in seconds) spent serving HTTP requests.");
        for ((method, route, status, ws), h) in self.requests.lock().unwrap().iter() {
            let labels = format!("method=\"{}\",route=\"{}\",status_code=\"{status}\",ws=\"{ws}\"", escape(method), escape(route));
            histogram(&mut out, "loki_request_duration_seconds", &labels, h);
        }

        let received = self.received.lock().unwrap().clone();
        header(&mut out, "loki_distributor_lines_received_total", "counter", "The total number of lines received per tenant.");
        for (t, (l, _)) in &received {
            let _ = writeln!(out, "loki_distributor_lines_received_total{{tenant=\"{}\"}} {l}", escape(t));
        }
        header(&mut out, "loki_distributor_bytes_received_total", "counter", "The total number of uncompressed bytes received per tenant.");
        for (t, (_, b)) in &received {
            let _ = writeln!(out, "loki_distributor_bytes_received_total{{tenant=\"{}\"}} {b}", escape(t));
        }
        let discarded = self.discarded.lock().unwrap().clone();
        header(&mut out, "loki_discarded_samples_total", "counter", "The total number of samples that were discarded.");
        for ((reason, t), (l, _)) in &discarded {
            let _ = writeln!(out, "loki_discarded_samples_total{{reason=\"{reason}\",tenant=\"{}\"}} {l}", escape(t));
        }
        header(&mut out, "loki_discarded_bytes_total", "counter", "The total number of bytes that were discarded.");
        for ((reason, t), (_, b)) in &discarded {
            let _ = writeln!(out, "loki_discarded_bytes_total{{reason=\"{reason}\",tenant=\"{}\"}} {b}", escape(t));
        }

        let overview = store.tenant_overview();
        header(&mut out, "loki_ingester_memory_streams", "gauge", "The active streams per tenant (pushed to in the last 30 minutes).");
        for (t, _, _, active) in &overview {
            let _ = writeln!(out, "loki_ingester_memory_streams{{tenant=\"{}\"}} {active}", escape(t.as_str()));
        }
        header(&mut out, "silt_chunks", "gauge", "Live chunk files per tenant.");
        for (t, chunks, _, _) in &overview {
            let _ = writeln!(out, "silt_chunks{{tenant=\"{}\"}} {chunks}", escape(t.as_str()));
        }
        header(&mut out, "silt_chunk_bytes", "gauge", "Bytes on disk of the live chunks per tenant.");
        for (t, _, bytes, _) in &overview {
            let _ = writeln!(out, "silt_chunk_bytes{{tenant=\"{}\"}} {bytes}", escape(t.as_str()));
        }
        let sm = store.metrics();
        header(&mut out, "silt_wal_fsync_duration_seconds", "histogram", "Time to write and fsync one WAL group commit.");
        histogram(&mut out, "silt_wal_fsync_duration_seconds", "", &sm.wal_fsync);
        header(&mut out, "silt_flush_duration_seconds", "histogram", "Time to flush the heads to chunks (count: flushes).");
        histogram(&mut out, "silt_flush_duration_seconds", "", &sm.flush);
        header(&mut out, "silt_flushed_rows_total", "counter", "Rows written to chunks by flushes.");
        let _ = writeln!(out, "silt_flushed_rows_total {}", sm.flushed_rows.load(Ordering::Relaxed));
        header(&mut out, "silt_index_cache_bytes", "gauge", "Bytes of chunk footers, needle indexes and field directories held in memory.");
        let _ = writeln!(out, "silt_index_cache_bytes {}", store.index_cache_bytes());
        header(&mut out, "loki_querier_tail_active", "gauge", "Number of active tailers.");
        let _ = writeln!(out, "loki_querier_tail_active {}", self.tail_active.load(Ordering::Relaxed));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |l: &str| if l.is_empty() { String::new() } else { format!("{{{l}}}") };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

/// A label value in the text format: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// dskit's route label: the path template with runs of other characters as `_`,
/// lower-cased (`/loki/api/v1/label/{name}/values` → `loki_api_v1_label_name_values`).
pub fn route_label(template: Option<&str>) -> String {
    let Some(t) = template else { return "other".into() };
    let mut out = String::new();
    for c in t.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "root".into()
    } else {
        out
    }
}

/// Times every request into `loki_request_duration_seconds` and runs it inside a tracing
/// span carrying a request id (also returned as `X-Request-Id`).
pub async fn track(State(metrics): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(req.extensions().get::<MatchedPath>().map(|p| p.as_str()));
    let method = req.method().to_string();
    let ws = req.headers().get("upgrade").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let id = match req.headers().get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(given) if given.len() <= 64 => given.to_string(),
        _ => format!("{:016x}", metrics.next_request_id.fetch_add(1, Ordering::Relaxed) ^ process_salt()),
    };
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::debug!(status, seconds = started.elapsed().as_secs_f64(), "done"));
    metrics.observe_request(&method, &route, status, ws, started);
    if let Ok(v) = id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Makes request ids differ between runs without a random number generator.
fn process_salt() -> u64 {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        t ^ (u64::from(std::process::id()) << 32)
    })
}

/// `GET /metrics`.
pub async fn serve(State(state): State<crate::AppState>) -> Response {
    let body = state.metrics.render(&state.store);
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_as_dskit() {
        assert_eq!(route_label(Some("/loki/api/v1/label/{name}/values")), "loki_api_v1_label_name_values");
        assert_eq!(route_label(Some("/api/prom/push")), "api_prom_push");
        assert_eq!(route_label(Some("/")), "root");
        assert_eq!(route_label(None), "other");
    }
}
