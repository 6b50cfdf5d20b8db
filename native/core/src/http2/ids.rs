//! Maps keyed by stream id, hashed with one multiplication instead of SipHash: every send
//! operation and every pass of the engine looks streams up, several times per request.
//!
//! The ids are the client's choice, but a map only ever holds the streams in flight on one
//! connection (bounded by the concurrent-stream limit), and the hash is keyed per map with
//! a random seed, so a client cannot aim its ids at one bucket.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Streams by id.
pub type StreamMap<V> = HashMap<u32, V, StreamIds>;

/// A [`StreamMap`] with a fresh seed.
pub fn stream_map<V>() -> StreamMap<V> {
    HashMap::with_hasher(StreamIds::default())
}

/// Golden-ratio multiplier: spreads consecutive (odd) ids over the high bits.
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Clone)]
pub struct StreamIds {
    seed: u64,
}

impl Default for StreamIds {
    fn default() -> Self {
        Self {
            seed: RandomState::new().hash_one(0u8),
        }
    }
}

impl BuildHasher for StreamIds {
    type Hasher = StreamIdHasher;

    fn build_hasher(&self) -> StreamIdHasher {
        StreamIdHasher { hash: self.seed }
    }
}

pub struct StreamIdHasher {
    hash: u64,
}

impl Hasher for StreamIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(MULTIPLIER);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.hash = (self.hash ^ u64::from(id)).wrapping_mul(MULTIPLIER);
    }

    fn finish(&self) -> u64 {
        // The high bits, well mixed, folded into the low ones the table indexes with.
        self.hash ^ (self.hash >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_ids_spread_over_buckets() {
        let ids = StreamIds::default();
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
    fn map_finds_what_it_holds() {
        let mut map = stream_map();
        for id in (1..400u32).step_by(2) {
            map.insert(id, id * 10);
        }
        assert_eq!(map.get(&201), Some(&2010));
        assert_eq!(map.remove(&3), Some(30));
        assert!(!map.contains_key(&3));
        assert_eq!(map.len(), 199);
    }
}
