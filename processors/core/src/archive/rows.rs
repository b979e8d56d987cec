//! Archived events ⇄ Arrow record batches, straight from the decoded events (no JSON
//! in between), in the column order and types of
//! [`ArchiveTable::columns`](flyhigh_schemas::archive::ArchiveTable::columns).

use std::sync::Arc;

use arrow_array::builder::{
    Date32Builder, Decimal128Builder, Int32Builder, Int64Builder, StringBuilder,
    StringDictionaryBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Int32Type, Int64Type, TimestampMillisecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use chrono::{DateTime, NaiveDate, Utc};
use flyhigh_schemas::archive::{ArchiveTable, MONEY_PRECISION, MONEY_SCALE, TIMESTAMP_ZONE};
use flyhigh_schemas::{
    Booking, Cabin, Cancellation, CancellationReason, Envelope, Money, Payload, Search,
};
use rust_decimal::Decimal;
use uuid_text::parse_uuid;

use super::ArchiveError;
use crate::records::Position;

/// One event as the archive keeps it: the event and where its record was in the
/// stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedEvent {
    /// The event.
    pub event: Envelope,
    /// The shard its record was read from.
    pub shard_id: String,
    /// The Kinesis sequence number of its record.
    pub sequence_number: String,
    /// Its place inside a KPL aggregate (0 for a plain record).
    pub sub_sequence_number: u32,
    /// Kinesis's approximate arrival time of its record.
    pub arrived_at: Option<DateTime<Utc>>,
}

impl ArchivedEvent {
    /// The table it goes to.
    pub fn table(&self) -> ArchiveTable {
        ArchiveTable::of(self.event.event_type())
    }

    /// Its record's position in the shard.
    pub fn position(&self) -> Position {
        Position::new(&self.sequence_number, Some(self.sub_sequence_number))
    }
}

/// Builders of the columns every table has.
struct Common {
    event_id: StringBuilder,
    schema_version: Int32Builder,
    occurred_at: TimestampMillisecondBuilder,
    source: StringDictionaryBuilder<Int32Type>,
    shard_id: StringDictionaryBuilder<Int32Type>,
    sequence_number: StringBuilder,
    sub_sequence_number: Int64Builder,
    arrived_at: TimestampMillisecondBuilder,
}

impl Common {
    fn new(rows: usize) -> Common {
        Common {
            event_id: StringBuilder::with_capacity(rows, rows * 36),
            schema_version: Int32Builder::with_capacity(rows),
            occurred_at: timestamps(rows),
            source: StringDictionaryBuilder::new(),
            shard_id: StringDictionaryBuilder::new(),
            sequence_number: StringBuilder::with_capacity(rows, rows * 56),
            sub_sequence_number: Int64Builder::with_capacity(rows),
            arrived_at: timestamps(rows),
        }
    }

    fn append(&mut self, row: &ArchivedEvent, id: &mut uuid_text::Buffer) {
        let e = &row.event;
        self.event_id.append_value(id.format(&e.event_id));
        self.schema_version.append_value(e.schema_version as i32);
        self.occurred_at
            .append_value(e.occurred_at.timestamp_millis());
        self.source.append_value(&e.source);
        self.shard_id.append_value(&row.shard_id);
        self.sequence_number.append_value(&row.sequence_number);
        self.sub_sequence_number
            .append_value(i64::from(row.sub_sequence_number));
        self.arrived_at
            .append_option(row.arrived_at.map(|t| t.timestamp_millis()));
    }

    /// The envelope's columns, then `payload`, then the record's.
    fn finish(mut self, payload: Vec<ArrayRef>) -> Vec<ArrayRef> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.schema_version.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.source.finish()),
        ];
        columns.extend(payload);
        columns.push(Arc::new(self.shard_id.finish()));
        columns.push(Arc::new(self.sequence_number.finish()));
        columns.push(Arc::new(self.sub_sequence_number.finish()));
        columns.push(Arc::new(self.arrived_at.finish()));
        columns
    }
}

fn timestamps(rows: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(rows).with_timezone(TIMESTAMP_ZONE)
}

fn money(rows: usize) -> Decimal128Builder {
    Decimal128Builder::with_capacity(rows)
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
        .expect("DECIMAL(12,2) is a valid decimal type")
}

/// The amount in hundredths. Valid events have at most two decimals and stay below
/// 10,000,000, so this fits `DECIMAL(12,2)`; anything else is refused, not rounded.
fn cents(field: &'static str, amount: &Decimal) -> Result<i128, ArchiveError> {
    let scale = amount.scale();
    if scale > MONEY_SCALE as u32 {
        return Err(ArchiveError::Unrepresentable {
            field,
            reason: format!("{amount} has more than {MONEY_SCALE} decimals"),
        });
    }
    let value = amount.mantissa() * 10i128.pow(MONEY_SCALE as u32 - scale);
    if value.abs() >= 10i128.pow(MONEY_PRECISION as u32) {
        return Err(ArchiveError::Unrepresentable {
            field,
            reason: format!("{amount} does not fit DECIMAL(12,2)"),
        });
    }
    Ok(value)
}

/// Days since 1970-01-01, Arrow's `Date32`.
fn days(date: NaiveDate) -> i32 {
    /// `num_days_from_ce` of 1970-01-01.
    const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
    chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE
}

/// Builds the record batch of `table` from `rows`, in the order given (sort them
/// with [`row_order`] first). Every row must be an event of `table`.
pub fn to_record_batch(
    table: ArchiveTable,
    rows: &[&ArchivedEvent],
) -> Result<RecordBatch, ArchiveError> {
    let n = rows.len();
    let mut common = Common::new(n);
    let mut id = uuid_text::Buffer::default();
    let mismatch = |row: &ArchivedEvent| ArchiveError::WrongTable {
        table,
        event_type: row.event.event_type().as_str(),
    };
    let payload: Vec<ArrayRef> = match table {
        ArchiveTable::Searches => {
            let mut session_id = StringBuilder::with_capacity(n, n * 16);
            let mut origin = StringDictionaryBuilder::<Int32Type>::new();
            let mut destination = StringDictionaryBuilder::<Int32Type>::new();
            let mut departure = Date32Builder::with_capacity(n);
            let mut return_date = Date32Builder::with_capacity(n);
            let mut passengers = Int32Builder::with_capacity(n);
            let mut cabin = StringDictionaryBuilder::<Int32Type>::new();
            for row in rows {
                let Payload::Search(s) = &row.event.payload else {
                    return Err(mismatch(row));
                };
                common.append(row, &mut id);
                session_id.append_value(&s.session_id);
                origin.append_value(&s.origin);
                destination.append_value(&s.destination);
                departure.append_value(days(s.departure_date));
                return_date.append_option(s.return_date.map(days));
                passengers.append_value(i32::from(s.passengers));
                cabin.append_value(s.cabin.as_str());
            }
            vec![
                Arc::new(session_id.finish()),
                Arc::new(origin.finish()),
                Arc::new(destination.finish()),
                Arc::new(departure.finish()),
                Arc::new(return_date.finish()),
                Arc::new(passengers.finish()),
                Arc::new(cabin.finish()),
            ]
        }
        ArchiveTable::Bookings => {
            let mut booking_id = StringBuilder::with_capacity(n, n * 12);
            let mut customer_id = StringBuilder::with_capacity(n, n * 12);
            let mut flight_id = StringBuilder::with_capacity(n, n * 15);
            let mut origin = StringDictionaryBuilder::<Int32Type>::new();
            let mut destination = StringDictionaryBuilder::<Int32Type>::new();
            let mut cabin = StringDictionaryBuilder::<Int32Type>::new();
            let mut seats = Int32Builder::with_capacity(n);
            let mut fare_amount = money(n);
            let mut fare_currency = StringDictionaryBuilder::<Int32Type>::new();
            for row in rows {
                let Payload::Booking(b) = &row.event.payload else {
                    return Err(mismatch(row));
                };
                common.append(row, &mut id);
                booking_id.append_value(&b.booking_id);
                customer_id.append_value(&b.customer_id);
                flight_id.append_value(&b.flight_id);
                origin.append_value(&b.origin);
                destination.append_value(&b.destination);
                cabin.append_value(b.cabin.as_str());
                seats.append_value(i32::from(b.seats));
                fare_amount.append_value(cents("fare_amount", &b.fare.amount)?);
                fare_currency.append_value(&b.fare.currency);
            }
            vec![
                Arc::new(booking_id.finish()),
                Arc::new(customer_id.finish()),
                Arc::new(flight_id.finish()),
                Arc::new(origin.finish()),
                Arc::new(destination.finish()),
                Arc::new(cabin.finish()),
                Arc::new(seats.finish()),
                Arc::new(fare_amount.finish()),
                Arc::new(fare_currency.finish()),
            ]
        }
        ArchiveTable::Cancellations => {
            let mut booking_id = StringBuilder::with_capacity(n, n * 12);
            let mut customer_id = StringBuilder::with_capacity(n, n * 12);
            let mut flight_id = StringBuilder::with_capacity(n, n * 15);
            let mut reason = StringDictionaryBuilder::<Int32Type>::new();
            let mut refund_amount = money(n);
            let mut refund_currency = StringDictionaryBuilder::<Int32Type>::new();
            for row in rows {
                let Payload::Cancellation(c) = &row.event.payload else {
                    return Err(mismatch(row));
                };
                common.append(row, &mut id);
                booking_id.append_value(&c.booking_id);
                customer_id.append_value(&c.customer_id);
                flight_id.append_value(&c.flight_id);
                reason.append_value(reason_name(c.reason));
                refund_amount.append_value(cents("refund_amount", &c.refund.amount)?);
                refund_currency.append_value(&c.refund.currency);
            }
            vec![
                Arc::new(booking_id.finish()),
                Arc::new(customer_id.finish()),
                Arc::new(flight_id.finish()),
                Arc::new(reason.finish()),
                Arc::new(refund_amount.finish()),
                Arc::new(refund_currency.finish()),
            ]
        }
    };
    let columns = common.finish(payload);
    RecordBatch::try_new(table.arrow_schema(), columns)
        .map_err(|e| ArchiveError::Arrow(e.to_string()))
}

/// The wire name of a cancellation reason.
pub fn reason_name(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::CustomerRequest => "customer_request",
        CancellationReason::ScheduleChange => "schedule_change",
        CancellationReason::PaymentFailed => "payment_failed",
        CancellationReason::Other => "other",
    }
}

fn parse_reason(s: &str) -> Option<CancellationReason> {
    [
        CancellationReason::CustomerRequest,
        CancellationReason::ScheduleChange,
        CancellationReason::PaymentFailed,
        CancellationReason::Other,
    ]
    .into_iter()
    .find(|r| reason_name(*r) == s)
}

/// A string column read back: plain or dictionary-encoded.
enum Strings<'a> {
    Plain(&'a arrow_array::StringArray),
    Dictionary(arrow_array::TypedDictionaryArray<'a, Int32Type, arrow_array::StringArray>),
}

impl Strings<'_> {
    fn value(&self, i: usize) -> &str {
        match self {
            Strings::Plain(a) => a.value(i),
            Strings::Dictionary(d) => {
                let key = d.keys().value(i) as usize;
                d.values().value(key)
            }
        }
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Strings::Plain(a) => a.is_null(i),
            Strings::Dictionary(d) => d.keys().is_null(i),
        }
    }
}

struct Columns<'a> {
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    fn column(&self, name: &'static str) -> Result<&'a ArrayRef, ArchiveError> {
        self.batch.column_by_name(name).ok_or(ArchiveError::Column {
            column: name,
            reason: "missing".into(),
        })
    }

    fn strings(&self, name: &'static str) -> Result<Strings<'a>, ArchiveError> {
        let c = self.column(name)?;
        match c.data_type() {
            DataType::Utf8 => Ok(Strings::Plain(c.as_string::<i32>())),
            DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                let d = c.as_dictionary::<Int32Type>();
                Ok(Strings::Dictionary(
                    d.downcast_dict::<arrow_array::StringArray>()
                        .expect("checked: Utf8 values"),
                ))
            }
            other => Err(wrong_type(name, other)),
        }
    }

    fn ints(
        &self,
        name: &'static str,
    ) -> Result<&'a arrow_array::PrimitiveArray<Int32Type>, ArchiveError> {
        let c = self.column(name)?;
        c.as_primitive_opt::<Int32Type>()
            .ok_or_else(|| wrong_type(name, c.data_type()))
    }

    fn bigints(
        &self,
        name: &'static str,
    ) -> Result<&'a arrow_array::PrimitiveArray<Int64Type>, ArchiveError> {
        let c = self.column(name)?;
        c.as_primitive_opt::<Int64Type>()
            .ok_or_else(|| wrong_type(name, c.data_type()))
    }

    fn timestamps(
        &self,
        name: &'static str,
    ) -> Result<&'a arrow_array::PrimitiveArray<TimestampMillisecondType>, ArchiveError> {
        let c = self.column(name)?;
        c.as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| wrong_type(name, c.data_type()))
    }

    fn dates(
        &self,
        name: &'static str,
    ) -> Result<&'a arrow_array::PrimitiveArray<Date32Type>, ArchiveError> {
        let c = self.column(name)?;
        c.as_primitive_opt::<Date32Type>()
            .ok_or_else(|| wrong_type(name, c.data_type()))
    }

    fn decimals(
        &self,
        name: &'static str,
    ) -> Result<&'a arrow_array::PrimitiveArray<Decimal128Type>, ArchiveError> {
        let c = self.column(name)?;
        c.as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| wrong_type(name, c.data_type()))
    }
}

fn wrong_type(column: &'static str, found: &DataType) -> ArchiveError {
    ArchiveError::Column {
        column,
        reason: format!("unexpected type {found}"),
    }
}

fn bad(column: &'static str, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Column {
        column,
        reason: reason.into(),
    }
}

fn instant(column: &'static str, millis: i64) -> Result<DateTime<Utc>, ArchiveError> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| bad(column, format!("{millis} ms is out of range")))
}

fn date(column: &'static str, days_since_epoch: i32) -> Result<NaiveDate, ArchiveError> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days_since_epoch.into())))
        .ok_or_else(|| bad(column, format!("day {days_since_epoch} is out of range")))
}

fn cabin(column: &'static str, s: &str) -> Result<Cabin, ArchiveError> {
    Cabin::parse(s).ok_or_else(|| bad(column, format!("unknown cabin {s:?}")))
}

fn small(column: &'static str, v: i32) -> Result<u8, ArchiveError> {
    u8::try_from(v).map_err(|_| bad(column, format!("{v} is out of range")))
}

/// Reads the rows of a record batch of `table` back into archived events (what
/// compaction merges).
pub fn from_record_batch(
    table: ArchiveTable,
    batch: &RecordBatch,
) -> Result<Vec<ArchivedEvent>, ArchiveError> {
    let c = Columns { batch };
    let event_id = c.strings("event_id")?;
    let schema_version = c.ints("schema_version")?;
    let occurred_at = c.timestamps("occurred_at")?;
    let source = c.strings("source")?;
    let shard_id = c.strings("shard_id")?;
    let sequence_number = c.strings("sequence_number")?;
    let sub = c.bigints("sub_sequence_number")?;
    let arrived_at = c.timestamps("arrived_at")?;
    let mut out = Vec::with_capacity(batch.num_rows());
    enum Kind<'a> {
        Search {
            session_id: Strings<'a>,
            origin: Strings<'a>,
            destination: Strings<'a>,
            departure: &'a arrow_array::PrimitiveArray<Date32Type>,
            return_date: &'a arrow_array::PrimitiveArray<Date32Type>,
            passengers: &'a arrow_array::PrimitiveArray<Int32Type>,
            cabin: Strings<'a>,
        },
        Booking {
            booking_id: Strings<'a>,
            customer_id: Strings<'a>,
            flight_id: Strings<'a>,
            origin: Strings<'a>,
            destination: Strings<'a>,
            cabin: Strings<'a>,
            seats: &'a arrow_array::PrimitiveArray<Int32Type>,
            amount: &'a arrow_array::PrimitiveArray<Decimal128Type>,
            currency: Strings<'a>,
        },
        Cancellation {
            booking_id: Strings<'a>,
            customer_id: Strings<'a>,
            flight_id: Strings<'a>,
            reason: Strings<'a>,
            amount: &'a arrow_array::PrimitiveArray<Decimal128Type>,
            currency: Strings<'a>,
        },
    }
    let kind = match table {
        ArchiveTable::Searches => Kind::Search {
            session_id: c.strings("session_id")?,
            origin: c.strings("origin")?,
            destination: c.strings("destination")?,
            departure: c.dates("departure_date")?,
            return_date: c.dates("return_date")?,
            passengers: c.ints("passengers")?,
            cabin: c.strings("cabin")?,
        },
        ArchiveTable::Bookings => Kind::Booking {
            booking_id: c.strings("booking_id")?,
            customer_id: c.strings("customer_id")?,
            flight_id: c.strings("flight_id")?,
            origin: c.strings("origin")?,
            destination: c.strings("destination")?,
            cabin: c.strings("cabin")?,
            seats: c.ints("seats")?,
            amount: c.decimals("fare_amount")?,
            currency: c.strings("fare_currency")?,
        },
        ArchiveTable::Cancellations => Kind::Cancellation {
            booking_id: c.strings("booking_id")?,
            customer_id: c.strings("customer_id")?,
            flight_id: c.strings("flight_id")?,
            reason: c.strings("reason")?,
            amount: c.decimals("refund_amount")?,
            currency: c.strings("refund_currency")?,
        },
    };
    let amount = |a: &arrow_array::PrimitiveArray<Decimal128Type>, i: usize| {
        Decimal::try_from_i128_with_scale(a.value(i), MONEY_SCALE as u32)
            .map(|mut d| {
                d.normalize_assign();
                d
            })
            .map_err(|e| bad("amount", e.to_string()))
    };
    for i in 0..batch.num_rows() {
        if event_id.is_null(i) {
            return Err(bad("event_id", "null"));
        }
        let payload = match &kind {
            Kind::Search {
                session_id,
                origin,
                destination,
                departure,
                return_date,
                passengers,
                cabin: cabin_col,
            } => Payload::Search(Search {
                session_id: session_id.value(i).to_string(),
                origin: origin.value(i).to_string(),
                destination: destination.value(i).to_string(),
                departure_date: date("departure_date", departure.value(i))?,
                return_date: if return_date.is_null(i) {
                    None
                } else {
                    Some(date("return_date", return_date.value(i))?)
                },
                passengers: small("passengers", passengers.value(i))?,
                cabin: cabin("cabin", cabin_col.value(i))?,
            }),
            Kind::Booking {
                booking_id,
                customer_id,
                flight_id,
                origin,
                destination,
                cabin: cabin_col,
                seats,
                amount: a,
                currency,
            } => Payload::Booking(Booking {
                booking_id: booking_id.value(i).to_string(),
                customer_id: customer_id.value(i).to_string(),
                flight_id: flight_id.value(i).to_string(),
                origin: origin.value(i).to_string(),
                destination: destination.value(i).to_string(),
                cabin: cabin("cabin", cabin_col.value(i))?,
                seats: small("seats", seats.value(i))?,
                fare: Money::new(amount(a, i)?, currency.value(i)),
            }),
            Kind::Cancellation {
                booking_id,
                customer_id,
                flight_id,
                reason,
                amount: a,
                currency,
            } => Payload::Cancellation(Cancellation {
                booking_id: booking_id.value(i).to_string(),
                customer_id: customer_id.value(i).to_string(),
                flight_id: flight_id.value(i).to_string(),
                reason: parse_reason(reason.value(i)).ok_or_else(|| {
                    bad("reason", format!("unknown reason {:?}", reason.value(i)))
                })?,
                refund: Money::new(amount(a, i)?, currency.value(i)),
            }),
        };
        let event = Envelope {
            event_id: parse_uuid(event_id.value(i))
                .ok_or_else(|| bad("event_id", format!("{:?} is not a UUID", event_id.value(i))))?,
            schema_version: u32::try_from(schema_version.value(i))
                .map_err(|_| bad("schema_version", "negative"))?,
            occurred_at: instant("occurred_at", occurred_at.value(i))?,
            source: source.value(i).to_string(),
            payload,
        };
        out.push(ArchivedEvent {
            event,
            shard_id: shard_id.value(i).to_string(),
            sequence_number: sequence_number.value(i).to_string(),
            sub_sequence_number: u32::try_from(sub.value(i))
                .map_err(|_| bad("sub_sequence_number", "out of range"))?,
            arrived_at: if arrived_at.is_null(i) {
                None
            } else {
                Some(instant("arrived_at", arrived_at.value(i))?)
            },
        });
    }
    Ok(out)
}

/// UUIDs as text without an allocation per value.
mod uuid_text {
    use uuid::Uuid;

    /// Reusable room for one hyphenated UUID.
    pub struct Buffer([u8; 36]);

    impl Default for Buffer {
        fn default() -> Buffer {
            Buffer([0; 36])
        }
    }

    impl Buffer {
        /// `id`, hyphenated and lower case, as the contract writes it.
        pub fn format(&mut self, id: &Uuid) -> &str {
            id.as_hyphenated().encode_lower(&mut self.0)
        }
    }

    /// Parses a hyphenated UUID.
    pub fn parse_uuid(s: &str) -> Option<Uuid> {
        Uuid::try_parse(s).ok()
    }
}
