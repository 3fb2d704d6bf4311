//! Write-ahead log. A push is acknowledged only after its record is in a segment file and
//! fsync'd, so acknowledged data survives `kill -9` and power loss.
//!
//! Layout: `wal/<20-digit id>.wal`, each starting with an 8-byte magic, then records framed
//! as `[len: u32 LE][crc32(payload): u32 LE][payload]`.
//!
//! Group commit: one writer thread drains every append that is waiting, writes them with
//! one `write`, and calls `fsync` once for all of them, so N concurrent pushes share one
//! fsync instead of queueing behind N.
//!
//! Replay: a record whose frame is cut short or whose CRC does not match at the end of the
//! newest segment is a torn write from a crash; it was never acknowledged, so it is dropped
//! with a warning and the file truncated there. The same damage in an older segment, or
//! in the middle of a file, is corruption and stops startup with an error naming the file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{io_err, Result, StoreError};

const MAGIC: &[u8; 8] = b"SILTWAL1";
const FRAME_HEADER: usize = 8;
/// A single record larger than this is rejected by replay as corrupt; pushes are bounded
/// far below it by the server's body limit.
const MAX_RECORD: usize = 1 << 30;

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// Segment ids present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err(dir.display())(e)),
    };
    for ent in rd {
        let ent = ent.map_err(io_err(dir.display()))?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".wal").and_then(|s| s.parse::<u64>().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// How reading a segment ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    Clean,
    /// The file ends in a partial or damaged record starting at this offset.
    Torn { offset: u64 },
}

/// Calls `f` for each intact record of a segment, in order.
pub(crate) fn read_segment(path: &Path, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<SegmentEnd> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut buf).map_err(io_err(path.display()))?,
        Err(e) => return Err(io_err(path.display())(e)),
    };
    if buf.len() < MAGIC.len() {
        // Created but the header never made it to disk: an empty segment.
        return Ok(if buf.is_empty() { SegmentEnd::Clean } else { SegmentEnd::Torn { offset: 0 } });
    }
    if &buf[..MAGIC.len()] != MAGIC {
        return Err(StoreError::Corrupt { path: path.to_path_buf(), comment: "not a silt WAL segment (bad magic)".into() });
    }
    let mut off = MAGIC.len();
    while off < buf.len() {
        let rest = &buf[off..];
        if rest.len() < FRAME_HEADER {
            return Ok(SegmentEnd::Torn { offset: off as u64 });
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let body_end = FRAME_HEADER.saturating_add(len);
        if len == 0 || len > MAX_RECORD || rest.len() < body_end || crc32fast::hash(&rest[FRAME_HEADER..body_end]) != crc {
            // Damage that runs to the end of the file is a torn write; damage followed by
            // intact-looking data is not something a crash produces.
            let tail_is_torn = rest.len() <= body_end || len == 0 || len > MAX_RECORD;
            if tail_is_torn {
                return Ok(SegmentEnd::Torn { offset: off as u64 });
            }
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                comment: format!("bad checksum in record at offset {off}"),
            });
        }
        f(&rest[FRAME_HEADER..body_end])?;
        off += body_end;
    }
    Ok(SegmentEnd::Clean)
}

/// Where the intact start of a damaged segment ends: the offset just past the last record
/// before the first one that is cut short, fails its checksum, or that `valid` rejects.
/// `None` when the file does not even start with the segment magic. For repair, which
/// truncates the segment there.
pub(crate) fn intact_prefix(path: &Path, mut valid: impl FnMut(&[u8]) -> bool) -> Result<Option<u64>> {
    let buf = fs::read(path).map_err(io_err(path.display()))?;
    if buf.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Ok(None);
    }
    let mut off = MAGIC.len();
    while let Some(rest) = buf.get(off..).filter(|r| r.len() >= FRAME_HEADER) {
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let body = rest.get(FRAME_HEADER..FRAME_HEADER.saturating_add(len));
        match body {
            Some(b) if len > 0 && len <= MAX_RECORD && crc32fast::hash(b) == crc && valid(b) => off += FRAME_HEADER + len,
            _ => break,
        }
    }
    Ok(Some(off as u64))
}

/// Drops a torn tail found at startup, so new segments never follow garbage.
pub(crate) fn truncate_segment(path: &Path, offset: u64) -> Result<()> {
    let f = OpenOptions::new().write(true).open(path).map_err(io_err(path.display()))?;
    // A header cut short leaves nothing worth keeping: an empty segment reads as clean.
    let keep = if offset < MAGIC.len() as u64 { 0 } else { offset };
    f.set_len(keep).map_err(io_err(path.display()))?;
    f.sync_all().map_err(io_err(path.display()))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir.display()))
}

enum Op {
    Append { payload: Vec<u8>, done: oneshot::Sender<Result<()>> },
    /// Closes the current segment and starts a new one; answers the closed segment's id.
    Rotate { done: oneshot::Sender<Result<u64>> },
}

/// The WAL writer: a handle to the group-commit thread.
pub(crate) struct Wal {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

pub(crate) struct WalOptions {
    /// fsync before acknowledging (the default). Off trades durability for speed.
    pub sync: bool,
    /// Start a new segment once the current one passes this size.
    pub segment_bytes: u64,
    /// Where each group commit's write+fsync time is recorded.
    pub metrics: std::sync::Arc<crate::metrics::StoreMetrics>,
}

impl Wal {
    /// Starts writing at a new segment `first_id` (replay has read all older ones).
    pub fn open(dir: &Path, first_id: u64, opts: WalOptions) -> Result<Wal> {
        fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
        let seg = Segment::create(dir, first_id)?;
        let (tx, rx) = mpsc::channel();
        let dir2 = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("silt-wal".into())
            .spawn(move || writer_loop(dir2, seg, rx, opts))
            .map_err(io_err("spawning the WAL writer"))?;
        Ok(Wal { tx: Some(tx), thread: Some(thread), dir: dir.to_path_buf() })
    }

    /// Appends one record; resolves once it is durable (or written, with `sync` off).
    pub async fn append(&self, payload: Vec<u8>) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Append { payload, done })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Seals the current segment; every record appended before this call is in a segment
    /// with id <= the returned one, every later record in a newer segment.
    pub async fn rotate(&self) -> Result<u64> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Rotate { done })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes the sealed segments with id <= `upto` (their data is in chunks now).
    pub fn remove_upto(&self, upto: u64) -> Result<()> {
        for id in list_segments(&self.dir)? {
            if id <= upto {
                let p = segment_path(&self.dir, id);
                fs::remove_file(&p).map_err(io_err(p.display()))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Deletes the sealed segments `ids` (replay found nothing in them to keep).
    pub(crate) fn remove(&self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        for &id in ids {
            let p = segment_path(&self.dir, id);
            fs::remove_file(&p).map_err(io_err(p.display()))?;
        }
        sync_dir(&self.dir)
    }

    fn send(&self, op: Op) -> Result<()> {
        self.tx.as_ref().ok_or(StoreError::Closed)?.send(op).map_err(|_| StoreError::Closed)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Segment {
    id: u64,
    file: File,
    size: u64,
}

impl Segment {
    fn create(dir: &Path, id: u64) -> Result<Segment> {
        let path = segment_path(dir, id);
        let mut file = OpenOptions::new().create_new(true).write(true).open(&path).map_err(io_err(path.display()))?;
        file.write_all(MAGIC).map_err(io_err(path.display()))?;
        file.sync_all().map_err(io_err(path.display()))?;
        sync_dir(dir)?;
        Ok(Segment { id, file, size: MAGIC.len() as u64 })
    }
}

fn writer_loop(dir: PathBuf, mut seg: Segment, rx: mpsc::Receiver<Op>, opts: WalOptions) {
    let mut frame_buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut waiting: Vec<oneshot::Sender<Result<()>>> = Vec::new();
    // After a failed write the file may hold a partial record; refuse further appends
    // rather than write after garbage. Restart recovers by truncating the torn tail.
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while let Ok(op) = rx.try_recv() {
            ops.push(op);
        }
        for op in ops {
            match op {
                Op::Append { payload, done } => {
                    frame_buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                    frame_buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
                    frame_buf.extend_from_slice(&payload);
                    waiting.push(done);
                }
                Op::Rotate { done } => {
                    let r = commit(&mut seg, &mut frame_buf, &mut waiting, &mut failed, &opts)
                        .and_then(|()| rotate(&dir, &mut seg));
                    let _ = done.send(r);
                }
            }
        }
        let _ = commit(&mut seg, &mut frame_buf, &mut waiting, &mut failed, &opts);
        if failed.is_none() && seg.size >= opts.segment_bytes {
            if let Err(e) = rotate(&dir, &mut seg) {
                failed = Some(e.to_string());
            }
        }
    }
    let _ = seg.file.sync_all();
}

/// Writes the pending frames with one write and one fsync, then answers their pushes.
fn commit(
    seg: &mut Segment,
    frames: &mut Vec<u8>,
    waiting: &mut Vec<oneshot::Sender<Result<()>>>,
    failed: &mut Option<String>,
    opts: &WalOptions,
) -> Result<()> {
    if waiting.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let res = match failed {
        Some(why) => Err(why.clone()),
        None => seg
            .file
            .write_all(frames)
            .and_then(|()| if opts.sync { seg.file.sync_data() } else { Ok(()) })
            .map_err(|e| format!("wal segment {}: {e}", seg.id)),
    };
    opts.metrics.wal_fsync.observe(started.elapsed());
    seg.size += frames.len() as u64;
    frames.clear();
    if let Err(why) = &res {
        tracing::error!(error = %why, "WAL write failed; pushes are refused until restart");
        *failed = Some(why.clone());
    }
    for w in waiting.drain(..) {
        let _ = w.send(res.clone().map_err(|why| StoreError::Io {
            context: why,
            source: std::io::Error::other("write-ahead log unavailable"),
        }));
    }
    res.map_err(|why| StoreError::Io { context: why, source: std::io::Error::other("write-ahead log unavailable") })
}

fn rotate(dir: &Path, seg: &mut Segment) -> Result<u64> {
    seg.file.sync_all().map_err(io_err(format!("wal segment {}", seg.id)))?;
    let closed = seg.id;
    *seg = Segment::create(dir, closed + 1)?;
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> (Vec<Vec<u8>>, SegmentEnd) {
        let mut out = Vec::new();
        let end = read_segment(path, |r| {
            out.push(r.to_vec());
            Ok(())
        })
        .unwrap();
        (out, end)
    }

    #[tokio::test]
    async fn append_rotate_replay() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 1, WalOptions { sync: true, segment_bytes: 1 << 20, metrics: Default::default() }).unwrap();
        wal.append(b"one".to_vec()).await.unwrap();
        wal.append(b"two".to_vec()).await.unwrap();
        assert_eq!(wal.rotate().await.unwrap(), 1);
        wal.append(b"three".to_vec()).await.unwrap();
        drop(wal);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2]);
        let (r1, e1) = records(&segment_path(dir.path(), 1));
        assert_eq!(r1, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(e1, SegmentEnd::Clean);
        assert_eq!(records(&segment_path(dir.path(), 2)).0, vec![b"three".to_vec()]);
    }

    #[tokio::test]
    async fn concurrent_appends_share_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let wal = std::sync::Arc::new(Wal::open(dir.path(), 1, WalOptions { sync: true, segment_bytes: 1 << 30, metrics: Default::default() }).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let w = wal.clone();
            tasks.push(tokio::spawn(async move { w.append(i.to_le_bytes().to_vec()).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        drop(wal);
        let (recs, _) = records(&segment_path(dir.path(), 1));
        let mut got: Vec<u32> = recs.iter().map(|r| u32::from_le_bytes(r[..4].try_into().unwrap())).collect();
        got.sort();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn torn_tail_is_detected_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 7, WalOptions { sync: true, segment_bytes: 1 << 20, metrics: Default::default() }).unwrap();
        wal.append(b"kept".to_vec()).await.unwrap();
        wal.append(b"torn-record".to_vec()).await.unwrap();
        drop(wal);
        let p = segment_path(dir.path(), 7);
        let full = fs::read(&p).unwrap();
        // Every cut inside the last record reads as torn at the same offset.
        let kept_end = MAGIC.len() + FRAME_HEADER + 4;
        for cut in kept_end + 1..full.len() {
            fs::write(&p, &full[..cut]).unwrap();
            let (recs, end) = records(&p);
            assert_eq!(recs, vec![b"kept".to_vec()]);
            assert_eq!(end, SegmentEnd::Torn { offset: kept_end as u64 });
        }
        // A flipped bit in the last record's payload is torn too...
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 1;
        fs::write(&p, &bad).unwrap();
        assert_eq!(records(&p).1, SegmentEnd::Torn { offset: kept_end as u64 });
        truncate_segment(&p, kept_end as u64).unwrap();
        assert_eq!(records(&p), (vec![b"kept".to_vec()], SegmentEnd::Clean));
        // ...but damage followed by more data is corruption, reported with the file name.
        let mut mid = full.clone();
        mid[MAGIC.len() + FRAME_HEADER] ^= 1;
        fs::write(&p, &mid).unwrap();
        let err = read_segment(&p, |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("bad checksum") && err.contains("wal"), "{err}");
    }
}
