//! `POST /otlp/v1/logs`: OpenTelemetry logs (OTLP/HTTP, protobuf or JSON), mapped to
//! streams exactly as Loki maps them:
//!
//! * resource attributes on Loki's default list become stream labels (names normalised:
//!   every character other than `[A-Za-z0-9]` becomes `_`); `service.name` gives
//!   `service_name`, else the first discovered attribute, else `unknown_service`;
//! * every other resource attribute, the scope's attributes, name and version, and each
//!   record's attributes, severity, trace and span ids become structured metadata;
//! * the body becomes the line (strings as they are, other values as Loki prints them);
//!   the timestamp is the record's, else its observed time, else now.
//!
//! Then the push goes through the same limits as a Loki push. Errors are answered as a
//! protobuf `google.rpc.Status`, as Loki does for OTLP.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde::Deserialize;
use silt_storage::{Labels, PushEntry, PushRequest, PushStream};

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;

/// Loki's `default_resource_attributes_as_index_labels`.
pub const DEFAULT_INDEX_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

// ---- The OTLP protobuf messages (opentelemetry-proto logs/v1, common/v1, resource/v1) ----

#[derive(Clone, PartialEq, Message)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}
#[derive(Clone, PartialEq, Message)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
}
#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}
#[derive(Clone, PartialEq, Message)]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
}
#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}
#[derive(Clone, PartialEq, Message)]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    #[prost(string, tag = "3")]
    pub severity_text: String,
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "7")]
    pub dropped_attributes_count: u32,
    #[prost(fixed32, tag = "8")]
    pub flags: u32,
    #[prost(bytes = "vec", tag = "9")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "12")]
    pub event_name: String,
}
#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}
#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(message, tag = "6")]
    Kvlist(KeyValueList),
    #[prost(bytes, tag = "7")]
    Bytes(Vec<u8>),
}
#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}
#[derive(Clone, PartialEq, Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `google.rpc.Status`, the body of OTLP error answers.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answered the OTLP way: protobuf `Status`, and 503 instead of 500.
fn otlp_error(e: ApiError) -> Response {
    let status = if e.status == StatusCode::INTERNAL_SERVER_ERROR { StatusCode::SERVICE_UNAVAILABLE } else { e.status };
    let body = Status { code: 0, message: e.message }.encode_to_vec();
    (status, [("content-type", "application/octet-stream")], body).into_response()
}

pub async fn logs(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(state, headers, body).await {
        Ok(s) => s.into_response(),
        Err(e) => otlp_error(e),
    }
}

async fn handle(state: AppState, headers: HeaderMap, body: Bytes) -> Result<StatusCode, ApiError> {
    let tenant = state.auth.tenant(&headers, Access::Write)?;
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let encoding = header("content-encoding").to_ascii_lowercase();
    let decoded;
    let raw: &[u8] = match encoding.as_str() {
        "" | "identity" => &body,
        "gzip" => {
            decoded = crate::push::read_limited(flate2::read::MultiGzDecoder::new(&body[..]), "gzip")?;
            &decoded
        }
        "zstd" => {
            let d = zstd::stream::read::Decoder::new(&body[..]).map_err(|e| ApiError::bad_request(format!("failed to decompress zstd body: {e}")))?;
            decoded = crate::push::read_limited(d, "zstd")?;
            &decoded
        }
        other => return Err(ApiError::bad_request(format!("unsupported content encoding {other}: only gzip and zstd are supported"))),
    };
    let ctype = header("content-type");
    let req = match ctype.as_str() {
        "application/x-protobuf" => ExportLogsServiceRequest::decode(raw).map_err(|e| ApiError::bad_request(format!("failed to decode OTLP protobuf: {e}")))?,
        "application/json" => from_json(raw)?,
        other => return Err(ApiError::bad_request(format!("content type: {other} is not supported"))),
    };
    let limits = state.limits.get(&tenant);
    let mut push = to_push(req, &limits.discover_service_name, crate::params::now_ns())?;
    if push.streams.iter().all(|s| s.entries.is_empty()) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "error at least one valid stream is required for ingestion"));
    }
    if limits.discover_log_levels && limits.ingest.allow_structured_metadata {
        for s in &mut push.streams {
            for e in &mut s.entries {
                crate::discover::add_detected_level(&s.labels, &mut e.metadata, &e.line, &limits.log_level_fields);
            }
        }
    }
    let lines = push.entry_count() as u64;
    let bytes: u64 = push.streams.iter().flat_map(|s| &s.entries).map(|e| silt_storage::ingest::entry_cost(&e.line, &e.metadata)).sum();
    let outcome = state.store.push(&tenant, push, &limits.ingest).await?;
    state.metrics.observe_push(tenant.as_str(), lines, bytes, &outcome);
    crate::push::answer(&outcome)
}

/// Loki's (vendored otlptranslator) label-name normalisation.
pub fn normalize(name: &str) -> Result<String, ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("symbolizer lookup: normalization for label name \"\" resulted in empty name"));
    }
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if out.as_bytes()[0].is_ascii_digit() {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out != name && out.bytes().all(|b| b == b'_') {
        return Err(ApiError::bad_request(format!("symbolizer lookup: normalization for label name {name:?} resulted in invalid name {out:?}")));
    }
    Ok(out)
}

/// An attribute as name/value pairs: maps flattened with `_`, names normalised.
fn flatten(key: &str, value: &Option<AnyValue>, prefix: &str, out: &mut Vec<(String, String)>) -> Result<(), ApiError> {
    let full = if prefix.is_empty() { key.to_string() } else { format!("{prefix}_{key}") };
    let name = normalize(&full)?;
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::Kvlist(kv)) => {
            for e in &kv.values {
                flatten(&e.key, &e.value, &name, out)?;
            }
        }
        v => out.push((name, as_string(v))),
    }
    Ok(())
}

/// pdata's `Value.AsString()`.
fn as_string(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Double(f)) => go_float(*f),
        Some(Value::Bytes(b)) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(b)
        }
        Some(v @ (Value::Array(_) | Value::Kvlist(_))) => go_json_string(&to_json(Some(v))),
    }
}

/// JSON as Go's `json.Marshal` writes it: `<`, `>` and `&` escaped.
fn go_json_string(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// ES6-style number formatting, as pdata prints doubles.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "json: unsupported value: NaN".into();
    }
    if f.is_infinite() {
        return format!("json: unsupported value: {}", if f > 0.0 { "+Inf" } else { "-Inf" });
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        // Rust writes `1e21` and `1e-7`; Go (after Loki's `e-09` → `e-9` rewrite) `1e+21`
        // and `1e-7`.
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    format!("{f}")
}

/// A map or array value as JSON (keys sorted, as Go's encoding/json does).
fn to_json(v: Option<&Value>) -> serde_json::Value {
    match v {
        None => serde_json::Value::Null,
        Some(Value::String(s)) => s.clone().into(),
        Some(Value::Bool(b)) => (*b).into(),
        Some(Value::Int(i)) => (*i).into(),
        Some(Value::Double(f)) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Value::Bytes(_)) => as_string(v).into(),
        Some(Value::Array(a)) => a.values.iter().map(|x| to_json(x.value.as_ref())).collect::<Vec<_>>().into(),
        Some(Value::Kvlist(kv)) => {
            let m: BTreeMap<String, serde_json::Value> = kv.values.iter().map(|e| (e.key.clone(), to_json(e.value.as_ref().and_then(|v| v.value.as_ref())))).collect();
            serde_json::Value::Object(m.into_iter().collect())
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Loki's mapping of an OTLP request to streams (see the module doc).
pub fn to_push(req: ExportLogsServiceRequest, discover: &[String], now: i64) -> Result<PushRequest, ApiError> {
    let mut streams: BTreeMap<Labels, Vec<PushEntry>> = BTreeMap::new();
    for rl in req.resource_logs {
        let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut resource_md: Vec<(String, String)> = Vec::new();
        let has_service_name = attrs.iter().any(|a| a.key == "service.name" && !as_string(a.value.as_ref().and_then(|v| v.value.as_ref())).is_empty());
        let mut service_name: Option<String> = None;
        for a in &attrs {
            let mut pairs = Vec::new();
            flatten(&a.key, &a.value, "", &mut pairs)?;
            if DEFAULT_INDEX_ATTRIBUTES.contains(&a.key.as_str()) {
                for (n, v) in pairs {
                    if !has_service_name && service_name.is_none() && discover.iter().any(|d| *d == n) {
                        service_name = Some(v.clone());
                    }
                    labels.retain(|(x, _)| *x != n);
                    labels.push((n, v));
                }
            } else {
                resource_md.extend(pairs);
            }
        }
        if !has_service_name && !discover.is_empty() {
            labels.retain(|(n, _)| n != "service_name");
            labels.push(("service_name".into(), service_name.unwrap_or_else(|| crate::discover::UNKNOWN_SERVICE.into())));
        }
        labels.retain(|(_, v)| !v.is_empty());
        let Ok(labels) = Labels::from_pairs(labels) else { continue };
        if labels.is_empty() {
            return Err(ApiError::bad_request("error at least one label pair is required per stream"));
        }
        for sl in rl.scope_logs {
            let mut scope_md = Vec::new();
            if let Some(scope) = &sl.scope {
                for a in &scope.attributes {
                    flatten(&a.key, &a.value, "", &mut scope_md)?;
                }
                if !scope.name.is_empty() {
                    scope_md.push(("scope_name".into(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_md.push(("scope_version".into(), scope.version.clone()));
                }
                if scope.dropped_attributes_count != 0 {
                    scope_md.push(("scope_dropped_attributes_count".into(), scope.dropped_attributes_count.to_string()));
                }
            }
            for r in sl.log_records {
                let mut md = Vec::new();
                for a in &r.attributes {
                    if a.key == "event_name" && !r.event_name.is_empty() {
                        continue;
                    }
                    flatten(&a.key, &a.value, "", &mut md)?;
                }
                if r.time_unix_nano != 0 && r.observed_time_unix_nano != 0 {
                    md.push(("observed_timestamp".into(), r.observed_time_unix_nano.to_string()));
                }
                if r.severity_number != 0 {
                    md.push(("severity_number".into(), r.severity_number.to_string()));
                }
                if !r.severity_text.is_empty() {
                    md.push(("severity_text".into(), r.severity_text.clone()));
                }
                if r.dropped_attributes_count != 0 {
                    md.push(("dropped_attributes_count".into(), r.dropped_attributes_count.to_string()));
                }
                if r.flags != 0 {
                    md.push(("flags".into(), r.flags.to_string()));
                }
                if r.trace_id.iter().any(|&b| b != 0) {
                    md.push(("trace_id".into(), hex(&r.trace_id)));
                }
                if r.span_id.iter().any(|&b| b != 0) {
                    md.push(("span_id".into(), hex(&r.span_id)));
                }
                if !r.event_name.is_empty() {
                    md.push(("event_name".into(), r.event_name.clone()));
                }
                md.extend(resource_md.iter().cloned());
                md.extend(scope_md.iter().cloned());
                let ts = if r.time_unix_nano != 0 {
                    r.time_unix_nano as i64
                } else if r.observed_time_unix_nano != 0 {
                    r.observed_time_unix_nano as i64
                } else {
                    now
                };
                let line = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                    v @ Some(Value::Array(_) | Value::Kvlist(_)) => go_json_string(&to_json(v)),
                    v => as_string(v),
                };
                streams.entry(labels.clone()).or_default().push(PushEntry { ts, line, metadata: md });
            }
        }
    }
    Ok(PushRequest { streams: streams.into_iter().map(|(labels, entries)| PushStream { labels, entries }).collect() })
}

// ---- OTLP/JSON: the same messages, camelCase, ids in hex, 64-bit numbers as strings ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JRequest {
    #[serde(default)]
    resource_logs: Vec<JResourceLogs>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JResourceLogs {
    resource: Option<JResource>,
    #[serde(default)]
    scope_logs: Vec<JScopeLogs>,
}
#[derive(Deserialize)]
struct JResource {
    #[serde(default)]
    attributes: Vec<JKeyValue>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JScopeLogs {
    scope: Option<JScope>,
    #[serde(default)]
    log_records: Vec<JLogRecord>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JScope {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    attributes: Vec<JKeyValue>,
    #[serde(default)]
    dropped_attributes_count: u32,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JLogRecord {
    #[serde(default)]
    time_unix_nano: JNum,
    #[serde(default)]
    observed_time_unix_nano: JNum,
    #[serde(default)]
    severity_number: JNum,
    #[serde(default)]
    severity_text: String,
    body: Option<JAnyValue>,
    #[serde(default)]
    attributes: Vec<JKeyValue>,
    #[serde(default)]
    dropped_attributes_count: u32,
    #[serde(default)]
    flags: u32,
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    span_id: String,
    #[serde(default)]
    event_name: String,
}
#[derive(Deserialize)]
struct JKeyValue {
    key: String,
    value: Option<JAnyValue>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JAnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<JNum>,
    double_value: Option<f64>,
    array_value: Option<JArray>,
    kvlist_value: Option<JKvList>,
    bytes_value: Option<String>,
}
#[derive(Deserialize)]
struct JArray {
    #[serde(default)]
    values: Vec<JAnyValue>,
}
#[derive(Deserialize)]
struct JKvList {
    #[serde(default)]
    values: Vec<JKeyValue>,
}

/// A 64-bit integer written as a JSON number or a decimal string (protobuf JSON), or a
/// severity written as its enum name.
#[derive(Default)]
struct JNum(i64);

impl<'de> Deserialize<'de> for JNum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)).map(JNum).ok_or_else(|| serde::de::Error::custom("not an integer")),
            serde_json::Value::String(s) => match s.parse::<u64>() {
                Ok(n) => Ok(JNum(n as i64)),
                Err(_) => s.parse::<i64>().map(JNum).or_else(|_| severity_by_name(&s).map(JNum).ok_or_else(|| serde::de::Error::custom(format!("invalid number {s:?}")))),
            },
            serde_json::Value::Null => Ok(JNum(0)),
            other => Err(serde::de::Error::custom(format!("invalid number {other}"))),
        }
    }
}

fn severity_by_name(s: &str) -> Option<i64> {
    const NAMES: &[&str] = &["TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3", "DEBUG4", "INFO", "INFO2", "INFO3", "INFO4", "WARN", "WARN2", "WARN3", "WARN4", "ERROR", "ERROR2", "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4"];
    let n = s.strip_prefix("SEVERITY_NUMBER_")?;
    if n == "UNSPECIFIED" {
        return Some(0);
    }
    NAMES.iter().position(|x| *x == n).map(|i| i as i64 + 1)
}

fn from_json(raw: &[u8]) -> Result<ExportLogsServiceRequest, ApiError> {
    let j: JRequest = serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("failed to decode OTLP JSON: {e}")))?;
    let kvs = |v: Vec<JKeyValue>| -> Result<Vec<KeyValue>, ApiError> { v.into_iter().map(kv).collect() };
    let unhex = |s: &str| -> Result<Vec<u8>, ApiError> {
        if s.len() % 2 != 0 {
            return Err(ApiError::bad_request(format!("invalid id {s:?}")));
        }
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ApiError::bad_request(format!("invalid id {s:?}")))).collect()
    };
    let mut out = ExportLogsServiceRequest::default();
    for rl in j.resource_logs {
        let mut scope_logs = Vec::new();
        for sl in rl.scope_logs {
            let scope = match sl.scope {
                Some(s) => Some(InstrumentationScope { name: s.name, version: s.version, attributes: kvs(s.attributes)?, dropped_attributes_count: s.dropped_attributes_count }),
                None => None,
            };
            let mut log_records = Vec::new();
            for r in sl.log_records {
                log_records.push(LogRecord {
                    time_unix_nano: r.time_unix_nano.0 as u64,
                    observed_time_unix_nano: r.observed_time_unix_nano.0 as u64,
                    severity_number: r.severity_number.0 as i32,
                    severity_text: r.severity_text,
                    body: r.body.map(any).transpose()?,
                    attributes: kvs(r.attributes)?,
                    dropped_attributes_count: r.dropped_attributes_count,
                    flags: r.flags,
                    trace_id: unhex(&r.trace_id)?,
                    span_id: unhex(&r.span_id)?,
                    event_name: r.event_name,
                });
            }
            scope_logs.push(ScopeLogs { scope, log_records });
        }
        let resource = match rl.resource {
            Some(r) => Some(Resource { attributes: kvs(r.attributes)? }),
            None => None,
        };
        out.resource_logs.push(ResourceLogs { resource, scope_logs });
    }
    Ok(out)
}

fn kv(k: JKeyValue) -> Result<KeyValue, ApiError> {
    Ok(KeyValue { key: k.key, value: k.value.map(any).transpose()? })
}

fn any(v: JAnyValue) -> Result<AnyValue, ApiError> {
    let value = if let Some(s) = v.string_value {
        Some(Value::String(s))
    } else if let Some(b) = v.bool_value {
        Some(Value::Bool(b))
    } else if let Some(i) = v.int_value {
        Some(Value::Int(i.0))
    } else if let Some(f) = v.double_value {
        Some(Value::Double(f))
    } else if let Some(a) = v.array_value {
        Some(Value::Array(ArrayValue { values: a.values.into_iter().map(any).collect::<Result<_, _>>()? }))
    } else if let Some(kv_list) = v.kvlist_value {
        Some(Value::Kvlist(KeyValueList { values: kv_list.values.into_iter().map(kv).collect::<Result<_, _>>()? }))
    } else if let Some(b) = v.bytes_value {
        use base64::Engine as _;
        Some(Value::Bytes(base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| ApiError::bad_request(format!("invalid bytesValue: {e}")))?))
    } else {
        None
    };
    Ok(AnyValue { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalised_as_loki() {
        assert_eq!(normalize("service.name").unwrap(), "service_name");
        assert_eq!(normalize("http-method").unwrap(), "http_method");
        assert_eq!(normalize("1abc").unwrap(), "key_1abc");
        assert_eq!(normalize("_foo").unwrap(), "key_foo");
        assert_eq!(normalize("__foo").unwrap(), "__foo");
        assert_eq!(normalize("a..b").unwrap(), "a__b");
        assert!(normalize("").is_err());
    }

    #[test]
    fn values_printed_as_pdata() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e-7), "1e-7");
        let kv = Value::Kvlist(KeyValueList {
            values: vec![
                KeyValue { key: "b".into(), value: Some(AnyValue { value: Some(Value::Int(1)) }) },
                KeyValue { key: "a".into(), value: Some(AnyValue { value: Some(Value::String("<x>".into())) }) },
            ],
        });
        assert_eq!(as_string(Some(&kv)), r#"{"a":"\u003cx\u003e","b":1}"#);
    }
}
