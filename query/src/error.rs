//! Errors at the query crate's edge, split the way the HTTP layer needs them: the
//! client's fault (400, message verbatim) or ours (500).

use std::fmt;

/// A LogQL syntax or validation error, worded and positioned as Loki words them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based; 0 with `col` 0 when the error is about the whole query (Loki prints
    /// `parse error : ...`), 0 alone for tokens Loki's lexer assembles from several
    /// characters (a quirk we keep: `parse error at line 0, col 20: ...`).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.message)
        } else {
            write!(f, "parse error at line {}, col {}: {}", self.line, self.col, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A request the engine will not run as asked (bad limit, range, direction...).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
    /// The query needs more memory than one query may use.
    #[error("{0}")]
    MemoryLimit(String),
}

impl QueryError {
    pub fn memory_limit(limit: usize) -> QueryError {
        QueryError::MemoryLimit(format!(
            "the query needs more than its memory limit of {} MiB ([query] max_memory): narrow its time range or selector",
            limit >> 20
        ))
    }

    pub fn is_client_error(&self) -> bool {
        !matches!(self, QueryError::Internal(_))
    }
}

impl From<silt_storage::StoreError> for QueryError {
    fn from(e: silt_storage::StoreError) -> Self {
        if e.is_client_error() {
            QueryError::BadRequest(e.to_string())
        } else {
            QueryError::Internal(e.to_string())
        }
    }
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        match e.find_root() {
            datafusion::error::DataFusionError::ResourcesExhausted(m) => {
                QueryError::MemoryLimit(format!("the query needs more than its memory limit ([query] max_memory): narrow its time range or selector ({m})"))
            }
            // A pipeline error raised inside a UDF comes back wrapped; keep its kind.
            datafusion::error::DataFusionError::External(inner) => match inner.downcast_ref::<QueryError>() {
                Some(QueryError::MemoryLimit(m)) => QueryError::MemoryLimit(m.clone()),
                _ => QueryError::Internal(e.to_string()),
            },
            _ => QueryError::Internal(e.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for QueryError {
    fn from(e: arrow::error::ArrowError) -> Self {
        QueryError::Internal(e.to_string())
    }
}
