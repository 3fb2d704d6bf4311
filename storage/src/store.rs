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

use crate::chunk::{self, ChunkRef, StreamRows};
use crate::codec::{decode_push, encode_push};
use crate::config::StoreConfig;
use crate::error::{io_err, Result, StoreError};
use crate::head::Head;
use crate::ingest::{self, PushOutcome, StreamActivity};
use crate::metrics::StoreMetrics;
use crate::tail::{TailRegistry, TailSubscription};
use crate::limits::{IngestLimits, TokenBucket};
use crate::labels::Labels;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::matcher::Matcher;
use crate::push::PushRequest;
use crate::tenant::TenantId;
use crate::wal::{self, SegmentEnd, Wal, WalOptions};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: StoreConfig,
    wal: Option<Wal>,
    _lock: Option<File>,
    gate: tokio::sync::RwLock<()>,
    flush_lock: tokio::sync::Mutex<()>,
    tenants: RwLock<BTreeMap<TenantId, Arc<Tenant>>>,
    chunk_seq: AtomicU64,
    metrics: Arc<StoreMetrics>,
    tails: Arc<TailRegistry>,
}

struct Tenant {
    id: TenantId,
    dir: PathBuf,
    state: RwLock<TenantState>,
    /// The tenant's ingestion rate bucket.
    rate: Mutex<TokenBucket>,
    activity: Mutex<StreamActivity>,
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
}

/// The result of resolving a [`ScanRequest`]: the matching streams' labels and independent
/// parts to read (each may run on its own thread).
pub struct Scan {
    pub streams: HashMap<u64, Labels>,
    pub parts: Vec<ScanPart>,
}

pub struct ScanPart {
    source: PartSource,
    start: i64,
    end: i64,
    projection: Option<Vec<usize>>,
    batch_rows: usize,
}

enum PartSource {
    Batches(Vec<RecordBatch>),
    Frozen(Arc<Head>, RoaringBitmap),
    Chunk(ChunkRef, Vec<usize>),
}

impl ScanPart {
    /// Reads the part. Blocking (file I/O): call from a blocking-friendly thread.
    pub fn execute(self) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
        let proj = self.projection.as_deref();
        match self.source {
            PartSource::Batches(b) => Box::new(b.into_iter().map(Ok)),
            PartSource::Frozen(head, ids) => {
                Box::new(head.scan(&ids, self.start, self.end, proj, self.batch_rows).into_iter().map(Ok))
            }
            PartSource::Chunk(c, ordinals) => match c.scan(&ordinals, self.start, self.end, proj, self.batch_rows) {
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
        let mut tenants = load_tenants(&dir, true)?;
        let wal_dir = dir.join("wal");
        let last = replay_wal(&wal_dir, &mut tenants, true)?;
        let metrics = Arc::new(StoreMetrics::default());
        let wal = Wal::open(&wal_dir, last + 1, WalOptions { sync: cfg.wal_sync, segment_bytes: cfg.wal_segment_bytes, metrics: metrics.clone() })?;
        Ok(Store::from_parts(cfg, Some(wal), Some(lock), tenants, metrics))
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
        for _ in 0..5 {
            let mut tenants = load_tenants(&dir, false)?;
            match replay_wal(&dir.join("wal"), &mut tenants, false) {
                Ok(_) => {
                    let again = load_checkpoints(&dir)?;
                    let stable = tenants.iter().all(|(id, t)| again.get(id).copied().unwrap_or(0) == t.state.read().unwrap().checkpoint);
                    if stable {
                        return Ok(Store::from_parts(cfg, None, None, tenants, Arc::default()));
                    }
                }
                Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| StoreError::InvalidInput("the data directory kept changing while it was read; try again".into())))
    }

    fn from_parts(cfg: StoreConfig, wal: Option<Wal>, lock: Option<File>, tenants: BTreeMap<TenantId, Arc<Tenant>>, metrics: Arc<StoreMetrics>) -> Store {
        Store {
            inner: Arc::new(Inner {
                cfg,
                wal,
                _lock: lock,
                gate: tokio::sync::RwLock::new(()),
                flush_lock: tokio::sync::Mutex::new(()),
                tenants: RwLock::new(tenants),
                chunk_seq: AtomicU64::new(0),
                metrics,
                tails: Arc::default(),
            }),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
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

        let mut payload = Vec::with_capacity(64 + req.streams.iter().map(|s| s.entries.iter().map(|e| e.line.len() + 16).sum::<usize>()).sum::<usize>());
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
        let Some(wal) = self.inner.wal.as_ref() else { return Ok(FlushStats::default()) };
        let _one_at_a_time = self.inner.flush_lock.lock().await;
        let tenants: Vec<Arc<Tenant>> = self.inner.tenants.read().unwrap().values().cloned().collect();
        let any = tenants.iter().any(|t| {
            let s = t.state.read().unwrap();
            !s.head.is_empty() || !s.frozen.is_empty()
        });
        if !any {
            return Ok(FlushStats::default());
        }
        let sealed = {
            let _gate = self.inner.gate.write().await;
            let sealed = wal.rotate().await?;
            for t in &tenants {
                let mut s = t.state.write().unwrap();
                if !s.head.is_empty() {
                    let h = std::mem::take(&mut s.head);
                    s.frozen.push(Arc::new(h));
                }
            }
            sealed
        };

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
                    flush_tenant(&inner, t, &frozen, sealed).map(|c| (c, frozen))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| StoreError::Io { context: "flush task".into(), source: std::io::Error::other(e.to_string()) })?;

        let mut stats = FlushStats::default();
        let mut first_err = None;
        for (t, r) in tenants.iter().zip(results) {
            match r {
                Ok((chunks, flushed)) if !flushed.is_empty() => {
                    stats.chunks += chunks.len();
                    stats.rows += chunks.iter().map(|c| c.meta.rows).sum::<u64>();
                    stats.bytes += chunks.iter().map(|c| c.meta.bytes).sum::<u64>();
                    let mut s = t.state.write().unwrap();
                    s.chunks.extend(chunks);
                    s.frozen.retain(|h| !flushed.iter().any(|f| Arc::ptr_eq(f, h)));
                    s.checkpoint = sealed;
                }
                Ok(_) => {}
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
        if req.start >= req.end {
            return Ok(scan);
        }
        let batch_rows = self.inner.cfg.batch_rows;
        let part = |source| ScanPart { source, start: req.start, end: req.end, projection: req.projection.clone(), batch_rows };
        let s = t.state.read().unwrap();
        let mut heads: Vec<&Head> = vec![&s.head];
        heads.extend(s.frozen.iter().map(|h| h.as_ref()));
        for (i, h) in heads.iter().enumerate() {
            let ids = h.index.resolve(&req.matchers);
            let mut hit = RoaringBitmap::new();
            for st in h.streams_overlapping(&ids, req.start, req.end) {
                scan.streams.entry(st.fp).or_insert_with(|| st.labels.clone());
                hit.insert(h.stream_id(st.fp).expect("stream is in its head"));
            }
            if hit.is_empty() {
                continue;
            }
            if i == 0 {
                // The live head changes under pushes: copy its rows now, under the lock.
                scan.parts.push(part(PartSource::Batches(h.scan(&hit, req.start, req.end, req.projection.as_deref(), batch_rows))));
            } else {
                scan.parts.push(part(PartSource::Frozen(s.frozen[i - 1].clone(), hit)));
            }
        }
        for c in &s.chunks {
            if c.meta.min_ts >= req.end || c.meta.max_ts < req.start {
                continue;
            }
            let ids = c.index.labels.resolve(&req.matchers);
            let ordinals = c.select(&ids, req.start, req.end);
            if ordinals.is_empty() {
                continue;
            }
            for &o in &ordinals {
                let st = &c.index.streams[o];
                scan.streams.entry(st.fp).or_insert_with(|| st.labels.clone());
            }
            scan.parts.push(part(PartSource::Chunk(c.clone(), ordinals)));
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

    fn for_each_stream(&self, tenant: &TenantId, matchers: &[Matcher], start: i64, end: i64, mut f: impl FnMut(u64, &Labels)) {
        let Some(t) = self.tenant(tenant) else { return };
        let s = t.state.read().unwrap();
        for h in std::iter::once(&s.head).chain(s.frozen.iter().map(|h| h.as_ref())) {
            let ids = h.index.resolve(matchers);
            for st in h.streams_overlapping(&ids, start, end) {
                f(st.fp, &st.labels);
            }
        }
        for c in &s.chunks {
            if c.meta.min_ts >= end || c.meta.max_ts < start {
                continue;
            }
            let ids = c.index.labels.resolve(matchers);
            for o in c.select(&ids, start, end) {
                let st = &c.index.streams[o];
                f(st.fp, &st.labels);
            }
        }
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
    Arc::new(Tenant { id, dir, state: RwLock::new(state), rate: Mutex::new(TokenBucket::new(f64::INFINITY)), activity: Mutex::default() })
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

/// Writes one tenant's sealed heads as chunks (one per UTC day touched) and swaps in a
/// manifest naming them with `checkpoint`.
fn flush_tenant(inner: &Inner, t: &Tenant, frozen: &[Arc<Head>], checkpoint: u64) -> Result<Vec<ChunkRef>> {
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
            let seq = inner.chunk_seq.fetch_add(1, Ordering::Relaxed);
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
            let id = format!("{now:016x}{seq:04x}");
            let day_str = chrono::DateTime::from_timestamp_nanos(day * NANOS_PER_DAY).format("%Y-%m-%d").to_string();
            new_chunks.push(Arc::new(chunk::write_chunk(&t.dir, id, day_str, rows, inner.cfg.batch_rows)?));
        }
    }
    let existing: Vec<_> = t.state.read().unwrap().chunks.iter().map(|c| c.meta.clone()).collect();
    let all = existing.into_iter().chain(new_chunks.iter().map(|c| c.meta.clone())).collect();
    Manifest::new(checkpoint, all).store(&t.dir)?;
    Ok(new_chunks)
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
fn load_tenants(dir: &Path, cleanup: bool) -> Result<BTreeMap<TenantId, Arc<Tenant>>> {
    let mut out = BTreeMap::new();
    for (id, tdir) in tenant_dirs(dir)? {
        let manifest = Manifest::load(&tdir)?.unwrap_or_default();
        let mut state = TenantState { checkpoint: manifest.wal_checkpoint, ..Default::default() };
        let mut live = BTreeSet::new();
        for meta in manifest.chunks {
            let c = chunk::open_chunk(&tdir, meta)?;
            let (pq, idx) = chunk::chunk_paths(&tdir, &c.meta);
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
        out.insert(id.clone(), new_tenant(dir, id, state));
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
                tracing::warn!(file = %p.display(), "removing a chunk file no manifest names (interrupted flush)");
                fs::remove_file(&p).map_err(io_err(p.display()))?;
            }
        }
    }
    Ok(())
}

/// Replays WAL segments into the tenants' heads (records at or before a tenant's checkpoint
/// are in its chunks already and are skipped); tenants known only from the WAL are added.
/// Returns the newest segment id seen.
fn replay_wal(wal_dir: &Path, tenants: &mut BTreeMap<TenantId, Arc<Tenant>>, repair: bool) -> Result<u64> {
    let ids = wal::list_segments(wal_dir)?;
    let data_dir = wal_dir.parent().unwrap_or(wal_dir).to_path_buf();
    let mut records = 0usize;
    for &id in &ids {
        let path = wal::segment_path(wal_dir, id);
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
    }
    if records > 0 {
        tracing::info!(records, segments = ids.len(), "replayed the write-ahead log");
    }
    Ok(ids.last().copied().unwrap_or(0))
}
