//! A push through the PyPI client `python-logging-loki`, as a Python service would send it.
//! Skipped, with a message, when Python or the package is missing (`.ci/run` installs it).

use std::process::Command;

use crate::{get, streams, TestServer};

const SCRIPT: &str = r#"
import logging, sys, logging_loki
handler = logging_loki.LokiHandler(url=sys.argv[1], tags={"application": "pytest"}, version="1")
log = logging.getLogger("silt-test")
log.setLevel(logging.INFO)
log.addHandler(handler)
for i in range(5):
    log.info("hello from python %d", i, extra={"tags": {"run": "it"}})
handler.close() if hasattr(handler, "close") else None
print("ok")
"#;

fn python_with_client() -> Option<String> {
    for py in ["python3", "python"] {
        let ok = Command::new(py).args(["-c", "import logging_loki"]).output().map(|o| o.status.success()).unwrap_or(false);
        if ok {
            return Some(py.to_string());
        }
    }
    None
}

#[tokio::test]
async fn python_logging_loki_push() {
    let Some(py) = python_with_client() else {
        if std::env::var_os("CI").is_some() {
            panic!("python-logging-loki is required in CI (.ci/run installs it)");
        }
        eprintln!("SKIPPED python_logging_loki_push: python3 with the python-logging-loki package not found (pip install python-logging-loki)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let url = s.url("/loki/api/v1/push");
    let out = tokio::task::spawn_blocking(move || Command::new(py).args(["-c", SCRIPT, &url]).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (st, body) = get(&s.base, "/loki/api/v1/query_range", None, &[("query", r#"{application="pytest"}"#), ("since", "5m")]).await;
    assert_eq!(st, 200, "{body}");
    let got = streams(&body);
    let lines: Vec<&str> = got.iter().flat_map(|s| s.1.iter().map(|e| e.1.as_str())).collect();
    assert_eq!(lines.len(), 5, "{body}");
    assert!(lines.contains(&"hello from python 4"));
    assert!(got[0].0.contains(r#""run":"it""#) && got[0].0.contains(r#""severity":"info""#), "{}", got[0].0);
    s.server.shutdown().await.unwrap();
}
