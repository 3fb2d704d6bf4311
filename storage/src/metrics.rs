//! Counters the store keeps about itself, read by the server's `/metrics`. Plain atomics:
//! updating them costs nothing measurable on the write path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A latency histogram with fixed bucket bounds (seconds), Prometheus-style: each bucket
/// counts observations at or below its bound.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// Bounds suited to disk syncs and flushes: 100µs to 10s.
pub const IO_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(), count: AtomicU64::new(0), sum_nanos: AtomicU64::new(0) }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `(bound, cumulative count)` per bucket, the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cum = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                cum += c.load(Ordering::Relaxed);
                (*b, cum)
            })
            .collect();
        (buckets, self.count.load(Ordering::Relaxed), self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9)
    }
}

/// What the store counts.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Each WAL write+fsync (one per group commit).
    pub wal_fsync: Histogram,
    /// Each flush of the heads to chunks.
    pub flush: Histogram,
    /// Rows written to chunks by flushes.
    pub flushed_rows: AtomicU64,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics { wal_fsync: Histogram::new(IO_BUCKETS), flush: Histogram::new(IO_BUCKETS), flushed_rows: AtomicU64::new(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets() {
        let h = Histogram::new(&[0.001, 0.01, 0.1]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        let (b, n, sum) = h.snapshot();
        assert_eq!(b, vec![(0.001, 1), (0.01, 2), (0.1, 2)]);
        assert_eq!(n, 3);
        assert!((sum - 1.0055).abs() < 1e-9);
    }
}
