//! Store-level behaviour: push, scan, flush, restart, crash leftovers, read-only opens.

use std::collections::BTreeMap;

use arrow::array::{AsArray, Array};
use arrow::datatypes::{Int64Type, UInt64Type};
use silt_storage::{
    IngestLimits, Labels, RefusalKind, MatchOp, Matcher, PushEntry, PushRequest, PushStream, ScanRequest, Store, StoreConfig, TenantId, IDX_LINE,
    IDX_METADATA, IDX_STREAM, IDX_TS,
};

const DAY: i64 = 86_400_000_000_000;
/// 2026-01-15T23:00:00Z: pushes cross midnight, so flushes write two day partitions.
const T0: i64 = 1_768_518_000_000_000_000;

fn tenant(s: &str) -> TenantId {
    s.parse().unwrap()
}

fn req(labels: &[(&str, &str)], entries: &[(i64, &str)]) -> PushRequest {
    PushRequest {
        streams: vec![PushStream {
            labels: Labels::from_pairs(labels.iter().copied()).unwrap(),
            entries: entries.iter().map(|(ts, l)| PushEntry { ts: *ts, line: l.to_string(), metadata: vec![] }).collect(),
        }],
    }
}

/// Everything a scan returns, as `labels -> [(ts, line, has_metadata)]`, each stream sorted.
fn read_all(store: &Store, t: &TenantId, matchers: Vec<Matcher>, start: i64, end: i64) -> BTreeMap<String, Vec<(i64, String, bool)>> {
    let scan = store.scan(t, &ScanRequest { matchers, start, end, projection: None, needles: vec![], fields: None, line_predicate: None }).unwrap();
    let mut out: BTreeMap<String, Vec<(i64, String, bool)>> = BTreeMap::new();
    for part in scan.parts {
        for b in part.execute() {
            let b = b.unwrap();
            let fp = b.column(IDX_STREAM).as_primitive::<UInt64Type>();
            let ts = b.column(IDX_TS).as_primitive::<Int64Type>();
            let line = b.column(IDX_LINE).as_string::<i32>();
            let meta = b.column(IDX_METADATA).as_binary::<i32>();
            for i in 0..b.num_rows() {
                let labels = scan.streams[&fp.value(i)].to_string();
                out.entry(labels).or_default().push((ts.value(i), line.value(i).to_string(), meta.is_valid(i)));
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn m(name: &str, op: MatchOp, v: &str) -> Matcher {
    Matcher::new(name, op, v).unwrap()
}

async fn fill(store: &Store) {
    let t = tenant("acme");
    for i in 0..200i64 {
        let svc = if i % 2 == 0 { "api" } else { "db" };
        store
            .push(&t, req(&[("service", svc), ("env", "prod")], &[(T0 + i * 60_000_000_000, &format!("line {i}"))]), &IngestLimits::unlimited())
            .await
            .unwrap();
    }
    let mut with_meta = req(&[("service", "api"), ("env", "staging")], &[(T0 + 5, "meta line")]);
    with_meta.streams[0].entries[0].metadata = vec![("trace_id".into(), "abc".into())];
    store.push(&t, with_meta, &IngestLimits::unlimited()).await.unwrap();
    store.push(&tenant("globex"), req(&[("service", "api")], &[(T0 + 7, "other tenant")]), &IngestLimits::unlimited()).await.unwrap();
}

#[tokio::test]
async fn push_is_visible_then_survives_flush_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let store = Store::open(cfg.clone()).unwrap();
    fill(&store).await;
    let t = tenant("acme");
    let sel = vec![m("service", MatchOp::Re, "api|db")];
    let before = read_all(&store, &t, sel.clone(), i64::MIN, i64::MAX);
    assert_eq!(before.values().map(Vec::len).sum::<usize>(), 201);
    assert!(before.keys().any(|k| k.contains("staging")));
    assert_eq!(read_all(&store, &tenant("globex"), sel.clone(), i64::MIN, i64::MAX).len(), 1);

    // Restart without a flush: everything comes back from the WAL.
    drop(store);
    let store = Store::open(cfg.clone()).unwrap();
    assert_eq!(read_all(&store, &t, sel.clone(), i64::MIN, i64::MAX), before);

    // Flush: chunks per UTC day, the WAL is truncated, answers are identical.
    let stats = store.flush().await.unwrap();
    assert!(stats.chunks >= 2, "{stats:?}");
    assert_eq!(store.stats(&t).head_entries, 0);
    assert_eq!(read_all(&store, &t, sel.clone(), i64::MIN, i64::MAX), before);
    drop(store);
    let store = Store::open(cfg).unwrap();
    assert_eq!(read_all(&store, &t, sel.clone(), i64::MIN, i64::MAX), before);

    // Time range pruning within chunks: [T0 + 10m, T0 + 20m) holds minutes 10..19.
    let window = read_all(&store, &t, sel, T0 + 600_000_000_000, T0 + 1_200_000_000_000);
    assert_eq!(window.values().map(Vec::len).sum::<usize>(), 10);
    // Matchers on the chunk index.
    let db = read_all(&store, &t, vec![m("service", MatchOp::Eq, "db")], i64::MIN, i64::MAX);
    assert_eq!(db.values().map(Vec::len).sum::<usize>(), 100);
    let not_prod = read_all(&store, &t, vec![m("service", MatchOp::Eq, "api"), m("env", MatchOp::Neq, "prod")], i64::MIN, i64::MAX);
    assert_eq!(not_prod.values().flatten().map(|e| e.1.as_str()).collect::<Vec<_>>(), vec!["meta line"]);
    assert!(not_prod.values().flatten().all(|e| e.2), "metadata survives the flush");
}

#[tokio::test]
async fn metadata_queries_cover_head_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    fill(&store).await;
    store.flush().await.unwrap();
    let t = tenant("acme");
    store.push(&t, req(&[("service", "worker"), ("level", "warn")], &[(T0 + DAY, "later")]), &IngestLimits::unlimited()).await.unwrap();
    assert_eq!(store.label_names(&t, &[], i64::MIN, i64::MAX), vec!["env", "level", "service"]);
    assert_eq!(store.label_values(&t, "service", &[], i64::MIN, i64::MAX), vec!["api", "db", "worker"]);
    assert_eq!(store.label_values(&t, "service", &[], T0 + DAY, i64::MAX), vec!["worker"]);
    assert_eq!(store.label_values(&t, "env", &[m("service", MatchOp::Eq, "api")], i64::MIN, i64::MAX), vec!["prod", "staging"]);
    assert_eq!(store.series(&t, &[m("level", MatchOp::Re, ".+")], i64::MIN, i64::MAX).len(), 1);
    assert!(store.label_names(&tenant("nobody"), &[], i64::MIN, i64::MAX).is_empty());
}

#[tokio::test]
async fn out_of_order_window_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t = tenant("acme");
    let l = [("job", "x")];
    let hour = 3_600_000_000_000;
    let o = store.push(&t, req(&l, &[(T0 + 2 * hour, "newest"), (T0 + hour + 1, "in window")]), &IngestLimits::unlimited()).await.unwrap();
    assert_eq!((o.accepted, o.rejected), (2, 0));
    let o = store.push(&t, req(&l, &[(T0, "too old"), (T0 + 2 * hour, "newest")]), &IngestLimits::unlimited()).await.unwrap();
    // The in-window duplicate of "newest" is not an error; it is dropped (at insert when the
    // stream is in order, when read or flushed otherwise).
    assert_eq!(o.rejected, 1, "{o:?}");
    let refused = o.refused.unwrap();
    assert_eq!(refused.kind, RefusalKind::TooFarBehind);
    assert!(refused.message.starts_with("entry with timestamp 2026-"), "{}", refused.message);
    assert!(refused.message.contains("ignored, reason: 'entry too far behind"), "{}", refused.message);
    assert!(refused.message.ends_with(r#"user 'acme', total ignored: 1 out of 2 for stream: {job="x"}"#), "{}", refused.message);
    let all = read_all(&store, &t, vec![m("job", MatchOp::Eq, "x")], i64::MIN, i64::MAX);
    assert_eq!(all.values().next().unwrap().len(), 2, "the exact duplicate is ignored");
    // Bad labels are rejected with Loki's words, nothing stored.
    let e = store.push(&t, req(&[("1bad", "x")], &[(T0, "x")]), &IngestLimits::unlimited()).await.unwrap();
    assert_eq!(e.rejected, 1);
    assert!(e.invalid_message().unwrap().contains("invalid label name"), "{e:?}");
}

/// Loki's limits, each with its message: the valid part of a push is stored, the rest
/// reported.
#[tokio::test]
async fn ingest_limits_with_loki_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t = tenant("acme");
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let hour = 3_600_000_000_000;
    let lim = IngestLimits { max_line_size: 10, ..IngestLimits::default() };

    let o = store
        .push(&t, req(&[("job", "x")], &[(now - 200 * hour, "old"), (now + hour, "future"), (now, "way too long a line"), (now, "fine")]), &lim)
        .await
        .unwrap();
    assert_eq!((o.accepted, o.rejected), (1, 3));
    let msg = o.invalid_message().unwrap();
    assert!(msg.starts_with(r#"1 errors like: entry for stream '{job="x"}' has timestamp too old: "#), "{msg}");
    assert!(msg.contains(r#"; 1 errors like: entry for stream '{job="x"}' has timestamp too new: "#), "{msg}");
    assert!(msg.ends_with(r#"; 1 errors like: Max entry size '10' bytes exceeded for stream '{job="x"}' while adding an entry with length '19' bytes"#), "{msg}");
    assert_eq!(o.discarded["line_too_long"], (1, 19));

    // Truncation instead of rejection.
    let trunc = IngestLimits { max_line_size_truncate: true, ..lim.clone() };
    let o = store.push(&t, req(&[("job", "y")], &[(now, "cut me after ten")]), &trunc).await.unwrap();
    assert_eq!((o.accepted, o.rejected), (1, 0));
    let all = read_all(&store, &t, vec![m("job", MatchOp::Eq, "y")], i64::MIN, i64::MAX);
    assert_eq!(all.values().next().unwrap()[0].1, "cut me aft");

    // The tenant's rate: all or nothing, 429.
    let slow = IngestLimits { ingestion_rate_bytes: 1.0, ingestion_burst_bytes: 8.0, ..IngestLimits::default() };
    let t2 = tenant("slow");
    let o = store.push(&t2, req(&[("job", "x")], &[(now, "1234"), (now + 1, "5678")]), &slow).await.unwrap();
    assert_eq!(o.accepted, 2, "the bucket starts full");
    let o = store.push(&t2, req(&[("job", "x")], &[(now + 2, "abc")]), &slow).await.unwrap();
    let r = o.refused.unwrap();
    assert_eq!(r.kind, RefusalKind::RateLimited);
    assert_eq!(r.message, "Ingestion rate limit exceeded for user slow (limit: 1 bytes/sec) while attempting to ingest '1' lines totaling '3' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased");

    // Active streams: the second new stream is refused, the known one still accepted.
    let few = IngestLimits { max_streams: 1, ..IngestLimits::default() };
    let t3 = tenant("few");
    assert_eq!(store.push(&t3, req(&[("job", "a")], &[(now, "a")]), &few).await.unwrap().accepted, 1);
    let o = store.push(&t3, req(&[("job", "b")], &[(now, "b")]), &few).await.unwrap();
    let r = o.refused.unwrap();
    assert_eq!(r.kind, RefusalKind::StreamLimit);
    assert!(r.message.starts_with(r#"Maximum active stream limit exceeded when trying to create stream {job="b"}, "#), "{}", r.message);
    assert_eq!(store.push(&t3, req(&[("job", "a")], &[(now + 1, "a2")]), &few).await.unwrap().accepted, 1);
    assert_eq!(store.active_streams(&t3), 1);

    // Per-stream rate: the stream's whole push is refused.
    let narrow = IngestLimits { per_stream_rate_bytes: 1.0, per_stream_burst_bytes: 4.0, ..IngestLimits::default() };
    let o = store.push(&tenant("narrow"), req(&[("job", "a")], &[(now, "12345")]), &narrow).await.unwrap();
    let r = o.refused.unwrap();
    assert_eq!(r.kind, RefusalKind::StreamRateLimited);
    assert!(r.message.contains("reason: 'Per stream rate limit exceeded (limit: 1B/sec) while attempting to ingest for stream '{job=\"a\"}' totaling 5B,"), "{}", r.message);
}

#[tokio::test]
async fn crash_leftovers_are_cleaned_and_torn_wal_tail_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let store = Store::open(cfg.clone()).unwrap();
    fill(&store).await;
    store.flush().await.unwrap();
    store.push(&tenant("acme"), req(&[("service", "api")], &[(T0 + 3, "after flush")]), &IngestLimits::unlimited()).await.unwrap();
    drop(store);

    // A chunk written by a flush that died before its manifest swap, and a torn WAL write.
    let orphan = dir.path().join("tenants/acme/chunks/2026-01-15/ffffffffffffffff0000.parquet");
    std::fs::write(&orphan, b"partial").unwrap();
    let segs = silt_storage::wal::list_segments(&dir.path().join("wal")).unwrap();
    let last = silt_storage::wal::segment_path(&dir.path().join("wal"), *segs.last().unwrap());
    let mut f = std::fs::OpenOptions::new().append(true).open(&last).unwrap();
    std::io::Write::write_all(&mut f, &[42, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);

    let store = Store::open(cfg).unwrap();
    assert!(!orphan.exists());
    let all = read_all(&store, &tenant("acme"), vec![m("service", MatchOp::Re, ".+")], i64::MIN, i64::MAX);
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 202);
}

#[tokio::test]
async fn second_writer_is_refused_but_readers_see_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let store = Store::open(cfg.clone()).unwrap();
    fill(&store).await;
    store.flush().await.unwrap();
    store.push(&tenant("acme"), req(&[("service", "api")], &[(T0 + 3, "in the wal only")]), &IngestLimits::unlimited()).await.unwrap();

    let e = Store::open(cfg.clone()).err().expect("the directory is locked");
    assert!(e.to_string().contains("in use by another silt process"), "{e}");

    let ro = Store::open_read_only(cfg).unwrap();
    let sel = vec![m("service", MatchOp::Re, ".+")];
    assert_eq!(
        read_all(&ro, &tenant("acme"), sel.clone(), i64::MIN, i64::MAX),
        read_all(&store, &tenant("acme"), sel, i64::MIN, i64::MAX)
    );
    assert!(ro.push(&tenant("acme"), req(&[("a", "b")], &[(1, "x")]), &IngestLimits::unlimited()).await.is_err());
    assert!(Store::open_read_only(StoreConfig::new(dir.path().join("nope"))).is_err());
}

/// A store whose heads flush at 64 KiB, in a new directory.
fn small_heads_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig { flush_max_bytes: 64 << 10, ..StoreConfig::new(dir.path()) }).unwrap();
    (dir, store)
}

#[tokio::test]
async fn full_heads_push_back_instead_of_growing() {
    let (_dir, store) = small_heads_store();
    let t = tenant("acme");
    let line = "x".repeat(1000);
    // 2 MB pushed with no flush called: the pushes flush the heads themselves, in the
    // background. At most one full generation is being written while the next fills.
    for i in 0..100i64 {
        let entries: Vec<(i64, &str)> = (0..20).map(|k| (T0 + i * 100 + k, line.as_str())).collect();
        store.push(&t, req(&[("app", "big")], &entries), &IngestLimits::unlimited()).await.unwrap();
        let st = store.stats(&t);
        assert!(st.head_bytes <= 2 * ((64 << 10) + 20 * 1000 + 4096), "push {i}: {} bytes in the heads", st.head_bytes);
    }
    let st = store.stats(&t);
    assert!(st.chunks > 10, "{st:?}");
    assert_eq!(st.chunk_rows as usize + st.head_entries, 2000);
    store.flush().await.unwrap();
    let st = store.stats(&t);
    assert_eq!((st.chunk_rows, st.head_entries), (2000, 0));
}

#[tokio::test]
async fn a_failing_flush_fails_the_pushes_behind_it_and_loses_nothing() {
    let (dir, store) = small_heads_store();
    let t = tenant("acme");
    let line = "x".repeat(1000);
    let push = |i: i64| {
        let entries: Vec<(i64, &str)> = (0..20).map(|k| (T0 - DAY + i * 100 + k, line.as_str())).collect();
        let store = store.clone();
        let r = req(&[("app", "big")], &entries);
        async move { store.push(&tenant("acme"), r, &IngestLimits::unlimited()).await }
    };
    push(0).await.unwrap();
    // A file where the day's chunk directory goes: every flush of that day fails.
    let day_dir = dir.path().join("tenants/acme/chunks/2026-01-14");
    std::fs::create_dir_all(day_dir.parent().unwrap()).unwrap();
    std::fs::write(&day_dir, b"in the way").unwrap();
    let mut accepted = 20;
    let mut failed = 0;
    for i in 1..100i64 {
        match push(i).await {
            Ok(_) => accepted += 20,
            Err(_) => failed += 1,
        }
        let st = store.stats(&t);
        assert!(st.head_bytes <= 2 * ((64 << 10) + 20 * 1000 + 4096), "push {i}: {} bytes in the heads", st.head_bytes);
        assert_eq!((st.chunk_rows, st.head_entries), (0, accepted), "push {i}");
    }
    assert!(failed > 50, "only {failed} pushes failed while no flush could succeed");
    // Once flushes can succeed again, everything acknowledged reaches the chunks.
    std::fs::remove_file(&day_dir).unwrap();
    push(100).await.unwrap();
    accepted += 20;
    store.flush().await.unwrap();
    let st = store.stats(&t);
    assert_eq!((st.chunk_rows, st.head_entries), (accepted as u64, 0));
    assert_eq!(read_all(&store, &t, vec![m("app", MatchOp::Eq, "big")], i64::MIN, i64::MAX).values().map(Vec::len).sum::<usize>(), accepted);
    // The WAL checkpoints the flushes committed cover exactly what reached the chunks: a
    // restart replays the rest, once.
    push(101).await.unwrap();
    accepted += 20;
    let cfg = StoreConfig { flush_max_bytes: 64 << 10, ..StoreConfig::new(dir.path()) };
    drop(store);
    let store = Store::open(cfg).unwrap();
    let st = store.stats(&t);
    assert_eq!((st.chunk_rows, st.head_entries), (accepted as u64 - 20, 20));
}

/// Pushes from several tasks at once fill the heads many times over: every push is
/// acknowledged once, lands exactly once in the chunks or the heads while flushes run
/// behind the pushes, and a restart without a flush replays only what the chunks lack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_with_background_flushes_keep_every_entry_once() {
    let (dir, store) = small_heads_store();
    let tasks: Vec<_> = (0..4)
        .map(|w: i64| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..60i64 {
                    let lines: Vec<String> = (0..10).map(|k| format!("writer {w} push {i} entry {k} {}", "y".repeat(500))).collect();
                    let entries: Vec<(i64, &str)> = lines.iter().enumerate().map(|(k, l)| (T0 + i * 1000 + k as i64, l.as_str())).collect();
                    let svc = format!("w{w}");
                    store.push(&tenant("acme"), req(&[("app", &svc)], &entries), &IngestLimits::unlimited()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let t = tenant("acme");
    let sel = vec![m("app", MatchOp::Re, "w.")];
    let check = |got: BTreeMap<String, Vec<(i64, String, bool)>>| {
        assert_eq!(got.len(), 4);
        for (stream, rows) in &got {
            assert_eq!(rows.len(), 600, "{stream}");
            let distinct: std::collections::HashSet<_> = rows.iter().map(|r| &r.1).collect();
            assert_eq!(distinct.len(), 600, "{stream}: every entry once");
        }
    };
    check(read_all(&store, &t, sel.clone(), i64::MIN, i64::MAX));
    assert!(store.stats(&t).chunks > 10, "the pushes flushed: {:?}", store.stats(&t));
    store.wait_for_flush().await;
    drop(store);
    let store = Store::open(StoreConfig { flush_max_bytes: 64 << 10, ..StoreConfig::new(dir.path()) }).unwrap();
    check(read_all(&store, &t, sel, i64::MIN, i64::MAX));
}

/// Restarts leave only the WAL segments that still hold unflushed entries, and the new one.
#[tokio::test]
async fn restarts_leave_no_spent_wal_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let segments = || silt_storage::wal::list_segments(&dir.path().join("wal")).unwrap();
    for _ in 0..3 {
        drop(Store::open(cfg.clone()).unwrap());
    }
    assert_eq!(segments().len(), 1, "{:?}", segments());

    let store = Store::open(cfg.clone()).unwrap();
    let t = tenant("acme");
    store.push(&t, req(&[("service", "api")], &[(T0, "kept in the wal")]), &IngestLimits::unlimited()).await.unwrap();
    let with_data = *segments().last().unwrap();
    drop(store);
    let store = Store::open(cfg.clone()).unwrap();
    assert!(segments().contains(&with_data), "a segment with unflushed entries stays: {:?}", segments());
    let sel = vec![m("service", MatchOp::Eq, "api")];
    assert_eq!(read_all(&store, &t, sel.clone(), i64::MIN, i64::MAX).values().map(Vec::len).sum::<usize>(), 1);
    store.flush().await.unwrap();
    drop(store);
    let store = Store::open(cfg.clone()).unwrap();
    assert_eq!(segments().len(), 1, "{:?}", segments());
    assert_eq!(read_all(&store, &t, sel, i64::MIN, i64::MAX).values().map(Vec::len).sum::<usize>(), 1);
}

/// With the WAL directory emptied by hand after a flush, new pushes still go to
/// segments past the checkpoint, so a restart replays them instead of taking them for
/// flushed.
#[tokio::test]
async fn pushes_after_the_wal_was_emptied_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let t = tenant("acme");
    let store = Store::open(cfg.clone()).unwrap();
    for k in 0..3 {
        store.push(&t, req(&[("service", "api")], &[(T0 + k, "flushed")]), &IngestLimits::unlimited()).await.unwrap();
        store.flush().await.unwrap();
    }
    drop(store);
    let wal = dir.path().join("wal");
    for id in silt_storage::wal::list_segments(&wal).unwrap() {
        std::fs::remove_file(silt_storage::wal::segment_path(&wal, id)).unwrap();
    }
    let store = Store::open(cfg.clone()).unwrap();
    store.push(&t, req(&[("service", "api")], &[(T0 + 10, "only in the wal")]), &IngestLimits::unlimited()).await.unwrap();
    drop(store);
    let store = Store::open(cfg).unwrap();
    let lines: Vec<String> = read_all(&store, &t, vec![m("service", MatchOp::Eq, "api")], i64::MIN, i64::MAX).into_values().flatten().map(|e| e.1).collect();
    assert_eq!(lines.iter().filter(|l| *l == "only in the wal").count(), 1, "{lines:?}");
    assert_eq!(lines.len(), 4);
}
