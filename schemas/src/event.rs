//! The envelope and the three event kinds.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The schema version this crate writes and the highest one it reads.
pub const SCHEMA_VERSION: u32 = 1;

// Wire syntax of the fields the JSON Schema constrains with a pattern. Each pattern is
// the exact set of strings that both deserialize *and* validate here, so a producer
// that passes the JSON Schema is refused only for the cross-field rules listed in
// `docs/schema-evolution.md`. Written with `[0-9]`, never `\d`, because several regex
// engines (Rust's among them) let `\d` match non-ASCII digits.

/// A UUIDv7 in the hyphenated form: version nibble 7.
pub(crate) const UUID_V7_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// RFC 3339 in UTC, years 2000–2099, at most millisecond precision. Up to nine
/// fractional digits are allowed as long as those past the third are zeros, because
/// that is still a millisecond instant.
pub(crate) const TIMESTAMP_PATTERN: &str = "^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,3}0{0,6})?Z$";
/// A calendar date, `YYYY-MM-DD`.
pub(crate) const DATE_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// Flight designator, a dash, and the departure date as `YYYYMMDD`.
pub(crate) const FLIGHT_ID_PATTERN: &str =
    "^[A-Z0-9]{2}[0-9]{1,4}-[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$";
/// A non-negative amount below 10,000,000 with at most two decimals, no leading zeros.
pub(crate) const AMOUNT_PATTERN: &str = "^(0|[1-9][0-9]{0,6})(\\.[0-9]{1,2})?$";
/// Like [`AMOUNT_PATTERN`], but above zero.
pub(crate) const POSITIVE_AMOUNT_PATTERN: &str =
    "^(0\\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,6}(\\.[0-9]{1,2})?)$";

/// One event as it travels through the pipeline: metadata plus a typed payload.
///
/// On the wire it is one JSON object: the metadata fields, `event_type` and `payload`.
/// Fields it does not know are ignored (a newer producer may add some).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(title = "FlyHigh booking-pipeline event", extend("$id" = "https://flyhigh.example/schemas/envelope.schema.json"))]
pub struct Envelope {
    /// UUIDv7, set by the producer; unique per emitted event.
    #[serde(with = "hyphenated")]
    #[schemars(with = "String", regex(pattern = UUID_V7_PATTERN), extend("format" = "uuid"))]
    pub event_id: Uuid,
    /// Contract version, see the crate docs on evolution.
    #[schemars(range(min = 1, max = SCHEMA_VERSION))]
    pub schema_version: u32,
    /// When the event happened in the app, UTC, millisecond precision.
    #[serde(with = "millis")]
    #[schemars(with = "String", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub occurred_at: DateTime<Utc>,
    /// The emitting application, e.g. `ios-app` or `web-app`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9._-]+$"))]
    pub source: String,
    /// The event kind and its data.
    #[serde(flatten)]
    pub payload: Payload,
}

/// Read by hand rather than derived: a derived `#[serde(flatten)]` buffers every
/// event's whole object into serde's generic content tree before reading it again,
/// which was a large part of what each consumer spends per event. Here the payload is
/// read straight into its type once `event_type` is known (the producers write it
/// first); a payload before its `event_type` is buffered as JSON.
impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Envelope, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EnvelopeField {
    EventId,
    SchemaVersion,
    OccurredAt,
    Source,
    EventType,
    Payload,
    #[serde(other)]
    Unknown,
}

struct EventId(Uuid);

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EventId, D::Error> {
        hyphenated::deserialize(d).map(EventId)
    }
}

struct OccurredAt(DateTime<Utc>);

impl<'de> Deserialize<'de> for OccurredAt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OccurredAt, D::Error> {
        millis::deserialize(d).map(OccurredAt)
    }
}

struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        use serde::de::Error;
        fn once<T, E: Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            if slot.replace(value).is_some() {
                return Err(E::duplicate_field(name));
            }
            Ok(())
        }
        let mut event_id = None;
        let mut schema_version = None;
        let mut occurred_at = None;
        let mut source = None;
        let mut event_type: Option<EventType> = None;
        let mut payload: Option<Payload> = None;
        let mut early_payload: Option<serde_json::Value> = None;
        while let Some(field) = map.next_key::<EnvelopeField>()? {
            match field {
                EnvelopeField::EventId => {
                    once(&mut event_id, map.next_value::<EventId>()?.0, "event_id")?;
                }
                EnvelopeField::SchemaVersion => {
                    once(
                        &mut schema_version,
                        map.next_value::<u32>()?,
                        "schema_version",
                    )?;
                }
                EnvelopeField::OccurredAt => {
                    once(
                        &mut occurred_at,
                        map.next_value::<OccurredAt>()?.0,
                        "occurred_at",
                    )?;
                }
                EnvelopeField::Source => once(&mut source, map.next_value::<String>()?, "source")?,
                EnvelopeField::EventType => {
                    once(
                        &mut event_type,
                        map.next_value::<EventType>()?,
                        "event_type",
                    )?;
                }
                EnvelopeField::Payload => {
                    if payload.is_some() || early_payload.is_some() {
                        return Err(A::Error::duplicate_field("payload"));
                    }
                    match event_type {
                        Some(EventType::Search) => {
                            payload = Some(Payload::Search(map.next_value()?))
                        }
                        Some(EventType::Booking) => {
                            payload = Some(Payload::Booking(map.next_value()?));
                        }
                        Some(EventType::Cancellation) => {
                            payload = Some(Payload::Cancellation(map.next_value()?));
                        }
                        None => early_payload = Some(map.next_value()?),
                    }
                }
                EnvelopeField::Unknown => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let event_type = event_type.ok_or_else(|| A::Error::missing_field("event_type"))?;
        let payload = match (payload, early_payload) {
            (Some(payload), _) => payload,
            (None, Some(value)) => {
                let typed = match event_type {
                    EventType::Search => Search::deserialize(value).map(Payload::Search),
                    EventType::Booking => Booking::deserialize(value).map(Payload::Booking),
                    EventType::Cancellation => {
                        Cancellation::deserialize(value).map(Payload::Cancellation)
                    }
                };
                typed.map_err(A::Error::custom)?
            }
            (None, None) => return Err(A::Error::missing_field("payload")),
        };
        Ok(Envelope {
            event_id: event_id.ok_or_else(|| A::Error::missing_field("event_id"))?,
            schema_version: schema_version
                .ok_or_else(|| A::Error::missing_field("schema_version"))?,
            occurred_at: occurred_at.ok_or_else(|| A::Error::missing_field("occurred_at"))?,
            source: source.ok_or_else(|| A::Error::missing_field("source"))?,
            payload,
        })
    }
}

/// The event kind, tagged as `event_type` with its data under `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload", rename_all = "snake_case")]
#[schemars(transform = crate::json_schema::discriminate_by_event_type)]
pub enum Payload {
    /// A customer searched for flights on a route.
    Search(Search),
    /// A customer booked seats on a flight.
    Booking(Booking),
    /// A booking was cancelled (the whole booking).
    Cancellation(Cancellation),
}

/// The `event_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Search,
    Booking,
    Cancellation,
}

impl EventType {
    /// Every kind, in a stable order.
    pub const ALL: [EventType; 3] = [
        EventType::Search,
        EventType::Booking,
        EventType::Cancellation,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Search => "search",
            EventType::Booking => "booking",
            EventType::Cancellation => "cancellation",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A flight search. Searches carry no personal data, only a pseudonymous session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Search {
    /// Pseudonymous session id of the searching app.
    #[schemars(length(min = 8, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub session_id: String,
    /// IATA airport code of the origin.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub origin: String,
    /// IATA airport code of the destination; differs from the origin.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub destination: String,
    /// Outbound date searched.
    #[serde(with = "date")]
    #[schemars(with = "String", regex(pattern = DATE_PATTERN), extend("format" = "date"))]
    pub departure_date: NaiveDate,
    /// Return date for a round trip; not before the departure date.
    #[serde(
        default,
        with = "date::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>", regex(pattern = DATE_PATTERN), extend("format" = "date"))]
    pub return_date: Option<NaiveDate>,
    /// Number of passengers, 1 to 9.
    #[schemars(range(min = 1, max = 9))]
    pub passengers: u8,
    /// Cabin searched.
    pub cabin: Cabin,
}

/// A confirmed booking of seats on one flight in one cabin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Booking {
    /// The booking reference; the same booking emitted twice is counted once.
    #[schemars(length(min = 6, max = 36), regex(pattern = r"^[A-Z0-9-]+$"))]
    pub booking_id: String,
    /// Pseudonymous customer id (never a name, e-mail or document number).
    #[schemars(length(min = 4, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub customer_id: String,
    /// Flight designator and departure date, e.g. `FH0123-20261201`.
    #[schemars(regex(pattern = FLIGHT_ID_PATTERN))]
    pub flight_id: String,
    /// IATA airport code of the origin.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub origin: String,
    /// IATA airport code of the destination; differs from the origin.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub destination: String,
    /// Cabin booked.
    pub cabin: Cabin,
    /// Seats booked, 1 to 9.
    #[schemars(range(min = 1, max = 9))]
    pub seats: u8,
    /// Total fare paid for all seats.
    #[schemars(with = "PositiveMoney")]
    pub fare: Money,
}

/// The cancellation of a whole booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cancellation {
    /// The booking being cancelled.
    #[schemars(length(min = 6, max = 36), regex(pattern = r"^[A-Z0-9-]+$"))]
    pub booking_id: String,
    /// Pseudonymous customer id.
    #[schemars(length(min = 4, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub customer_id: String,
    /// The booked flight; also the partition key, so the cancellation is ordered after
    /// its booking within one shard.
    #[schemars(regex(pattern = FLIGHT_ID_PATTERN))]
    pub flight_id: String,
    /// Why the booking was cancelled.
    pub reason: CancellationReason,
    /// Amount refunded; zero for non-refundable fares.
    pub refund: Money,
}

/// Travel cabin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Cabin {
    Economy,
    PremiumEconomy,
    Business,
    First,
}

impl Cabin {
    /// Every cabin, in a stable order.
    pub const ALL: [Cabin; 4] = [
        Cabin::Economy,
        Cabin::PremiumEconomy,
        Cabin::Business,
        Cabin::First,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Cabin::Economy => "economy",
            Cabin::PremiumEconomy => "premium_economy",
            Cabin::Business => "business",
            Cabin::First => "first",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Cabin> {
        Cabin::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Cabin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a booking was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    CustomerRequest,
    ScheduleChange,
    PaymentFailed,
    Other,
}

/// An exact amount of money: a decimal (never a float) and an ISO 4217 currency.
///
/// On the wire the amount is a JSON string, e.g. `{"amount": "412.80", "currency": "GBP"}`,
/// so that no JSON library rounds it through a binary float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    /// Decimal amount, at most two decimal places.
    #[serde(with = "amount")]
    #[schemars(with = "String", regex(pattern = AMOUNT_PATTERN))]
    pub amount: Decimal,
    /// ISO 4217 currency code.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub currency: String,
}

// The JSON Schema of a fare: `Money` whose amount is above zero. Only the schema needs
// a separate type; in Rust the rule lives in validation.
#[derive(JsonSchema)]
#[schemars(
    description = "An exact amount of money above zero: a decimal string and an ISO 4217 currency."
)]
#[allow(dead_code)]
struct PositiveMoney {
    /// Decimal amount above zero, at most two decimal places.
    #[schemars(regex(pattern = POSITIVE_AMOUNT_PATTERN))]
    amount: String,
    /// ISO 4217 currency code.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    currency: String,
}

impl Money {
    /// An amount in a currency.
    pub fn new(amount: Decimal, currency: impl Into<String>) -> Money {
        Money {
            amount,
            currency: currency.into(),
        }
    }
}

impl Envelope {
    /// A new event of the current schema version with a fresh UUIDv7 id.
    ///
    /// The id's timestamp is taken from `occurred_at`, so ids sort by event time.
    pub fn new(
        source: impl Into<String>,
        occurred_at: DateTime<Utc>,
        payload: Payload,
    ) -> Envelope {
        let ms = occurred_at.timestamp_millis().max(0) as u64;
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            ms / 1000,
            ((ms % 1000) * 1_000_000) as u32,
        );
        Envelope {
            event_id: Uuid::new_v7(ts),
            schema_version: SCHEMA_VERSION,
            occurred_at,
            source: source.into(),
            payload,
        }
    }

    /// The event's kind.
    pub fn event_type(&self) -> EventType {
        match self.payload {
            Payload::Search(_) => EventType::Search,
            Payload::Booking(_) => EventType::Booking,
            Payload::Cancellation(_) => EventType::Cancellation,
        }
    }

    /// Serializes to the wire form (UTF-8 JSON).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these types cannot fail: no maps with non-string keys, no
        // fallible Serialize impls.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

// The deserializers below accept exactly one spelling of each value, the one the JSON
// Schema patterns describe. The libraries underneath are more lenient (chrono takes
// `t` or a space for `T` and unpadded dates, uuid takes braces, URNs and byte arrays,
// rust_decimal takes `+`, `_` and exponents), and every extra spelling the consumer
// accepted would be one the JSON Schema and non-Rust readers of the stream do not.
// Range and precision rules stay in validation, so they are reported together with
// every other offending field.

/// `occurred_at` on the wire: RFC 3339 UTC; written with exactly three fractional digits.
pub(crate) mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if !s.ends_with('Z') {
            return Err(serde::de::Error::custom(
                "timestamp must be UTC with a `Z` suffix",
            ));
        }
        if !has_canonical_shape(s.as_bytes()) {
            return Err(serde::de::Error::custom(
                "timestamp must look like 2026-11-22T10:15:00.250Z (a `T`, at most 9 fractional digits)",
            ));
        }
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {e}")))
    }

    /// The separator is `T` and the fraction, if any, has 1 to 9 digits; chrono checks
    /// the digits and ranges of the rest.
    fn has_canonical_shape(b: &[u8]) -> bool {
        let tail_ok = match b.get(19) {
            Some(b'Z') => b.len() == 20,
            Some(b'.') => {
                let fraction = &b[20..b.len() - 1];
                (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit)
            }
            _ => false,
        };
        b.get(10) == Some(&b'T') && tail_ok
    }
}

/// `event_id` on the wire: a hyphenated UUID string, nothing else.
pub(crate) mod hyphenated {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&id.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // 36 characters is the hyphenated form; `try_parse` checks the rest.
        if s.len() != 36 {
            return Err(serde::de::Error::custom(
                "must be a hyphenated UUID like 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            ));
        }
        Uuid::try_parse(&s).map_err(|e| serde::de::Error::custom(format!("not a UUID: {e}")))
    }
}

/// Dates on the wire: `YYYY-MM-DD`, zero-padded.
pub(crate) mod date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        use chrono::Datelike;
        // Written by hand: chrono's `format` interprets its pattern on every call,
        // and every event carries a date. Years beyond 9999 are refused on read.
        s.collect_str(&format_args!(
            "{:04}-{:02}-{:02}",
            d.year(),
            d.month(),
            d.day()
        ))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }

    fn parse(s: &str) -> Result<NaiveDate, String> {
        let b = s.as_bytes();
        let shape = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !shape {
            return Err(format!("must be a date like 2026-12-01, got {s:?}"));
        }
        // The shape is checked: the digits are read directly (chrono's
        // `parse_from_str` interprets its pattern on every call).
        let number = |range: std::ops::Range<usize>| {
            b[range]
                .iter()
                .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'))
        };
        let year = i32::try_from(number(0..4)).map_err(|e| e.to_string())?;
        NaiveDate::from_ymd_opt(year, number(5..7), number(8..10))
            .ok_or_else(|| format!("not a calendar date: {s:?} does not exist"))
    }

    pub mod option {
        use chrono::NaiveDate;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
            match <Option<std::borrow::Cow<'de, str>>>::deserialize(d)? {
                Some(s) => super::parse(&s).map(Some).map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// Money amounts on the wire: a JSON string of plain decimal digits.
///
/// Also keeps the format independent of rust_decimal's serde features, which another
/// crate in the build could switch (to floats, or to numbers) by feature unification.
pub(crate) mod amount {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(amount)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let digits = s.strip_prefix('-').unwrap_or(&s);
        let (int, frac) = match digits.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (digits, None),
        };
        let plain = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !plain(int) || (int.len() > 1 && int.starts_with('0')) || frac.is_some_and(|f| !plain(f))
        {
            return Err(serde::de::Error::custom(format!(
                "must be a decimal string like \"412.80\", got {s:?}"
            )));
        }
        let mut amount: Decimal = s
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("not a decimal: {e}")))?;
        // rust_decimal drops the sign of "-0"; keep it so that validation refuses the
        // minus sign the JSON Schema refuses.
        amount.set_sign_negative(s.starts_with('-'));
        Ok(amount)
    }
}
