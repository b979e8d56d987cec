//! Identifiers: event ids, booking references, pseudonymous customers and sessions.

use rand::RngCore;
use uuid::Uuid;

/// A UUIDv7 with the event's millisecond timestamp and 74 random bits from `rng`.
pub(crate) fn event_id(millis: i64, rng: &mut impl RngCore) -> Uuid {
    let mut bytes = [0u8; 10];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_unix_timestamp_millis(millis.max(0) as u64, &bytes).into_uuid()
}

const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const MASK40: u64 = (1 << 40) - 1;

/// A bijection of the 40-bit integers that scatters consecutive counters, so that
/// booking references look random yet never collide.
fn permute40(mut x: u64) -> u64 {
    // Multiplying by an odd number and xor-shifting right are both invertible modulo
    // 2^40, so their composition is too.
    x &= MASK40;
    x = x.wrapping_mul(0x9E37_79B9_7F4B) & MASK40;
    x ^= x >> 19;
    x = x.wrapping_mul(0xC2B2_AE3D_27D5) & MASK40;
    x ^= x >> 21;
    x
}

fn base36(mut x: u64, width: usize, out: &mut String) {
    let mut buf = [b'0'; 16];
    for slot in buf[..width].iter_mut().rev() {
        *slot = BASE36[(x % 36) as usize];
        x /= 36;
    }
    out.extend(buf[..width].iter().map(|&b| char::from(b)));
}

/// Booking reference number `counter` of a run: `BK` and eight base-36 characters.
///
/// Distinct counters (below 2^40) give distinct references for one seed.
pub(crate) fn booking_id(seed: u64, counter: u64) -> String {
    let mut s = String::with_capacity(10);
    s.push_str("BK");
    // 36^8 > 2^40, so eight digits hold every permuted value.
    base36(permute40(counter.wrapping_add(mix(seed))), 8, &mut s);
    s
}

/// The pseudonymous id of customer number `n`: stable for a seed, meaningless outside.
pub(crate) fn customer_id(seed: u64, n: u64) -> String {
    let mut s = String::with_capacity(13);
    s.push_str("cu-");
    base36(mix(seed ^ mix(n)), 10, &mut s);
    s.make_ascii_lowercase();
    s
}

/// A fresh pseudonymous session id.
pub(crate) fn session_id(rng: &mut impl RngCore) -> String {
    let mut s = String::with_capacity(15);
    s.push_str("ss-");
    base36(rng.next_u64(), 12, &mut s);
    s.make_ascii_lowercase();
    s
}

/// SplitMix64's finalizer: a good 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;

    #[test]
    fn booking_ids_are_unique_and_well_formed() {
        let ids: HashSet<String> = (0..200_000).map(|n| booking_id(42, n)).collect();
        assert_eq!(ids.len(), 200_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 10);
            assert!(
                id.starts_with("BK")
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            );
        }
        assert_ne!(booking_id(42, 0), booking_id(43, 0));
    }

    #[test]
    fn permutation_is_a_bijection_on_a_sample() {
        let image: HashSet<u64> = (0..1 << 16).map(permute40).collect();
        assert_eq!(image.len(), 1 << 16);
        assert!(image.iter().all(|&x| x <= MASK40));
    }

    #[test]
    fn event_ids_are_v7_with_the_event_time() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let id = event_id(1_796_083_200_123, &mut rng);
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos / 1_000_000), (1_796_083_200, 123));
    }

    #[test]
    fn pseudonyms_are_stable_and_valid() {
        assert_eq!(customer_id(1, 7), customer_id(1, 7));
        assert_ne!(customer_id(1, 7), customer_id(1, 8));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let s = session_id(&mut rng);
        assert_eq!(s.len(), 15);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
