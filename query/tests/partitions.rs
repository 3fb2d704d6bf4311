//! A range aggregation reads each scan partition on its own worker and merges what the
//! workers gathered. The same entries stored as one chunk (one partition, nothing to
//! merge) and as many chunks (spread over the partitions) must give the same answer:
//! counts and extremes exactly, means and variances up to rounding.

use silt_query::{ast::Expr, parse, Engine, MetricResult};
use silt_storage::{IngestLimits, Labels, PushEntry, PushRequest, PushStream, Store, StoreConfig, TenantId};

const T0: i64 = 1_768_518_000_000_000_000;
const MIN: i64 = 60_000_000_000;

/// 1200 entries in 3 streams, flushed in `chunks` pieces of consecutive time.
async fn engine(chunks: usize) -> (tempfile::TempDir, Engine, TenantId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "fake".parse().unwrap();
    let n = 400i64;
    for c in 0..chunks as i64 {
        let (lo, hi) = (n * c / chunks as i64, n * (c + 1) / chunks as i64);
        let mut streams = Vec::new();
        for (s, pod) in ["p1", "p2", "p3"].iter().enumerate() {
            let entries = (lo..hi)
                .map(|k| {
                    // Values that make rounding visible, repeated timestamps across streams,
                    // one line in 50 that is not JSON.
                    let v = (k * 7919 + s as i64 * 104_729) % 1000;
                    let line = if k % 50 == 49 { format!("oops {k}") } else { format!(r#"{{"path":"/{}","v":{}.{}}}"#, k % 3, v, k % 7) };
                    PushEntry { ts: T0 + k * MIN / 4, line, metadata: vec![] }
                })
                .collect();
            streams.push(PushStream { labels: Labels::from_pairs([("app", "api"), ("pod", pod)]).unwrap(), entries });
        }
        store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
        store.flush().await.unwrap();
    }
    (dir, Engine::new(store), t)
}

async fn run(e: &Engine, t: &TenantId, q: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let Expr::Metric(m) = parse(q).unwrap() else { panic!("{q}") };
    match e.metric_query(std::slice::from_ref(t), &m, T0, T0 + 100 * MIN, 2 * MIN).await {
        Ok(MetricResult::Matrix(series)) => series,
        other => panic!("{q}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partitions_answer_as_one() {
    let (_d1, one, t) = engine(1).await;
    let (_d2, many, _) = engine(9).await;
    let ops = [
        "count_over_time",
        "sum_over_time",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "stdvar_over_time",
        "stddev_over_time",
        "first_over_time",
        "last_over_time",
        "rate",
        "rate_counter",
    ];
    let mut queries: Vec<String> = Vec::new();
    for op in ops {
        let unwrap = if op == "count_over_time" { "" } else { "| unwrap v" };
        queries.push(format!(r#"{op}({{app="api"}} | json | __error__="" {unwrap} [7m])"#));
        if !matches!(op, "count_over_time" | "sum_over_time" | "rate" | "rate_counter") {
            queries.push(format!(r#"{op}({{app="api"}} | json | __error__="" {unwrap} [7m]) by (path)"#));
        } else {
            queries.push(format!(r#"sum by (path) ({op}({{app="api"}} | json | __error__="" {unwrap} [7m]))"#));
        }
    }
    queries.push(r#"quantile_over_time(0.9, {app="api"} | json | __error__="" | unwrap v [7m]) by (path)"#.into());
    queries.push(r#"sum by (pod) (bytes_over_time({app="api"} |= "path" [7m]))"#.into());
    queries.push(r#"count_over_time({app="api"} |= "oops" [7m])"#.into());
    for q in &queries {
        let (a, b) = (run(&one, &t, q).await, run(&many, &t, q).await);
        assert!(!a.is_empty(), "{q}: no series");
        assert_eq!(a.len(), b.len(), "{q}");
        for ((la, pa), (lb, pb)) in a.iter().zip(&b) {
            assert_eq!(la, lb, "{q}");
            assert_eq!(pa.len(), pb.len(), "{q} {la:?}");
            for ((ta, va), (tb, vb)) in pa.iter().zip(pb) {
                assert_eq!(ta, tb, "{q} {la:?}");
                let close = va == vb || (va - vb).abs() <= 1e-9 * va.abs().max(vb.abs());
                assert!(close, "{q} {la:?} at {ta}: {va} vs {vb}");
            }
        }
    }
}
