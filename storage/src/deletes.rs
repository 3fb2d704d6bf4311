//! Delete requests (Loki's `/loki/api/v1/delete`): a stream selector, optional line
//! filters, and a time range. A request hides its lines from every read as soon as it is
//! accepted (see [`crate::visibility`]); once its cancel period has passed, the
//! maintenance pass rewrites the chunks that hold them ([`crate::Store::maintain`]) and
//! marks it processed. Processed requests keep filtering reads, so entries that were
//! still in the WAL when the request was processed never reappear.
//!
//! The storage engine does not speak LogQL: a [`DeleteCompiler`] (given by the query
//! layer through [`crate::StoreConfig`]) turns a request's query into matchers and a line
//! predicate, both when a request arrives and when the requests are loaded at startup.
//! Requests live in `<tenant>/deletes.json`, replaced atomically.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, StoreError};
use crate::labels::Labels;
use crate::manifest::write_atomic;
use crate::matcher::Matcher;

const DELETES_FILE: &str = "deletes.json";

/// Decides whether a delete request removes an entry of a matching stream: Loki deletes
/// the entries its pipeline (line filters, parsers, label filters) keeps.
pub trait EntryPredicate: Send + Sync {
    fn matches(&self, labels: &Labels, ts: i64, line: &str, metadata: Option<&[u8]>) -> bool;
}

/// One entry as a delete predicate sees it.
pub(crate) struct Entry<'a> {
    pub labels: &'a Labels,
    pub line: &'a str,
    pub metadata: Option<&'a [u8]>,
}

/// A delete query made executable: which streams, and which of their lines.
#[derive(Clone)]
pub struct CompiledDelete {
    pub matchers: Vec<Matcher>,
    /// `None` when the request removes every entry of the matching streams in its range.
    pub entries: Option<Arc<dyn EntryPredicate>>,
}

/// Turns a delete request's query into a [`CompiledDelete`], or says why it cannot.
#[derive(Clone)]
pub struct DeleteCompiler(pub Arc<dyn Fn(&str) -> std::result::Result<CompiledDelete, String> + Send + Sync>);

impl fmt::Debug for DeleteCompiler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeleteCompiler")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteStatus {
    /// Accepted; lines are hidden from reads; still on disk and cancellable.
    Received,
    /// The chunks were rewritten without the lines.
    Processed,
}

impl DeleteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteStatus::Received => "received",
            DeleteStatus::Processed => "processed",
        }
    }
}

/// A delete request as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub request_id: String,
    pub query: String,
    /// Inclusive bounds, Unix ns.
    pub start: i64,
    pub end: i64,
    /// Unix ns.
    pub created_at: i64,
    pub status: DeleteStatus,
}

/// A request with its compiled query.
#[derive(Clone)]
pub(crate) struct LiveDelete {
    pub req: DeleteRequest,
    pub compiled: CompiledDelete,
}

impl LiveDelete {
    pub fn matches_stream(&self, labels: &Labels) -> bool {
        self.compiled.matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    /// Whether the request overlaps `[start, end)`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.req.start < end && self.req.end >= start
    }

    /// Whether an entry of a matching stream is deleted. `entry` is `None` only when
    /// the request has no predicate (the scan then reads no lines for it).
    #[inline]
    pub fn deletes(&self, ts: i64, entry: Option<&Entry<'_>>) -> bool {
        ts >= self.req.start
            && ts <= self.req.end
            && match (&self.compiled.entries, entry) {
                (None, _) => true,
                (Some(p), Some(e)) => p.matches(e.labels, ts, e.line, e.metadata),
                (Some(_), None) => true,
            }
    }
}

pub(crate) fn load(tenant_dir: &Path, compiler: Option<&DeleteCompiler>) -> Result<Vec<Arc<LiveDelete>>> {
    let path = tenant_dir.join(DELETES_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path.display())(e)),
    };
    let reqs: Vec<DeleteRequest> =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt { path: path.clone(), comment: format!("unreadable delete requests: {e}") })?;
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let compiler = compiler.ok_or_else(|| StoreError::InvalidInput(format!("{} holds delete requests but no delete query compiler is configured", path.display())))?;
    reqs.into_iter()
        .map(|req| {
            let compiled = (compiler.0)(&req.query)
                .map_err(|e| StoreError::Corrupt { path: path.clone(), comment: format!("delete request {}: {e}", req.request_id) })?;
            Ok(Arc::new(LiveDelete { req, compiled }))
        })
        .collect()
}

pub(crate) fn store(tenant_dir: &Path, reqs: &[Arc<LiveDelete>]) -> Result<()> {
    let list: Vec<&DeleteRequest> = reqs.iter().map(|d| &d.req).collect();
    write_atomic(tenant_dir, DELETES_FILE, &serde_json::to_vec_pretty(&list).expect("delete requests serialize"))
}
