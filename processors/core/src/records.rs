//! User records as the processors see them, whatever stream delivered them.

use base64::Engine;
use chrono::{DateTime, Utc};
use flyhigh_schemas::{DecodeError, Envelope};

/// One user record of a batch, in shard order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Shard the record was read from.
    pub shard_id: String,
    /// Kinesis sequence number (a decimal string of up to 128 bits).
    pub sequence_number: String,
    /// Partition key the producer chose.
    pub partition_key: String,
    /// When Kinesis accepted the record.
    pub approximate_arrival: Option<DateTime<Utc>>,
    /// The payload bytes.
    pub data: Vec<u8>,
}

impl UserRecord {
    /// Decodes the payload into an event.
    pub fn decode(&self) -> Result<Envelope, DecodeError> {
        flyhigh_schemas::decode(&self.data)
    }

    /// The payload as base64, for dead-letter entries (which must keep bytes that
    /// are not text).
    pub fn data_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.data)
    }
}

/// Compares two Kinesis sequence numbers, decimal strings of arbitrary length
/// (emulators return `"1"`, Kinesis 56 digits).
pub fn compare_sequence_numbers(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn sequence_numbers_compare_as_integers() {
        assert_eq!(compare_sequence_numbers("9", "10"), Less);
        assert_eq!(
            compare_sequence_numbers(
                "49590338271490256608559692538361571095921575989136588898",
                "9"
            ),
            Greater
        );
        assert_eq!(compare_sequence_numbers("007", "7"), Equal);
    }
}
