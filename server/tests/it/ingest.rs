//! Loki's ingest defaults and per-tenant limits over HTTP: discovery of `service_name`
//! and `detected_level`, rejections with Loki's statuses and messages, overrides.

use serde_json::json;

use crate::{client, get, TestServer};

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

async fn push(base: &str, tenant: &str, body: serde_json::Value) -> (u16, String) {
    let r = client().post(format!("{base}/loki/api/v1/push")).header("X-Scope-OrgID", tenant).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn range(now: i64) -> Vec<(&'static str, String)> {
    vec![("start", (now - 3_600_000_000_000).to_string()), ("end", (now + 60_000_000_000).to_string())]
}

#[tokio::test]
async fn defaults_discover_service_name_and_level_and_reject_old_samples() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), "").await;
    let now = now_ns();
    let body = json!({"streams": [
        {"stream": {"app": "web", "env": "prod"}, "values": [[now.to_string(), "level=warn msg=\"disk almost full\""]]},
        {"stream": {"env": "prod"}, "values": [[(now + 1).to_string(), "{\"msg\":\"x\",\"severity\":\"ERROR\"}"]]},
    ]});
    assert_eq!(push(&s.base, "acme", body).await, (204, String::new()));

    let (_, body) = get(&s.base, "/loki/api/v1/label/service_name/values", Some("acme"), &[]).await;
    assert_eq!(body["data"], json!(["unknown_service", "web"]));
    let q: Vec<(&str, String)> = [range(now), vec![("query", r#"{service_name="web"}"#.to_string())]].concat();
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = client()
        .get(s.url("/loki/api/v1/query_range"))
        .header("X-Scope-OrgID", "acme")
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&q)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    let stream = &body["data"]["result"][0];
    assert_eq!(stream["stream"], json!({"app": "web", "env": "prod", "service_name": "web"}));
    assert_eq!(stream["values"][0][2], json!({"structuredMetadata": {"detected_level": "warn"}}));
    let q = [range(now), vec![("query", r#"{service_name="unknown_service"} | detected_level="error""#.to_string())]].concat();
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1, "{body}");

    // Loki rejects samples older than a week by default; the rest of the push is kept.
    let old = now - 8 * 24 * 3_600_000_000_000;
    let body = json!({"streams": [{"stream": {"app": "web"}, "values": [[old.to_string(), "old"], [(now + 2).to_string(), "new"]]}]});
    let (st, msg) = push(&s.base, "acme", body).await;
    assert_eq!(st, 400);
    assert!(msg.starts_with(r#"entry for stream '{app="web", service_name="web"}' has timestamp too old: "#), "{msg}");
    assert!(msg.ends_with("\n"), "Go's http.Error adds a newline");
    let q = [range(now), vec![("query", r#"{app="web"} |= "new""#.to_string())]].concat();
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
    assert_eq!(body["data"]["result"][0]["values"][0][1], "new", "the valid entry was stored");

    // What /metrics says about it.
    let metrics = client().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for want in [
        r#"loki_distributor_lines_received_total{tenant="acme"} 4"#,
        r#"loki_discarded_samples_total{reason="greater_than_max_sample_age",tenant="acme"} 1"#,
        r#"loki_request_duration_seconds_count{method="POST",route="loki_api_v1_push",status_code="204",ws="false"} 1"#,
        r#"loki_request_duration_seconds_count{method="POST",route="loki_api_v1_push",status_code="400",ws="false"} 1"#,
        r#"loki_ingester_memory_streams{tenant="acme"} 3"#,
        "# TYPE silt_wal_fsync_duration_seconds histogram",
        "# TYPE silt_index_cache_bytes gauge",
    ] {
        assert!(metrics.contains(want), "{want} missing from\n{metrics}");
    }
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn per_tenant_overrides_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[limits]\nmax_line_size = \"1KB\"\ndiscover_service_name = []\n\
                  [overrides.tight]\nmax_line_size = 8\ningestion_rate_mb = 0.00001\ningestion_burst_size_mb = 0.0001\n\
                  [overrides.hasty]\nquery_timeout = \"1ns\"\nmax_query_length = \"1h\"\n";
    let s = TestServer::start_with(dir.path(), config).await;
    let now = now_ns();
    let line = |ts: i64, l: &str| json!({"streams": [{"stream": {"job": "x"}, "values": [[ts.to_string(), l]]}]});

    assert_eq!(push(&s.base, "roomy", line(now, "a line of twenty-two")).await.0, 204);
    let (st, msg) = push(&s.base, "tight", line(now, "a line of twenty-two")).await;
    assert_eq!((st, msg.as_str()), (400, "Max entry size '8' bytes exceeded for stream '{job=\"x\"}' while adding an entry with length '20' bytes\n"));

    // 0.0001 MiB of burst is 104 bytes: small pushes pass, 160 bytes at once never can.
    assert_eq!(push(&s.base, "tight", line(now + 1, &"x".repeat(8))).await.0, 204);
    let (st, msg) = push(&s.base, "tight", line(now + 2, &"y".repeat(8))).await;
    assert_eq!(st, 204, "{msg}");
    let big = json!({"streams": [{"stream": {"job": "x"}, "values": (0..20).map(|i| json!([(now + 10 + i).to_string(), "12345678"])).collect::<Vec<_>>()}]});
    let (st, msg) = push(&s.base, "tight", big).await;
    assert_eq!(st, 429, "{msg}");
    assert_eq!(
        msg,
        "Ingestion rate limit exceeded for user tight (limit: 10 bytes/sec) while attempting to ingest '20' lines totaling '160' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n"
    );

    // Query limits per tenant: the range length, and the timeout (504).
    // Enough data that the query runs past the (1ns) timeout's first timer tick.
    let many = json!({"streams": [{"stream": {"job": "x"}, "values": (0..20_000).map(|i| json!([(now - 30_000_000_000 + i).to_string(), format!("{{\"n\":{i}}}")])).collect::<Vec<_>>()}]});
    assert_eq!(push(&s.base, "hasty", many).await.0, 204);
    let q = |start: i64| vec![("query", r#"{job="x"} | json | n > 19990"#.to_string()), ("start", start.to_string()), ("end", now.to_string())];
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", Some("hasty"), &q(now - 2 * 3_600_000_000_000).iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!((st, body.as_str().unwrap()), (400, "the query time range exceeds the limit (query length: 2h, limit: 1h)"));
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", Some("hasty"), &q(now - 60_000_000_000).iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(st, 504, "{body}");
    let (st, _) = get(&s.base, "/loki/api/v1/query_range", Some("roomy"), &q(now - 2 * 3_600_000_000_000).iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    assert_eq!(st, 200);
    s.server.shutdown().await.unwrap();
}
