//! Generates events and prints how long it took, the counts and the oversold flights.
//!
//! `cargo run --release -p flyhigh-simulator --example generate -- [EVENTS] [SEED]`

use std::time::Instant;

use flyhigh_simulator::{ExpectedInventory, SimConfig, Simulator, oversold};

fn main() {
    let mut args = std::env::args().skip(1);
    let events = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(flyhigh_simulator::DEFAULT_EVENTS);
    let seed = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(flyhigh_simulator::DEFAULT_SEED);

    let mut sim =
        Simulator::new(SimConfig::new(seed, events)).expect("the default configuration is valid");
    let started = Instant::now();
    let mut checksum = 0u64;
    for event in sim.by_ref() {
        checksum = checksum.wrapping_add(event.event_id.as_u128() as u64);
    }
    let generation = started.elapsed();
    println!("generated {events} events in {generation:.2?} (checksum {checksum:016x})");
    println!("{:#?}", sim.stats());

    // Again, with the ground truth, to show the surge's oversold flights.
    let mut sim =
        Simulator::new(SimConfig::new(seed, events)).expect("the default configuration is valid");
    let schedule = sim.schedule();
    let mut truth = ExpectedInventory::new();
    for event in sim.by_ref() {
        truth.add(&event);
    }
    let sold = truth.finish();
    let over = oversold(&sold, &schedule);
    println!(
        "{} flights in the schedule, {} flight-cabins sold, {} oversold:",
        schedule.flights.len(),
        sold.len(),
        over.len()
    );
    for o in over {
        println!(
            "  {} {}: {} sold of {}",
            o.key.flight_id, o.key.cabin, o.sold, o.capacity
        );
    }
}
