//! Property tests of the contract.
//!
//! - Arbitrary *valid* events of each kind validate, pass the JSON Schema, and
//!   round-trip byte for byte through `to_json` and `decode`.
//! - Breaking any subset of independent fields is reported as exactly those fields,
//!   by `decode` and by `validate`, and the JSON Schema rejects the event unless every
//!   broken rule is one JSON Schema cannot express.
//! - Whatever `decode` accepts, the JSON Schema accepts; whatever the JSON Schema
//!   accepts and `decode` refuses breaks one of the cross-field rules.
//! - `decode` never panics, whatever the bytes.
//! - `hash_key` is MD5 read big-endian, checked against an independent MD5.

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use flyhigh_schemas::{
    Booking, Cabin, Cancellation, CancellationReason, DecodeError, Envelope, Money, Payload,
    Search, decode, hash_key,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Valid events.

/// 2000-01-01T00:00:00.000Z and 2099-12-31T23:59:59.999Z, the range validation allows.
const FIRST_MS: i64 = 946_684_800_000;
const LAST_MS: i64 = 4_102_444_799_999;

fn occurred_at() -> impl Strategy<Value = DateTime<Utc>> {
    (FIRST_MS..=LAST_MS).prop_map(|ms| Utc.timestamp_millis_opt(ms).unwrap())
}

/// A UUIDv7 whose timestamp is `at`, as a producer would make it; the random bits come
/// from proptest so that failures reproduce.
fn event_id(at: DateTime<Utc>) -> impl Strategy<Value = Uuid> {
    any::<[u8; 10]>().prop_map(move |random| {
        uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random).into_uuid()
    })
}

fn source() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,64}"
}

fn iata() -> impl Strategy<Value = String> {
    "[A-Z]{3}"
}

fn route() -> impl Strategy<Value = (String, String)> {
    (iata(), iata()).prop_filter("origin and destination differ", |(o, d)| o != d)
}

fn cabin() -> impl Strategy<Value = Cabin> {
    select(Cabin::ALL.to_vec())
}

fn currency() -> impl Strategy<Value = String> {
    "[A-Z]{3}"
}

/// Below 10,000,000 with 0 to 2 decimals, zero included unless `positive`.
fn money(positive: bool) -> impl Strategy<Value = Money> {
    (0u32..=2)
        .prop_flat_map(move |scale| {
            let limit = 10_000_000i64 * 10i64.pow(scale);
            (i64::from(positive)..limit).prop_map(move |units| Decimal::new(units, scale))
        })
        .prop_flat_map(|amount| currency().prop_map(move |c| Money::new(amount, c)))
}

fn date_in(first: NaiveDate, days: u64) -> impl Strategy<Value = NaiveDate> {
    (0..=days).prop_map(move |d| first + Days::new(d))
}

fn flight_id() -> impl Strategy<Value = String> {
    let first = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    ("[A-Z0-9]{2}[0-9]{1,4}", date_in(first, 36_500))
        .prop_map(|(d, date)| format!("{d}-{}", date.format("%Y%m%d")))
}

fn booking_id() -> impl Strategy<Value = String> {
    "[A-Z0-9-]{6,36}"
}

fn customer_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{4,64}"
}

fn envelope(
    at: DateTime<Utc>,
    payload: impl Strategy<Value = Payload>,
) -> impl Strategy<Value = Envelope> {
    (event_id(at), source(), payload).prop_map(move |(event_id, source, payload)| Envelope {
        event_id,
        schema_version: flyhigh_schemas::SCHEMA_VERSION,
        occurred_at: at,
        source,
        payload,
    })
}

fn search_event() -> impl Strategy<Value = Envelope> {
    occurred_at().prop_flat_map(|at| {
        // The window validation allows: a day before to 400 days after the event.
        let earliest = at.date_naive() - Days::new(1);
        let payload = (
            "[A-Za-z0-9_-]{8,64}",
            route(),
            date_in(earliest, 401),
            proptest::option::of(0u64..=60),
            1u8..=9,
            cabin(),
        )
            .prop_map(
                |(session_id, (origin, destination), departure_date, stay, passengers, cabin)| {
                    Payload::Search(Search {
                        session_id,
                        origin,
                        destination,
                        departure_date,
                        return_date: stay.map(|d| departure_date + Days::new(d)),
                        passengers,
                        cabin,
                    })
                },
            );
        envelope(at, payload)
    })
}

fn booking_event() -> impl Strategy<Value = Envelope> {
    let payload = (
        booking_id(),
        customer_id(),
        flight_id(),
        route(),
        cabin(),
        1u8..=9,
        money(true),
    )
        .prop_map(
            |(booking_id, customer_id, flight_id, (origin, destination), cabin, seats, fare)| {
                Payload::Booking(Booking {
                    booking_id,
                    customer_id,
                    flight_id,
                    origin,
                    destination,
                    cabin,
                    seats,
                    fare,
                })
            },
        )
        .boxed();
    occurred_at().prop_flat_map(move |at| envelope(at, payload.clone()))
}

fn cancellation_event() -> impl Strategy<Value = Envelope> {
    let reason = select(vec![
        CancellationReason::CustomerRequest,
        CancellationReason::ScheduleChange,
        CancellationReason::PaymentFailed,
        CancellationReason::Other,
    ]);
    let payload = (
        booking_id(),
        customer_id(),
        flight_id(),
        reason,
        money(false),
    )
        .prop_map(|(booking_id, customer_id, flight_id, reason, refund)| {
            Payload::Cancellation(Cancellation {
                booking_id,
                customer_id,
                flight_id,
                reason,
                refund,
            })
        })
        .boxed();
    occurred_at().prop_flat_map(move |at| envelope(at, payload.clone()))
}

fn valid_event() -> impl Strategy<Value = Envelope> {
    prop_oneof![search_event(), booking_event(), cancellation_event()]
}

proptest! {
    #[test]
    fn valid_events_validate_and_round_trip_byte_exactly(event in valid_event()) {
        prop_assert_eq!(event.validate(), Ok(()));
        let bytes = event.to_json();
        let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&decoded, &event);
        prop_assert_eq!(decoded.to_json(), bytes.clone());
        prop_assert!(common::schema_accepts(common::schema(), &bytes), "JSON Schema rejects {}: {:?}", String::from_utf8_lossy(&bytes), common::schema_errors(&bytes));
        prop_assert!(common::schema_accepts(common::schema_with_formats(), &bytes), "JSON Schema with formats rejects {}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn a_payload_before_its_event_type_and_unknown_fields_decode_the_same(event in valid_event()) {
        // Producers write `event_type` first; other JSON writers may not, and a newer
        // producer may add fields.
        let bytes = event.to_json();
        let mut object: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
        let payload = object.remove("payload").unwrap();
        let rest = serde_json::to_string(&object).unwrap();
        let reordered = format!(
            "{{\"payload\":{payload},\"added_by_a_newer_producer\":{{\"a\":[1,{{}}]}},{}",
            &rest[1..]
        );
        let decoded = decode(reordered.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {reordered}")))?;
        prop_assert_eq!(&decoded, &event);
        // A field given twice is refused, never silently overwritten.
        let twice = format!("{{\"source\":\"x\",{}", &String::from_utf8_lossy(&bytes)[1..]);
        prop_assert!(decode(twice.as_bytes()).is_err());
    }

    #[test]
    fn partition_keys_follow_the_design(event in valid_event()) {
        let key = event.partition_key();
        match &event.payload {
            Payload::Booking(b) => prop_assert_eq!(&key, &b.flight_id),
            Payload::Cancellation(c) => prop_assert_eq!(&key, &c.flight_id),
            Payload::Search(_) => prop_assert_eq!(&key, &event.event_id.as_simple().to_string()),
        }
        prop_assert!(!key.is_empty() && key.chars().count() <= 256);
    }
}

// ---------------------------------------------------------------------------
// Breaking fields.

const ENVELOPE_FIELDS: [&str; 4] = ["event_id", "schema_version", "occurred_at", "source"];
// Order matters where one break reads another field: `destination` may copy the
// (possibly broken) origin, and `return_date` is set from the (possibly broken)
// departure date.
const SEARCH_FIELDS: [&str; 6] = [
    "payload.session_id",
    "payload.origin",
    "payload.destination",
    "payload.departure_date",
    "payload.return_date",
    "payload.passengers",
];
const BOOKING_FIELDS: [&str; 8] = [
    "payload.booking_id",
    "payload.customer_id",
    "payload.flight_id",
    "payload.origin",
    "payload.destination",
    "payload.seats",
    "payload.fare.amount",
    "payload.fare.currency",
];
const CANCELLATION_FIELDS: [&str; 5] = [
    "payload.booking_id",
    "payload.customer_id",
    "payload.flight_id",
    "payload.refund.amount",
    "payload.refund.currency",
];

/// The rules a JSON Schema cannot express (see `json_schema.rs`): an event the schema
/// accepts but Rust refuses must break only these.
const CROSS_FIELD_RULES: [&str; 3] = [
    "payload.destination",
    "payload.departure_date",
    "payload.return_date",
];

fn pointer(field: &str) -> String {
    format!("/{}", field.replace('.', "/"))
}

fn get<'v>(value: &'v Value, field: &str) -> &'v Value {
    value.pointer(&pointer(field)).unwrap_or(&Value::Null)
}

fn set(value: &mut Value, field: &str, new: Value) {
    *value
        .pointer_mut(&pointer(field))
        .unwrap_or_else(|| panic!("no field {field}")) = new;
}

fn pick<T: Clone>(options: &[T], choice: u16) -> T {
    options[usize::from(choice) % options.len()].clone()
}

fn is_iata(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn date_of(value: &Value, field: &str) -> NaiveDate {
    get(value, field)
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{field} is no date in {value}"))
}

/// Breaks one field of a valid event's JSON so that validation must name it, leaving
/// every other field valid and the JSON well-typed (so decoding reaches validation).
/// Returns whether the JSON Schema can see the break.
fn break_field(event: &mut Value, field: &str, choice: u16) -> bool {
    let current = get(event, field).as_str().unwrap_or_default().to_owned();
    let new = match field {
        // Any version but 7, in the version nibble; still a well-formed UUID.
        "event_id" => {
            let mut id = current.into_bytes();
            id[14] = pick(b"012345689abcdef", choice);
            json!(String::from_utf8(id).unwrap())
        }
        "schema_version" => json!(0),
        "occurred_at" => {
            // Sub-millisecond precision keeps the date, which a search's departure window
            // depends on; a year out of range would not.
            let is_search = get(event, "event_type").as_str() == Some("search");
            match choice % 3 {
                _ if is_search => json!(current.replace('Z', &format!("{:03}Z", 1 + choice % 999))),
                0 => json!(current.replace('Z', &format!("{:03}Z", 1 + choice % 999))),
                // Leap years, so that a 29 February stays a date.
                1 => json!(format!("1996{}", &current[4..])),
                _ => json!(format!("2104{}", &current[4..])),
            }
        }
        "source" => json!(pick(
            &["Web-App", "", "web app", "a".repeat(65).as_str(), "web/app"],
            choice
        )),
        "payload.session_id" => json!(pick(
            &[
                "short",
                "s@ssion-id",
                "s".repeat(65).as_str(),
                "sess ion-id"
            ],
            choice
        )),
        "payload.origin" => json!(pick(
            &[
                current.to_lowercase(),
                "LH".into(),
                "L1R".into(),
                "LHRX".into()
            ],
            choice
        )),
        "payload.destination" => {
            let origin = get(event, "payload.origin")
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match choice % 3 {
                0 => {
                    set(event, field, json!(origin));
                    return !is_iata(&origin);
                }
                1 => json!(current.to_lowercase()),
                _ => json!(format!("{current}X")),
            }
        }
        "payload.departure_date" => {
            let at = get(event, "occurred_at").as_str().unwrap_or_default();
            let today: NaiveDate = at[..10]
                .parse()
                .unwrap_or_else(|e| panic!("occurred_at {at:?}: {e}"));
            set(
                event,
                field,
                json!((today - Days::new(2 + u64::from(choice) % 1000)).to_string()),
            );
            return false;
        }
        "payload.return_date" => {
            let departure = date_of(event, "payload.departure_date");
            set(
                event,
                field,
                json!((departure - Days::new(1 + u64::from(choice) % 30)).to_string()),
            );
            return false;
        }
        "payload.passengers" | "payload.seats" => {
            json!(pick(&[0u16, 10 + choice % 246], choice / 7))
        }
        "payload.booking_id" => json!(pick(
            &["bk-7q2m9x", "AB1", "A".repeat(37).as_str(), "BK 12345"],
            choice
        )),
        "payload.customer_id" => json!(pick(
            &["jane.doe@example.com", "abc", "c".repeat(65).as_str()],
            choice
        )),
        "payload.flight_id" => {
            json!(pick(
                &[
                    "FH123".to_owned(),
                    format!("x{}", &current[1..]),
                    "FH0123-20261301".into(),
                    "FH12345-20261201".into()
                ],
                choice
            ))
        }
        "payload.fare.amount" => json!(pick(
            &["0", "0.00", "-5.00", "1.234", "10000000", "-0"],
            choice
        )),
        "payload.refund.amount" => json!(pick(&["-1.00", "-0", "0.001", "12345678.00"], choice)),
        "payload.fare.currency" | "payload.refund.currency" => {
            json!(pick(&["gbp", "EURO", "E1R", ""], choice))
        }
        other => panic!("no break for {other}"),
    };
    set(event, field, new);
    true
}

/// A valid event's JSON with a non-empty subset of its fields broken.
fn broken_event() -> impl Strategy<Value = (Value, BTreeSet<String>, bool)> {
    let kind_fields = prop_oneof![
        search_event().prop_map(|e| (e, &SEARCH_FIELDS[..])),
        booking_event().prop_map(|e| (e, &BOOKING_FIELDS[..])),
        cancellation_event().prop_map(|e| (e, &CANCELLATION_FIELDS[..])),
    ];
    kind_fields.prop_flat_map(|(event, payload_fields)| {
        let fields: Vec<&'static str> = ENVELOPE_FIELDS
            .iter()
            .chain(payload_fields)
            .copied()
            .collect();
        let n = fields.len();
        (
            subsequence(fields, 1..=n),
            proptest::collection::vec(any::<u16>(), n),
        )
            .prop_map(move |(broken, choices)| {
                let mut value: Value = serde_json::from_slice(&event.to_json()).unwrap();
                // A round trip needs a return date to break; give it one that is valid.
                if broken.contains(&"payload.return_date")
                    && get(&value, "payload.return_date").is_null()
                {
                    let departure = get(&value, "payload.departure_date").clone();
                    value["payload"]["return_date"] = departure;
                }
                let mut visible = false;
                for (field, choice) in broken.iter().zip(&choices) {
                    visible |= break_field(&mut value, field, *choice);
                }
                (
                    value,
                    broken.iter().map(|f| f.to_string()).collect(),
                    visible,
                )
            })
    })
}

proptest! {
    #[test]
    fn broken_fields_are_reported_exactly((value, broken, visible) in broken_event()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match decode(&bytes) {
            Err(DecodeError::Invalid(errors)) => {
                let named: BTreeSet<String> = errors.fields().map(str::to_owned).collect();
                prop_assert_eq!(&named, &broken, "decode of {}: {}", text, errors);
            }
            other => prop_assert!(false, "expected invalid {:?}, got {:?} for {}", broken, other, text),
        }
        // The same through the Rust types, as a producer validates before sending.
        let event: Envelope = serde_json::from_value(value).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let named: BTreeSet<String> = event.validate().unwrap_err().fields().map(str::to_owned).collect();
        prop_assert_eq!(&named, &broken);
        let accepted = common::schema_accepts(common::schema(), &bytes);
        prop_assert_eq!(accepted, !visible, "JSON Schema verdict for {:?} in {}: {:?}", broken, text, common::schema_errors(&bytes));
    }
}

// ---------------------------------------------------------------------------
// The JSON Schema and `decode` agree.

/// Values that sit on the edge of some field's rules: other spellings of valid values,
/// near misses, and wrong types.
fn tricky_value() -> impl Strategy<Value = Value> {
    let strings = [
        "",
        " ",
        "LHR",
        "lhr",
        "LHRX",
        "JFK",
        "economy",
        "luxury",
        "other",
        "booking",
        "search",
        "web-app",
        "Web-App",
        "2026-12-01",
        "2026-12-1",
        " 2026-12-01",
        "2026-12-01 ",
        "20261201",
        "2026-11-22T10:15:00.250Z",
        "2026-11-22t10:15:00.250Z",
        "2026-11-22 10:15:00.250Z",
        "2026-11-22T10:15:00.250000Z",
        "2026-11-22T10:15:00.2500000000Z",
        "2026-11-22T10:15:00.250123Z",
        "2026-11-22T10:15:00Z",
        "2026-11-22T23:59:60.000Z",
        "2026-11-22T10:15:00.250z",
        "2026-11-22T10:15:00.250+00:00",
        "1999-11-22T10:15:00.250Z",
        "019aab1f-25ef-73a1-8c4d-5e6f708192a3",
        "019AAB1F-25EF-73A1-8C4D-5E6F708192A3",
        "{019aab1f-25ef-73a1-8c4d-5e6f708192a3}",
        "019aab1f25ef73a18c4d5e6f708192a3",
        "urn:uuid:019aab1f-25ef-73a1-8c4d-5e6f708192a3",
        "9b2f4c1e-3d5a-4e6f-8a7b-1c2d3e4f5a6b",
        "412.80",
        "412.8",
        "+412.80",
        "4.128e2",
        "0412.80",
        "1_412.80",
        ".5",
        "5.",
        "-0",
        "-0.00",
        "0",
        "0.00",
        "0.01",
        "9999999.99",
        "10000000",
        "412.805",
        "GBP",
        "gbp",
        "FH0123-20261201",
        "FH0123- 2026121",
        "FH0123-2026 121",
        "FH0123-20261301",
        "9W1-20270101",
        "BK7Q2M9X4",
        "c-5f1e0a",
        "s-9f8e7d6c5b4a",
    ];
    let byte_array: Value = json!([
        1, 154, 171, 31, 37, 239, 115, 161, 140, 77, 94, 111, 112, 129, 146, 163
    ]);
    let others = vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(1),
        json!(2),
        json!(9),
        json!(10),
        json!(-1),
        json!(256),
        json!(1.5),
        json!(412.8),
        json!([]),
        json!({}),
        byte_array,
        json!({"amount": "1.00", "currency": "EUR"}),
    ];
    prop_oneof![
        select(strings.iter().map(|s| json!(s)).collect::<Vec<_>>()),
        select(others),
        "[A-Za-z0-9 ._:+-]{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, a few levels deep.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value in `value`, as dotted field names.
fn paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.push(path.clone());
            paths(child, &path, out);
        }
    }
}

/// A valid event's JSON with one value replaced, or one unknown field added.
fn mutated_event(replacement: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    valid_event().prop_flat_map(move |event| {
        let value: Value = serde_json::from_slice(&event.to_json()).unwrap();
        let mut fields = Vec::new();
        paths(&value, "", &mut fields);
        fields.push("payload.x_new_field".into());
        fields.push("x_new_field".into());
        (select(fields), replacement.clone()).prop_map(move |(field, new)| {
            let mut value = value.clone();
            match field.rsplit_once('.') {
                Some((parent, key)) => value.pointer_mut(&pointer(parent)).unwrap()[key] = new,
                None => value[field.as_str()] = new,
            }
            value
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn json_schema_and_decode_agree_on_edge_values(value in mutated_event(tricky_value().boxed())) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let accepted = common::schema_accepts(common::schema(), &bytes);
        match decode(&bytes) {
            Ok(_) => prop_assert!(accepted, "decode accepts but the JSON Schema rejects {}: {:?}", value, common::schema_errors(&bytes)),
            // Every value here is a calendar date and no number has a fraction, so
            // only the cross-field rules separate the two.
            Err(DecodeError::Invalid(errors)) if accepted => {
                prop_assert!(errors.fields().all(|f| CROSS_FIELD_RULES.contains(&f)), "the JSON Schema accepts {} but decode says {}", value, errors);
            }
            Err(e) => prop_assert!(!accepted, "the JSON Schema accepts {} but decode says {} ({})", value, e, e.kind()),
        }
    }

    #[test]
    fn whatever_decode_accepts_the_json_schema_accepts(value in mutated_event(arbitrary_json().boxed())) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if decode(&bytes).is_ok() {
            prop_assert!(common::schema_accepts(common::schema(), &bytes), "decode accepts but the JSON Schema rejects {}", value);
        }
    }
}

// ---------------------------------------------------------------------------
// Never panics.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_damaged_events(
        event in valid_event(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = event.to_json();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_values(value in mutated_event(arbitrary_json().boxed())) {
        let _ = decode(&serde_json::to_vec(&value).unwrap());
    }
}

// ---------------------------------------------------------------------------
// The Kinesis hash key.

/// MD5 as RFC 1321 specifies it, written out here so that `hash_key` is checked
/// against something other than the crate it calls.
fn reference_md5(message: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(2^32 * |sin(i + 1)|), exact in f64 for these arguments.
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut data = message.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&((message.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in data.chunks_exact(64) {
        let m: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = f
                .wrapping_add(a)
                .wrapping_add(k[i])
                .wrapping_add(m[g])
                .rotate_left(SHIFTS[(i / 16) * 4 + i % 4]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut digest = [0u8; 16];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    digest
}

#[test]
fn reference_md5_matches_the_rfc_1321_test_suite() {
    let suite = [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    for (input, hex) in suite {
        let digest: String = reference_md5(input.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, hex, "MD5({input:?})");
    }
}

proptest! {
    #[test]
    fn hash_key_is_the_md5_of_the_partition_key_big_endian(key in any::<String>()) {
        prop_assert_eq!(hash_key(&key), u128::from_be_bytes(reference_md5(key.as_bytes())));
    }

    // Lengths around the 55/56/64-byte padding boundaries are where MD5s go wrong.
    #[test]
    fn hash_key_agrees_across_block_boundaries(key in "[a-zA-Z0-9-]{50,140}") {
        prop_assert_eq!(hash_key(&key), u128::from_be_bytes(reference_md5(key.as_bytes())));
    }
}
