//! What reads of a chunk need besides its pages: its Parquet footer (with the page
//! indexes), its needle index and its field-column directory. They are read from disk on
//! first use and kept here, within one byte budget for all of a store's chunks
//! ([`crate::StoreConfig::index_cache_bytes`]), the least used going first.
//!
//! Each chunk used to keep its own for as long as it lived, so the memory they took grew
//! with the data stored: about 1.5% of the raw log text for needle indexes alone, which a
//! flush also kept. Bounded, a store's memory no longer depends on how much it holds; a
//! query that needs an evicted part reads it again (a few milliseconds per chunk).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use crate::fields::FieldsIndex;
use crate::needle::NeedleIndex;

/// The part of a chunk an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Footer,
    Needles,
    Fields,
}

/// Needle and field entries hold `None` for a chunk that has no such file (or a damaged
/// one), so that is not looked for again on every query.
#[derive(Clone)]
enum Entry {
    Footer(ArrowReaderMetadata),
    Needles(Option<Arc<NeedleIndex>>),
    Fields(Option<Arc<FieldsIndex>>),
}

/// An entry's weight: the bytes it holds, plus a little for the entry itself (so none
/// weighs zero, which the cache would never evict).
#[derive(Clone)]
struct Bytes;

impl Weighter<(u64, Part), Entry> for Bytes {
    fn weight(&self, _key: &(u64, Part), entry: &Entry) -> u64 {
        let held = match entry {
            Entry::Footer(f) => f.metadata().memory_size(),
            Entry::Needles(n) => n.as_ref().map_or(0, |n| n.memory_size()),
            Entry::Fields(f) => f.as_ref().map_or(0, |f| f.memory_size()),
        };
        held as u64 + 64
    }
}

/// The cache shared by a store's chunks; each chunk takes an id from it.
pub struct ChunkCache {
    entries: Cache<(u64, Part), Entry, Bytes>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache").field("entries", &self.entries.len()).field("bytes", &self.entries.weight()).finish()
    }
}

impl ChunkCache {
    /// A cache holding at most `bytes` (an entry larger than that is read for each query
    /// that needs it, never kept).
    pub fn new(bytes: u64) -> ChunkCache {
        // One shard: the budget is split between shards, and one compacted chunk's needle
        // index can be a sizeable part of it. A lookup (one or two per piece of a chunk a
        // query reads) takes the shard's lock shared, so readers do not wait on each other.
        let options = OptionsBuilder::new()
            .shards(1)
            .estimated_items_capacity(1024)
            .weight_capacity(bytes.max(1))
            .build()
            .expect("cache options are valid");
        ChunkCache { entries: Cache::with_options(options, Bytes, DefaultHashBuilder::default(), Default::default()), next_id: AtomicU64::new(0) }
    }

    /// A new chunk's key: unique for the cache's life, so a chunk that replaces another
    /// on disk never sees the other's entries.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }

    pub(crate) fn footer(&self, id: u64, load: impl FnOnce() -> crate::Result<ArrowReaderMetadata>) -> crate::Result<ArrowReaderMetadata> {
        match self.entries.get_or_insert_with(&(id, Part::Footer), || load().map(Entry::Footer))? {
            Entry::Footer(f) => Ok(f),
            _ => unreachable!("footer key holds a footer"),
        }
    }

    pub(crate) fn needles(&self, id: u64, load: impl FnOnce() -> Option<NeedleIndex>) -> Option<Arc<NeedleIndex>> {
        let got = self.entries.get_or_insert_with(&(id, Part::Needles), || Ok::<_, std::convert::Infallible>(Entry::Needles(load().map(Arc::new))));
        match got {
            Ok(Entry::Needles(n)) => n,
            _ => unreachable!("needle key holds a needle index"),
        }
    }

    pub(crate) fn fields(&self, id: u64, load: impl FnOnce() -> Option<FieldsIndex>) -> Option<Arc<FieldsIndex>> {
        let got = self.entries.get_or_insert_with(&(id, Part::Fields), || Ok::<_, std::convert::Infallible>(Entry::Fields(load().map(Arc::new))));
        match got {
            Ok(Entry::Fields(f)) => f,
            _ => unreachable!("fields key holds a field directory"),
        }
    }

    /// Forgets a chunk that is gone.
    pub(crate) fn remove(&self, id: u64) {
        for part in [Part::Footer, Part::Needles, Part::Fields] {
            self.entries.remove(&(id, part));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needle::NeedleBuilder;

    fn needles(lines: usize) -> NeedleIndex {
        let mut b = NeedleBuilder::default();
        for i in 0..lines {
            b.add(i as i64, format!("GET /api/v1/items/{i} 200 request_id={:032x}", i * 7919).as_bytes());
        }
        b.finish()
    }

    #[test]
    fn holds_no_more_than_its_budget_and_reloads_what_it_dropped() {
        let one = needles(3 * crate::needle::BLOCK_ROWS);
        let weight = one.memory_size() as u64 + 64;
        let cache = ChunkCache::new(weight * 3);
        let mut loads = 0;
        for id in 0..10 {
            let got = cache.needles(id, || {
                loads += 1;
                Some(one.clone())
            });
            assert_eq!(got.map(|n| n.blocks()), Some(3));
            assert!(cache.bytes() <= weight * 3, "{} bytes held, budget {}", cache.bytes(), weight * 3);
        }
        assert_eq!(loads, 10);
        // Some chunks were dropped to stay within budget: asking for all again loads them.
        for id in 0..10 {
            assert!(cache.needles(id, || Some(one.clone())).is_some());
        }
        assert!(cache.bytes() <= weight * 3);
        assert!(cache.entries.len() < 10);
    }

    #[test]
    fn remembers_a_missing_index_and_forgets_removed_chunks() {
        let cache = ChunkCache::new(1 << 20);
        let id = cache.new_id();
        assert!(cache.needles(id, || None).is_none());
        assert!(cache.needles(id, || panic!("a missing index is not looked for twice")).is_none());
        let other = cache.new_id();
        assert!(cache.needles(other, || Some(needles(10))).is_some());
        assert!(cache.needles(other, || panic!("kept")).is_some());
        cache.remove(id);
        cache.remove(other);
        assert_eq!(cache.bytes(), 0);
        assert_ne!(cache.new_id(), id);
    }

    #[test]
    fn an_entry_over_the_budget_is_served_but_not_kept() {
        let cache = ChunkCache::new(16);
        assert!(cache.needles(1, || Some(needles(100))).is_some());
        assert_eq!(cache.bytes(), 0);
    }
}
