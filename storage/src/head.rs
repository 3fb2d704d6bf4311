//! The head: one tenant's acknowledged entries that are not in a chunk yet. Entries are
//! appended to per-stream arenas (one for lines, one for metadata), so an insert costs a
//! few `memcpy`s and no allocation per entry. Out-of-order entries are
//! accepted and put in order when read or flushed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BinaryBuilder, Int64Builder, StringBuilder, UInt64Builder};
use arrow::record_batch::RecordBatch;
use roaring::RoaringBitmap;

use crate::codec::encode_metadata;
use crate::label_index::LabelIndex;
use crate::labels::Labels;
use crate::push::PushEntry;
use crate::schema::{log_schema, IDX_LINE, IDX_METADATA, IDX_STREAM, IDX_TS};

/// The first segment of an [`Arena`]; each next one is twice the last, up to [`SEGMENT`].
const FIRST_SEGMENT: usize = 4 << 10;
/// The largest segment of an [`Arena`] (unless one entry is larger).
const SEGMENT: usize = 256 << 10;

/// Byte strings appended one after another, in segments that are never moved or grown:
/// a single buffer grown by doubling holds up to twice its data, and copies all of it at
/// every doubling. Segments double from [`FIRST_SEGMENT`] to [`SEGMENT`], so a stream
/// with little data (a tenant may have thousands) holds little, and a busy one wastes at
/// most part of its last segment. Each entry lies within one segment; an entry longer
/// than the next segment gets a segment of its own size.
#[derive(Debug, Default)]
struct Arena {
    segments: Vec<Vec<u8>>,
    /// Per entry: its segment and where it ends there. An entry starts where the previous
    /// one ended if that is in the same segment, else at 0. (Entries are bounded by the
    /// push body size, far below 4 GiB.)
    ends: Vec<(u32, u32)>,
}

impl Arena {
    fn push(&mut self, b: &[u8]) {
        let fits = self.segments.last().is_some_and(|s| s.capacity() - s.len() >= b.len());
        if !fits {
            // No room is taken for empty entries (most entries have no metadata).
            let next = self.segments.last().map_or(FIRST_SEGMENT, |s| (s.capacity() * 2).clamp(FIRST_SEGMENT, SEGMENT));
            self.segments.push(Vec::with_capacity(if b.is_empty() { 0 } else { b.len().max(next) }));
        }
        let at = self.segments.len() - 1;
        let seg = &mut self.segments[at];
        seg.extend_from_slice(b);
        self.ends.push((at as u32, seg.len() as u32));
    }

    fn get(&self, i: usize) -> &[u8] {
        let (seg, end) = self.ends[i];
        let start = match i.checked_sub(1).map(|p| self.ends[p]) {
            Some((s, e)) if s == seg => e,
            _ => 0,
        };
        &self.segments[seg as usize][start as usize..end as usize]
    }
}

#[derive(Debug)]
pub(crate) struct HeadStream {
    pub labels: Labels,
    pub fp: u64,
    ts: Vec<i64>,
    lines: Arena,
    meta: Arena,
    /// True while every entry arrived in timestamp order.
    in_order: bool,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl HeadStream {
    fn new(labels: Labels, fp: u64) -> Self {
        HeadStream {
            labels,
            fp,
            ts: Vec::new(),
            lines: Arena::default(),
            meta: Arena::default(),
            in_order: true,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn ts_at(&self, i: usize) -> i64 {
        self.ts[i]
    }

    fn line(&self, i: usize) -> &[u8] {
        self.lines.get(i)
    }

    fn metadata(&self, i: usize) -> &[u8] {
        self.meta.get(i)
    }

    /// Appends one entry; returns the bytes it added, or `None` for an exact duplicate of
    /// an entry already held (same timestamp, line and metadata), which Loki ignores.
    fn push(&mut self, e: &PushEntry, meta_scratch: &mut Vec<u8>) -> Option<usize> {
        meta_scratch.clear();
        encode_metadata(e.metadata.iter().map(|(n, v)| (n.as_str(), v.as_str())), meta_scratch);
        if self.in_order {
            // Duplicates can only sit among the trailing entries with the same timestamp.
            let mut i = self.ts.len();
            while i > 0 && self.ts[i - 1] == e.ts {
                if self.line(i - 1) == e.line.as_bytes() && self.metadata(i - 1) == meta_scratch.as_slice() {
                    return None;
                }
                i -= 1;
            }
            if self.ts.last().is_some_and(|&last| e.ts < last) {
                self.in_order = false;
            }
        }
        self.ts.push(e.ts);
        self.lines.push(e.line.as_bytes());
        self.meta.push(meta_scratch);
        self.min_ts = self.min_ts.min(e.ts);
        self.max_ts = self.max_ts.max(e.ts);
        Some(e.line.len() + meta_scratch.len() + 8)
    }

    /// Positions of the entries in `[start, end)` in timestamp order, duplicates removed.
    pub fn ordered_positions(&self, start: i64, end: i64) -> Vec<u32> {
        if self.in_order {
            let lo = self.ts.partition_point(|&t| t < start);
            let hi = self.ts.partition_point(|&t| t < end);
            return (lo as u32..hi as u32).collect();
        }
        let mut pos: Vec<u32> = (0..self.ts.len() as u32)
            .filter(|&i| (start..end).contains(&self.ts[i as usize]))
            .collect();
        // Stable: entries with equal timestamps keep their arrival order, as in Loki.
        pos.sort_by_key(|&i| self.ts[i as usize]);
        pos.dedup_by(|b, a| {
            let (a, b) = (*a as usize, *b as usize);
            self.ts[a] == self.ts[b] && self.line(a) == self.line(b) && self.metadata(a) == self.metadata(b)
        });
        pos
    }
}

/// Appends rows of one stream to column builders; shared by head scans and flushes.
pub(crate) struct BatchBuilder {
    stream: UInt64Builder,
    ts: Int64Builder,
    line: StringBuilder,
    meta: BinaryBuilder,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(rows: usize) -> Self {
        BatchBuilder {
            stream: UInt64Builder::with_capacity(rows),
            ts: Int64Builder::with_capacity(rows),
            line: StringBuilder::with_capacity(rows, rows * 128),
            meta: BinaryBuilder::with_capacity(rows, 0),
            rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn append(&mut self, s: &HeadStream, i: usize) {
        self.stream.append_value(s.fp);
        self.ts.append_value(s.ts[i]);
        // Lines were `String`s when pushed, so the bytes are UTF-8 (checked anyway: the
        // SIMD check is cheap, and a bad byte must never reach a Utf8 column).
        match std::str::from_utf8(s.line(i)) {
            Ok(l) => self.line.append_value(l),
            Err(_) => self.line.append_value(String::from_utf8_lossy(s.line(i))),
        }
        let m = s.metadata(i);
        if m.is_empty() {
            self.meta.append_null();
        } else {
            self.meta.append_value(m);
        }
        self.rows += 1;
    }

    /// Finishes a batch with the columns in `projection` (indices into [`log_schema`]).
    pub fn finish(&mut self, projection: Option<&[usize]>) -> RecordBatch {
        // Finished builders start again from nothing: size the next batch's buffers like
        // this one's, a little larger, rather than grow them by doubling (a copy each).
        let slack = |n: usize| n + n / 8;
        let rows = slack(self.rows);
        let (line_bytes, meta_bytes) = (slack(self.line.values_slice().len()), slack(self.meta.values_slice().len()));
        let cols: [ArrayRef; 4] = [
            Arc::new(std::mem::replace(&mut self.stream, UInt64Builder::with_capacity(rows)).finish()),
            Arc::new(std::mem::replace(&mut self.ts, Int64Builder::with_capacity(rows)).finish()),
            Arc::new(std::mem::replace(&mut self.line, StringBuilder::with_capacity(rows, line_bytes)).finish()),
            Arc::new(std::mem::replace(&mut self.meta, BinaryBuilder::with_capacity(rows, meta_bytes)).finish()),
        ];
        self.rows = 0;
        let schema = log_schema();
        let batch = RecordBatch::try_new(schema, cols.to_vec()).expect("builders match the log schema");
        match projection {
            Some(p) => batch.project(p).expect("projection indices are checked by the scan"),
            None => batch,
        }
    }
}

// Keep the column order the builders rely on visible next to them.
const _: () = assert!(IDX_STREAM == 0 && IDX_TS == 1 && IDX_LINE == 2 && IDX_METADATA == 3);

#[derive(Debug, Default)]
pub(crate) struct Head {
    pub streams: Vec<HeadStream>,
    by_fp: HashMap<u64, u32>,
    pub index: LabelIndex,
    pub bytes: usize,
    pub entries: usize,
    pub first_insert: Option<Instant>,
    meta_scratch: Vec<u8>,
}

impl Head {
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Appends a stream's entries; returns how many were new (not exact duplicates).
    pub fn append(&mut self, labels: &Labels, fp: u64, entries: &[PushEntry]) -> usize {
        let id = match self.by_fp.get(&fp) {
            Some(&id) => id,
            None => {
                let id = self.streams.len() as u32;
                self.streams.push(HeadStream::new(labels.clone(), fp));
                self.by_fp.insert(fp, id);
                self.index.add(id, labels);
                id
            }
        };
        let s = &mut self.streams[id as usize];
        let mut added = 0;
        for e in entries {
            if let Some(b) = s.push(e, &mut self.meta_scratch) {
                self.bytes += b;
                added += 1;
            }
        }
        self.entries += added;
        if added > 0 && self.first_insert.is_none() {
            self.first_insert = Some(Instant::now());
        }
        added
    }

    pub fn stream_id(&self, fp: u64) -> Option<u32> {
        self.by_fp.get(&fp).copied()
    }

    /// The head streams among `ids` whose entries overlap `[start, end)`.
    pub fn streams_overlapping<'a>(&'a self, ids: &'a RoaringBitmap, start: i64, end: i64) -> impl Iterator<Item = &'a HeadStream> + 'a {
        ids.iter()
            .filter_map(|id| self.streams.get(id as usize))
            .filter(move |s| s.len() > 0 && s.min_ts < end && s.max_ts >= start)
    }

    /// Copies the entries of streams `ids` in `[start, end)` into record batches of at
    /// most `batch_rows` rows, each stream in timestamp order.
    pub fn scan(&self, ids: &RoaringBitmap, start: i64, end: i64, projection: Option<&[usize]>, batch_rows: usize) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut b = BatchBuilder::new(batch_rows.min(self.entries.max(1)));
        for s in self.streams_overlapping(ids, start, end) {
            for i in s.ordered_positions(start, end) {
                b.append(s, i as usize);
                if b.len() >= batch_rows {
                    out.push(b.finish(projection));
                }
            }
        }
        if b.len() > 0 {
            out.push(b.finish(projection));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_hands_back_every_entry() {
        let mut a = Arena::default();
        let entries: Vec<Vec<u8>> = (0..3000usize).map(|k| vec![(k % 251) as u8; if k % 500 == 7 { SEGMENT + k } else { k % 300 }]).collect();
        for e in &entries {
            a.push(e);
        }
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(a.get(k), &e[..], "entry {k}");
        }
        assert!(a.segments.len() > 3, "long entries and full segments start new ones");
        let mut empty = Arena::default();
        empty.push(b"");
        empty.push(b"");
        assert_eq!(empty.get(1), b"");
        assert_eq!(empty.segments.iter().map(Vec::capacity).sum::<usize>(), 0);
    }
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    fn e(ts: i64, line: &str) -> PushEntry {
        PushEntry { ts, line: line.into(), metadata: vec![] }
    }

    #[test]
    fn out_of_order_is_sorted_and_duplicates_dropped() {
        let l = Labels::from_pairs([("a", "b")]).unwrap();
        let mut h = Head::default();
        assert_eq!(h.append(&l, l.fingerprint(), &[e(10, "x"), e(10, "x"), e(5, "y"), e(20, "z"), e(5, "y")]), 4);
        let all = h.index.all().clone();
        let batches = h.scan(&all, i64::MIN, i64::MAX, None, 2);
        let ts: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(IDX_TS).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ts, vec![5, 10, 20]);
        assert_eq!(batches[0].num_rows(), 2);
        let ranged = h.scan(&all, 6, 20, Some(&[IDX_TS]), 100);
        let col: &Int64Array = ranged[0].column(0).as_primitive();
        assert_eq!(col.values().to_vec(), vec![10]);
    }
}
