//! Records as the processors see them, whatever stream delivered them.
//!
//! A [`KinesisRecord`] is what a stream delivers: one sequence number, one blob of
//! data. Producers pack user records (one event each) in the KPL aggregated-record
//! format, so that data is either one plain user record or an aggregate of several;
//! [`KinesisRecord::event_records`] expands it into [`EventRecord`]s, each naming the
//! Kinesis record it came in and its sub-sequence number within it.
//!
//! Failures are reported per Kinesis record (Lambda retries from a Kinesis sequence
//! number, never from inside an aggregate): retrying an aggregate replays its earlier
//! user records too, which the idempotent folds absorb.

use base64::Engine;
use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use flyhigh_schemas::aggregation::{self, AggregateError, Deaggregated, UserRecordRef};
use flyhigh_schemas::{DecodeError, Envelope};
use serde::{Deserialize, Serialize};

/// One record of a batch as the stream delivered it, in shard order. Its data is one
/// user record, or a KPL aggregate of several (see [`KinesisRecord::event_records`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// Shard the record was read from.
    pub shard_id: String,
    /// Kinesis sequence number (a decimal string of up to 128 bits).
    pub sequence_number: String,
    /// Partition key the producer chose (for an aggregate, the aggregate's key; each
    /// user record carries its own).
    pub partition_key: String,
    /// When Kinesis accepted the record.
    pub approximate_arrival: Option<DateTime<Utc>>,
    /// The record's bytes.
    pub data: Vec<u8>,
}

impl KinesisRecord {
    /// The user records this Kinesis record holds: itself when it is not aggregated,
    /// else every record of the aggregate, in order.
    ///
    /// # Errors
    ///
    /// The record is a damaged aggregate; it is poison as a whole (dead-letter it
    /// with [`AggregateError::kind`] as the reason).
    pub fn event_records(&self) -> Result<EventRecords<'_>, AggregateError> {
        let inner = match aggregation::deaggregate(&self.data)? {
            Deaggregated::Single(data) => Inner::Single(Some(EventRecord {
                kinesis: self,
                sub_sequence_number: None,
                partition_key: &self.partition_key,
                explicit_hash_key: None,
                data,
            })),
            Deaggregated::Aggregated(records) => Inner::Aggregated(records.into_iter()),
        };
        Ok(EventRecords {
            kinesis: self,
            inner,
        })
    }

    /// Decodes the data as one plain user record, ignoring aggregation (an aggregate
    /// is not UTF-8, so it fails as `not_utf8`). For callers that know their records
    /// are not aggregated; consumers use [`event_records`](Self::event_records).
    pub fn decode(&self) -> Result<Envelope, DecodeError> {
        flyhigh_schemas::decode(&self.data)
    }

    /// The whole record's data as base64, for dead-letter entries (which must keep
    /// bytes that are not text).
    pub fn data_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.data)
    }
}

/// One user record, which holds one event: its bytes and the Kinesis record they
/// came in. Borrowed from the [`KinesisRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord<'a> {
    /// The Kinesis record it came in: shard, sequence number, arrival.
    pub kinesis: &'a KinesisRecord,
    /// Its position in the aggregate, from 0; `None` when the Kinesis record is not
    /// aggregated.
    pub sub_sequence_number: Option<u32>,
    /// Its own partition key.
    pub partition_key: &'a str,
    /// Its explicit hash key, when its producer set one (Lambda does not deliver one
    /// for a plain record).
    pub explicit_hash_key: Option<&'a str>,
    /// Its bytes: one event as UTF-8 JSON, if the producer kept the contract.
    pub data: &'a [u8],
}

impl EventRecord<'_> {
    /// Decodes the bytes into an event.
    pub fn decode(&self) -> Result<Envelope, DecodeError> {
        flyhigh_schemas::decode(self.data)
    }

    /// The bytes as base64, for dead-letter entries.
    pub fn data_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.data)
    }
}

/// The [`EventRecord`]s of one Kinesis record, in order.
#[derive(Debug, Clone)]
pub struct EventRecords<'a> {
    kinesis: &'a KinesisRecord,
    inner: Inner<'a>,
}

// A plain record (the common case without producer aggregation) costs no allocation.
#[derive(Debug, Clone)]
enum Inner<'a> {
    Single(Option<EventRecord<'a>>),
    Aggregated(std::vec::IntoIter<UserRecordRef<'a>>),
}

impl<'a> Iterator for EventRecords<'a> {
    type Item = EventRecord<'a>;

    fn next(&mut self) -> Option<EventRecord<'a>> {
        match &mut self.inner {
            Inner::Single(single) => single.take(),
            Inner::Aggregated(records) => records.next().map(|r| EventRecord {
                kinesis: self.kinesis,
                sub_sequence_number: Some(r.sub_sequence_number),
                partition_key: r.partition_key,
                explicit_hash_key: r.explicit_hash_key,
                data: r.data,
            }),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            Inner::Single(single) => usize::from(single.is_some()),
            Inner::Aggregated(records) => records.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for EventRecords<'_> {}

/// Compares two Kinesis sequence numbers, decimal strings of arbitrary length
/// (emulators return `"1"`, Kinesis 56 digits).
pub fn compare_sequence_numbers(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Digits a sequence number is padded to in [`Position::to_key`]: a Kinesis sequence
/// number is at most 128 bits, 39 decimal digits; real ones have 56 with a prefix.
const SEQUENCE_DIGITS: usize = 64;

/// Where a user record sits in its shard: the Kinesis sequence number, then its
/// sub-sequence number inside a KPL aggregate (0 for a plain record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Decimal sequence number without leading zeros (`"0"` for zero).
    pub sequence: String,
    /// Index inside the aggregate.
    pub sub: u32,
}

impl Position {
    /// The position of user record `sub` of the Kinesis record `sequence` (`None` for a
    /// plain record).
    pub fn new(sequence: &str, sub: Option<u32>) -> Position {
        let trimmed = sequence.trim_start_matches('0');
        Position {
            sequence: if trimmed.is_empty() {
                "0".into()
            } else {
                trimmed.into()
            },
            sub: sub.unwrap_or(0),
        }
    }

    /// A string whose byte order is the position order, for stores that compare
    /// strings (a DynamoDB condition `mark < :first`): the sequence number padded to 64
    /// digits, a dot, the sub-sequence number padded to 10.
    pub fn to_key(&self) -> String {
        format!("{:0>SEQUENCE_DIGITS$}.{:010}", self.sequence, self.sub)
    }

    /// Parses [`to_key`](Self::to_key)'s output.
    pub fn from_key(key: &str) -> Option<Position> {
        let (sequence, sub) = key.split_once('.')?;
        if sequence.is_empty() || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Position::new(sequence, Some(sub.parse().ok()?)))
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Position) -> Ordering {
        compare_sequence_numbers(&self.sequence, &other.sequence).then(self.sub.cmp(&other.sub))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Position) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyhigh_schemas::AggregateBuilder;
    use std::cmp::Ordering::*;

    fn kinesis(data: Vec<u8>) -> KinesisRecord {
        KinesisRecord {
            shard_id: "shardId-000000000000".into(),
            sequence_number: "49".into(),
            partition_key: "aggregate-key".into(),
            approximate_arrival: None,
            data,
        }
    }

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

    #[test]
    fn a_plain_record_is_one_event_record_without_a_sub_sequence_number() {
        let record = kinesis(b"{}".to_vec());
        let events: Vec<EventRecord<'_>> = record.event_records().unwrap().collect();
        assert_eq!(
            events,
            [EventRecord {
                kinesis: &record,
                sub_sequence_number: None,
                partition_key: "aggregate-key",
                explicit_hash_key: None,
                data: b"{}",
            }]
        );
    }

    #[test]
    fn an_aggregate_expands_into_its_user_records_in_order() {
        let mut builder = AggregateBuilder::new();
        builder.push("FH0123-20261201", None, b"first");
        builder.push("FH0999-20261201", Some("42"), b"second");
        let record = kinesis(builder.finish());
        let events = record.event_records().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events.collect::<Vec<_>>(),
            [
                EventRecord {
                    kinesis: &record,
                    sub_sequence_number: Some(0),
                    partition_key: "FH0123-20261201",
                    explicit_hash_key: None,
                    data: b"first",
                },
                EventRecord {
                    kinesis: &record,
                    sub_sequence_number: Some(1),
                    partition_key: "FH0999-20261201",
                    explicit_hash_key: Some("42"),
                    data: b"second",
                },
            ]
        );
    }

    #[test]
    fn a_damaged_aggregate_is_an_error_for_the_whole_record() {
        let mut builder = AggregateBuilder::new();
        builder.push("k", None, b"{}");
        let mut data = builder.finish();
        let last = data.len() - 1;
        data[last] ^= 1;
        assert_eq!(
            kinesis(data).event_records().map(|e| e.len()),
            Err(AggregateError::ChecksumMismatch)
        );
    }
}
