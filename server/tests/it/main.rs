//! Integration tests: a real server on a loopback port over a temp data directory,
//! driven over HTTP. One test binary for the crate (see `[[test]]` in Cargo.toml).

mod api;
mod auth;
mod drilldown;
mod ingest;
mod maintenance;
mod memory;
mod otlp;
mod python_client;
mod tail;

use std::path::Path;

use serde_json::Value;
use silt_server::{FileConfig, Server, ServerConfig};

pub struct TestServer {
    pub server: Server,
    pub base: String,
}

/// Limits for tests that push fixed, old timestamps and expect exactly the labels they
/// pushed: old samples kept, no service-name or level discovery.
pub const TEST_CONFIG: &str = "[limits]\nreject_old_samples = false\ndiscover_service_name = []\ndiscover_log_levels = false\n";

impl TestServer {
    pub async fn start(dir: &Path) -> TestServer {
        Self::start_with(dir, TEST_CONFIG).await
    }

    /// A server with `config` (TOML text; "" for every default).
    pub async fn start_with(dir: &Path, config: &str) -> TestServer {
        let file: FileConfig = toml::from_str(config).expect("test config parses");
        let cfg = ServerConfig::resolve(file, Some(dir.to_path_buf()), Some("127.0.0.1:0".into())).unwrap();
        let server = Server::start(cfg).await.expect("server starts");
        let base = format!("http://{}", server.addr());
        TestServer { server, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// GETs a Loki endpoint for a tenant; returns the status and the body (JSON when it is).
pub async fn get(base: &str, path: &str, tenant: Option<&str>, params: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client().get(format!("{base}{path}")).query(params);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `[(labels as JSON object string, [(ts, line)])]` of a streams answer, sorted.
pub fn streams(body: &Value) -> Vec<(String, Vec<(String, String)>)> {
    assert_eq!(body["data"]["resultType"], "streams", "{body}");
    let mut out: Vec<_> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v[0].as_str().unwrap().to_string(), v[1].as_str().unwrap().to_string()))
                .collect();
            (s["stream"].to_string(), values)
        })
        .collect();
    out.sort();
    out
}
