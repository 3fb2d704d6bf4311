//! Chunks: one tenant's entries of one UTC day, as a zstd Parquet file sorted by
//! (stream, ts), plus a small index file beside it.
//!
//! The index (`<id>.idx`) holds, per stream, its labels, its row range and its time range,
//! and a [`LabelIndex`] from label pairs to stream ordinals. A scan resolves matchers on
//! the index, turns the matching streams' row ranges into a Parquet `RowSelection`, and
//! reads only those rows' pages; rows outside the time range are cut with Arrow kernels.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, StringArray};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::filter;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatchOptions;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, PageIndexPolicy, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use roaring::RoaringBitmap;

use crate::chunk_cache::ChunkCache;
use crate::codec::{put_uvarint, seal, unseal};
use crate::error::{io_err, Result, StoreError};
use crate::head::{BatchBuilder, HeadStream};
use crate::label_index::LabelIndex;
use crate::labels::Labels;
use crate::manifest::ChunkMeta;
use crate::fields::{FieldRequest, FieldsBuilder, FieldsCursor, FieldsIndex};
use crate::needle::{NeedleBuilder, NeedleIndex};
use crate::schema::{log_schema, with_field_columns, COL_LINE, IDX_LINE, IDX_TS};

const INDEX_MAGIC: &[u8; 8] = b"SILTIDX1";

/// Key of the Parquet footer entry that lists every stream of the chunk with its labels,
/// `[["<fingerprint hex>", {"name": "value", ...}], ...]`, so that a lost or damaged index
/// can be rebuilt from the Parquet file alone (`silt check --repair`). Chunks written
/// before it existed lack it.
pub(crate) const STREAMS_KEY: &str = "silt.streams";

/// Key of the Parquet footer entry `"<len>:<crc32 hex>"`: the CRC-32 of the file's first
/// `len` bytes, which hold every data page. Parquet pages carry no checksum here, and zstd
/// decodes a damaged literal without complaint, so only this reveals bit rot in the data
/// (`silt check`). Chunks written before it existed lack it.
pub(crate) const DATA_CRC_KEY: &str = "silt.data_crc32";

/// Rows per Parquet row group: large enough for good compression and few footers, small
/// enough that statistics and page indexes still prune.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;
// Row groups start pages afresh: they must start on needle block edges too.
const _: () = assert!(ROW_GROUP_ROWS % crate::needle::BLOCK_ROWS == 0);

#[derive(Debug, Clone)]
pub struct ChunkStream {
    pub fp: u64,
    pub labels: Labels,
    pub row_start: u64,
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

#[derive(Debug, Default)]
pub struct ChunkIndex {
    /// Sorted by fingerprint, which is also their order in the Parquet file.
    pub streams: Vec<ChunkStream>,
    pub labels: LabelIndex,
}

impl ChunkIndex {
    /// An index over `streams` (in file order), with its label index, as [`ChunkWriter`]
    /// builds it.
    pub(crate) fn from_streams(streams: Vec<ChunkStream>) -> ChunkIndex {
        let mut labels = LabelIndex::default();
        for (ordinal, s) in streams.iter().enumerate() {
            labels.add(ordinal as u32, &s.labels);
        }
        ChunkIndex { streams, labels }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = INDEX_MAGIC.to_vec();
        put_uvarint(&mut out, self.streams.len() as u64);
        for s in &self.streams {
            out.extend_from_slice(&s.fp.to_le_bytes());
            put_uvarint(&mut out, s.labels.len() as u64);
            for (n, v) in s.labels.iter() {
                put_uvarint(&mut out, n.len() as u64);
                out.extend_from_slice(n.as_bytes());
                put_uvarint(&mut out, v.len() as u64);
                out.extend_from_slice(v.as_bytes());
            }
            put_uvarint(&mut out, s.row_start);
            put_uvarint(&mut out, s.rows);
            out.extend_from_slice(&s.min_ts.to_le_bytes());
            out.extend_from_slice(&s.max_ts.to_le_bytes());
        }
        self.labels.encode(&mut out);
        seal(out)
    }

    pub(crate) fn decode(buf: &[u8]) -> Option<ChunkIndex> {
        let mut r = unseal(buf, INDEX_MAGIC)?;
        let n = r.uvarint()?;
        let mut streams = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let fp = u64::from_le_bytes(r.bytes(8)?.try_into().ok()?);
            let mut pairs = Vec::new();
            for _ in 0..r.uvarint()? {
                pairs.push((r.str()?.to_string(), r.str()?.to_string()));
            }
            let labels = Labels::from_pairs(pairs).ok()?;
            streams.push(ChunkStream { fp, labels, row_start: r.uvarint()?, rows: r.uvarint()?, min_ts: r.i64()?, max_ts: r.i64()? });
        }
        let labels = LabelIndex::decode(&mut r)?;
        r.is_empty().then_some(ChunkIndex { streams, labels })
    }
}

/// A live chunk: its manifest entry, its index (kept in memory), and its Parquet file.
#[derive(Debug)]
pub struct Chunk {
    pub meta: ChunkMeta,
    pub index: ChunkIndex,
    pub path: PathBuf,
    /// Set when a manifest swap removed the chunk: its files go when the last reader
    /// drops it, so a query that started before the swap still reads it.
    retired: AtomicBool,
    /// Where its footer, needle index and field directory are kept once read, under
    /// `cache_id`: a chunk never changes once written.
    cache: Arc<ChunkCache>,
    cache_id: u64,
}

impl Chunk {
    fn new(meta: ChunkMeta, index: ChunkIndex, path: PathBuf, cache: &Arc<ChunkCache>) -> Chunk {
        Chunk { meta, index, path, retired: AtomicBool::new(false), cache: cache.clone(), cache_id: cache.new_id() }
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The chunk's needle index, if it has one (read from disk unless cached).
    pub fn needle_index(&self) -> Option<Arc<NeedleIndex>> {
        self.cache.needles(self.cache_id, || NeedleIndex::load(&needle_path(&self.path)))
    }

    /// The chunk's field-column directory, if it has one (read from disk unless cached).
    fn fields_index(&self) -> Option<Arc<FieldsIndex>> {
        self.cache.fields(self.cache_id, || FieldsIndex::load(&self.path, self.meta.rows))
    }

    /// The Parquet footer and page indexes of `file`, this chunk's (parsed unless cached).
    fn footer(&self, file: &File) -> Result<ArrowReaderMetadata> {
        self.cache.footer(self.cache_id, || Ok(ArrowReaderMetadata::load(file, ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional))?))
    }
}

/// The needle index file of a chunk, beside its Parquet file.
pub(crate) fn needle_path(parquet: &Path) -> PathBuf {
    parquet.with_extension("ngr")
}

/// The optional files beside a chunk's Parquet file: its needle index and its field
/// columns. A chunk is read without them when they are missing.
pub(crate) fn companion_paths(parquet: &Path) -> [PathBuf; 2] {
    [needle_path(parquet), crate::fields::fields_path(parquet)]
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.cache.remove(self.cache_id);
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            let idx = self.path.with_extension("idx");
            for p in companion_paths(&self.path) {
                if let Err(e) = fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(file = %p.display(), error = %e, "cannot remove a retired chunk's companion file; the next start removes it");
                    }
                }
            }
            for p in [&self.path, &idx] {
                if let Err(e) = fs::remove_file(p) {
                    tracing::warn!(file = %p.display(), error = %e, "cannot remove a retired chunk file; the next start removes it");
                }
            }
        }
    }
}

pub(crate) fn chunk_paths(tenant_dir: &Path, meta: &ChunkMeta) -> (PathBuf, PathBuf) {
    let stem = tenant_dir.join(meta.stem());
    (stem.with_extension("parquet"), stem.with_extension("idx"))
}

/// One stream's share of a chunk being written: positions into the head stream, in
/// timestamp order.
pub(crate) struct StreamRows<'a> {
    pub stream: &'a HeadStream,
    pub positions: Vec<u32>,
}

/// zstd level of the chunks a flush writes. On pages of log lines level 1 is as small as
/// level 3 and about 1.8 times faster, and a flush is on the ingest path.
pub(crate) const FLUSH_ZSTD_LEVEL: i32 = 1;

/// zstd level of the chunks compaction writes, in the background, unless configured:
/// 10-20% smaller than level 1, and 15-30% faster to decompress, for about 40 MB/s of
/// compression on one core.
pub const DEFAULT_COMPACTION_ZSTD_LEVEL: i32 = 9;

fn writer_properties(zstd_level: i32) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(zstd_level).map_err(|e| StoreError::InvalidInput(format!("zstd level {zstd_level}: {e}")))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        // The stream column (one dictionary value per run) and the metadata column (a
        // dictionary of a few level values) are tiny either way (0.3 MB of the
        // benchmark's 80 uncompressed), while every zstd column costs each read a
        // compression and a decompression context, and creating one asks the CPU for its
        // features: a `cpuid` each, which in a virtual machine traps to the hypervisor
        // (microseconds apiece, about 8% of a regex filter query).
        .set_column_compression(ColumnPath::from(crate::schema::COL_STREAM), Compression::UNCOMPRESSED)
        .set_column_compression(ColumnPath::from(crate::schema::COL_METADATA), Compression::UNCOMPRESSED)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Page-level statistics give the column and offset indexes that let a scan skip pages.
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![
            SortingColumn { column_idx: 0, descending: false, nulls_first: false },
            SortingColumn { column_idx: 1, descending: false, nulls_first: false },
        ]))
        // Log lines are nearly all distinct: a dictionary would be built and thrown away.
        .set_column_dictionary_enabled(ColumnPath::from(COL_LINE), false)
        // Timestamps rise within a stream's run of rows: small deltas, a few bytes each,
        // instead of eight (less to store, to decompress and to decode).
        .set_column_dictionary_enabled(ColumnPath::from(crate::schema::COL_TS), false)
        .set_column_encoding(ColumnPath::from(crate::schema::COL_TS), Encoding::DELTA_BINARY_PACKED)
        // Pages of exactly one needle-index block, so a block the index rules out is a
        // page the reader skips, in every column.
        .set_data_page_row_count_limit(crate::needle::BLOCK_ROWS)
        .set_write_batch_size(1024)
        .set_data_page_size_limit(16 << 20)
        .build())
}

/// Writes a chunk's Parquet and index files from head streams and fsyncs them (and their
/// directory). The chunk becomes live only when a manifest names it.
pub(crate) fn write_chunk(tenant_dir: &Path, id: String, day: String, mut rows: Vec<StreamRows<'_>>, batch_rows: usize, cache: &Arc<ChunkCache>) -> Result<Chunk> {
    rows.retain(|r| !r.positions.is_empty());
    rows.sort_by_key(|r| r.stream.fp);
    let labels: std::collections::HashMap<u64, &Labels> = rows.iter().map(|r| (r.stream.fp, &r.stream.labels)).collect();
    let label_of = |fp: u64| labels.get(&fp).map(|l| (*l).clone());
    let mut w = ChunkWriter::create(tenant_dir, id, day, FLUSH_ZSTD_LEVEL)?;
    let mut builder = BatchBuilder::new(batch_rows);
    for r in &rows {
        for &p in &r.positions {
            builder.append(r.stream, p as usize);
            if builder.len() >= batch_rows {
                w.write(&builder.finish(None), label_of)?;
            }
        }
    }
    if builder.len() > 0 {
        w.write(&builder.finish(None), label_of)?;
    }
    w.finish(cache)?.ok_or_else(|| StoreError::InvalidInput("a chunk needs at least one entry".into()))
}

/// Writes one chunk from record batches (full [`log_schema`]) that arrive sorted by
/// (stream, ts), building its index as the rows go by.
pub(crate) struct ChunkWriter {
    meta: ChunkMeta,
    pq_path: PathBuf,
    idx_path: PathBuf,
    writer: ArrowWriter<Checksummed<File>>,
    index: ChunkIndex,
    needles: NeedleBuilder,
    /// Field columns, when asked for (compaction).
    fields: Option<FieldsBuilder>,
}

/// A sink that checksums what goes through it (see [`DATA_CRC_KEY`]).
struct Checksummed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: std::io::Write> std::io::Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ChunkWriter {
    pub fn create(tenant_dir: &Path, id: String, day: String, zstd_level: i32) -> Result<ChunkWriter> {
        let props = writer_properties(zstd_level)?;
        let meta = ChunkMeta { id, day, min_ts: i64::MAX, max_ts: i64::MIN, rows: 0, streams: 0, bytes: 0 };
        let (pq_path, idx_path) = chunk_paths(tenant_dir, &meta);
        let dir = pq_path.parent().expect("chunk path has a parent");
        fs::create_dir_all(dir).map_err(io_err(dir.display()))?;
        let file = File::create(&pq_path).map_err(io_err(pq_path.display()))?;
        let file = Checksummed { inner: file, crc: crc32fast::Hasher::new(), len: 0 };
        let writer = ArrowWriter::try_new(file, log_schema(), Some(props))?;
        Ok(ChunkWriter { meta, pq_path, idx_path, writer, index: ChunkIndex::default(), needles: NeedleBuilder::default(), fields: None })
    }

    /// Also writes the chunk's [field columns](crate::fields).
    pub fn with_field_columns(mut self) -> Result<ChunkWriter> {
        self.fields = Some(FieldsBuilder::create(&self.pq_path)?);
        Ok(self)
    }

    pub fn rows(&self) -> u64 {
        self.meta.rows
    }

    /// Appends rows; `labels` names a stream the first time it appears.
    pub fn write(&mut self, batch: &RecordBatch, labels: impl Fn(u64) -> Option<Labels>) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let fps = batch.column(crate::schema::IDX_STREAM).as_primitive::<arrow::datatypes::UInt64Type>();
        let ts = batch.column(IDX_TS).as_primitive::<Int64Type>();
        for (i, line) in batch.column(crate::schema::IDX_LINE).as_string::<i32>().iter().enumerate() {
            let line = line.unwrap_or("");
            self.needles.add(ts.value(i), line.as_bytes());
            if let Some(f) = &mut self.fields {
                f.add(line)?;
            }
        }
        let mut i = 0;
        while i < n {
            let fp = fps.value(i);
            let mut j = i + 1;
            while j < n && fps.value(j) == fp {
                j += 1;
            }
            let (lo, hi) = (ts.value(i), ts.value(j - 1));
            // Readers rely on it: a stream's rows bound each other's times (see
            // `ScanPart::pieces`).
            let continues = self.index.streams.last().filter(|s| s.fp == fp).map(|s| s.max_ts);
            if continues.is_some_and(|m| m > lo) || ts.values()[i..j].windows(2).any(|w| w[0] > w[1]) {
                return Err(StoreError::InvalidInput("chunk rows must arrive sorted by stream, then time".into()));
            }
            match self.index.streams.last_mut() {
                Some(s) if s.fp == fp => {
                    s.rows += (j - i) as u64;
                    s.min_ts = s.min_ts.min(lo);
                    s.max_ts = s.max_ts.max(hi);
                }
                last => {
                    if last.is_some_and(|s| s.fp > fp) {
                        return Err(StoreError::InvalidInput("chunk rows must arrive sorted by stream".into()));
                    }
                    let l = labels(fp).ok_or_else(|| StoreError::InvalidInput(format!("no labels for stream {fp:016x}")))?;
                    let ordinal = self.index.streams.len() as u32;
                    self.index.labels.add(ordinal, &l);
                    self.index.streams.push(ChunkStream { fp, labels: l, row_start: self.meta.rows + i as u64, rows: (j - i) as u64, min_ts: lo, max_ts: hi });
                }
            }
            self.meta.min_ts = self.meta.min_ts.min(lo);
            self.meta.max_ts = self.meta.max_ts.max(hi);
            i = j;
        }
        // Pages must hold exactly one needle block each (a skipped block is a skipped
        // page). The Parquet writer closes a page only at the end of a write call's
        // mini-batches, once it holds the row limit: so no call may cross a block edge,
        // or the page runs on past it. Compaction and flushes hand over batches of any
        // size, and cut at stream edges.
        let block = crate::needle::BLOCK_ROWS;
        let mut at = 0;
        while at < n {
            let len = (block - (self.meta.rows as usize + at) % block).min(n - at);
            self.writer.write(&batch.slice(at, len))?;
            at += len;
        }
        self.meta.rows += n as u64;
        Ok(())
    }

    /// Closes and fsyncs both files; `None` (and no files) when no row was written.
    pub fn finish(self, cache: &Arc<ChunkCache>) -> Result<Option<Chunk>> {
        let ChunkWriter { mut meta, pq_path, idx_path, mut writer, index, needles, fields } = self;
        let needles = needles.finish();
        // Every row group out and through the writer's buffer: the checksum covers them all.
        writer.flush()?;
        writer.sync().map_err(io_err(pq_path.display()))?;
        let data = writer.inner();
        let data_crc = format!("{}:{:08x}", data.len, data.crc.clone().finalize());
        writer.append_key_value_metadata(KeyValue::new(DATA_CRC_KEY.to_string(), data_crc));
        writer.append_key_value_metadata(KeyValue::new(STREAMS_KEY.to_string(), encode_stream_labels(&index.streams)));
        let file = writer.into_inner()?.inner;
        if meta.rows == 0 {
            drop(file);
            if fields.is_some() {
                crate::fields::discard(&pq_path);
            }
            fs::remove_file(&pq_path).map_err(io_err(pq_path.display()))?;
            return Ok(None);
        }
        if let Some(f) = fields {
            f.finish()?;
        }
        file.sync_all().map_err(io_err(pq_path.display()))?;
        meta.bytes = file.metadata().map_err(io_err(pq_path.display()))?.len();
        meta.streams = index.streams.len() as u32;
        drop(file);
        let idx = index.encode();
        fs::write(&idx_path, &idx)
            .and_then(|()| File::open(&idx_path)?.sync_all())
            .map_err(io_err(idx_path.display()))?;
        needles.store(&needle_path(&pq_path))?;
        crate::wal::sync_dir(pq_path.parent().expect("chunk path has a parent"))?;
        // The needle index is not kept: a query reads it when it needs it. Under a steady
        // stream of pushes, keeping each flush's would fill the cache with indexes no
        // query has asked for.
        Ok(Some(Chunk::new(meta, index, pq_path, cache)))
    }
}

/// The [`STREAMS_KEY`] footer entry for `streams`.
fn encode_stream_labels(streams: &[ChunkStream]) -> String {
    let list: Vec<(String, BTreeMap<&str, &str>)> = streams.iter().map(|s| (format!("{:016x}", s.fp), s.labels.iter().collect())).collect();
    serde_json::to_string(&list).expect("labels serialize")
}

/// Reads a [`STREAMS_KEY`] footer entry back: the streams whose labels hash to their
/// fingerprint (an entry that does not is ignored, not trusted).
pub(crate) fn decode_stream_labels(value: &str) -> HashMap<u64, Labels> {
    let Ok(list) = serde_json::from_str::<Vec<(String, BTreeMap<String, String>)>>(value) else { return HashMap::new() };
    list.into_iter()
        .filter_map(|(fp, pairs)| {
            let fp = u64::from_str_radix(&fp, 16).ok()?;
            let labels = Labels::from_pairs(pairs).ok()?;
            (labels.fingerprint() == fp).then_some((fp, labels))
        })
        .collect()
}

/// Opens a live chunk named by a manifest: reads and checks its index.
pub(crate) fn open_chunk(tenant_dir: &Path, meta: ChunkMeta, cache: &Arc<ChunkCache>) -> Result<Chunk> {
    let (pq_path, idx_path) = chunk_paths(tenant_dir, &meta);
    let buf = fs::read(&idx_path).map_err(io_err(idx_path.display()))?;
    let index = ChunkIndex::decode(&buf)
        .ok_or_else(|| StoreError::Corrupt { path: idx_path.clone(), comment: "chunk index fails its checksum or does not parse".into() })?;
    Ok(Chunk::new(meta, index, pq_path, cache))
}

impl Chunk {
    /// Stream ordinals matching the matchers whose time range overlaps `[start, end)`.
    pub fn select(&self, ids: &RoaringBitmap, start: i64, end: i64) -> Vec<usize> {
        ids.iter()
            .map(|i| i as usize)
            .filter(|&i| self.index.streams.get(i).is_some_and(|s| s.min_ts < end && s.max_ts >= start))
            .collect()
    }

    /// Reads the rows of streams `ordinals` (ascending) within `[start, end)`.
    pub fn scan(&self, ordinals: &[usize], start: i64, end: i64, projection: Option<&[usize]>, batch_rows: usize) -> Result<ChunkScan> {
        self.scan_blocks(ordinals, None, None, start, end, projection, None, batch_rows, false)
    }

    /// [`Self::row_ranges`] cut to the rows `[lo, hi)` of the file when `window` is given.
    pub fn row_ranges_in(&self, ordinals: &[usize], blocks: Option<&[bool]>, window: Option<(u64, u64)>) -> Vec<(u64, u64)> {
        let mut ranges = self.row_ranges(ordinals, blocks);
        if let Some((lo, hi)) = window {
            ranges.retain_mut(|r| {
                *r = (r.0.max(lo), r.1.min(hi));
                r.0 < r.1
            });
        }
        ranges
    }

    /// Row ranges of streams `ordinals`, in file order, cut to the needle-index blocks
    /// marked in `blocks` (all rows when `None`).
    pub fn row_ranges(&self, ordinals: &[usize], blocks: Option<&[bool]>) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for &i in ordinals {
            let s = &self.index.streams[i];
            let (a, b) = (s.row_start, s.row_start + s.rows);
            let Some(blocks) = blocks else {
                out.push((a, b));
                continue;
            };
            let bs = crate::needle::BLOCK_ROWS as u64;
            for blk in a / bs..b.div_ceil(bs) {
                if blocks.get(blk as usize).copied().unwrap_or(true) {
                    let (x, y) = (a.max(blk * bs), b.min((blk + 1) * bs));
                    match out.last_mut() {
                        Some(last) if last.1 == x => last.1 = y,
                        _ => out.push((x, y)),
                    }
                }
            }
        }
        out
    }

    /// Whether stream `ordinal` has rows in a needle-index block marked true.
    pub fn stream_in_blocks(&self, ordinal: usize, blocks: &[bool]) -> bool {
        let s = &self.index.streams[ordinal];
        let bs = crate::needle::BLOCK_ROWS as u64;
        (s.row_start / bs..(s.row_start + s.rows).div_ceil(bs)).any(|b| blocks.get(b as usize).copied().unwrap_or(true))
    }

    /// [`Self::scan`], reading only the rows in the needle-index `blocks` marked true, and
    /// only rows `[lo, hi)` of the file when `window` is given (a share of a big scan).
    /// With `fields`, the batches end with the field columns (see
    /// [`crate::schema::with_field_columns`]). With `line_views`, lines the main reader
    /// reads come as `Utf8View`, views into the decompressed pages (see
    /// [`crate::LinePredicate`]).
    #[allow(clippy::too_many_arguments)]
    pub fn scan_blocks(
        &self,
        ordinals: &[usize],
        blocks: Option<&[bool]>,
        window: Option<(u64, u64)>,
        start: i64,
        end: i64,
        projection: Option<&[usize]>,
        fields: Option<&FieldRequest>,
        batch_rows: usize,
        line_views: bool,
    ) -> Result<ChunkScan> {
        let file = File::open(&self.path).map_err(io_err(self.path.display()))?;
        let footer = self.footer(&file)?;
        let ranges = self.row_ranges_in(ordinals, blocks, window);
        let needs_ts_filter = ordinals.iter().any(|&i| {
            let s = &self.index.streams[i];
            s.min_ts < start || s.max_ts >= end
        });

        // Read the requested columns plus `ts` when the time filter needs it.
        let wanted: Vec<usize> = projection.map(<[usize]>::to_vec).unwrap_or_else(|| (0..log_schema().fields().len()).collect());
        let mut read: Vec<usize> = wanted.clone();
        if needs_ts_filter && !read.contains(&IDX_TS) {
            read.push(IDX_TS);
        }
        read.sort_unstable();
        let ts_pos = read.iter().position(|&c| c == IDX_TS);
        let out_proj: Vec<usize> = wanted.iter().map(|c| read.iter().position(|r| r == c).expect("wanted is in read")).collect();

        // Field columns: lines are read only in the blocks where some row is not exact
        // or lacks a wanted value, by a reader of their own.
        let mut schema = log_schema().project(&wanted)?;
        let mut cursor = None;
        let mut line_at = None;
        let mut line_feed = None;
        if let Some(req) = fields {
            let index = self.fields_index();
            let line_pos = read.iter().position(|&c| c == IDX_LINE);
            if let (Some(ix), Some(pos), true) = (&index, line_pos, req.may_skip_lines) {
                let bs = crate::needle::BLOCK_ROWS as u64;
                let mut line_ranges: Vec<(u64, u64)> = Vec::new();
                for &(a, b) in &ranges {
                    for blk in a / bs..b.div_ceil(bs) {
                        if !ix.answers_every_row(blk as usize, &req.names) {
                            let (x, y) = (a.max(blk * bs), b.min((blk + 1) * bs));
                            match line_ranges.last_mut() {
                                Some(last) if last.1 == x => last.1 = y,
                                _ => line_ranges.push((x, y)),
                            }
                        }
                    }
                }
                // Compared by rows: `ranges` has a range per stream even where they touch.
                let rows = |r: &[(u64, u64)]| r.iter().map(|(a, b)| b - a).sum::<u64>();
                if rows(&line_ranges) < rows(&ranges) {
                    line_at = Some(pos);
                    if !line_ranges.is_empty() {
                        let file = File::open(&self.path).map_err(io_err(self.path.display()))?;
                        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer.clone());
                        let mask = ProjectionMask::roots(builder.parquet_schema(), [IDX_LINE]);
                        line_feed = reader_for(builder, &line_ranges, mask, batch_rows)?.map(LineFeed::new);
                    }
                }
            }
            schema = with_field_columns(&schema, req.names.len()).as_ref().clone();
            cursor = Some(FieldsCursor::new(index, req.names.clone(), ranges.clone())?);
        }
        let mut mask_cols = read.clone();
        if let Some(p) = line_at {
            mask_cols.remove(p);
        }
        let footer = match wanted.iter().position(|&c| c == IDX_LINE) {
            Some(out_line) if line_views && line_at.is_none() => {
                schema = crate::line_predicate::with_line_type(&schema, out_line, DataType::Utf8View).as_ref().clone();
                let file_schema = log_schema();
                let views = crate::line_predicate::with_line_type(&file_schema, IDX_LINE, DataType::Utf8View);
                ArrowReaderMetadata::try_new(footer.metadata().clone(), ArrowReaderOptions::new().with_schema(views))?
            }
            _ => footer,
        };
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer);
        let mask = ProjectionMask::roots(builder.parquet_schema(), mask_cols.iter().copied());
        let reader = reader_for(builder, &ranges, mask, batch_rows)?;
        Ok(ChunkScan {
            reader,
            ts_filter: ts_pos.filter(|_| needs_ts_filter).map(|p| (p, start, end)),
            out_proj,
            line_at,
            line_feed,
            fields: cursor,
            schema: Arc::new(schema),
        })
    }
}

/// A reader of the rows `ranges` (ascending) of the file, or `None` when there are none:
/// only the row groups that hold them, each cut by a row selection.
fn reader_for(builder: ParquetRecordBatchReaderBuilder<File>, ranges: &[(u64, u64)], mask: ProjectionMask, batch_rows: usize) -> Result<Option<ParquetRecordBatchReader>> {
    let mut row_groups = Vec::new();
    let mut selectors = Vec::new();
    let mut rg_start = 0u64;
    let mut ri = 0;
    for (rg, md) in builder.metadata().row_groups().iter().enumerate() {
        let rg_end = rg_start + md.num_rows() as u64;
        while ri < ranges.len() && ranges[ri].1 <= rg_start {
            ri += 1;
        }
        let mut pos = rg_start;
        let mut sel = Vec::new();
        let mut j = ri;
        while j < ranges.len() && ranges[j].0 < rg_end {
            let (a, b) = (ranges[j].0.max(rg_start), ranges[j].1.min(rg_end));
            if a > pos {
                sel.push(RowSelector::skip((a - pos) as usize));
            }
            sel.push(RowSelector::select((b - a) as usize));
            pos = b;
            j += 1;
        }
        if !sel.is_empty() {
            if pos < rg_end {
                sel.push(RowSelector::skip((rg_end - pos) as usize));
            }
            row_groups.push(rg);
            selectors.extend(sel);
        }
        rg_start = rg_end;
    }
    if row_groups.is_empty() {
        return Ok(None);
    }
    Ok(Some(builder.with_row_groups(row_groups).with_row_selection(RowSelection::from(selectors)).with_projection(mask).with_batch_size(batch_rows).build()?))
}

/// The lines of the rows that need one, read by a reader of their own, handed out in
/// order.
struct LineFeed {
    reader: ParquetRecordBatchReader,
    batch: Option<StringArray>,
    pos: usize,
}

impl LineFeed {
    fn new(reader: ParquetRecordBatchReader) -> LineFeed {
        LineFeed { reader, batch: None, pos: 0 }
    }

    /// A line column: the next line for each row that `needs` one, empty for the others.
    fn column(&mut self, needs: &[bool]) -> Result<ArrayRef> {
        let mut out = arrow::array::StringBuilder::with_capacity(needs.len(), 0);
        for &need in needs {
            if !need {
                out.append_value("");
                continue;
            }
            loop {
                if let Some(b) = self.batch.as_ref().filter(|b| self.pos < b.len()) {
                    out.append_value(b.value(self.pos));
                    self.pos += 1;
                    break;
                }
                match self.reader.next() {
                    Some(b) => {
                        self.batch = Some(b?.column(0).as_string::<i32>().clone());
                        self.pos = 0;
                    }
                    None => return Err(StoreError::InvalidInput("the line reader ended before the rows that need lines".into())),
                }
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

/// The batches of one chunk scan, already cut to the time range and projected.
pub struct ChunkScan {
    reader: Option<ParquetRecordBatchReader>,
    ts_filter: Option<(usize, i64, i64)>,
    out_proj: Vec<usize>,
    /// Where the `line` column goes when the main reader does not read it: lines from
    /// `line_feed` for the rows of blocks that need them, empty ones for the others.
    line_at: Option<usize>,
    line_feed: Option<LineFeed>,
    fields: Option<FieldsCursor>,
    schema: SchemaRef,
}

/// `n` empty strings, with no bytes behind them.
fn empty_lines(n: usize) -> ArrayRef {
    Arc::new(StringArray::new(OffsetBuffer::new_zeroed(n), Buffer::from(Vec::<u8>::new()), None))
}

impl ChunkScan {
    fn next_batch(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let n = batch.num_rows();
        let mut needs_line = Vec::new();
        let field_cols = match &mut self.fields {
            Some(f) => Some(f.next_columns(n, self.line_feed.is_some().then_some(&mut needs_line))?),
            None => None,
        };
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        if let Some(p) = self.line_at {
            let lines = match &mut self.line_feed {
                Some(feed) => feed.column(&needs_line)?,
                None => empty_lines(n),
            };
            cols.insert(p, lines);
        }
        let mut out: Vec<ArrayRef> = self.out_proj.iter().map(|&c| cols[c].clone()).collect();
        out.extend(field_cols.into_iter().flatten());
        let mut rows = n;
        if let Some((col, start, end)) = self.ts_filter {
            let ts: &Int64Array = cols[col].as_primitive::<Int64Type>();
            let keep: BooleanArray = ts.iter().map(|t| t.map(|t| t >= start && t < end)).collect();
            rows = keep.true_count();
            if rows < n {
                out = out.iter().map(|c| filter(c, &keep)).collect::<std::result::Result<_, _>>()?;
            }
        }
        if rows == 0 {
            return Ok(None);
        }
        Ok(Some(RecordBatch::try_new_with_options(self.schema.clone(), out, &RecordBatchOptions::new().with_row_count(Some(rows)))?))
    }
}

impl Iterator for ChunkScan {
    type Item = Result<RecordBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let batch = match self.reader.as_mut()?.next()? {
                Ok(b) => b,
                Err(e) => return Some(Err(e.into())),
            };
            match self.next_batch(batch) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Shared handle to a live chunk.
pub type ChunkRef = Arc<Chunk>;

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, Int64Array, UInt64Array};

    fn batch(rows: &[(u64, i64)]) -> RecordBatch {
        let n = rows.len();
        RecordBatch::try_new(
            log_schema(),
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("line {}", r.1)))),
                Arc::new(BinaryArray::from(vec![None::<&[u8]>; n])),
            ],
        )
        .unwrap()
    }

    /// Scans rely on a stream's rows being in time order in the file: the writer refuses
    /// rows that are not, within a batch and across batches.
    #[test]
    fn rows_must_arrive_sorted_by_stream_then_time() {
        let dir = tempfile::tempdir().unwrap();
        let labels = |fp: u64| Some(Labels::from_pairs([("s", fp.to_string())]).unwrap());
        let writer = || ChunkWriter::create(dir.path(), "c".into(), "2026-01-01".into(), 1).unwrap();
        let mut w = writer();
        w.write(&batch(&[(1, 10), (1, 10), (1, 11), (2, 5)]), labels).unwrap();
        w.write(&batch(&[(2, 5), (2, 9), (3, 1)]), labels).unwrap();
        assert!(w.write(&batch(&[(3, 0)]), labels).is_err(), "older than the stream's last row");
        let mut w = writer();
        assert!(w.write(&batch(&[(1, 10), (1, 9)]), labels).is_err(), "out of order within a batch");
        let mut w = writer();
        assert!(w.write(&batch(&[(2, 1), (1, 2)]), labels).is_err(), "streams out of order");
    }

    /// Every page of every column starts on a needle block edge, whatever the sizes of
    /// the batches written (compaction's are cut at stream edges), so a block the index
    /// rules out is a page no column decodes.
    #[test]
    fn pages_hold_one_needle_block_whatever_the_batch_sizes() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let dir = tempfile::tempdir().unwrap();
        let labels = |fp: u64| Some(Labels::from_pairs([("s", fp.to_string())]).unwrap());
        let mut w = ChunkWriter::create(dir.path(), "c".into(), "2026-01-01".into(), 1).unwrap();
        let block = crate::needle::BLOCK_ROWS;
        let (mut written, mut t) = (0usize, 0i64);
        for (k, size) in [1000usize, 3000, 5000, 1, 4095, 4097, 12_289, 700].into_iter().cycle().take(40).enumerate() {
            let rows: Vec<(u64, i64)> = (0..size).map(|_| { t += 1; (k as u64 / 3, t) }).collect();
            w.write(&batch(&rows), labels).unwrap();
            written += size;
        }
        let chunk = w.finish(&Arc::new(ChunkCache::new(1 << 20))).unwrap().unwrap();
        let file = File::open(&chunk.path).unwrap();
        let reader = SerializedFileReader::new_with_options(file, ReadOptionsBuilder::new().with_page_index().build()).unwrap();
        let md = reader.metadata();
        let mut first_row = 0i64;
        for (rg, columns) in md.row_groups().iter().zip(md.offset_index().expect("an offset index")) {
            assert_eq!(first_row % block as i64, 0, "row groups start on block edges");
            for (c, pages) in columns.iter().enumerate() {
                let starts: Vec<i64> = pages.page_locations().iter().map(|p| p.first_row_index).collect();
                let want: Vec<i64> = (0..rg.num_rows()).step_by(block).collect();
                assert_eq!(starts, want, "column {c}: one page per block");
            }
            first_row += rg.num_rows();
        }
        assert_eq!(first_row as usize, written);
    }

    /// Only the columns zstd shrinks are zstd-compressed: opening a zstd column costs
    /// every read a context (see `writer_properties`).
    #[test]
    fn only_lines_and_timestamps_are_compressed() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let labels = |fp: u64| Some(Labels::from_pairs([("s", fp.to_string())]).unwrap());
        let mut w = ChunkWriter::create(dir.path(), "c".into(), "2026-01-01".into(), 9).unwrap();
        w.write(&batch(&[(1, 1), (1, 2), (2, 3)]), labels).unwrap();
        let chunk = w.finish(&Arc::new(ChunkCache::new(1 << 20))).unwrap().unwrap();
        let reader = SerializedFileReader::new(File::open(&chunk.path).unwrap()).unwrap();
        for column in reader.metadata().row_group(0).columns() {
            // (A file does not record the zstd level.)
            let zstd = matches!(column.compression(), Compression::ZSTD(_));
            let want = matches!(column.column_path().string().as_str(), crate::schema::COL_LINE | crate::schema::COL_TS);
            assert_eq!(zstd, want, "{}: {:?}", column.column_path(), column.compression());
            assert!(zstd || column.compression() == Compression::UNCOMPRESSED);
        }
    }
}
