//! `GET /loki/api/v1/tail` (and `/api/prom/tail`): live tail over a WebSocket, as Loki
//! serves it to Grafana and logcli.
//!
//! After the upgrade the client first gets the newest `limit` entries since `start`
//! (oldest first), then every new entry that matches the query, within about half a second
//! of its push (`delay_for` seconds later, at most 5, when asked: that gives late entries
//! time to be ordered). Frames are Loki's: `{"streams":[...],"dropped_entries":[...]}`, at
//! most 100 entries each, one stream object per entry. A client that reads too slowly gets
//! `dropped_entries` instead of unbounded buffering (see `silt_storage::tail`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use silt_query::ast::{Expr, LogExpr};
use silt_query::pipeline::{EntryLabels, Pipeline};
use silt_query::{Direction, LogQuery};
use silt_storage::{Labels, TenantId};

use crate::auth::Access;
use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

const MAX_ENTRIES_PER_FRAME: usize = 100;
const MAX_DELAY_FOR_S: i64 = 5;
/// Loki's `tail_max_duration`.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Loki's WebSocket close code for server-side failures.
const CLOSE_ERROR: u16 = 1011;

struct TailRequest {
    tenant: TenantId,
    expr: LogExpr,
    limit: usize,
    start: i64,
    delay_for: i64,
    categorize: bool,
}

pub async fn tail(State(state): State<AppState>, method: Method, RawQuery(q): RawQuery, headers: HeaderMap, ws: WebSocketUpgrade) -> Result<Response, ApiError> {
    let tenant = state.auth.tenant(&headers, Access::Read).map_err(|mut e| {
        // Loki refuses several tenants on tail as a client error.
        if e.message == "multiple org IDs present" {
            e.status = axum::http::StatusCode::BAD_REQUEST;
        }
        e
    })?;
    let p = Params::from_request(&method, q.as_deref(), &headers, &Bytes::new())?;
    let expr = match silt_query::parse(p.get("query").unwrap_or(""))? {
        Expr::Log(e) => e,
        Expr::Metric(_) => return Err(ApiError::bad_request("tail requires a log query")),
    };
    let limit = p.limit(100)?;
    let (start, _) = p.range(3_600_000_000_000)?;
    let delay_for = match p.get("delay_for") {
        None => 0,
        Some(v) => v.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid delay_for: cannot parse \"{v}\" as an integer")))?,
    };
    if delay_for > MAX_DELAY_FOR_S {
        return Err(ApiError::bad_request("delay_for can't be greater than 5"));
    }
    let categorize = headers
        .get("x-loki-response-encoding-flags")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"));
    let req = TailRequest { tenant, expr, limit, start, delay_for: delay_for.max(0), categorize };
    Ok(ws.on_upgrade(move |socket| run(state, req, socket)))
}

async fn run(state: AppState, req: TailRequest, mut socket: WebSocket) {
    let max = state.limits.get(&req.tenant).max_concurrent_tail_requests;
    // Subscribe before the backfill so that nothing pushed meanwhile is missed.
    let mut sub = state.store.tail(&req.tenant);
    let count = state.store.active_tails(&req.tenant);
    if max > 0 && count > max {
        close(&mut socket, format!("max concurrent tail requests limit exceeded, count > limit ({count} > {max})")).await;
        return;
    }
    state.metrics.tail_active.fetch_add(1, Ordering::Relaxed);
    let result = stream(&state, &req, &mut socket, &mut sub).await;
    state.metrics.tail_active.fetch_sub(1, Ordering::Relaxed);
    match result {
        Ok(()) => {}
        Err(why) => close(&mut socket, why).await,
    }
}

async fn close(socket: &mut WebSocket, reason: String) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code: CLOSE_ERROR, reason: reason.into() }))).await;
}

/// One entry ready to send: time, line, and its labels by origin.
struct Out {
    ts: i64,
    line: String,
    stream: Labels,
    metadata: Vec<(String, String)>,
    parsed: Vec<(String, String)>,
}

async fn stream(state: &AppState, req: &TailRequest, socket: &mut WebSocket, sub: &mut silt_storage::TailSubscription) -> Result<(), String> {
    let now = crate::params::now_ns();
    // The backfill: the newest `limit` entries since `start`, oldest first.
    let q = LogQuery { expr: req.expr.clone(), start: req.start, end: now, limit: req.limit, direction: Direction::Backward, interval: 0, categorize: true };
    let streams = state.engine.log_query(std::slice::from_ref(&req.tenant), &q).await.map_err(|e| e.to_string())?;
    let mut backfill: Vec<Out> = streams
        .into_iter()
        .flat_map(|s| {
            let labels = s.labels;
            s.entries.into_iter().map(move |e| Out { ts: e.ts, line: e.line, stream: labels.clone(), metadata: e.metadata, parsed: e.parsed })
        })
        .collect();
    backfill.sort_by_key(|o| o.ts);
    for chunk in backfill.chunks(MAX_ENTRIES_PER_FRAME) {
        send_frame(socket, chunk, &[], req.categorize).await?;
    }

    let pipeline = Pipeline::compile(&req.expr.pipeline).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut pending: BTreeMap<(i64, u64), Out> = BTreeMap::new();
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            batch = sub.recv() => {
                let Some(batch) = batch else { return Err("the server is shutting down".into()) };
                for s in &batch.streams {
                    if !req.expr.selector.iter().all(|m| m.matches(s.labels.get(&m.name).unwrap_or(""))) {
                        continue;
                    }
                    for e in &s.entries {
                        let labels = EntryLabels::new(s.labels.iter(), e.metadata.iter().map(|(a, b)| (a.as_str(), b.as_str())));
                        if let Some((line, out)) = pipeline.process(e.line.as_str(), labels, e.ts) {
                            let (mut stream, mut metadata, mut parsed) = (Vec::new(), Vec::new(), Vec::new());
                            for (origin, n, v) in out.into_categorized() {
                                match origin {
                                    b'm' => metadata.push((n, v)),
                                    b'p' => parsed.push((n, v)),
                                    _ => stream.push((n, v)),
                                }
                            }
                            // The stream labels as the pipeline left them (`drop`, `label_format`).
                            let stream = Labels::from_pairs(stream).unwrap_or_else(|_| s.labels.clone());
                            seq += 1;
                            pending.insert((e.ts, seq), Out { ts: e.ts, line: line.into_owned(), stream, metadata, parsed });
                        }
                    }
                }
            }
            _ = tick.tick() => {}
            _ = ping.tick() => {
                socket.send(Message::Ping(Bytes::new())).await.map_err(|e| e.to_string())?;
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
        if started.elapsed() > MAX_DURATION {
            return Err("reached tail max duration limit".into());
        }
        // Entries are sent once they are `delay_for` old, in time order.
        let cutoff = crate::params::now_ns() - req.delay_for * 1_000_000_000;
        let mut ready = Vec::new();
        while let Some(entry) = pending.first_entry() {
            if req.delay_for > 0 && entry.key().0 > cutoff {
                break;
            }
            ready.push(entry.remove());
        }
        let dropped = sub.take_dropped();
        if ready.is_empty() && !dropped.is_empty() {
            send_frame(socket, &[], &dropped, req.categorize).await?;
        }
        for (i, chunk) in ready.chunks(MAX_ENTRIES_PER_FRAME).enumerate() {
            send_frame(socket, chunk, if i == 0 { &dropped } else { &[] }, req.categorize).await?;
        }
    }
}

async fn send_frame(socket: &mut WebSocket, entries: &[Out], dropped: &[(i64, Labels)], categorize: bool) -> Result<(), String> {
    let streams: Vec<serde_json::Value> = entries
        .iter()
        .map(|o| {
            let obj = |pairs: &[(String, String)]| serde_json::Value::Object(pairs.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect());
            if categorize {
                let mut cats = serde_json::Map::new();
                if !o.metadata.is_empty() {
                    cats.insert("structuredMetadata".into(), obj(&o.metadata));
                }
                if !o.parsed.is_empty() {
                    cats.insert("parsed".into(), obj(&o.parsed));
                }
                serde_json::json!({"stream": labels_obj(&o.stream), "values": [[o.ts.to_string(), o.line, cats]]})
            } else {
                let mut all = o.stream.clone();
                for (n, v) in o.metadata.iter().chain(&o.parsed) {
                    all.set(n, v);
                }
                serde_json::json!({"stream": labels_obj(&all), "values": [[o.ts.to_string(), o.line]]})
            }
        })
        .collect();
    let mut frame = serde_json::Map::new();
    frame.insert("streams".into(), streams.into());
    if !dropped.is_empty() {
        let d: Vec<serde_json::Value> = dropped.iter().map(|(ts, l)| serde_json::json!({"timestamp": ts.to_string(), "labels": labels_obj(l)})).collect();
        frame.insert("dropped_entries".into(), d.into());
    }
    if categorize {
        frame.insert("encodingFlags".into(), serde_json::json!(["categorize-labels"]));
    }
    let text = serde_json::Value::Object(frame).to_string();
    socket.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}

fn labels_obj(l: &Labels) -> serde_json::Value {
    serde_json::Value::Object(l.iter().map(|(k, v)| (k.to_string(), v.into())).collect())
}
