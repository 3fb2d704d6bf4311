//! silt's storage engine.
//!
//! Write path: [`Store::push`] checks a push against the tenant's [limits] ([`ingest`]:
//! Loki's validation, rate limits and stream limits), appends it to the [write-ahead log](wal)
//! (fsync'd, group commit), inserts it into the tenant's in-memory [head](head), and only
//! then returns, so an acknowledged push is durable and visible to the next query.
//!
//! Flush: [`Store::flush`] seals the WAL segment, swaps out the heads, and writes them as
//! [chunks](chunk) — Parquet files per tenant and UTC day, sorted by (stream, time), zstd,
//! each with a [label index](label_index) — then swaps the tenant's [manifest] atomically
//! and deletes the WAL segments it covers.
//!
//! Read path: [`Store::scan`] resolves label [matchers](matcher) on each source's label
//! index, prunes by time per stream, and returns [`ScanPart`]s that yield Arrow record
//! batches with the [`log_schema`]. The query crate wraps this as a DataFusion table.
//!
//! On disk:
//! ```text
//! <data_dir>/LOCK                                     held by the one writing process
//! <data_dir>/wal/<segment>.wal                        acknowledged pushes not yet in chunks
//! <data_dir>/tenants/<tenant>/manifest.json           live chunks + WAL checkpoint
//! <data_dir>/tenants/<tenant>/chunks/<day>/<id>.parquet|.idx|.ngr|.fld
//! <data_dir>/tenants/<tenant>/deletes.json            delete requests
//! <data_dir>/retention.json                           the retention the server last ran with
//! <data_dir>/quarantine/                              damaged files set aside by `silt check --repair`
//! ```
//!
//! Maintenance ([`Store::maintain`]): retention (per tenant and stream, hidden from reads
//! at once, removed from disk by rewriting chunks), delete requests, and compaction of
//! small chunks, which also writes their JSON [field columns](fields); see
//! `store/maintain.rs`.

mod check;
pub mod chunk;
mod chunk_cache;
pub mod codec;
mod compact;
mod config;
pub mod deletes;
mod error;
mod failpoint;
pub mod fields;
mod head;
pub mod ingest;
pub mod json;
pub mod label_index;
mod labels;
pub mod limits;
mod line_predicate;
pub mod manifest;
pub mod metrics;
mod matcher;
pub mod needle;
pub mod prehashed;
mod push;
pub mod retention;
mod schema;
mod store;
pub mod tail;
mod tenant;
mod trim;
mod visibility;
pub mod wal;

pub use check::{check, CheckOptions, CheckReport, Problem};
pub use chunk::DEFAULT_COMPACTION_ZSTD_LEVEL;
pub use config::StoreConfig;
pub use error::{Result, StoreError};
pub use ingest::{PushOutcome, Refusal, RefusalKind};
pub use labels::{is_valid_label_name, unquote_prefix, write_go_quoted, LabelError, LabelLimits, Labels};
pub use limits::IngestLimits;
pub use line_predicate::LinePredicate;
pub use matcher::{MatchOp, Matcher};
pub use push::{PushEntry, PushRequest, PushStream};
pub use schema::*;
pub use deletes::{CompiledDelete, DeleteCompiler, DeleteRequest, DeleteStatus, EntryPredicate};
pub use retention::{RetentionConfig, RetentionPolicy, StreamRule};
pub use store::{CancelError, FlushStats, MaintainOptions, RetentionPreview, Scan, ScanPart, ScanRequest, Store, TenantMaintenance, TenantStats};
pub use tail::TailSubscription;
pub use tenant::{TenantId, DEFAULT_TENANT, MAX_TENANT_ID_LEN};

/// The current time as Unix nanoseconds.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}
