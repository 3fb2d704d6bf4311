//! Log queries over long ranges, read in pieces newest (or oldest) first (see
//! `Engine::log_query`), answer as reading everything would: checked against a
//! brute-force answer.

use silt_query::{ast::Expr, parse, Direction, Engine, LogQuery};
use silt_storage::{IngestLimits, Labels, PushEntry, PushRequest, PushStream, Store, StoreConfig, TenantId};

#[tokio::test]
async fn newest_and_oldest_n_over_long_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "fake".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let min = 60_000_000_000i64;
    // Two streams over 10 hours, denser in the last hour of one of them.
    let mut all = Vec::new();
    let mut streams = Vec::new();
    for (app, every) in [("a", 7 * min), ("b", 3 * min)] {
        let mut entries = Vec::new();
        let mut ts = t0;
        while ts < t0 + 600 * min {
            entries.push(PushEntry { ts, line: format!("{app} {ts}"), metadata: vec![] });
            all.push((ts, format!("{app} {ts}")));
            ts += if app == "b" && ts > t0 + 540 * min { min / 10 } else { every };
        }
        streams.push(PushStream { labels: Labels::from_pairs([("app", app)]).unwrap(), entries });
    }
    store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
    store.flush().await.unwrap();
    all.sort();
    let engine = Engine::new(store);
    let Expr::Log(expr) = parse(r#"{app=~"a|b"}"#).unwrap() else { panic!() };
    for (limit, direction) in [(5, Direction::Backward), (700, Direction::Backward), (5000, Direction::Backward), (5, Direction::Forward), (300, Direction::Forward)] {
        let q = LogQuery { expr: expr.clone(), start: t0 - min, end: t0 + 600 * min, limit, direction, interval: 0, categorize: false };
        let got = engine.log_query(std::slice::from_ref(&t), &q).await.unwrap();
        for s in &got {
            let ts: Vec<i64> = s.entries.iter().map(|e| e.ts).collect();
            let ordered = match direction {
                Direction::Backward => ts.windows(2).all(|w| w[0] > w[1]),
                Direction::Forward => ts.windows(2).all(|w| w[0] < w[1]),
            };
            assert!(ordered, "entries of {} out of order, limit {limit} {direction:?}", s.labels);
        }
        let mut lines: Vec<(i64, String)> = got.iter().flat_map(|s| s.entries.iter().map(|e| (e.ts, e.line.clone()))).collect();
        lines.sort();
        let want: Vec<(i64, String)> = match direction {
            Direction::Backward => all[all.len().saturating_sub(limit)..].to_vec(),
            Direction::Forward => all[..limit.min(all.len())].to_vec(),
        };
        assert_eq!(lines, want, "limit {limit} {direction:?}");
    }
    // A range whose length does not fit in an i64 is still read whole.
    for (direction, start, end) in [(Direction::Forward, i64::MIN, i64::MAX), (Direction::Backward, i64::MIN + 1, t0 + 600 * min)] {
        let q = LogQuery { expr: expr.clone(), start, end, limit: 3, direction, interval: 0, categorize: false };
        let got = engine.log_query(std::slice::from_ref(&t), &q).await.unwrap();
        let mut lines: Vec<(i64, String)> = got.iter().flat_map(|s| s.entries.iter().map(|e| (e.ts, e.line.clone()))).collect();
        lines.sort();
        let want = if direction == Direction::Forward { all[..3].to_vec() } else { all[all.len() - 3..].to_vec() };
        assert_eq!(lines, want, "{direction:?} over the whole of time");
    }
}

/// The same with a pipeline that keeps a few entries, and with `interval`: the windows
/// widen until enough entries survive, and thinning by interval starts the same way.
#[tokio::test]
async fn windows_with_pipelines_and_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "fake".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let min = 60_000_000_000i64;
    let mut entries = Vec::new();
    let mut all = Vec::new();
    for k in 0..6000i64 {
        let ts = t0 + k * min / 10;
        // One entry in 97 is slow; they thin out towards the end.
        let slow = k % 97 == 0 && (k < 5000 || k % 2 == 0);
        let line = format!(r#"{{"k":{k},"ms":{}}}"#, if slow { 900 } else { 5 });
        entries.push(PushEntry { ts, line: line.clone(), metadata: vec![] });
        all.push((ts, line, slow));
    }
    store.push(&t, PushRequest { streams: vec![PushStream { labels: Labels::from_pairs([("app", "a")]).unwrap(), entries }] }, &IngestLimits::unlimited()).await.unwrap();
    store.flush().await.unwrap();
    let engine = Engine::new(store);
    let end = t0 + 600 * min;
    let Expr::Log(slow) = parse(r#"{app="a"} | json | ms > 100"#).unwrap() else { panic!() };
    let Expr::Log(plain) = parse(r#"{app="a"}"#).unwrap() else { panic!() };
    let lines = |got: Vec<silt_query::StreamResult>| {
        let mut v: Vec<(i64, String)> = got.iter().flat_map(|s| s.entries.iter().map(|e| (e.ts, e.line.clone()))).collect();
        v.sort();
        v
    };
    for limit in [3, 20, 100] {
        let q = LogQuery { expr: slow.clone(), start: t0, end, limit, direction: Direction::Backward, interval: 0, categorize: false };
        let want: Vec<(i64, String)> = all.iter().filter(|e| e.2).map(|e| (e.0, e.1.clone())).collect();
        let want = want[want.len().saturating_sub(limit)..].to_vec();
        assert_eq!(lines(engine.log_query(std::slice::from_ref(&t), &q).await.unwrap()), want, "limit {limit}");
    }
    // interval: the newest entry, then each one at least 7 minutes older than the last kept.
    let interval = 7 * min;
    let q = LogQuery { expr: plain, start: t0, end, limit: 10, direction: Direction::Backward, interval, categorize: false };
    let mut want = Vec::new();
    for e in all.iter().rev() {
        if want.len() < 10 && want.last().is_none_or(|(l, _): &(i64, String)| e.0 <= l - interval) {
            want.push((e.0, e.1.clone()));
        }
    }
    want.sort();
    assert_eq!(lines(engine.log_query(std::slice::from_ref(&t), &q).await.unwrap()), want);
}

/// A `|~` filter whose pattern requires a literal lets the needle index skip blocks: the
/// answer is the same as reading every line.
#[tokio::test]
async fn regex_filters_pruned_by_the_needle_index_miss_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "fake".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let id = |k: u64| format!("{:032x}", (k as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
    let entries: Vec<PushEntry> = (0..20_000u64)
        .map(|k| PushEntry { ts: t0 + k as i64 * 1_000_000, line: format!("op=get request_id={} status={}", id(k), 200 + k % 7), metadata: vec![] })
        .collect();
    store.push(&t, PushRequest { streams: vec![PushStream { labels: Labels::from_pairs([("app", "a")]).unwrap(), entries }] }, &IngestLimits::unlimited()).await.unwrap();
    store.flush().await.unwrap();
    let engine = Engine::new(store);
    for (pattern, want) in [
        (format!("request_id={} status=20[0-9]", id(9_000)), vec![9_000u64]),
        (format!("{}|{}", id(100), id(19_999)), vec![100, 19_999]),
        (format!("(request_id={})", id(4_097)), vec![4_097]),
        (format!("request_id={}x", id(5)), vec![]),
    ] {
        let Expr::Log(expr) = parse(&format!("{{app=\"a\"}} |~ `{pattern}`")).unwrap() else { panic!() };
        let q = LogQuery { expr, start: t0, end: t0 + 60_000_000_000, limit: 100, direction: Direction::Forward, interval: 0, categorize: false };
        let got = engine.log_query(std::slice::from_ref(&t), &q).await.unwrap();
        let lines: Vec<String> = got.iter().flat_map(|s| s.entries.iter().map(|e| e.line.clone())).collect();
        let want: Vec<String> = want.iter().map(|&k| format!("op=get request_id={} status={}", id(k), 200 + k % 7)).collect();
        assert_eq!(lines, want, "{pattern}");
    }
}

/// Reading in pieces (see `Engine::log_query`): streams of many blocks, over chunks that
/// overlap in time, a frozen-free head holding the newest entries, and entries of
/// several streams at the same instant. Every limit and direction gives the first
/// entries by (time, stream) that a brute force gives.
#[tokio::test]
async fn pieces_merge_streams_chunks_and_head_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "fake".parse().unwrap();
    let t0 = 1_768_518_000_000_000_000i64;
    let sec = 1_000_000_000i64;
    let labels: Vec<Labels> = ["a", "b", "c"].iter().map(|app| Labels::from_pairs([("app", *app)]).unwrap()).collect();
    // (ts, stream fingerprint, line) of every entry.
    let mut all: Vec<(i64, u64, String)> = Vec::new();
    // Four rounds, each over the same 40 minutes; all but the last flushed to a chunk.
    for round in 0..4i64 {
        let mut streams = Vec::new();
        for (s, l) in labels.iter().enumerate() {
            let mut entries = Vec::new();
            for k in 0..6000i64 {
                // Streams share instants every 5th entry; rounds interleave.
                // 40 minutes: within the hour Loki accepts out of order.
                let ts = t0 + (k * 4 + round) * sec / 10 + if k % 5 == 0 { 0 } else { s as i64 * 7 };
                let line = format!("{} r{round} k{k} {}", l.get("app").unwrap(), if (k + s as i64) % 13 == 0 { "hit" } else { "miss" });
                all.push((ts, l.fingerprint(), line.clone()));
                entries.push(PushEntry { ts, line, metadata: vec![] });
            }
            streams.push(PushStream { labels: l.clone(), entries });
        }
        let outcome = store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
        assert_eq!(outcome.accepted, 3 * 6000, "{outcome:?}");
        if round < 3 {
            store.flush().await.unwrap();
        }
    }
    let engine = Engine::new(store);
    // Over 64 minutes: long enough to be read in pieces.
    let (start, end) = (t0 - 7200 * sec, t0 + 3600 * sec);
    // The last: a filter after another stage, which the pipeline, not the scan, applies.
    for (query, keep) in [(r#"{app=~"a|b|c"}"#, false), (r#"{app=~"a|b|c"} |= "hit""#, true), (r#"{app=~"a|b|c"} | label_format x="1" |= "hit""#, true)] {
        let Expr::Log(expr) = parse(query).unwrap() else { panic!() };
        let matching: Vec<&(i64, u64, String)> = all.iter().filter(|e| !keep || e.2.ends_with("hit")).collect();
        for direction in [Direction::Backward, Direction::Forward] {
            let mut want = matching.clone();
            want.sort_by(|a, b| if direction == Direction::Backward { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) }.then(a.1.cmp(&b.1)));
            for limit in [1, 7, 100, 1000, 5000, 100_000] {
                let q = LogQuery { expr: expr.clone(), start, end, limit, direction, interval: 0, categorize: false };
                let got = engine.log_query(std::slice::from_ref(&t), &q).await.unwrap();
                let mut got: Vec<(i64, String)> = got.iter().flat_map(|s| s.entries.iter().map(|e| (e.ts, e.line.clone()))).collect();
                got.sort();
                let mut expect: Vec<(i64, String)> = want.iter().take(limit).map(|e| (e.0, e.2.clone())).collect();
                expect.sort();
                assert_eq!(got.len(), expect.len(), "{query} limit {limit} {direction:?}");
                assert!(got == expect, "{query} limit {limit} {direction:?}: answers differ");
            }
        }
    }
}
