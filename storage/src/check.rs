//! `silt check [--repair]`: verifies every file of a data directory and, with repair, brings
//! a damaged one back to a state the store opens.
//!
//! Why: a damaged chunk fails every query that reaches it (or, worse, answers it with
//! damaged lines), and a damaged manifest, index, delete list or WAL segment stops the
//! server from starting at all. Parquet pages carry no checksum here and zstd decodes a
//! flipped literal without complaint, so chunks record a checksum of their data pages,
//! and the check verifies it and also decodes every chunk in full (which catches damage
//! to older chunks' structure), something no query does.
//!
//! What is checked:
//! - WAL (`wal/*.wal`): every segment reads to its end and every record decodes. A write
//!   cut short at the end of the newest segment is what a crash leaves (the entry was never
//!   acknowledged): a note, not damage. Damage anywhere else is.
//! - Per tenant (`tenants/<tenant>/`): `manifest.json` parses; for every chunk it names,
//!   the Parquet file opens as scans open it (footer, log schema, an offset index that
//!   matches the pages), its data pages match the checksum in its footer (see
//!   [`chunk::DATA_CRC_KEY`]; chunks written before it existed have none), and every row
//!   group decodes in full (all columns); rows are sorted by (stream, ts); the manifest's
//!   entry (rows, streams, time range, size) matches the file; the index (`.idx`) passes its
//!   checksum and lists the file's streams (same fingerprints, row ranges and time ranges)
//!   with labels that hash to their fingerprint. Chunk files no manifest names are noted
//!   (the store removes them when it opens). `deletes.json` must parse.
//!
//! Repair (`--repair`) never deletes data it cannot rebuild: damaged files go to
//! `<data_dir>/quarantine/` (`<tenant>/<day>/` for chunks, `<tenant>/` for manifests,
//! `wal/` for segments). A chunk whose Parquet file is damaged is quarantined and dropped
//! from the manifest; a lost or damaged index is rebuilt from the Parquet file (labels from
//! its footer, see [`chunk::STREAMS_KEY`], or for older chunks from the tenant's other
//! indexes; when some are found nowhere, the chunk is quarantined); a wrong manifest entry
//! is corrected; a lost manifest is rebuilt from the chunk files that verify; a damaged WAL
//! segment is copied to quarantine and cut at its last intact record. Unneeded leftovers
//! (chunk files no manifest names, a half-written manifest) are removed, as the store's own
//! startup would. A damaged `deletes.json` is reported only: moving it aside would make the
//! entries its requests hide visible again.
//!
//! Concurrency: without repair the check only reads, so it may run beside a server. A file
//! that vanishes meanwhile (a flush or compaction swapped the manifest) is not damage: the
//! tenant is checked again, a few times. With repair it takes the directory lock as
//! [`crate::Store::open`] does, so a repair never runs beside a server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, Schema, UInt64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use crate::chunk::{self, ChunkIndex, ChunkStream};
use crate::codec::decode_push;
use crate::deletes::DeleteRequest;
use crate::error::{io_err, Result, StoreError};
use crate::labels::Labels;
use crate::manifest::{write_atomic, ChunkMeta, Manifest, MANIFEST_FILE};
use crate::schema::{log_schema, IDX_STREAM, IDX_TS};
use crate::tenant::TenantId;
use crate::wal::{self, sync_dir, SegmentEnd};

const QUARANTINE: &str = "quarantine";
/// The tenant's delete requests (see [`crate::deletes`]).
const DELETES_FILE: &str = "deletes.json";
/// How often a tenant that changed under a read-only check is checked again.
const ATTEMPTS: usize = 5;
const READ_BATCH_ROWS: usize = 8192;

/// What [`check`] may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Fix what can be fixed (quarantine, rebuild, truncate). Takes the directory lock.
    pub repair: bool,
}

/// What [`check`] found (and, with repair, did).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    /// Tenant directories checked.
    pub tenants: usize,
    /// Chunks checked (named by a manifest, or found on disk when the manifest was lost).
    pub chunks: usize,
    /// Entries read from the chunks whose Parquet file decodes.
    pub rows: u64,
    /// WAL segments read.
    pub wal_segments: usize,
    /// Damage: files that do not read back, or that disagree with each other. With repair,
    /// each says what was done about it.
    pub problems: Vec<Problem>,
    /// Findings that are not damage: what a crash or a running server leaves behind and the
    /// store handles itself (a torn write at the end of the WAL, unnamed chunk files).
    pub notes: Vec<Problem>,
}

/// One finding about one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: PathBuf,
    pub what: String,
    /// What repair did about it; `None` when nothing was done.
    pub action: Option<String>,
}

impl CheckReport {
    /// No damage found (notes do not count).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Every problem found had something done about it (by a repair).
    pub fn all_repaired(&self) -> bool {
        self.problems.iter().all(|p| p.action.is_some())
    }

    fn problem(&mut self, path: &Path, what: impl Into<String>, action: Option<String>) -> usize {
        self.problems.push(Problem { path: path.to_path_buf(), what: what.into(), action });
        self.problems.len() - 1
    }

    fn note(&mut self, path: &Path, what: impl Into<String>, action: Option<String>) {
        self.notes.push(Problem { path: path.to_path_buf(), what: what.into(), action });
    }

    fn absorb(&mut self, other: CheckReport) {
        self.chunks += other.chunks;
        self.rows += other.rows;
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)?;
        match &self.action {
            Some(a) => write!(f, " (repair: {a})"),
            None => Ok(()),
        }
    }
}

/// Verifies the data directory `data_dir`; with `opts.repair`, fixes what it can. Fails
/// only when the directory cannot be checked at all (not a data directory, locked by a
/// server while repairing, an I/O error on a directory, or a repair step that fails: every
/// step is safe to run again).
pub fn check(data_dir: &Path, opts: &CheckOptions) -> Result<CheckReport> {
    if !data_dir.join("wal").is_dir() && !data_dir.join("tenants").is_dir() {
        return Err(StoreError::InvalidInput(format!("{} is not a silt data directory", data_dir.display())));
    }
    let _lock = if opts.repair { Some(lock(data_dir)?) } else { None };
    let mut checker = Checker { dir: data_dir.to_path_buf(), repair: opts.repair, report: CheckReport::default() };
    checker.wal()?;
    for (tenant, tdir) in checker.tenant_dirs()? {
        checker.tenant(&tenant, &tdir)?;
    }
    Ok(checker.report)
}

/// Takes the directory lock as `Store::open` does.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io_err(path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { dir: dir.to_path_buf() }),
        Err(fs::TryLockError::Error(e)) => Err(io_err(path.display())(e)),
    }
}

struct Checker {
    dir: PathBuf,
    repair: bool,
    report: CheckReport,
}

/// One pass over a tenant: its findings, whether they could be an artefact of a server
/// changing the tenant meanwhile, and the manifest the pass started from.
#[derive(Default)]
struct TenantPass {
    found: CheckReport,
    racy: bool,
    /// Some chunk file could not be read at all (permissions): no manifest is rebuilt.
    unreadable: bool,
    /// `None` when the manifest did not load.
    seen: Option<Option<Manifest>>,
}

// ---- WAL ----

impl Checker {
    fn wal(&mut self) -> Result<()> {
        let wal_dir = self.dir.join("wal");
        let ids = wal::list_segments(&wal_dir)?;
        for (i, &id) in ids.iter().enumerate() {
            let path = wal::segment_path(&wal_dir, id);
            let newest = i + 1 == ids.len();
            let end = wal::read_segment(&path, |rec| match decode_push(rec) {
                Some(_) => Ok(()),
                None => Err(StoreError::Corrupt { path: path.clone(), comment: "a record passes its checksum but does not decode".into() }),
            });
            match end {
                Ok(SegmentEnd::Clean) => {}
                Ok(SegmentEnd::Torn { offset }) if newest => self.report.note(
                    &path,
                    format!("a write cut short at offset {offset} ends the newest segment: what a crash leaves (it was never acknowledged); the store drops it when it opens"),
                    None,
                ),
                Ok(SegmentEnd::Torn { offset }) => {
                    self.wal_damage(&path, format!("a damaged record at offset {offset} ends a segment that is not the newest (a crash only tears the newest)"))?
                }
                // Deleted by a flush since we listed the segments.
                Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound && !self.repair => continue,
                Err(StoreError::Corrupt { comment, .. }) => self.wal_damage(&path, comment)?,
                Err(e) => {
                    self.report.problem(&path, format!("cannot read: {e}"), None);
                }
            }
            self.report.wal_segments += 1;
        }
        Ok(())
    }

    fn wal_damage(&mut self, path: &Path, what: String) -> Result<()> {
        let action = if self.repair { Some(self.repair_segment(path)?) } else { None };
        self.report.problem(path, what, action);
        Ok(())
    }

    /// Keeps a copy of a damaged segment and cuts it at its last intact record, so that
    /// the store replays what precedes the damage.
    fn repair_segment(&self, path: &Path) -> Result<String> {
        let qdir = self.dir.join(QUARANTINE).join("wal");
        let Some(good) = wal::intact_prefix(path, |rec| decode_push(rec).is_some())? else {
            let q = move_into(path, &qdir)?;
            return Ok(format!("moved to {}: it is not a WAL segment (bad magic)", q.display()));
        };
        let len = fs::metadata(path).map_err(io_err(path.display()))?.len();
        let q = copy_into(path, &qdir)?;
        wal::truncate_segment(path, good)?;
        Ok(format!(
            "copied to {} and cut at offset {good}; the {} bytes after it (entries acknowledged after the damaged one) are only in the copy",
            q.display(),
            len.saturating_sub(good)
        ))
    }
}

// ---- Tenants ----

impl Checker {
    fn tenant_dirs(&mut self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for path in list_dir(&self.dir.join("tenants"))? {
            let name = path.file_name().and_then(|n| n.to_str()).filter(|n| n.parse::<TenantId>().is_ok());
            match name {
                Some(name) if path.is_dir() => out.push((name.to_string(), path.clone())),
                _ => self.report.note(&path, "not a tenant directory; ignored", None),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks a tenant; without repair, again when a server changed it meanwhile.
    fn tenant(&mut self, tenant: &str, tdir: &Path) -> Result<()> {
        self.report.tenants += 1;
        for attempt in 1..=ATTEMPTS {
            let pass = self.tenant_pass(tenant, tdir)?;
            let settled = self.repair || !pass.racy || Manifest::load(tdir).ok() == pass.seen;
            if settled || attempt == ATTEMPTS {
                if !settled {
                    self.report.note(tdir, "the tenant kept changing while it was checked (a server is writing to it): findings about missing or unnamed files may be stale", None);
                }
                self.report.absorb(pass.found);
                break;
            }
        }
        Ok(())
    }

    fn tenant_pass(&self, tenant: &str, tdir: &Path) -> Result<TenantPass> {
        let mut pass = TenantPass::default();
        let manifest_path = tdir.join(MANIFEST_FILE);
        let loaded = Manifest::load(tdir);
        pass.seen = loaded.as_ref().ok().cloned();
        let files = chunk_files(tdir)?;

        // The chunks to verify: those the manifest names or, when it is lost, those on disk.
        let (manifest, lost) = match loaded {
            Ok(Some(m)) => (Some(m), None),
            Ok(None) if files.iter().any(|f| has_ext(f, "parquet")) => {
                pass.racy = true;
                (None, Some("no manifest, but chunk files exist (a first flush cut short by a crash, or a lost manifest)".to_string()))
            }
            Ok(None) => (None, None),
            Err(StoreError::Corrupt { comment, .. }) if comment.starts_with("unsupported manifest version") => {
                pass.found.problem(&manifest_path, format!("{comment} (written by another silt version?); the tenant is not checked further"), None);
                return Ok(pass);
            }
            Err(StoreError::Corrupt { comment, .. }) => (None, Some(comment)),
            Err(e) => return Err(e),
        };
        let lost_at = lost.map(|why| pass.found.problem(&manifest_path, why, None));
        let candidates = match &manifest {
            Some(m) => self.named_chunks(m, &manifest_path, &mut pass.found),
            None => disk_chunks(&files),
        };
        let live: HashSet<PathBuf> = candidates
            .iter()
            .flat_map(|m| {
                let (pq, idx) = chunk::chunk_paths(tdir, m);
                let [ngr, fld] = chunk::companion_paths(&pq);
                [ngr, fld, pq, idx]
            })
            .collect();

        let verified: Vec<Verified> = candidates.into_iter().map(|meta| verify(tdir, meta)).collect();
        let known = labels_for_rebuilds(tdir, &verified);
        let mut entries = Vec::new();
        for v in verified {
            if let Some(entry) = self.settle(tenant, tdir, v, manifest.is_some(), &known, &mut pass)? {
                entries.push(entry);
            }
        }
        self.leftovers(tdir, &files, &live, &mut pass)?;
        check_deletes(tdir, &mut pass.found);

        if self.repair {
            match (&manifest, lost_at) {
                (Some(m), _) if m.chunks != entries => Manifest::new(m.wal_checkpoint, entries).store(tdir)?,
                (None, Some(at)) if !pass.unreadable => pass.found.problems[at].action = Some(self.rebuild_manifest(tenant, tdir, entries)?),
                _ => {}
            }
        }
        Ok(pass)
    }

    /// The manifest's entries that name a chunk file inside the tenant directory, once each.
    fn named_chunks(&self, m: &Manifest, manifest_path: &Path, found: &mut CheckReport) -> Vec<ChunkMeta> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for meta in &m.chunks {
            let why = if !usable_entry(meta) {
                format!("an entry names a file outside the chunk directory (day {:?}, id {:?})", meta.day, meta.id)
            } else if !seen.insert((&meta.day, &meta.id)) {
                format!("chunk {} is named twice", meta.id)
            } else {
                out.push(meta.clone());
                continue;
            };
            found.problem(manifest_path, why, self.repair.then(|| "dropped the entry".to_string()));
        }
        out
    }

    /// Reports (and, with repair, carries out) what becomes of one verified chunk. Returns
    /// its manifest entry, or `None` when it leaves the manifest.
    fn settle(&self, tenant: &str, tdir: &Path, v: Verified, named: bool, known: &HashMap<u64, Labels>, pass: &mut TenantPass) -> Result<Option<ChunkMeta>> {
        let (pq, idx) = chunk::chunk_paths(tdir, &v.meta);
        pass.found.chunks += 1;
        let facts = match v.parquet {
            Ok(facts) => facts,
            Err(Fault::Unreadable(why)) => {
                pass.unreadable = true;
                pass.found.problem(&pq, format!("cannot read the chunk: {why}"), None);
                return Ok(Some(v.meta));
            }
            Err(Fault::Missing) => {
                pass.racy = true;
                return self.drop_chunk(tenant, &v.meta, named, &pq, "the manifest names this chunk but its Parquet file is missing".into(), pass);
            }
            Err(Fault::Damaged(why)) => return self.drop_chunk(tenant, &v.meta, named, &pq, format!("damaged chunk: {why}"), pass),
        };
        pass.found.rows += facts.rows;

        let what = match v.index {
            Ok(()) => None,
            Err(Fault::Unreadable(why)) => {
                pass.found.problem(&idx, format!("cannot read the chunk's index: {why}"), None);
                None
            }
            Err(Fault::Missing) => {
                pass.racy = true;
                Some("the chunk's index is missing".to_string())
            }
            Err(Fault::Damaged(why)) => Some(format!("the chunk's index {why}")),
        };
        if let Some(what) = what {
            match labelled_streams(&facts, known) {
                Ok(streams) => {
                    let action = if self.repair {
                        write_index(&idx, streams)?;
                        Some("rebuilt the index from the Parquet file".to_string())
                    } else {
                        None
                    };
                    pass.found.problem(&idx, what, action);
                }
                Err(unknown) => {
                    let what = format!(
                        "{what}, and the labels of {unknown} of its {} streams are recorded nowhere else, so it cannot be rebuilt",
                        facts.streams.len()
                    );
                    return self.drop_chunk(tenant, &v.meta, named, &idx, what, pass);
                }
            }
        }

        // Field columns are optional: a damaged file is ignored by queries, which read
        // the chunk's lines instead. It is reported, and repair sets it aside.
        let fld = crate::fields::fields_path(&pq);
        if fld.exists() && crate::fields::FieldsIndex::load(&pq, facts.rows).is_none() {
            let action = if self.repair {
                let qdir = self.dir.join(QUARANTINE).join(tenant).join(&v.meta.day);
                Some(format!("moved it to {}", move_into(&fld, &qdir)?.display()))
            } else {
                None
            };
            pass.found.problem(&fld, "damaged field-column file (its chunk's lines are read instead)", action);
        }

        let entry = entry_for(&v.meta, &facts);
        if named && entry != v.meta {
            pass.found.problem(
                &tdir.join(MANIFEST_FILE),
                format!("the entry of chunk {} says {}, but the file holds {}", v.meta.id, summary(&v.meta), summary(&entry)),
                self.repair.then(|| "corrected the entry".to_string()),
            );
        }
        Ok(Some(entry))
    }

    /// Reports a chunk that cannot be kept; with repair, quarantines its files.
    fn drop_chunk(&self, tenant: &str, meta: &ChunkMeta, named: bool, path: &Path, what: String, pass: &mut TenantPass) -> Result<Option<ChunkMeta>> {
        let action = if self.repair { Some(self.quarantine_chunk(tenant, meta, named)?) } else { None };
        pass.found.problem(path, what, action);
        Ok(None)
    }

    fn quarantine_chunk(&self, tenant: &str, meta: &ChunkMeta, named: bool) -> Result<String> {
        let tdir = self.dir.join("tenants").join(tenant);
        let (pq, idx) = chunk::chunk_paths(&tdir, meta);
        let [ngr, fld] = chunk::companion_paths(&pq);
        let qdir = self.dir.join(QUARANTINE).join(tenant).join(&meta.day);
        let mut moved = false;
        for p in [&pq, &idx, &ngr, &fld] {
            if p.symlink_metadata().is_ok() {
                move_into(p, &qdir)?;
                moved = true;
            }
        }
        let files = if moved { format!("moved its files to {}", qdir.display()) } else { "no file left to move".to_string() };
        Ok(if named {
            format!("{files} and dropped it from the manifest: its {} entries are no longer served", meta.rows)
        } else {
            format!("{files}; it is left out of the rebuilt manifest")
        })
    }

    /// Chunk files no manifest names, and a half-written manifest: the store deletes them
    /// when it opens; repair does the same.
    fn leftovers(&self, tdir: &Path, files: &[PathBuf], live: &HashSet<PathBuf>, pass: &mut TenantPass) -> Result<()> {
        for f in files.iter().filter(|f| !live.contains(*f)) {
            pass.racy = true;
            let action = self.remove(f)?;
            pass.found.note(f, "a chunk file no manifest names: left by a flush or compaction that was cut short (or being written by one right now); the store removes it when it opens", action);
        }
        let tmp = tdir.join(format!("{MANIFEST_FILE}.tmp"));
        if tmp.exists() {
            let action = self.remove(&tmp)?;
            pass.found.note(&tmp, "a manifest write that was cut short; the store removes it when it opens", action);
        }
        if self.repair {
            // Day directories emptied by the above, as the store's startup does.
            for day in list_dir(&tdir.join("chunks"))? {
                let _ = fs::remove_dir(day);
            }
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<Option<String>> {
        if !self.repair {
            return Ok(None);
        }
        fs::remove_file(path).map_err(io_err(path.display()))?;
        Ok(Some("removed".to_string()))
    }

    /// Sets a lost manifest aside and writes one naming the chunks that verified.
    fn rebuild_manifest(&self, tenant: &str, tdir: &Path, mut entries: Vec<ChunkMeta>) -> Result<String> {
        let path = tdir.join(MANIFEST_FILE);
        let moved = match path.symlink_metadata() {
            Ok(_) => format!("moved it to {}; ", move_into(&path, &self.dir.join(QUARANTINE).join(tenant))?.display()),
            Err(_) => String::new(),
        };
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        // Which WAL records the chunks hold is unknown: replay every segment present.
        // Losing acknowledged entries is worse than serving some twice.
        let checkpoint = wal::list_segments(&self.dir.join("wal"))?.first().map_or(0, |first| first.saturating_sub(1));
        let n = entries.len();
        Manifest::new(checkpoint, entries).store(tdir)?;
        Ok(format!(
            "{moved}rebuilt it from the {n} chunks on disk that verify, with WAL checkpoint {checkpoint} so that every WAL segment present is replayed: \
             if the last run crashed during a flush (between its manifest swap and WAL truncation) or a compaction, some entries may now appear twice"
        ))
    }
}

/// Entries with an id and day that name a file inside the tenant's chunk directory (ids
/// have no dot: the store derives the file names by setting the extension).
fn usable_entry(m: &ChunkMeta) -> bool {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\']);
    plain(&m.day) && plain(&m.id) && !m.id.contains('.')
}

/// The chunks on disk (`chunks/<day>/<id>.parquet`), for rebuilding a lost manifest; the
/// rest of the entry is filled in once the file is read.
fn disk_chunks(files: &[PathBuf]) -> Vec<ChunkMeta> {
    files
        .iter()
        .filter(|f| has_ext(f, "parquet"))
        .filter_map(|f| {
            let id = f.file_stem()?.to_str()?.to_string();
            let day = f.parent()?.file_name()?.to_str()?.to_string();
            Some(ChunkMeta { id, day, min_ts: 0, max_ts: 0, rows: 0, streams: 0, bytes: 0 })
        })
        .filter(usable_entry)
        .collect()
}

/// The manifest entry that describes a chunk's file as read.
fn entry_for(meta: &ChunkMeta, facts: &ParquetFacts) -> ChunkMeta {
    ChunkMeta {
        id: meta.id.clone(),
        day: meta.day.clone(),
        min_ts: facts.streams.iter().map(|s| s.min_ts).min().unwrap_or(i64::MAX),
        max_ts: facts.streams.iter().map(|s| s.max_ts).max().unwrap_or(i64::MIN),
        rows: facts.rows,
        streams: u32::try_from(facts.streams.len()).unwrap_or(u32::MAX),
        bytes: facts.bytes,
    }
}

fn summary(m: &ChunkMeta) -> String {
    format!("{} rows in {} streams, ts {}..={}, {} bytes", m.rows, m.streams, m.min_ts, m.max_ts, m.bytes)
}

/// `deletes.json` must parse: the store does not open with an unreadable one. Not
/// repaired: moving it aside would make the entries its requests hide visible again.
fn check_deletes(tdir: &Path, found: &mut CheckReport) {
    let path = tdir.join(DELETES_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            if let Err(e) = serde_json::from_slice::<Vec<DeleteRequest>>(&bytes) {
                let what = format!(
                    "unreadable delete requests ({e}); the store does not open until it is fixed by hand (moving it aside would make the entries its requests hide visible again)"
                );
                found.problem(&path, what, None);
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            found.problem(&path, format!("cannot read: {e}"), None);
        }
    }
}

// ---- Chunks ----

/// Why a file could not be used.
#[derive(Debug)]
enum Fault {
    Missing,
    /// Not damage as far as we can tell (permissions): reported, never repaired.
    Unreadable(String),
    Damaged(String),
}

fn fault(e: std::io::Error) -> Fault {
    match e.kind() {
        ErrorKind::NotFound => Fault::Missing,
        ErrorKind::PermissionDenied => Fault::Unreadable(e.to_string()),
        _ => Fault::Damaged(format!("cannot be read: {e}")),
    }
}

/// A chunk as read back: its Parquet file in full, and its index against that.
struct Verified {
    meta: ChunkMeta,
    parquet: Result<ParquetFacts, Fault>,
    index: Result<(), Fault>,
}

fn verify(tdir: &Path, meta: ChunkMeta) -> Verified {
    let (pq, idx) = chunk::chunk_paths(tdir, &meta);
    let mut parquet = read_parquet(&pq);
    let index = read_index(&idx).and_then(|index| match &parquet {
        Ok(facts) => index_disagreement(&index, facts).map_or(Ok(()), |why| Err(Fault::Damaged(why))),
        Err(_) => Ok(()),
    });
    if let (Ok(()), Ok(facts)) = (&index, &mut parquet) {
        // Only a rebuild needs the footer's labels.
        facts.labels = HashMap::new();
    }
    Verified { meta, parquet, index }
}

/// What a chunk's Parquet file holds.
struct ParquetFacts {
    rows: u64,
    bytes: u64,
    /// In file order, which is fingerprint order.
    streams: Vec<StreamRun>,
    /// From the footer ([`chunk::STREAMS_KEY`]); empty for chunks written before it existed.
    labels: HashMap<u64, Labels>,
}

/// One stream's rows in a chunk.
struct StreamRun {
    fp: u64,
    row_start: u64,
    rows: u64,
    min_ts: i64,
    max_ts: i64,
}

fn read_parquet(path: &Path) -> Result<ParquetFacts, Fault> {
    let file = File::open(path).map_err(fault)?;
    let bytes = file.metadata().map_err(fault)?.len();
    // A decoder fed damaged bytes must not take the whole check down with it.
    let mut facts = match std::panic::catch_unwind(AssertUnwindSafe(|| decode_parquet(path, file))) {
        Ok(decoded) => decoded.map_err(Fault::Damaged)?,
        Err(panic) => {
            let msg = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("");
            return Err(Fault::Damaged(format!("the Parquet reader fails on it: {msg}")));
        }
    };
    facts.bytes = bytes;
    Ok(facts)
}

/// Checks the data pages against their checksum (chunks that carry one), then reads every
/// row group in full: all columns, so that every page is decompressed and decoded, and the
/// (stream, ts) order and the stream runs are checked on the way.
fn decode_parquet(path: &Path, file: File) -> std::result::Result<ParquetFacts, String> {
    // Opened as scans open it: with the page index, which steers them past pages.
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).map_err(|e| format!("its footer does not parse: {e}"))?;
    check_schema(builder.schema())?;
    let metadata = builder.metadata().clone();
    check_offset_index(&metadata)?;
    let footer = metadata.file_metadata();
    let entry = |key: &str| footer.key_value_metadata().into_iter().flatten().find(|kv| kv.key == key).and_then(|kv| kv.value.as_deref());
    if let Some(crc) = entry(chunk::DATA_CRC_KEY) {
        check_data_crc(path, crc)?;
    }
    let labels = entry(chunk::STREAMS_KEY).map(chunk::decode_stream_labels).unwrap_or_default();
    let reader = builder.with_batch_size(READ_BATCH_ROWS).build().map_err(|e| e.to_string())?;
    let mut runs = Runs::default();
    for batch in reader {
        let batch = batch.map_err(|e| {
            let row_group = metadata.row_groups().iter().scan(0u64, |end, rg| {
                *end += u64::try_from(rg.num_rows()).unwrap_or(0);
                Some(*end)
            });
            let at = row_group.take_while(|&end| end <= runs.rows).count();
            format!("row group {at} does not decode (after row {}): {e}", runs.rows)
        })?;
        runs.add(&batch)?;
    }
    if u64::try_from(footer.num_rows()).ok() != Some(runs.rows) {
        return Err(format!("its footer declares {} rows but {} decode", footer.num_rows(), runs.rows));
    }
    if runs.rows == 0 {
        return Err("it holds no rows".into());
    }
    Ok(ParquetFacts { rows: runs.rows, bytes: 0, streams: runs.streams, labels })
}

/// Checks a [`chunk::DATA_CRC_KEY`] footer entry, `"<len>:<crc32 hex>"`, against the file.
fn check_data_crc(path: &Path, entry: &str) -> std::result::Result<(), String> {
    let parsed = entry.split_once(':').and_then(|(len, crc)| Some((len.parse::<u64>().ok()?, u32::from_str_radix(crc, 16).ok()?)));
    let Some((len, want)) = parsed else { return Err(format!("its data checksum entry {entry:?} does not parse")) };
    let mut data = File::open(path).map_err(|e| format!("cannot be read: {e}"))?.take(len);
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = data.read(&mut buf).map_err(|e| format!("cannot be read: {e}"))?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        read += n as u64;
    }
    if read != len {
        return Err(format!("it is shorter ({read} bytes) than its data pages were ({len} bytes)"));
    }
    if crc.finalize() != want {
        return Err("its data pages fail their checksum (bit rot, or the file was overwritten)".into());
    }
    Ok(())
}

/// A scan that skips pages finds them through the offset index: its pages must tile each
/// column chunk's data pages, from row 0 on with rising first rows.
fn check_offset_index(md: &ParquetMetaData) -> std::result::Result<(), String> {
    let Some(index) = md.offset_index() else { return Ok(()) };
    if index.len() != md.row_groups().len() {
        return Err("its offset index does not list every row group".into());
    }
    for (i, (rg, columns)) in md.row_groups().iter().zip(index).enumerate() {
        if columns.len() != rg.columns().len() {
            return Err(format!("its offset index does not list every column of row group {i}"));
        }
        for (col, offsets) in rg.columns().iter().zip(columns) {
            let pages = offsets.page_locations();
            let end = col.dictionary_page_offset().unwrap_or(col.data_page_offset()).saturating_add(col.compressed_size());
            let (mut next, mut row) = (col.data_page_offset(), -1i64);
            let mut tiled = pages.first().is_some_and(|p| p.first_row_index == 0);
            for p in pages {
                tiled &= p.offset == next && p.compressed_page_size > 0 && p.first_row_index > row && p.first_row_index < rg.num_rows();
                next = p.offset.saturating_add(i64::from(p.compressed_page_size));
                row = p.first_row_index;
            }
            if !tiled || next != end {
                return Err(format!("its offset index does not match the pages of column {} in row group {i}", col.column_path()));
            }
        }
    }
    Ok(())
}

fn check_schema(schema: &Schema) -> std::result::Result<(), String> {
    let want = log_schema();
    let same = schema.fields().len() == want.fields().len()
        && schema.fields().iter().zip(want.fields().iter()).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        Ok(())
    } else {
        Err(format!("its schema is not silt's log schema: {schema}"))
    }
}

/// The stream runs of a chunk, built from its batches in file order.
#[derive(Default)]
struct Runs {
    rows: u64,
    streams: Vec<StreamRun>,
    last: Option<(u64, i64)>,
}

impl Runs {
    fn add(&mut self, batch: &RecordBatch) -> std::result::Result<(), String> {
        let fps = batch.column(IDX_STREAM).as_primitive_opt::<UInt64Type>();
        let ts = batch.column(IDX_TS).as_primitive_opt::<Int64Type>();
        let (Some(fps), Some(ts)) = (fps, ts) else { return Err("its stream or ts column has the wrong type".into()) };
        if fps.null_count() > 0 || ts.null_count() > 0 {
            return Err(format!("null stream or ts after row {}", self.rows));
        }
        for (i, key) in fps.values().iter().copied().zip(ts.values().iter().copied()).enumerate() {
            let row = self.rows + i as u64;
            if self.last.is_some_and(|last| key < last) {
                return Err(format!("rows are out of (stream, ts) order at row {row}"));
            }
            self.last = Some(key);
            match self.streams.last_mut() {
                Some(s) if s.fp == key.0 => {
                    s.rows += 1;
                    s.max_ts = key.1;
                }
                _ => self.streams.push(StreamRun { fp: key.0, row_start: row, rows: 1, min_ts: key.1, max_ts: key.1 }),
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

fn read_index(path: &Path) -> Result<ChunkIndex, Fault> {
    let buf = fs::read(path).map_err(fault)?;
    ChunkIndex::decode(&buf).ok_or_else(|| Fault::Damaged("fails its checksum or does not parse".into()))
}

/// Where an (intact) index disagrees with the Parquet file it describes.
fn index_disagreement(index: &ChunkIndex, facts: &ParquetFacts) -> Option<String> {
    if index.streams.len() != facts.streams.len() {
        return Some(format!("lists {} streams, but the Parquet file holds {}", index.streams.len(), facts.streams.len()));
    }
    for (s, r) in index.streams.iter().zip(&facts.streams) {
        if s.fp != r.fp {
            return Some(format!("lists stream {:016x} where the Parquet file holds {:016x}", s.fp, r.fp));
        }
        if (s.row_start, s.rows, s.min_ts, s.max_ts) != (r.row_start, r.rows, r.min_ts, r.max_ts) {
            return Some(format!(
                "says stream {:016x} is {} rows from row {}, ts {}..={}; the Parquet file has {} rows from row {}, ts {}..={}",
                s.fp, s.rows, s.row_start, s.min_ts, s.max_ts, r.rows, r.row_start, r.min_ts, r.max_ts
            ));
        }
        if s.labels.fingerprint() != s.fp {
            return Some(format!("gives stream {:016x} labels {} that do not hash to it", s.fp, s.labels));
        }
    }
    if index.labels.all().len() != index.streams.len() as u64 {
        return Some("has a label index that does not cover its streams".into());
    }
    None
}

/// Labels of the streams whose index needs rebuilding but whose Parquet footer does not
/// record them (chunks written before it did), from the tenant's other indexes.
fn labels_for_rebuilds(tdir: &Path, verified: &[Verified]) -> HashMap<u64, Labels> {
    let wanted: HashSet<u64> = verified
        .iter()
        .filter(|v| v.index.is_err())
        .filter_map(|v| v.parquet.as_ref().ok())
        .flat_map(|f| f.streams.iter().map(|s| s.fp).filter(|fp| !f.labels.contains_key(fp)))
        .collect();
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    for v in verified {
        let Ok(index) = read_index(&chunk::chunk_paths(tdir, &v.meta).1) else { continue };
        for s in index.streams {
            if wanted.contains(&s.fp) && s.labels.fingerprint() == s.fp {
                found.entry(s.fp).or_insert(s.labels);
            }
        }
    }
    found
}

/// The chunk's streams with their labels; `Err(n)` when `n` of them have none.
fn labelled_streams(facts: &ParquetFacts, known: &HashMap<u64, Labels>) -> std::result::Result<Vec<ChunkStream>, usize> {
    let mut out = Vec::with_capacity(facts.streams.len());
    let mut unknown = 0;
    for r in &facts.streams {
        match facts.labels.get(&r.fp).or_else(|| known.get(&r.fp)) {
            Some(labels) => out.push(ChunkStream { fp: r.fp, labels: labels.clone(), row_start: r.row_start, rows: r.rows, min_ts: r.min_ts, max_ts: r.max_ts }),
            None => unknown += 1,
        }
    }
    if unknown > 0 {
        Err(unknown)
    } else {
        Ok(out)
    }
}

/// Replaces an index file atomically with one over `streams`.
fn write_index(path: &Path, streams: Vec<ChunkStream>) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(StoreError::InvalidInput(format!("bad index path {}", path.display())));
    };
    write_atomic(dir, name, &ChunkIndex::from_streams(streams).encode())
}

// ---- Files ----

/// The entries of a directory; none when it does not exist.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir.display())(e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        out.push(ent.map_err(io_err(dir.display()))?.path());
    }
    out.sort();
    Ok(out)
}

/// Every file in the tenant's day directories (`chunks/<day>/<file>`).
fn chunk_files(tdir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for day in list_dir(&tdir.join("chunks"))?.into_iter().filter(|d| d.is_dir()) {
        out.extend(list_dir(&day)?.into_iter().filter(|f| f.is_file()));
    }
    Ok(out)
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

/// Moves `src` into `dir`, under a name not taken there yet; returns its new path.
fn move_into(src: &Path, dir: &Path) -> Result<PathBuf> {
    let dst = free_name(src, dir)?;
    fs::rename(src, &dst).map_err(io_err(format!("moving {} to {}", src.display(), dst.display())))?;
    sync_dir(dir)?;
    if let Some(parent) = src.parent() {
        sync_dir(parent)?;
    }
    Ok(dst)
}

/// Copies `src` into `dir` (fsync'd), under a name not taken there yet.
fn copy_into(src: &Path, dir: &Path) -> Result<PathBuf> {
    let dst = free_name(src, dir)?;
    fs::copy(src, &dst)
        .and_then(|_| File::open(&dst)?.sync_all())
        .map_err(io_err(format!("copying {} to {}", src.display(), dst.display())))?;
    sync_dir(dir)?;
    Ok(dst)
}

/// `dir/<name of src>`, or with a `.1`, `.2`... suffix when an earlier repair took it.
fn free_name(src: &Path, dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
    let name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let mut dst = dir.join(&name);
    let mut n = 1;
    while dst.symlink_metadata().is_ok() {
        dst = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    Ok(dst)
}
