//! Retention, delete requests and compaction at the store level.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use silt_storage::{
    CancelError, CompiledDelete, DeleteCompiler, DeleteStatus, EntryPredicate, IngestLimits, Labels, MaintainOptions, MatchOp, Matcher, PushEntry,
    PushRequest, PushStream, RetentionConfig, RetentionPolicy, ScanRequest, Store, StoreConfig, StreamRule, TenantId
};

const H: i64 = 3_600_000_000_000;

fn acme() -> TenantId {
    "acme".parse().unwrap()
}

/// A toy delete language for these tests: `name=value` or `name=value|=needle`.
fn compiler() -> DeleteCompiler {
    struct Contains(String);
    impl EntryPredicate for Contains {
        fn matches(&self, _: &Labels, _: i64, line: &str, _: Option<&[u8]>) -> bool {
            line.contains(&self.0)
        }
    }
    DeleteCompiler(Arc::new(|q: &str| {
        let (sel, needle) = match q.split_once("|=") {
            Some((s, n)) => (s, Some(n)),
            None => (q, None),
        };
        let (n, v) = sel.split_once('=').ok_or("want name=value")?;
        let entries = needle.map(|n| Arc::new(Contains(n.to_string())) as Arc<dyn EntryPredicate>);
        Ok(CompiledDelete { matchers: vec![Matcher::new(n, MatchOp::Eq, v).map_err(|e| e.to_string())?], entries })
    }))
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.delete_compiler = Some(compiler());
    cfg
}

/// Pushes `n` entries per service (`api`, `db`), one every `step` ns up to `end`, and
/// flushes every `per_flush` entries so that small chunks pile up.
async fn fill(store: &Store, env: &str, n: i64, step: i64, end: i64, per_flush: i64) {
    for i in 0..n {
        let ts = end - (n - i) * step;
        let streams = ["api", "db"]
            .iter()
            .map(|svc| PushStream {
                labels: Labels::from_pairs([("service", *svc), ("env", env)]).unwrap(),
                entries: vec![PushEntry { ts, line: format!("{svc} line {i}{}", if i % 10 == 0 { " secret" } else { "" }), metadata: vec![] }],
            })
            .collect();
        store.push(&acme(), PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
        if (i + 1) % per_flush == 0 {
            store.flush().await.unwrap();
        }
    }
}

/// `(labels, ts, line)` of everything acme shows, sorted.
fn read_all(store: &Store) -> Vec<(String, i64, String)> {
    common::read_all(store, &acme())
}

fn chunk_files(dir: &std::path::Path) -> usize {
    walk(&dir.join("tenants/acme/chunks")).iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")).count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[tokio::test]
async fn compaction_merges_small_chunks_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    // 2026-01-15 22:00 .. 2026-01-16 02:00: two days, 20 flushes.
    let end = 1_768_528_800_000_000_000;
    fill(&store, "prod", 400, 36_000_000_000, end, 20).await;
    let before = read_all(&store);
    assert_eq!(before.len(), 800);
    let chunks_before = store.stats(&acme()).chunks;
    assert!(chunks_before >= 20, "{chunks_before}");

    // A query that resolved its parts before the compaction still reads them afterwards.
    let early = store.scan(&acme(), &ScanRequest { matchers: vec![], start: i64::MIN, end: i64::MAX, projection: None, needles: vec![], fields: None, line_predicate: None }).unwrap();
    let report = store.maintain(MaintainOptions::default()).await.unwrap();
    assert_eq!(report.len(), 1);
    let r = &report[0];
    assert_eq!((r.chunks_before, r.chunks_after, r.entries_removed), (chunks_before, 2, 0), "{r:?}");
    assert_eq!(common::collect(&early.streams, early.parts), before);
    // Retired files went with the last reader.
    assert_eq!(chunk_files(dir.path()), 2);
    assert_eq!(read_all(&store), before);

    // A second pass has nothing to do; a restart sees the same.
    let again = store.maintain(MaintainOptions::default()).await.unwrap();
    assert_eq!(again[0].chunks_rewritten, 0);
    drop(store);
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(read_all(&store), before);

    // Small targets split the output by size.
    fill(&store, "dev", 400, 1_000_000_000, end, 40).await;
    let all = read_all(&store);
    let opts = MaintainOptions { target_chunk_bytes: 4096, ..Default::default() };
    store.maintain(opts).await.unwrap();
    assert_eq!(read_all(&store), all);
}

#[tokio::test]
async fn retention_hides_at_once_and_reclaims_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let now = silt_storage::now_ns();
    // Four days of prod and staging, one entry per stream per hour.
    fill(&store, "prod", 96, H, now, 24).await;
    fill(&store, "staging", 96, H, now, 24).await;
    let everything = read_all(&store);
    assert_eq!(everything.len(), 4 * 96);
    let bytes_before = store.stats(&acme()).chunk_bytes;

    let staging = Matcher::new("env", MatchOp::Eq, "staging").unwrap();
    let policy = RetentionPolicy {
        period: 72 * H,
        streams: vec![StreamRule { selector: r#"{env="staging"}"#.into(), matchers: vec![staging], priority: 1, period: 24 * H }],
    };
    store.set_retention(RetentionConfig { default: policy, ..Default::default() }).unwrap();
    // Hidden at once: prod keeps 72h (71 or 72 entries, by the clock), staging 24h.
    let visible = read_all(&store);
    let count = |env: &str| visible.iter().filter(|e| e.0.contains(&format!("env=\"{env}\""))).count();
    assert!((2 * 71..=2 * 72).contains(&count("prod")), "{}", count("prod"));
    assert!((2 * 23..=2 * 24).contains(&count("staging")), "{}", count("staging"));
    assert!(visible.iter().all(|e| e.1 >= now - 72 * H));
    // Label lookups skip streams with nothing left... all streams still have data here.
    assert_eq!(store.series(&acme(), &[], i64::MIN, i64::MAX).len(), 4);

    // The preview names the rules.
    let preview = store.retention_preview(silt_storage::now_ns()).unwrap();
    let rule = |name: &str| preview.iter().find(|p| p.rule == name).unwrap().clone();
    assert_eq!(rule("retention_period").streams, 2);
    assert_eq!(rule(r#"{env="staging"}"#).streams, 2);
    assert_eq!(rule(r#"{env="staging"}"#).entries as usize, 2 * 96 - count("staging"));

    // The pass drops the whole expired day partitions and rewrites partial ones.
    let opts = MaintainOptions { compact: false, min_expired_fraction: 0.0, ..Default::default() };
    let r = store.maintain(opts).await.unwrap().remove(0);
    assert!(r.chunks_expired >= 2, "{r:?}");
    assert!(r.bytes_after < bytes_before / 2, "{r:?}");
    assert_eq!(read_all(&store).len(), visible.len());
    drop(store);
    // Read-only openers (the CLI) apply the recorded retention too.
    let ro = Store::open_read_only(config(dir.path())).unwrap();
    assert_eq!(read_all(&ro).len(), visible.len());
    drop(ro);

    // retention_period 0 keeps everything.
    let store = Store::open(config(dir.path())).unwrap();
    store.set_retention(RetentionConfig::default()).unwrap();
    assert_eq!(read_all(&store).len(), visible.len());
}

#[tokio::test]
async fn delete_requests_hide_then_remove_and_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let end = 1_768_528_800_000_000_000;
    fill(&store, "prod", 100, 60_000_000_000, end, 30).await;
    // 10 entries are still in the head, not in chunks.
    let all = read_all(&store);
    let secret = |v: &[(String, i64, String)]| v.iter().filter(|e| e.2.contains("secret")).count();
    assert_eq!(secret(&all), 20);

    let now = silt_storage::now_ns();
    let d = store.add_delete_request(&acme(), "service=api|=secret", i64::MIN, i64::MAX, now).unwrap();
    assert_eq!(d.request_id.len(), 8);
    assert_eq!(d.status, DeleteStatus::Received);
    let visible = read_all(&store);
    assert_eq!(secret(&visible), 10, "api's secrets are hidden at once, db's stay");
    assert!(visible.iter().all(|e| !(e.0.contains("api") && e.2.contains("secret"))));
    assert!(store.add_delete_request(&acme(), "garbage", 0, 1, now).is_err());

    // A second request, then cancelled.
    let d2 = store.add_delete_request(&acme(), "service=db", i64::MIN, i64::MAX, now + 1).unwrap();
    assert_eq!(read_all(&store).len(), 90);
    store.cancel_delete_request(&acme(), &d2.request_id, now, H, false).unwrap();
    assert_eq!(read_all(&store).len(), visible.len());
    assert_eq!(store.cancel_delete_request(&acme(), "nope", now, H, false), Err(CancelError::NotFound));
    assert_eq!(store.cancel_delete_request(&acme(), &d.request_id, now + 2 * H, H, false), Err(CancelError::PastDeadline(H)));

    // Not due yet: the pass leaves the request alone.
    let r = store.maintain(MaintainOptions { compact: false, ..Default::default() }).await.unwrap().remove(0);
    assert_eq!(r.deletes_processed, 0);
    // Due: flushed, rewritten, processed; nothing left on disk.
    let opts = MaintainOptions { compact: false, delete_cancel_period: 0, ..Default::default() };
    let r = store.maintain(opts).await.unwrap().remove(0);
    assert_eq!((r.deletes_processed, r.entries_removed), (1, 10), "{r:?}");
    assert_eq!(store.delete_requests(&acme())[0].status, DeleteStatus::Processed);
    assert_eq!(store.cancel_delete_request(&acme(), &d.request_id, now, H, true), Err(CancelError::Processed));
    assert_eq!(read_all(&store), visible);
    assert_eq!(store.stats(&acme()).chunk_rows, 190);

    // Requests survive a restart, and still filter.
    drop(store);
    let store = Store::open(config(dir.path())).unwrap();
    assert_eq!(store.delete_requests(&acme()).len(), 1);
    assert_eq!(read_all(&store), visible);
    let mut by_stream: BTreeMap<String, usize> = BTreeMap::new();
    for e in read_all(&store) {
        *by_stream.entry(e.0).or_default() += 1;
    }
    assert_eq!(by_stream.values().copied().collect::<Vec<_>>(), vec![90, 100]);
}
