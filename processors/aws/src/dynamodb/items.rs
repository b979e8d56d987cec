//! The table's items: keys, encoding and decoding, and the write requests built from
//! a [`Transaction`]. Pure; the store module alone sends them.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use flyhigh_core::inventory::{
    BookingRecord, BookingStatus, CabinInventory, CabinKey, FlightSchedule, MAX_TRANSACTION_ITEMS,
    Transaction, booking_expiry,
};
use flyhigh_core::records::Position;
use flyhigh_core::schedule::Schedule;
use flyhigh_schemas::Cabin;

/// An item as the SDK holds it.
pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
const STATUS: &str = "status";
const FLIGHT_ID: &str = "flight_id";
const CABIN: &str = "cabin";
const SEATS: &str = "seats";
const BOOKED_AT: &str = "booked_at";
const RELEASED_AT: &str = "released_at";
pub(crate) const SOLD: &str = "sold";
pub(crate) const CAPACITY: &str = "capacity";
pub(crate) const ORIGIN: &str = "origin";
pub(crate) const DESTINATION: &str = "destination";
pub(crate) const DEPARTURE: &str = "departure";
/// When DynamoDB's TTL may delete a booking item (epoch seconds); the table's TTL
/// attribute.
pub(crate) const EXPIRES_AT: &str = "expires_at";

const BOOKING_PREFIX: &str = "BOOKING#";
const BOOKING_SK: &str = "BOOKING";
/// Every flight-cabin item's partition key starts with this.
pub(crate) const FLIGHT_PREFIX: &str = "FLIGHT#";
pub(crate) const CABIN_PREFIX: &str = "CABIN#";

/// A string attribute value.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute value.
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The key of a booking item.
pub(crate) fn booking_key(booking_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{BOOKING_PREFIX}{booking_id}"))),
        (SK.into(), s(BOOKING_SK)),
    ])
}

/// The key of a flight-cabin item.
pub(crate) fn cabin_key(key: &CabinKey) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{FLIGHT_PREFIX}{}", key.flight_id))),
        (
            SK.into(),
            s(format!("{CABIN_PREFIX}{}", key.cabin.as_str())),
        ),
    ])
}

/// The full booking item (key included).
pub(crate) fn booking_item(record: &BookingRecord) -> Item {
    let mut item = booking_key(&record.booking_id);
    item.insert(STATUS.into(), s(record.status.as_str()));
    item.insert(FLIGHT_ID.into(), s(&record.flight_id));
    if let Some(cabin) = record.cabin {
        item.insert(CABIN.into(), s(cabin.as_str()));
    }
    item.insert(SEATS.into(), n(record.seats));
    // The positions of the events that moved its seats (`Position::to_key`), which the
    // flight alerts read back to judge a cabin event by event.
    if let Some(p) = &record.booked_at {
        item.insert(BOOKED_AT.into(), s(p.to_key()));
    }
    if let Some(p) = &record.released_at {
        item.insert(RELEASED_AT.into(), s(p.to_key()));
    }
    // Cancel-pending tombstones expire by the same rule: they name a flight too.
    if let Some(expiry) = booking_expiry(&record.flight_id) {
        item.insert(EXPIRES_AT.into(), n(expiry.timestamp()));
    }
    item
}

/// A string attribute that must be there.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(other) => Err(format!("attribute `{name}` is not a string: {other:?}")),
        None => Err(format!("attribute `{name}` is missing")),
    }
}

/// A number attribute, `None` when absent.
pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, String> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute `{name}` is out of range: {v}")),
        Some(other) => Err(format!("attribute `{name}` is not a number: {other:?}")),
        None => Ok(None),
    }
}

/// Decodes a booking item. An error names the broken attribute (the item was not
/// written by this adapter).
pub(crate) fn parse_booking(item: &Item) -> Result<BookingRecord, String> {
    let pk = get_s(item, PK)?;
    let booking_id = pk
        .strip_prefix(BOOKING_PREFIX)
        .ok_or_else(|| format!("`{pk}` is not a booking key"))?;
    let status = get_s(item, STATUS)?;
    let status =
        BookingStatus::parse(status).ok_or_else(|| format!("unknown booking status `{status}`"))?;
    let cabin = match item.get(CABIN) {
        None => None,
        Some(_) => {
            let cabin = get_s(item, CABIN)?;
            Some(Cabin::parse(cabin).ok_or_else(|| format!("unknown cabin `{cabin}`"))?)
        }
    };
    Ok(BookingRecord {
        booking_id: booking_id.to_string(),
        status,
        flight_id: get_s(item, FLIGHT_ID)?.to_string(),
        cabin,
        seats: get_n(item, SEATS)?.unwrap_or(0),
        booked_at: get_position(item, BOOKED_AT)?,
        released_at: get_position(item, RELEASED_AT)?,
    })
}

/// A position attribute (`Position::to_key`), `None` when absent.
fn get_position(item: &Item, name: &str) -> Result<Option<Position>, String> {
    if !item.contains_key(name) {
        return Ok(None);
    }
    let key = get_s(item, name)?;
    Position::from_key(key)
        .map(Some)
        .ok_or_else(|| format!("attribute `{name}` is not a record position: {key}"))
}

/// Decodes a flight-cabin item; `sold` is absent until the first sale.
pub(crate) fn parse_cabin(item: &Item) -> Result<CabinInventory, String> {
    let pk = get_s(item, PK)?;
    let flight_id = pk
        .strip_prefix(FLIGHT_PREFIX)
        .ok_or_else(|| format!("`{pk}` is not a flight key"))?;
    let sk = get_s(item, SK)?;
    let cabin = sk
        .strip_prefix(CABIN_PREFIX)
        .and_then(Cabin::parse)
        .ok_or_else(|| format!("`{pk}`/`{sk}` is not a flight-cabin key"))?;
    Ok(CabinInventory {
        flight_id: flight_id.to_string(),
        cabin,
        capacity: get_n(item, CAPACITY)?,
        sold: get_n(item, SOLD)?.unwrap_or(0),
        schedule: parse_flight_schedule(item)?,
    })
}

/// What the schedule wrote on a flight-cabin item; `None` on an item only sales
/// created (an unscheduled flight).
fn parse_flight_schedule(item: &Item) -> Result<Option<FlightSchedule>, String> {
    if !item.contains_key(DEPARTURE) {
        return Ok(None);
    }
    let departure = get_s(item, DEPARTURE)?;
    let departure = chrono::DateTime::parse_from_rfc3339(departure)
        .map_err(|e| format!("attribute `{DEPARTURE}` is not an RFC 3339 time: {e}"))?
        .with_timezone(&chrono::Utc);
    Ok(Some(FlightSchedule {
        origin: get_s(item, ORIGIN)?.to_string(),
        destination: get_s(item, DESTINATION)?.to_string(),
        departure,
    }))
}

/// Why a transaction cannot be sent as it is. Sending it again cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidTransaction(pub(crate) String);

/// The `TransactWriteItems` actions of a transaction: one conditional Put per booking
/// change, one `ADD sold` Update per non-zero counter.
///
/// Enforces what DynamoDB enforces and moto does not: at most
/// [`MAX_TRANSACTION_ITEMS`] actions, and no two on one item.
pub(crate) fn transact_items(
    table: &str,
    tx: &Transaction,
) -> Result<Vec<TransactWriteItem>, InvalidTransaction> {
    let counters: Vec<&(CabinKey, i64)> = tx
        .counters
        .iter()
        .filter(|(_, delta)| *delta != 0)
        .collect();
    let total = tx.changes.len() + counters.len();
    if total > MAX_TRANSACTION_ITEMS {
        return Err(InvalidTransaction(format!(
            "transaction has {total} items, more than the limit of {MAX_TRANSACTION_ITEMS}"
        )));
    }
    let mut bookings = HashSet::new();
    let mut cabins = HashSet::new();
    let mut items = Vec::with_capacity(total);
    for change in &tx.changes {
        let id = &change.record.booking_id;
        if !bookings.insert(id.as_str()) {
            return Err(InvalidTransaction(format!(
                "booking `{id}` appears twice in one transaction"
            )));
        }
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(booking_item(&change.record)));
        let put = match change.expected {
            None => put.condition_expression(format!("attribute_not_exists({PK})")),
            Some(expected) => put
                .condition_expression("#status = :expected")
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_values(":expected", s(expected.as_str())),
        };
        let put = put.build().map_err(|e| InvalidTransaction(e.to_string()))?;
        items.push(TransactWriteItem::builder().put(put).build());
    }
    for (key, delta) in counters {
        if !cabins.insert(key) {
            return Err(InvalidTransaction(format!(
                "counter {} {} appears twice",
                key.flight_id, key.cabin
            )));
        }
        // ADD creates the item (and the attribute) when missing: a sale on a flight
        // that is not in the schedule is counted, with no capacity.
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(cabin_key(key)))
            .update_expression("ADD #sold :delta")
            .expression_attribute_names("#sold", SOLD)
            .expression_attribute_values(":delta", n(delta))
            .build()
            .map_err(|e| InvalidTransaction(e.to_string()))?;
        items.push(TransactWriteItem::builder().update(update).build());
    }
    Ok(items)
}

/// One schedule write: the key of a flight-cabin item and what to `SET` on it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleUpdate {
    pub(crate) key: Item,
    pub(crate) values: Item,
}

/// The `UpdateItem` expression of every [`ScheduleUpdate`]. It never names `sold`,
/// so loading a schedule keeps what was already sold.
pub(crate) const SCHEDULE_EXPRESSION: &str = "SET #capacity = :capacity, #origin = :origin, #destination = :destination, #departure = :departure";

/// The attribute names of [`SCHEDULE_EXPRESSION`].
pub(crate) fn schedule_names() -> HashMap<String, String> {
    [CAPACITY, ORIGIN, DESTINATION, DEPARTURE]
        .into_iter()
        .map(|a| (format!("#{a}"), a.to_string()))
        .collect()
}

/// One update per flight and cabin of the schedule. A flight listed twice: the last
/// listing wins, as if the writes ran in file order.
pub(crate) fn schedule_updates(schedule: &Schedule) -> Vec<ScheduleUpdate> {
    let mut by_key: BTreeMap<CabinKey, ScheduleUpdate> = BTreeMap::new();
    for flight in &schedule.flights {
        for (&cabin, &capacity) in &flight.capacity {
            let key = CabinKey::new(&flight.flight_id, cabin);
            let values = HashMap::from([
                (":capacity".to_string(), n(capacity)),
                (":origin".to_string(), s(&flight.origin)),
                (":destination".to_string(), s(&flight.destination)),
                (
                    ":departure".to_string(),
                    s(flight
                        .departure
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ),
            ]);
            by_key.insert(
                key.clone(),
                ScheduleUpdate {
                    key: cabin_key(&key),
                    values,
                },
            );
        }
    }
    by_key.into_values().collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use flyhigh_core::inventory::BookingChange;
    use flyhigh_core::schedule::ScheduledFlight;

    use super::*;

    fn record(id: &str, status: BookingStatus, cabin: Option<Cabin>, seats: u8) -> BookingRecord {
        BookingRecord {
            booking_id: id.into(),
            status,
            flight_id: "FH1-20261201".into(),
            cabin,
            seats,
            booked_at: None,
            released_at: None,
        }
    }

    fn change(id: &str, expected: Option<BookingStatus>, delta: i64) -> BookingChange {
        BookingChange {
            expected,
            record: record(id, BookingStatus::Booked, Some(Cabin::Economy), 2),
            delta: Some((CabinKey::new("FH1-20261201", Cabin::Economy), delta)),
            first_index: 0,
        }
    }

    #[test]
    fn booking_items_round_trip() {
        for r in [
            record("B1", BookingStatus::Booked, Some(Cabin::Business), 3),
            record("B#2", BookingStatus::CancelPending, None, 0),
            record(
                "B3",
                BookingStatus::Cancelled,
                Some(Cabin::PremiumEconomy),
                255,
            ),
            BookingRecord {
                booked_at: Some(Position::new(
                    "49590000000000000000000000000000000000000000000001",
                    Some(3),
                )),
                released_at: Some(Position::new("7", None)),
                ..record("B4", BookingStatus::Cancelled, Some(Cabin::First), 1)
            },
        ] {
            let item = booking_item(&r);
            assert_eq!(item[PK], s(format!("BOOKING#{}", r.booking_id)));
            assert_eq!(item[SK], s("BOOKING"));
            assert_eq!(parse_booking(&item), Ok(r));
        }
    }

    #[test]
    fn booking_without_cabin_has_no_cabin_attribute() {
        let item = booking_item(&record("B1", BookingStatus::CancelPending, None, 0));
        assert!(!item.contains_key(CABIN));
    }

    #[test]
    fn booking_items_carry_their_expiry_in_epoch_seconds() {
        let item = booking_item(&record("B1", BookingStatus::CancelPending, None, 0));
        let expiry = booking_expiry(&record("B1", BookingStatus::Booked, None, 0).flight_id)
            .unwrap()
            .timestamp();
        assert_eq!(
            item.get(EXPIRES_AT),
            Some(&AttributeValue::N(expiry.to_string()))
        );
    }

    #[test]
    fn broken_booking_items_name_the_attribute() {
        let mut item = booking_item(&record("B1", BookingStatus::Booked, Some(Cabin::First), 1));
        item.insert(STATUS.into(), s("lost"));
        assert!(parse_booking(&item).unwrap_err().contains("lost"));
        item.insert(STATUS.into(), n(1));
        assert!(parse_booking(&item).unwrap_err().contains("status"));
        item.insert(STATUS.into(), s("booked"));
        item.insert(SEATS.into(), n(300));
        assert!(parse_booking(&item).unwrap_err().contains("seats"));
    }

    #[test]
    fn cabin_items_parse_with_and_without_capacity_and_sales() {
        let key = CabinKey::new("FH9-20261224", Cabin::PremiumEconomy);
        let mut item = cabin_key(&key);
        assert_eq!(item[SK], s("CABIN#premium_economy"));
        let parsed = parse_cabin(&item).unwrap();
        assert_eq!((parsed.capacity, parsed.sold), (None, 0));
        item.insert(SOLD.into(), n(-3));
        item.insert(CAPACITY.into(), n(180));
        let parsed = parse_cabin(&item).unwrap();
        assert_eq!(
            parsed,
            CabinInventory {
                flight_id: key.flight_id.clone(),
                cabin: key.cabin,
                capacity: Some(180),
                sold: -3,
                schedule: None,
            }
        );
        // What the schedule update writes reads back as the flight's schedule.
        let departure = chrono::Utc.with_ymd_and_hms(2026, 12, 24, 7, 5, 0).unwrap();
        let update = schedule_updates(&Schedule {
            flights: vec![ScheduledFlight {
                flight_id: key.flight_id.clone(),
                origin: "LHR".into(),
                destination: "JFK".into(),
                departure,
                capacity: BTreeMap::from([(key.cabin, 180)]),
            }],
        })
        .remove(0);
        item.insert(ORIGIN.into(), update.values[":origin"].clone());
        item.insert(DESTINATION.into(), update.values[":destination"].clone());
        item.insert(DEPARTURE.into(), update.values[":departure"].clone());
        let schedule = parse_cabin(&item).unwrap().schedule.unwrap();
        assert_eq!(
            (schedule.route(), schedule.departure),
            ("LHR-JFK".into(), departure)
        );
        item.insert(DEPARTURE.into(), s("tomorrow"));
        assert!(parse_cabin(&item).unwrap_err().contains("departure"));
        item.insert(DEPARTURE.into(), update.values[":departure"].clone());
        item.insert(SK.into(), s("CABIN#steerage"));
        assert!(parse_cabin(&item).is_err());
    }

    #[test]
    fn new_bookings_are_conditional_on_absence_and_transitions_on_status() {
        let tx = Transaction {
            changes: vec![
                change("B1", None, 2),
                change("B2", Some(BookingStatus::CancelPending), 0),
            ],
            counters: vec![(CabinKey::new("FH1-20261201", Cabin::Economy), 2)],
        };
        let items = transact_items("t", &tx).unwrap();
        assert_eq!(items.len(), 3);
        let first = items[0].put().unwrap();
        assert_eq!(
            first.condition_expression(),
            Some("attribute_not_exists(pk)")
        );
        assert_eq!(first.table_name(), "t");
        let second = items[1].put().unwrap();
        assert_eq!(second.condition_expression(), Some("#status = :expected"));
        assert_eq!(
            second.expression_attribute_values().unwrap()[":expected"],
            s("cancel_pending")
        );
        let counter = items[2].update().unwrap();
        assert_eq!(counter.update_expression(), "ADD #sold :delta");
        assert_eq!(
            counter.expression_attribute_values().unwrap()[":delta"],
            n(2)
        );
        assert_eq!(counter.key()[PK], s("FLIGHT#FH1-20261201"));
    }

    #[test]
    fn zero_counters_are_not_written() {
        let tx = Transaction {
            changes: vec![change("B1", None, 0)],
            counters: vec![(CabinKey::new("FH1-20261201", Cabin::Economy), 0)],
        };
        assert_eq!(transact_items("t", &tx).unwrap().len(), 1);
    }

    #[test]
    fn transactions_over_the_limit_are_refused() {
        let key = CabinKey::new("FH1-20261201", Cabin::Economy);
        let changes: Vec<_> = (0..MAX_TRANSACTION_ITEMS)
            .map(|i| change(&format!("B{i}"), None, 1))
            .collect();
        let full = Transaction {
            changes: changes[..MAX_TRANSACTION_ITEMS - 1].to_vec(),
            counters: vec![(key.clone(), 99)],
        };
        assert_eq!(
            transact_items("t", &full).unwrap().len(),
            MAX_TRANSACTION_ITEMS
        );
        let over = Transaction {
            changes,
            counters: vec![(key, 100)],
        };
        assert!(transact_items("t", &over).unwrap_err().0.contains("limit"));
    }

    #[test]
    fn two_actions_on_one_item_are_refused() {
        let tx = Transaction {
            changes: vec![change("B1", None, 1), change("B1", None, 1)],
            counters: vec![],
        };
        assert!(transact_items("t", &tx).is_err());
        let key = CabinKey::new("FH1-20261201", Cabin::Economy);
        let tx = Transaction {
            changes: vec![],
            counters: vec![(key.clone(), 1), (key, 2)],
        };
        assert!(transact_items("t", &tx).is_err());
    }

    #[test]
    fn schedule_updates_set_capacity_and_route_never_sold() {
        let flight = |capacity: u32| ScheduledFlight {
            flight_id: "FH1-20261201".into(),
            origin: "LHR".into(),
            destination: "JFK".into(),
            departure: chrono::Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap(),
            capacity: BTreeMap::from([(Cabin::Economy, capacity), (Cabin::Business, 20)]),
        };
        let schedule = Schedule {
            flights: vec![flight(150), flight(180)],
        };
        let updates = schedule_updates(&schedule);
        assert_eq!(
            updates.len(),
            2,
            "one per flight and cabin, the last listing wins"
        );
        let economy = updates
            .iter()
            .find(|u| u.key[SK] == s("CABIN#economy"))
            .unwrap();
        assert_eq!(economy.values[":capacity"], n(180));
        assert_eq!(economy.values[":departure"], s("2026-12-01T09:30:00.000Z"));
        assert!(!SCHEDULE_EXPRESSION.contains(SOLD));
        let names = schedule_names();
        for placeholder in SCHEDULE_EXPRESSION.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some(rest) = placeholder.strip_prefix('#') {
                assert_eq!(names[placeholder], rest);
            } else if placeholder.starts_with(':') {
                assert!(economy.values.contains_key(placeholder));
            }
        }
    }
}
