//! Push and query through the HTTP API, restarts, and error statuses.

use prost::Message;
use serde_json::json;

use crate::{client, get, streams, TestServer};

/// 2026-01-15T23:00:00Z in ns.
const T0: i64 = 1_768_518_000_000_000_000;
const RANGE: [(&str, &str); 2] = [("start", "1768517000000000000"), ("end", "1768530000000000000")];

// Loki's push protobuf, as promtail encodes it (kept separate from the server's own copy
// so a mistake there cannot hide here).
#[derive(Clone, PartialEq, Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}
#[derive(Clone, PartialEq, Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
}
#[derive(Clone, PartialEq, Message)]
struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    line: String,
    #[prost(message, repeated, tag = "3")]
    structured_metadata: Vec<LabelPair>,
}
#[derive(Clone, PartialEq, Message)]
struct LabelPair {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}
#[derive(Clone, PartialEq, Message)]
struct Timestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

async fn push_json(base: &str, tenant: &str, body: serde_json::Value) -> u16 {
    client()
        .post(format!("{base}/loki/api/v1/push"))
        .header("X-Scope-OrgID", tenant)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn push_proto(base: &str, tenant: &str, req: &PushRequest) -> u16 {
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    client()
        .post(format!("{base}/loki/api/v1/push"))
        .header("X-Scope-OrgID", tenant)
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn fill(base: &str) {
    let values: Vec<_> = (0..50).map(|i| json!([(T0 + i * 1_000_000_000).to_string(), format!("GET /api/{i} 200")])).collect();
    let st = push_json(base, "acme", json!({"streams": [{"stream": {"service": "api", "env": "prod"}, "values": values}]})).await;
    assert_eq!(st, 204);
    let with_meta = json!({"streams": [{"stream": {"service": "api", "env": "staging"},
        "values": [[(T0 + 500).to_string(), "traced line", {"trace_id": "abc"}]]}]});
    assert_eq!(push_json(base, "acme", with_meta).await, 204);
    let proto = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{service="db", env="prod"}"#.into(),
            entries: (0..20)
                .map(|i| EntryAdapter {
                    timestamp: Some(Timestamp { seconds: T0 / 1_000_000_000 + i, nanos: 7 }),
                    line: if i % 5 == 0 { format!("ERROR deadlock {i}") } else { format!("LOG ok {i}") },
                    structured_metadata: vec![],
                })
                .collect(),
        }],
    };
    assert_eq!(push_proto(base, "acme", &proto).await, 204);
    assert_eq!(push_json(base, "globex", json!({"streams": [{"stream": {"service": "api"}, "values": [[T0.to_string(), "globex only"]]}]})).await, 204);
}

#[tokio::test]
async fn push_json_and_protobuf_then_query() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;

    // A protobuf push is visible to the very next query.
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &[&RANGE[..], &[("query", r#"{service="db"} |= "deadlock""#), ("limit", "100")]].concat()).await;
    assert_eq!(st, 200, "{body}");
    let got = streams(&body);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), 4);
    assert_eq!(got[0].1[0], ((T0 + 15_000_000_007).to_string(), "ERROR deadlock 15".to_string()), "backward: newest first");

    // Limit and direction.
    let q = [&RANGE[..], &[("query", r#"{service="api", env="prod"}"#), ("limit", "3"), ("direction", "forward")]].concat();
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
    let got = streams(&body);
    assert_eq!(got[0].1.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(), ["GET /api/0 200", "GET /api/1 200", "GET /api/2 200"]);

    // `interval`: one entry per 10s at most, across streams, in the query's direction.
    for (dir, want) in [("forward", ["GET /api/0 200", "GET /api/10 200", "GET /api/20 200"]), ("backward", ["GET /api/49 200", "GET /api/39 200", "GET /api/29 200"])] {
        let q = [&RANGE[..], &[("query", r#"{service="api", env="prod"}"#), ("limit", "3"), ("direction", dir), ("interval", "10s")]].concat();
        let (st, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
        assert_eq!(st, 200, "{body}");
        let got = streams(&body);
        assert_eq!(got[0].1.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(), want, "{dir}");
    }
    let q = [&RANGE[..], &[("query", r#"{service=~"api|db", env="prod"}"#), ("limit", "100"), ("direction", "forward"), ("interval", "9.5")]].concat();
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
    let n: usize = streams(&body).iter().map(|s| s.1.len()).sum();
    assert_eq!(n, 5, "T0, T0+10s, T0+20s, T0+30s, T0+40s: the db entries 7ns later are skipped");

    // Structured metadata is returned merged into the stream's labels.
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &[&RANGE[..], &[("query", r#"{env="staging"}"#)]].concat()).await;
    assert_eq!(body["data"]["result"][0]["stream"], json!({"env": "staging", "service": "api", "trace_id": "abc"}));

    // Regex and negative filters, chained.
    let q = [&RANGE[..], &[("query", r#"{service=~"api|db"} |~ "(?i)error|GET /api/4[0-9]" != "41""#), ("limit", "1000")]].concat();
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
    let n: usize = streams(&body).iter().map(|s| s.1.len()).sum();
    assert_eq!(n, 4 + 9);

    // Tenants are isolated; labels and values come from the label index.
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("globex"), &[&RANGE[..], &[("query", r#"{service=~".+"}"#)]].concat()).await;
    assert_eq!(streams(&body).len(), 1);
    let (_, body) = get(&s.base, "/loki/api/v1/labels", Some("acme"), &RANGE).await;
    assert_eq!(body, json!({"status": "success", "data": ["env", "service"]}));
    let (_, body) = get(&s.base, "/loki/api/v1/label/env/values", Some("acme"), &[&RANGE[..], &[("query", r#"{service="db"}"#)]].concat()).await;
    assert_eq!(body["data"], json!(["prod"]));
    let (_, body) = get(&s.base, "/loki/api/v1/label/nope/values", Some("acme"), &RANGE).await;
    assert_eq!(body, json!({"status": "success"}));
    // No header: Loki's default tenant, which has nothing.
    let (_, body) = get(&s.base, "/loki/api/v1/labels", None, &RANGE).await;
    assert_eq!(body, json!({"status": "success"}));
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_with_and_without_flush_gives_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let queries = [r#"{service=~".+"}"#, r#"{service="db"} |= "deadlock""#, r#"{env="staging"}"#];
    let answers = |base: String| async move {
        let mut out = Vec::new();
        for q in queries {
            let (st, body) = get(&base, "/loki/api/v1/query_range", Some("acme"), &[&RANGE[..], &[("query", q), ("limit", "1000")]].concat()).await;
            assert_eq!(st, 200);
            out.push(streams(&body));
        }
        out
    };
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;
    let before = answers(s.base.clone()).await;
    assert_eq!(before[0].iter().map(|s| s.1.len()).sum::<usize>(), 71);

    let acme: silt_storage::TenantId = "acme".parse().unwrap();
    // Without a flush: the restart replays everything from the WAL.
    assert!(s.server.store().stats(&acme).head_entries > 0);
    s.server.crash().await.unwrap();
    let s = TestServer::start(dir.path()).await;
    assert_eq!(s.server.store().stats(&acme).chunks, 0, "nothing was flushed");
    assert_eq!(answers(s.base.clone()).await, before);

    // With a flush: a graceful shutdown writes chunks; the answers come from them.
    s.server.shutdown().await.unwrap();
    let s = TestServer::start(dir.path()).await;
    assert_eq!(s.server.store().stats(&acme).head_entries, 0, "shutdown flushed");
    assert!(s.server.store().stats(&acme).chunks > 0);
    assert_eq!(answers(s.base.clone()).await, before);

    // Data pushed after a restart lands in the head and the WAL; restart again.
    assert_eq!(push_json(&s.base, "acme", json!({"streams": [{"stream": {"service": "late"}, "values": [[(T0 + 99).to_string(), "late"]]}]})).await, 204);
    s.server.shutdown().await.unwrap();
    let s = TestServer::start(dir.path()).await;
    let after = answers(s.base.clone()).await;
    assert_eq!(after[0].iter().map(|s| s.1.len()).sum::<usize>(), 72);
    assert_eq!(after[1..], before[1..]);
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_loki_errors_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("/loki/api/v1/query_range", &[("query", r#"{service="api""#)], "parse error at line 1, col 15: syntax error: unexpected $end"),
        ("/loki/api/v1/query_range", &[("query", "{}")], "queries require at least one regexp or equality matcher"),
        ("/loki/api/v1/query_range", &[("query", r#"{a=~".*"}"#)], "empty-compatible value"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"} |~ "(x""#)], "error parsing regexp"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("limit", "-1")], "limit must be a positive value"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("limit", "ten")], "invalid limit"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("interval", "-1s")], "interval must be >= 0"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("limit", "5001")], "max entries limit per query exceeded"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("direction", "sideways")], "invalid direction"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("start", "2"), ("end", "1")], "end timestamp must not be before"),
        ("/loki/api/v1/query_range", &[("query", r#"{a="b"}"#), ("start", "soon")], "invalid start"),
        ("/loki/api/v1/query", &[("query", r#"{a="b"}"#)], "log queries are not supported as an instant query type"),
    ];
    for (path, params, want) in cases {
        let (st, body) = get(&s.base, path, Some("acme"), params).await;
        assert_eq!(st, 400, "{params:?}: {body}");
        assert!(body.as_str().unwrap().contains(want), "{params:?}: {body}");
    }
    let (st, _) = get(&s.base, "/loki/api/v1/labels", Some("bad/tenant"), &[]).await;
    assert_eq!(st, 400);

    let post = |body: &'static [u8], ct: &'static str| {
        let base = s.base.clone();
        async move {
            client()
                .post(format!("{base}/loki/api/v1/push"))
                .header("X-Scope-OrgID", "acme")
                .header("Content-Type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    for (body, ct) in [
        (&b"{"[..], "application/json"),
        (br#"{"streams":[{"stream":{},"values":[["1","x"]]}]}"#, "application/json"),
        (br#"{"streams":[{"stream":{"a":"b"},"values":[["x","y"]]}]}"#, "application/json"),
        (b"garbage", "application/x-protobuf"),
    ] {
        let r = post(body, ct).await;
        assert_eq!(r.status().as_u16(), 400);
        let text = r.text().await.unwrap();
        assert!(!text.is_empty());
    }
    // Everything stored before is still there.
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &[&RANGE[..], &[("query", r#"{service=~".+"}"#), ("limit", "1000")]].concat()).await;
    assert_eq!(streams(&body).iter().map(|s| s.1.len()).sum::<usize>(), 71);
    let (st, _) = get(&s.base, "/ready", None, &[]).await;
    assert_eq!(st, 200);
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metric_queries_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;
    // 50 api/prod lines, one per second from T0; 20 db lines.
    let q = [("query", r#"sum by (service) (count_over_time({env="prod"}[1m]))"#), ("start", "1768518060"), ("end", "1768518060"), ("step", "60")];
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &q).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let mut got: Vec<(String, String)> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["metric"]["service"].as_str().unwrap().to_string(), r["values"][0][1].as_str().unwrap().to_string()))
        .collect();
    got.sort();
    // The window at T0+60s is (T0, T0+60s]: the api line at exactly T0 is outside it.
    assert_eq!(got, vec![("api".into(), "49".into()), ("db".into(), "20".into())]);

    // Instant query: a vector; a literal: a scalar with its timestamp in milliseconds.
    let (_, body) = get(&s.base, "/loki/api/v1/query", Some("acme"), &[("query", r#"count(rate({env=~".+"}[5m]))"#), ("time", "1768518100")]).await;
    assert_eq!(body["data"]["resultType"], "vector", "{body}");
    assert_eq!(body["data"]["result"][0]["value"], json!([1768518100, "3"]));
    let (_, body) = get(&s.base, "/loki/api/v1/query", None, &[("query", "1 + 1"), ("time", "1768518100")]).await;
    assert_eq!(body["data"], json!({"resultType": "scalar", "result": [1768518100000i64, "2"]}));

    // Loki's pipeline-error rule, and its escape hatch.
    let (st, body) = get(&s.base, "/loki/api/v1/query", Some("acme"), &[("query", r#"count_over_time({service="db"} | json [5m])"#), ("time", "1768518100")]).await;
    assert_eq!(st, 400);
    assert!(body.as_str().unwrap().starts_with("pipeline error: 'JSONParserErr'"), "{body}");
    let (st, _) = get(&s.base, "/loki/api/v1/query", Some("acme"), &[("query", r#"count_over_time({service="db"} | json | __error__="" [5m])"#), ("time", "1768518100")]).await;
    assert_eq!(st, 200);
    // Too many points.
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &[("query", "sum(rate({a=\"b\"}[1m]))"), ("start", "0"), ("end", "1768518100"), ("step", "1")]).await;
    assert_eq!(st, 400);
    assert!(body.as_str().unwrap().contains("exceeded maximum resolution of 11,000 points"));
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn categorize_labels_encoding_flag() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;
    let resp = client()
        .get(s.url("/loki/api/v1/query_range"))
        .header("X-Scope-OrgID", "acme")
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&[&RANGE[..], &[("query", r#"{env="staging"} | logfmt --keep-empty | drop nothing"#)]].concat())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["encodingFlags"], json!(["categorize-labels"]), "{body}");
    let stream = &body["data"]["result"][0];
    // Stream labels only in `stream`; metadata and parsed labels beside each entry.
    assert_eq!(stream["stream"], json!({"env": "staging", "service": "api"}));
    assert_eq!(stream["values"][0][2], json!({"structuredMetadata": {"trace_id": "abc"}, "parsed": {"line": "", "traced": ""}}));
    // Without the header: everything in the stream labels, 2-element values.
    let (_, body) = get(&s.base, "/loki/api/v1/query_range", Some("acme"), &[&RANGE[..], &[("query", r#"{env="staging"}"#)]].concat()).await;
    assert!(body["data"].get("encodingFlags").is_none());
    assert_eq!(body["data"]["result"][0]["values"][0].as_array().unwrap().len(), 2);
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn index_stats_and_volume() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;
    let (st, body) = get(&s.base, "/loki/api/v1/index/stats", Some("acme"), &[&RANGE[..], &[("query", r#"{service="api"}"#)]].concat()).await;
    assert_eq!(st, 200);
    let api_bytes: u64 = (0..50).map(|i| format!("GET /api/{i} 200").len() as u64).sum::<u64>() + "traced line".len() as u64;
    assert_eq!(body["streams"], 2);
    assert_eq!(body["entries"], 51);
    assert_eq!(body["bytes"], api_bytes);
    assert!(body["chunks"].as_u64().unwrap() >= 1);
    let (_, body) = get(&s.base, "/loki/api/v1/index/stats", Some("acme"), &[&RANGE[..], &[("query", r#"{service="none"}"#)]].concat()).await;
    assert_eq!(body, json!({"streams": 0, "chunks": 0, "entries": 0, "bytes": 0}));

    let (_, body) = get(&s.base, "/loki/api/v1/index/volume", Some("acme"), &[&RANGE[..], &[("query", r#"{service=~".+"}"#)]].concat()).await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result[0]["metric"], json!({"service": "api"}), "largest first: {body}");
    assert_eq!(result[0]["value"][1], api_bytes.to_string());
    assert_eq!(result.len(), 2);
    let (_, body) = get(&s.base, "/loki/api/v1/index/volume", Some("acme"), &[&RANGE[..], &[("query", r#"{service=~".+"}"#), ("aggregateBy", "labels"), ("limit", "1")]].concat()).await;
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn legacy_read_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    fill(&s.base).await;
    let q = [&RANGE[..], &[("query", r#"{service="db"}"#), ("regexp", "deadlock 1[05]"), ("direction", "forward")]].concat();
    let (st, body) = get(&s.base, "/api/prom/query", Some("acme"), &q).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body,
        json!({"streams": [{"labels": r#"{env="prod", service="db"}"#, "entries": [
            {"ts": "2026-01-15T23:00:10.000000007Z", "line": "ERROR deadlock 10"},
            {"ts": "2026-01-15T23:00:15.000000007Z", "line": "ERROR deadlock 15"}]}]})
    );
    let (st, body) = get(&s.base, "/api/prom/query", Some("acme"), &[&RANGE[..], &[("query", r#"count_over_time({a="b"}[1m])"#)]].concat()).await;
    assert_eq!((st, body.as_str().unwrap()), (400, "legacy endpoints only support streams result type"));
    let (_, body) = get(&s.base, "/api/prom/label", Some("acme"), &RANGE).await;
    assert_eq!(body, json!({"values": ["env", "service"]}));
    let (_, body) = get(&s.base, "/api/prom/label/service/values", Some("acme"), &RANGE).await;
    assert_eq!(body, json!({"values": ["api", "db"]}));
    let (_, body) = get(&s.base, "/api/prom/label/nope/values", Some("acme"), &RANGE).await;
    assert_eq!(body, json!({}));
    s.server.shutdown().await.unwrap();
}
