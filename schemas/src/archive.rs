//! The archive's tables: what every archived event becomes in Parquet, and the same
//! columns as Athena sees them (feature `arrow`).
//!
//! **One table per event type** ([`ArchiveTable`]: `searches`, `bookings`,
//! `cancellations`), not one wide table of nullable columns: every column of a table
//! is then present in every row (a booking always has a fare), so analysts never
//! filter `WHERE event_type = ...` and `NULL` means only "not given" (a one-way
//! search's `return_date`). The three types share only the envelope, and the queries
//! that combine them (conversion, cancellation rate) join by route or `booking_id`.
//!
//! Columns, in order ([`ArchiveTable::columns`]):
//! - the envelope: `event_id`, `schema_version`, `occurred_at`, `source`;
//! - the payload, by the contract's field names, money flattened as
//!   `fare_amount`/`fare_currency` and `refund_amount`/`refund_currency`;
//! - where the record was in the stream: `shard_id`, `sequence_number`,
//!   `sub_sequence_number` (its place inside a KPL aggregate, 0 for a plain
//!   record) and `arrived_at` (Kinesis's approximate arrival time, `NULL` only when
//!   the source did not give one).
//!
//! Types ([`ColumnKind`]): instants are UTC timestamps in milliseconds, dates are
//! `DATE`, money is `DECIMAL(12,2)` (the contract allows at most two decimals and
//! amounts below 10,000,000), codes (airports, cabins, currencies, reasons, sources,
//! shards) are dictionary-encoded strings, ids are plain strings. Sequence numbers
//! are strings: Kinesis's are up to 56 digits, more than any integer type holds.
//!
//! Partitions (Hive style, not columns of the files): `dt` (`yyyy-MM-dd`) and `hour`
//! (`00` to `23`) of `occurred_at`, under `event_type=<type>/`; see
//! [`athena_ddl`] for the table definitions with partition projection.
//!
//! # Schema evolution
//!
//! Columns are only ever *added*, at the end, and nullable. Athena (and DuckDB with
//! `union_by_name`) reads Parquet by column name: a file written before a column
//! existed returns `NULL` for it, a newer file's extra columns are ignored by an older
//! table definition until its DDL gains them. A renamed, retyped or removed column
//! is a new table (a new `schema_version` of the event contract), never an edit.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::EventType;

/// The precision and scale of money columns: `DECIMAL(12,2)`.
pub const MONEY_PRECISION: u8 = 12;
/// Decimal places of money columns.
pub const MONEY_SCALE: i8 = 2;
/// The time zone of timestamp columns.
pub const TIMESTAMP_ZONE: &str = "UTC";

/// One archive table: the events of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchiveTable {
    /// `searches`: every [`Search`](crate::Search).
    Searches,
    /// `bookings`: every [`Booking`](crate::Booking).
    Bookings,
    /// `cancellations`: every [`Cancellation`](crate::Cancellation).
    Cancellations,
}

/// How a column is typed, in Arrow/Parquet and in Athena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// An identifier: UTF-8 string.
    Id,
    /// A code from a small set (airports, cabins, currencies): dictionary-encoded
    /// UTF-8 string (`Dictionary(Int32, Utf8)`), `string` in Athena.
    Code,
    /// An instant: timestamp in milliseconds, UTC.
    Timestamp,
    /// A calendar date: `Date32`.
    Date,
    /// A small integer: `Int32`.
    Int,
    /// A 64-bit integer: `Int64`.
    BigInt,
    /// An amount of money: `DECIMAL(12,2)`.
    Money,
}

impl ColumnKind {
    /// The Arrow type.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnKind::Id => DataType::Utf8,
            ColumnKind::Code => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            ColumnKind::Timestamp => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(TIMESTAMP_ZONE.into()))
            }
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Int => DataType::Int32,
            ColumnKind::BigInt => DataType::Int64,
            ColumnKind::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
        }
    }

    /// The Athena (Hive DDL) type.
    pub fn athena(self) -> &'static str {
        match self {
            ColumnKind::Id | ColumnKind::Code => "string",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::Date => "date",
            ColumnKind::Int => "int",
            ColumnKind::BigInt => "bigint",
            ColumnKind::Money => "decimal(12,2)",
        }
    }
}

/// One column of an archive table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name: the contract's field name.
    pub name: &'static str,
    /// Its type.
    pub kind: ColumnKind,
    /// Whether it may be `NULL`.
    pub nullable: bool,
    /// What it holds, for the DDL's `COMMENT` and the docs.
    pub comment: &'static str,
}

const fn col(name: &'static str, kind: ColumnKind, comment: &'static str) -> Column {
    Column {
        name,
        kind,
        nullable: false,
        comment,
    }
}

use ColumnKind::{BigInt, Code, Date, Id, Int, Money, Timestamp};

const ENVELOPE: [Column; 4] = [
    col("event_id", Id, "UUID of the event, unique per event"),
    col("schema_version", Int, "version of the event contract"),
    col("occurred_at", Timestamp, "when it happened in the app, UTC"),
    col("source", Code, "the app that emitted it"),
];

const RECORD: [Column; 4] = [
    col("shard_id", Code, "Kinesis shard it was read from"),
    col(
        "sequence_number",
        Id,
        "Kinesis sequence number of its record",
    ),
    col(
        "sub_sequence_number",
        BigInt,
        "its place in a KPL aggregate, 0 for a plain record",
    ),
    Column {
        name: "arrived_at",
        kind: Timestamp,
        nullable: true,
        comment: "Kinesis approximate arrival time, UTC; NULL if the source gave none",
    },
];

const SEARCH: [Column; 7] = [
    col("session_id", Id, "app session of the search"),
    col("origin", Code, "IATA code of the origin"),
    col("destination", Code, "IATA code of the destination"),
    col("departure_date", Date, "outbound date searched"),
    Column {
        name: "return_date",
        kind: Date,
        nullable: true,
        comment: "return date, NULL for a one-way search",
    },
    col("passengers", Int, "passengers searched, 1 to 9"),
    col("cabin", Code, "cabin searched"),
];

const BOOKING: [Column; 9] = [
    col("booking_id", Id, "booking reference"),
    col("customer_id", Id, "pseudonymous customer id"),
    col("flight_id", Id, "flight designator and departure date"),
    col("origin", Code, "IATA code of the origin"),
    col("destination", Code, "IATA code of the destination"),
    col("cabin", Code, "cabin booked"),
    col("seats", Int, "seats booked, 1 to 9"),
    col("fare_amount", Money, "total fare for all seats"),
    col("fare_currency", Code, "ISO 4217 currency of the fare"),
];

const CANCELLATION: [Column; 6] = [
    col("booking_id", Id, "booking cancelled"),
    col("customer_id", Id, "pseudonymous customer id"),
    col("flight_id", Id, "the booked flight"),
    col("reason", Code, "why it was cancelled"),
    col(
        "refund_amount",
        Money,
        "amount refunded, 0 for non-refundable fares",
    ),
    col("refund_currency", Code, "ISO 4217 currency of the refund"),
];

const fn concat<const N: usize>(payload: &[Column]) -> [Column; N] {
    let mut out = [ENVELOPE[0]; N];
    let mut i = 0;
    while i < ENVELOPE.len() {
        out[i] = ENVELOPE[i];
        i += 1;
    }
    let mut j = 0;
    while j < payload.len() {
        out[i] = payload[j];
        i += 1;
        j += 1;
    }
    let mut k = 0;
    while k < RECORD.len() {
        out[i] = RECORD[k];
        i += 1;
        k += 1;
    }
    out
}

const SEARCH_COLUMNS: [Column; 15] = concat(&SEARCH);
const BOOKING_COLUMNS: [Column; 17] = concat(&BOOKING);
const CANCELLATION_COLUMNS: [Column; 14] = concat(&CANCELLATION);

impl ArchiveTable {
    /// Every table, in a stable order.
    pub const ALL: [ArchiveTable; 3] = [
        ArchiveTable::Searches,
        ArchiveTable::Bookings,
        ArchiveTable::Cancellations,
    ];

    /// The table of events of `event_type`.
    pub fn of(event_type: EventType) -> ArchiveTable {
        match event_type {
            EventType::Search => ArchiveTable::Searches,
            EventType::Booking => ArchiveTable::Bookings,
            EventType::Cancellation => ArchiveTable::Cancellations,
        }
    }

    /// The event type it holds.
    pub fn event_type(self) -> EventType {
        match self {
            ArchiveTable::Searches => EventType::Search,
            ArchiveTable::Bookings => EventType::Booking,
            ArchiveTable::Cancellations => EventType::Cancellation,
        }
    }

    /// The table's name in Athena (and the DuckDB views of `docs/analytics.md`).
    pub fn name(self) -> &'static str {
        match self {
            ArchiveTable::Searches => "searches",
            ArchiveTable::Bookings => "bookings",
            ArchiveTable::Cancellations => "cancellations",
        }
    }

    /// Its columns, in file order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            ArchiveTable::Searches => &SEARCH_COLUMNS,
            ArchiveTable::Bookings => &BOOKING_COLUMNS,
            ArchiveTable::Cancellations => &CANCELLATION_COLUMNS,
        }
    }

    /// The columns rows are sorted by within a file, so that the filters analysts
    /// use most prune row groups and pages by their statistics: route then time for
    /// searches and bookings, flight then time for cancellations (which name no
    /// route). `event_id` and the stream position end every key, which makes the
    /// order total and a file's bytes a function of its rows alone.
    pub fn sort_key(self) -> &'static [&'static str] {
        match self {
            ArchiveTable::Searches | ArchiveTable::Bookings => &[
                "origin",
                "destination",
                "occurred_at",
                "event_id",
                "shard_id",
                "sequence_number",
                "sub_sequence_number",
            ],
            ArchiveTable::Cancellations => &[
                "flight_id",
                "occurred_at",
                "event_id",
                "shard_id",
                "sequence_number",
                "sub_sequence_number",
            ],
        }
    }

    /// Columns looked up by one value, which get Parquet bloom filters: the event id
    /// (finding one event, and compaction's duplicates), and the booking reference
    /// (a booking's whole story).
    pub fn lookup_columns(self) -> &'static [&'static str] {
        match self {
            ArchiveTable::Searches => &["event_id", "session_id"],
            ArchiveTable::Bookings | ArchiveTable::Cancellations => &["event_id", "booking_id"],
        }
    }

    /// The Arrow schema of its files.
    pub fn arrow_schema(self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|c| Field::new(c.name, c.kind.arrow(), c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The partition directory of `event_type=<type>`, the table's location under
    /// the archive root.
    pub fn directory(self) -> String {
        format!("event_type={}", self.event_type().as_str())
    }
}

impl std::fmt::Display for ArchiveTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The partition columns, as Athena declares them (`PARTITIONED BY`).
pub const PARTITION_COLUMNS: [(&str, &str); 2] = [("dt", "string"), ("hour", "int")];

/// The first day partition projection enumerates.
pub const PROJECTION_START: &str = "2026-01-01";

/// The `CREATE EXTERNAL TABLE` statement of `table` in `database`, over the archive
/// at `root` (`s3://bucket/prefix`, no trailing slash), with partition projection:
/// `dt` as a date from [`PROJECTION_START`] to `NOW`, `hour` as a two-digit integer,
/// so that no `MSCK REPAIR TABLE` or crawler is ever needed.
pub fn athena_ddl(table: ArchiveTable, database: &str, root: &str) -> String {
    let location = format!("{root}/{}/", table.directory());
    let mut ddl = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {database}.{} (\n",
        table.name()
    );
    let columns = table.columns();
    for (i, c) in columns.iter().enumerate() {
        let comma = if i + 1 < columns.len() { "," } else { "" };
        ddl.push_str(&format!(
            "  {} {} COMMENT '{}'{comma}\n",
            c.name,
            c.kind.athena(),
            c.comment
        ));
    }
    let partitions: Vec<String> = PARTITION_COLUMNS
        .iter()
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    ddl.push_str(&format!(
        ")\nPARTITIONED BY ({})\nSTORED AS PARQUET\nLOCATION '{location}'\nTBLPROPERTIES (\n",
        partitions.join(", ")
    ));
    let properties = [
        ("projection.enabled", "true".to_string()),
        ("projection.dt.type", "date".into()),
        ("projection.dt.format", "yyyy-MM-dd".into()),
        ("projection.dt.range", format!("{PROJECTION_START},NOW")),
        ("projection.dt.interval", "1".into()),
        ("projection.dt.interval.unit", "DAYS".into()),
        ("projection.hour.type", "integer".into()),
        ("projection.hour.range", "0,23".into()),
        ("projection.hour.digits", "2".into()),
        (
            "storage.location.template",
            format!("{location}dt=${{dt}}/hour=${{hour}}/"),
        ),
        ("parquet.compression", "ZSTD".into()),
    ];
    for (i, (k, v)) in properties.iter().enumerate() {
        let comma = if i + 1 < properties.len() { "," } else { "" };
        ddl.push_str(&format!("  '{k}' = '{v}'{comma}\n"));
    }
    ddl.push_str(");\n");
    ddl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_with_the_envelope_and_ends_with_the_record() {
        for table in ArchiveTable::ALL {
            let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
            assert_eq!(
                &names[..4],
                ["event_id", "schema_version", "occurred_at", "source"]
            );
            assert_eq!(
                &names[names.len() - 4..],
                [
                    "shard_id",
                    "sequence_number",
                    "sub_sequence_number",
                    "arrived_at"
                ]
            );
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{table}: a column twice");
        }
    }

    #[test]
    fn sort_and_lookup_columns_exist() {
        for table in ArchiveTable::ALL {
            let schema = table.arrow_schema();
            for name in table.sort_key().iter().chain(table.lookup_columns()) {
                assert!(schema.field_with_name(name).is_ok(), "{table}.{name}");
            }
        }
    }

    #[test]
    fn money_is_decimal_12_2_and_instants_are_utc_millis() {
        let schema = ArchiveTable::Bookings.arrow_schema();
        assert_eq!(
            schema.field_with_name("fare_amount").unwrap().data_type(),
            &DataType::Decimal128(12, 2)
        );
        assert_eq!(
            schema.field_with_name("occurred_at").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let searches = ArchiveTable::Searches.arrow_schema();
        assert!(
            searches
                .field_with_name("return_date")
                .unwrap()
                .is_nullable()
        );
        assert!(
            !searches
                .field_with_name("departure_date")
                .unwrap()
                .is_nullable()
        );
    }

    #[test]
    fn ddl_projects_partitions_under_the_tables_directory() {
        let ddl = athena_ddl(ArchiveTable::Bookings, "flyhigh", "s3://b/archive");
        assert!(ddl.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS flyhigh.bookings (\n"));
        assert!(ddl.contains("  fare_amount decimal(12,2) COMMENT 'total fare for all seats',\n"));
        assert!(ddl.contains("LOCATION 's3://b/archive/event_type=booking/'"));
        assert!(ddl.contains(
            "'storage.location.template' = 's3://b/archive/event_type=booking/dt=${dt}/hour=${hour}/'"
        ));
        assert!(ddl.contains("PARTITIONED BY (dt string, hour int)"));
    }
}
