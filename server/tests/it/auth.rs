//! Tenancy and authentication over HTTP: `auth_enabled` as Loki, tokens with roles, and
//! isolation (one tenant never sees another's data).

use serde_json::json;

use crate::{client, TestServer};

const LIMITS: &str = "[limits]\nreject_old_samples = false\ndiscover_service_name = []\ndiscover_log_levels = false\n";
const RANGE: [(&str, &str); 3] = [("start", "1768517000000000000"), ("end", "1768530000000000000"), ("query", r#"{job="x"}"#)];

fn body(line: &str) -> serde_json::Value {
    json!({"streams": [{"stream": {"job": "x"}, "values": [["1768518000000000000", line]]}]})
}

async fn send(req: reqwest::RequestBuilder) -> (u16, String) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn auth_enabled_requires_an_org_id_and_isolates_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), &format!("auth_enabled = true\n{LIMITS}")).await;
    let push = || client().post(s.url("/loki/api/v1/push"));
    assert_eq!(send(push().json(&body("anonymous"))).await, (401, "no org id\n".into()));
    assert_eq!(send(push().header("X-Scope-OrgID", "acme").json(&body("acme's"))).await.0, 204);
    assert_eq!(send(push().header("X-Scope-OrgID", "globex").json(&body("globex's"))).await.0, 204);

    let query = |tenant: Option<&str>| {
        let r = client().get(s.url("/loki/api/v1/query_range")).query(&RANGE);
        match tenant {
            Some(t) => r.header("X-Scope-OrgID", t),
            None => r,
        }
    };
    assert_eq!(send(query(None)).await.0, 401);
    let (st, text) = send(query(Some("acme"))).await;
    assert_eq!(st, 200);
    assert!(text.contains("acme's") && !text.contains("globex's"), "{text}");
    let (_, text) = send(client().get(s.url("/loki/api/v1/labels")).header("X-Scope-OrgID", "nobody").query(&RANGE[..2])).await;
    assert_eq!(text, r#"{"status":"success"}"#, "a tenant without data sees no labels");
    // Several tenants at once need multi_tenant_queries_enabled (Loki: a 500).
    let (st, text) = send(query(Some("acme|globex"))).await;
    assert_eq!((st, text.as_str()), (500, "multiple org IDs present"));
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_bind_a_tenant_and_a_role() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[auth.tokens]]\ntoken = \"w-0123456789\"\ntenant = \"acme\"\nrole = \"writer\"\n\
         [[auth.tokens]]\ntoken = \"r-0123456789\"\ntenant = \"acme\"\nrole = \"reader\"\n\
         [[auth.tokens]]\ntoken = \"a-0123456789\"\ntenant = \"ops\"\nrole = \"admin\"\n{LIMITS}"
    );
    let s = TestServer::start_with(dir.path(), &config).await;
    let push = |token: &str| client().post(s.url("/loki/api/v1/push")).bearer_auth(token).json(&body("written"));
    assert_eq!(send(client().post(s.url("/loki/api/v1/push")).json(&body("x"))).await, (401, "missing or invalid token\n".into()));
    assert_eq!(send(push("nope-nope-nope")).await.0, 401);
    assert_eq!(send(push("r-0123456789")).await, (403, "this token may not push\n".into()));
    assert_eq!(send(push("w-0123456789")).await.0, 204);
    let conflicting = client().post(s.url("/loki/api/v1/push")).bearer_auth("w-0123456789").header("X-Scope-OrgID", "globex").json(&body("x"));
    assert_eq!(send(conflicting).await.0, 403);

    let query = |token: &str| client().get(s.url("/loki/api/v1/query_range")).bearer_auth(token).query(&RANGE);
    assert_eq!(send(query("w-0123456789")).await.0, 403, "writers cannot read");
    let (st, text) = send(query("r-0123456789")).await;
    assert_eq!(st, 200);
    assert!(text.contains("written"), "{text}");
    // Grafana's basic auth: the token as the password; the tenant is the token's.
    let (st, text) = send(client().get(s.url("/loki/api/v1/query_range")).basic_auth("grafana", Some("r-0123456789")).query(&RANGE)).await;
    assert_eq!(st, 200);
    assert!(text.contains("written"), "{text}");
    let (st, text) = send(query("a-0123456789")).await;
    assert_eq!(st, 200);
    assert!(!text.contains("written"), "the admin token is for tenant ops: {text}");
    assert_eq!(send(client().post(s.url("/flush")).bearer_auth("r-0123456789")).await.0, 403);
    assert_eq!(send(client().post(s.url("/flush")).bearer_auth("a-0123456789")).await.0, 204);
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn multi_tenant_reads_as_loki() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), &format!("auth_enabled = true\nmulti_tenant_queries_enabled = true\n{LIMITS}")).await;
    for t in ["acme", "globex"] {
        let r = client().post(s.url("/loki/api/v1/push")).header("X-Scope-OrgID", t).json(&body(&format!("{t}'s line"))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }
    let get = |path: &str, query: Option<&str>| {
        let mut q: Vec<(&str, &str)> = RANGE[..2].to_vec();
        if let Some(x) = query {
            q.push(("query", x));
        }
        client().get(s.url(path)).header("X-Scope-OrgID", "globex|acme").query(&q).send()
    };
    let v: serde_json::Value = get("/loki/api/v1/query_range", Some(r#"{job="x"}"#)).await.unwrap().json().await.unwrap();
    let mut streams: Vec<String> = v["data"]["result"].as_array().unwrap().iter().map(|s| s["stream"].to_string()).collect();
    streams.sort();
    assert_eq!(streams, [r#"{"__tenant_id__":"acme","job":"x"}"#, r#"{"__tenant_id__":"globex","job":"x"}"#]);

    let v: serde_json::Value = get("/loki/api/v1/query_range", Some(r#"{job="x", __tenant_id__="acme"}"#)).await.unwrap().json().await.unwrap();
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["data"]["result"][0]["values"][0][1], "acme's line");

    let v: serde_json::Value = get("/loki/api/v1/query_range", Some(r#"sum by (__tenant_id__) (count_over_time({job="x"}[1h]))"#)).await.unwrap().json().await.unwrap();
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");
    let v: serde_json::Value = get("/loki/api/v1/query_range", Some(r#"sum(count_over_time({job="x"}[1h]))"#)).await.unwrap().json().await.unwrap();
    assert_eq!(v["data"]["result"][0]["values"].as_array().unwrap().iter().map(|p| p[1].as_str().unwrap()).max(), Some("2"));

    let v: serde_json::Value = get("/loki/api/v1/labels", None).await.unwrap().json().await.unwrap();
    assert_eq!(v["data"], json!(["__tenant_id__", "job"]));
    let v: serde_json::Value = get("/loki/api/v1/label/__tenant_id__/values", None).await.unwrap().json().await.unwrap();
    assert_eq!(v["data"], json!(["acme", "globex"]));
    let v: serde_json::Value = get("/loki/api/v1/series", Some(r#"{job="x"}"#)).await.unwrap().json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    let v: serde_json::Value = get("/loki/api/v1/index/stats", Some(r#"{job="x"}"#)).await.unwrap().json().await.unwrap();
    assert_eq!(v["entries"], 2);
    s.server.shutdown().await.unwrap();
}
