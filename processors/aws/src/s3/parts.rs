//! When an object goes up in parts, and how it is cut. Pure.
//!
//! S3 takes at most [`MAX_PUT_BYTES`] in one `PutObject`, and a multipart upload
//! of at most [`MAX_PARTS`] parts, each of [`MIN_PART_BYTES`] to [`MAX_PART_BYTES`]
//! except the last, which may be smaller. Parts are retried and checksummed one by
//! one, so a large object that meets a network fault resends one part, not the
//! whole object.

use std::ops::Range;

const MIB: u64 = 1024 * 1024;

/// The smallest part S3 accepts, the last part excepted.
pub const MIN_PART_BYTES: u64 = 5 * MIB;
/// The largest part S3 accepts.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * MIB;
/// The largest object one `PutObject` may carry.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * MIB;
/// Most parts of one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// Objects of this size and more go up in parts, by default.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * MIB;
/// The size of each part (the last excepted), by default.
pub const DEFAULT_PART_BYTES: u64 = 8 * MIB;

/// A multipart setting S3 cannot work with, named by its argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum S3ConfigError {
    /// `part_bytes` is outside S3's part sizes.
    #[error(
        "multipart part_bytes = {0}: S3 parts are {MIN_PART_BYTES} (5 MiB) to {MAX_PART_BYTES} (5 GiB) bytes"
    )]
    PartBytes(u64),
    /// `threshold_bytes` is below the smallest part (one `PutObject` does the same
    /// with one request instead of three) or above what one `PutObject` may carry.
    #[error(
        "multipart threshold_bytes = {0}: must be {MIN_PART_BYTES} (5 MiB) to {MAX_PUT_BYTES} (5 GiB) bytes"
    )]
    ThresholdBytes(u64),
}

/// When and how objects go up in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Multipart {
    /// Objects of this size and more go up in parts.
    pub(crate) threshold_bytes: u64,
    /// Each part's size (the last excepted), unless the object needs bigger parts
    /// to fit in [`MAX_PARTS`].
    pub(crate) part_bytes: u64,
}

impl Default for Multipart {
    fn default() -> Multipart {
        Multipart {
            threshold_bytes: DEFAULT_MULTIPART_THRESHOLD,
            part_bytes: DEFAULT_PART_BYTES,
        }
    }
}

impl Multipart {
    /// The settings, checked against S3's limits.
    pub(crate) fn new(threshold_bytes: u64, part_bytes: u64) -> Result<Multipart, S3ConfigError> {
        if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&part_bytes) {
            return Err(S3ConfigError::PartBytes(part_bytes));
        }
        if !(MIN_PART_BYTES..=MAX_PUT_BYTES).contains(&threshold_bytes) {
            return Err(S3ConfigError::ThresholdBytes(threshold_bytes));
        }
        Ok(Multipart {
            threshold_bytes,
            part_bytes,
        })
    }

    /// Whether an object of `len` bytes goes up in parts.
    pub(crate) fn is_multipart(&self, len: usize) -> bool {
        len as u64 >= self.threshold_bytes
    }

    /// The byte ranges of the parts of an object of `len` bytes, in order (part
    /// number = index + 1): `part_bytes` each and a shorter last one, or bigger parts
    /// when `part_bytes` would make more than [`MAX_PARTS`]. `None` when the object
    /// is too big for any multipart upload.
    pub(crate) fn parts(&self, len: usize) -> Option<Vec<Range<usize>>> {
        let len64 = len as u64;
        let size = self.part_bytes.max(len64.div_ceil(MAX_PARTS));
        if size > MAX_PART_BYTES {
            return None;
        }
        let size = usize::try_from(size).ok()?;
        let mut out = Vec::with_capacity(len.div_ceil(size.max(1)));
        let mut start = 0;
        while start < len {
            let end = start.saturating_add(size).min(len);
            out.push(start..end);
            start = end;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn settings_outside_s3s_limits_are_refused_by_name() {
        assert_eq!(
            Multipart::new(16 * MIB, 4 * MIB),
            Err(S3ConfigError::PartBytes(4 * MIB))
        );
        assert_eq!(
            Multipart::new(16 * MIB, 6 * 1024 * MIB),
            Err(S3ConfigError::PartBytes(6 * 1024 * MIB))
        );
        assert_eq!(
            Multipart::new(MIB, 5 * MIB),
            Err(S3ConfigError::ThresholdBytes(MIB))
        );
        assert_eq!(
            Multipart::new(6 * 1024 * MIB, 5 * MIB),
            Err(S3ConfigError::ThresholdBytes(6 * 1024 * MIB))
        );
        let err = Multipart::new(16 * MIB, 1).unwrap_err().to_string();
        assert!(err.contains("part_bytes"), "{err}");
        let err = Multipart::new(1, 5 * MIB).unwrap_err().to_string();
        assert!(err.contains("threshold_bytes"), "{err}");
        assert!(Multipart::new(5 * MIB, 5 * MIB).is_ok());
    }

    #[test]
    fn the_threshold_decides_and_an_object_is_cut_in_full_parts_and_a_rest() {
        let m = Multipart::new(6 * MIB, 5 * MIB).unwrap();
        assert!(!m.is_multipart(6 * MIB as usize - 1));
        assert!(m.is_multipart(6 * MIB as usize));
        let five = 5 * MIB as usize;
        assert_eq!(
            m.parts(11 * MIB as usize).unwrap(),
            vec![0..five, five..2 * five, 2 * five..11 * MIB as usize]
        );
        assert_eq!(m.parts(2 * five).unwrap(), vec![0..five, five..2 * five]);
        assert_eq!(Multipart::default().threshold_bytes, 16 * MIB);
    }

    #[test]
    fn an_object_too_big_for_max_parts_gets_bigger_parts() {
        let m = Multipart::default();
        // 10,000 parts of 8 MiB hold 78.125 GiB; 100 GiB needs bigger parts.
        let len = (100 * 1024 * MIB) as usize;
        let parts = m.parts(len).unwrap();
        assert!(parts.len() as u64 <= MAX_PARTS);
        assert_eq!(parts.last().unwrap().end, len);
        assert!(m.parts((MAX_PARTS * MAX_PART_BYTES + 1) as usize).is_none());
    }

    proptest! {
        #[test]
        fn parts_cover_the_object_in_order_within_s3s_limits(
            len in 0usize..200_000_000,
            part in MIN_PART_BYTES..32 * MIB,
        ) {
            let m = Multipart::new(MIN_PART_BYTES, part).unwrap();
            let parts = m.parts(len).unwrap();
            let mut next = 0;
            for (i, r) in parts.iter().enumerate() {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                if i + 1 < parts.len() {
                    prop_assert_eq!((r.end - r.start) as u64, part);
                }
                next = r.end;
            }
            prop_assert_eq!(next, len);
            prop_assert!(parts.len() as u64 <= MAX_PARTS);
        }
    }
}
