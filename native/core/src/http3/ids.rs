//! Maps keyed by the endpoint's connection numbers (quinn-proto's handles: small integers
//! it hands out, never a peer's choice), hashed with one multiplication: SipHash's
//! resistance to chosen keys buys nothing there, and each datagram looks connections up
//! several times.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing's multiplier (2^64 / the golden ratio, odd): it spreads consecutive
/// numbers over the high bits, which hashbrown's tags are taken from.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SPREAD);
    }
}

pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
pub type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_ids_hash_apart_in_the_high_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..1024u64).map(|id| build.hash_one(id)).collect();
        assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), 1024);
        // hashbrown's 7-bit tags: consecutive ids must not share a handful of them.
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(tags.len() >= 100, "{} tags", tags.len());
    }

    #[test]
    fn maps_keyed_by_ids_find_what_was_put() {
        let mut map = IdMap::default();
        for id in (0..500u64).step_by(3) {
            map.insert(id, id * 2);
        }
        for id in 0..500u64 {
            assert_eq!(map.get(&id).copied(), (id % 3 == 0).then_some(id * 2));
        }
    }
}
