//! Loki's delete API, retention and `/compact` over HTTP.

use serde_json::{json, Value};

use crate::{client, get, streams, TestServer, TEST_CONFIG};

const T0: i64 = 1_768_518_000_000_000_000; // 2026-01-15T23:00:00Z

async fn push(base: &str, tenant: &str, body: Value) {
    let st = client().post(format!("{base}/loki/api/v1/push")).header("X-Scope-OrgID", tenant).json(&body).send().await.unwrap().status();
    assert_eq!(st.as_u16(), 204);
}

async fn send(method: reqwest::Method, base: &str, tenant: &str, params: &[(&str, &str)]) -> (u16, String) {
    let r = client().request(method, format!("{base}/loki/api/v1/delete")).header("X-Scope-OrgID", tenant).query(params).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn lines(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = streams(body).into_iter().flat_map(|(_, vals)| vals.into_iter().map(|(_, l)| l)).collect();
    v.sort();
    v
}

const RANGE: [(&str, &str); 2] = [("start", "1768518000"), ("end", "1768521600")];

#[tokio::test]
async fn delete_requests_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TEST_CONFIG}[overrides.nodel]\ndeletion_mode = \"disabled\"\n[compactor]\ndelete_request_cancel_period = \"0s\"\n");
    let s = TestServer::start_with(dir.path(), &config).await;
    let values: Vec<Value> = (0..10).map(|i| json!([(T0 + i * 1_000_000_000).to_string(), format!("line {i}{}", if i % 3 == 0 { " secret" } else { "" })])).collect();
    push(&s.base, "acme", json!({"streams": [{"stream": {"app": "web"}, "values": values}, {"stream": {"app": "db"}, "values": [[T0.to_string(), "db secret"]]}]})).await;
    s.server.store().flush().await.unwrap();

    let q = |query: &'static str| {
        let base = s.base.clone();
        async move { get(&base, "/loki/api/v1/query_range", Some("acme"), &[&RANGE[..], &[("query", query), ("limit", "100")]].concat()).await }
    };
    assert_eq!(lines(&q(r#"{app=~".+"} |= "secret""#).await.1).len(), 5);

    // Loki's validation, in Loki's words.
    let post = reqwest::Method::POST;
    for (params, status, want) in [
        (vec![("start", "1768518000")], 400, "query not set\n"),
        (vec![("query", r#"{app="web"}"#)], 400, "start time not set\n"),
        (vec![("query", r#"{app="web"}"#), ("start", "1768518000000")], 400, "invalid start time: require unix seconds or RFC3339 format\n"),
        (vec![("query", r#"{app="web"}"#), ("start", "1768518000"), ("end", "4102444800")], 400, "deletes in the future are not allowed\n"),
        (vec![("query", r#"{app="web"}"#), ("start", "1768518000"), ("end", "1768517000")], 400, "start time can't be greater than end time\n"),
        (vec![("query", r#"rate({app="web"}[1m])"#), ("start", "1768518000")], 400, "invalid query expression: "),
        (vec![("query", r#"{app="web"} |= "x""#), ("start", "1768518000"), ("end", "1768518010"), ("max_interval", "1h")], 400, "max_interval can't be greater than the interval to be deleted (10s)\n"),
    ] {
        let (st, body) = send(post.clone(), &s.base, "acme", &params).await;
        assert_eq!(st, status, "{params:?}: {body}");
        assert!(body.starts_with(want), "{params:?}: {body}");
    }
    let (st, body) = send(post.clone(), &s.base, "nodel", &[("query", r#"{app="web"}"#), ("start", "1768518000")]).await;
    assert_eq!((st, body.as_str()), (403, "deletion is not available for this tenant\n"));

    // A request hides its lines at once, in log and metric queries alike.
    let (st, body) = send(post.clone(), &s.base, "acme", &[("query", r#"{app="web"} |= "secret""#), ("start", "2026-01-15T23:00:00Z")]).await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(lines(&q(r#"{app=~".+"} |= "secret""#).await.1), vec!["db secret"]);
    let (_, m) = get(&s.base, "/loki/api/v1/query", Some("acme"), &[("query", r#"sum(count_over_time({app="web"}[1h]))"#), ("time", "1768521600")]).await;
    assert_eq!(m["data"]["result"][0]["value"][1], "6", "{m}");

    let (st, list) = get(&s.base, "/loki/api/v1/delete", Some("acme"), &[]).await;
    assert_eq!(st, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    let r = &list[0];
    assert_eq!((r["query"].as_str(), r["status"].as_str(), r["start_time"].as_i64()), (Some(r#"{app="web"} |= "secret""#), Some("received"), Some(1768518000)));
    assert!(r["end_time"].as_f64().unwrap() > 1.7e9 && r["created_at"].as_f64().is_some(), "{r}");
    let id = r["request_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 8);

    // A second request, cancelled: its lines come back.
    let (st, _) = send(post.clone(), &s.base, "acme", &[("query", r#"{app="db"}"#), ("start", "1768518000")]).await;
    assert_eq!(st, 204);
    assert!(lines(&q(r#"{app="db"}"#).await.1).is_empty());
    let (_, list) = get(&s.base, "/loki/api/v1/delete", Some("acme"), &[]).await;
    let db_id = list[1]["request_id"].as_str().unwrap().to_string();
    let (st, body) = send(reqwest::Method::DELETE, &s.base, "acme", &[("request_id", "00000000")]).await;
    assert_eq!((st, body.as_str()), (404, "could not find delete request with given id\n"));
    let (st, body) = send(reqwest::Method::DELETE, &s.base, "acme", &[("request_id", &db_id), ("force", "true")]).await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(lines(&q(r#"{app="db"}"#).await.1), vec!["db secret"]);

    // Processing (cancel period 0 here): gone from disk, listed as processed, no cancel.
    let before = s.server.store().stats(&"acme".parse().unwrap()).chunk_rows;
    let r = client().post(s.url("/compact")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    let acme = report.as_array().unwrap().iter().find(|t| t["tenant"] == "acme").unwrap();
    assert_eq!((acme["deletes_processed"].as_u64(), acme["entries_removed"].as_u64()), (Some(1), Some(4)), "{report}");
    assert_eq!(s.server.store().stats(&"acme".parse().unwrap()).chunk_rows, before - 4);
    let (_, list) = get(&s.base, "/loki/api/v1/delete", Some("acme"), &[]).await;
    assert_eq!(list[0]["status"], "processed");
    let (st, body) = send(reqwest::Method::DELETE, &s.base, "acme", &[("request_id", &id)]).await;
    assert_eq!((st, body.as_str()), (400, "deletion of request which is in process or already processed is not allowed\n"));
    assert_eq!(lines(&q(r#"{app=~".+"} |= "secret""#).await.1), vec!["db secret"]);
}

#[tokio::test]
async fn far_away_delete_times_are_clamped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (st, body) = send(reqwest::Method::POST, &s.base, "fake", &[("query", r#"{app="x"}"#), ("start", "0001-01-01T00:00:00Z"), ("end", "0001-01-02T00:00:00Z")]).await;
    assert_eq!(st, 204, "{body}");
    let (st, body) = send(reqwest::Method::POST, &s.base, "fake", &[("query", r#"{app="x"} |= "a""#), ("start", "0001-01-01T00:00:00Z"), ("max_interval", "1000000h")]).await;
    assert_eq!(st, 204, "{body}");
    let (st, _) = send(reqwest::Method::POST, &s.base, "fake", &[("query", r#"{app="x"}"#), ("start", "9999-01-01T00:00:00Z")]).await;
    assert_eq!(st, 400);
    let (_, list) = get(&s.base, "/loki/api/v1/delete", None, &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn cancel_deadline_is_loki_s() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), &format!("{TEST_CONFIG}[compactor]\ndelete_request_cancel_period = \"1ms\"\n")).await;
    let (st, _) = send(reqwest::Method::PUT, &s.base, "fake", &[("query", r#"{app="web"}"#), ("start", "1768518000")]).await;
    assert_eq!(st, 204);
    let (_, list) = get(&s.base, "/loki/api/v1/delete", None, &[]).await;
    let id = list[0]["request_id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (st, body) = send(reqwest::Method::DELETE, &s.base, "fake", &[("request_id", &id)]).await;
    assert_eq!(st, 400);
    assert_eq!(body, "Cancellation of partially completed delete request or delete request past the deadline of 1ms since its creation is not allowed. To force, use the ?force query parameter\n");
}

#[tokio::test]
async fn retention_hides_expired_entries_and_compact_reclaims_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[limits]\nreject_old_samples = false\ndiscover_service_name = []\ndiscover_log_levels = false\nretention_period = \"48h\"\n\
                  [[limits.retention_stream]]\nselector = '{env=\"staging\"}'\npriority = 1\nperiod = \"24h\"\n";
    let s = TestServer::start_with(dir.path(), config).await;
    let now = silt_storage::now_ns();
    let h = 3_600_000_000_000i64;
    // One entry per hour over the last 4 days, for prod and staging.
    let values: Vec<Value> = (1..=96).rev().map(|i| json!([(now - i * h).to_string(), format!("{i}h ago")])).collect();
    push(&s.base, "fake", json!({"streams": [{"stream": {"env": "prod"}, "values": values}, {"stream": {"env": "staging"}, "values": values}]})).await;
    // Entries older than every rule: a stream whose data all expired.
    push(&s.base, "fake", json!({"streams": [{"stream": {"env": "old"}, "values": [[(now - 90 * h).to_string(), "ancient"]]}]})).await;

    let since = [("start", (now - 100 * h).to_string()), ("end", now.to_string()), ("limit", "1000".to_string())];
    let query = |sel: &'static str| {
        let base = s.base.clone();
        let mut params: Vec<(&str, String)> = since.to_vec();
        params.push(("query", sel.to_string()));
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            lines(&get(&base, "/loki/api/v1/query_range", None, &params).await.1).len()
        }
    };
    assert_eq!(query(r#"{env="prod"}"#).await, 47);
    assert_eq!(query(r#"{env="staging"}"#).await, 23);
    assert_eq!(query(r#"{env="old"}"#).await, 0);
    let (_, labels) = get(&s.base, "/loki/api/v1/label/env/values", None, &[("start", &since[0].1), ("end", &since[1].1)]).await;
    assert_eq!(labels["data"], json!(["prod", "staging"]));

    s.server.store().flush().await.unwrap();
    let t: silt_storage::TenantId = "fake".parse().unwrap();
    let rows_before = s.server.store().stats(&t).chunk_rows;
    assert_eq!(rows_before, 2 * 96 + 1);
    let r = client().post(s.url("/compact")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Whole expired days are dropped and partly expired chunks rewritten once enough of
    // them expired; reads are unchanged.
    let rows_after = s.server.store().stats(&t).chunk_rows;
    assert!(rows_after < rows_before - 96, "{rows_before} -> {rows_after}");
    assert_eq!(query(r#"{env="prod"}"#).await, 47);
    assert_eq!(query(r#"{env="staging"}"#).await, 23);
}
