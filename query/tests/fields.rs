//! Metric queries over `| json` read compaction's field columns instead of the lines
//! where they can (see `silt_storage::fields`). Their answers, and their errors, must be
//! the same before compaction (every line parsed) and after (field columns).

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use silt_query::Engine;
use silt_storage::fields::FieldRequest;
use silt_storage::{IngestLimits, Labels, MaintainOptions, PushEntry, PushRequest, PushStream, ScanRequest, Store, StoreConfig, TenantId, IDX_LINE};

use common::{run, MIN, T0};

const ROWS: i64 = 6000;

/// A line of the `mixed` tenant: JSON with a key clashing with a stream label, nested
/// objects, and an `ms` that does not convert now and then. In each stream's first 2000
/// rows (so some blocks of the compacted chunk, not all), also logfmt lines, duplicate
/// keys and keys to sanitise: rows that are not exact.
fn mixed_line(k: i64) -> String {
    let path = ["/a", "/b", "/c"][(k % 3) as usize];
    let irregular = k < 2000;
    match k % 200 {
        99 if irregular => format!("level=warn path=/x ms=12 k={k}"),
        150 if irregular => r#"{"path":"/a","path":"/b","ms":3}"#.to_string(),
        _ => {
            let ms = if k % 150 == 7 { "\"slow\"".to_string() } else { (k % 40).to_string() };
            let user = if irregular && k % 2 == 0 { "user-id" } else { "user_id" };
            format!(r#"{{"path":"{path}","cluster":"c{}","ms":{ms},"req":{{"{user}":"u{}"}},"status":{}}}"#, k % 2, k % 4, 200 + (k % 5) * 100)
        }
    }
}

/// A line of the `pure` tenant: JSON with the same keys throughout, and one `ms` in 1000
/// that does not convert.
fn pure_line(k: i64) -> String {
    let ms = if k % 1000 == 500 { "\"n/a\"".to_string() } else { format!("{}.{}", k % 40, k % 10) };
    format!(r#"{{"path":"/p{}","ms":{ms},"status":{}}}"#, k % 3, 200 + (k % 3) * 100)
}

/// Rows pushed after the last flush, per stream: read from the head, without field columns.
const HEAD_ROWS: i64 = 300;

/// Two flushes per tenant, so compaction has two chunks to merge, and some rows left in
/// the head.
async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    for part in 0..3 {
        let rows = if part < 2 { part * ROWS / 2..(part + 1) * ROWS / 2 } else { ROWS..ROWS + HEAD_ROWS };
        for (tenant, line) in [("mixed", mixed_line as fn(i64) -> String), ("pure", pure_line)] {
            let mut streams = Vec::new();
            for (pod, cluster) in [("p1", "eu"), ("p2", "us")] {
                let entries = rows
                    .clone()
                    .map(|k| PushEntry { ts: T0 + k * MIN / 110, line: line(k), metadata: vec![("trace".into(), format!("t{}", k % 2))] })
                    .collect();
                streams.push(PushStream { labels: Labels::from_pairs([("app", "api"), ("pod", pod), ("cluster", cluster)]).unwrap(), entries });
            }
            store.push(&tenant.parse().unwrap(), PushRequest { streams }, &IngestLimits::unlimited()).await.unwrap();
        }
        if part < 2 {
            store.flush().await.unwrap();
        }
    }
    (dir, store)
}


const QUERIES: [&str; 9] = [
    r#"sum by (path) (count_over_time({app="api"} | json [5m]))"#,
    r#"topk(2, sum by (path) (rate({app="api"} | json [5m])))"#,
    r#"quantile_over_time(0.9, {app="api"} | json | unwrap ms [5m]) by (cluster)"#,
    r#"quantile_over_time(0.9, {app="api"} | json | unwrap ms | __error__="" [5m]) by (pod)"#,
    r#"sum by (cluster_extracted, pod) (rate({app="api"} | json | __error__="" [5m]))"#,
    r#"sum by (status) (count_over_time({app="api"} | json | status >= 300 [5m]))"#,
    r#"sum by (req_user_id) (count_over_time({app="api"} | json | __error__="" [5m]))"#,
    r#"max by (path) (max_over_time({app="api"} | json | __error__="" | unwrap ms | __error__="" [5m]))"#,
    r#"sum by (path) (count_over_time({app="api"} |= "status" | json [5m]))"#,
];

#[tokio::test]
async fn field_columns_answer_as_the_lines() {
    let (dir, store) = store().await;
    let e = Engine::new(store.clone());
    let tenants: Vec<TenantId> = ["mixed", "pure"].iter().map(|t| t.parse().unwrap()).collect();
    let mut before = Vec::new();
    for t in &tenants {
        for q in QUERIES {
            before.push(run(&e, t, q).await);
        }
    }
    store.maintain(MaintainOptions::default()).await.unwrap();
    let fld = walk(dir.path()).into_iter().filter(|p| p.extension().is_some_and(|x| x == "fld")).count();
    assert_eq!(fld, 2, "one compacted chunk per tenant, with its field columns");

    // The pure tenant's compacted rows are all exact: their lines are not read. The head's
    // rows have no field columns.
    let names = Arc::new(vec!["path".to_string(), "ms".to_string()]);
    let req = ScanRequest {
        matchers: vec![],
        start: i64::MIN,
        end: i64::MAX,
        projection: Some(vec![IDX_LINE]),
        needles: vec![],
        fields: Some(FieldRequest { names, may_skip_lines: true }),
        line_predicate: None,
    };
    // In the mixed tenant's compacted chunk, the lines of the blocks with rows that are
    // not exact are read, and only those.
    let (mut with_line, mut without) = (0, 0);
    for part in store.scan(&tenants[0], &req).unwrap().parts {
        for b in part.execute() {
            let b = b.unwrap();
            let (lines, is_exact) = (b.column(0).as_string::<i32>(), b.column(1).as_boolean());
            for i in 0..b.num_rows() {
                if lines.value(i).is_empty() {
                    assert!(is_exact.value(i), "a row that is not exact comes with its line");
                    without += 1;
                } else {
                    with_line += 1;
                }
            }
        }
    }
    assert!(without > 2000 && with_line > 4096, "{without} rows without their line, {with_line} with");

    let (mut exact, mut head) = (0, 0);
    for part in store.scan(&tenants[1], &req).unwrap().parts {
        for b in part.execute() {
            let b = b.unwrap();
            assert_eq!(b.num_columns(), 4);
            let (lines, is_exact, paths) = (b.column(0).as_string::<i32>(), b.column(1).as_boolean(), b.column(2));
            if lines.value_data().is_empty() {
                assert_eq!(is_exact.true_count(), b.num_rows(), "every row exact");
                assert_eq!(paths.null_count(), 0, "every row has a path");
                exact += b.num_rows();
            } else {
                assert_eq!((is_exact.true_count(), paths.null_count()), (0, b.num_rows()), "head rows are not exact");
                head += b.num_rows();
            }
        }
    }
    assert_eq!((exact as i64, head as i64), (2 * ROWS, 2 * HEAD_ROWS));

    let mut after = Vec::new();
    for t in &tenants {
        for q in QUERIES {
            after.push(run(&e, t, q).await);
        }
    }
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let q = QUERIES[i % QUERIES.len()];
        assert_eq!(a, b, "{}: {q}", tenants[i / QUERIES.len()]);
        if let Ok(s) = a {
            assert!(s.len() > 20, "{q}: an answer with samples expected, got {s}");
        }
    }
    // Unconvertible `ms` values make the unwrapping queries fail, as Loki does.
    assert!(after[2].is_err() && after[QUERIES.len() + 2].is_err());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
