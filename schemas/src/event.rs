//! The envelope and the three event kinds.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The schema version this crate writes and the highest one it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One event as it travels through the pipeline: metadata plus a typed payload.
///
/// On the wire it is one JSON object: the metadata fields, `event_type` and `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "FlyHigh booking-pipeline event", extend("$id" = "https://flyhigh.example/schemas/envelope.schema.json"))]
pub struct Envelope {
    /// UUIDv7, set by the producer; unique per emitted event.
    pub event_id: Uuid,
    /// Contract version, see the crate docs on evolution.
    #[schemars(range(min = 1))]
    pub schema_version: u32,
    /// When the event happened in the app, UTC, millisecond precision.
    #[serde(with = "millis")]
    #[schemars(with = "String", regex(pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$"))]
    pub occurred_at: DateTime<Utc>,
    /// The emitting application, e.g. `ios-app` or `web-app`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub source: String,
    /// The event kind and its data.
    #[serde(flatten)]
    pub payload: Payload,
}

/// The event kind, tagged as `event_type` with its data under `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload", rename_all = "snake_case")]
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
    pub const ALL: [EventType; 3] = [EventType::Search, EventType::Booking, EventType::Cancellation];

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
    pub departure_date: NaiveDate,
    /// Return date for a round trip; not before the departure date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[schemars(regex(pattern = r"^[A-Z0-9]{2}[0-9]{1,4}-[0-9]{8}$"))]
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
    #[schemars(regex(pattern = r"^[A-Z0-9]{2}[0-9]{1,4}-[0-9]{8}$"))]
    pub flight_id: String,
    /// Why the booking was cancelled.
    pub reason: CancellationReason,
    /// Amount refunded; zero for non-refundable fares.
    pub refund: Money,
}

/// Travel cabin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cabin {
    Economy,
    PremiumEconomy,
    Business,
    First,
}

impl Cabin {
    /// Every cabin, in a stable order.
    pub const ALL: [Cabin; 4] = [Cabin::Economy, Cabin::PremiumEconomy, Cabin::Business, Cabin::First];

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
    #[schemars(with = "String", regex(pattern = r"^[0-9]{1,7}(\.[0-9]{1,2})?$"))]
    pub amount: Decimal,
    /// ISO 4217 currency code.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub currency: String,
}

impl Money {
    /// An amount in a currency.
    pub fn new(amount: Decimal, currency: impl Into<String>) -> Money {
        Money { amount, currency: currency.into() }
    }
}

impl Envelope {
    /// A new event of the current schema version with a fresh UUIDv7 id.
    ///
    /// The id's timestamp is taken from `occurred_at`, so ids sort by event time.
    pub fn new(source: impl Into<String>, occurred_at: DateTime<Utc>, payload: Payload) -> Envelope {
        let ms = occurred_at.timestamp_millis().max(0) as u64;
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
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

/// `occurred_at` on the wire: RFC 3339 UTC with exactly three fractional digits.
pub(crate) mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if !s.ends_with('Z') {
            return Err(serde::de::Error::custom("timestamp must be UTC with a `Z` suffix"));
        }
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {e}")))
    }
}
