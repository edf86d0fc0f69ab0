//! Maps keyed by the broker's own counters (session and connection ids),
//! looked up several times for every message delivered. A B-tree of ten
//! thousand sessions is four nodes deep, and a QoS 1 delivery looked a
//! session up about ten times: in a fan-out to a thousand subscribers that
//! was a fifth of the work under the routing lock. A hash map finds one in
//! a probe or two.
//!
//! A hash map that grows rehashes every entry into a table twice the size,
//! and std's does it all in the insert that found it full: under the
//! routing lock, in one client's CONNECT, while every other client waits.
//! That hold grows with the map (`cargo bench --bench holds`: 0.24-0.35 ms
//! at 10,000 sessions, 31-35 ms at a million). griddle's map moves a few
//! entries an insert instead; a lookup looks in the old table too until it
//! is empty.
//!
//! The price: the old table stays until its last entry has moved, and
//! entries move only when something is inserted (8 an insert) or removed.
//! Just after the map of a million sessions doubles, its old table is 17
//! MiB, about 58 bytes a session over the three maps, for the next 114,688
//! inserts; sessions by id gets an insert only for a new session, so while
//! clients only come back to theirs, its old table may stay for good, and a
//! lookup of an entry still in it probes both tables.

use std::hash::{BuildHasherDefault, Hasher};

use griddle::HashMap;

/// A map from a counter the broker assigns to what it names. Iterated only
/// where order does not show (checks, counts, a walk that visits each),
/// and then in an order fixed by the ids and the history of inserts and
/// removes (the new table, then what is left in the old): the same in
/// every run of a seed.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// std's map over the same hash, for a map filled and emptied within one
/// hold: spreading its growth over inserts would leave it all in that hold.
pub type ScratchIdMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one integer. No client chooses these ids, so none
/// can aim many at one bucket, and no seed is needed: a seeded hash would
/// make the simulation's runs differ.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(GOLDEN);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SessionId;

    #[test]
    fn consecutive_ids_spread_over_the_buckets_and_the_control_bits() {
        let hash = |n: u64| {
            let mut h = IdHasher::default();
            std::hash::Hash::hash(&SessionId(n), &mut h);
            h.finish()
        };
        // hashbrown takes a bucket from the low bits and a tag from the top 7.
        let buckets: std::collections::BTreeSet<u64> = (0..1024).map(|n| hash(n) & 1023).collect();
        let tags: std::collections::BTreeSet<u64> = (0..1024).map(|n| hash(n) >> 57).collect();
        assert_eq!(buckets.len(), 1024, "low bits collide");
        assert_eq!(tags.len(), 128, "top bits do not vary");
    }
}
