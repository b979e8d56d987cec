//! Partition keys and the Kinesis hash-key function.
//!
//! Kinesis maps a record to a shard by the MD5 of its partition key read as a 128-bit
//! big-endian integer; each shard owns a contiguous range of that space. The producer
//! (to predict shards) and the in-process stream (to behave like Kinesis) both use
//! [`hash_key`].

use md5::{Digest, Md5};

use crate::event::{Envelope, Payload};

/// A position in the 128-bit Kinesis hash-key space.
pub type HashKey = u128;

/// Longest partition key Kinesis accepts, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The Kinesis hash key of a partition key: MD5 of its UTF-8 bytes, big-endian.
pub fn hash_key(partition_key: &str) -> HashKey {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

impl Envelope {
    /// The partition key the design prescribes.
    ///
    /// Bookings and cancellations are keyed by `flight_id`, so every change to one
    /// flight is ordered within one shard. Searches need no order and are keyed by
    /// their own `event_id`, so a surge of searches on one route spreads over every
    /// shard instead of overheating one.
    pub fn partition_key(&self) -> String {
        match &self.payload {
            Payload::Booking(b) => b.flight_id.clone(),
            Payload::Cancellation(c) => c.flight_id.clone(),
            Payload::Search(_) => self.event_id.as_simple().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_is_md5_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }
}
