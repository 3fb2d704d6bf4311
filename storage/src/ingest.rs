//! The ingest policy: which parts of a push are stored, and what the client is told about
//! the rest, with Loki's rules and messages.
//!
//! Loki checks a push in two places, and silt keeps both steps and their order:
//! 1. [`validate`] (Loki's distributor): per stream its labels, per entry its age, size and
//!    structured metadata. Failures drop that stream or entry; the rest is stored and the
//!    client gets 400 listing the failures ([`PushOutcome::invalid_message`]).
//! 2. The tenant's ingestion rate over what passed: all or nothing, 429.
//! 3. [`admit`] (Loki's ingester): the active stream limit, the per-stream rate and the
//!    out-of-order window. A failing stream is dropped whole (rate, limit) or entry by entry
//!    (too far behind), and the answer is that stream's error (429 or 400).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::labels::Labels;
use crate::limits::{IngestLimits, TokenBucket};
use crate::push::PushRequest;

/// What a push stored, and why the rest was not.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushOutcome {
    pub accepted: usize,
    pub rejected: usize,
    /// Validation failures: each distinct message with how often it occurred, in order of
    /// first occurrence.
    pub invalid: Vec<(String, usize)>,
    /// A refusal that decides the answer (rate limits, stream limit, too far behind).
    pub refused: Option<Refusal>,
    /// Lines and bytes dropped, by Loki's discard reason (for metrics).
    pub discarded: BTreeMap<&'static str, (u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The tenant's ingestion rate: the whole push was refused.
    RateLimited,
    /// A new stream beyond the active stream limit.
    StreamLimit,
    /// A stream over its own rate.
    StreamRateLimited,
    /// Entries older than the out-of-order window allows.
    TooFarBehind,
}

impl RefusalKind {
    /// Whether the client should retry later (HTTP 429) rather than fix the request (400).
    pub fn is_rate_limit(self) -> bool {
        !matches!(self, RefusalKind::TooFarBehind)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

impl PushOutcome {
    fn invalid(&mut self, message: String) {
        match self.invalid.iter_mut().find(|(m, _)| *m == message) {
            Some((_, n)) => *n += 1,
            None => self.invalid.push((message, 1)),
        }
    }

    fn discard(&mut self, reason: &'static str, lines: u64, bytes: u64) {
        let d = self.discarded.entry(reason).or_default();
        d.0 += lines;
        d.1 += bytes;
        self.rejected += lines as usize;
    }

    /// Loki's grouped validation message: `N errors like: <message>` per distinct message,
    /// joined by `; ` (a single message that occurred once stands alone).
    pub fn invalid_message(&self) -> Option<String> {
        if self.invalid.is_empty() {
            return None;
        }
        let alone = self.invalid.len() == 1 && self.invalid[0].1 == 1;
        let parts: Vec<String> = self.invalid.iter().map(|(m, n)| if alone { m.clone() } else { format!("{n} errors like: {m}") }).collect();
        Some(parts.join("; "))
    }
}

/// Bytes an entry costs against rate limits: the line and its structured metadata, except
/// the `detected_level` silt (like Loki) adds itself.
pub fn entry_cost(line: &str, metadata: &[(String, String)]) -> u64 {
    (line.len() + metadata_size(metadata)) as u64
}

fn metadata_size(metadata: &[(String, String)]) -> usize {
    metadata.iter().filter(|(n, _)| n != "detected_level").map(|(n, v)| n.len() + v.len()).sum()
}

/// Seconds-precision RFC3339, as Go's `time.RFC3339` prints in Loki's messages.
fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), 0).map_or_else(|| ns.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    let frac = ns.rem_euclid(1_000_000_000);
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac != 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Cuts `line` to `max` bytes on a character boundary.
fn truncate(line: &mut String, max: usize) {
    let mut cut = max;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
}

/// Step 1: drops the streams and entries that break the tenant's validation limits.
pub(crate) fn validate(req: &mut PushRequest, limits: &IngestLimits, now_ns: i64, out: &mut PushOutcome) {
    let oldest = now_ns.saturating_sub(limits.reject_old_samples_max_age.as_nanos().min(i64::MAX as u128) as i64);
    let newest = now_ns.saturating_add(limits.creation_grace_period.as_nanos().min(i64::MAX as u128) as i64);
    req.streams.retain_mut(|s| {
        if s.entries.is_empty() {
            return false;
        }
        if limits.max_line_size_truncate && limits.max_line_size > 0 {
            for e in &mut s.entries {
                if e.line.len() > limits.max_line_size {
                    truncate(&mut e.line, limits.max_line_size);
                }
            }
        }
        let labels = std::mem::take(&mut s.labels).without_empty_values();
        if let Err(e) = labels.validate(&limits.labels) {
            let bytes = s.entries.iter().map(|e| entry_cost(&e.line, &e.metadata)).sum();
            out.discard(e.reason, s.entries.len() as u64, bytes);
            out.invalid(e.message);
            return false;
        }
        s.labels = labels;
        let labels = &s.labels;
        s.entries.retain(|e| {
            let error = if limits.reject_old_samples && e.ts < oldest {
                Some(("greater_than_max_sample_age", format!("entry for stream '{labels}' has timestamp too old: {}, oldest acceptable timestamp is: {}", rfc3339(e.ts), rfc3339(oldest))))
            } else if e.ts > newest {
                Some(("too_far_in_future", format!("entry for stream '{labels}' has timestamp too new: {}", rfc3339(e.ts))))
            } else if limits.max_line_size > 0 && e.line.len() > limits.max_line_size {
                Some((
                    "line_too_long",
                    format!(
                        "Max entry size '{}' bytes exceeded for stream '{labels}' while adding an entry with length '{}' bytes",
                        limits.max_line_size,
                        e.line.len()
                    ),
                ))
            } else if !e.metadata.is_empty() {
                let size = metadata_size(&e.metadata);
                if !limits.allow_structured_metadata {
                    Some(("disallowed_structured_metadata", format!("stream '{labels}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it.")))
                } else if limits.max_structured_metadata_size > 0 && size > limits.max_structured_metadata_size {
                    Some((
                        "structured_metadata_too_large",
                        format!("stream '{labels}' has structured metadata too large: '{size}' bytes, limit: '{}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.", limits.max_structured_metadata_size),
                    ))
                } else if limits.max_structured_metadata_entries_count > 0 && e.metadata.len() > limits.max_structured_metadata_entries_count {
                    Some((
                        "structured_metadata_too_many",
                        format!(
                            "stream '{labels}' has too many structured metadata labels: '{}', limit: '{}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.",
                            e.metadata.len(),
                            limits.max_structured_metadata_entries_count
                        ),
                    ))
                } else {
                    None
                }
            } else {
                None
            };
            match error {
                Some((reason, message)) => {
                    out.discard(reason, 1, entry_cost(&e.line, &e.metadata));
                    out.invalid(message);
                    false
                }
                None => true,
            }
        });
        !s.entries.is_empty()
    });
}

/// Step 2: the tenant's ingestion rate over what passed validation; all or nothing.
pub(crate) fn check_rate(req: &mut PushRequest, tenant: &str, limits: &IngestLimits, bucket: &mut TokenBucket, out: &mut PushOutcome) -> bool {
    let lines = req.entry_count() as u64;
    let bytes: u64 = req.streams.iter().flat_map(|s| &s.entries).map(|e| entry_cost(&e.line, &e.metadata)).sum();
    if bucket.allow(bytes as f64, limits.ingestion_rate_bytes, limits.ingestion_burst_bytes, Instant::now()) {
        return true;
    }
    out.discard("rate_limited", lines, bytes);
    // Loki answers only the rate limit; validation failures are not reported.
    out.invalid.clear();
    out.refused = Some(Refusal {
        kind: RefusalKind::RateLimited,
        message: format!(
            "Ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
            limits.ingestion_rate_bytes as i64
        ),
    });
    req.streams.clear();
    false
}

/// Per-tenant state of the ingester checks: active streams and their rate buckets.
#[derive(Debug, Default)]
pub(crate) struct StreamActivity {
    streams: HashMap<u64, ActiveStream>,
    pruned: Option<Instant>,
}

#[derive(Debug)]
struct ActiveStream {
    last_push: Instant,
    bucket: TokenBucket,
}

/// A stream counts as active until it has received nothing for this long (Loki keeps a
/// stream in its ingester until its chunks are flushed after `chunk_idle_period`, 30m).
const ACTIVE_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 60);

impl StreamActivity {
    fn prune(&mut self, now: Instant) {
        if self.pruned.is_some_and(|p| now.duration_since(p) < std::time::Duration::from_secs(60)) {
            return;
        }
        self.pruned = Some(now);
        self.streams.retain(|_, s| now.duration_since(s.last_push) < ACTIVE_FOR);
    }

    /// Active streams of the tenant (for metrics).
    pub fn active(&self) -> usize {
        self.streams.len()
    }
}

/// Step 3: the active stream limit, the per-stream rate and the out-of-order window
/// (`newest`: each stream's newest stored timestamp; `window` in ns).
pub(crate) fn admit(
    req: &mut PushRequest,
    tenant: &str,
    limits: &IngestLimits,
    activity: &mut StreamActivity,
    newest: &HashMap<u64, i64>,
    window: i64,
    out: &mut PushOutcome,
) {
    let now = Instant::now();
    activity.prune(now);
    req.streams.retain_mut(|s| {
        let fp = s.labels.fingerprint();
        let total = s.entries.len();
        let bytes: u64 = s.entries.iter().map(|e| entry_cost(&e.line, &e.metadata)).sum();
        if !activity.streams.contains_key(&fp) {
            if limits.max_streams > 0 && activity.streams.len() >= limits.max_streams {
                out.discard("stream_limit", total as u64, bytes);
                out.refused = Some(Refusal {
                    kind: RefusalKind::StreamLimit,
                    message: format!(
                        "Maximum active stream limit exceeded when trying to create stream {}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}'",
                        s.labels
                    ),
                });
                return false;
            }
            activity.streams.insert(fp, ActiveStream { last_push: now, bucket: TokenBucket::new(limits.per_stream_burst_bytes) });
        }
        let active = activity.streams.get_mut(&fp).expect("inserted above");
        active.last_push = now;
        // Loki (with stream sharding, its default) limits a stream's push as a whole.
        if !active.bucket.allow(bytes as f64, limits.per_stream_rate_bytes, limits.per_stream_burst_bytes, now) {
            out.discard("per_stream_rate_limit", total as u64, bytes);
            let reason = format!(
                "Per stream rate limit exceeded (limit: {}/sec) while attempting to ingest for stream '{}' totaling {}, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased",
                go_byte_size(limits.per_stream_rate_bytes),
                s.labels,
                go_byte_size(bytes as f64)
            );
            let failed: Vec<i64> = s.entries.iter().map(|e| e.ts).collect();
            out.refused = Some(Refusal { kind: RefusalKind::StreamRateLimited, message: stream_error(tenant, &s.labels, &failed, total, &reason) });
            return false;
        }
        let mut stream_newest = newest.get(&fp).copied().unwrap_or(i64::MIN);
        let mut failed = Vec::new();
        let mut last_reason = String::new();
        s.entries.retain(|e| {
            let oldest_ok = stream_newest.saturating_sub(window);
            if e.ts < oldest_ok {
                last_reason = format!("entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}", rfc3339(e.ts), rfc3339(oldest_ok));
                failed.push(e.ts);
                return false;
            }
            stream_newest = stream_newest.max(e.ts);
            true
        });
        if !failed.is_empty() {
            let failed_bytes = bytes - s.entries.iter().map(|e| entry_cost(&e.line, &e.metadata)).sum::<u64>();
            out.discard("too_far_behind", failed.len() as u64, failed_bytes);
            out.refused = Some(Refusal { kind: RefusalKind::TooFarBehind, message: stream_error(tenant, &s.labels, &failed, total, &last_reason) });
        }
        !s.entries.is_empty()
    });
}

/// Loki's ingester error for one stream: up to 10 failed entries, then the totals.
fn stream_error(tenant: &str, labels: &Labels, failed: &[i64], total: usize, reason: &str) -> String {
    let mut s = String::new();
    for ts in failed.iter().take(10) {
        s.push_str(&format!("entry with timestamp {} ignored, reason: '{reason}',\n", go_time(*ts)));
    }
    s.push_str(&format!("user '{tenant}', total ignored: {} out of {total} for stream: {labels}", failed.len()));
    s
}

/// A byte count as Go's `datasize.ByteSize.String()` prints it: the largest unit that
/// divides it exactly (`3MB`, `100B`).
fn go_byte_size(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "+Inf".into();
    }
    let b = bytes as u64;
    if b == 0 {
        return "0B".into();
    }
    for (unit, size) in [("EB", 1u64 << 60), ("PB", 1 << 50), ("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
        if b % size == 0 {
            return format!("{}{unit}", b / size);
        }
    }
    format!("{b}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_messages_as_loki_prints_them() {
        let mut o = PushOutcome::default();
        assert_eq!(o.invalid_message(), None);
        o.invalid("a".into());
        assert_eq!(o.invalid_message().unwrap(), "a");
        o.invalid("a".into());
        assert_eq!(o.invalid_message().unwrap(), "2 errors like: a");
        o.invalid("b".into());
        assert_eq!(o.invalid_message().unwrap(), "2 errors like: a; 1 errors like: b");
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_byte_size(3.0 * 1048576.0), "3MB");
        assert_eq!(go_byte_size(100.0), "100B");
        assert_eq!(go_byte_size(1536.0), "1536B");
        assert_eq!(go_time(1_704_164_645_123_000_000), "2024-01-02 03:04:05.123 +0000 UTC");
        assert_eq!(go_time(1_704_164_645_000_000_000), "2024-01-02 03:04:05 +0000 UTC");
        assert_eq!(rfc3339(1_704_164_645_123_000_000), "2024-01-02T03:04:05Z");
    }
}
