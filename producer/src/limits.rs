//! Kinesis service limits, and the pure batcher that keeps requests within them.

use std::collections::VecDeque;

use crate::transport::{Entry, TransportError};

/// Records per PutRecords request.
pub const MAX_RECORDS_PER_REQUEST: usize = 500;
/// Bytes per PutRecords request (data plus partition keys, before base64).
pub const MAX_BYTES_PER_REQUEST: usize = 5 * 1024 * 1024;
/// Bytes per record (data plus partition key).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Unicode characters per partition key.
pub const MAX_PARTITION_KEY_CHARS: usize = flyhigh_schemas::partition::MAX_PARTITION_KEY_CHARS;

/// Kinesis bills PUT payload units of 25 KiB: a record costs its size rounded up to
/// the next unit. Aggregates are sized to waste little of their last unit.
pub const PUT_PAYLOAD_UNIT_BYTES: usize = 25 * 1024;

/// Size of an entry as Kinesis counts it against the request and record limits.
pub fn entry_size(entry: &Entry) -> usize {
    entry.data.len() + entry.partition_key.len()
}

/// Checks a request against the PutRecords limits (1 to 500 records, 5 MiB in all,
/// each record at most 1 MiB with a partition key of 1 to 256 characters), as Kinesis
/// does: the whole request is refused with what is wrong. The in-process streams
/// (`LocalStream`, and the embedded durable stream) hold every put to it.
pub fn check_put_request(entries: &[Entry]) -> Result<(), TransportError> {
    if entries.is_empty() || entries.len() > MAX_RECORDS_PER_REQUEST {
        return Err(TransportError::Permanent(format!(
            "a request must hold 1 to {MAX_RECORDS_PER_REQUEST} records, got {}",
            entries.len()
        )));
    }
    let total: usize = entries.iter().map(entry_size).sum();
    if total > MAX_BYTES_PER_REQUEST {
        return Err(TransportError::Permanent(format!(
            "request of {total} bytes exceeds {MAX_BYTES_PER_REQUEST}"
        )));
    }
    for e in entries {
        let chars = e.partition_key.chars().count();
        if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
            return Err(TransportError::Permanent(format!(
                "partition key must be 1 to {MAX_PARTITION_KEY_CHARS} characters, got {chars}"
            )));
        }
        if entry_size(e) > MAX_RECORD_BYTES {
            return Err(TransportError::Permanent(format!(
                "record of {} bytes exceeds {MAX_RECORD_BYTES}",
                entry_size(e)
            )));
        }
    }
    Ok(())
}

/// Takes the longest prefix of `pending` that fits in one request.
///
/// Entries are assumed individually valid (each ≤ [`MAX_RECORD_BYTES`]); the
/// producer rejects larger ones before they are queued.
pub fn take_request(pending: &mut VecDeque<Entry>) -> Vec<Entry> {
    let mut bytes = 0;
    let mut n = 0;
    for entry in pending.iter() {
        let size = entry_size(entry);
        if n == MAX_RECORDS_PER_REQUEST || (n > 0 && bytes + size > MAX_BYTES_PER_REQUEST) {
            break;
        }
        bytes += size;
        n += 1;
    }
    pending.drain(..n).collect()
}

/// Whether a record of `size` bytes still fits in a request of `count` records and
/// `bytes` bytes.
pub fn fits_request(count: usize, bytes: usize, size: usize) -> bool {
    count < MAX_RECORDS_PER_REQUEST && (count == 0 || bytes + size <= MAX_BYTES_PER_REQUEST)
}

/// Whether `pending` holds at least one full request.
pub fn request_full(count: usize, bytes: usize) -> bool {
    count >= MAX_RECORDS_PER_REQUEST || bytes >= MAX_BYTES_PER_REQUEST
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(key: &str, size: usize) -> Entry {
        Entry::new(key, vec![b'x'; size])
    }

    proptest! {
        #[test]
        fn requests_respect_limits_and_keep_order(sizes in proptest::collection::vec(1usize..40_000, 0..1_500)) {
            let mut pending: VecDeque<Entry> = sizes.iter().enumerate().map(|(i, s)| entry(&i.to_string(), *s)).collect();
            let mut seen = Vec::new();
            while !pending.is_empty() {
                let request = take_request(&mut pending);
                prop_assert!(!request.is_empty());
                prop_assert!(request.len() <= MAX_RECORDS_PER_REQUEST);
                prop_assert!(request.iter().map(entry_size).sum::<usize>() <= MAX_BYTES_PER_REQUEST);
                seen.extend(request.into_iter().map(|e| e.partition_key));
            }
            let expected: Vec<String> = (0..sizes.len()).map(|i| i.to_string()).collect();
            prop_assert_eq!(seen, expected);
        }
    }

    #[test]
    fn a_request_stops_at_500_records() {
        let mut pending: VecDeque<Entry> = (0..1_201).map(|i| entry(&i.to_string(), 10)).collect();
        assert_eq!(take_request(&mut pending).len(), 500);
        assert_eq!(take_request(&mut pending).len(), 500);
        assert_eq!(take_request(&mut pending).len(), 201);
    }
}
