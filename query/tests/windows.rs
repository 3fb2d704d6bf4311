//! Log queries answer the same whether or not the newest sliver of the range is tried
//! first (see `Engine::log_query`): checked against a brute-force answer.

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
        let mut lines: Vec<(i64, String)> = got.iter().flat_map(|s| s.entries.iter().map(|e| (e.ts, e.line.clone()))).collect();
        lines.sort();
        let want: Vec<(i64, String)> = match direction {
            Direction::Backward => all[all.len().saturating_sub(limit)..].to_vec(),
            Direction::Forward => all[..limit.min(all.len())].to_vec(),
        };
        assert_eq!(lines, want, "limit {limit} {direction:?}");
    }
}
