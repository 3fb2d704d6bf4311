//! `[query] max_memory`: a query that needs more fails alone, with a clear 400; the server
//! and other queries carry on.

use serde_json::{json, Value};

use crate::{client, get, TestServer, TEST_CONFIG};

#[tokio::test]
async fn a_query_over_its_memory_limit_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), &format!("{TEST_CONFIG}[query]\nmax_memory = \"4MB\"\n")).await;
    let t0 = 1_768_518_000_000_000_000i64;
    // Every line its own series after `| json`: 20 000 series of 60 steps.
    let values: Vec<Value> = (0..20_000).map(|i| json!([(t0 + i * 100_000_000).to_string(), format!(r#"{{"id":"{i:08}"}}"#)])).collect();
    let st = client().post(s.url("/loki/api/v1/push")).json(&json!({"streams": [{"stream": {"app": "x"}, "values": values}]})).send().await.unwrap().status();
    assert_eq!(st.as_u16(), 204);
    let range = [("start", "1768518000"), ("end", "1768521600"), ("step", "60")];
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", None, &[&range[..], &[("query", r#"count_over_time({app="x"} | json [1m])"#)]].concat()).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.as_str().unwrap().contains("memory limit"), "{body}");
    // Aggregated, the same data fits.
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", None, &[&range[..], &[("query", r#"sum(count_over_time({app="x"} | json [1m]))"#)]].concat()).await;
    assert_eq!(st, 200, "{body}");
    // DataFusion's operators draw on the same pool; a plain log query fits.
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", None, &[&range[..2], &[("query", r#"{app="x"}"#), ("limit", "100")]].concat()).await;
    assert_eq!(st, 200, "{body}");
}
