//! The per-key dispatch plan: which queued batches go into the next PutRecords.
//!
//! A batch is dispatchable when its shard is past its backoff, not blocked behind
//! a retired parent, its token buckets allow it, and none of its partition keys is
//! in flight or held by an earlier batch of its queue that could not go (so a key's
//! batches are written in the order they were sealed). A request holds at most
//! 500 records and 5 MiB; shards are visited round-robin so that one busy shard
//! cannot fill every request.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use flyhigh_schemas::HashKey;
use tokio::time::Instant;

use super::routing::{Batch, ShardState, unblock};
use crate::limits;

/// How deep into a shard's queue dispatch looks for an aggregate whose keys are
/// free. Aggregates of one shard usually share a hot key, so looking far rarely finds
/// one and costs a hash-set insert per key of every aggregate passed over.
pub(crate) const SCAN_DEPTH: usize = 4;

/// Hash keys are MD5 digests, already uniformly spread: fold them instead of hashing.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

pub(crate) type KeySet = HashSet<HashKey, BuildHasherDefault<KeyHasher>>;

/// What dispatch keeps between calls.
#[derive(Default)]
pub(crate) struct Dispatcher {
    /// Keys of every batch in flight.
    pub keys_in_flight: KeySet,
    /// Scratch: keys of batches passed over (kept for its capacity).
    held: KeySet,
    rotate: usize,
}

impl Dispatcher {
    /// Takes the batches of the next request out of their queues (with their
    /// state's index), or an empty vector when nothing can go now. A shard whose
    /// buckets are short gets `not_before` set to when they will not be.
    pub fn next_request(&mut self, states: &mut [ShardState], now: Instant) -> Vec<(usize, Batch)> {
        let mut request: Vec<(usize, Batch)> = Vec::new();
        let mut bytes = 0;
        let n = states.len();
        for k in 0..n {
            let i = (self.rotate + k) % n;
            unblock(states, i);
            let state = &states[i];
            if state.queue.is_empty() || state.not_before > now || !state.blocked_by.is_empty() {
                continue;
            }
            // Plain records travel many to a request; aggregates are few and big.
            let depth = if state.aggregate {
                SCAN_DEPTH
            } else {
                limits::MAX_RECORDS_PER_REQUEST
            };
            self.held.clear();
            let state = &mut states[i];
            let mut j = 0;
            while j < state.queue.len().min(depth) {
                let batch = &state.queue[j];
                let size = batch.size;
                let free = batch
                    .keys
                    .iter()
                    .all(|k| !self.keys_in_flight.contains(k) && !self.held.contains(k));
                if !free {
                    self.held.extend(batch.keys.iter().copied());
                    j += 1;
                    continue;
                }
                if !limits::fits_request(request.len(), bytes, size) {
                    break;
                }
                if let Some(at) = state.rate.try_take(size, now) {
                    state.not_before = at;
                    break;
                }
                let Some(batch) = state.queue.remove(j) else {
                    break;
                };
                self.keys_in_flight.extend(batch.keys.iter().copied());
                bytes += batch.size;
                state.in_flight += 1;
                request.push((i, batch));
            }
        }
        self.rotate = self.rotate.wrapping_add(1);
        request
    }

    /// The request's batches came back: their keys are free again.
    pub fn returned(&mut self, states: &mut [ShardState], batches: &[(usize, Batch)]) {
        for (i, b) in batches {
            states[*i].in_flight -= 1;
            for k in &b.keys {
                self.keys_in_flight.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::aggregate::{Aggregate, UserRecord};
    use crate::exchange::Member;
    use crate::rate::{ShardLimits, ShardRate};
    use crate::transport::Entry;

    fn state(limits: ShardLimits) -> ShardState {
        ShardState::new(
            Some(Arc::from("s")),
            0,
            u128::MAX,
            true,
            51_200,
            ShardRate::new(limits, Instant::now()),
        )
    }

    /// A batch holding one record per key in `keys`.
    fn batch(keys: &[&str], size: usize) -> Batch {
        let budget = crate::budget::Budget::new(1 << 30, 1.0, 1);
        let members = keys
            .iter()
            .map(|k| {
                let r = UserRecord::new(*k, vec![]);
                let (reply, _) = tokio::sync::oneshot::channel();
                Member::new(
                    reply,
                    budget.try_charge(r.hash_key, 1).unwrap(),
                    r.hash_key,
                    Instant::now() + Duration::from_secs(60),
                    chrono::Utc::now(),
                )
            })
            .collect();
        Batch::new(Aggregate {
            entry: Entry::new(keys[0], vec![0; size]),
            members,
            aggregated: keys.len() > 1,
        })
    }

    #[tokio::test]
    async fn a_key_in_flight_holds_back_its_batches_and_the_batches_behind_sharing_keys() {
        let mut states = vec![state(ShardLimits::UNLIMITED)];
        states[0].queue.push_back(batch(&["a"], 10));
        let mut d = Dispatcher::default();
        let first = d.next_request(&mut states, Instant::now());
        assert_eq!(first.len(), 1);
        // "a" in flight: a batch with a and b waits, and so does the b after it
        // (b's order behind the held batch); c goes.
        states[0].queue.push_back(batch(&["a", "b"], 10));
        states[0].queue.push_back(batch(&["b"], 10));
        states[0].queue.push_back(batch(&["c"], 10));
        let second = d.next_request(&mut states, Instant::now());
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].1.entry.as_ref().unwrap().partition_key, "c");
        d.returned(&mut states, &first);
        let third = d.next_request(&mut states, Instant::now());
        assert_eq!(third.len(), 1, "a+b goes; b still waits behind it");
        assert_eq!(third[0].1.members.len(), 2);
        assert_eq!(states[0].queue.len(), 1);
    }

    #[tokio::test]
    async fn a_shard_out_of_tokens_waits_and_says_until_when() {
        let limits = ShardLimits {
            records_per_sec: 2.0,
            bytes_per_sec: 1e9,
        };
        let mut states = vec![state(limits)];
        for k in ["a", "b", "c"] {
            states[0].queue.push_back(batch(&[k], 10));
        }
        let mut d = Dispatcher::default();
        let now = Instant::now();
        let request = d.next_request(&mut states, now);
        assert_eq!(request.len(), 2, "two records' worth of tokens");
        assert!(states[0].not_before > now);
        assert!(d.next_request(&mut states, now).is_empty());
    }

    #[tokio::test]
    async fn a_request_respects_the_record_and_byte_limits() {
        let mut states = vec![state(ShardLimits::UNLIMITED)];
        states[0].aggregate = false;
        for k in 0..600 {
            states[0].queue.push_back(batch(&[&format!("k{k}")], 100));
        }
        let mut d = Dispatcher::default();
        let request = d.next_request(&mut states, Instant::now());
        assert_eq!(request.len(), limits::MAX_RECORDS_PER_REQUEST);
    }
}
