//! Field columns: what `| json` extracts from each line, kept per needle-index block
//! beside a compacted chunk (`<id>.fld`). A metric query that groups or unwraps by a few
//! JSON fields (`sum by (path) (rate({app="api"} | json [5m]))`) reads those fields'
//! columns instead of decompressing and parsing every line.
//!
//! A row is *exact* when [`json::flatten`] accepts its line and every key it emits is a
//! valid label name, emitted once, and not ending in `_extracted`. For such a row, `| json`
//! sets exactly the keys that have a value in the row's block columns, and in any order
//! (no two of its keys can end up as one label). Other rows (not JSON, keys to sanitise,
//! duplicate keys) are read from their lines. A key whose column would be big (ids and
//! timestamps: values that hardly compress) is listed but not stored: a query that wants
//! it reads that block's lines. Exact rows never carry a key their block does not list.
//!
//! Only compaction writes these files: ingest stays lean, and most of a day's rows end
//! up in compacted chunks. A missing or damaged file only means the lines are read.
//!
//! Layout: one zstd frame per stored (block, key) column, then the sealed footer (the
//! frames' length and CRC-32; per block its rows, which of them are exact, and its keys
//! with their frames), then the footer's length as a u64, little-endian. The whole file
//! is checked when first read, and ignored unless it is whole and fits its chunk: once a
//! scan has chosen not to read lines, a frame that did not decode could not be made up for.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, StringBuilder};

use crate::codec::{put_uvarint, seal, unseal};
use crate::error::{io_err, Result, StoreError};
use crate::json;
use crate::labels::is_valid_label_name;
use crate::needle::BLOCK_ROWS;

const MAGIC: &[u8; 8] = b"SILTFLD1";

/// Distinct keys kept per block: the rows of a block that bring more are not exact (a
/// line format with unbounded keys is read from its lines).
const MAX_KEYS: usize = 64;

/// A key's column is stored when its frame takes at most this many bytes per value (plus
/// [`FRAME_SLACK`]). On the benchmark's API logs levels, methods, paths, status codes and
/// user agents take under half a byte, durations 2.3; request ids, user ids, addresses,
/// byte counts and timestamps take 5 to 20 and are left to the lines.
const MAX_FRAME_BYTES_PER_VALUE: usize = 3;

/// Bytes a stored column may take beyond [`MAX_FRAME_BYTES_PER_VALUE`]: a frame's header,
/// and the dictionary of a small block (the last one of a chunk), which few rows share.
const FRAME_SLACK: usize = 256;

/// The most bytes a stored column may take decompressed (a bound a reader can trust).
const MAX_RAW_BYTES: usize = 16 << 20;

/// zstd level of the frames: they are small, and low-cardinality columns shrink to almost
/// nothing at any level.
const FRAME_ZSTD_LEVEL: i32 = 3;

/// The field-column file beside a chunk's Parquet file.
pub(crate) fn fields_path(parquet: &Path) -> PathBuf {
    parquet.with_extension("fld")
}

/// One key's column in the block being built: a dictionary of its distinct values, and
/// per row an index into it. Most keys of a log line take few values (levels, methods,
/// paths, status codes), so indexes compress to a fraction of a byte each, which the
/// repeated strings themselves do not.
struct KeyColumn {
    name: String,
    /// Distinct values, to their index (counted from 1).
    ids: HashMap<Box<[u8]>, u16>,
    /// The distinct values in index order, each as `uvarint(len)` and its bytes.
    dict: Vec<u8>,
    /// Per row so far: the value's index, 0 for none.
    rows: Vec<u16>,
    /// Rows with a value.
    values: u32,
    /// The last row (counted from 1) that emitted the key: a second emission is a duplicate.
    seen_in: u32,
}

/// Builds a chunk's field-column file from its lines, in file order.
pub(crate) struct FieldsBuilder {
    path: PathBuf,
    file: BufWriter<File>,
    written: u64,
    /// CRC-32 of the frames written: zstd's own frame checksum is optional, and a
    /// flipped bit could decode into other values.
    crc: crc32fast::Hasher,
    /// The footer's block entries so far, and how many.
    footer: Vec<u8>,
    blocks: u64,
    keys: Vec<KeyColumn>,
    by_name: HashMap<String, usize>,
    /// Rows in the current block, and which of them are exact.
    rows: u32,
    exact: Vec<u64>,
    exact_rows: u32,
    /// The current row's values: key, and a range of `scratch`.
    row: Vec<(usize, u32, u32)>,
    scratch: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl FieldsBuilder {
    pub(crate) fn create(parquet: &Path) -> Result<FieldsBuilder> {
        let path = fields_path(parquet);
        let file = File::create(&path).map_err(io_err(path.display()))?;
        let compressor = zstd::bulk::Compressor::new(FRAME_ZSTD_LEVEL).map_err(io_err(path.display()))?;
        Ok(FieldsBuilder {
            path,
            file: BufWriter::new(file),
            written: 0,
            crc: crc32fast::Hasher::new(),
            footer: Vec::new(),
            blocks: 0,
            keys: Vec::new(),
            by_name: HashMap::new(),
            rows: 0,
            exact: vec![0; BLOCK_ROWS.div_ceil(64)],
            exact_rows: 0,
            row: Vec::new(),
            scratch: Vec::new(),
            compressor,
        })
    }

    /// Adds the next row's line.
    pub(crate) fn add(&mut self, line: &str) -> Result<()> {
        let stamp = self.rows + 1;
        if line.trim_start().starts_with('{') && self.parse_row(line, stamp) {
            for &(k, a, b) in &self.row {
                let col = &mut self.keys[k];
                let v = &self.scratch[a as usize..b as usize];
                let id = match col.ids.get(v) {
                    Some(&id) => id,
                    None => {
                        // At most BLOCK_ROWS distinct values: ids fit in a u16.
                        let id = col.ids.len() as u16 + 1;
                        col.ids.insert(v.into(), id);
                        put_uvarint(&mut col.dict, v.len() as u64);
                        col.dict.extend_from_slice(v);
                        id
                    }
                };
                col.rows.resize(self.rows as usize, 0);
                col.rows.push(id);
                col.values += 1;
            }
            self.exact[self.rows as usize / 64] |= 1 << (self.rows % 64);
            self.exact_rows += 1;
        }
        self.rows += 1;
        if self.rows as usize == BLOCK_ROWS {
            self.close_block()?;
        }
        Ok(())
    }

    /// Parses a line into `row`; whether the row is exact.
    fn parse_row(&mut self, line: &str, stamp: u32) -> bool {
        let FieldsBuilder { keys, by_name, row, scratch, .. } = self;
        row.clear();
        scratch.clear();
        let mut exact = true;
        let parsed = json::flatten(line, &mut |k, v| {
            if !exact {
                return;
            }
            if !is_valid_label_name(k) || k.ends_with("_extracted") {
                exact = false;
                return;
            }
            // Lines of one stream mostly list their keys in the same order.
            let guess = row.last().map_or(0, |r| r.0 + 1);
            let idx = match keys.get(guess) {
                Some(c) if c.name == k => guess,
                _ => match by_name.get(k) {
                    Some(&i) => i,
                    None if keys.len() < MAX_KEYS => {
                        by_name.insert(k.to_string(), keys.len());
                        keys.push(KeyColumn { name: k.to_string(), ids: HashMap::new(), dict: Vec::new(), rows: Vec::new(), values: 0, seen_in: 0 });
                        keys.len() - 1
                    }
                    None => {
                        exact = false;
                        return;
                    }
                },
            };
            if keys[idx].seen_in == stamp {
                exact = false;
                return;
            }
            keys[idx].seen_in = stamp;
            let a = scratch.len() as u32;
            scratch.extend_from_slice(v.as_bytes());
            row.push((idx, a, scratch.len() as u32));
        });
        parsed.is_ok() && exact && self.scratch.len() <= u32::MAX as usize
    }

    /// Writes the block's stored columns and its footer entry, and starts the next block.
    fn close_block(&mut self) -> Result<()> {
        let n = self.rows;
        put_uvarint(&mut self.footer, u64::from(n));
        if self.exact_rows == 0 {
            self.footer.push(0);
        } else if self.exact_rows == n {
            self.footer.push(1);
        } else {
            self.footer.push(2);
            let bytes: Vec<u8> = self.exact.iter().flat_map(|w| w.to_le_bytes()).take((n as usize).div_ceil(8)).collect();
            self.footer.extend_from_slice(&bytes);
        }
        put_uvarint(&mut self.footer, self.keys.len() as u64);
        let mut raw = Vec::new();
        for col in &mut self.keys {
            col.rows.resize(n as usize, 0);
            // The distinct values, then the rows' indexes: a byte each for up to 255
            // values, two bytes otherwise.
            raw.clear();
            put_uvarint(&mut raw, col.ids.len() as u64);
            raw.extend_from_slice(&col.dict);
            if col.ids.len() < 256 {
                raw.extend(col.rows.iter().map(|&i| i as u8));
            } else {
                raw.extend(col.rows.iter().flat_map(|i| i.to_le_bytes()));
            }
            put_uvarint(&mut self.footer, col.name.len() as u64);
            self.footer.extend_from_slice(col.name.as_bytes());
            if col.values == 0 {
                self.footer.push(0);
                continue;
            }
            let frame = self.compressor.compress(&raw).map_err(io_err(self.path.display()))?;
            let stored = frame.len() <= MAX_FRAME_BYTES_PER_VALUE * col.values as usize + FRAME_SLACK && raw.len() <= MAX_RAW_BYTES;
            tracing::trace!(key = %col.name, values = col.values, distinct = col.ids.len(), raw = raw.len(), frame = frame.len(), stored, "field column");
            if !stored {
                self.footer.push(2);
                continue;
            }
            self.file.write_all(&frame).map_err(io_err(self.path.display()))?;
            self.crc.update(&frame);
            self.footer.push(1);
            put_uvarint(&mut self.footer, self.written);
            put_uvarint(&mut self.footer, frame.len() as u64);
            put_uvarint(&mut self.footer, raw.len() as u64);
            self.written += frame.len() as u64;
        }
        self.blocks += 1;
        self.keys.clear();
        self.by_name.clear();
        self.rows = 0;
        self.exact.fill(0);
        self.exact_rows = 0;
        Ok(())
    }

    /// Writes the footer and fsyncs the file.
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.rows > 0 {
            self.close_block()?;
        }
        let mut body = MAGIC.to_vec();
        put_uvarint(&mut body, self.written);
        body.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
        put_uvarint(&mut body, self.blocks);
        body.extend_from_slice(&self.footer);
        let footer = seal(body);
        let path = self.path.clone();
        let mut file = self.file.into_inner().map_err(|e| io_err(path.display())(e.into_error()))?;
        file.write_all(&footer)
            .and_then(|()| file.write_all(&(footer.len() as u64).to_le_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(io_err(path.display()))
    }
}

/// Which rows of a block are exact.
#[derive(Debug)]
enum Exact {
    None,
    All,
    Bits(Vec<u8>),
}

#[derive(Debug)]
enum Column {
    /// No exact row of the block has the key.
    Absent,
    /// A zstd frame at `offset`, `len` bytes long, `raw` bytes decompressed.
    Stored { offset: u64, len: usize, raw: usize },
    /// Listed but not stored: exact rows may have the key, only their lines tell.
    Unstored,
}

#[derive(Debug)]
struct Block {
    rows: u32,
    exact: Exact,
    keys: Vec<(Box<str>, Column)>,
}

impl Block {
    fn is_exact(&self, row: usize) -> bool {
        match &self.exact {
            Exact::None => false,
            Exact::All => true,
            Exact::Bits(b) => b.get(row / 8).is_some_and(|byte| byte >> (row % 8) & 1 == 1),
        }
    }

    /// Whether the exact rows' values of `names` are all in this block's columns.
    fn answers(&self, names: &[String]) -> bool {
        !self.keys.iter().any(|(k, c)| matches!(c, Column::Unstored) && names.iter().any(|n| **n == **k))
    }
}

/// A chunk's field-column directory (the footer), kept in memory once read.
#[derive(Debug)]
pub struct FieldsIndex {
    path: PathBuf,
    blocks: Vec<Block>,
}

impl FieldsIndex {
    /// Reads and checks a chunk's field-column file (for a chunk of `rows` rows); `None`
    /// when there is none (a flushed chunk) or it is damaged (then the lines are read).
    pub(crate) fn load(parquet: &Path, rows: u64) -> Option<FieldsIndex> {
        let path = fields_path(parquet);
        let read = |path: &Path| -> std::io::Result<Option<Vec<Block>>> {
            let mut f = File::open(path)?;
            let size = f.metadata()?.len();
            let mut len = [0u8; 8];
            f.seek(SeekFrom::Start(size.checked_sub(8).ok_or(std::io::ErrorKind::InvalidData)?))?;
            f.read_exact(&mut len)?;
            let len = u64::from_le_bytes(len);
            let start = size.checked_sub(8).and_then(|s| s.checked_sub(len)).ok_or(std::io::ErrorKind::InvalidData)?;
            let mut buf = vec![0; usize::try_from(len).map_err(|_| std::io::ErrorKind::InvalidData)?];
            f.seek(SeekFrom::Start(start))?;
            f.read_exact(&mut buf)?;
            let Some((data_len, data_crc, blocks)) = Self::decode(&buf, rows) else { return Ok(None) };
            if data_len != start {
                return Ok(None);
            }
            // The frames, checked a megabyte at a time.
            f.seek(SeekFrom::Start(0))?;
            let mut crc = crc32fast::Hasher::new();
            let mut chunk = vec![0; 1 << 20];
            let mut left = data_len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.read_exact(&mut chunk[..n])?;
                crc.update(&chunk[..n]);
                left -= n as u64;
            }
            Ok((crc.finalize() == data_crc).then_some(blocks))
        };
        let blocks = match read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable field-column file; the chunk's lines are read instead");
                return None;
            }
        };
        if blocks.is_none() {
            tracing::warn!(file = %path.display(), "ignoring a damaged field-column file; the chunk's lines are read instead");
        }
        Some(FieldsIndex { path, blocks: blocks? })
    }

    /// Bytes it takes in memory.
    pub(crate) fn memory_size(&self) -> usize {
        let block = |b: &Block| {
            let bits = match &b.exact {
                Exact::Bits(v) => v.len(),
                _ => 0,
            };
            std::mem::size_of::<Block>() + bits + b.keys.iter().map(|(name, _)| std::mem::size_of::<(Box<str>, Column)>() + name.len()).sum::<usize>()
        };
        std::mem::size_of::<Self>() + self.path.as_os_str().len() + self.blocks.iter().map(block).sum::<usize>()
    }

    /// The footer: the frames' length and CRC, and the blocks, which must cover the
    /// chunk's `rows` (full blocks but the last) with frames inside the frames' length.
    fn decode(buf: &[u8], rows: u64) -> Option<(u64, u32, Vec<Block>)> {
        let mut r = unseal(buf, MAGIC)?;
        let data_len = r.uvarint()?;
        let data_crc = u32::from_le_bytes(r.bytes(4)?.try_into().ok()?);
        let n = r.uvarint()?;
        if n != rows.div_ceil(BLOCK_ROWS as u64) {
            return None;
        }
        let mut blocks = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let full = blocks.len() + 1 < n as usize;
            let rows = u32::try_from(r.uvarint()?).ok().filter(|&r| r as usize <= BLOCK_ROWS && (!full || r as usize == BLOCK_ROWS))?;
            let exact = match r.u8()? {
                0 => Exact::None,
                1 => Exact::All,
                2 => Exact::Bits(r.bytes((rows as usize).div_ceil(8))?.to_vec()),
                _ => return None,
            };
            let nkeys = r.uvarint()?;
            let mut keys = Vec::with_capacity(nkeys.min(MAX_KEYS as u64) as usize);
            for _ in 0..nkeys {
                let name: Box<str> = r.str()?.into();
                let col = match r.u8()? {
                    0 => Column::Absent,
                    1 => {
                        let (offset, len) = (r.uvarint()?, r.uvarint()?);
                        if offset.checked_add(len)? > data_len || len > MAX_RAW_BYTES as u64 {
                            return None;
                        }
                        let raw = usize::try_from(r.uvarint()?).ok().filter(|&l| l <= MAX_RAW_BYTES)?;
                        Column::Stored { offset, len: len as usize, raw }
                    }
                    2 => Column::Unstored,
                    _ => return None,
                };
                keys.push((name, col));
            }
            blocks.push(Block { rows, exact, keys });
        }
        let covered: u64 = blocks.iter().map(|b| u64::from(b.rows)).sum();
        (r.is_empty() && covered == rows).then_some((data_len, data_crc, blocks))
    }

    /// Whether every row of block `b` is exact and has the values of `names` stored: a
    /// scan of such blocks alone needs no line.
    pub(crate) fn answers_every_row(&self, b: usize, names: &[String]) -> bool {
        self.blocks.get(b).is_some_and(|blk| matches!(blk.exact, Exact::All) && blk.answers(names))
    }
}

/// Hands out the field columns of a scan's rows, batch by batch, in file order.
pub(crate) struct FieldsCursor {
    index: Option<Arc<FieldsIndex>>,
    file: Option<File>,
    names: Arc<Vec<String>>,
    /// The rows of the file the scan reads, in order, and the next one.
    ranges: Vec<(u64, u64)>,
    range: usize,
    next: u64,
    /// The block decoded last, whether its exact rows can be answered, and per name its
    /// values (per row: a range of the buffer, or none).
    block: Option<usize>,
    usable: bool,
    /// Whether every row of the block is exact and answered ([`FieldsIndex::answers_every_row`]).
    answers_all: bool,
    columns: Vec<(String, Vec<Option<(u32, u32)>>)>,
}

impl FieldsCursor {
    /// Opens the field-column file at once: a chunk retired by maintenance after the
    /// scan started has its files removed, and the open handle keeps this one readable.
    pub(crate) fn new(index: Option<Arc<FieldsIndex>>, names: Arc<Vec<String>>, ranges: Vec<(u64, u64)>) -> Result<FieldsCursor> {
        let next = ranges.first().map_or(0, |r| r.0);
        let columns = names.iter().map(|_| (String::new(), Vec::new())).collect();
        let file = match &index {
            Some(ix) => Some(File::open(&ix.path).map_err(io_err(ix.path.display()))?),
            None => None,
        };
        Ok(FieldsCursor { index, file, names, ranges, range: 0, next, block: None, usable: false, answers_all: false, columns })
    }

    /// The columns of the next `n` rows: whether each is exact, then per name its value
    /// (null when the row has none or is not exact). With `needs_line`, also says for
    /// each row whether its line is needed: whether its block has a row that is not
    /// exact or lacks a wanted value (see [`FieldsIndex::answers_every_row`]).
    pub(crate) fn next_columns(&mut self, n: usize, mut needs_line: Option<&mut Vec<bool>>) -> Result<Vec<ArrayRef>> {
        let mut exact = BooleanBuilder::with_capacity(n);
        let mut values: Vec<StringBuilder> = self.names.iter().map(|_| StringBuilder::with_capacity(n, n * 4)).collect();
        let mut left = n;
        while left > 0 {
            let Some(&(_, end)) = self.ranges.get(self.range) else {
                return Err(StoreError::InvalidInput("field columns asked for more rows than the scan reads".into()));
            };
            let take = (end - self.next).min(left as u64);
            match self.index.clone() {
                Some(index) => {
                    for row in self.next..self.next + take {
                        self.row_into(&index, row, &mut exact, &mut values)?;
                        if let Some(needs) = needs_line.as_deref_mut() {
                            needs.push(!self.answers_all);
                        }
                    }
                }
                None => {
                    if let Some(needs) = needs_line.as_deref_mut() {
                        needs.extend(std::iter::repeat_n(true, take as usize));
                    }
                    exact.append_n(take as usize, false);
                    values.iter_mut().for_each(|v| (0..take).for_each(|_| v.append_null()));
                }
            }
            self.next += take;
            left -= take as usize;
            if self.next == end {
                self.range += 1;
                self.next = self.ranges.get(self.range).map_or(end, |r| r.0);
            }
        }
        let mut out: Vec<ArrayRef> = Vec::with_capacity(1 + values.len());
        out.push(Arc::new(exact.finish()));
        out.extend(values.iter_mut().map(|v| Arc::new(v.finish()) as ArrayRef));
        Ok(out)
    }

    fn row_into(&mut self, index: &FieldsIndex, row: u64, exact: &mut BooleanBuilder, values: &mut [StringBuilder]) -> Result<()> {
        let b = (row / BLOCK_ROWS as u64) as usize;
        if self.block != Some(b) {
            self.load_block(index, b)?;
        }
        let i = (row % BLOCK_ROWS as u64) as usize;
        let is_exact = self.usable && index.blocks[b].is_exact(i);
        exact.append_value(is_exact);
        for ((buf, spans), out) in self.columns.iter().zip(values.iter_mut()) {
            match spans.get(i).copied().flatten().filter(|_| is_exact) {
                Some((a, z)) => out.append_value(buf.get(a as usize..z as usize).ok_or_else(|| self.corrupt("a value is not UTF-8"))?),
                None => out.append_null(),
            }
        }
        Ok(())
    }

    fn corrupt(&self, comment: &str) -> StoreError {
        let path = self.index.as_ref().map_or_else(PathBuf::new, |i| i.path.clone());
        StoreError::Corrupt { path, comment: format!("field columns: {comment}") }
    }

    /// Decodes the wanted columns of block `b`.
    fn load_block(&mut self, index: &FieldsIndex, b: usize) -> Result<()> {
        let blk = index.blocks.get(b).ok_or_else(|| self.corrupt("a row beyond the last block"))?;
        self.block = Some(b);
        self.usable = blk.answers(&self.names);
        self.answers_all = index.answers_every_row(b, &self.names);
        for (name, (text, spans)) in self.names.iter().zip(self.columns.iter_mut()) {
            text.clear();
            spans.clear();
            let Some((offset, len, raw)) = blk.keys.iter().find(|(k, _)| **k == **name).and_then(|(_, c)| match c {
                Column::Stored { offset, len, raw } => Some((*offset, *len, *raw)),
                _ => None,
            }) else {
                continue;
            };
            let file = self.file.as_mut().ok_or_else(|| StoreError::InvalidInput("field columns read without their file".into()))?;
            let mut frame = vec![0; len];
            file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut frame)).map_err(io_err(index.path.display()))?;
            let bad = || StoreError::Corrupt { path: index.path.clone(), comment: format!("field columns: block {b} key {name} does not decode") };
            let buf = decompress_frame(&frame, raw).filter(|d| d.len() == raw).ok_or_else(bad)?;
            *text = decode_column(&buf, blk.rows as usize, spans).ok_or_else(bad)?;
        }
        Ok(())
    }
}

/// A frame of at most `raw` bytes, decompressed with this thread's context. A query reads
/// a frame per block and key; a fresh context for each would ask the CPU for its features
/// each time (`cpuid`, which traps to the hypervisor in a virtual machine).
fn decompress_frame(frame: &[u8], raw: usize) -> Option<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static CONTEXT: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    }
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Decompressor::new().ok();
        }
        c.as_mut()?.decompress(frame, raw).ok()
    })
}

/// Reads a column (see [`KeyColumn`]): its distinct values, checked to be UTF-8 once,
/// and per row the range of them its value is (`None` for a row without one). `None`
/// when the bytes do not decode.
fn decode_column(buf: &[u8], rows: usize, spans: &mut Vec<Option<(u32, u32)>>) -> Option<String> {
    let mut r = crate::codec::Reader::new(buf);
    let n = usize::try_from(r.uvarint()?).ok().filter(|&n| n <= rows)?;
    let mut dict = Vec::with_capacity(n);
    let mut text = Vec::new();
    for _ in 0..n {
        let len = usize::try_from(r.uvarint()?).ok()?;
        let at = text.len();
        text.extend_from_slice(r.bytes(len)?);
        dict.push(Some((at as u32, text.len() as u32)));
    }
    // Valid as a whole; a range that splits a character is caught where it is sliced.
    let text = String::from_utf8(text).ok()?;
    let width = if n < 256 { 1 } else { 2 };
    let idx = r.bytes(rows * width)?;
    if !r.is_empty() {
        return None;
    }
    for i in 0..rows {
        let id = if width == 1 { usize::from(idx[i]) } else { usize::from(u16::from_le_bytes([idx[2 * i], idx[2 * i + 1]])) };
        spans.push(match id {
            0 => None,
            id => *dict.get(id - 1)?,
        });
    }
    Some(text)
}

/// Removes a field-column file that was started but not finished.
pub(crate) fn discard(parquet: &Path) {
    let path = fields_path(parquet);
    if let Err(e) = fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove an unfinished field-column file; the next start removes it");
        }
    }
}

/// The field columns a scan hands out after its projected columns: `__fields_exact`,
/// then one per name (see [`crate::schema::with_field_columns`]).
#[derive(Debug, Clone)]
pub struct FieldRequest {
    pub names: Arc<Vec<String>>,
    /// Whether a chunk may leave the `line` column empty where every row it reads is exact
    /// and has the names' values stored (the caller then needs no line of an exact row).
    pub may_skip_lines: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    /// Writes `lines` as a chunk's field columns; the path stands for the chunk's Parquet
    /// file, and its name says how many rows it has.
    fn build(dir: &Path, lines: &[String]) -> PathBuf {
        let pq = dir.join(format!("{}.parquet", lines.len()));
        let mut b = FieldsBuilder::create(&pq).unwrap();
        for l in lines {
            b.add(l).unwrap();
        }
        b.finish().unwrap();
        pq
    }

    fn rows_of(pq: &Path) -> u64 {
        pq.file_stem().unwrap().to_str().unwrap().parse().unwrap()
    }

    /// What `| json` emits for a line, when the row should be exact.
    fn exact_pairs(line: &str) -> Option<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        json::flatten(line, &mut |k, v| out.push((k.to_string(), v.to_string()))).ok()?;
        let mut names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let distinct = names.windows(2).all(|w| w[0] != w[1]);
        (distinct && names.iter().all(|k| is_valid_label_name(k) && !k.ends_with("_extracted"))).then_some(out)
    }

    fn lines(n: usize) -> Vec<String> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (x >> 33) as usize;
                match r % 23 {
                    0 => format!("level=info msg=\"not json\" i={i}"),
                    1 => r#"{"a":1,"a":2}"#.to_string(),
                    2 => r#"{"a-b":"x","path":"/q"}"#.to_string(),
                    3 => r#"{"x_extracted":"1"}"#.to_string(),
                    4 => format!(r#"{{"path":"/p{}","ms":"#, r % 3),
                    5 => String::new(),
                    6 => "{}".to_string(),
                    7 => format!(r#" {{"msg":"quote \" and \u00e9 {i}","n":null,"arr":[1,{{"z":2}}],"nested":{{"a":{{"b":"deep"}}}}}}"#),
                    _ => format!(
                        r#"{{"level":"{}","path":"/api/v{}/x","ms":{}.{},"status":{},"id":"{:016x}{:016x}","empty":""}}"#,
                        ["info", "warn", "error"][r % 3],
                        r % 4,
                        r % 41,
                        r % 10,
                        200 + (r % 4) * 100,
                        x,
                        x.rotate_left(17)
                    ),
                }
            })
            .collect()
    }

    /// Every row read back, batch by batch: (exact, value per name).
    fn read_all(pq: &Path, names: &[&str], ranges: Vec<(u64, u64)>) -> Vec<(bool, Vec<Option<String>>)> {
        let index = FieldsIndex::load(pq, rows_of(pq)).map(Arc::new);
        assert!(index.is_some());
        let total: u64 = ranges.iter().map(|r| r.1 - r.0).sum();
        let names = Arc::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut c = FieldsCursor::new(index, names.clone(), ranges).unwrap();
        let mut out = Vec::new();
        let mut left = total as usize;
        while left > 0 {
            let n = left.min(1000);
            let cols = c.next_columns(n, None).unwrap();
            let exact = cols[0].as_boolean();
            for i in 0..n {
                let vals = cols[1..].iter().map(|a| a.as_string::<i32>()).map(|a| a.is_valid(i).then(|| a.value(i).to_string())).collect();
                out.push((exact.value(i), vals));
            }
            left -= n;
        }
        assert!(c.next_columns(1, None).is_err(), "no rows beyond the ranges");
        out
    }

    #[test]
    fn exact_rows_give_what_json_gives() {
        let dir = tempfile::tempdir().unwrap();
        let lines = lines(2 * BLOCK_ROWS + 321);
        let pq = build(dir.path(), &lines);
        let names = ["level", "path", "ms", "status", "empty", "msg", "nested_a_b", "a", "n", "arr", "missing"];
        let ranges = vec![(5, 100), (BLOCK_ROWS as u64 - 3, BLOCK_ROWS as u64 + 7), (2 * BLOCK_ROWS as u64, lines.len() as u64)];
        let rows: Vec<u64> = ranges.iter().flat_map(|&(a, b)| a..b).collect();
        let got = read_all(&pq, &names, ranges);
        assert_eq!(got.len(), rows.len());
        // `msg` varies too much to be stored: its blocks are read from their lines.
        let index = FieldsIndex::load(&pq, rows_of(&pq)).unwrap();
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert!(!index.blocks[0].answers(&owned) && !index.blocks[1].answers(&owned), "full blocks leave `msg` unstored");
        assert!(index.blocks.iter().all(|b| b.answers(&owned[..5])), "level, path, ms, status and empty are stored: {:?}", index.blocks.iter().map(|b| &b.keys).collect::<Vec<_>>());
        let mut exact = 0;
        for (&row, (is_exact, vals)) in rows.iter().zip(&got) {
            let line = &lines[row as usize];
            let want = exact_pairs(line).filter(|_| index.blocks[row as usize / BLOCK_ROWS].answers(&owned));
            assert_eq!(*is_exact, want.is_some(), "row {row}: {line}");
            let Some(want) = want else {
                assert!(vals.iter().all(Option::is_none));
                continue;
            };
            exact += 1;
            for (name, v) in names.iter().zip(vals) {
                let w = want.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                assert_eq!(v, &w, "row {row} {name}: {line}");
            }
        }
        assert!(exact < 321, "only the last, small block can answer `msg`");
        // Without `msg`, the exact rows are answered.
        let names = &names[..5];
        let ranges = vec![(0, lines.len() as u64)];
        let got = read_all(&pq, names, ranges);
        let mut exact = 0;
        for (row, (is_exact, vals)) in got.iter().enumerate() {
            let line = &lines[row];
            let want = exact_pairs(line);
            assert_eq!(*is_exact, want.is_some(), "row {row}: {line}");
            let Some(want) = want else { continue };
            exact += 1;
            for (name, v) in names.iter().zip(vals) {
                let w = want.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                assert_eq!(v, &w, "row {row} {name}: {line}");
            }
        }
        assert!(exact > lines.len() / 2, "{exact} of {}", lines.len());
    }

    #[test]
    fn a_wanted_key_left_unstored_makes_its_block_read_from_lines() {
        let dir = tempfile::tempdir().unwrap();
        let lines = lines(BLOCK_ROWS + 10);
        let pq = build(dir.path(), &lines);
        // `id` is random hex: too big to store in a full block, so none of its rows can be
        // answered with it.
        let got = read_all(&pq, &["path", "id"], vec![(0, lines.len() as u64)]);
        assert!(got[..BLOCK_ROWS].iter().all(|(exact, _)| !exact));
        let index = FieldsIndex::load(&pq, rows_of(&pq)).unwrap();
        assert!(!index.answers_every_row(0, &["path".to_string()]), "the block has lines that are not JSON");
    }

    #[test]
    fn blocks_of_json_lines_need_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..BLOCK_ROWS + 5).map(|i| format!(r#"{{"path":"/p{}","ms":{}}}"#, i % 7, i % 50)).collect();
        let pq = build(dir.path(), &lines);
        let index = FieldsIndex::load(&pq, rows_of(&pq)).unwrap();
        let names = vec!["path".to_string(), "ms".to_string(), "other".to_string()];
        assert!(index.answers_every_row(0, &names) && index.answers_every_row(1, &names));
        assert!(!index.answers_every_row(2, &names), "no such block");
    }

    #[test]
    fn a_damaged_or_missing_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(FieldsIndex::load(&dir.path().join("1.parquet"), 1).is_none());
        let pq = build(dir.path(), &lines(100));
        assert!(FieldsIndex::load(&pq, 100).is_some());
        assert!(FieldsIndex::load(&pq, 101).is_none(), "a file for another number of rows");
        let path = fields_path(&pq);
        let good = fs::read(&path).unwrap();
        // A bit flipped in the footer, in a frame, or a file cut short.
        for at in [good.len() - 20, 10] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            assert!(FieldsIndex::load(&pq, 100).is_none(), "flipped at {at}");
        }
        fs::write(&path, &good[..3]).unwrap();
        assert!(FieldsIndex::load(&pq, 100).is_none());
    }
}
