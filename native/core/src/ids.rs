//! Maps keyed by ids (HTTP/2 stream ids, a worker's connection ids), hashed with one
//! multiplication instead of SipHash: they are looked up several times per request.
//!
//! A stream id is the client's choice, but a map only ever holds the streams in flight on
//! one connection (bounded by the concurrent-stream limit), and the hash is keyed per map
//! with a random seed, so a client cannot aim its ids at one bucket.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Values by id.
pub type IdMap<K, V> = HashMap<K, V, Ids>;

/// An [`IdMap`] with a fresh seed.
pub fn id_map<K, V>() -> IdMap<K, V> {
    HashMap::with_hasher(Ids::default())
}

/// Golden-ratio multiplier: spreads consecutive (or all odd) ids over the high bits.
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// The seeded [`BuildHasher`] of an [`IdMap`].
#[derive(Clone)]
pub struct Ids {
    seed: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            seed: RandomState::new().hash_one(0u8),
        }
    }
}

impl BuildHasher for Ids {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { hash: self.seed }
    }
}

pub struct IdHasher {
    hash: u64,
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, id: u64) {
        self.hash = (self.hash ^ id).wrapping_mul(MULTIPLIER);
    }

    fn finish(&self) -> u64 {
        // The high bits, well mixed, folded into the low ones the table indexes with.
        self.hash ^ (self.hash >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn odd_ids_spread_over_buckets() {
        let ids = Ids::default();
        let mut buckets = [0u32; 16];
        for id in (1..2000u32).step_by(2) {
            let bucket = usize::try_from(ids.hash_one(id) & 15).expect("small");
            buckets[bucket] += 1;
        }
        // 1000 ids over 16 buckets: each gets a fair share, none is empty or crowded.
        assert!(
            buckets.iter().all(|&n| (30..=100).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn counted_ids_hash_apart() {
        let ids = Ids::default();
        let hashes: HashSet<u64> = (1..=10_000u64).map(|id| ids.hash_one(id)).collect();
        assert_eq!(hashes.len(), 10_000);
        // The table picks buckets by the low bits and tags by the high ones: both vary.
        let low: HashSet<u64> = hashes.iter().map(|h| h & 0xff).collect();
        let high: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(
            low.len() > 200 && high.len() > 100,
            "{} {}",
            low.len(),
            high.len()
        );
    }

    #[test]
    fn map_finds_what_it_holds() {
        let mut map = id_map();
        for id in (1..400u32).step_by(2) {
            map.insert(id, id * 10);
        }
        assert_eq!(map.get(&201), Some(&2010));
        assert_eq!(map.remove(&3), Some(30));
        assert!(!map.contains_key(&3));
        assert_eq!(map.len(), 199);
    }
}
