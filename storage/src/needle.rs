//! The needle index: per chunk and per block of [`BLOCK_ROWS`] rows, a Bloom filter of
//! sampled substrings of the lines, so that `|= "literal"` skips the blocks (Parquet pages)
//! that cannot contain the literal. Beyond Loki, which reads every line.
//!
//! What goes in, and why it is exact for substring search: lines are cut into *runs* of
//! word bytes (ASCII letters, digits, `_`, and any non-ASCII byte). In each run, every
//! window of [`WINDOW`] consecutive 8-byte n-grams contributes its *minimizer*, the n-gram
//! with the smallest hash. A window's minimizer depends only on the window's bytes. So if
//! a line contains the literal, every window that lies inside one run of the literal lies
//! inside a run of the line too (a run of the literal is part of a run of the line) and
//! its minimizer was indexed. A block whose filter lacks any of them cannot match. Literals
//! without such a window (runs shorter than [`MIN_RUN`] bytes) do not prune.
//!
//! Sampling keeps it small: template words repeat and are stored once per block; unique
//! tokens (ids, hashes) cost a few filter entries each, at 10 bits per entry.
//!
//! Each block also records its time range, so a query over part of a day reads only the
//! blocks (pages) of that part.
//!
//! File: `<id>.ngr` beside the chunk: magic, block size, then per block its time range and
//! the filter's words; a CRC-32 at the end. Chunks without one (older, or damaged) are
//! simply not pruned.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::Path;

use crate::codec::{put_uvarint, seal, unseal};
use crate::error::{io_err, Result};

const MAGIC: &[u8; 8] = b"SILTNGR3";
/// The previous version, whose probes reduce hashes to bit positions by division (slow
/// to build): still read, never written.
const MAGIC_V2: &[u8; 8] = b"SILTNGR2";
/// Rows per filter block; chunk pages hold the same number of rows, so a skipped block
/// is a skipped page in every column.
pub const BLOCK_ROWS: usize = 4096;
const NGRAM: usize = 8;
/// N-grams per window.
const WINDOW: usize = 8;
/// The shortest run that has a full window: shorter literal runs cannot prune.
pub const MIN_RUN: usize = NGRAM + WINDOW - 1;
// Long runs are found by and-ing shifted bit masks, 8 bits and then the rest.
const _: () = assert!(MIN_RUN > 8 && MIN_RUN <= 16);
const BITS_PER_ENTRY: usize = 10;
const PROBES: u64 = 6;

#[inline]
fn mix(mut x: u64) -> u64 {
    // splitmix64's finalizer: every input bit moves every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Bit `i` set: byte `i` is a word byte (an ASCII letter or digit, `_`, or any non-ASCII
/// byte). Written so that the test compiles to vector compares (this runs for every byte
/// flushed), then packed eight flags at a time by a multiply that moves flag `j` of a
/// word to bit `56 + j`.
fn word_bits(group: &[u8; 64]) -> u64 {
    let mut flags = [0u8; 64];
    for (f, &b) in flags.iter_mut().zip(group) {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        *f = u8::from(letter | digit | (b == b'_') | (b >= 0x80));
    }
    flags.chunks_exact(8).enumerate().fold(0u64, |m, (k, eight)| {
        let packed = u64::from_le_bytes(eight.try_into().expect("8 flags")).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        m | packed << (8 * k)
    })
}

/// Reusable buffers for [`minimizers`].
#[derive(Default)]
struct Scratch {
    /// Bit `i` set: byte `i` of the text is a word byte.
    words: Vec<u64>,
    /// Bit `i` set: bytes `i..i + MIN_RUN` are all word bytes.
    long: Vec<u64>,
    hashes: Vec<u64>,
    /// Minimum from the start of each aligned group of `WINDOW` hashes up to here.
    prefix: Vec<u64>,
    /// Minimum from here to the end of its group.
    suffix: Vec<u64>,
}

/// The first position at or after `from` whose bit in `words` is `set`; past the end
/// when there is none.
fn next_bit(words: &[u64], from: usize, set: bool) -> usize {
    let mut w = from / 64;
    if w >= words.len() {
        return from;
    }
    let flip = if set { 0 } else { u64::MAX };
    let mut bits = (words[w] ^ flip) & (u64::MAX << (from % 64));
    loop {
        if bits != 0 {
            return w * 64 + bits.trailing_zeros() as usize;
        }
        w += 1;
        if w == words.len() {
            return w * 64;
        }
        bits = words[w] ^ flip;
    }
}

/// Calls `f` with the minimizer hash of every window of every run of `text`, skipping
/// a window whose minimizer equals the previous window's.
fn minimizers(text: &[u8], scratch: &mut Scratch, mut f: impl FnMut(u64)) {
    // Classify every byte first, without branches, then find the runs a word of bits at
    // a time: branching on each byte mispredicts at every run boundary.
    let mut words = std::mem::take(&mut scratch.words);
    words.clear();
    let mut groups = text.chunks_exact(64);
    words.extend(groups.by_ref().map(|c| word_bits(c.try_into().expect("64 bytes"))));
    let rest = groups.remainder();
    if !rest.is_empty() {
        // Padded with zero bytes, which are not word bytes.
        let mut last = [0u8; 64];
        last[..rest.len()].copy_from_slice(rest);
        words.push(word_bits(&last));
    }
    // Bit `i` set: bytes `i..i + MIN_RUN` are all word bytes. Most runs in log lines are
    // shorter (words, numbers, short ids); this finds the long ones a word of bits at a
    // time instead of stepping through every run. The first such bit past the end of a
    // run is the start of the next long run, since the byte before it is not a word byte.
    let mut long = std::mem::take(&mut scratch.long);
    long.clear();
    long.extend((0..words.len()).map(|w| {
        let x = u128::from(words[w]) | u128::from(words.get(w + 1).copied().unwrap_or(0)) << 64;
        let two = x & (x >> 1);
        let four = two & (two >> 2);
        let eight = four & (four >> 4);
        (eight & (eight >> (MIN_RUN - 8))) as u64
    }));
    let n = text.len();
    let mut start = next_bit(&long, 0, true);
    while start < n {
        let end = next_bit(&words, start, false).min(n);
        debug_assert!(end - start >= MIN_RUN);
        run_minimizers(&text[start..end], scratch, &mut f);
        start = next_bit(&long, end, true);
    }
    scratch.words = words;
    scratch.long = long;
}

/// [`minimizers`] of one run, at least [`MIN_RUN`] bytes long. A window of `WINDOW`
/// hashes spans at most two aligned groups, so its minimum is the minimum of a suffix of
/// one group and a prefix of the next: three comparisons per hash and no branches that
/// depend on the data, where a queue of candidates mispredicts on every line.
fn run_minimizers(run: &[u8], s: &mut Scratch, f: &mut impl FnMut(u64)) {
    let h = &mut s.hashes;
    h.clear();
    h.extend(run.windows(NGRAM).map(|g| mix(u64::from_le_bytes(g.try_into().expect("8 bytes")))));
    s.prefix.clear();
    s.prefix.extend_from_slice(h);
    s.suffix.clear();
    s.suffix.extend_from_slice(h);
    for (pre, suf) in s.prefix.chunks_mut(WINDOW).zip(s.suffix.chunks_mut(WINDOW)) {
        for k in 1..pre.len() {
            pre[k] = pre[k].min(pre[k - 1]);
        }
        for k in (0..suf.len() - 1).rev() {
            suf[k] = suf[k].min(suf[k + 1]);
        }
    }
    let mut last = None;
    for (&suf, &pre) in s.suffix.iter().zip(&s.prefix[WINDOW - 1..]) {
        let m = suf.min(pre);
        if last != Some(m) {
            f(m);
            last = Some(m);
        }
    }
}

/// The filter entries a literal needs; empty when the literal cannot prune.
pub fn literal_keys(literal: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    minimizers(literal, &mut Scratch::default(), |h| out.push(h));
    out.sort_unstable();
    out.dedup();
    out
}

#[derive(Debug, Clone)]
struct Bloom {
    words: Vec<u64>,
    /// Probes as version 2 files do (see [`probes`]).
    v2: bool,
    /// The block's time range, inclusive.
    min_ts: i64,
    max_ts: i64,
}

impl Bloom {
    fn build(keys: &KeySet, v2: bool) -> Bloom {
        let bits = (keys.len() * BITS_PER_ENTRY).max(64).next_multiple_of(64);
        let mut words = vec![0u64; bits / 64];
        for &k in keys {
            for bit in probes(k, bits as u64, v2) {
                words[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        Bloom { words, v2, min_ts: i64::MAX, max_ts: i64::MIN }
    }

    fn contains(&self, k: u64) -> bool {
        let bits = self.words.len() as u64 * 64;
        bits > 0 && probes(k, bits, self.v2).all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// The bit positions of key `k` in a filter of `bits` bits: double hashing, each value
/// mapped into `[0, bits)` by its high bits (a multiply; version 2 files used the
/// remainder, a division per probe, which made building the filters a tenth of ingest).
fn probes(k: u64, bits: u64, v2: bool) -> impl Iterator<Item = u64> {
    let h1 = k;
    let h2 = mix(k ^ 0x9e37_79b9_7f4a_7c15) | 1;
    (0..PROBES).map(move |i| {
        let h = h1.wrapping_add(i.wrapping_mul(h2));
        if v2 {
            h % bits
        } else {
            ((u128::from(h) * u128::from(bits)) >> 64) as u64
        }
    })
}

/// Builds a chunk's filters as its rows are written.
/// A set of keys that are hashes already.
type KeySet = HashSet<u64, crate::prehashed::Prehashed>;

pub(crate) struct NeedleBuilder {
    blocks: Vec<Bloom>,
    current: KeySet,
    rows_in_block: usize,
    min_ts: i64,
    max_ts: i64,
    scratch: Scratch,
    /// Builds version 2 filters (only tests do, to check that old files still read).
    v2: bool,
}

impl Default for NeedleBuilder {
    fn default() -> Self {
        NeedleBuilder { blocks: Vec::new(), current: KeySet::default(), rows_in_block: 0, min_ts: i64::MAX, max_ts: i64::MIN, scratch: Scratch::default(), v2: false }
    }
}

impl NeedleBuilder {
    pub fn add(&mut self, ts: i64, line: &[u8]) {
        let cur = &mut self.current;
        minimizers(line, &mut self.scratch, |h| {
            cur.insert(h);
        });
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.rows_in_block += 1;
        if self.rows_in_block == BLOCK_ROWS {
            self.close_block();
        }
    }

    fn close_block(&mut self) {
        let mut b = Bloom::build(&self.current, self.v2);
        (b.min_ts, b.max_ts) = (self.min_ts, self.max_ts);
        self.blocks.push(b);
        self.current.clear();
        self.rows_in_block = 0;
        (self.min_ts, self.max_ts) = (i64::MAX, i64::MIN);
    }

    pub fn finish(mut self) -> NeedleIndex {
        if self.rows_in_block > 0 {
            self.close_block();
        }
        NeedleIndex { blocks: self.blocks }
    }
}

/// A chunk's filters, one per block of rows.
#[derive(Debug, Clone)]
pub struct NeedleIndex {
    blocks: Vec<Bloom>,
}

impl NeedleIndex {
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Bytes of filter data.
    pub fn size(&self) -> usize {
        self.blocks.iter().map(|b| b.words.len() * 8).sum()
    }

    /// Bytes it takes in memory.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.blocks.len() * std::mem::size_of::<Bloom>() + self.size()
    }

    /// The earliest and latest timestamps of block `b`'s rows.
    pub fn block_time(&self, b: usize) -> Option<(i64, i64)> {
        self.blocks.get(b).map(|b| (b.min_ts, b.max_ts))
    }

    /// Which blocks may hold a row in `[start, end)` whose line satisfies every clause, a
    /// clause being alternatives (`|= "a" or "b"`) given as their [`literal_keys`].
    pub fn candidate_blocks(&self, clauses: &[Vec<Vec<u64>>], start: i64, end: i64) -> Vec<bool> {
        self.blocks
            .iter()
            .map(|b| b.min_ts < end && b.max_ts >= start && clauses.iter().all(|alts| alts.iter().any(|keys| keys.iter().all(|&k| b.contains(k)))))
            .collect()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = if self.blocks.first().is_some_and(|b| b.v2) { MAGIC_V2.to_vec() } else { MAGIC.to_vec() };
        put_uvarint(&mut out, BLOCK_ROWS as u64);
        put_uvarint(&mut out, self.blocks.len() as u64);
        for b in &self.blocks {
            out.extend_from_slice(&b.min_ts.to_le_bytes());
            out.extend_from_slice(&b.max_ts.to_le_bytes());
            put_uvarint(&mut out, b.words.len() as u64);
            for w in &b.words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        seal(out)
    }

    pub(crate) fn decode(buf: &[u8]) -> Option<NeedleIndex> {
        let (mut r, v2) = match unseal(buf, MAGIC) {
            Some(r) => (r, false),
            None => (unseal(buf, MAGIC_V2)?, true),
        };
        if r.uvarint()? != BLOCK_ROWS as u64 {
            return None;
        }
        let n = r.uvarint()?;
        let mut blocks = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let (min_ts, max_ts) = (r.i64()?, r.i64()?);
            let words = r.uvarint()? as usize;
            let bytes = r.bytes(words.checked_mul(8)?)?;
            blocks.push(Bloom { words: bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(), v2, min_ts, max_ts });
        }
        r.is_empty().then_some(NeedleIndex { blocks })
    }

    /// Writes the file and fsyncs it.
    pub(crate) fn store(&self, path: &Path) -> Result<()> {
        fs::write(path, self.encode()).and_then(|()| File::open(path)?.sync_all()).map_err(io_err(path.display()))
    }

    /// Reads a chunk's filters; `None` when the file is missing or damaged (the chunk is
    /// then read without pruning).
    pub(crate) fn load(path: &Path) -> Option<NeedleIndex> {
        let buf = fs::read(path).ok()?;
        let idx = NeedleIndex::decode(&buf);
        if idx.is_none() {
            tracing::warn!(file = %path.display(), "ignoring a damaged needle index; the chunk is read without it");
        }
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a word byte is, plainly: the definition [`word_bits`] is checked against.
    fn is_word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
    }

    fn index(lines: &[String]) -> NeedleIndex {
        let mut b = NeedleBuilder::default();
        for l in lines {
            b.add(0, l.as_bytes());
        }
        b.finish()
    }

    #[test]
    fn substrings_of_indexed_runs_are_always_found() {
        let lines: Vec<String> = (0..3 * BLOCK_ROWS).map(|i| format!(r#"{{"request_id":"{:032x}","msg":"done {i}"}}"#, (i as u128).wrapping_mul(0x9e3779b97f4a7c15f39cc0605cedc835))).collect();
        let idx = index(&lines);
        assert_eq!(idx.blocks(), 3);
        for (i, l) in lines.iter().enumerate().step_by(997) {
            let id = &l[15..47];
            // The whole id, a part of it, and a literal spanning its quotes all find the block.
            for lit in [id, &id[3..29], &l[12..50]] {
                let keys = literal_keys(lit.as_bytes());
                assert!(!keys.is_empty(), "{lit}");
                let blocks = idx.candidate_blocks(&[vec![keys]], i64::MIN, i64::MAX);
                assert!(blocks[i / BLOCK_ROWS], "{lit} must be found in block {}", i / BLOCK_ROWS);
            }
        }
        // A literal found nowhere is ruled out almost everywhere.
        let absent = literal_keys(b"0123456789abcdef0123456789abcdef");
        let hits: usize = (0..50).map(|k| idx.candidate_blocks(&[vec![literal_keys(format!("{k:032x}zz").as_bytes())]], i64::MIN, i64::MAX).iter().filter(|b| **b).count()).sum();
        assert!(hits <= 5, "{hits} false positives in 150 block checks");
        assert!(idx.candidate_blocks(&[vec![absent]], i64::MIN, i64::MAX).iter().all(|b| !b));
        // Short literals and alternatives with a short literal cannot prune.
        assert!(literal_keys(b"done").is_empty());
        assert!(idx.candidate_blocks(&[vec![literal_keys(b"ffffffffffffffffffff"), vec![]]], i64::MIN, i64::MAX).iter().all(|b| *b));
    }

    #[test]
    fn sliding_minimum_matches_the_definition() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut text = b"0123456789abcdef0123 request_id=9f86d081884c7d659a2feaa0c55ad015 ok zzzzzzzzzzzzzzzzzzzzzzz ".to_vec();
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Non-ASCII bytes are word bytes too.
            text.push(b"abcdef0123456789 _-\xc3\xa9"[(rng % 21) as usize]);
        }
        let fast = minimizers_of(&text);
        assert_eq!(fast, naive_minimizers(&text));
        assert!(!fast.is_empty());
    }

    fn minimizers_of(text: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        minimizers(text, &mut Scratch::default(), |h| out.push(h));
        out
    }

    /// [`minimizers`] by its definition: every window of every run long enough.
    fn naive_minimizers(text: &[u8]) -> Vec<u64> {
        let mut naive = Vec::new();
        for run in text.split(|b| !is_word(*b)).filter(|r| r.len() >= MIN_RUN) {
            let hs: Vec<u64> = run.windows(NGRAM).map(|g| mix(u64::from_le_bytes(g.try_into().unwrap()))).collect();
            let mut last = None;
            for w in hs.windows(WINDOW) {
                let m = *w.iter().min().unwrap();
                if last != Some(m) {
                    naive.push(m);
                    last = Some(m);
                }
            }
        }
        naive
    }

    #[test]
    fn word_bits_agree_with_is_word_for_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        for (g, group) in all.chunks_exact(64).enumerate() {
            let bits = word_bits(group.try_into().unwrap());
            for (i, &b) in group.iter().enumerate() {
                assert_eq!(bits >> i & 1 == 1, is_word(b), "byte {b:#x} at {i} of group {g}");
            }
        }
    }

    /// Runs just shorter than, as long as and just longer than [`MIN_RUN`], at every
    /// offset around the 64-byte groups the long runs are found in, and at the end of the
    /// text.
    #[test]
    fn runs_at_the_length_threshold_and_word_edges() {
        for len in [MIN_RUN - 1, MIN_RUN, MIN_RUN + 1, 63, 64, 65, 130] {
            for offset in 0..=130 {
                let mut text = vec![b' '; offset];
                text.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                let ends_in_run = text.clone();
                text.extend_from_slice(b" x ");
                text.extend((0..len).map(|i| b'0' + (i % 10) as u8));
                text.push(b'.');
                for t in [&text, &ends_in_run] {
                    let fast = minimizers_of(t);
                    assert_eq!(fast, naive_minimizers(t), "run of {len} at {offset}");
                    assert_eq!(fast.is_empty(), len < MIN_RUN, "run of {len} at {offset}");
                }
            }
        }
    }

    /// Files written before the probes changed still find every key they hold.
    #[test]
    fn version_2_files_still_read() {
        let lines: Vec<String> = (0..BLOCK_ROWS + 10).map(|i| format!("request_id={:032x} done", (i as u128).wrapping_mul(0x9e3779b97f4a7c15f39cc0605cedc835))).collect();
        let mut b = NeedleBuilder { v2: true, ..NeedleBuilder::default() };
        for l in &lines {
            b.add(0, l.as_bytes());
        }
        let bytes = b.finish().encode();
        assert_eq!(&bytes[..8], MAGIC_V2);
        let back = NeedleIndex::decode(&bytes).expect("a version 2 file decodes");
        for (i, l) in lines.iter().enumerate().step_by(500) {
            let blocks = back.candidate_blocks(&[vec![literal_keys(&l.as_bytes()[11..43])]], i64::MIN, i64::MAX);
            assert!(blocks[i / BLOCK_ROWS], "line {i}");
        }
        let absent = literal_keys(b"0123456789abcdef0123456789abcdef");
        assert!(back.candidate_blocks(&[vec![absent]], i64::MIN, i64::MAX).iter().all(|b| !b));
        assert_eq!(&index(&lines).encode()[..8], MAGIC, "new files are version 3");
    }

    #[test]
    fn file_round_trip_and_damage() {
        let idx = index(&["x".repeat(40)]);
        let bytes = idx.encode();
        let back = NeedleIndex::decode(&bytes).unwrap();
        assert_eq!(back.size(), idx.size());
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(NeedleIndex::decode(&bad).is_none());
        assert!(NeedleIndex::decode(&[]).is_none());
    }
}
