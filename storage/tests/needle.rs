//! The needle index at work: `|=` literals skip the blocks that cannot hold them, before
//! and after a compaction, and never hide a matching line.

use arrow::array::AsArray;
use silt_storage::{IngestLimits, Labels, MaintainOptions, PushEntry, PushRequest, PushStream, ScanRequest, Store, StoreConfig, TenantId, IDX_LINE};

fn id(i: usize) -> String {
    format!("{:032x}", (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

/// Lines read by a scan with `needles`, and how many of them contain `want`.
fn read(store: &Store, t: &TenantId, needles: Vec<Vec<String>>, want: &str) -> (usize, usize) {
    let scan = store.scan(t, &ScanRequest { matchers: vec![], start: i64::MIN, end: i64::MAX, projection: Some(vec![IDX_LINE]), needles, fields: None, line_predicate: None }).unwrap();
    let (mut rows, mut hits) = (0, 0);
    for p in scan.parts {
        for b in p.execute() {
            let b = b.unwrap();
            rows += b.num_rows();
            hits += b.column(0).as_string::<i32>().iter().filter(|l| l.unwrap().contains(want)).count();
        }
    }
    (rows, hits)
}

#[tokio::test]
async fn needles_skip_blocks_and_never_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = needles_at_work(StoreConfig::new(dir.path())).await;
    assert!(store.index_cache_bytes() > 0, "the indexes read are kept");
}

/// With no memory for indexes, each query reads the needle index again: still used.
#[tokio::test]
async fn needles_work_with_nothing_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = needles_at_work(StoreConfig { index_cache_bytes: 0, ..StoreConfig::new(dir.path()) }).await;
    assert_eq!(store.index_cache_bytes(), 0);
}

async fn needles_at_work(cfg: StoreConfig) -> Store {
    let store = Store::open(cfg).unwrap();
    let t: TenantId = "acme".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let n = 40_000;
    // Two streams, several flushes (so several chunks), one id per line.
    for part in 0..4 {
        let streams = ["api", "web"]
            .iter()
            .map(|app| PushStream {
                labels: Labels::from_pairs([("app", *app)]).unwrap(),
                entries: (part * n / 4..(part + 1) * n / 4)
                    .filter(|i| (i % 2 == 0) == (*app == "api"))
                    .map(|i| PushEntry { ts: t0 + i as i64 * 1_000_000, line: format!(r#"{{"msg":"done","request_id":"{}","n":{i}}}"#, id(i)), metadata: vec![] })
                    .collect(),
            })
            .collect();
        store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
        store.flush().await.unwrap();
    }
    for round in ["flushed", "compacted"] {
        for i in [0, 1, 4095, 4096, 17_001, n - 1] {
            let needle = id(i);
            let (rows, hits) = read(&store, &t, vec![vec![needle.clone()]], &needle);
            assert_eq!(hits, 1, "{round}: line {i} is found");
            assert!(rows <= 2 * 4096, "{round}: {rows} rows read for one needle");
            // A part of the id, and alternatives, find it too.
            assert_eq!(read(&store, &t, vec![vec![needle[5..25].to_string()]], &needle).1, 1);
            assert_eq!(read(&store, &t, vec![vec!["nothing-like-this-anywhere".into(), needle.clone()]], &needle).1, 1);
        }
        // Absent: (almost) nothing is read. Too short to look up: everything is.
        assert!(read(&store, &t, vec![vec!["ffffffffffffffffffffffffffff0000".into()]], "").0 <= 4096);
        assert_eq!(read(&store, &t, vec![vec!["done".into()]], "done"), (n, n));
        store.maintain(MaintainOptions::default()).await.unwrap();
        assert_eq!(store.stats(&t).chunks, 1, "one day, merged");
    }
    store
}

#[tokio::test]
async fn time_ranges_cut_by_block_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "acme".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let entries = (0..50_000).map(|i| PushEntry { ts: t0 + i * 1_000_000, line: format!("line {i}"), metadata: vec![] }).collect();
    let streams = vec![PushStream { labels: Labels::from_pairs([("app", "x")]).unwrap(), entries }];
    store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
    store.flush().await.unwrap();
    // The reader is handed only the blocks the range overlaps (here two, across the
    // 4096-row boundary); what it returns must still be exactly the range.
    let (start, end) = (t0 + 4_090 * 1_000_000, t0 + 4_200 * 1_000_000);
    let scan = store.scan(&t, &ScanRequest { matchers: vec![], start, end, projection: Some(vec![IDX_LINE]), needles: vec![], fields: None, line_predicate: None }).unwrap();
    let mut rows = 0;
    for p in scan.parts {
        for b in p.execute() {
            rows += b.unwrap().num_rows();
        }
    }
    assert_eq!(rows, 110, "the time cut is exact");
}

/// A big chunk part split into shares (so several threads read one compacted chunk)
/// reads every row it would read whole, once, with or without needles and time cuts.
#[tokio::test]
async fn split_parts_read_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "acme".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let n = 60_000usize;
    let streams = ["api", "web", "db"]
        .iter()
        .enumerate()
        .map(|(s, app)| PushStream {
            labels: Labels::from_pairs([("app", *app)]).unwrap(),
            entries: (0..n).filter(|i| i % 3 == s).map(|i| PushEntry { ts: t0 + i as i64 * 1_000_000, line: format!("n={i} id={}", id(i % 97)), metadata: vec![] }).collect(),
        })
        .collect();
    store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
    store.flush().await.unwrap();
    store.maintain(MaintainOptions::default()).await.unwrap();
    let lines = |parts: Vec<silt_storage::ScanPart>| {
        let mut out: Vec<String> = Vec::new();
        for p in parts {
            for b in p.execute() {
                out.extend(b.unwrap().column(0).as_string::<i32>().iter().map(|l| l.unwrap().to_string()));
            }
        }
        out.sort();
        out
    };
    let cases: [(Vec<Vec<String>>, i64, i64); 3] = [
        (vec![], i64::MIN, i64::MAX),
        (vec![], t0 + 7_777_000_000, t0 + 41_234_000_000),
        (vec![vec![id(5)]], t0 + 1_000_000_000, i64::MAX),
    ];
    for (needles, start, end) in cases {
        let req = ScanRequest { matchers: vec![], start, end, projection: Some(vec![IDX_LINE]), needles, fields: None, line_predicate: None };
        let whole = store.scan(&t, &req).unwrap().parts;
        let rows: u64 = whole.iter().map(|p| p.estimated_rows()).sum();
        let want = lines(whole);
        assert!(!want.is_empty());
        for k in [2, 3, 7] {
            let parts: Vec<_> = store.scan(&t, &req).unwrap().parts.into_iter().flat_map(|p| p.split(k)).collect();
            if rows >= 2 * 16 * 1024 {
                assert!(parts.len() >= 2, "{rows} rows in {} parts", parts.len());
            }
            assert_eq!(parts.iter().map(|p| p.estimated_rows()).sum::<u64>(), rows);
            assert_eq!(lines(parts), want, "split {k} ways, {start}..{end}");
        }
    }
}
