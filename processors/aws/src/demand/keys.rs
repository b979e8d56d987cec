//! Strings whose byte order is the order of what they encode, for sort keys and for
//! conditions that compare strings (DynamoDB compares `S` values as UTF-8 bytes).
//! Pure.
//!
//! - [`bucket_key`]: a bucket (seconds since the epoch, any `i64`) as 20 characters.
//! - [`time_key`]: a time as fixed-width RFC 3339 with nanoseconds, years 0000-9999.
//! - record positions use [`flyhigh_core::demand::Position::to_key`].

use chrono::{DateTime, Datelike, Utc};

/// A bucket as a string of 20 characters whose byte order is the
/// numeric order: a bucket from 0 up is its decimal number zero-padded to 20 digits
/// (what every real bucket looks like: `00000000001796115600`); a negative one is `-`
/// (which sorts before every digit) and `bucket + 2^63` padded to 19 digits.
pub(crate) fn bucket_key(bucket: i64) -> String {
    if bucket >= 0 {
        format!("{bucket:020}")
    } else {
        // In [0, 2^63): the offset keeps the order and fits 19 digits.
        let offset = i128::from(bucket) + (1i128 << 63);
        format!("-{offset:019}")
    }
}

/// Why a time cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeOutOfRange(pub(crate) DateTime<Utc>);

impl std::fmt::Display for TimeOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "time {} is outside the years 0000-9999 the store can order",
            self.0
        )
    }
}

/// A time as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`: fixed width, so its byte order is the
/// time order, and exact to the nanosecond, so it reads back equal.
pub(crate) fn time_key(t: DateTime<Utc>) -> Result<String, TimeOutOfRange> {
    if !(0..=9999).contains(&t.year()) {
        return Err(TimeOutOfRange(t));
    }
    Ok(t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
}

/// Parses [`time_key`]'s output (any RFC 3339 time, in fact).
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Characters of every [`bucket_key`].
    const BUCKET_KEY_LEN: usize = 20;

    #[test]
    fn real_buckets_are_their_padded_numbers() {
        assert_eq!(bucket_key(1_796_115_600), "00000000001796115600");
        assert_eq!(bucket_key(0), "00000000000000000000");
        assert_eq!(bucket_key(-60), "-9223372036854775748");
        for b in [i64::MIN, -1, 0, i64::MAX] {
            assert_eq!(bucket_key(b).len(), BUCKET_KEY_LEN, "{b}");
        }
    }

    #[test]
    fn time_keys_are_fixed_width_exact_and_bounded() {
        let t: DateTime<Utc> = "2026-12-01T09:36:00.123456789Z".parse().unwrap();
        assert_eq!(time_key(t).unwrap(), "2026-12-01T09:36:00.123456789Z");
        let whole: DateTime<Utc> = "2026-12-01T09:36:00Z".parse().unwrap();
        assert_eq!(time_key(whole).unwrap(), "2026-12-01T09:36:00.000000000Z");
        assert_eq!(parse_time(&time_key(t).unwrap()), Ok(t));
        let far = DateTime::<Utc>::from_timestamp(300_000_000_000, 0).unwrap();
        assert!(time_key(far).unwrap_err().to_string().contains("0000-9999"));
        assert!(parse_time("yesterday").is_err());
    }

    proptest! {
        #[test]
        fn bucket_keys_order_as_their_buckets(a: i64, b: i64) {
            prop_assert_eq!(a.cmp(&b), bucket_key(a).cmp(&bucket_key(b)));
        }

        #[test]
        fn time_keys_order_as_their_times(
            a in 0i64..253_402_300_799, an in 0u32..1_000_000_000,
            b in 0i64..253_402_300_799, bn in 0u32..1_000_000_000,
        ) {
            let a = DateTime::<Utc>::from_timestamp(a, an).unwrap();
            let b = DateTime::<Utc>::from_timestamp(b, bn).unwrap();
            prop_assert_eq!(a.cmp(&b), time_key(a).unwrap().cmp(&time_key(b).unwrap()));
            prop_assert_eq!(parse_time(&time_key(a).unwrap()), Ok(a));
        }
    }
}
