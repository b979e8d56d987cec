use std::collections::HashMap;

use flyhigh_schemas::{Booking, Cabin, Cancellation, CancellationReason, Money};
use proptest::prelude::*;

use super::*;

fn booking(id: &str, seats: u8) -> Booking {
    Booking {
        booking_id: id.into(),
        customer_id: "c-0001".into(),
        flight_id: "FH0001-20261201".into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        cabin: Cabin::Economy,
        seats,
        fare: Money::new("100.00".parse().unwrap(), "EUR"),
    }
}

fn cancellation(id: &str) -> Cancellation {
    Cancellation {
        booking_id: id.into(),
        customer_id: "c-0001".into(),
        flight_id: "FH0001-20261201".into(),
        reason: CancellationReason::Other,
        refund: Money::new("0".parse().unwrap(), "EUR"),
    }
}

fn key() -> CabinKey {
    CabinKey::new("FH0001-20261201", Cabin::Economy)
}

#[test]
fn given_nothing_when_booked_then_seats_are_sold() {
    let b = booking("BK0001", 3);
    let t = apply(None, InventoryEvent::Booking(&b)).unwrap();
    assert_eq!(t.record.status, BookingStatus::Booked);
    assert_eq!(t.delta, Some((key(), 3)));
}

#[test]
fn given_booked_when_booked_again_then_nothing_changes() {
    let b = booking("BK0001", 3);
    let state = apply(None, InventoryEvent::Booking(&b)).unwrap().record;
    assert_eq!(apply(Some(&state), InventoryEvent::Booking(&b)), None);
}

#[test]
fn given_booked_when_cancelled_then_the_booked_seats_are_released() {
    let b = booking("BK0001", 3);
    let state = apply(None, InventoryEvent::Booking(&b)).unwrap().record;
    let t = apply(
        Some(&state),
        InventoryEvent::Cancellation(&cancellation("BK0001")),
    )
    .unwrap();
    assert_eq!(t.record.status, BookingStatus::Cancelled);
    assert_eq!(t.delta, Some((key(), -3)));
    assert_eq!(
        apply(
            Some(&t.record),
            InventoryEvent::Cancellation(&cancellation("BK0001"))
        ),
        None
    );
    assert_eq!(apply(Some(&t.record), InventoryEvent::Booking(&b)), None);
}

#[test]
fn given_a_cancellation_first_when_the_booking_arrives_then_it_nets_out() {
    let pending = apply(None, InventoryEvent::Cancellation(&cancellation("BK0001"))).unwrap();
    assert_eq!(
        (pending.record.status, pending.delta.clone()),
        (BookingStatus::CancelPending, None)
    );
    let t = apply(
        Some(&pending.record),
        InventoryEvent::Booking(&booking("BK0001", 2)),
    )
    .unwrap();
    assert_eq!((t.record.status, t.delta), (BookingStatus::Cancelled, None));
    assert_eq!(t.record.seats, 2);
}

#[test]
fn a_booking_and_its_cancellation_in_one_batch_are_one_change_with_no_delta() {
    let (b, c) = (booking("BK0001", 2), cancellation("BK0001"));
    let plan = plan(
        &HashMap::new(),
        [
            (0, InventoryEvent::Booking(&b)),
            (1, InventoryEvent::Cancellation(&c)),
        ],
    );
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].expected, None);
    assert_eq!(plan.changes[0].record.status, BookingStatus::Cancelled);
    assert_eq!(plan.changes[0].delta, None);
}

#[derive(Debug, Clone)]
enum Op {
    Book(u8, u8, u8),
    Cancel(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0u8..30, 0u8..3, 1u8..5).prop_map(|(b, f, s)| Op::Book(b, f, s)),
            1 => (0u8..30).prop_map(Op::Cancel),
        ],
        0..200,
    )
}

fn materialize(ops: &[Op]) -> (Vec<Booking>, Vec<Cancellation>, Vec<(bool, usize)>) {
    let (mut bookings, mut cancels, mut order) = (vec![], vec![], vec![]);
    for op in ops {
        match op {
            Op::Book(b, f, s) => {
                let mut x = booking(&format!("BK{b:04}"), *s);
                x.flight_id = format!("FH000{f}-20261201");
                order.push((true, bookings.len()));
                bookings.push(x);
            }
            Op::Cancel(b) => {
                order.push((false, cancels.len()));
                cancels.push(cancellation(&format!("BK{b:04}")));
            }
        }
    }
    (bookings, cancels, order)
}

/// Applies a plan's transactions to a map-based store.
fn commit_all(
    store: &mut HashMap<String, BookingRecord>,
    sold: &mut BTreeMap<CabinKey, i64>,
    plan: Plan,
) {
    for tx in pack(plan.changes, MAX_TRANSACTION_ITEMS) {
        for c in &tx.changes {
            assert_eq!(
                store.get(&c.record.booking_id).map(|r| r.status),
                c.expected
            );
            store.insert(c.record.booking_id.clone(), c.record.clone());
        }
        for (k, n) in tx.counters {
            *sold.entry(k).or_insert(0) += n;
        }
    }
}

proptest! {
    /// However a stream is cut into batches, and whether a batch is delivered again,
    /// the inventory comes out the same.
    #[test]
    fn batching_and_redelivery_do_not_change_the_result(ops in ops(), cuts in proptest::collection::vec(1usize..40, 1..10)) {
        let (bookings, cancels, order) = materialize(&ops);
        let events: Vec<(usize, InventoryEvent<'_>)> = order
            .iter()
            .enumerate()
            .map(|(i, (is_booking, j))| (i, if *is_booking { InventoryEvent::Booking(&bookings[*j]) } else { InventoryEvent::Cancellation(&cancels[*j]) }))
            .collect();

        let (mut one_store, mut one_sold) = (HashMap::new(), BTreeMap::new());
        let p = plan(&one_store, events.iter().copied());
        commit_all(&mut one_store, &mut one_sold, p);

        let (mut store, mut sold) = (HashMap::new(), BTreeMap::new());
        let mut start = 0;
        let mut cut = cuts.iter().cycle();
        while start < events.len() {
            let end = (start + cut.next().unwrap()).min(events.len());
            for _delivery in 0..2 {
                let p = plan(&store, events[start..end].iter().copied());
                commit_all(&mut store, &mut sold, p);
            }
            start = end;
        }
        sold.retain(|_, n| *n != 0);
        one_sold.retain(|_, n| *n != 0);
        prop_assert_eq!(sold, one_sold);
        prop_assert_eq!(store, one_store);
    }

    #[test]
    fn packed_transactions_respect_the_item_limit_and_add_up(ops in ops(), max in 2usize..120) {
        let (bookings, cancels, order) = materialize(&ops);
        let events = order.iter().enumerate().map(|(i, (is_booking, j))| (i, if *is_booking { InventoryEvent::Booking(&bookings[*j]) } else { InventoryEvent::Cancellation(&cancels[*j]) }));
        let p = plan(&HashMap::new(), events);
        let mut expected: BTreeMap<CabinKey, i64> = BTreeMap::new();
        for c in &p.changes {
            if let Some((k, n)) = &c.delta { *expected.entry(k.clone()).or_insert(0) += n; }
        }
        let n_changes = p.changes.len();
        let txs = pack(p.changes, max);
        let mut got: BTreeMap<CabinKey, i64> = BTreeMap::new();
        let mut seen = 0;
        for tx in &txs {
            prop_assert!(tx.items() <= max);
            let keys: std::collections::BTreeSet<_> = tx.counters.iter().map(|(k, _)| k).collect();
            prop_assert_eq!(keys.len(), tx.counters.len());
            for (k, n) in &tx.counters { *got.entry(k.clone()).or_insert(0) += n; }
            seen += tx.changes.len();
        }
        expected.retain(|_, n| *n != 0);
        got.retain(|_, n| *n != 0);
        prop_assert_eq!(seen, n_changes);
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn the_departure_date_is_read_from_the_flight_id() {
    assert_eq!(
        departure_date("FH0123-20261201"),
        NaiveDate::from_ymd_opt(2026, 12, 1)
    );
    assert_eq!(departure_date("FH0123-20261301"), None);
    assert_eq!(departure_date("FH0123"), None);
    assert_eq!(departure_date("FH0123-2026120"), None);
}

#[test]
fn events_stop_being_applied_before_their_bookings_expire() {
    let expiry = booking_expiry("FH0123-20261201").unwrap();
    assert_eq!(expiry.to_rfc3339(), "2028-01-06T00:00:00+00:00");
    let day = chrono::Duration::days(1);
    assert!(within_horizon("FH0123-20261201", expiry - day * 3));
    assert!(!within_horizon("FH0123-20261201", expiry - day * 2));
    assert!(!within_horizon("FH0123-20261201", expiry + day));
    // No date, no expiry: always applied (validation rejects such ids anyway).
    assert!(within_horizon("FH0123", expiry + day * 1000));
}

#[test]
fn given_booked_when_a_changed_booking_arrives_then_it_is_a_reported_no_op() {
    let b = booking("BK0001", 3);
    let stored = apply(None, InventoryEvent::Booking(&b)).unwrap().record;
    let mut changed = booking("BK0001", 4);
    changed.flight_id = "FH0002-20261201".into();
    let current = HashMap::from([("BK0001".to_string(), stored)]);
    let plan = plan(
        &current,
        [
            (0, InventoryEvent::Booking(&b)),
            (1, InventoryEvent::Booking(&changed)),
        ],
    );
    assert!(plan.changes.is_empty());
    assert_eq!(plan.no_ops, 2);
    assert_eq!(plan.changed_duplicates.len(), 1);
    let dup = &plan.changed_duplicates[0];
    assert_eq!(dup.index, 1);
    assert_eq!(dup.recorded, ("FH0001-20261201".into(), Cabin::Economy, 3));
    assert_eq!(dup.received, ("FH0002-20261201".into(), Cabin::Economy, 4));
}

#[test]
fn transactions_come_in_order_of_their_earliest_event() {
    let bookings: Vec<Booking> = (0..6)
        .map(|i| {
            let mut b = booking(&format!("BK{i:04}"), 1);
            // Alternate flights so that grouping by counter reorders the changes.
            b.flight_id = format!("FH000{}-20261201", 2 - i % 2);
            b
        })
        .collect();
    let plan = plan(
        &HashMap::new(),
        bookings
            .iter()
            .enumerate()
            .map(|(i, b)| (i, InventoryEvent::Booking(b))),
    );
    let txs = pack(plan.changes, 3);
    let firsts: Vec<Option<usize>> = txs.iter().map(Transaction::first_index).collect();
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(firsts, sorted);
    assert_eq!(firsts[0], Some(0));
}
