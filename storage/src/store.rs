//! The store: the write path (validate, WAL, head, acknowledge), flushes (head to chunks,
//! manifest swap, WAL truncation), startup (manifests, chunk indexes, WAL replay) and the
//! read path (resolve matchers per source, hand out scan parts).
//!
//! Concurrency: an `ingest gate` (async RwLock) is held shared by each push from its WAL
//! append to its head insert, and exclusively by a flush while it seals the WAL segment and
//! swaps out the heads. So every record in a sealed segment is in a frozen head, and the
//! segment can be deleted once that head is in a chunk named by a manifest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arrow::record_batch::RecordBatch;
use roaring::RoaringBitmap;

use crate::chunk::{self, Chunk, ChunkRef, StreamRows};
use crate::chunk_cache::ChunkCache;
use crate::deletes::{self, LiveDelete};
use crate::retention::{RetentionConfig, RetentionPolicy};
use crate::visibility::{Liveness, RowFilter};
use crate::codec::{decode_push, encode_push, encoded_push_size};
use crate::config::StoreConfig;
use crate::error::{io_err, Result, StoreError};
use crate::fields::FieldRequest;
use crate::head::Head;
use crate::ingest::{self, PushOutcome, StreamActivity};
use crate::metrics::StoreMetrics;
use crate::tail::{TailRegistry, TailSubscription};
use crate::limits::{IngestLimits, TokenBucket};
use crate::labels::Labels;
use crate::line_predicate::{self, LinePredicate};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::matcher::Matcher;
use crate::push::PushRequest;
use crate::tenant::TenantId;
use crate::wal::{self, SegmentEnd, Wal, WalOptions};

mod delete_requests;
mod maintain;

pub use delete_requests::CancelError;
pub use maintain::{MaintainOptions, RetentionPreview, TenantMaintenance};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
const RETENTION_FILE: &str = "retention.json";

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: StoreConfig,
    wal: Option<Wal>,
    _lock: Option<File>,
    gate: tokio::sync::RwLock<()>,
    /// One flush at a time; held by a flush that pushes started until it has written its
    /// heads (hence shared, so a background task can own the guard).
    flush_lock: Arc<tokio::sync::Mutex<()>>,
    /// The WAL segment the last freeze sealed: what a retry of its heads checkpoints.
    last_sealed: AtomicU64,
    tenants: RwLock<BTreeMap<TenantId, Arc<Tenant>>>,
    chunk_seq: AtomicU64,
    /// Chunk footers, needle indexes and field directories, within `cfg.index_cache_bytes`.
    cache: Arc<ChunkCache>,
    metrics: Arc<StoreMetrics>,
    tails: Arc<TailRegistry>,
    retention: RwLock<Arc<RetentionConfig>>,
    /// One maintenance pass (retention, deletes, compaction) at a time.
    maintain_lock: tokio::sync::Mutex<()>,
}

struct Tenant {
    id: TenantId,
    dir: PathBuf,
    state: RwLock<TenantState>,
    /// The tenant's ingestion rate bucket.
    rate: Mutex<TokenBucket>,
    activity: Mutex<StreamActivity>,
    /// Held while a manifest is written and the chunk list swapped (flush, maintenance).
    manifest_lock: Mutex<()>,
    deletes: RwLock<Vec<Arc<LiveDelete>>>,
}

#[derive(Default)]
struct TenantState {
    head: Head,
    /// Heads sealed by a flush that are not in chunks yet; still served to queries.
    frozen: Vec<Arc<Head>>,
    chunks: Vec<ChunkRef>,
    checkpoint: u64,
    /// Newest timestamp seen per stream, for the out-of-order window.
    newest: HashMap<u64, i64>,
}

/// A scan's needles as needle-index keys; `None` when none can prune (no needles, or
/// every clause has an alternative too short to look up).
fn needle_clauses(needles: &[Vec<String>]) -> Option<Vec<Vec<Vec<u64>>>> {
    let clauses: Vec<Vec<Vec<u64>>> = needles
        .iter()
        .map(|alts| alts.iter().map(|l| crate::needle::literal_keys(l.as_bytes())).collect::<Vec<_>>())
        .filter(|alts: &Vec<Vec<u64>>| !alts.is_empty() && alts.iter().all(|k| !k.is_empty()))
        .collect();
    (!clauses.is_empty()).then_some(clauses)
}

/// What a scan reads: which streams, which time range, which columns.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub matchers: Vec<Matcher>,
    /// Inclusive, Unix ns.
    pub start: i64,
    /// Exclusive, Unix ns.
    pub end: i64,
    /// Column indices into [`crate::log_schema`]; `None` for all.
    pub projection: Option<Vec<usize>>,
    /// Literals every row's line must contain, as clauses of alternatives (`|= "a" or
    /// "b"` is one clause). Only a hint: chunks skip blocks their needle index rules out;
    /// the caller still filters the lines.
    pub needles: Vec<Vec<String>>,
    /// Field columns to hand out after the projected ones (see [`crate::fields`]).
    pub fields: Option<FieldRequest>,
    /// Only rows whose line this keeps are handed out; chunk lines are then read as
    /// views and only the kept ones copied (see [`crate::LinePredicate`]).
    pub line_predicate: Option<Arc<dyn LinePredicate>>,
}

/// The result of resolving a [`ScanRequest`]: the matching streams' labels and independent
/// parts to read (each may run on its own thread).
pub struct Scan {
    pub streams: HashMap<u64, Labels>,
    pub parts: Vec<ScanPart>,
}

#[derive(Clone)]
pub struct ScanPart {
    source: PartSource,
    start: i64,
    end: i64,
    /// The earliest and latest timestamps the part may hold (within `[start, end)`).
    bounds: (i64, i64),
    projection: Option<Vec<usize>>,
    fields: Option<FieldRequest>,
    batch_rows: usize,
    /// Expired and deleted entries to cut, when there are any.
    filter: Option<Arc<RowFilter>>,
    /// The request's line predicate.
    lines: Option<Arc<dyn LinePredicate>>,
}

#[derive(Clone)]
enum PartSource {
    /// Rows copied from the live head, holding the columns named (all when `None`).
    Batches(Vec<RecordBatch>, Option<Vec<usize>>),
    Frozen(Arc<Head>, RoaringBitmap),
    /// A chunk's streams, the needle-index blocks that may match (all when `None`), and
    /// the rows of the file this part is limited to (all when `None`).
    Chunk(ChunkRef, Arc<Vec<usize>>, Option<Arc<Vec<bool>>>, Option<(u64, u64)>),
}

/// `batch` followed by field columns for `n` names that say no row is exact.
fn without_fields(batch: RecordBatch, n: usize) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let schema = crate::schema::with_field_columns(&batch.schema(), n);
    let mut cols = batch.columns().to_vec();
    cols.push(Arc::new(arrow::array::BooleanArray::from(vec![false; rows])));
    cols.extend((0..n).map(|_| arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, rows)));
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Parts smaller than this are not split: a share of a scan should be worth a thread.
const MIN_SPLIT_ROWS: u64 = 16 * 1024;

impl ScanPart {
    /// About how many rows the part reads: for chunks, the rows selected before the cut
    /// to the time range; for copied head rows, those rows; 0 for frozen heads (small,
    /// never split).
    pub fn estimated_rows(&self) -> u64 {
        match &self.source {
            PartSource::Batches(b, _) => b.iter().map(|b| b.num_rows() as u64).sum(),
            PartSource::Frozen(..) => 0,
            PartSource::Chunk(c, ordinals, blocks, window) => c.row_ranges_in(ordinals, blocks.as_deref().map(Vec::as_slice), *window).iter().map(|r| r.1 - r.0).sum(),
        }
    }

    /// The part cut into about `n` parts of equal rows (a chunk part, by row ranges of its
    /// file), so one big chunk can be read by several threads. Other parts, and parts too
    /// small to be worth it, come back whole.
    pub fn split(self, n: usize) -> Vec<ScanPart> {
        let PartSource::Chunk(c, ordinals, blocks, window) = &self.source else { return vec![self] };
        let mut ranges = c.row_ranges_in(ordinals, blocks.as_deref().map(Vec::as_slice), *window);
        ranges.sort_unstable();
        let total: u64 = ranges.iter().map(|r| r.1 - r.0).sum();
        let n = (n as u64).min(total / MIN_SPLIT_ROWS).max(1);
        if n < 2 {
            return vec![self];
        }
        // Cut where the selected rows reach each k/n share.
        let mut cuts = vec![ranges[0].0];
        let (mut seen, mut k) = (0u64, 1u64);
        for &(a, b) in &ranges {
            while k < n && seen + (b - a) >= total * k / n {
                cuts.push(a + (total * k / n - seen));
                k += 1;
            }
            seen += b - a;
        }
        cuts.push(ranges[ranges.len() - 1].1);
        cuts.windows(2)
            .filter(|w| w[0] < w[1])
            .map(|w| ScanPart {
                source: PartSource::Chunk(c.clone(), ordinals.clone(), blocks.clone(), Some((w[0], w[1]))),
                start: self.start,
                end: self.end,
                bounds: self.bounds,
                projection: self.projection.clone(),
                fields: self.fields.clone(),
                batch_rows: self.batch_rows,
                filter: self.filter.clone(),
                lines: self.lines.clone(),
            })
            .collect()
    }

    /// The earliest and latest timestamps the part may hold, within the scan's range. A
    /// bound, not a measure: rows cut by the needle index or by deletes may be gone.
    pub fn time_bounds(&self) -> (i64, i64) {
        self.bounds
    }

    /// The part cut into pieces that can be read in time order: a chunk part into one
    /// piece per stream and needle-index block (pages of [`crate::needle::BLOCK_ROWS`]
    /// rows) it reads, each with time bounds; other parts, and chunks without a needle
    /// index, come back whole. Reading every piece reads the part.
    ///
    /// A block's bounds hold for a stream's rows in it when the block lies within the
    /// stream. Where a block holds the end of one stream and the start of the next, a
    /// stream's rows there are bounded by the blocks of that stream around it (its rows
    /// are in time order), so no piece spans a whole day just for sharing a block.
    pub fn pieces(self) -> Vec<ScanPart> {
        let PartSource::Chunk(c, ordinals, blocks, window) = &self.source else { return vec![self] };
        let Some(ni) = c.needle_index() else { return vec![self] };
        let bs = crate::needle::BLOCK_ROWS as u64;
        let file_rows = c.meta.rows;
        let time = |k: u64| ni.block_time(k as usize);
        let mut out = Vec::new();
        for &o in ordinals.iter() {
            let st = &c.index.streams[o];
            let (first, end) = (st.row_start, st.row_start + st.rows);
            let (a, b) = match window {
                Some((lo, hi)) => (first.max(*lo), end.min(*hi)),
                None => (first, end),
            };
            if a >= b {
                continue;
            }
            // Each piece reads this one stream: its rows are quick to count, and pieces
            // of the stream that follow each other can be joined again.
            let only = Arc::new(vec![o]);
            // Block `k` holds rows of this stream only.
            let inside = |k: u64| k * bs >= first && ((k + 1) * bs).min(file_rows) <= end;
            for blk in a / bs..b.div_ceil(bs) {
                if !blocks.as_ref().is_none_or(|m| m.get(blk as usize).copied().unwrap_or(true)) {
                    continue;
                }
                let (lo, hi) = if inside(blk) {
                    time(blk).unwrap_or((st.min_ts, st.max_ts))
                } else {
                    let lo = blk.checked_sub(1).filter(|&k| inside(k)).and_then(time).map_or(st.min_ts, |t| t.1);
                    let hi = Some(blk + 1).filter(|&k| inside(k)).and_then(time).map_or(st.max_ts, |t| t.0);
                    (lo, hi)
                };
                let mut piece = self.clone();
                piece.source = PartSource::Chunk(c.clone(), only.clone(), blocks.clone(), Some((a.max(blk * bs), b.min((blk + 1) * bs))));
                piece.bounds = (lo.max(st.min_ts).max(self.bounds.0), hi.min(st.max_ts).min(self.bounds.1));
                out.push(piece);
            }
        }
        if out.len() < 2 {
            return vec![self];
        }
        out
    }

    /// Pieces of one chunk part (see [`Self::pieces`]) that follow each other in the file
    /// joined back into one part, so a group of them is read by one reader; the order of
    /// the rest is kept.
    pub fn join_pieces(parts: Vec<ScanPart>) -> Vec<ScanPart> {
        let mut out: Vec<ScanPart> = Vec::with_capacity(parts.len());
        let mut sorted: Vec<(usize, ScanPart)> = parts.into_iter().enumerate().collect();
        // Pieces of the same part next to each other, in file order.
        let key = |p: &ScanPart| match &p.source {
            PartSource::Chunk(c, o, _, w) => (Arc::as_ptr(c) as usize, Arc::as_ptr(o) as usize, w.map_or(0, |w| w.0)),
            _ => (0, 0, 0),
        };
        sorted.sort_by_key(|(i, p)| (key(p), *i));
        for (_, p) in sorted {
            if let Some(last) = out.last_mut() {
                if let (PartSource::Chunk(c1, o1, b1, Some(w1)), PartSource::Chunk(c2, o2, b2, Some(w2))) = (&mut last.source, &p.source) {
                    let same_blocks = b1.as_ref().map(Arc::as_ptr) == b2.as_ref().map(Arc::as_ptr);
                    if Arc::ptr_eq(c1, c2) && Arc::ptr_eq(o1, o2) && same_blocks && w1.1 == w2.0 {
                        w1.1 = w2.1;
                        last.bounds = (last.bounds.0.min(p.bounds.0), last.bounds.1.max(p.bounds.1));
                        continue;
                    }
                }
            }
            out.push(p);
        }
        out
    }

    /// Reads the part. Blocking (file I/O): call from a blocking-friendly thread.
    pub fn execute(mut self) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
        let (filter, lines) = (self.filter.take(), self.lines.take());
        if filter.is_none() && lines.is_none() {
            return self.read(false);
        }
        // Read what the cuts need too, cut, then hand out the requested columns.
        let wanted: Vec<usize> = self.projection.clone().unwrap_or_else(|| (0..crate::schema::log_schema().fields().len()).collect());
        let needs_entries = filter.as_ref().is_some_and(|f| f.needs_entries());
        let mut read = wanted.clone();
        if filter.is_some() {
            read.extend([crate::schema::IDX_STREAM, crate::schema::IDX_TS]);
        }
        if needs_entries {
            read.extend([crate::schema::IDX_LINE, crate::schema::IDX_METADATA]);
        }
        if lines.is_some() {
            read.push(crate::schema::IDX_LINE);
        }
        read.sort_unstable();
        read.dedup();
        let pos = |c: usize| read.iter().position(|&r| r == c).expect("the column is read");
        let cut = filter.map(|f| (f, pos(crate::schema::IDX_STREAM), pos(crate::schema::IDX_TS)));
        let line = lines.is_some().then(|| pos(crate::schema::IDX_LINE));
        // Lines nobody reads after the cut are not copied out of their pages.
        let plain_lines = needs_entries || wanted.contains(&crate::schema::IDX_LINE);
        let entry = needs_entries.then(|| (pos(crate::schema::IDX_LINE), pos(crate::schema::IDX_METADATA)));
        let mut out: Vec<usize> = wanted.iter().map(|&c| pos(c)).collect();
        if let Some(f) = &mut self.fields {
            // The field columns come after the columns read; a cut that looks at lines
            // needs every line.
            out.extend(read.len()..read.len() + 1 + f.names.len());
            f.may_skip_lines &= !needs_entries && lines.is_none();
        }
        self.projection = Some(read);
        Box::new(self.read(lines.is_some()).filter_map(move |b| {
            let b = b.and_then(|mut b| {
                if let (Some(p), Some(line)) = (&lines, line) {
                    b = line_predicate::apply(p.as_ref(), b, line, plain_lines)?;
                }
                if let Some((f, stream, ts)) = cut.as_ref().filter(|_| b.num_rows() > 0) {
                    b = f.apply(b, *stream, *ts, entry)?;
                }
                Ok(b.project(&out)?)
            });
            match b {
                Ok(b) if b.num_rows() == 0 => None,
                other => Some(other),
            }
        }))
    }

    /// The part's rows, with the columns of `self.projection`; chunk lines as `Utf8View`
    /// when `line_views` (see [`crate::LinePredicate`]), else `Utf8`.
    fn read(self, line_views: bool) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
        let head_fields = self.fields.as_ref().filter(|_| !matches!(self.source, PartSource::Chunk(..))).map(|f| f.names.len());
        if let Some(n) = head_fields {
            // Head rows have no field columns: none is exact.
            let mut inner = self;
            inner.fields = None;
            return Box::new(inner.read(line_views).map(move |b| b.and_then(|b| without_fields(b, n))));
        }
        let proj = self.projection.as_deref();
        match self.source {
            PartSource::Batches(b, held) => match (proj, held) {
                (Some(p), None) => {
                    let p = p.to_vec();
                    Box::new(b.into_iter().map(move |b| b.project(&p).map_err(Into::into)))
                }
                _ => Box::new(b.into_iter().map(Ok)),
            },
            PartSource::Frozen(head, ids) => {
                Box::new(head.scan(&ids, self.start, self.end, proj, self.batch_rows).into_iter().map(Ok))
            }
            PartSource::Chunk(c, ordinals, blocks, window) => match c.scan_blocks(&ordinals, blocks.as_deref().map(Vec::as_slice), window, self.start, self.end, proj, self.fields.as_ref(), self.batch_rows, line_views) {
                Ok(it) => Box::new(it),
                Err(e) => Box::new(std::iter::once(Err(e))),
            },
        }
    }
}

impl Store {
    /// Opens `cfg.data_dir` for reading and writing: takes the directory lock, loads the
    /// manifests and chunk indexes, replays the WAL, and starts a new WAL segment.
    pub fn open(cfg: StoreConfig) -> Result<Store> {
        let dir = cfg.data_dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { dir }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(lock_path.display())(e)),
        }
        let cache = Arc::new(ChunkCache::new(cfg.index_cache_bytes));
        let mut tenants = load_tenants(&dir, true, cfg.delete_compiler.as_ref(), &cache)?;
        let wal_dir = dir.join("wal");
        let replayed = replay_wal(&wal_dir, &mut tenants, true)?;
        let metrics = Arc::new(StoreMetrics::default());
        // New records must land in segments past every checkpoint, or a replay would skip
        // them as flushed: even if the WAL directory was emptied by hand.
        let newest_checkpoint = tenants.values().map(|t| t.state.read().unwrap().checkpoint).max().unwrap_or(0);
        let first = replayed.last.max(newest_checkpoint) + 1;
        let wal = Wal::open(&wal_dir, first, WalOptions { sync: cfg.wal_sync, segment_bytes: cfg.wal_segment_bytes, metrics: metrics.clone() })?;
        // Segments with nothing left to replay would otherwise stay until the next flush,
        // and one more (empty) is left by every restart that pushes nothing. Failing to
        // delete one loses nothing: the next flush's truncation tries again.
        if let Err(e) = wal.remove(&replayed.spent) {
            tracing::warn!(error = %e, "could not delete spent WAL segments");
        }
        Ok(Store::from_parts(cfg, Some(wal), Some(lock), tenants, cache, metrics))
    }

    /// Opens a data directory read-only, for example while a server runs on it: loads the
    /// chunks and reads the WAL into memory, writing nothing. A flush that lands while we
    /// read is detected (a manifest's checkpoint moved, or a segment vanished) and the load
    /// is retried.
    pub fn open_read_only(cfg: StoreConfig) -> Result<Store> {
        let dir = cfg.data_dir.clone();
        if !dir.join("wal").is_dir() && !dir.join("tenants").is_dir() {
            return Err(StoreError::InvalidInput(format!("{} is not a silt data directory", dir.display())));
        }
        let mut last_err = None;
        let cache = Arc::new(ChunkCache::new(cfg.index_cache_bytes));
        for _ in 0..5 {
            let mut tenants = load_tenants(&dir, false, cfg.delete_compiler.as_ref(), &cache)?;
            match replay_wal(&dir.join("wal"), &mut tenants, false) {
                Ok(_) => {
                    let again = load_checkpoints(&dir)?;
                    let stable = tenants.iter().all(|(id, t)| again.get(id).copied().unwrap_or(0) == t.state.read().unwrap().checkpoint);
                    if stable {
                        return Ok(Store::from_parts(cfg, None, None, tenants, cache, Arc::default()));
                    }
                }
                Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| StoreError::InvalidInput("the data directory kept changing while it was read; try again".into())))
    }

    fn from_parts(cfg: StoreConfig, wal: Option<Wal>, lock: Option<File>, tenants: BTreeMap<TenantId, Arc<Tenant>>, cache: Arc<ChunkCache>, metrics: Arc<StoreMetrics>) -> Store {
        let retention = load_retention(&cfg.data_dir);
        Store {
            inner: Arc::new(Inner {
                cfg,
                wal,
                _lock: lock,
                gate: tokio::sync::RwLock::new(()),
                flush_lock: Arc::default(),
                last_sealed: AtomicU64::new(0),
                tenants: RwLock::new(tenants),
                chunk_seq: AtomicU64::new(0),
                cache,
                metrics,
                tails: Arc::default(),
                retention: RwLock::new(Arc::new(retention)),
                maintain_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Sets every tenant's retention. Reads hide expired entries from now on; the next
    /// maintenance pass removes them. A writable store records it in the data directory
    /// so that read-only tools (`silt query`) apply the same.
    pub fn set_retention(&self, retention: RetentionConfig) -> Result<()> {
        if !self.is_read_only() {
            let bytes = serde_json::to_vec_pretty(&retention.to_file()).expect("retention serializes");
            crate::manifest::write_atomic(&self.inner.cfg.data_dir, RETENTION_FILE, &bytes)?;
        }
        *self.inner.retention.write().unwrap() = Arc::new(retention);
        Ok(())
    }

    /// The retention in force.
    pub fn retention(&self) -> Arc<RetentionConfig> {
        self.inner.retention.read().unwrap().clone()
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.wal.is_none()
    }

    fn tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        self.inner.tenants.read().unwrap().get(id).cloned()
    }

    fn tenant_or_create(&self, id: &TenantId) -> Arc<Tenant> {
        if let Some(t) = self.tenant(id) {
            return t;
        }
        let mut w = self.inner.tenants.write().unwrap();
        w.entry(id.clone()).or_insert_with(|| new_tenant(&self.inner.cfg.data_dir, id.clone(), TenantState::default())).clone()
    }

    /// Checks one push against the tenant's `limits` (see [`crate::ingest`]), logs what
    /// passes durably, and makes it visible. The outcome says what was dropped and why.
    pub async fn push(&self, tenant: &TenantId, mut req: PushRequest, limits: &IngestLimits) -> Result<PushOutcome> {
        let wal = self.inner.wal.as_ref().ok_or_else(|| StoreError::InvalidInput("the store is open read-only".into()))?;
        let cfg = &self.inner.cfg;
        let t = self.tenant_or_create(tenant);
        let mut outcome = PushOutcome::default();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        ingest::validate(&mut req, limits, now, &mut outcome);
        if req.streams.is_empty() || !ingest::check_rate(&mut req, tenant.as_str(), limits, &mut t.rate.lock().unwrap(), &mut outcome) {
            return Ok(outcome);
        }
        {
            let window = i64::try_from(cfg.out_of_order_window.as_nanos()).unwrap_or(i64::MAX);
            let state = t.state.read().unwrap();
            let mut activity = t.activity.lock().unwrap();
            ingest::admit(&mut req, tenant.as_str(), limits, &mut activity, &state.newest, window, &mut outcome);
        }
        if req.streams.is_empty() {
            return Ok(outcome);
        }

        // Backpressure: the heads never outgrow the configured size while a flush is
        // behind. The push that finds them full starts a flush (or waits for the one under
        // way).
        if self.live_head_bytes() >= cfg.flush_max_bytes {
            self.flush_behind().await?;
        }
        let mut payload = Vec::with_capacity(encoded_push_size(tenant, &req));
        encode_push(tenant, &req, &mut payload);
        let _gate = self.inner.gate.read().await;
        wal.append(payload).await?;
        {
            let mut state = t.state.write().unwrap();
            outcome.accepted += apply_push(&mut state, &req);
        }
        self.inner.tails.publish(tenant, &req);
        Ok(outcome)
    }

    /// Subscribes to the tenant's pushes from now on (live tail).
    pub fn tail(&self, tenant: &TenantId) -> TailSubscription {
        self.inner.tails.subscribe(tenant)
    }

    /// Live tails of a tenant.
    pub fn active_tails(&self, tenant: &TenantId) -> usize {
        self.inner.tails.active(tenant)
    }

    /// Streams of `tenant` that received data in the last 30 minutes.
    pub fn active_streams(&self, tenant: &TenantId) -> usize {
        self.tenant(tenant).map_or(0, |t| t.activity.lock().unwrap().active())
    }

    /// Bytes in the live heads (not counting heads being flushed).
    fn live_head_bytes(&self) -> usize {
        self.inner.tenants.read().unwrap().values().map(|t| t.state.read().unwrap().head.bytes).sum()
    }

    /// Whether the heads are due for a flush (size or age threshold).
    pub fn flush_due(&self) -> bool {
        let cfg = &self.inner.cfg;
        let mut bytes = 0;
        for t in self.inner.tenants.read().unwrap().values() {
            let s = t.state.read().unwrap();
            bytes += s.head.bytes;
            if s.head.first_insert.is_some_and(|f| f.elapsed() >= cfg.flush_max_age) {
                return true;
            }
        }
        bytes >= cfg.flush_max_bytes
    }

    /// Writes every head to chunks, swaps the manifests, and deletes the WAL segments they
    /// cover. Pushes continue meanwhile (into fresh heads); queries see the data throughout.
    pub async fn flush(&self) -> Result<FlushStats> {
        let guard = self.inner.flush_lock.clone().lock_owned().await;
        let store = self.clone();
        // In a task of its own, holding the lock, so that a caller that goes away (a
        // client hanging up, a task aborted at shutdown) cannot leave heads half written
        // while the next flush writes them again.
        tokio::spawn(async move {
            let _one_at_a_time = guard;
            let store = store;
            let mut stats = store.retry_failed().await?;
            if let Some(frozen) = store.freeze().await? {
                let more = store.write_frozen(frozen).await?;
                stats.chunks += more.chunks;
                stats.rows += more.rows;
                stats.bytes += more.bytes;
            }
            Ok(stats)
        })
        .await
        .map_err(|e| StoreError::Io { context: "flush task".into(), source: std::io::Error::other(e.to_string()) })?
    }

    /// For a push that found the live heads full: waits for the flush under way, if any,
    /// then freezes the heads and writes them in the background, so the push (and the
    /// ones after it) go on filling fresh heads while the chunks are written. The heads
    /// thus hold at most one full generation being written and one filling.
    async fn flush_behind(&self) -> Result<()> {
        let guard = self.inner.flush_lock.clone().lock_owned().await;
        if self.live_head_bytes() < self.inner.cfg.flush_max_bytes {
            // Another push flushed them while this one waited.
            return Ok(());
        }
        let store = self.clone();
        let (frozen_tx, frozen_rx) = tokio::sync::oneshot::channel();
        // The flush runs to its end in its own task, holding the lock (see `flush`); the
        // push waits only until the heads are frozen.
        tokio::spawn(async move {
            let _one_at_a_time = guard;
            // Dropped before the lock is released: once a waiter has the lock, no flush
            // still holds the store (and its directory lock) open.
            let store = store;
            // The push fails if heads a flush could not write still cannot be written.
            let frozen = async {
                store.retry_failed().await?;
                store.freeze().await
            };
            let frozen = match frozen.await {
                Ok(Some(f)) => f,
                other => {
                    let _ = frozen_tx.send(other.map(|_| ()));
                    return;
                }
            };
            let _ = frozen_tx.send(Ok(()));
            if let Err(e) = store.write_frozen(frozen).await {
                tracing::error!(error = %e, "flush started by a push failed; the data stays in the WAL and the heads, and the next full head retries it");
            }
        });
        frozen_rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits for a flush under way (one a push started, say) to finish.
    pub async fn wait_for_flush(&self) {
        let _ = self.inner.flush_lock.lock().await;
    }

    /// Writes the heads a failed flush left frozen, on their own: frozen heads pile up no
    /// further while the failure lasts, so pushes that find the live heads full fail
    /// instead of growing memory. The caller holds `flush_lock`, so no other flush has
    /// heads frozen, and the failed one sealed the WAL last.
    async fn retry_failed(&self) -> Result<FlushStats> {
        let tenants: Vec<Arc<Tenant>> = self.inner.tenants.read().unwrap().values().cloned().collect();
        if !tenants.iter().any(|t| !t.state.read().unwrap().frozen.is_empty()) {
            return Ok(FlushStats::default());
        }
        let sealed = self.inner.last_sealed.load(Ordering::Relaxed);
        self.write_frozen(Frozen { tenants, sealed }).await
    }

    /// Seals the WAL segment and moves every tenant's live head to its frozen heads, where
    /// queries still see it; `None` when there is nothing to flush. The caller holds
    /// `flush_lock`.
    async fn freeze(&self) -> Result<Option<Frozen>> {
        let Some(wal) = self.inner.wal.as_ref() else { return Ok(None) };
        let all_empty = || self.inner.tenants.read().unwrap().values().all(|t| t.state.read().unwrap().head.is_empty());
        if all_empty() {
            // Nothing to flush: spare the pushes the wait for the gate.
            return Ok(None);
        }
        // Under the gate, no push is between its WAL append and its head insert, and the
        // tenant list includes every tenant whose records the sealed segment holds.
        let _gate = self.inner.gate.write().await;
        if all_empty() {
            return Ok(None);
        }
        let tenants: Vec<Arc<Tenant>> = self.inner.tenants.read().unwrap().values().cloned().collect();
        let sealed = wal.rotate().await?;
        self.inner.last_sealed.store(sealed, Ordering::Relaxed);
        for t in &tenants {
            let mut s = t.state.write().unwrap();
            if !s.head.is_empty() {
                let h = std::mem::take(&mut s.head);
                s.frozen.push(Arc::new(h));
            }
        }
        Ok(Some(Frozen { tenants, sealed }))
    }

    /// Writes the frozen heads to chunks, commits them (dropping those heads in the same
    /// step), and deletes the WAL segments up to `sealed`. The caller holds `flush_lock`.
    async fn write_frozen(&self, Frozen { tenants, sealed }: Frozen) -> Result<FlushStats> {
        let Some(wal) = self.inner.wal.as_ref() else { return Ok(FlushStats::default()) };
        let started = std::time::Instant::now();
        let inner = self.inner.clone();
        let work = tenants.clone();
        let results = tokio::task::spawn_blocking(move || {
            work.iter()
                .map(|t| {
                    let frozen = t.state.read().unwrap().frozen.clone();
                    if frozen.is_empty() {
                        return Ok((Vec::new(), frozen));
                    }
                    let chunks = flush_tenant(&inner, t, &frozen)?;
                    let added = commit(t, "flush", &[], chunks, Some(sealed), |s| s.frozen.retain(|h| !frozen.iter().any(|f| Arc::ptr_eq(f, h))))?;
                    Ok((added, frozen))
                })
                .collect::<Vec<Result<_>>>()
        })
        .await
        .map_err(|e| StoreError::Io { context: "flush task".into(), source: std::io::Error::other(e.to_string()) })?;

        let mut stats = FlushStats::default();
        let mut first_err = None;
        for (t, r) in tenants.iter().zip(results) {
            match r {
                Ok((chunks, _)) => {
                    stats.chunks += chunks.len();
                    stats.rows += chunks.iter().map(|c| c.meta.rows).sum::<u64>();
                    stats.bytes += chunks.iter().map(|c| c.meta.bytes).sum::<u64>();
                }
                Err(e) => {
                    tracing::error!(tenant = %t.id, error = %e, "flush failed; the data stays in the WAL and the head");
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        wal.remove_upto(sealed)?;
        self.inner.metrics.flush.observe(started.elapsed());
        self.inner.metrics.flushed_rows.fetch_add(stats.rows, Ordering::Relaxed);
        Ok(stats)
    }

    /// The store's own counters (WAL syncs, flushes).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// Bytes of chunk footers, needle indexes and field directories held in memory
    /// (at most `index_cache_bytes`).
    pub fn index_cache_bytes(&self) -> u64 {
        self.inner.cache.bytes()
    }

    /// Per tenant: live chunks, their bytes on disk, and active streams.
    pub fn tenant_overview(&self) -> Vec<(TenantId, usize, u64, usize)> {
        let tenants: Vec<Arc<Tenant>> = self.inner.tenants.read().unwrap().values().cloned().collect();
        tenants
            .iter()
            .map(|t| {
                let s = t.state.read().unwrap();
                let bytes = s.chunks.iter().map(|c| c.meta.bytes).sum();
                (t.id.clone(), s.chunks.len(), bytes, t.activity.lock().unwrap().active())
            })
            .collect()
    }

    /// Resolves a scan: per source (head, sealed heads, chunks), the matching streams in
    /// the time range. Reading happens when the parts are executed.
    pub fn scan(&self, tenant: &TenantId, req: &ScanRequest) -> Result<Scan> {
        let mut scan = Scan { streams: HashMap::new(), parts: Vec::new() };
        if let Some(p) = &req.projection {
            if p.iter().any(|&c| c >= crate::schema::log_schema().fields().len()) {
                return Err(StoreError::InvalidInput(format!("bad projection {p:?}")));
            }
        }
        let Some(t) = self.tenant(tenant) else { return Ok(scan) };
        let mut live = Liveness::new(self.retention_of(tenant), t.deletes.read().unwrap().clone(), req.start);
        let start = live.start;
        if start >= req.end {
            return Ok(scan);
        }
        let batch_rows = self.inner.cfg.batch_rows;
        // The row filter is only known once the streams are; parts get it at the end.
        let part = |source, (lo, hi): (i64, i64)| ScanPart {
            source,
            start,
            end: req.end,
            bounds: (lo.max(start), hi.min(req.end - 1)),
            projection: req.projection.clone(),
            fields: req.fields.clone(),
            batch_rows,
            filter: None,
            lines: req.line_predicate.clone(),
        };
        let s = t.state.read().unwrap();
        let mut heads: Vec<&Head> = vec![&s.head];
        heads.extend(s.frozen.iter().map(|h| h.as_ref()));
        for (i, h) in heads.iter().enumerate() {
            let ids = h.index.resolve(&req.matchers);
            let mut hit = RoaringBitmap::new();
            let mut bounds = (i64::MAX, i64::MIN);
            for st in h.streams_overlapping(&ids, start, req.end) {
                if !live.stream_visible(st.fp, &st.labels, st.max_ts) {
                    continue;
                }
                scan.streams.entry(st.fp).or_insert_with(|| st.labels.clone());
                hit.insert(h.stream_id(st.fp).expect("stream is in its head"));
                bounds = (bounds.0.min(st.min_ts), bounds.1.max(st.max_ts));
            }
            if hit.is_empty() {
                continue;
            }
            if i == 0 {
                // The live head changes under pushes: copy its rows now, under the lock.
                // Keep every column when rows may be cut: the cuts need stream, ts, line.
                let held = if live.may_filter() || req.line_predicate.is_some() { None } else { req.projection.clone() };
                scan.parts.push(part(PartSource::Batches(h.scan(&hit, start, req.end, held.as_deref(), batch_rows), held), bounds));
            } else {
                scan.parts.push(part(PartSource::Frozen(s.frozen[i - 1].clone(), hit), bounds));
            }
        }
        let needle_keys = needle_clauses(&req.needles);
        for c in &s.chunks {
            if c.meta.min_ts >= req.end || c.meta.max_ts < start {
                continue;
            }
            let ids = c.index.labels.resolve(&req.matchers);
            let mut ordinals = c.select(&ids, start, req.end);
            ordinals.retain(|&o| {
                let st = &c.index.streams[o];
                live.stream_visible(st.fp, &st.labels, st.max_ts)
            });
            // Blocks: those the needles may be in, and those overlapping the time range
            // (a query over the last minutes of a day reads those pages only).
            let partial_time = start > c.meta.min_ts || req.end <= c.meta.max_ts;
            let blocks = match c.needle_index() {
                Some(ni) if needle_keys.is_some() || partial_time => Some(ni.candidate_blocks(needle_keys.as_deref().unwrap_or(&[]), start, req.end)),
                _ => None,
            };
            if let Some(b) = &blocks {
                ordinals.retain(|&o| c.stream_in_blocks(o, b));
            }
            if ordinals.is_empty() {
                continue;
            }
            let mut bounds = (i64::MAX, i64::MIN);
            for &o in &ordinals {
                let st = &c.index.streams[o];
                scan.streams.entry(st.fp).or_insert_with(|| st.labels.clone());
                bounds = (bounds.0.min(st.min_ts), bounds.1.max(st.max_ts));
            }
            scan.parts.push(part(PartSource::Chunk(c.clone(), Arc::new(ordinals), blocks.map(Arc::new), None), bounds));
        }
        drop(s);
        let filter = live.into_filter(&scan.streams, req.end);
        if let Some(f) = filter {
            let f = Arc::new(f);
            for p in &mut scan.parts {
                p.filter = Some(f.clone());
            }
        }
        Ok(scan)
    }

    /// The label sets of the streams that match and have entries in `[start, end)`.
    pub fn series(&self, tenant: &TenantId, matchers: &[Matcher], start: i64, end: i64) -> Vec<Labels> {
        let mut out: BTreeMap<u64, Labels> = BTreeMap::new();
        self.for_each_stream(tenant, matchers, start, end, |fp, l| {
            out.entry(fp).or_insert_with(|| l.clone());
        });
        let mut v: Vec<Labels> = out.into_values().collect();
        v.sort();
        v
    }

    /// Label names of the matching streams with entries in `[start, end)`, sorted.
    pub fn label_names(&self, tenant: &TenantId, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut names = BTreeSet::new();
        self.for_each_stream(tenant, matchers, start, end, |_, l| {
            for (n, _) in l.iter() {
                if !names.contains(n) {
                    names.insert(n.to_string());
                }
            }
        });
        names.into_iter().collect()
    }

    /// Values of label `name` among the matching streams with entries in `[start, end)`.
    pub fn label_values(&self, tenant: &TenantId, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut values = BTreeSet::new();
        self.for_each_stream(tenant, matchers, start, end, |_, l| {
            if let Some(v) = l.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        });
        values.into_iter().collect()
    }

    /// Calls `f` for every stream matching `matchers` with entries in `[start, end)` that
    /// are not all expired. (Delete requests do not hide streams here: the streams keep
    /// their other entries, and Loki lists them until their chunks are rewritten too.)
    fn for_each_stream(&self, tenant: &TenantId, matchers: &[Matcher], start: i64, end: i64, mut f: impl FnMut(u64, &Labels)) {
        let Some(t) = self.tenant(tenant) else { return };
        let mut live = Liveness::new(self.retention_of(tenant), Vec::new(), start);
        let start = live.start;
        if start >= end {
            return;
        }
        let s = t.state.read().unwrap();
        for h in std::iter::once(&s.head).chain(s.frozen.iter().map(|h| h.as_ref())) {
            let ids = h.index.resolve(matchers);
            for st in h.streams_overlapping(&ids, start, end) {
                if live.stream_visible(st.fp, &st.labels, st.max_ts) {
                    f(st.fp, &st.labels);
                }
            }
        }
        for c in &s.chunks {
            if c.meta.min_ts >= end || c.meta.max_ts < start {
                continue;
            }
            let ids = c.index.labels.resolve(matchers);
            for o in c.select(&ids, start, end) {
                let st = &c.index.streams[o];
                if live.stream_visible(st.fp, &st.labels, st.max_ts) {
                    f(st.fp, &st.labels);
                }
            }
        }
    }

    fn retention_of(&self, tenant: &TenantId) -> RetentionPolicy {
        self.inner.retention.read().unwrap().for_tenant(tenant).clone()
    }

    /// Tenants that have any data.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.inner.tenants.read().unwrap().keys().cloned().collect()
    }

    /// Per-tenant counts, for stats and tests.
    pub fn stats(&self, tenant: &TenantId) -> TenantStats {
        let Some(t) = self.tenant(tenant) else { return TenantStats::default() };
        let s = t.state.read().unwrap();
        TenantStats {
            head_entries: s.head.entries + s.frozen.iter().map(|h| h.entries).sum::<usize>(),
            head_bytes: s.head.bytes + s.frozen.iter().map(|h| h.bytes).sum::<usize>(),
            chunks: s.chunks.len(),
            chunk_rows: s.chunks.iter().map(|c| c.meta.rows).sum(),
            chunk_bytes: s.chunks.iter().map(|c| c.meta.bytes).sum(),
        }
    }
}

/// Heads a flush has frozen and not yet written: the tenants to look at and the WAL
/// segment sealed with them.
struct Frozen {
    tenants: Vec<Arc<Tenant>>,
    sealed: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TenantStats {
    pub head_entries: usize,
    pub head_bytes: usize,
    pub chunks: usize,
    pub chunk_rows: u64,
    pub chunk_bytes: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushStats {
    pub chunks: usize,
    pub rows: u64,
    pub bytes: u64,
}

fn new_tenant(data_dir: &Path, id: TenantId, state: TenantState) -> Arc<Tenant> {
    let dir = data_dir.join("tenants").join(id.as_str());
    Arc::new(Tenant {
        id,
        dir,
        state: RwLock::new(state),
        rate: Mutex::new(TokenBucket::new(f64::INFINITY)),
        activity: Mutex::default(),
        manifest_lock: Mutex::new(()),
        deletes: RwLock::default(),
    })
}

/// Inserts a validated push into the head and moves the streams' newest timestamps.
fn apply_push(state: &mut TenantState, req: &PushRequest) -> usize {
    let mut added = 0;
    for s in &req.streams {
        let fp = s.labels.fingerprint();
        added += state.head.append(&s.labels, fp, &s.entries);
        if let Some(max) = s.entries.iter().map(|e| e.ts).max() {
            let n = state.newest.entry(fp).or_insert(max);
            *n = (*n).max(max);
        }
    }
    added
}

/// Writes one tenant's sealed heads as chunks (one per UTC day touched); [`commit`] makes
/// them live.
fn flush_tenant(inner: &Inner, t: &Tenant, frozen: &[Arc<Head>]) -> Result<Vec<Chunk>> {
    let mut new_chunks = Vec::new();
    for head in frozen {
        // Split every stream's ordered entries by UTC day.
        let mut days: BTreeMap<i64, Vec<StreamRows<'_>>> = BTreeMap::new();
        for s in &head.streams {
            let pos = s.ordered_positions(i64::MIN, i64::MAX);
            let mut i = 0;
            while i < pos.len() {
                let day = s.ts_at(pos[i] as usize).div_euclid(NANOS_PER_DAY);
                let j = i + pos[i..].partition_point(|&p| s.ts_at(p as usize).div_euclid(NANOS_PER_DAY) == day);
                days.entry(day).or_default().push(StreamRows { stream: s, positions: pos[i..j].to_vec() });
                i = j;
            }
        }
        for (day, rows) in days {
            let day_str = chrono::DateTime::from_timestamp_nanos(day * NANOS_PER_DAY).format("%Y-%m-%d").to_string();
            new_chunks.push(chunk::write_chunk(&t.dir, inner.next_chunk_id(), day_str, rows, inner.cfg.batch_rows, &inner.cache)?);
        }
    }
    Ok(new_chunks)
}

impl Inner {
    /// A new chunk id: creation time and a sequence number, so ids sort by creation.
    fn next_chunk_id(&self) -> String {
        let seq = self.chunk_seq.fetch_add(1, Ordering::Relaxed) & 0xffff;
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        format!("{now:016x}{seq:04x}")
    }
}

/// Makes a chunk list change durable and visible in one step: under the tenant's manifest
/// lock, writes the manifest without `remove` and with `add` (and the new WAL checkpoint,
/// if any), then swaps the in-memory list and runs `also` under the same state lock (so a
/// flush drops its frozen heads in the same instant its chunks appear). Removed chunks are
/// retired: their files go when the last query reading them finishes.
fn commit(t: &Tenant, what: &str, remove: &[ChunkRef], add: Vec<Chunk>, checkpoint: Option<u64>, also: impl FnOnce(&mut TenantState)) -> Result<Vec<ChunkRef>> {
    let _m = t.manifest_lock.lock().unwrap();
    let (current, old_checkpoint) = {
        let s = t.state.read().unwrap();
        (s.chunks.clone(), s.checkpoint)
    };
    if let Some(gone) = remove.iter().find(|r| !current.iter().any(|c| Arc::ptr_eq(c, r))) {
        return Err(StoreError::InvalidInput(format!("chunk {} is no longer live", gone.meta.id)));
    }
    let added: Vec<ChunkRef> = add.into_iter().map(Arc::new).collect();
    let list: Vec<ChunkRef> = current.into_iter().filter(|c| !remove.iter().any(|r| Arc::ptr_eq(c, r))).chain(added.iter().cloned()).collect();
    let checkpoint = checkpoint.unwrap_or(old_checkpoint);
    crate::failpoint::hit(&format!("{what}-before-manifest"));
    Manifest::new(checkpoint, list.iter().map(|c| c.meta.clone()).collect()).store(&t.dir)?;
    crate::failpoint::hit(&format!("{what}-after-manifest"));
    {
        let mut s = t.state.write().unwrap();
        s.chunks = list;
        s.checkpoint = checkpoint;
        also(&mut s);
    }
    for r in remove {
        r.retire();
    }
    Ok(added)
}

/// The retention a server recorded in the data directory; none (keep forever) when absent
/// or unreadable.
fn load_retention(dir: &Path) -> RetentionConfig {
    let path = dir.join(RETENTION_FILE);
    let Ok(bytes) = fs::read(&path) else { return RetentionConfig::default() };
    match serde_json::from_slice(&bytes).ok().and_then(RetentionConfig::from_file) {
        Some(r) => r,
        None => {
            tracing::warn!(file = %path.display(), "ignoring an unreadable retention file");
            RetentionConfig::default()
        }
    }
}

fn load_checkpoints(dir: &Path) -> Result<BTreeMap<TenantId, u64>> {
    let mut out = BTreeMap::new();
    for (id, tdir) in tenant_dirs(dir)? {
        if let Some(m) = Manifest::load(&tdir)? {
            out.insert(id, m.wal_checkpoint);
        }
    }
    Ok(out)
}

fn tenant_dirs(dir: &Path) -> Result<Vec<(TenantId, PathBuf)>> {
    let tdir = dir.join("tenants");
    let rd = match fs::read_dir(&tdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(tdir.display())(e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(io_err(tdir.display()))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        match name.parse::<TenantId>() {
            Ok(id) => out.push((id, ent.path())),
            Err(_) => tracing::warn!(dir = %ent.path().display(), "ignoring a directory that is not a tenant"),
        }
    }
    Ok(out)
}

/// Loads every tenant's manifest and chunk indexes. When `cleanup`, deletes chunk files no
/// manifest names (left by a flush that crashed before its manifest swap).
fn load_tenants(dir: &Path, cleanup: bool, compiler: Option<&deletes::DeleteCompiler>, cache: &Arc<ChunkCache>) -> Result<BTreeMap<TenantId, Arc<Tenant>>> {
    let mut out = BTreeMap::new();
    for (id, tdir) in tenant_dirs(dir)? {
        let manifest = Manifest::load(&tdir)?.unwrap_or_default();
        let mut state = TenantState { checkpoint: manifest.wal_checkpoint, ..Default::default() };
        let mut live = BTreeSet::new();
        for meta in manifest.chunks {
            let c = chunk::open_chunk(&tdir, meta, cache)?;
            let (pq, idx) = chunk::chunk_paths(&tdir, &c.meta);
            live.extend(chunk::companion_paths(&pq));
            live.insert(pq);
            live.insert(idx);
            for s in &c.index.streams {
                let n = state.newest.entry(s.fp).or_insert(s.max_ts);
                *n = (*n).max(s.max_ts);
            }
            state.chunks.push(Arc::new(c));
        }
        if cleanup {
            remove_orphans(&tdir, &live)?;
        }
        let t = new_tenant(dir, id.clone(), state);
        *t.deletes.write().unwrap() = deletes::load(&tdir, compiler)?;
        out.insert(id, t);
    }
    Ok(out)
}

fn remove_orphans(tdir: &Path, live: &BTreeSet<PathBuf>) -> Result<()> {
    let _ = fs::remove_file(tdir.join(format!("{MANIFEST_FILE}.tmp")));
    let chunks = tdir.join("chunks");
    let Ok(days) = fs::read_dir(&chunks) else { return Ok(()) };
    for day in days.flatten() {
        let Ok(files) = fs::read_dir(day.path()) else { continue };
        for f in files.flatten() {
            let p = f.path();
            if !live.contains(&p) {
                tracing::warn!(file = %p.display(), "removing a chunk file no manifest names (left by an interrupted flush or compaction)");
                fs::remove_file(&p).map_err(io_err(p.display()))?;
            }
        }
        // A day whose chunks all expired or were merged away.
        let _ = fs::remove_dir(day.path());
    }
    Ok(())
}

/// What [`replay_wal`] found.
struct Replayed {
    /// The newest segment id seen (0: none).
    last: u64,
    /// Segments none of whose records went into a head: empty, or all in chunks already.
    spent: Vec<u64>,
}

/// Replays WAL segments into the tenants' heads (records at or before a tenant's checkpoint
/// are in its chunks already and are skipped); tenants known only from the WAL are added.
fn replay_wal(wal_dir: &Path, tenants: &mut BTreeMap<TenantId, Arc<Tenant>>, repair: bool) -> Result<Replayed> {
    let ids = wal::list_segments(wal_dir)?;
    let data_dir = wal_dir.parent().unwrap_or(wal_dir).to_path_buf();
    let mut records = 0usize;
    let mut spent = Vec::new();
    for &id in &ids {
        let path = wal::segment_path(wal_dir, id);
        let before = records;
        let end = wal::read_segment(&path, |rec| {
            let (tenant, req) = decode_push(rec).ok_or_else(|| StoreError::Corrupt {
                path: path.clone(),
                comment: "a WAL record passes its checksum but does not decode".into(),
            })?;
            let t = tenants
                .entry(tenant.clone())
                .or_insert_with(|| new_tenant(&data_dir, tenant, TenantState::default()));
            let mut s = t.state.write().unwrap();
            if id > s.checkpoint {
                apply_push(&mut s, &req);
                records += 1;
            }
            Ok(())
        })?;
        if let SegmentEnd::Torn { offset } = end {
            if repair {
                tracing::warn!(segment = %path.display(), offset, "dropping a torn record at the end of a WAL segment (a write cut short by a crash; it was never acknowledged)");
                wal::truncate_segment(&path, offset)?;
            }
        }
        if records == before {
            spent.push(id);
        }
    }
    if records > 0 {
        tracing::info!(records, segments = ids.len(), "replayed the write-ahead log");
    }
    Ok(Replayed { last: ids.last().copied().unwrap_or(0), spent })
}
