//! What the inventory handler costs in store writes (a measurement, not a test):
//!
//! ```text
//! cargo run --release -p flyhigh-benches --bin inventory-cost -- [--events N] [--shards S]
//! ```
//!
//! - `hot_flight`: one batch of 10,000 records holding 1,000 bookings of one flight
//!   among 9,000 simulated events: how many writes land on that flight's items (its
//!   counter per cabin), which DynamoDB caps at 1,000 write units per second per item.
//! - `write_units`: N simulated events (default 200,000) spread over S shards
//!   (default 4) by partition key, as Kinesis does, handled in batches of 100 (Lambda's
//!   default), 1,000 and 10,000 per shard, and in batches of 100 KPL aggregates as
//!   the producer writes them (about 14,000 events a batch, the realistic case);
//!   DynamoDB write units per booking event
//!   against the naive design measured on the same events in the same run: one
//!   transaction per event (the booking item and its counter), with a failed
//!   condition (a duplicate) still paying for one item.
//!
//! Units: every item the handler writes is under 1 KB, and a transactional write costs
//! 2 write units per KB, so each item of a `TransactWriteItems` costs 2 units; a
//! strongly consistent read of a booking costs 1 read unit. The store here is the
//! in-memory one wrapped to count, so the numbers are exact counts of what the
//! DynamoDB adapter would send, not timings. Exits 1 when the hot flight takes more
//! than 15 writes. Prints one JSON object.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use flyhigh_benches::{arg, records};
use flyhigh_core::inventory::{InventoryEvent, Transaction, apply};
use flyhigh_core::memory::{MemoryDeadLetters, MemoryStore};
use flyhigh_core::{
    BookingRecord, CabinInventory, CabinKey, CommitError, InventoryStore, KinesisRecord, Schedule,
    StoreError,
};
use flyhigh_handlers::InventoryHandler;
use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
use flyhigh_simulator::{SimConfig, Simulator};
use serde_json::json;

/// Write units per item of a transaction (items under 1 KB).
const TRANSACTIONAL_UNITS_PER_ITEM: u64 = 2;
/// The bar: writes on a hot flight's items for 1,000 bookings in one batch.
const HOT_FLIGHT_MAX_WRITES: u64 = 15;

/// The in-memory store, counting what a DynamoDB store would be sent.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    items_written: AtomicU64,
    transactions: AtomicU64,
    bookings_read: AtomicU64,
}

impl InventoryStore for Counting {
    async fn bookings(&self, ids: &[String]) -> Result<HashMap<String, BookingRecord>, StoreError> {
        self.bookings_read
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        self.inner.bookings(ids).await
    }
    async fn commit(&self, tx: &Transaction) -> Result<(), CommitError> {
        self.inner.commit(tx).await?;
        self.items_written
            .fetch_add(tx.items() as u64, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn load_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.inner.load_schedule(schedule).await
    }
    async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
        self.inner.inventory().await
    }
}

fn hot_flight(runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    const HOT: &str = "FH0777-20261201";
    let others: Vec<Envelope> = Simulator::new(SimConfig::new(7, 9_000))
        .expect("valid config")
        .collect();
    let cabins = [
        Cabin::Economy,
        Cabin::PremiumEconomy,
        Cabin::Business,
        Cabin::First,
    ];
    let mut events = Vec::with_capacity(10_000);
    let mut others = others.into_iter();
    for i in 0..1_000usize {
        events.push(Envelope::new(
            "load",
            "2026-12-01T10:00:00Z".parse().expect("timestamp"),
            Payload::Booking(Booking {
                booking_id: format!("HOT{i:06}"),
                customer_id: format!("c-{i:06}"),
                flight_id: HOT.into(),
                origin: "LHR".into(),
                destination: "JFK".into(),
                // 7 in 10 economy, then one each of the other cabins.
                cabin: match i % 10 {
                    0..=6 => Cabin::Economy,
                    7 => Cabin::PremiumEconomy,
                    8 => Cabin::Business,
                    _ => Cabin::First,
                },
                seats: 1,
                fare: Money::new("199.00".parse().expect("amount"), "GBP"),
            }),
        ));
        events.extend(others.by_ref().take(9));
    }
    let records = records::plain(0, &events);
    let handler = InventoryHandler::new(Counting::default(), MemoryDeadLetters::new());
    let outcome = runtime.block_on(handler.process(&records));
    assert_eq!(outcome.first_failed, None, "the hot batch failed");
    let store = handler.store();
    let writes: u64 = cabins
        .iter()
        .map(|c| store.inner.counter_writes(&CabinKey::new(HOT, *c)))
        .sum();
    let sold: i64 = cabins
        .iter()
        .map(|c| store.inner.sold(&CabinKey::new(HOT, *c)))
        .sum();
    json!({
        "batch_records": records.len(),
        "hot_bookings": 1_000,
        "hot_seats_sold": sold,
        "writes_on_hot_flight_items": writes,
        "bar": HOT_FLIGHT_MAX_WRITES,
        "transactions_in_batch": store.transactions.load(Ordering::Relaxed),
    })
}

/// Write units of the naive design: one transaction per event, from the state the
/// event finds, the booking item plus its counter when seats move; a duplicate's
/// failed condition still costs its one item.
fn naive_units(events: &[Envelope]) -> u64 {
    let mut states: HashMap<&str, BookingRecord> = HashMap::new();
    let mut units = 0;
    for event in events {
        let inventory = match &event.payload {
            Payload::Booking(b) => InventoryEvent::Booking(b),
            Payload::Cancellation(c) => InventoryEvent::Cancellation(c),
            Payload::Search(_) => continue,
        };
        let id = match &event.payload {
            Payload::Booking(b) => b.booking_id.as_str(),
            Payload::Cancellation(c) => c.booking_id.as_str(),
            Payload::Search(_) => continue,
        };
        match apply(states.get(id), inventory) {
            None => units += TRANSACTIONAL_UNITS_PER_ITEM,
            Some(t) => {
                let items = 1 + u64::from(t.delta.is_some());
                units += items * TRANSACTIONAL_UNITS_PER_ITEM;
                states.insert(id, t.record);
            }
        }
    }
    units
}

/// How the events reach the handler: one event per Kinesis record, or packed in KPL
/// aggregates of up to 51,200 bytes as the producer writes them.
#[derive(Clone, Copy)]
enum Packing {
    Plain,
    Aggregated,
}

fn shard_records(events: &[Envelope], shards: usize, packing: Packing) -> Vec<Vec<KinesisRecord>> {
    let mut per_shard: Vec<Vec<&Envelope>> = vec![Vec::new(); shards];
    for event in events {
        let mut hasher = DefaultHasher::new();
        event.partition_key().hash(&mut hasher);
        per_shard[(hasher.finish() % shards as u64) as usize].push(event);
    }
    per_shard
        .into_iter()
        .enumerate()
        .map(|(shard, events)| match packing {
            Packing::Plain => records::plain(shard, events),
            Packing::Aggregated => records::aggregated(shard, events),
        })
        .collect()
}

fn write_units(
    runtime: &tokio::runtime::Runtime,
    events: &[Envelope],
    shards: usize,
    packing: Packing,
    batch_size: usize,
) -> serde_json::Value {
    let per_shard = shard_records(events, shards, packing);
    let batches: usize = per_shard.iter().map(|s| s.len().div_ceil(batch_size)).sum();
    let handler = InventoryHandler::new(Counting::default(), MemoryDeadLetters::new());
    runtime.block_on(async {
        for shard in &per_shard {
            for batch in shard.chunks(batch_size) {
                let outcome = handler.process(batch).await;
                assert_eq!(outcome.first_failed, None, "a batch failed");
            }
        }
    });
    let bookings = events
        .iter()
        .filter(|e| matches!(e.payload, Payload::Booking(_)))
        .count() as u64;
    let inventory_events = events
        .iter()
        .filter(|e| !matches!(e.payload, Payload::Search(_)))
        .count() as u64;
    let store = handler.store();
    let units = store.items_written.load(Ordering::Relaxed) * TRANSACTIONAL_UNITS_PER_ITEM;
    let naive = naive_units(events);
    let ratio = |a: u64, b: u64| (a as f64 / b.max(1) as f64 * 1000.0).round() / 1000.0;
    json!({
        "records": match packing {
            Packing::Plain => "one event per Kinesis record",
            Packing::Aggregated => "KPL aggregates",
        },
        "batch_size": batch_size,
        "events_per_batch": (events.len() as f64 / batches.max(1) as f64).round(),
        "booking_events": bookings,
        "inventory_events": inventory_events,
        "transactions": store.transactions.load(Ordering::Relaxed),
        "write_units": units,
        "write_units_per_booking_event": ratio(units, bookings),
        "naive_write_units": naive,
        "naive_write_units_per_booking_event": ratio(naive, bookings),
        "write_units_vs_naive": ratio(units, naive),
        "read_units": store.bookings_read.load(Ordering::Relaxed),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = arg(&args, "--events", 200_000);
    let shards = arg::<usize>(&args, "--shards", 4).max(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let hot = hot_flight(&runtime);
    let events: Vec<Envelope> = Simulator::new(SimConfig::new(42, n))
        .expect("valid config")
        .collect();
    let units: Vec<serde_json::Value> = [
        (Packing::Plain, 100),
        (Packing::Plain, 1_000),
        (Packing::Plain, 10_000),
        (Packing::Aggregated, 100),
    ]
    .into_iter()
    .map(|(packing, b)| write_units(&runtime, &events, shards, packing, b))
    .collect();
    let ok = hot["writes_on_hot_flight_items"]
        .as_u64()
        .unwrap_or(u64::MAX)
        <= HOT_FLIGHT_MAX_WRITES;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "events": n,
            "shards": shards,
            "hot_flight": hot,
            "write_units": units,
        }))
        .expect("json")
    );
    if !ok {
        std::process::exit(1);
    }
}
