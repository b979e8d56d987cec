//! Model-based property test: random event logs delivered the ways the platform
//! delivers them, checked against the independent [`Reference`].
//!
//! A log holds bookings, bookings re-emitted with new event ids (some with another
//! flight or seat count), cancellations before and after their booking (some naming
//! another flight), repeated cancellations, bookings on an unscheduled flight and on
//! a flight beyond the retention horizon, and poison. One or two consumers read it,
//! each in batches of its own size, retrying from the reported record, sometimes
//! redelivering a batch that succeeded; they interleave at every store call on one
//! store whose commits conflict, are raced by the other writer, or fail as a script
//! says, whose reads fail, and whose dead-letter sink fails. Whatever the schedule,
//! the final inventory equals the reference of the log, and every poison record is
//! dead-lettered.

use std::collections::BTreeSet;

use flyhigh_schemas::Booking;
use proptest::prelude::*;

use super::reference::Reference;
use super::scripted::{ScriptedStore, Step};
use super::*;

/// The flight beyond the retention horizon at [`now`]: bookings on it are set aside,
/// cancellations naming it are applied (they release what their booking recorded).
const DEPARTED: &str = "FH0003-20241101";
const FLIGHTS: [&str; 4] = [FLIGHT, "FH0456-20261202", "FH0999-20261203", DEPARTED];

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// A booking; `changed` re-emits it with another flight and seat count.
    Book { id: u8, changed: bool },
    /// A cancellation; `elsewhere` names another flight than the booking's.
    Cancel { id: u8, elsewhere: bool },
    /// Bytes that are not an event.
    Poison,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..12u8, prop::bool::weighted(0.1)).prop_map(|(id, changed)| Op::Book { id, changed }),
        3 => (0..12u8, prop::bool::weighted(0.1)).prop_map(|(id, elsewhere)| Op::Cancel { id, elsewhere }),
        1 => Just(Op::Poison),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Commit),
        1 => Just(Step::Conflict),
        1 => Just(Step::RacedBy),
        1 => Just(Step::Fail),
    ]
}

#[derive(Debug, Clone)]
struct Delivery {
    batch_sizes: Vec<usize>,
    script: Vec<Step>,
    failing_reads: u32,
    failing_dead_letters: u32,
    redeliver: Vec<bool>,
    yields: Vec<u8>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop::collection::vec(1..16usize, 1..=2),
        prop::collection::vec(step(), 0..24),
        0..3u32,
        0..2u32,
        prop::collection::vec(prop::bool::weighted(0.2), 0..12),
        prop::collection::vec(0..3u8, 0..60),
    )
        .prop_map(
            |(batch_sizes, script, failing_reads, failing_dead_letters, redeliver, yields)| {
                Delivery {
                    batch_sizes,
                    script,
                    failing_reads,
                    failing_dead_letters,
                    redeliver,
                    yields,
                }
            },
        )
}

/// The flight, cabin and seats of a booking id; a changed re-emission moves them.
fn details(id: u8, changed: bool) -> (&'static str, Cabin, u8) {
    let shift = usize::from(changed);
    let flight = FLIGHTS[(usize::from(id) + shift) % FLIGHTS.len()];
    let cabin = if id.is_multiple_of(3) {
        Cabin::Business
    } else {
        Cabin::Economy
    };
    (flight, cabin, 1 + (id + 2 * u8::from(changed)) % 4)
}

fn payloads(ops: &[Op]) -> (Vec<Vec<u8>>, Vec<Envelope>, BTreeSet<usize>) {
    let mut payloads = Vec::new();
    let mut applicable = Vec::new();
    let mut set_aside = BTreeSet::new();
    for op in ops {
        let event = match *op {
            Op::Book { id, changed } => {
                let (flight, cabin, seats) = details(id, changed);
                let mut event = booking(&format!("BK{id:06}"), flight, seats);
                if let Payload::Booking(Booking { cabin: c, .. }) = &mut event.payload {
                    *c = cabin;
                }
                Some(event)
            }
            Op::Cancel { id, elsewhere } => {
                let (flight, _, _) = details(id, elsewhere);
                Some(cancellation(&format!("BK{id:06}"), flight))
            }
            Op::Poison => None,
        };
        match event {
            Some(event) => {
                let flight = match &event.payload {
                    Payload::Booking(b) => b.flight_id.clone(),
                    Payload::Cancellation(c) => c.flight_id.clone(),
                    Payload::Search(_) => unreachable!("the model makes no searches"),
                };
                let is_booking = matches!(event.payload, Payload::Booking(_));
                if is_booking && flight == DEPARTED {
                    set_aside.insert(payloads.len());
                } else {
                    applicable.push(event.clone());
                }
                payloads.push(event.to_json());
            }
            None => {
                set_aside.insert(payloads.len());
                payloads.push(b"{\"event_type\": \"booking\"".to_vec());
            }
        }
    }
    (payloads, applicable, set_aside)
}

/// One consumer: batches from its cursor, retries from the reported record, and
/// sometimes redelivers a batch that succeeded.
async fn consume<S: InventoryStore>(
    handler: &InventoryHandler<S, &MemoryDeadLetters>,
    records: &[KinesisRecord],
    batch_size: usize,
    redeliver: &std::sync::Mutex<std::vec::IntoIter<bool>>,
) {
    let mut cursor = 0;
    let mut invocations = 0;
    while cursor < records.len() {
        invocations += 1;
        assert!(invocations < 10_000, "the consumer makes no progress");
        let end = (cursor + batch_size).min(records.len());
        let outcome = handler.process(&records[cursor..end]).await;
        match outcome.first_failed {
            Some(i) => cursor += i,
            None => {
                let again = redeliver.lock().unwrap().next().unwrap_or(false);
                if !again {
                    cursor = end;
                }
            }
        }
    }
}

fn run(ops: &[Op], delivery: &Delivery) -> Result<(), TestCaseError> {
    let (payloads, applicable, set_aside) = payloads(ops);
    let records = kinesis::kinesis_records(&kinesis_event(&payloads, 1));
    let store = ScriptedStore::new(delivery.script.iter().copied())
        .with_yields(delivery.yields.iter().copied());
    store.fail_reads(delivery.failing_reads);
    let dead = MemoryDeadLetters::new();
    dead.fail_next(delivery.failing_dead_letters);
    let redeliver = std::sync::Mutex::new(delivery.redeliver.clone().into_iter());
    let handlers: Vec<_> = delivery
        .batch_sizes
        .iter()
        .map(|_| {
            InventoryHandler::new(&store, &dead)
                .with_clock(now)
                .with_max_transaction_items(4)
        })
        .collect();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            match handlers.as_slice() {
                [a] => consume(a, &records, delivery.batch_sizes[0], &redeliver).await,
                [a, b] => {
                    tokio::join!(
                        consume(a, &records, delivery.batch_sizes[0], &redeliver),
                        consume(b, &records, delivery.batch_sizes[1], &redeliver),
                    );
                }
                _ => unreachable!("one or two consumers"),
            }
            Reference::of(&applicable)
                .assert_matches(&store.inner, &format!("{delivery:?}"))
                .await;
        });
    let lettered: BTreeSet<usize> = dead
        .letters()
        .iter()
        .map(|l| {
            records
                .iter()
                .position(|r| r.sequence_number == l.sequence_number)
                .unwrap()
        })
        .collect();
    prop_assert_eq!(lettered, set_aside);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_of_any_log_ends_in_the_reference_inventory(
        ops in prop::collection::vec(op(), 1..48),
        delivery in delivery(),
    ) {
        run(&ops, &delivery)?;
    }
}
