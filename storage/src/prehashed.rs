//! Hash maps and sets keyed by values that are hashes already (n-gram hashes, xxh3 of a
//! key): hashing them again is wasted work on hot paths.

use std::hash::{BuildHasherDefault, Hasher};

/// Passes a `u64` key through as its own hash.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are meant; anything else still hashes, just not well.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The `BuildHasher` for maps and sets of pre-hashed `u64` keys.
pub type Prehashed = BuildHasherDefault<IdentityHasher>;
