//! Counter writes of the demand-counting handler per 10,000-record batch, against
//! the naive one write per event, at airline-scale density and at the demo's.
//!
//! `cargo run --release -p flyhigh-benches --bin demand-cost [-- --batches N]`
//!
//! The handler runs on the in-memory ports, whose condition and counting are the
//! DynamoDB adapter's (`tests/moto_demand.rs` checks them equal); each counter
//! write there is one conditional `UpdateItem` of 1 WCU.

use flyhigh_core::memory::{MemoryDeadLetters, MemoryDemandStore, MemoryStore};
use flyhigh_handlers::DemandHandler;
use flyhigh_schemas::Envelope;
use flyhigh_simulator::{SimConfig, Simulator, SurgeConfig};

const BATCH: usize = 10_000;

fn day(events_per_day: usize, n: usize, surge: bool) -> Vec<Envelope> {
    let mut config = SimConfig::new(7, events_per_day);
    if !surge {
        config.surge = SurgeConfig::disabled();
    }
    Simulator::new(config)
        .expect("valid configuration")
        .take(n)
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batches: usize = flyhigh_benches::arg(&args, "--batches", 5);
    println!("batch of {BATCH} records on one shard; naive = one write per event");
    for (label, per_day) in [
        ("airline scale, 10M events/day", 10_000_000),
        ("demo density, 200k events/day", 200_000),
    ] {
        let events = day(per_day, BATCH * batches, false);
        let records = flyhigh_benches::records::plain(0, &events);
        let handler = DemandHandler::new(
            MemoryDemandStore::new(),
            MemoryStore::new(),
            MemoryDeadLetters::new(),
        );
        for batch in records.chunks(BATCH) {
            handler.process(batch).await;
        }
        let stats = handler.stats();
        let per_batch = stats.counter_writes as f64 / batches as f64;
        println!(
            "{label:<34} {per_batch:>8.0} writes per batch ({:.4} per event, {:.3}x naive)",
            per_batch / BATCH as f64,
            per_batch / BATCH as f64
        );
        // Redelivering every batch: each counter write is stale, none counts twice.
        let before = handler.stats().counter_writes;
        for batch in records.chunks(BATCH) {
            handler.process(batch).await;
        }
        let again = handler.stats();
        println!(
            "{:<34} {:>8.0} stale writes per redelivered batch, {} events counted twice",
            "  redelivered",
            (again.counter_writes - before) as f64 / batches as f64,
            again.events_counted - stats.events_counted
        );
    }
}
