//! MD5 (RFC 1321), only to place records on shards the way Kinesis does: a record's
//! hash key is the MD5 of its partition key read as a big-endian 128-bit integer.
//!
//! Written out here because the test kit's dependency list (and the workspace's
//! lock file) are not this module's to change; it hashes a few short partition keys
//! per record, so the portable code is fast enough. Not for anything that needs a
//! secure hash (MD5 is not one).

/// Per-round left rotations.
const SHIFTS: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, //
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, //
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, //
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// `floor(|sin(i + 1)| · 2^32)`, as RFC 1321 tabulates it.
const SINES: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// The MD5 digest of `input`.
pub(crate) fn digest(input: &[u8]) -> [u8; 16] {
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    // The message, a 1 bit, zeros to 56 mod 64 bytes, then its length in bits.
    let mut message = input.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in message.chunks_exact(64) {
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(SINES[i])
                .wrapping_add(words[g])
                .rotate_left(SHIFTS[i]);
            (a, b, c, d) = (d, b.wrapping_add(rotated), b, c);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (chunk, s) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// The Kinesis hash key of a partition key: the MD5 of its UTF-8 bytes as a
/// big-endian 128-bit integer.
pub(crate) fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(digest(partition_key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(input: &str) -> String {
        digest(input.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn digests_match_the_rfc_1321_test_suite() {
        for (input, expected) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(hex(input), expected, "{input:?}");
        }
    }

    #[test]
    fn padding_edges_match_an_independent_implementation() {
        // From Python's hashlib: 55 bytes is the longest one-block message, 56 the
        // shortest that needs a second block for the length, 64 a whole block.
        for (len, expected) in [
            (55, "e38a93ffe074a99b3fed47dfbe37db21"),
            (56, "a2f3e2024931bd470555002aa5ccc010"),
            (64, "d289a97565bc2d27ac8b8545a5ddba45"),
        ] {
            assert_eq!(hex(&"A".repeat(len)), expected, "{len} bytes");
        }
    }

    #[test]
    fn the_sine_table_is_floor_of_sine_times_two_to_the_32() {
        for (i, &k) in SINES.iter().enumerate() {
            let computed = (((i + 1) as f64).sin().abs() * 4_294_967_296.0) as u32;
            assert_eq!(k, computed, "entry {i}");
        }
    }

    #[test]
    fn the_hash_key_reads_the_digest_big_endian() {
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // A flight id, as the producer uses for partition keys.
        assert_eq!(
            hash_key("FH0001-20261201"),
            0x1d80894f846521254bb6620949dcf088
        );
    }
}
