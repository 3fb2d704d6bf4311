//! Errors at the storage crate's edge. Each variant says whether the caller sent bad input
//! ([`StoreError::is_client_error`]) or the store failed, so the server can pick 4xx or 5xx.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A push or query carried something the store does not accept (bad label, bad tenant...).
    /// The message is Loki's wording where Loki has one and goes back to the client verbatim.
    #[error("{0}")]
    InvalidInput(String),
    /// Part of a push was rejected (for example entries too far behind); the rest was stored.
    #[error("{message}")]
    PartialReject { message: String, accepted: usize, rejected: usize },
    #[error("{}: data corruption: {comment}", .path.display())]
    Corrupt { path: PathBuf, comment: String },
    #[error("data directory {} is in use by another silt process (lock file {})", .dir.display(), .dir.join("LOCK").display())]
    Locked { dir: PathBuf },
    #[error("{context}: {source}")]
    Io { context: String, #[source] source: std::io::Error },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("the store is shutting down")]
    Closed,
}

impl StoreError {
    pub fn is_client_error(&self) -> bool {
        matches!(self, StoreError::InvalidInput(_) | StoreError::PartialReject { .. })
    }
}

/// Attaches a human context (usually a path) to io errors: `io(ctx)(err)`.
pub(crate) fn io_err(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context: context.to_string(), source }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
