//! MD5, only to place records on shards the way Kinesis does: a record's hash key is
//! the MD5 of its partition key read as a big-endian 128-bit integer. (The test kit
//! does not depend on `flyhigh-schemas`, whose `hash_key` is the same function: it
//! checks the project's code, so it keeps its own copy of the rule.)

use md5::{Digest, Md5};

/// The hash key Kinesis computes for `partition_key`.
pub(crate) fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_key_reads_the_digest_big_endian() {
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72 (RFC 1321).
        assert_eq!(hash_key("abc"), 0x900150983cd24fb0d6963f7d28e17f72);
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // A flight id, as the producer uses for partition keys.
        assert_eq!(
            hash_key("FH0001-20261201"),
            0x1d80894f846521254bb6620949dcf088
        );
    }
}
