//! The KPL aggregated-record format: many user records in one Kinesis record.
//!
//! The Kinesis Producer Library packs user records into one Kinesis record so that a
//! shard's 1,000 records/s limit does not cap small events. A Kinesis record is an
//! aggregate when its data is
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//! ```
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! The protobuf is written and read by hand (two messages do not justify a code
//! generator in the build). [`AggregateBuilder`] writes exactly the bytes the KPL and
//! the Python `aws-kinesis-agg` package write for the same input: the partition-key
//! table, then the explicit-hash-key table, then the records; keys deduplicated in
//! first-seen order; no tags. The interop tests in `tests/kpl_interop.rs` hold it to
//! that.
//!
//! [`deaggregate`] reads any valid aggregate, with fields in any order and unknown
//! fields of any wire type skipped, as protobuf allows. It is built for hostile
//! input: it never panics, checks every declared length against the bytes that are
//! left, never allocates from a declared length or count, and returns slices of its
//! input rather than copies.
//!
//! # Decisions
//!
//! - Data that starts with [`MAGIC`] but fails its MD5 check is an error
//!   ([`AggregateError::ChecksumMismatch`]), not a plain record as the KCL and the
//!   Python deaggregator treat it. Our user records are UTF-8 JSON, and the magic is
//!   not even valid UTF-8 (`F3` must be followed by three continuation bytes; `C2`
//!   is not one), so such data can only be a damaged aggregate, which a consumer
//!   must quarantine with the reason rather than misread.
//! - For the same reason, data that starts with the magic but is too short to hold
//!   the digest is [`AggregateError::Malformed`], although [`is_aggregated`] says
//!   `false` for it.
//! - Explicit hash keys are carried as the strings they are on the wire (decimal
//!   128-bit integers when a KPL wrote them); this module neither parses nor checks
//!   them. Tags are skipped unread: nothing here uses them.
//!
//! # Example
//!
//! ```
//! use flyhigh_schemas::aggregation::{AggregateBuilder, Deaggregated, deaggregate};
//!
//! let mut builder = AggregateBuilder::new();
//! let expected_len = builder.encoded_len_with("FH0123-20261201", None, 7);
//! assert_eq!(builder.push("FH0123-20261201", None, b"{\"a\":1}"), 0);
//! assert_eq!(builder.encoded_len(), expected_len);
//! assert_eq!(builder.push("FH0999-20261201", Some("42"), b"{\"b\":2}"), 1);
//! let bytes = builder.finish();
//! assert!(builder.is_empty());
//!
//! let Ok(Deaggregated::Aggregated(records)) = deaggregate(&bytes) else {
//!     panic!("an aggregate")
//! };
//! assert_eq!(records.len(), 2);
//! assert_eq!(records[1].sub_sequence_number, 1);
//! assert_eq!(records[1].partition_key, "FH0999-20261201");
//! assert_eq!(records[1].explicit_hash_key, Some("42"));
//! assert_eq!(records[1].data, b"{\"b\":2}");
//!
//! // A record without the magic is one user record, unchanged.
//! assert_eq!(deaggregate(b"{}"), Ok(Deaggregated::Single(b"{}")));
//! ```

use std::collections::HashMap;

use md5::{Digest, Md5};

/// The first four bytes of every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 digest that ends every aggregated record.
pub const DIGEST_LEN: usize = 16;

/// Length of the smallest aggregate (no records): the magic and the digest of an
/// empty protobuf.
pub const EMPTY_AGGREGATE_LEN: usize = MAGIC.len() + DIGEST_LEN;

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Field keys (field number << 3 | wire type) the builder writes; each fits in one
/// byte.
const KEY_PARTITION_KEY_TABLE: u8 = (1 << 3) | LEN;
const KEY_EXPLICIT_HASH_KEY_TABLE: u8 = (2 << 3) | LEN;
const KEY_RECORDS: u8 = (3 << 3) | LEN;
const KEY_PARTITION_KEY_INDEX: u8 = (1 << 3) | VARINT;
const KEY_EXPLICIT_HASH_KEY_INDEX: u8 = (2 << 3) | VARINT;
const KEY_DATA: u8 = (3 << 3) | LEN;

/// Deepest nesting of unknown groups the decoder skips. Protobuf libraries stop at
/// 100; nobody nests groups in an aggregate, so a small bound costs nothing.
const MAX_GROUP_DEPTH: usize = 32;

/// Incremental encoder of one aggregated record; reusable after [`finish`].
///
/// The hot path is [`push`]: it appends the record straight into a reused buffer and
/// allocates only to remember a partition key or explicit hash key it has not seen in
/// this aggregate. Each section of the protobuf is kept already encoded in its own
/// buffer, so [`encoded_len`] is a sum and [`finish`] is three copies and one MD5.
///
/// [`finish`]: AggregateBuilder::finish
/// [`push`]: AggregateBuilder::push
/// [`encoded_len`]: AggregateBuilder::encoded_len
#[derive(Debug, Default, Clone)]
pub struct AggregateBuilder {
    /// Encoded `partition_key_table` entries (key, length, string), in index order.
    partition_key_table: Vec<u8>,
    partition_key_index: HashMap<String, u64>,
    /// Encoded `explicit_hash_key_table` entries, in index order.
    explicit_hash_key_table: Vec<u8>,
    explicit_hash_key_index: HashMap<String, u64>,
    /// Encoded `records` entries, in push order.
    records: Vec<u8>,
    len: usize,
}

impl AggregateBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of user records pushed since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no user record has been pushed since the last
    /// [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Exact length in bytes of what [`finish`](Self::finish) would return now: magic,
    /// protobuf and digest. An empty builder gives [`EMPTY_AGGREGATE_LEN`] (20), the
    /// length of the valid, empty aggregate `finish` returns then.
    pub fn encoded_len(&self) -> usize {
        MAGIC.len()
            + self.partition_key_table.len()
            + self.explicit_hash_key_table.len()
            + self.records.len()
            + DIGEST_LEN
    }

    /// Exact length [`finish`](Self::finish) would return if this record were pushed
    /// next. Costs two hash-map lookups (O(key length)), no allocation.
    pub fn encoded_len_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        let (pk_index, pk_entry) = peek(&self.partition_key_index, partition_key);
        let (ehk_index, ehk_entry) = match explicit_hash_key {
            Some(key) => {
                let (index, entry) = peek(&self.explicit_hash_key_index, key);
                (Some(index), entry)
            }
            None => (None, 0),
        };
        self.encoded_len()
            + pk_entry
            + ehk_entry
            + field_len(record_len(pk_index, ehk_index, data_len))
    }

    /// Appends a user record; returns its index in the aggregate, which is its
    /// sub-sequence number when read back.
    ///
    /// The index saturates at `u32::MAX`, which no aggregate within the Kinesis
    /// record size limit comes near (each record takes at least 6 bytes).
    pub fn push(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> u32 {
        let pk_index = intern(
            &mut self.partition_key_index,
            &mut self.partition_key_table,
            KEY_PARTITION_KEY_TABLE,
            partition_key,
        );
        let ehk_index = explicit_hash_key.map(|key| {
            intern(
                &mut self.explicit_hash_key_index,
                &mut self.explicit_hash_key_table,
                KEY_EXPLICIT_HASH_KEY_TABLE,
                key,
            )
        });
        let buf = &mut self.records;
        buf.reserve(field_len(record_len(pk_index, ehk_index, data.len())));
        buf.push(KEY_RECORDS);
        put_varint(buf, record_len(pk_index, ehk_index, data.len()) as u64);
        buf.push(KEY_PARTITION_KEY_INDEX);
        put_varint(buf, pk_index);
        if let Some(index) = ehk_index {
            buf.push(KEY_EXPLICIT_HASH_KEY_INDEX);
            put_varint(buf, index);
        }
        buf.push(KEY_DATA);
        put_varint(buf, data.len() as u64);
        buf.extend_from_slice(data);
        let index = u32::try_from(self.len).unwrap_or(u32::MAX);
        self.len += 1;
        index
    }

    /// The aggregate: magic, `AggregatedRecord`, MD5 of the `AggregatedRecord`.
    /// Leaves the builder empty, keeping its buffers for the next aggregate.
    ///
    /// An empty builder gives the empty aggregate ([`EMPTY_AGGREGATE_LEN`] bytes),
    /// which reads back as zero user records; the producer never sends one.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.partition_key_table);
        out.extend_from_slice(&self.explicit_hash_key_table);
        out.extend_from_slice(&self.records);
        let digest = Md5::digest(&out[MAGIC.len()..]);
        out.extend_from_slice(&digest);
        self.partition_key_table.clear();
        self.partition_key_index.clear();
        self.explicit_hash_key_table.clear();
        self.explicit_hash_key_index.clear();
        self.records.clear();
        self.len = 0;
        out
    }
}

/// The index `key` has or would get in a key table, and the bytes adding it would
/// cost (0 when it is already there).
fn peek(index: &HashMap<String, u64>, key: &str) -> (u64, usize) {
    match index.get(key) {
        Some(&i) => (i, 0),
        None => (index.len() as u64, field_len(key.len())),
    }
}

/// The index of `key` in a key table, adding it (to the map and to the encoded
/// table) the first time it is seen.
fn intern(index: &mut HashMap<String, u64>, table: &mut Vec<u8>, field_key: u8, key: &str) -> u64 {
    if let Some(&i) = index.get(key) {
        return i;
    }
    let i = index.len() as u64;
    index.insert(key.to_owned(), i);
    table.push(field_key);
    put_varint(table, key.len() as u64);
    table.extend_from_slice(key.as_bytes());
    i
}

/// Length of an encoded `Record` message (without its own key and length).
fn record_len(pk_index: u64, ehk_index: Option<u64>, data_len: usize) -> usize {
    1 + varint_len(pk_index) + ehk_index.map_or(0, |i| 1 + varint_len(i)) + field_len(data_len)
}

/// Length of a length-delimited field with a one-byte key and a body of `len` bytes.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes of `v` as a protobuf varint (1 to 10).
fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// One user record read back from a Kinesis record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecordRef<'a> {
    /// Its position in the aggregate, from 0: what the KCL calls its sub-sequence
    /// number. With the Kinesis record's sequence number it names the user record.
    pub sub_sequence_number: u32,
    /// The partition key its producer gave it (the Kinesis record's own partition
    /// key is only the aggregate's).
    pub partition_key: &'a str,
    /// The explicit hash key its producer gave it, if any.
    pub explicit_hash_key: Option<&'a str>,
    /// Its bytes.
    pub data: &'a [u8],
}

/// What a Kinesis record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deaggregated<'a> {
    /// Not an aggregate (no magic): the record's data is one user record, unchanged.
    Single(&'a [u8]),
    /// An aggregate: its user records in order (possibly none).
    Aggregated(Vec<UserRecordRef<'a>>),
}

impl Deaggregated<'_> {
    /// Number of user records in the Kinesis record.
    pub fn len(&self) -> usize {
        match self {
            Deaggregated::Single(_) => 1,
            Deaggregated::Aggregated(records) => records.len(),
        }
    }

    /// True for an aggregate of no user records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why an aggregated record could not be read. Either way the Kinesis record is
/// poison: retrying the same bytes can never succeed, so a consumer quarantines it
/// with [`kind`](AggregateError::kind) and the message as the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The record starts with the aggregate magic, but the MD5 trailer does not match
    /// the protobuf bytes: damaged in transit or written by a broken producer.
    #[error("aggregated record fails its MD5 check")]
    ChecksumMismatch,
    /// The digest matches but the protobuf is not a valid `AggregatedRecord`.
    /// `offset` counts from the first byte of the Kinesis record's data (the magic).
    #[error("malformed aggregated record at byte {offset}: {reason}")]
    Malformed {
        /// Where the problem was found, from the start of the record's data.
        offset: usize,
        /// What is wrong, e.g. "truncated varint", "partition_key_index out of range".
        reason: &'static str,
    },
}

impl AggregateError {
    /// A short, stable label for metrics and dead-letter reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            AggregateError::ChecksumMismatch => "aggregate_checksum_mismatch",
            AggregateError::Malformed { .. } => "aggregate_malformed",
        }
    }
}

/// True when `data` starts with [`MAGIC`] and is long enough to hold the digest: it
/// has the shape of an aggregate (its digest is not checked).
pub fn is_aggregated(data: &[u8]) -> bool {
    data.len() >= EMPTY_AGGREGATE_LEN && data.starts_with(&MAGIC)
}

/// Reads a Kinesis record's data: one plain user record, or the user records of an
/// aggregate, borrowed from `data`.
///
/// Never panics, and allocates at most in proportion to `data.len()`, whatever the
/// bytes claim.
///
/// # Errors
///
/// [`AggregateError::ChecksumMismatch`] when the data starts with the magic and its
/// digest does not match; [`AggregateError::Malformed`] when it starts with the magic
/// and is too short, or the protobuf is not a valid `AggregatedRecord` (truncated,
/// bad varint, invalid wire type, index out of a key table's range, key not UTF-8,
/// missing required field).
pub fn deaggregate(data: &[u8]) -> Result<Deaggregated<'_>, AggregateError> {
    if !data.starts_with(&MAGIC) {
        return Ok(Deaggregated::Single(data));
    }
    if data.len() < EMPTY_AGGREGATE_LEN {
        return Err(malformed(data.len(), "too short for magic and digest"));
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - EMPTY_AGGREGATE_LEN);
    if Md5::digest(body).as_slice() != digest {
        return Err(AggregateError::ChecksumMismatch);
    }
    parse_aggregated_record(body, MAGIC.len()).map(Deaggregated::Aggregated)
}

fn malformed(offset: usize, reason: &'static str) -> AggregateError {
    AggregateError::Malformed { offset, reason }
}

/// A `Record` whose key indexes are not resolved yet.
struct RawRecord<'a> {
    offset: usize,
    pk_index: u64,
    ehk_index: Option<u64>,
    data: &'a [u8],
}

/// Parses an `AggregatedRecord` found at `base` in the record's data.
fn parse_aggregated_record(
    body: &[u8],
    base: usize,
) -> Result<Vec<UserRecordRef<'_>>, AggregateError> {
    let mut reader = Reader::new(body, base);
    let mut partition_keys: Vec<&str> = Vec::new();
    let mut explicit_hash_keys: Vec<&str> = Vec::new();
    let mut records: Vec<UserRecordRef<'_>> = Vec::new();
    // Records that name a key the tables read so far do not hold yet. Protobuf
    // allows the tables after the records; every writer we know puts them first, so
    // this stays empty and unallocated.
    let mut unresolved: Vec<(usize, RawRecord<'_>)> = Vec::new();
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match (field, wire_type) {
            (1, LEN) => {
                let (offset, bytes) = reader.bytes()?;
                partition_keys.push(utf8(bytes, offset, "partition key is not UTF-8")?);
            }
            (2, LEN) => {
                let (offset, bytes) = reader.bytes()?;
                explicit_hash_keys.push(utf8(bytes, offset, "explicit hash key is not UTF-8")?);
            }
            (3, LEN) => {
                let (offset, bytes) = reader.bytes()?;
                let raw = parse_record(bytes, offset)?;
                let sub_sequence_number = u32::try_from(records.len())
                    .map_err(|_| malformed(offset, "more than 2^32 records"))?;
                match resolve(&raw, &partition_keys, &explicit_hash_keys) {
                    Ok((partition_key, explicit_hash_key)) => records.push(UserRecordRef {
                        sub_sequence_number,
                        partition_key,
                        explicit_hash_key,
                        data: raw.data,
                    }),
                    Err(_) => {
                        records.push(UserRecordRef {
                            sub_sequence_number,
                            partition_key: "",
                            explicit_hash_key: None,
                            data: raw.data,
                        });
                        unresolved.push((records.len() - 1, raw));
                    }
                }
            }
            _ => reader.skip(field, wire_type)?,
        }
    }
    for (i, raw) in unresolved {
        let (partition_key, explicit_hash_key) =
            resolve(&raw, &partition_keys, &explicit_hash_keys)?;
        // `i` was pushed above, so it is in range; `get_mut` keeps this panic-free.
        if let Some(record) = records.get_mut(i) {
            record.partition_key = partition_key;
            record.explicit_hash_key = explicit_hash_key;
        }
    }
    Ok(records)
}

/// The keys a record's indexes name.
fn resolve<'a>(
    raw: &RawRecord<'a>,
    partition_keys: &[&'a str],
    explicit_hash_keys: &[&'a str],
) -> Result<(&'a str, Option<&'a str>), AggregateError> {
    let partition_key = usize::try_from(raw.pk_index)
        .ok()
        .and_then(|i| partition_keys.get(i))
        .ok_or(malformed(raw.offset, "partition_key_index out of range"))?;
    let explicit_hash_key = match raw.ehk_index {
        None => None,
        Some(index) => Some(
            *usize::try_from(index)
                .ok()
                .and_then(|i| explicit_hash_keys.get(i))
                .ok_or(malformed(
                    raw.offset,
                    "explicit_hash_key_index out of range",
                ))?,
        ),
    };
    Ok((partition_key, explicit_hash_key))
}

/// Parses a `Record` message found at `base`.
fn parse_record(bytes: &[u8], base: usize) -> Result<RawRecord<'_>, AggregateError> {
    let mut reader = Reader::new(bytes, base);
    let mut pk_index = None;
    let mut ehk_index = None;
    let mut data = None;
    // Protobuf semantics: a scalar field seen twice keeps its last value, and a known
    // field number with an unexpected wire type is an unknown field.
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match (field, wire_type) {
            (1, VARINT) => pk_index = Some(reader.varint()?),
            (2, VARINT) => ehk_index = Some(reader.varint()?),
            (3, LEN) => data = Some(reader.bytes()?.1),
            _ => reader.skip(field, wire_type)?,
        }
    }
    Ok(RawRecord {
        offset: base,
        pk_index: pk_index.ok_or(malformed(base, "record has no partition_key_index"))?,
        ehk_index,
        data: data.ok_or(malformed(base, "record has no data"))?,
    })
}

fn utf8<'a>(
    bytes: &'a [u8],
    offset: usize,
    reason: &'static str,
) -> Result<&'a str, AggregateError> {
    std::str::from_utf8(bytes).map_err(|e| malformed(offset + e.valid_up_to(), reason))
}

/// A cursor over protobuf bytes that sit at `base` in the record's data, so errors
/// name an offset in the record.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn varint(&mut self) -> Result<u64, AggregateError> {
        let start = self.offset();
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(malformed(start, "truncated varint"));
            };
            self.pos += 1;
            // The tenth byte holds bit 63 only.
            if i == 9 && byte > 1 {
                return Err(malformed(start, "varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(start, "varint overflows 64 bits"))
    }

    /// A field key: field number and wire type.
    fn key(&mut self) -> Result<(u32, u8), AggregateError> {
        let start = self.offset();
        let key = self.varint()?;
        let field =
            u32::try_from(key >> 3).map_err(|_| malformed(start, "field number too large"))?;
        if field == 0 {
            return Err(malformed(start, "field number 0"));
        }
        Ok((field, (key & 7) as u8))
    }

    /// A length-delimited value and the offset where its bytes start.
    fn bytes(&mut self) -> Result<(usize, &'a [u8]), AggregateError> {
        let start = self.offset();
        let len = self.varint()?;
        // Compared as u64 before any conversion: a declared length is never trusted.
        if len > self.remaining() as u64 {
            return Err(malformed(start, "length exceeds the bytes left"));
        }
        let len = len as usize;
        let offset = self.offset();
        let bytes = self
            .buf
            .get(self.pos..self.pos + len)
            .ok_or(malformed(start, "length exceeds the bytes left"))?;
        self.pos += len;
        Ok((offset, bytes))
    }

    fn advance(&mut self, n: usize, reason: &'static str) -> Result<(), AggregateError> {
        if n > self.remaining() {
            return Err(malformed(self.offset(), reason));
        }
        self.pos += n;
        Ok(())
    }

    /// Skips the value of an unknown field whose key was just read.
    fn skip(&mut self, field: u32, wire_type: u8) -> Result<(), AggregateError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.advance(8, "truncated fixed64"),
            LEN => self.bytes().map(drop),
            FIXED32 => self.advance(4, "truncated fixed32"),
            START_GROUP => self.skip_group(field),
            END_GROUP => Err(malformed(self.offset(), "end-group without start-group")),
            _ => Err(malformed(self.offset(), "invalid wire type")),
        }
    }

    /// Skips a (deprecated, proto2) group up to its matching end-group key, keeping
    /// the open groups on a fixed stack so that hostile nesting costs no memory.
    fn skip_group(&mut self, field: u32) -> Result<(), AggregateError> {
        let mut open = [0u32; MAX_GROUP_DEPTH];
        let mut depth = 1;
        open[0] = field;
        while depth > 0 {
            let start = self.offset();
            if self.is_empty() {
                return Err(malformed(start, "truncated group"));
            }
            let (field, wire_type) = self.key()?;
            match wire_type {
                START_GROUP => {
                    let slot = open
                        .get_mut(depth)
                        .ok_or(malformed(start, "groups nested too deeply"))?;
                    *slot = field;
                    depth += 1;
                }
                END_GROUP => {
                    if open.get(depth - 1) != Some(&field) {
                        return Err(malformed(start, "end-group does not match start-group"));
                    }
                    depth -= 1;
                }
                _ => self.skip(field, wire_type)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
