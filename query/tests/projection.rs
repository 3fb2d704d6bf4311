//! Metric queries grouped `by` a few labels let the parsers keep only those labels (see
//! `RangeSpec::observed_labels`). The answers, and the errors, must be those of the full
//! pipeline: each query is compared with the same query plus `| drop nothing`, a stage
//! that changes nothing but turns the projection off.

mod common;

use silt_query::{ast::Expr, parse, Engine};
use silt_storage::{IngestLimits, Labels, PushEntry, PushRequest, PushStream, Store, StoreConfig, TenantId};

use common::{run, MIN, T0};

async fn engine() -> (tempfile::TempDir, Engine, TenantId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t: TenantId = "fake".parse().unwrap();
    let mut streams = Vec::new();
    for (pod, cluster) in [("p1", "eu"), ("p2", "us")] {
        let mut entries = Vec::new();
        for k in 0..600i64 {
            let path = ["/a", "/b", "/c"][(k % 3) as usize];
            // A JSON `cluster` clashes with the stream label (`cluster_extracted`), keys
            // that need sanitising, nested objects, one line in 100 in logfmt instead and a
            // duration that does not convert in 150.
            let ms = if k % 150 == 7 { "\"slow\"".to_string() } else { (k % 40).to_string() };
            let line = if k % 100 == 99 {
                format!("level=warn path=/x ms=12 k={k}")
            } else {
                format!(r#"{{"path":"{path}","cluster":"c{}","ms":{ms},"req":{{"user-id":"u{}"}},"status":{}}}"#, k % 2, k % 4, 200 + (k % 5) * 100)
            };
            entries.push(PushEntry { ts: T0 + k * MIN / 10, line, metadata: vec![("trace".into(), format!("t{}", k % 2))] });
        }
        streams.push(PushStream { labels: Labels::from_pairs([("app", "api"), ("pod", pod), ("cluster", cluster)]).unwrap(), entries });
    }
    store.push(&t, PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
    store.flush().await.unwrap();
    (dir, Engine::new(store), t)
}


#[tokio::test]
async fn projected_pipelines_answer_as_the_full_ones() {
    let (_dir, e, t) = engine().await;
    let cases = [
        // (query with `{P}` where the pipeline goes, whether it must fail)
        (r#"sum by (path) (count_over_time({app="api"} | json | __error__="" {P} [5m]))"#, false),
        (r#"sum by (path) (count_over_time({app="api"} | json {P} [5m]))"#, true),
        (r#"sum by (cluster_extracted, pod) (rate({app="api"} | json | __error__="" {P} [5m]))"#, false),
        (r#"sum by (req_user_id) (bytes_over_time({app="api"} |= "path" | json | status >= 400 {P} [5m]))"#, false),
        (r#"topk(2, sum by (path) (rate({app="api"} | json | __error__="" | ms > 10 {P} [5m])))"#, true),
        (r#"quantile_over_time(0.9, {app="api"} | json | __error__="" {P} | unwrap ms [5m]) by (cluster)"#, true),
        (r#"quantile_over_time(0.9, {app="api"} | json | __error__="" {P} | unwrap ms | __error__="" [5m]) by (cluster, trace)"#, false),
        (r#"max by (path) (max_over_time({app="api"} | pattern `{"path":"<path>",<_>"ms":<ms>,<_>` | __error__="" {P} | unwrap ms | __error__="" [5m]))"#, false),
        (r#"sum by (level, path) (count_over_time({app="api"} | logfmt | __error__="" {P} [5m]))"#, false),
        (r#"sum by (level) (count_over_time({app="api"} | logfmt --strict | ms > 3 {P} [5m]))"#, false),
        (r#"sum(count_over_time({app="api"} | json {P} [5m]))"#, false),
        (r#"sum by (path) (count_over_time({app="api"} | regexp `"path":"(?P<path>[^"]+)"` {P} [5m]))"#, false),
        // No parser: the plain path (which skips the metadata column when the series
        // cannot depend on it) against the pipeline path.
        (r#"sum by (pod) (count_over_time({app="api"} {P} [5m]))"#, false),
        (r#"sum by (trace) (count_over_time({app="api"} {P} [5m]))"#, false),
        (r#"sum by (pod, trace) (rate({app="api"} |= "path" {P} [5m]))"#, false),
        (r#"count_over_time({app="api"} {P} [5m])"#, false),
        (r#"sum(bytes_over_time({app="api"} {P} [5m]))"#, false),
        (r#"sum by (pod) (bytes_rate({app="api"} {P} [1m]))"#, false),
        // Windows shorter than the step (rows between them count nowhere) and offset
        // ones: the plain path counts runs of rows in the same windows at once.
        (r#"sum by (pod) (count_over_time({app="api"} {P} [30s]))"#, false),
        (r#"sum(bytes_over_time({app="api"} {P} [90s] offset 20s))"#, false),
        (r#"sum by (trace) (bytes_over_time({app="api"} {P} [45s]))"#, false),
    ];
    for (q, fails) in cases {
        let projected = run(&e, &t, &q.replace("{P}", "")).await;
        let full = run(&e, &t, &q.replace("{P}", "| drop nothing_at_all")).await;
        assert_eq!(projected, full, "{q}");
        assert_eq!(projected.is_err(), fails, "{q}: {projected:?}");
        if let Ok(s) = &projected {
            assert!(s.len() > 20, "{q}: an answer with samples expected, got {s}");
        }
    }
}

/// Log queries with label filters decide which rows survive with a pipeline that keeps
/// only the labels the filters read, then run the full pipeline on the survivors.
#[tokio::test]
async fn prefiltered_log_queries_answer_as_the_full_ones() {
    use silt_query::{Direction, LogQuery};
    let (_dir, e, t) = engine().await;
    let cases = [
        r#"{app="api"} | json | status >= 500 {P}"#,
        r#"{app="api"} | json | status >= 500 and ms > 20 {P}"#,
        r#"{app="api"} | json {P} | cluster_extracted="c1" or req_user_id="u3""#,
        r#"{app="api"} | json | __error__!="" {P}"#,
        r#"{app="api"} | json | ms > 5 {P}"#,
        r#"{app="api"} | logfmt | level="warn" {P}"#,
        r#"{app="api"} | json | trace="t1" | path=~"/[ab]" {P}"#,
        r#"{app="api"} | regexp `"status":(?P<code>\d+)` | code="300" {P}"#,
        r#"{app="api"} | json | path="/a" | decolorize {P} |= "u1""#,
    ];
    for q in cases {
        let run = |text: String| {
            let e = e.clone();
            let t = t.clone();
            async move {
                let Expr::Log(expr) = parse(&text).unwrap() else { panic!("{text}") };
                let q = LogQuery { expr, start: T0, end: T0 + 60 * MIN, limit: 1000, direction: Direction::Backward, interval: 0, categorize: true };
                format!("{:?}", e.log_query(std::slice::from_ref(&t), &q).await)
            }
        };
        let pre = run(q.replace("{P}", "")).await;
        let full = run(q.replace("{P}", "| drop nothing_at_all")).await;
        assert_eq!(pre, full, "{q}");
        assert!(pre.contains("entries: [EntryResult"), "{q}: entries expected, got {pre}");
    }
}
