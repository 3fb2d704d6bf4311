//! `POST /loki/api/v1/push`: decodes JSON or snappy-compressed protobuf (optionally
//! gzip- or deflate-encoded), then hands the streams to the store. 204 once durable.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use silt_storage::{Labels, PushEntry, PushRequest, PushStream};

use crate::error::ApiError;
use crate::auth::Access;
use crate::AppState;

/// A decompressed push body may be at most this large (gzip/snappy bomb protection).
pub const MAX_DECODED_BYTES: usize = 256 << 20;

pub async fn push(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<StatusCode, ApiError> {
    push_inner(state, headers, body).await.map_err(ApiError::http_error)
}

async fn push_inner(state: AppState, headers: HeaderMap, body: Bytes) -> Result<StatusCode, ApiError> {
    let tenant = state.auth.tenant(&headers, Access::Write)?;
    let mut req = decode(&headers, &body)?;
    if req.streams.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let limits = state.limits.get(&tenant);
    crate::discover::apply(&mut req, limits);
    let lines = req.entry_count() as u64;
    let bytes: u64 = req.streams.iter().flat_map(|s| &s.entries).map(|e| silt_storage::ingest::entry_cost(&e.line, &e.metadata)).sum();
    let outcome = state.store.push(&tenant, req, &limits.ingest).await?;
    state.metrics.observe_push(tenant.as_str(), lines, bytes, &outcome);
    answer(&outcome)
}

/// Loki's answer to a push: a refusal (rate or stream limit: 429; too far behind: 400)
/// decides it, else validation failures (400; the valid part is stored), else 204.
pub fn answer(outcome: &silt_storage::PushOutcome) -> Result<StatusCode, ApiError> {
    if let Some(r) = &outcome.refused {
        let status = if r.kind.is_rate_limit() { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::BAD_REQUEST };
        return Err(ApiError::new(status, r.message.clone()));
    }
    if let Some(m) = outcome.invalid_message() {
        return Err(ApiError::bad_request(m));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Decodes a push body by its `Content-Encoding` and `Content-Type`, as Loki does:
/// `application/json` is JSON, anything else is snappy-compressed protobuf.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<PushRequest, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let encoding = header("content-encoding");
    let decoded;
    let body = match encoding.as_str() {
        "" | "identity" => body,
        "gzip" | "x-gzip" => {
            decoded = read_limited(flate2::read::MultiGzDecoder::new(body), "gzip")?;
            &decoded[..]
        }
        "deflate" => {
            decoded = read_limited(flate2::read::ZlibDecoder::new(body), "deflate")?;
            &decoded[..]
        }
        "snappy" => {
            decoded = snappy(body)?;
            &decoded[..]
        }
        other => return Err(ApiError::bad_request(format!("unsupported Content-Encoding: {other}"))),
    };
    let ctype = header("content-type");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if mime == "application/json" {
        decode_json(body)
    } else if encoding == "snappy" {
        decode_proto(body)
    } else {
        decode_proto(&snappy(body)?)
    }
}

pub(crate) fn read_limited(r: impl Read, what: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    r.take(MAX_DECODED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("failed to decompress {what} body: {e}")))?;
    if out.len() > MAX_DECODED_BYTES {
        return Err(ApiError::bad_request(format!("decompressed body exceeds the limit of {MAX_DECODED_BYTES} bytes")));
    }
    Ok(out)
}

fn snappy(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let len = snap::raw::decompress_len(body).map_err(|e| ApiError::bad_request(format!("failed to decompress snappy body: {e}")))?;
    if len > MAX_DECODED_BYTES {
        return Err(ApiError::bad_request(format!("decompressed body exceeds the limit of {MAX_DECODED_BYTES} bytes")));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| ApiError::bad_request(format!("failed to decompress snappy body: {e}")))
}

fn decode_proto(body: &[u8]) -> Result<PushRequest, ApiError> {
    let req: crate::proto::PushRequest =
        prost::Message::decode(body).map_err(|e| ApiError::bad_request(format!("failed to parse protobuf push request: {e}")))?;
    let mut streams = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let labels = Labels::parse(&s.labels)?;
        let entries = s
            .entries
            .into_iter()
            .map(|e| {
                let ts = e.timestamp.map(|t| t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos))).unwrap_or(0);
                let line = String::from_utf8(e.line).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                PushEntry { ts, line, metadata: e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect() }
            })
            .collect();
        streams.push(PushStream { labels, entries });
    }
    Ok(PushRequest { streams })
}

#[derive(Deserialize)]
struct JsonPush {
    #[serde(default)]
    streams: Vec<JsonStream>,
}

/// A stream in Loki's v1 JSON form (`stream` + `values`) or the legacy form that
/// `/api/prom/push` and older clients such as python-logging-loki send (`labels` +
/// `entries`). Both are accepted on both paths.
#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<JsonEntry>,
    #[serde(default)]
    labels: Option<String>,
    #[serde(default)]
    entries: Vec<LegacyEntry>,
}

#[derive(Deserialize)]
struct LegacyEntry {
    #[serde(alias = "timestamp")]
    ts: String,
    line: String,
}

/// `["<ns>", "<line>"]` or `["<ns>", "<line>", {"name": "value", ...}]`.
struct JsonEntry(PushEntry);

impl<'de> Deserialize<'de> for JsonEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array [\"<unix epoch in nanoseconds>\", \"<log line>\", {structured metadata}?]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry, A::Error> {
                let ts: TsValue = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let meta: Option<std::collections::BTreeMap<String, String>> = seq.next_element()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JsonEntry(PushEntry { ts: ts.0, line, metadata: meta.unwrap_or_default().into_iter().collect() }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A timestamp in nanoseconds, as a string (what Loki documents) or a JSON integer.
struct TsValue(i64);

impl<'de> Deserialize<'de> for TsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TsValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a timestamp in nanoseconds since the Unix epoch")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TsValue, E> {
                v.parse::<i64>().map(TsValue).map_err(|_| E::custom(format!("invalid timestamp {v:?}: expected nanoseconds since the Unix epoch")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TsValue, E> {
                Ok(TsValue(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TsValue, E> {
                i64::try_from(v).map(TsValue).map_err(|_| E::custom("timestamp out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

fn decode_json(body: &[u8]) -> Result<PushRequest, ApiError> {
    let p: JsonPush = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("failed to parse JSON push request: {e}")))?;
    let mut streams = Vec::with_capacity(p.streams.len());
    for s in p.streams {
        let labels = match &s.labels {
            Some(text) => Labels::parse(text)?,
            None => Labels::from_pairs(s.stream)?,
        };
        let mut entries: Vec<PushEntry> = s.values.into_iter().map(|e| e.0).collect();
        for e in s.entries {
            let ts = chrono::DateTime::parse_from_rfc3339(&e.ts)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .ok_or_else(|| ApiError::bad_request(format!("invalid timestamp {:?}: expected RFC3339", e.ts)))?;
            entries.push(PushEntry { ts, line: e.line, metadata: Vec::new() });
        }
        streams.push(PushStream { labels, entries });
    }
    Ok(PushRequest { streams })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str, ce: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(ct).unwrap());
        if !ce.is_empty() {
            h.insert("content-encoding", HeaderValue::from_str(ce).unwrap());
        }
        h
    }

    #[test]
    fn json_with_metadata_and_numeric_ts() {
        let body = br#"{"streams":[{"stream":{"job":"a"},"values":[["1","x"],[2,"y",{"trace_id":"t"}]]}]}"#;
        let r = decode(&headers("application/json", ""), body).unwrap();
        let e = &r.streams[0].entries;
        assert_eq!((e[0].ts, e[0].line.as_str()), (1, "x"));
        assert_eq!(e[1].metadata, vec![("trace_id".to_string(), "t".to_string())]);
    }

    #[test]
    fn legacy_json_form() {
        let body = br#"{"streams":[{"labels":"{app=\"x\"}","entries":[{"ts":"2026-01-15T23:00:00.5Z","line":"l"}]}]}"#;
        let r = decode(&headers("application/json", ""), body).unwrap();
        assert_eq!(r.streams[0].labels.to_string(), r#"{app="x"}"#);
        assert_eq!(r.streams[0].entries[0].ts, 1_768_518_000_500_000_000);
    }

    #[test]
    fn protobuf_snappy_and_gzip_json() {
        use prost::Message;
        let msg = crate::proto::PushRequest {
            streams: vec![crate::proto::StreamAdapter {
                labels: r#"{job="p", env="x"}"#.into(),
                entries: vec![crate::proto::EntryAdapter {
                    timestamp: Some(crate::proto::Timestamp { seconds: 3, nanos: 4 }),
                    line: b"hello".to_vec(),
                    structured_metadata: vec![],
                }],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new().compress_vec(&msg.encode_to_vec()).unwrap();
        let r = decode(&headers("application/x-protobuf", ""), &body).unwrap();
        assert_eq!(r.streams[0].labels.to_string(), r#"{env="x", job="p"}"#);
        assert_eq!(r.streams[0].entries[0].ts, 3_000_000_004);

        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"streams":[{"stream":{"a":"b"},"values":[["5","z"]]}]}"#).unwrap();
        let r = decode(&headers("application/json", "gzip"), &gz.finish().unwrap()).unwrap();
        assert_eq!(r.streams[0].entries[0].ts, 5);

        // Like Go's gzip reader, every member is read: a body split in two members
        // decodes, and garbage after a member is an error rather than ignored.
        let member = |b: &[u8]| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(b).unwrap();
            gz.finish().unwrap()
        };
        let mut two = member(br#"{"streams":[{"stream":{"a":"b"},"#);
        two.extend(member(br#""values":[["6","z"]]}]}"#));
        assert_eq!(decode(&headers("application/json", "gzip"), &two).unwrap().streams[0].entries[0].ts, 6);
        let mut trailing = member(br#"{"streams":[]}"#);
        trailing.extend_from_slice(b"garbage");
        assert!(decode(&headers("application/json", "gzip"), &trailing).is_err());
    }

    #[test]
    fn malformed_bodies_are_400() {
        for (ct, body) in [
            ("application/json", &b"{"[..]),
            ("application/json", br#"{"streams":[{"stream":{"a":"b"},"values":[["x","y"]]}]}"#),
            ("application/json", br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#),
            ("application/x-protobuf", b"\xff\xff\xff"),
        ] {
            let e = decode(&headers(ct, ""), body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{:?}", e.message);
        }
        let e = decode(&headers("application/json", "gzip"), b"not gzip").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn gzip_bomb_is_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(MAX_DECODED_BYTES >> 20) + 1 {
            gz.write_all(&zeros).unwrap();
        }
        let e = decode(&headers("application/json", "gzip"), &gz.finish().unwrap()).unwrap_err();
        assert!(e.message.contains("exceeds the limit"), "{}", e.message);
    }
}
