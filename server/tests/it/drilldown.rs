//! The endpoints Grafana (Save & test, Explore) and Logs Drilldown call besides queries.

use serde_json::{json, Value};

use crate::{client, get, TestServer};

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

async fn fill(base: &str, now: i64) {
    let web: Vec<Value> = (0..40)
        .map(|i| json!([(now - 60_000_000_000 + i * 1_000_000_000).to_string(), format!("level=info msg=\"GET /x/{i}\" status={} duration={}ms size={}KB", 200 + i % 2, i, i + 1)]))
        .collect();
    let api: Vec<Value> = (0..5).map(|i| json!([(now - 30_000_000_000 + i).to_string(), format!(r#"{{"user":{{"id":{i}}},"path":"/p"}}"#)])).collect();
    let body = json!({"streams": [
        {"stream": {"app": "web", "pod": "web-1"}, "values": web},
        {"stream": {"app": "api", "request_num": "1"}, "values": api[..2]},
        {"stream": {"app": "api", "request_num": "2"}, "values": api[2..4]},
        {"stream": {"app": "api", "request_num": "3"}, "values": api[4..]},
    ]});
    let r = client().post(format!("{base}/loki/api/v1/push")).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());
}

fn range(now: i64) -> Vec<(&'static str, String)> {
    vec![("start", (now - 3_600_000_000_000).to_string()), ("end", (now + 1_000_000_000).to_string())]
}

async fn get_with(base: &str, path: &str, now: i64, extra: &[(&'static str, &str)]) -> (u16, Value) {
    let mut q: Vec<(&str, String)> = range(now);
    q.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    get(base, path, None, &q).await
}

#[tokio::test]
async fn drilldown_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), "").await;
    let now = now_ns();
    fill(&s.base, now).await;

    let (st, body) = get_with(&s.base, "/loki/api/v1/detected_labels", now, &[]).await;
    assert_eq!(st, 200);
    assert_eq!(
        body,
        json!({"detectedLabels": [{"label": "app", "cardinality": 2}, {"label": "pod", "cardinality": 1}, {"label": "service_name", "cardinality": 2}]}),
        "request_num holds only numbers"
    );

    let (st, body) = get_with(&s.base, "/loki/api/v1/detected_fields", now, &[("query", r#"{app="web"}"#)]).await;
    assert_eq!(st, 200, "{body}");
    let fields: Vec<&Value> = body["fields"].as_array().unwrap().iter().collect();
    let field = |n: &str| fields.iter().find(|f| f["label"] == n).unwrap_or_else(|| panic!("{n} in {body}"));
    assert_eq!(*field("status"), &json!({"label": "status", "type": "int", "cardinality": 2, "parsers": ["logfmt"]}));
    assert_eq!(field("duration")["type"], "duration");
    assert_eq!(field("size")["type"], "bytes");
    assert_eq!(*field("detected_level"), &json!({"label": "detected_level", "type": "string", "cardinality": 1, "parsers": null}));
    assert_eq!(body["limit"], 1000);
    let (_, body) = get_with(&s.base, "/loki/api/v1/detected_fields", now, &[("query", r#"{app="api"}"#)]).await;
    assert!(body["fields"].as_array().unwrap().iter().any(|f| f["label"] == "user_id" && f["parsers"] == json!(["json"])), "{body}");

    let (_, body) = get_with(&s.base, "/loki/api/v1/detected_field/status/values", now, &[("query", r#"{app="web"}"#)]).await;
    assert_eq!(body, json!({"limit": 1000, "values": ["200", "201"]}));
    let (_, body) = get_with(&s.base, "/loki/api/v1/detected_field/nothing/values", now, &[("query", r#"{app="web"}"#)]).await;
    assert_eq!(body, json!({}));
    let (st, _) = get_with(&s.base, "/loki/api/v1/detected_fields", now, &[("query", r#"count_over_time({app="web"}[1m])"#)]).await;
    assert_eq!(st, 400);

    let (st, body) = get_with(&s.base, "/loki/api/v1/patterns", now, &[("query", r#"{app="web"}"#), ("step", "1h")]).await;
    assert_eq!(st, 200, "{body}");
    let p = &body["data"][0];
    assert_eq!(p["pattern"], r#"level=info msg="GET <_> <_> <_> <_>"#, "{body}");
    assert_eq!(p["level"], "info");
    let total: i64 = p["samples"].as_array().unwrap().iter().map(|s| s[1].as_i64().unwrap()).sum();
    assert_eq!(total, 40);

    let (_, body) = get_with(&s.base, "/loki/api/v1/index/volume_range", now, &[("query", r#"{app=~".+"}"#), ("step", "10s")]).await;
    assert_eq!(body["data"]["resultType"], "matrix", "{body}");
    // Which series comes first depends on where "now" cuts the 10s buckets; both are there.
    let apps: Vec<&Value> = body["data"]["result"].as_array().unwrap().iter().map(|r| &r["metric"]["app"]).collect();
    assert!(apps.contains(&&json!("web")) && apps.contains(&&json!("api")), "{body}");
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn grafana_health_check_and_small_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    // Grafana's "Save & test".
    let (st, body) = get(&s.base, "/loki/api/v1/query", None, &[("query", "vector(1)+vector(1)"), ("time", "4000000000"), ("direction", "backward")]).await;
    assert_eq!(st, 200);
    assert_eq!(body["data"], json!({"resultType": "vector", "result": [{"metric": {}, "value": [4000000000i64, "2"]}]}));

    let (_, body) = get(&s.base, "/loki/api/v1/status/buildinfo", None, &[]).await;
    assert!(body["version"].as_str().unwrap().starts_with("3."), "{body}");
    let (st, body) = get(&s.base, "/loki/api/v1/format_query", None, &[("query", r#"{a="b"}|="x"  |  json"#)]).await;
    assert_eq!((st, body), (200, json!({"status": "success", "data": r#"{a="b"} |= "x" | json"#})));
    let (st, body) = get(&s.base, "/loki/api/v1/format_query", None, &[("query", "{a=")]).await;
    assert_eq!(st, 400);
    assert_eq!(body["status"], "invalid-query");
    let (_, body) = get(&s.base, "/loki/api/v1/drilldown-limits", None, &[]).await;
    assert_eq!(body["limits"]["max_query_series"], 500);
    assert_eq!(body["pattern_ingester_enabled"], true);
    let r = client().get(s.url("/config")).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("limits_config:\n") && text.contains("  max_entries_limit_per_query: 5000\n"), "{text}");
    s.server.shutdown().await.unwrap();
}
