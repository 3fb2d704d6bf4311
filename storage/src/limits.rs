//! Per-tenant ingest limits, with Loki's names and defaults (`limits_config`), and the
//! token bucket that enforces ingestion rates.
//!
//! The store applies them in Loki's order: validation of each stream and entry (what
//! Loki's distributor checks), then the tenant's ingestion rate over what passed, then the
//! per-stream checks Loki's ingester makes (active stream limit, per-stream rate, the
//! out-of-order window).

use std::time::{Duration, Instant};

use crate::labels::LabelLimits;

/// What a push must satisfy. `0` disables a size or count limit, as in Loki.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestLimits {
    pub labels: LabelLimits,
    /// Longest accepted line in bytes (`max_line_size`, 256KB).
    pub max_line_size: usize,
    /// Cut longer lines to `max_line_size` instead of rejecting them.
    pub max_line_size_truncate: bool,
    pub reject_old_samples: bool,
    /// Entries older than now minus this are rejected (`reject_old_samples_max_age`, 1w).
    pub reject_old_samples_max_age: Duration,
    /// Entries newer than now plus this are rejected (`creation_grace_period`, 10m).
    pub creation_grace_period: Duration,
    pub allow_structured_metadata: bool,
    /// Bytes of names and values per entry (`max_structured_metadata_size`, 64KB).
    pub max_structured_metadata_size: usize,
    pub max_structured_metadata_entries_count: usize,
    /// Bytes per second of lines and structured metadata (`ingestion_rate_mb`, 4 MiB).
    pub ingestion_rate_bytes: f64,
    /// The bucket size (`ingestion_burst_size_mb`, 6 MiB).
    pub ingestion_burst_bytes: f64,
    /// Streams that may be active at once (`max_global_streams_per_user`, 5000).
    pub max_streams: usize,
    /// Bytes per second per stream (`per_stream_rate_limit`, 3MB) and its burst (15MB).
    pub per_stream_rate_bytes: f64,
    pub per_stream_burst_bytes: f64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        const MIB: f64 = 1048576.0;
        IngestLimits {
            labels: LabelLimits::default(),
            max_line_size: 256 << 10,
            max_line_size_truncate: false,
            reject_old_samples: true,
            reject_old_samples_max_age: Duration::from_secs(7 * 24 * 3600),
            creation_grace_period: Duration::from_secs(600),
            allow_structured_metadata: true,
            max_structured_metadata_size: 64 << 10,
            max_structured_metadata_entries_count: 128,
            ingestion_rate_bytes: 4.0 * MIB,
            ingestion_burst_bytes: 6.0 * MIB,
            max_streams: 5000,
            per_stream_rate_bytes: 3.0 * MIB,
            per_stream_burst_bytes: 15.0 * MIB,
        }
    }
}

impl IngestLimits {
    /// No limit at all beyond label syntax: for tools that load trusted data (benchmarks,
    /// tests, replays).
    pub fn unlimited() -> Self {
        IngestLimits {
            labels: LabelLimits { max_names: usize::MAX, max_name_len: usize::MAX, max_value_len: usize::MAX },
            max_line_size: 0,
            max_line_size_truncate: false,
            reject_old_samples: false,
            reject_old_samples_max_age: Duration::ZERO,
            creation_grace_period: Duration::from_secs(u32::MAX as u64),
            allow_structured_metadata: true,
            max_structured_metadata_size: 0,
            max_structured_metadata_entries_count: 0,
            ingestion_rate_bytes: f64::INFINITY,
            ingestion_burst_bytes: f64::INFINITY,
            max_streams: 0,
            per_stream_rate_bytes: f64::INFINITY,
            per_stream_burst_bytes: f64::INFINITY,
        }
    }
}

/// A token bucket with Go's `rate.Limiter` semantics, which Loki uses: it starts full,
/// refills at `rate` per second up to `burst`, and a request for more than `burst` never
/// passes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: f64) -> Self {
        TokenBucket { tokens: burst, last: Instant::now() }
    }

    /// Takes `n` tokens if there are enough (after refilling); else takes none.
    pub fn allow(&mut self, n: f64, rate: f64, burst: f64, now: Instant) -> bool {
        if rate.is_infinite() {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_starts_full_refills_and_never_passes_more_than_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket { tokens: 10.0, last: t0 };
        assert!(b.allow(6.0, 2.0, 10.0, t0));
        assert!(!b.allow(6.0, 2.0, 10.0, t0), "4 left");
        assert!(b.allow(6.0, 2.0, 10.0, t0 + Duration::from_secs(1)), "4 + 2 refilled");
        assert!(!b.allow(11.0, 2.0, 10.0, t0 + Duration::from_secs(100)), "more than the burst");
        assert!(b.allow(10.0, 2.0, 10.0, t0 + Duration::from_secs(100)));
    }
}
