//! Field-level validation of events.
//!
//! [`Envelope::validate`] reports every offending field at once, each with the JSON
//! path of the field and a reason a person can act on.

use std::fmt;

use chrono::{Datelike, Timelike};
use rust_decimal::Decimal;

use crate::MAX_EVENT_BYTES;
use crate::event::{Booking, Cancellation, Envelope, Money, Payload, SCHEMA_VERSION, Search};
use crate::partition::MAX_PARTITION_KEY_CHARS;

/// One field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `payload.fare.amount`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every field error found in one event (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The offending fields, in the order they were checked.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }

    /// Whether `field` is among the offending fields.
    pub fn has(&self, field: &str) -> bool {
        self.fields().any(|f| f == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects field errors.
#[derive(Default)]
struct Checker(Vec<FieldError>);

impl Checker {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn iata(&mut self, field: &str, code: &str) {
        if !(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())) {
            self.fail(
                field,
                format!("must be a 3-letter IATA airport code in capitals, got {code:?}"),
            );
        }
    }

    fn route(&mut self, origin: &str, destination: &str) {
        self.iata("payload.origin", origin);
        self.iata("payload.destination", destination);
        if origin == destination {
            self.fail(
                "payload.destination",
                format!("must differ from the origin ({origin})"),
            );
        }
    }

    fn token(
        &mut self,
        field: &str,
        value: &str,
        min: usize,
        max: usize,
        allowed: fn(u8) -> bool,
        what: &str,
    ) {
        let n = value.chars().count();
        if n < min || n > max {
            self.fail(field, format!("must be {min} to {max} characters, got {n}"));
        } else if !value.bytes().all(allowed) {
            self.fail(field, format!("may contain only {what}, got {value:?}"));
        }
    }

    fn pseudonymous_id(&mut self, field: &str, value: &str, min: usize) {
        self.token(
            field,
            value,
            min,
            64,
            |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            "letters, digits, '_' and '-'",
        );
    }

    fn booking_id(&mut self, value: &str) {
        self.token(
            "payload.booking_id",
            value,
            6,
            36,
            |b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-',
            "capital letters, digits and '-'",
        );
    }

    fn flight_id(&mut self, value: &str) {
        if !is_flight_id(value) {
            self.fail(
                "payload.flight_id",
                format!("must be a flight designator and departure date like FH0123-20261201, got {value:?}"),
            );
        }
    }

    fn count(&mut self, field: &str, value: u8) {
        if !(1..=9).contains(&value) {
            self.fail(field, format!("must be between 1 and 9, got {value}"));
        }
    }

    fn money(&mut self, field: &str, money: &Money, positive: bool) {
        let amount = money.amount;
        // "-0" too: the JSON Schema admits no sign, and the two must agree.
        if amount.is_sign_negative() {
            self.fail(
                format!("{field}.amount"),
                format!("must not be negative, got {amount}"),
            );
        } else if positive && amount.is_zero() {
            self.fail(format!("{field}.amount"), "must be greater than zero");
        } else if amount.scale() > 2 {
            self.fail(
                format!("{field}.amount"),
                format!("must have at most 2 decimal places, got {amount}"),
            );
        } else if amount >= Decimal::from(10_000_000) {
            self.fail(
                format!("{field}.amount"),
                format!("must be below 10000000, got {amount}"),
            );
        }
        if !(money.currency.len() == 3 && money.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            self.fail(
                format!("{field}.currency"),
                format!(
                    "must be an ISO 4217 code like EUR, got {:?}",
                    money.currency
                ),
            );
        }
    }
}

/// `FH0123-20261201`: two-character airline code, 1–4 digit flight number, a dash and
/// the departure date as `YYYYMMDD`.
pub fn is_flight_id(value: &str) -> bool {
    let Some((designator, date)) = value.split_once('-') else {
        return false;
    };
    let d = designator.as_bytes();
    d.len() >= 3
        && d.len() <= 6
        && d[..2].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && d[2..].iter().all(u8::is_ascii_digit)
        && date.len() == 8
        // chrono skips spaces between fields, so "2026 121" would parse as 2026-12-01.
        && date.bytes().all(|b| b.is_ascii_digit())
        && chrono::NaiveDate::parse_from_str(date, "%Y%m%d").is_ok()
}

impl Envelope {
    /// Checks every field; returns all the offending ones.
    ///
    /// This includes the total size of the event as serialized by [`Envelope::to_json`].
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        self.validate_encoded(self.to_json().len())
    }

    /// Like [`Envelope::validate`], for a caller that already serialized the event and
    /// knows its size in bytes.
    pub fn validate_encoded(&self, encoded_len: usize) -> Result<(), ValidationErrors> {
        let mut c = Checker::default();
        if self.event_id.get_version_num() != 7 {
            c.fail(
                "event_id",
                format!(
                    "must be a UUIDv7, got version {}",
                    self.event_id.get_version_num()
                ),
            );
        }
        if self.schema_version == 0 || self.schema_version > SCHEMA_VERSION {
            c.fail(
                "schema_version",
                format!(
                    "must be between 1 and {SCHEMA_VERSION}, got {}",
                    self.schema_version
                ),
            );
        }
        let t = self.occurred_at;
        if !t.nanosecond().is_multiple_of(1_000_000) {
            c.fail(
                "occurred_at",
                "must have millisecond precision (at most 3 fractional digits)",
            );
        }
        if !(2000..2100).contains(&t.year()) {
            c.fail(
                "occurred_at",
                format!("must be between the years 2000 and 2099, got {}", t.year()),
            );
        }
        c.token(
            "source",
            &self.source,
            1,
            64,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b),
            "lowercase letters, digits, '.', '_' and '-'",
        );
        match &self.payload {
            Payload::Search(s) => check_search(&mut c, s, self.occurred_at.date_naive()),
            Payload::Booking(b) => check_booking(&mut c, b),
            Payload::Cancellation(x) => check_cancellation(&mut c, x),
        }
        if encoded_len > MAX_EVENT_BYTES {
            c.fail(
                "(event)",
                format!("must be at most {MAX_EVENT_BYTES} bytes as JSON, got {encoded_len}"),
            );
        }
        debug_assert!(
            self.partition_key().chars().count() <= MAX_PARTITION_KEY_CHARS || !c.0.is_empty()
        );
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(c.0))
        }
    }
}

fn check_search(c: &mut Checker, s: &Search, today: chrono::NaiveDate) {
    c.pseudonymous_id("payload.session_id", &s.session_id, 8);
    c.route(&s.origin, &s.destination);
    // A day of slack either side covers apps in time zones ahead of or behind UTC.
    let earliest = today - chrono::Days::new(1);
    let latest = today + chrono::Days::new(400);
    if s.departure_date < earliest || s.departure_date > latest {
        c.fail(
            "payload.departure_date",
            format!(
                "must be between {earliest} and {latest} (from occurred_at), got {}",
                s.departure_date
            ),
        );
    }
    if let Some(r) = s.return_date
        && r < s.departure_date
    {
        c.fail(
            "payload.return_date",
            format!(
                "must not be before the departure date {}, got {r}",
                s.departure_date
            ),
        );
    }
    c.count("payload.passengers", s.passengers);
}

fn check_booking(c: &mut Checker, b: &Booking) {
    c.booking_id(&b.booking_id);
    c.pseudonymous_id("payload.customer_id", &b.customer_id, 4);
    c.flight_id(&b.flight_id);
    c.route(&b.origin, &b.destination);
    c.count("payload.seats", b.seats);
    c.money("payload.fare", &b.fare, true);
}

fn check_cancellation(c: &mut Checker, x: &Cancellation) {
    c.booking_id(&x.booking_id);
    c.pseudonymous_id("payload.customer_id", &x.customer_id, 4);
    c.flight_id(&x.flight_id);
    c.money("payload.refund", &x.refund, false);
}
