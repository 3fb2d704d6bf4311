//! silt's HTTP server: the Loki push and query API over the storage engine and the
//! LogQL engine.
//!
//! ```text
//! POST /loki/api/v1/push, /api/prom/push   push     (discover, limits) -> Store::push
//! POST /otlp/v1/logs                       otlp     (OTLP -> streams)  -> Store::push
//! GET  /loki/api/v1/query_range, /query    query_api                   -> silt_query::Engine
//! GET  /loki/api/v1/labels, /label/{name}/values, /series, /index/*    -> label index, Engine
//! GET  /loki/api/v1/detected_*, /patterns  drilldown                   -> Engine
//! GET  /loki/api/v1/tail (WebSocket)       tail                        -> Store::tail
//! GET  /api/prom/query, /api/prom/label... legacy
//! POST|PUT|GET|DELETE /loki/api/v1/delete  deletes                     -> Store delete requests
//! GET  /metrics, /config, /ready, buildinfo, format_query; POST /flush  metrics, admin
//! POST /compact                            a maintenance pass now      -> Store::maintain
//! ```
//!
//! Every request passes [`auth`] (tenant, token, role) and is timed by [`metrics`];
//! per-tenant [`limits`] come from the config's `[limits]` and `[overrides.<tenant>]`.

pub mod admin;
pub mod auth;
pub mod config;
mod deletes;
pub mod discover;
mod drilldown;
mod error;
mod legacy;
pub mod limits;
pub mod metrics;
pub mod otlp;
pub mod params;
pub mod proto;
pub mod push;
mod tail;
mod query_api;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::Router;
use silt_query::Engine;
use silt_storage::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{FileConfig, ServerConfig};
pub use auth::Auth;
pub use limits::{Limits, TenantLimits};
pub use error::ApiError;

/// Largest accepted request body (before decompression).
pub const MAX_BODY_BYTES: usize = 64 << 20;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub engine: Engine,
    pub limits: Arc<TenantLimits>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<metrics::Metrics>,
    pub compactor: Arc<config::CompactorSection>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push::push))
        .route("/api/prom/push", post(push::push))
        .route("/otlp/v1/logs", post(otlp::logs))
        .route("/loki/api/v1/query_range", get(query_api::query_range).post(query_api::query_range))
        .route("/loki/api/v1/query", get(query_api::query_instant).post(query_api::query_instant))
        .route("/loki/api/v1/labels", get(query_api::labels).post(query_api::labels))
        .route("/loki/api/v1/label", get(query_api::labels).post(query_api::labels))
        .route("/loki/api/v1/label/{name}/values", get(query_api::label_values).post(query_api::label_values))
        .route("/loki/api/v1/series", get(query_api::series).post(query_api::series))
        .route("/api/prom/query", get(legacy::query).post(legacy::query))
        .route("/api/prom/label", get(legacy::labels).post(legacy::labels))
        .route("/api/prom/label/{name}/values", get(legacy::label_values).post(legacy::label_values))
        .route("/api/prom/series", get(query_api::series).post(query_api::series))
        .route("/loki/api/v1/index/stats", get(query_api::index_stats).post(query_api::index_stats))
        .route("/loki/api/v1/index/volume", get(query_api::index_volume).post(query_api::index_volume))
        .route("/loki/api/v1/index/volume_range", get(query_api::index_volume_range).post(query_api::index_volume_range))
        .route("/flush", get(flush).post(flush))
        .route("/compact", post(compact))
        .route("/loki/api/v1/delete", get(deletes::list).post(deletes::create).put(deletes::create).delete(deletes::cancel))
        .route("/ready", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics::serve))
        .route("/config", get(admin::config))
        .route("/loki/api/v1/status/buildinfo", get(admin::buildinfo))
        .route("/loki/api/v1/format_query", get(admin::format_query).post(admin::format_query))
        .route("/loki/api/v1/drilldown-limits", get(admin::drilldown_limits))
        .route("/loki/api/v1/detected_labels", get(drilldown::detected_labels).post(drilldown::detected_labels))
        .route("/loki/api/v1/detected_fields", get(drilldown::detected_fields).post(drilldown::detected_fields))
        .route("/loki/api/v1/detected_field/{name}/values", get(drilldown::detected_field_values).post(drilldown::detected_field_values))
        .route("/loki/api/v1/tail", get(tail::tail))
        .route("/api/prom/tail", get(tail::tail))
        .route("/loki/api/v1/patterns", get(drilldown::patterns).post(drilldown::patterns))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Loki's `/flush`: writes every head to chunks now (Loki flushes its ingesters' chunks).
/// Answers once the chunks and manifests are durable.
async fn flush(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<axum::http::StatusCode, ApiError> {
    state.auth.tenant(&headers, auth::Access::Admin)?;
    state.store.flush().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// One maintenance pass (retention, deletes, compaction), logged.
async fn maintain(state: &AppState) -> Result<Vec<silt_storage::TenantMaintenance>, silt_storage::StoreError> {
    let filter_only = state.limits.filter_only_tenants(&state.store.tenants());
    let report = state.store.maintain(state.compactor.maintain_options(filter_only)).await?;
    for r in &report {
        if r.chunks_expired + r.chunks_rewritten + r.deletes_processed > 0 {
            tracing::info!(
                tenant = %r.tenant, expired = r.chunks_expired, rewritten = r.chunks_rewritten, written = r.chunks_written,
                entries_removed = r.entries_removed, deletes = r.deletes_processed, bytes_before = r.bytes_before, bytes_after = r.bytes_after,
                "maintenance"
            );
        }
    }
    Ok(report)
}

/// `POST /compact` (silt's own, like `/flush`): runs a maintenance pass now (retention,
/// due deletes, compaction) and answers with what it did per tenant.
async fn compact(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<axum::Json<Vec<silt_storage::TenantMaintenance>>, ApiError> {
    state.auth.tenant(&headers, auth::Access::Admin)?;
    Ok(axum::Json(maintain(&state).await?))
}

/// A running server: its address, and a handle to stop it gracefully.
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Whether stopping flushes the heads (always, except for [`Server::crash`]).
    flush_on_stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    store: Store,
}

impl Server {
    /// Opens the store (replaying the WAL), binds `cfg.listen` and starts serving, with a
    /// background task that flushes the heads when they are due.
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<Server> {
        let store_cfg = cfg.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(store_cfg)).await??;
        let listener = TcpListener::bind(&cfg.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let retention = if cfg.compactor.retention_enabled { cfg.limits.retention() } else { Default::default() };
        store.set_retention(retention)?;
        let state = AppState {
            store: store.clone(),
            engine: Engine::new(store.clone()).with_memory_limit(usize::try_from(cfg.query.max_memory).unwrap_or(usize::MAX)),
            limits: Arc::new(cfg.limits.clone()),
            auth: cfg.auth.clone(),
            metrics: Arc::default(),
            compactor: Arc::new(cfg.compactor.clone()),
        };
        let (stop, mut stopped) = watch::channel(false);

        let flusher = {
            let store = store.clone();
            let mut stopped = stop.subscribe();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    if store.flush_due() {
                        if let Err(e) = store.flush().await {
                            tracing::error!(error = %e, "background flush failed; will retry");
                        }
                    }
                }
            })
        };

        let maintainer = {
            let state = state.clone();
            let mut stopped = stop.subscribe();
            tokio::spawn(async move {
                let period = state.compactor.compaction_interval.max(Duration::from_secs(1));
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    if let Err(e) = maintain(&state).await {
                        tracing::error!(error = %e, "maintenance pass failed; will retry");
                    }
                }
            })
        };

        let app = router(state);
        let store2 = store.clone();
        let flush_on_stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flush_flag = flush_on_stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await?;
            flusher.abort();
            let _ = flusher.await;
            maintainer.abort();
            let _ = maintainer.await;
            if flush_flag.load(std::sync::atomic::Ordering::SeqCst) {
                let stats = store2.flush().await?;
                tracing::info!(chunks = stats.chunks, rows = stats.rows, "flushed at shutdown");
            } else {
                // A flush a push started still holds the store open: let it finish, so
                // the data directory is free once the server is stopped.
                store2.wait_for_flush().await;
            }
            Ok(())
        });
        tracing::info!(%addr, data_dir = %cfg.store.data_dir.display(), "silt is listening");
        Ok(Server { addr, stop, flush_on_stop, task, store })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops accepting requests, finishes those in flight, flushes the heads.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await?
    }

    /// Stops without flushing, leaving the heads only in the WAL, as a crash would (the
    /// next start replays it). For tests of the recovery path.
    #[doc(hidden)]
    pub async fn crash(self) -> anyhow::Result<()> {
        self.flush_on_stop.store(false, std::sync::atomic::Ordering::SeqCst);
        self.shutdown().await
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down: finishing requests and flushing");
        self.shutdown().await
    }
}
