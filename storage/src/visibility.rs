//! What a read may see: entries past their stream's retention and entries named by a
//! delete request are cut from scan batches before anyone gets them, so they disappear
//! the moment they expire or are deleted, long before the maintenance pass removes them
//! from disk. The same filter drops them when chunks are rewritten.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanBufferBuilder};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, UInt64Type};
use arrow::record_batch::RecordBatch;

use crate::deletes::{Entry, LiveDelete};
use crate::error::Result;
use crate::labels::Labels;
use crate::retention::RetentionPolicy;

/// A per-scan row filter. Built only when something must be cut; most scans have none.
#[derive(Default)]
pub(crate) struct RowFilter {
    /// Per stream: the oldest live timestamp (only streams with something expired).
    cutoffs: HashMap<u64, i64>,
    /// Delete requests that touch the scan, with the streams they match.
    deletes: Vec<(Arc<LiveDelete>, HashMap<u64, Labels>)>,
}

impl RowFilter {
    pub fn add_cutoff(&mut self, fp: u64, cutoff: i64) {
        if cutoff != i64::MIN {
            self.cutoffs.insert(fp, cutoff);
        }
    }

    pub fn add_delete(&mut self, d: Arc<LiveDelete>, streams: HashMap<u64, Labels>) {
        if !streams.is_empty() {
            self.deletes.push((d, streams));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cutoffs.is_empty() && self.deletes.is_empty()
    }

    /// Whether the filter needs the `line` and `metadata` columns (a delete request with
    /// a pipeline looks at the entries).
    pub fn needs_entries(&self) -> bool {
        self.deletes.iter().any(|(d, _)| d.compiled.entries.is_some())
    }

    /// Whether a single entry stays visible. `entry` gives the line and metadata when
    /// [`Self::needs_entries`].
    #[inline]
    fn keeps(&self, fp: u64, ts: i64, entry: Option<(&str, Option<&[u8]>)>) -> bool {
        if self.cutoffs.get(&fp).is_some_and(|&c| ts < c) {
            return false;
        }
        !self.deletes.iter().any(|(d, streams)| {
            let Some(labels) = streams.get(&fp) else { return false };
            let e = entry.map(|(line, metadata)| Entry { labels, line, metadata });
            d.deletes(ts, e.as_ref())
        })
    }

    /// Cuts a batch. `stream` and `ts` are column positions in `batch`; `entry` the
    /// positions of `line` and `metadata` when [`Self::needs_entries`].
    pub fn apply(&self, batch: RecordBatch, stream: usize, ts: usize, entry: Option<(usize, usize)>) -> Result<RecordBatch> {
        let fps = batch.column(stream).as_primitive::<UInt64Type>();
        let tss = batch.column(ts).as_primitive::<Int64Type>();
        let lines = entry.map(|(l, m)| (batch.column(l).as_string::<i32>(), batch.column(m).as_binary::<i32>()));
        let mut keep = BooleanBufferBuilder::new(batch.num_rows());
        let mut dropped = false;
        for i in 0..batch.num_rows() {
            let k = self.keeps(fps.value(i), tss.value(i), lines.map(|(l, m)| (l.value(i), m.is_valid(i).then(|| m.value(i)))));
            dropped |= !k;
            keep.append(k);
        }
        if !dropped {
            return Ok(batch);
        }
        let mask = arrow::array::BooleanArray::new(keep.finish(), None);
        Ok(filter_record_batch(&batch, &mask)?)
    }
}

/// Builds a scan's view of retention and deletes while its streams are resolved.
pub(crate) struct Liveness {
    policy: RetentionPolicy,
    now: i64,
    /// The scan's start, raised to the tenant's cutoff when one period covers every stream.
    pub start: i64,
    per_stream: bool,
    cutoffs: HashMap<u64, i64>,
    deletes: Vec<Arc<LiveDelete>>,
}

impl Liveness {
    pub fn new(policy: RetentionPolicy, deletes: Vec<Arc<LiveDelete>>, start: i64) -> Liveness {
        let now = crate::now_ns();
        let per_stream = !policy.streams.is_empty();
        let start = if !per_stream && policy.period > 0 { start.max(now.saturating_sub(policy.period)) } else { start };
        Liveness { policy, now, start, per_stream, cutoffs: HashMap::new(), deletes }
    }

    /// Whether a stream whose newest entry is `max_ts` has anything unexpired.
    pub fn stream_visible(&mut self, fp: u64, labels: &Labels, max_ts: i64) -> bool {
        if !self.per_stream {
            return true;
        }
        let (policy, now) = (&self.policy, self.now);
        let c = *self.cutoffs.entry(fp).or_insert_with(|| policy.cutoff(labels, now));
        max_ts >= c
    }

    /// Whether rows may have to be cut, so copies of the live head must keep every column.
    pub fn may_filter(&self) -> bool {
        self.per_stream || !self.deletes.is_empty()
    }

    /// The row filter for the resolved streams, if anything must be cut.
    pub fn into_filter(self, streams: &HashMap<u64, Labels>, end: i64) -> Option<RowFilter> {
        let mut f = RowFilter::default();
        for (fp, c) in self.cutoffs {
            if c > self.start && streams.contains_key(&fp) {
                f.add_cutoff(fp, c);
            }
        }
        for d in self.deletes {
            if d.overlaps(self.start, end) {
                let fps = streams.iter().filter(|(_, l)| d.matches_stream(l)).map(|(fp, l)| (*fp, l.clone())).collect();
                f.add_delete(d, fps);
            }
        }
        (!f.is_empty()).then_some(f)
    }
}
