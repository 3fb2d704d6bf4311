//! `check` (`silt check [--repair]`): damage is found, repair quarantines or rebuilds, and
//! the store opens afterwards with everything that was not damaged.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use silt_storage::manifest::Manifest;
use silt_storage::{
    check, CheckOptions, CheckReport, IngestLimits, Labels, MaintainOptions, PushEntry, PushRequest, PushStream, Store, StoreConfig, StoreError, TenantId,
};

use common::read_all;

/// 2026-01-15T01:00:00Z: a few hundred minutes from here stay within one UTC day.
const T: i64 = 1_768_438_800_000_000_000;
const MINUTE: i64 = 60_000_000_000;

fn acme() -> TenantId {
    "acme".parse().unwrap()
}

/// Pushes `n` entries to each of `services` of `tenant`, one a minute from `start`, with
/// lines tagged `tag` (and varied enough that the chunks do not compress to nothing).
async fn push(store: &Store, tenant: &TenantId, services: &[&str], tag: &str, start: i64, n: i64) {
    for i in 0..n {
        let streams = services
            .iter()
            .map(|svc| PushStream {
                labels: Labels::from_pairs([("service", *svc), ("env", "prod")]).unwrap(),
                entries: vec![PushEntry {
                    ts: start + i * MINUTE,
                    line: format!("{tag} {svc} line {i} {:016x}", (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    metadata: vec![],
                }],
            })
            .collect();
        store.push(tenant, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
    }
}

/// Three flushed chunks of acme in one day (lines tagged b1, b2, b3), plus entries of
/// tenant globex still in the WAL.
async fn three_chunks(dir: &Path) -> Vec<(String, i64, String)> {
    let store = Store::open(StoreConfig::new(dir)).unwrap();
    for (k, tag) in ["b1", "b2", "b3"].into_iter().enumerate() {
        push(&store, &acme(), &["api", "db"], tag, T + k as i64 * 200 * MINUTE, 150).await;
        store.flush().await.unwrap();
    }
    push(&store, &"globex".parse().unwrap(), &["web"], "wal", T, 5).await;
    read_all(&store, &acme())
}

fn run(dir: &Path, repair: bool) -> CheckReport {
    check(dir, &CheckOptions { repair }).unwrap()
}

fn reopen(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir)).unwrap()
}

fn tenant_dir(dir: &Path) -> PathBuf {
    dir.join("tenants/acme")
}

/// The `.parquet` and `.idx` paths of acme's chunks, in manifest order.
fn chunk_paths(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let m = Manifest::load(&tenant_dir(dir)).unwrap().unwrap();
    m.chunks
        .iter()
        .map(|c| {
            let stem = tenant_dir(dir).join(c.stem());
            (stem.with_extension("parquet"), stem.with_extension("idx"))
        })
        .collect()
}

/// Inverts `n` bytes of a file from `at`.
fn flip(path: &Path, at: usize, n: usize) {
    let mut bytes = fs::read(path).unwrap();
    for b in &mut bytes[at..at + n] {
        *b ^= 0xff;
    }
    fs::write(path, bytes).unwrap();
}

/// Where a column's pages are in a Parquet file: `(offset, length)`.
fn column_range(path: &Path, column: &str) -> (u64, u64) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(fs::File::open(path).unwrap()).unwrap();
    let rg = reader.metadata().row_group(0);
    rg.columns().iter().find(|c| c.column_path().string() == column).unwrap().byte_range()
}

fn quarantined(dir: &Path, rel: &str, file: &Path) -> PathBuf {
    dir.join("quarantine").join(rel).join(file.file_name().unwrap())
}

#[tokio::test]
async fn a_healthy_directory_is_clean_even_while_a_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    for (k, tag) in ["b1", "b2"].into_iter().enumerate() {
        push(&store, &acme(), &["api", "db"], tag, T + k as i64 * 200 * MINUTE, 150).await;
        store.flush().await.unwrap();
    }
    push(&store, &"globex".parse().unwrap(), &["web"], "wal", T, 5).await;

    // Read-only: fine beside the open store.
    let r = run(dir.path(), false);
    assert!(r.is_clean(), "{r:#?}");
    assert!(r.notes.is_empty(), "{r:#?}");
    assert_eq!((r.tenants, r.chunks, r.rows), (1, 2, 600), "{r:#?}");
    assert!(r.wal_segments >= 1);
    drop(store);

    // Repair of a healthy directory changes nothing.
    let before: Vec<_> = walk(dir.path());
    let r = run(dir.path(), true);
    assert!(r.is_clean() && r.notes.is_empty(), "{r:#?}");
    assert_eq!(walk(dir.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_beside_a_store_that_flushes_and_compacts_finds_no_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    push(&store, &acme(), &["api", "db"], "first", T, 10).await;
    store.flush().await.unwrap();
    let path = dir.path().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let checker = std::thread::spawn(move || {
        let mut reports = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            reports.push(check(&path, &CheckOptions::default()).unwrap());
        }
        reports
    });
    // Files appear (flush) and vanish (compaction) while the checks run.
    for k in 1..=30 {
        push(&store, &acme(), &["api", "db"], "live", T + k * 10 * MINUTE, 10).await;
        store.flush().await.unwrap();
        if k % 3 == 0 {
            store.maintain(MaintainOptions::default()).await.unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // Leftovers of the flush or compaction in progress may be noted: not damage.
    for r in checker.join().unwrap() {
        assert!(r.is_clean(), "{r:#?}");
    }
}

#[tokio::test]
async fn a_damaged_parquet_file_is_quarantined_and_the_rest_survives() {
    let dir = tempfile::tempdir().unwrap();
    let before = three_chunks(dir.path()).await;
    let (pq, idx) = chunk_paths(dir.path())[1].clone();
    // One byte inside the log lines: zstd decodes such damage without complaint (its
    // frames carry no checksum here); the chunk's data checksum does not.
    let (start, len) = column_range(&pq, "line");
    flip(&pq, (start + len / 2) as usize, 1);

    let r = run(dir.path(), false);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert_eq!(r.problems[0].path, pq);
    assert!(r.problems[0].what.contains("damaged chunk") && r.problems[0].what.contains("checksum"), "{r:#?}");
    assert!(r.problems[0].action.is_none());
    assert!(pq.exists(), "a check without repair changes nothing");

    let r = run(dir.path(), true);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    let action = r.problems[0].action.as_deref().unwrap();
    assert!(action.contains("dropped it from the manifest"), "{action}");
    assert!(!pq.exists() && !idx.exists());
    assert!(quarantined(dir.path(), "acme/2026-01-15", &pq).exists());
    assert!(quarantined(dir.path(), "acme/2026-01-15", &idx).exists());

    let store = reopen(dir.path());
    let kept: Vec<_> = before.into_iter().filter(|e| !e.2.starts_with("b2 ")).collect();
    assert_eq!(kept.len(), 600);
    assert_eq!(read_all(&store, &acme()), kept);
    assert_eq!(read_all(&store, &"globex".parse().unwrap()).len(), 5);
    drop(store);
    let r = run(dir.path(), false);
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.chunks, 2);
}

#[tokio::test]
async fn a_damaged_field_column_file_is_set_aside_and_the_lines_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    for (k, tag) in ["b1", "b2"].into_iter().enumerate() {
        for i in 0..100i64 {
            let line = format!(r#"{{"tag":"{tag}","path":"/p{}","ms":{i}}}"#, i % 3);
            let entries = vec![PushEntry { ts: T + (k as i64 * 100 + i) * MINUTE, line, metadata: vec![] }];
            let streams = vec![PushStream { labels: Labels::from_pairs([("service", "api")]).unwrap(), entries }];
            store.push(&acme(), PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
        }
        store.flush().await.unwrap();
    }
    store.maintain(MaintainOptions::default()).await.unwrap();
    let before = read_all(&store, &acme());
    drop(store);
    let (pq, _) = chunk_paths(dir.path())[0].clone();
    let fld = pq.with_extension("fld");
    assert!(run(dir.path(), false).is_clean());
    flip(&fld, 5, 1);

    let r = run(dir.path(), false);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert_eq!(r.problems[0].path, fld);
    assert!(r.problems[0].what.contains("field-column"), "{r:#?}");
    assert!(fld.exists(), "a check without repair changes nothing");
    let r = run(dir.path(), true);
    assert!(r.problems[0].action.as_deref().unwrap().contains("moved it to"), "{r:#?}");
    assert!(!fld.exists() && quarantined(dir.path(), "acme/2026-01-15", &fld).exists());
    assert!(run(dir.path(), false).is_clean());
    assert_eq!(read_all(&reopen(dir.path()), &acme()), before);
}

#[tokio::test]
async fn lost_and_damaged_indexes_are_rebuilt_with_the_same_labels() {
    let dir = tempfile::tempdir().unwrap();
    let before = three_chunks(dir.path()).await;
    let chunks = chunk_paths(dir.path());
    fs::remove_file(&chunks[0].1).unwrap();
    let len = fs::metadata(&chunks[1].1).unwrap().len() as usize;
    flip(&chunks[1].1, len / 2, 1);
    assert!(Store::open(StoreConfig::new(dir.path())).is_err());

    let r = run(dir.path(), false);
    let paths: Vec<_> = r.problems.iter().map(|p| p.path.clone()).collect();
    assert_eq!(paths, vec![chunks[0].1.clone(), chunks[1].1.clone()], "{r:#?}");
    assert!(r.problems[0].what.contains("missing") && r.problems[1].what.contains("checksum"), "{r:#?}");

    let r = run(dir.path(), true);
    assert!(r.problems.iter().all(|p| p.action.as_deref() == Some("rebuilt the index from the Parquet file")), "{r:#?}");
    let store = reopen(dir.path());
    assert_eq!(read_all(&store, &acme()), before);
    assert_eq!(store.label_values(&acme(), "service", &[], i64::MIN, i64::MAX), vec!["api", "db"]);
    drop(store);
    assert!(run(dir.path(), false).is_clean());
}

/// Rewrites a chunk's Parquet file without the stream labels in its footer, as chunks
/// written before the footer carried them.
fn strip_footer_labels(path: &Path) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    let builder = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    assert!(builder.metadata().file_metadata().key_value_metadata().unwrap().iter().any(|kv| kv.key == "silt.streams"));
    let schema = builder.schema().clone();
    let batches: Vec<_> = builder.build().unwrap().map(Result::unwrap).collect();
    let mut w = ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

#[tokio::test]
async fn an_old_chunk_gets_its_labels_from_other_indexes_or_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    push(&store, &acme(), &["api", "db"], "b1", T, 50).await;
    store.flush().await.unwrap();
    push(&store, &acme(), &["api", "db"], "b2", T + 100 * MINUTE, 50).await;
    store.flush().await.unwrap();
    push(&store, &acme(), &["solo"], "b3", T + 200 * MINUTE, 50).await;
    store.flush().await.unwrap();
    let before = read_all(&store, &acme());
    drop(store);
    let chunks = chunk_paths(dir.path());
    for (pq, idx) in &chunks[1..] {
        strip_footer_labels(pq);
        fs::remove_file(idx).unwrap();
    }

    let r = run(dir.path(), true);
    let on = |p: &Path| r.problems.iter().filter(|x| x.path == p).collect::<Vec<_>>();
    // The second chunk's streams are in the first chunk's index.
    assert_eq!(on(&chunks[1].1)[0].action.as_deref(), Some("rebuilt the index from the Parquet file"), "{r:#?}");
    // The third one's stream is recorded nowhere else.
    let solo = on(&chunks[2].1);
    assert!(solo[0].what.contains("recorded nowhere else"), "{r:#?}");
    assert!(solo[0].action.as_deref().unwrap().contains("moved its files to"), "{r:#?}");
    // The rewritten file's size differs from the manifest's entry: corrected.
    assert!(r.problems.iter().any(|p| p.action.as_deref() == Some("corrected the entry")), "{r:#?}");

    let store = reopen(dir.path());
    let kept: Vec<_> = before.into_iter().filter(|e| !e.2.starts_with("b3 ")).collect();
    assert_eq!(read_all(&store, &acme()), kept);
    drop(store);
    assert!(run(dir.path(), false).is_clean());
}

#[tokio::test]
async fn a_garbage_manifest_is_rebuilt_from_the_chunks_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    push(&store, &acme(), &["api", "db"], "b1", T, 100).await;
    store.flush().await.unwrap();
    push(&store, &acme(), &["api", "db"], "b2", T + 100 * MINUTE, 100).await;
    store.flush().await.unwrap();
    // Still in the WAL only: must be replayed once, not lost, after the rebuild.
    push(&store, &acme(), &["api"], "wal", T + 300 * MINUTE, 10).await;
    let before = read_all(&store, &acme());
    drop(store);
    let manifest = tenant_dir(dir.path()).join("manifest.json");
    fs::write(&manifest, b"{\"version\":1,\"chunks\":[garbage").unwrap();
    assert!(Store::open(StoreConfig::new(dir.path())).is_err());

    let r = run(dir.path(), false);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert_eq!(r.problems[0].path, manifest);
    assert_eq!(r.chunks, 2, "the chunk files on disk are verified too");

    let r = run(dir.path(), true);
    let action = r.problems[0].action.as_deref().unwrap();
    assert!(action.contains("rebuilt it from the 2 chunks") && action.contains("may now appear twice"), "{action}");
    assert_eq!(fs::read(quarantined(dir.path(), "acme", &manifest)).unwrap(), b"{\"version\":1,\"chunks\":[garbage");

    let store = reopen(dir.path());
    assert_eq!(read_all(&store, &acme()), before);
    drop(store);
    assert!(run(dir.path(), false).is_clean());
}

#[tokio::test]
async fn unnamed_chunk_files_are_noted_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let before = three_chunks(dir.path()).await;
    let day = tenant_dir(dir.path()).join("chunks/2026-01-15");
    let orphans = [day.join("ffffffffffffffff0000.parquet"), day.join("ffffffffffffffff0000.idx")];
    for o in &orphans {
        fs::write(o, b"partial").unwrap();
    }

    let r = run(dir.path(), false);
    assert!(r.is_clean(), "leftovers are not damage: {r:#?}");
    let noted: BTreeSet<_> = r.notes.iter().map(|n| n.path.clone()).collect();
    assert_eq!(noted, orphans.iter().cloned().collect::<BTreeSet<_>>(), "{r:#?}");

    let r = run(dir.path(), true);
    assert!(r.notes.iter().all(|n| n.action.as_deref() == Some("removed")), "{r:#?}");
    assert!(orphans.iter().all(|o| !o.exists()));
    let store = reopen(dir.path());
    assert_eq!(read_all(&store, &acme()), before);
    drop(store);
    let r = run(dir.path(), false);
    assert!(r.is_clean() && r.notes.is_empty(), "{r:#?}");
}

#[tokio::test]
async fn repair_refuses_while_a_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    push(&store, &acme(), &["api"], "b1", T, 10).await;
    store.flush().await.unwrap();
    let e = check(dir.path(), &CheckOptions { repair: true }).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(run(dir.path(), false).is_clean());
    drop(store);
    assert!(run(dir.path(), true).is_clean());
    assert!(check(&dir.path().join("nope"), &CheckOptions::default()).is_err());
}

#[tokio::test]
async fn a_wal_segment_damaged_in_the_middle_is_cut_at_its_last_intact_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.wal_segment_bytes = 2048;
    let store = Store::open(cfg.clone()).unwrap();
    push(&store, &acme(), &["api"], "w", T, 100).await;
    drop(store);
    let wal = dir.path().join("wal");
    let segs = silt_storage::wal::list_segments(&wal).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");

    // A torn write at the end of the newest segment is what a crash leaves: not damage.
    let newest = silt_storage::wal::segment_path(&wal, *segs.last().unwrap());
    let mut f = fs::OpenOptions::new().append(true).open(&newest).unwrap();
    std::io::Write::write_all(&mut f, &[42, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let r = run(dir.path(), false);
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.notes.len(), 1);
    assert_eq!(r.notes[0].path, newest);
    assert_eq!(r.wal_segments, segs.len());

    // Damage in the middle of an older segment is.
    let first = silt_storage::wal::segment_path(&wal, segs[0]);
    let len = fs::metadata(&first).unwrap().len() as usize;
    flip(&first, len / 2, 1);
    assert!(Store::open(cfg.clone()).is_err());
    let r = run(dir.path(), false);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert_eq!(r.problems[0].path, first);
    assert!(r.problems[0].what.contains("bad checksum"), "{r:#?}");

    let r = run(dir.path(), true);
    assert!(r.problems[0].action.as_deref().unwrap().contains("cut at offset"), "{r:#?}");
    assert_eq!(fs::metadata(quarantined(dir.path(), "wal", &first)).unwrap().len() as usize, len);
    let cut = fs::metadata(&first).unwrap().len() as usize;
    assert!(cut > 8 && cut < len / 2 + 1, "{cut} of {len}");

    // The records before the damage and every later segment are served again.
    let store = Store::open(cfg.clone()).unwrap();
    let lines: Vec<String> = read_all(&store, &acme()).into_iter().map(|e| e.2).collect();
    assert!(lines.len() > 50 && lines.len() < 100, "{}", lines.len());
    assert!(lines.iter().any(|l| l.starts_with("w api line 0 ")));
    assert!(lines.iter().any(|l| l.starts_with("w api line 99 ")));
    drop(store);
    let r = run(dir.path(), false);
    assert!(r.is_clean(), "{r:#?}");
}

#[tokio::test]
async fn a_damaged_delete_list_is_reported_but_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    three_chunks(dir.path()).await;
    let deletes = tenant_dir(dir.path()).join("deletes.json");
    fs::write(&deletes, b"[{\"request_id\": 1").unwrap();
    let r = run(dir.path(), true);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert_eq!(r.problems[0].path, deletes);
    assert!(r.problems[0].action.is_none());
    assert!(deletes.exists());
}

/// Every file under `dir` with its content, for "nothing changed" checks.
fn walk(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            let bytes = fs::read(&p).unwrap();
            out.push((p, bytes));
        }
    }
    out.sort();
    out
}
