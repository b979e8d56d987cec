//! Object keys: the store's prefix, the full S3 key of a port key, and the
//! `x-amz-copy-source` of a copy. Pure.

/// `prefix` as the start of every full key: its segments without empty ones
/// (leading, trailing and doubled slashes dropped), joined by `/`, with one trailing
/// `/`; empty for the bucket's root. `"archive"`, `"/archive/"` and `"archive//"`
/// all give `"archive/"`.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        String::new()
    } else {
        format!("{}/", segments.join("/"))
    }
}

/// The full key of port key `key` under the normalized `prefix`. The port's keys
/// are taken as they are, so that [`relative_key`] gives back exactly what was put.
pub(crate) fn full_key(prefix: &str, key: &str) -> String {
    format!("{prefix}{key}")
}

/// The port key of full key `key`, `None` when it is not under `prefix`.
pub(crate) fn relative_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)
}

/// The `x-amz-copy-source` of an object: `bucket/key`, URL-encoded as S3 requires.
/// Unreserved characters (RFC 3986) and the `/` separators stay as they are, every
/// other byte of the UTF-8 text becomes `%XX` (a Hive partition's `=` included).
pub(crate) fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 8);
    for byte in bucket
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(key.bytes())
    {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_get_one_trailing_slash_and_lose_empty_segments() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("archive"), "archive/");
        assert_eq!(normalize_prefix("archive/"), "archive/");
        assert_eq!(normalize_prefix("/archive//v1/"), "archive/v1/");
    }

    #[test]
    fn keys_round_trip_through_the_prefix() {
        let prefix = normalize_prefix("archive");
        let full = full_key(&prefix, "bookings/dt=2026-12-01/hour=09/b_1.parquet");
        assert_eq!(full, "archive/bookings/dt=2026-12-01/hour=09/b_1.parquet");
        assert_eq!(
            relative_key(&prefix, &full),
            Some("bookings/dt=2026-12-01/hour=09/b_1.parquet")
        );
        assert_eq!(relative_key(&prefix, "other/x"), None);
        assert_eq!(full_key("", "x"), "x");
    }

    #[test]
    fn copy_sources_are_url_encoded_except_slashes() {
        assert_eq!(
            copy_source(
                "flyhigh-archive",
                "archive/bookings/dt=2026-12-01/hour=09/b_1-2.parquet"
            ),
            "flyhigh-archive/archive/bookings/dt%3D2026-12-01/hour%3D09/b_1-2.parquet"
        );
        assert_eq!(copy_source("b", "a b+c%é"), "b/a%20b%2Bc%25%C3%A9");
        assert_eq!(copy_source("b", "_staging/~x"), "b/_staging/~x");
    }
}
