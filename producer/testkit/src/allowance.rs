//! The per-shard write allowance ([`ShardAllowance`]): what a shard takes per second
//! before Kinesis answers `ProvisionedThroughputExceededException`, and the pure
//! token buckets that enforce it ([`ShardBuckets`]), tested with the instants the
//! caller passes in.
//!
//! Kinesis throttles a shard whose writes exceed 1,000 records/s or 1 MiB/s (data
//! plus partition key). Unlike a random per-record failure rate, that depends on how
//! fast the client sends, so it is what an adaptive producer can be measured
//! against: how close it gets to the allowance without going over.

use std::collections::HashMap;

use tokio::time::Instant;

/// A per-shard write allowance for [`FaultConfig::shard_allowance`](crate::FaultConfig::shard_allowance).
///
/// Each shard has two token buckets, records and bytes, each holding one second's
/// worth, full at the start and refilling continuously at the allowed rate. A
/// record costs 1 record and its data's bytes (decoded from base64) plus its
/// partition key's bytes, as Kinesis counts them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardAllowance {
    /// The stream's shards, split evenly over the 128-bit hash-key space as
    /// CreateStream does: shard `i` starts at `i · ⌊2^128 / shards⌋` and the last
    /// one ends at `2^128 − 1`. Must match the stream behind the proxy for the
    /// throttling to fall on the shards it names.
    pub shards: u32,
    /// Records per second one shard accepts.
    pub records_per_sec: f64,
    /// Bytes (data plus partition key) per second one shard accepts.
    pub bytes_per_sec: f64,
}

impl ShardAllowance {
    /// Kinesis's published per-shard limits, 1,000 records/s and 1 MiB/s, on a
    /// stream of `shards` shards.
    pub const fn kinesis(shards: u32) -> ShardAllowance {
        ShardAllowance {
            shards,
            records_per_sec: 1_000.0,
            bytes_per_sec: 1_048_576.0,
        }
    }

    /// The index of the shard owning `hash_key` (in `0..shards`; shard 0 when
    /// `shards` is 0, which [`FaultConfig::validate`](crate::FaultConfig::validate)
    /// rejects).
    pub fn shard_of(&self, hash_key: u128) -> u32 {
        let shards = u128::from(self.shards.max(1));
        // ⌊2^128 / n⌋ without 2^128: ⌊(2^128 − 1) / n⌋, plus one when n divides 2^128.
        let Some(width) =
            (u128::MAX / shards).checked_add(u128::from(u128::MAX % shards == shards - 1))
        else {
            // n = 1: one shard owns everything.
            return 0;
        };
        // Past the last whole range (the remainder of the division) is the last shard's.
        (hash_key / width).min(shards - 1) as u32
    }
}

/// What one record of a PutRecords costs, and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charge {
    /// Its `ExplicitHashKey`, or the MD5 of its `PartitionKey`.
    pub(crate) hash_key: u128,
    /// Data (decoded) plus partition key, in bytes.
    pub(crate) bytes: u64,
}

#[derive(Debug, Clone)]
struct Bucket {
    records: f64,
    bytes: f64,
    refilled_at: Instant,
}

/// The token buckets of every shard of a [`ShardAllowance`]. A shard's buckets are
/// made, full, the first time it is charged, which is the same as full from the
/// start (a full bucket does not grow) and costs nothing for shards never written.
#[derive(Debug, Clone)]
pub(crate) struct ShardBuckets {
    allowance: ShardAllowance,
    shards: HashMap<u32, Bucket>,
}

impl ShardBuckets {
    pub(crate) fn new(allowance: ShardAllowance) -> ShardBuckets {
        ShardBuckets {
            allowance,
            shards: HashMap::new(),
        }
    }

    /// Takes one record of `bytes` from `shard`'s buckets at `now`: true when it
    /// fits (and the tokens are taken), false when it does not (nothing taken).
    ///
    /// A record that costs more than a full bucket holds (a 1 MiB record under a
    /// smaller bytes allowance, or any record under less than 1 record/s) fits once
    /// the bucket is full, and leaves it in debt: it would never fit otherwise, and
    /// the debt keeps the long-run rate at the allowance.
    pub(crate) fn try_take(&mut self, shard: u32, bytes: u64, now: Instant) -> bool {
        let ShardAllowance {
            records_per_sec,
            bytes_per_sec,
            ..
        } = self.allowance;
        let bucket = self.shards.entry(shard).or_insert(Bucket {
            records: records_per_sec,
            bytes: bytes_per_sec,
            refilled_at: now,
        });
        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        // A clock that went back (the caller's instants out of order) refills nothing.
        bucket.refilled_at = bucket.refilled_at.max(now);
        bucket.records = (bucket.records + elapsed * records_per_sec).min(records_per_sec);
        bucket.bytes = (bucket.bytes + elapsed * bytes_per_sec).min(bytes_per_sec);
        let cost = bytes as f64;
        if bucket.records >= 1f64.min(records_per_sec) && bucket.bytes >= cost.min(bytes_per_sec) {
            bucket.records -= 1.0;
            bucket.bytes -= cost;
            true
        } else {
            false
        }
    }

    /// Charges one PutRecords' records, in request order, at `now`, and marks in
    /// `failed` those that do not fit. Records already marked (failed by another
    /// fault, never written) and those without a [`Charge`] (malformed: the
    /// upstream will judge them) cost nothing. Returns how many it marked.
    pub(crate) fn charge(
        &mut self,
        records: &[Option<Charge>],
        failed: &mut [bool],
        now: Instant,
    ) -> u64 {
        let mut throttled = 0;
        for (record, failed) in records.iter().zip(failed.iter_mut()) {
            let Some(charge) = record else { continue };
            if *failed {
                continue;
            }
            let shard = self.allowance.shard_of(charge.hash_key);
            if !self.try_take(shard, charge.bytes, now) {
                *failed = true;
                throttled += 1;
            }
        }
        throttled
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn allowance(shards: u32, records_per_sec: f64, bytes_per_sec: f64) -> ShardAllowance {
        ShardAllowance {
            shards,
            records_per_sec,
            bytes_per_sec,
        }
    }

    #[test]
    fn shards_split_the_space_as_create_stream_does() {
        // Kinesis's (and kinesalite's) ranges for 3 shards: width ⌊2^128 / 3⌋.
        let three = allowance(3, 1.0, 1.0);
        let width: u128 = 113_427_455_640_312_821_154_458_202_477_256_070_485;
        assert_eq!(three.shard_of(0), 0);
        assert_eq!(three.shard_of(width - 1), 0);
        assert_eq!(three.shard_of(width), 1);
        assert_eq!(three.shard_of(2 * width - 1), 1);
        assert_eq!(three.shard_of(2 * width), 2);
        assert_eq!(
            three.shard_of(u128::MAX),
            2,
            "the remainder is the last shard's"
        );
        // A power of two divides 2^128 exactly: 4 shards of 2^126.
        let four = allowance(4, 1.0, 1.0);
        assert_eq!(four.shard_of((1 << 126) - 1), 0);
        assert_eq!(four.shard_of(1 << 126), 1);
        assert_eq!(four.shard_of(3 << 126), 3);
        assert_eq!(four.shard_of(u128::MAX), 3);
        assert_eq!(allowance(1, 1.0, 1.0).shard_of(u128::MAX), 0);
        assert_eq!(allowance(0, 1.0, 1.0).shard_of(u128::MAX), 0);
    }

    #[test]
    fn a_full_bucket_passes_one_seconds_worth_then_refills_continuously() {
        let t0 = Instant::now();
        let mut buckets = ShardBuckets::new(allowance(1, 100.0, 1e9));
        let passed = (0..300).filter(|_| buckets.try_take(0, 10, t0)).count();
        assert_eq!(passed, 100);
        let later = t0 + Duration::from_millis(250);
        let passed = (0..300).filter(|_| buckets.try_take(0, 10, later)).count();
        assert_eq!(passed, 25, "a quarter second refills a quarter");
        // Idle for longer than a second refills to one second's worth, no more.
        let much_later = later + Duration::from_secs(10);
        let passed = (0..300)
            .filter(|_| buckets.try_take(0, 10, much_later))
            .count();
        assert_eq!(passed, 100);
    }

    #[test]
    fn bytes_limit_too_and_a_refused_record_takes_nothing() {
        let t0 = Instant::now();
        let mut buckets = ShardBuckets::new(allowance(1, 1_000.0, 1_000.0));
        assert!(buckets.try_take(0, 600, t0));
        assert!(!buckets.try_take(0, 600, t0), "400 bytes left");
        assert!(buckets.try_take(0, 400, t0), "the refusal took nothing");
        assert!(!buckets.try_take(0, 1, t0));
    }

    #[test]
    fn shards_have_buckets_of_their_own() {
        let t0 = Instant::now();
        let two = allowance(2, 2.0, 1e9);
        let mut buckets = ShardBuckets::new(two);
        assert!(buckets.try_take(0, 1, t0));
        assert!(buckets.try_take(0, 1, t0));
        assert!(!buckets.try_take(0, 1, t0));
        assert!(buckets.try_take(1, 1, t0), "shard 1 is untouched");
    }

    #[test]
    fn a_record_larger_than_the_bucket_passes_when_full_and_leaves_a_debt() {
        let t0 = Instant::now();
        let mut buckets = ShardBuckets::new(allowance(1, 1_000.0, 100.0));
        assert!(
            buckets.try_take(0, 250, t0),
            "a full bucket lets it through"
        );
        // 100 − 250 = −150: it takes 2.5 s to be full again.
        assert!(!buckets.try_take(0, 250, t0 + Duration::from_secs(2)));
        assert!(buckets.try_take(0, 250, t0 + Duration::from_millis(2_500)));
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let t0 = Instant::now();
        let mut buckets = ShardBuckets::new(allowance(1, 1.0, 1e9));
        let t1 = t0 + Duration::from_secs(1);
        assert!(buckets.try_take(0, 1, t1));
        assert!(!buckets.try_take(0, 1, t0));
        assert!(
            !buckets.try_take(0, 1, t1),
            "the earlier instant refilled nothing"
        );
    }

    #[test]
    fn charge_marks_what_does_not_fit_in_request_order_and_skips_the_rest() {
        let t0 = Instant::now();
        let two = allowance(2, 1.0, 1e9);
        let mut buckets = ShardBuckets::new(two);
        let on = |shard: u128| {
            Some(Charge {
                hash_key: shard << 127,
                bytes: 5,
            })
        };
        // The first record failed otherwise and costs nothing, nor does the one
        // without a charge.
        let records = [on(0), on(0), on(1), on(0), None, on(1)];
        let mut failed = [true, false, false, false, false, false];
        assert_eq!(buckets.charge(&records, &mut failed, t0), 2);
        assert_eq!(failed, [true, false, false, true, false, true]);
        let mut again = [false];
        assert_eq!(
            buckets.charge(&[on(0)], &mut again, t0 + Duration::from_secs(1)),
            0,
            "refilled a second later"
        );
    }
}
