//! Live tail over a real WebSocket: backfill, new entries within a second, filtering,
//! the per-tenant limit, and tenant isolation.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::{client, TestServer};

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

async fn push(base: &str, tenant: &str, job: &str, lines: &[&str]) {
    let now = now_ns();
    let values: Vec<Value> = lines.iter().enumerate().map(|(i, l)| json!([(now + i as i64).to_string(), l])).collect();
    let body = json!({"streams": [{"stream": {"job": job}, "values": values}]});
    let r = client().post(format!("{base}/loki/api/v1/push")).header("X-Scope-OrgID", tenant).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, tenant: &str, query: &str, extra: &str) -> Socket {
    let url = format!("{}/loki/api/v1/tail?query={}{extra}", base.replace("http://", "ws://"), urlencode(query));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("X-Scope-OrgID", tenant.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The lines of the next data frames until `n` lines came, within `wait`.
async fn lines(ws: &mut Socket, n: usize, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while out.len() < n {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.unwrap_or_else(|_| panic!("only {out:?} within {wait:?}")).unwrap().unwrap();
        if let Message::Text(t) = msg {
            let frame: Value = serde_json::from_str(&t).unwrap();
            for s in frame["streams"].as_array().unwrap() {
                assert_eq!(s["values"].as_array().unwrap().len(), 1, "one entry per stream object, as Loki");
                out.push(s["values"][0][1].as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn tail_backfills_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), "[limits]\nmax_concurrent_tail_requests = 2\ndiscover_service_name = []\ndiscover_log_levels = false\n").await;
    push(&s.base, "acme", "app", &["old 1", "old 2 error"]).await;
    let mut ws = connect(&s.base, "acme", r#"{job="app"} |= "error""#, "").await;
    assert_eq!(lines(&mut ws, 1, Duration::from_secs(5)).await, ["old 2 error"]);

    push(&s.base, "acme", "app", &["new error", "new ok"]).await;
    push(&s.base, "globex", "app", &["other tenant error"]).await;
    push(&s.base, "acme", "other", &["other stream error"]).await;
    let t = std::time::Instant::now();
    assert_eq!(lines(&mut ws, 1, Duration::from_secs(2)).await, ["new error"]);
    assert!(t.elapsed() < Duration::from_secs(2));

    // Two tails per tenant here: the third is closed with Loki's message.
    let _second = connect(&s.base, "acme", r#"{job="app"}"#, "").await;
    let mut third = connect(&s.base, "acme", r#"{job="app"}"#, "").await;
    loop {
        match third.next().await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1011);
                assert_eq!(f.reason.as_str(), "max concurrent tail requests limit exceeded, count > limit (3 > 2)");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    ws.close(None).await.unwrap();

    // Bad parameters are refused before the upgrade, with Loki's message.
    let url = format!("{}/loki/api/v1/tail?query={}&delay_for=6", s.base.replace("http://", "ws://"), urlencode(r#"{job="app"}"#));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            assert_eq!(String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()), "delay_for can't be greater than 5");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    s.server.shutdown().await.unwrap();
}
