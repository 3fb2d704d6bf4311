//! Rewriting chunks: merging a day's small chunks into larger ones (compaction), and
//! copying a chunk without its expired or deleted entries (retention, deletes). Both are
//! one operation, [`merge`]: a k-way merge of chunks that are each sorted by
//! (stream, ts) into new chunks with the same order, cut by a [`RowFilter`] on the way.
//!
//! The merge streams: it holds one record batch per input and one output batch, never a
//! whole chunk. Runs of rows from one input that sort before every other input's next row
//! are copied as slices, so the common case (chunks of successive flushes, which barely
//! overlap in time) costs about one copy per row.
//!
//! New chunks get [field columns](crate::fields): the JSON keys of their lines, for
//! metric queries that group or unwrap by a few of them.
//!
//! New chunks are written and fsync'd beside the old ones; the caller swaps the manifest
//! (the atomic step) and retires the inputs. A crash before the swap leaves unnamed new
//! files, after it unnamed old files; startup deletes both.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::concat_batches;
use arrow::datatypes::{Int64Type, UInt64Type};
use arrow::record_batch::RecordBatch;

use crate::chunk::{Chunk, ChunkRef, ChunkScan, ChunkWriter};
use crate::chunk_cache::ChunkCache;
use crate::error::Result;
use crate::labels::Labels;
use crate::schema::{log_schema, IDX_LINE, IDX_METADATA, IDX_STREAM, IDX_TS};
use crate::visibility::RowFilter;

/// What a merge did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MergeStats {
    pub rows_in: u64,
    pub rows_out: u64,
}

/// One input being read: its current batch and the next row in it.
struct Cursor {
    scan: ChunkScan,
    batch: RecordBatch,
    row: usize,
}

impl Cursor {
    fn key(&self) -> (u64, i64) {
        key(&self.batch, self.row)
    }

    /// Moves to the next non-empty batch; false when the input is exhausted.
    fn advance(&mut self) -> Result<bool> {
        for b in self.scan.by_ref() {
            let b = b?;
            if b.num_rows() > 0 {
                self.batch = b;
                self.row = 0;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn key(b: &RecordBatch, i: usize) -> (u64, i64) {
    (b.column(IDX_STREAM).as_primitive::<UInt64Type>().value(i), b.column(IDX_TS).as_primitive::<Int64Type>().value(i))
}

/// Merges `inputs` (chunks of one day) into new chunks of about `target_bytes` each under
/// `tenant_dir`, keeping only the rows `filter` keeps. `new_id` names each output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn merge(
    tenant_dir: &Path,
    inputs: &[ChunkRef],
    filter: &RowFilter,
    target_bytes: u64,
    batch_rows: usize,
    zstd_level: i32,
    cache: &Arc<ChunkCache>,
    mut new_id: impl FnMut() -> String,
) -> Result<(Vec<Chunk>, MergeStats)> {
    let Some(day) = inputs.first().map(|c| c.meta.day.clone()) else { return Ok((Vec::new(), MergeStats::default())) };
    debug_assert!(inputs.iter().all(|c| c.meta.day == day), "a merge stays within one day");
    let mut labels: HashMap<u64, Labels> = HashMap::new();
    for c in inputs {
        for s in &c.index.streams {
            labels.entry(s.fp).or_insert_with(|| s.labels.clone());
        }
    }
    let label_of = |fp: u64| labels.get(&fp).cloned();
    // Split outputs by rows, at the inputs' compressed bytes per row.
    let (bytes_in, rows_in): (u64, u64) = inputs.iter().fold((0, 0), |(b, r), c| (b + c.meta.bytes, r + c.meta.rows));
    let rows_per_output = if bytes_in == 0 { u64::MAX } else { (target_bytes as u128 * rows_in.max(1) as u128 / bytes_in as u128).max(1) as u64 };

    let mut cursors = Vec::with_capacity(inputs.len());
    let mut heap = BinaryHeap::new();
    for c in inputs {
        let all: Vec<usize> = (0..c.index.streams.len()).collect();
        let scan = c.scan(&all, i64::MIN, i64::MAX, None, batch_rows)?;
        let mut cur = Cursor { scan, batch: RecordBatch::new_empty(log_schema()), row: 0 };
        if cur.advance()? {
            heap.push(Reverse((cur.key(), cursors.len())));
            cursors.push(cur);
        }
    }

    let mut out = Vec::new();
    let mut stats = MergeStats { rows_in, rows_out: 0 };
    let mut writer: Option<ChunkWriter> = None;
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let entry = filter.needs_entries().then_some((IDX_LINE, IDX_METADATA));
    let mut flush = |pending: &mut Vec<RecordBatch>, writer: &mut Option<ChunkWriter>, out: &mut Vec<Chunk>, last: bool| -> Result<()> {
        if !pending.is_empty() {
            let batch = concat_batches(&log_schema(), pending.iter())?;
            pending.clear();
            let batch = if filter.is_empty() { batch } else { filter.apply(batch, IDX_STREAM, IDX_TS, entry)? };
            if batch.num_rows() > 0 {
                let w = match writer {
                    Some(w) => w,
                    None => writer.insert(ChunkWriter::create(tenant_dir, new_id(), day.clone(), zstd_level)?.with_field_columns()?),
                };
                w.write(&batch, label_of)?;
                stats.rows_out += batch.num_rows() as u64;
            }
        }
        let full = writer.as_ref().is_some_and(|w| w.rows() >= rows_per_output);
        if full || last {
            if let Some(w) = writer.take() {
                out.extend(w.finish(cache)?);
            }
        }
        Ok(())
    };

    while let Some(Reverse((_, i))) = heap.pop() {
        let next = heap.peek().map(|Reverse((k, _))| *k);
        let cur = &mut cursors[i];
        let n = cur.batch.num_rows();
        // Take every row of this input that sorts at or before the other inputs' next row.
        let end = match next {
            None => n,
            Some(k) => {
                let mut lo = cur.row + 1;
                let mut hi = n;
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if key(&cur.batch, mid) <= k {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
        };
        pending.push(cur.batch.slice(cur.row, end - cur.row));
        pending_rows += end - cur.row;
        cur.row = end;
        if cur.row < n || cur.advance()? {
            heap.push(Reverse((cur.key(), i)));
        }
        if pending_rows >= batch_rows {
            flush(&mut pending, &mut writer, &mut out, false)?;
            pending_rows = 0;
        }
    }
    flush(&mut pending, &mut writer, &mut out, true)?;
    Ok((out, stats))
}
