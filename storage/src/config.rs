//! Storage settings. The defaults are what `silt serve` uses with no configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::deletes::DeleteCompiler;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// fsync the WAL before acknowledging a push. On by default; turning it off means an
    /// acknowledged push can be lost on a machine crash (not on a process crash).
    pub wal_sync: bool,
    /// A WAL segment is sealed once it passes this size.
    pub wal_segment_bytes: u64,
    /// Flush the heads to chunks once they hold this many bytes in all. Also their bound:
    /// a push that finds the heads this full starts a flush of them in the background, or
    /// waits for the flush under way, so ingest memory stays about twice this whatever the
    /// push rate.
    pub flush_max_bytes: usize,
    /// ...or once their oldest unflushed entry arrived this long ago.
    pub flush_max_age: Duration,
    /// How far behind a stream's newest entry an entry may be and still be accepted
    /// (Loki: half of `max_chunk_age`, 1h).
    pub out_of_order_window: Duration,
    /// Rows per Arrow record batch produced by scans and flushes.
    pub batch_rows: usize,
    /// Memory for chunks' Parquet footers, needle indexes and field directories, kept
    /// once read (the least used go first). Needle indexes are about 1.5% of the raw log
    /// text, so the default holds them for some 4 GB of logs; beyond that, queries
    /// over older data read them again.
    pub index_cache_bytes: u64,
    /// Compiles delete requests' LogQL (given by the query layer); without one, delete
    /// requests cannot be made or loaded.
    pub delete_compiler: Option<DeleteCompiler>,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            wal_sync: true,
            wal_segment_bytes: 128 << 20,
            flush_max_bytes: 64 << 20,
            flush_max_age: Duration::from_secs(10 * 60),
            out_of_order_window: Duration::from_secs(3600),
            batch_rows: 8192,
            index_cache_bytes: 64 << 20,
            delete_compiler: None,
        }
    }
}
