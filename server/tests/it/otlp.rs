//! OTLP/HTTP logs: protobuf and JSON bodies mapped as Loki maps them, and a push from the
//! OpenTelemetry Python SDK's own exporter (skipped with a message when it is missing,
//! required in CI).

use std::process::Command;

use prost::Message;
use serde_json::{json, Value};
use silt_server::otlp::{AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord, Resource, ResourceLogs, ScopeLogs, Value as V};

use crate::{client, TestServer};

const CONFIG: &str = "[limits]\nreject_old_samples = false\nmax_query_length = \"0\"\n";

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(V::String(v.into())) }) }
}

async fn query(base: &str, q: &str) -> Value {
    let r = client()
        .get(format!("{base}/loki/api/v1/query_range"))
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&[("query", q), ("start", "1700000000000000000"), ("end", "1900000000000000000")])
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

#[tokio::test]
async fn otlp_protobuf_and_json_are_mapped_like_loki() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), CONFIG).await;
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource { attributes: vec![kv("service.name", "checkout"), kv("k8s.pod.name", "co-1"), kv("host.arch", "amd64")] }),
            scope_logs: vec![ScopeLogs {
                scope: Some(silt_server::otlp::InstrumentationScope { name: "app.logger".into(), version: "1.0".into(), ..Default::default() }),
                log_records: vec![LogRecord {
                    time_unix_nano: 1_768_518_000_000_000_000,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(AnyValue { value: Some(V::String("payment failed".into())) }),
                    attributes: vec![kv("http.method", "POST")],
                    trace_id: vec![0xab; 16],
                    span_id: vec![0xcd; 8],
                    ..Default::default()
                }],
            }],
        }],
    };
    let r = client().post(s.url("/otlp/v1/logs")).header("content-type", "application/x-protobuf").body(req.encode_to_vec()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());

    let body = query(&s.base, r#"{service_name="checkout"}"#).await;
    let stream = &body["data"]["result"][0];
    assert_eq!(stream["stream"], json!({"k8s_pod_name": "co-1", "service_name": "checkout"}));
    assert_eq!(stream["values"][0][1], "payment failed");
    assert_eq!(
        stream["values"][0][2]["structuredMetadata"],
        json!({"http_method": "POST", "severity_number": "17", "severity_text": "ERROR", "trace_id": "ab".repeat(16), "span_id": "cd".repeat(8),
               "host_arch": "amd64", "scope_name": "app.logger", "scope_version": "1.0", "detected_level": "error"})
    );

    // OTLP/JSON: camelCase, 64-bit numbers as strings, ids in hex, a map body as JSON.
    let j = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "k8s.container.name", "value": {"stringValue": "web"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": "1768518000000000001", "severityNumber": "SEVERITY_NUMBER_WARN",
            "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "slow <db>"}}, {"key": "ms", "value": {"intValue": "250"}}]}}}]}]}]});
    let r = client().post(s.url("/otlp/v1/logs")).header("content-type", "application/json").body(j.to_string()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());
    let body = query(&s.base, r#"{k8s_container_name="web"}"#).await;
    let stream = &body["data"]["result"][0];
    assert_eq!(stream["stream"], json!({"k8s_container_name": "web", "service_name": "web"}), "service_name discovered from the container");
    assert_eq!(stream["values"][0][1], r#"{"ms":250,"msg":"slow \u003cdb\u003e"}"#);
    assert_eq!(stream["values"][0][2]["structuredMetadata"]["detected_level"], "warn");

    // Errors: Loki's messages in a protobuf google.rpc.Status.
    let r = client().post(s.url("/otlp/v1/logs")).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let bytes = r.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("content type: text/plain is not supported"));
    let r = client().post(s.url("/otlp/v1/logs")).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    s.server.shutdown().await.unwrap();
}

const SCRIPT: &str = r#"
import sys, logging
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk.resources import Resource
provider = LoggerProvider(resource=Resource.create({"service.name": "py-otel", "deployment.environment": "test"}))
provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=sys.argv[1])))
log = logging.getLogger("silt-otel")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(logger_provider=provider))
for i in range(3):
    log.warning("hello otel %d", i)
provider.shutdown()
print("ok")
"#;

#[tokio::test]
async fn opentelemetry_python_sdk_push() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import opentelemetry.exporter.otlp.proto.http._log_exporter, opentelemetry.sdk._logs"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sdk {
        if std::env::var_os("CI").is_some() {
            panic!("the OpenTelemetry Python SDK is required in CI (.ci/run installs it)");
        }
        eprintln!("SKIPPED opentelemetry_python_sdk_push: pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), CONFIG).await;
    let url = s.url("/otlp/v1/logs");
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", SCRIPT, &url]).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = query(&s.base, r#"{service_name="py-otel"}"#).await;
    let streams = body["data"]["result"].as_array().unwrap();
    let stream = &streams[0]["stream"];
    assert_eq!((&stream["service_name"], &stream["deployment_environment"]), (&json!("py-otel"), &json!("test")));
    assert!(stream["service_instance_id"].is_string(), "the SDK's service.instance.id is on Loki's label list: {stream}");
    let mut lines: Vec<&str> = streams.iter().flat_map(|s| s["values"].as_array().unwrap()).map(|v| v[1].as_str().unwrap()).collect();
    lines.sort();
    assert_eq!(lines, ["hello otel 0", "hello otel 1", "hello otel 2"]);
    assert_eq!(streams[0]["values"][0][2]["structuredMetadata"]["severity_text"], "WARN");
    s.server.shutdown().await.unwrap();
}
