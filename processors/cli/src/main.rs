//! `flyhigh`: the FlyHigh pipeline's command line.
//!
//! - `demo`: the main job on the embedded default. Simulator → producer → in-process
//!   stream → local event-source-mapping runner → inventory handler → SQLite, all in
//!   one process, no AWS, no Docker.
//! - `setup`, `produce`, `consume`: the same pipeline against AWS, or any endpoint set
//!   with `AWS_ENDPOINT_URL` (moto in the tests).
//! - `schedule`: write the simulator's flight schedule to a file, or load a schedule
//!   file into either store (the operator command).
//! - `check`: recompute the expected inventory from the simulator's events and compare
//!   it with a store.
//!
//! This crate is wiring: it builds adapters and hands them to the same handler and
//! runner the Lambda binaries and tests use.

mod aws;
mod demo;
mod pipeline;
mod report;

use flyhigh_core::InventoryStore;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "flyhigh", version, about = "FlyHigh booking-event pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in one process on the embedded default (no AWS).
    Demo(demo::DemoArgs),
    /// Create the stream, the inventory table and the queues (AWS or AWS_ENDPOINT_URL).
    Setup(aws::SetupArgs),
    /// Load the schedule into the table and send simulated traffic to Kinesis.
    Produce(aws::ProduceArgs),
    /// Read every shard and run the inventory handler until the stream is idle.
    Consume(aws::ConsumeArgs),
    /// Write or load a flight schedule.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Compare a store's inventory with a recomputation from the simulated events.
    Check(CheckArgs),
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Write the simulator's schedule for a seed as JSON.
    Generate {
        /// Simulator seed.
        #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_SEED)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a schedule file (JSON, `{"flights": [...]}`) into a store.
    Load {
        /// The schedule file.
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Which store: an SQLite file (embedded) or a DynamoDB table.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct StoreArgs {
    /// SQLite inventory file (embedded default).
    #[arg(long)]
    sqlite: Option<PathBuf>,
    /// DynamoDB inventory table.
    #[arg(long)]
    table: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    /// Simulator seed the events were produced with.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_SEED)]
    seed: u64,
    /// Number of events produced.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_EVENTS)]
    events: usize,
    #[command(flatten)]
    store: StoreArgs,
    /// Also write the result as JSON.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ok = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Setup(args) => aws::setup(args).await.map(|()| true),
            Command::Produce(args) => aws::produce(args).await.map(|()| true),
            Command::Consume(args) => aws::consume(args).await.map(|()| true),
            Command::Schedule(ScheduleCommand::Generate { seed, out }) => {
                let sim =
                    flyhigh_simulator::Simulator::new(flyhigh_simulator::SimConfig::new(seed, 0))?;
                report::write_json(&out, &sim.schedule())?;
                println!(
                    "schedule with {} flights written to {}",
                    sim.schedule().flights.len(),
                    out.display()
                );
                Ok(true)
            }
            Command::Schedule(ScheduleCommand::Load { file, store }) => {
                let schedule: flyhigh_core::Schedule =
                    serde_json::from_slice(&std::fs::read(&file)?)?;
                pipeline::open_store(&store)
                    .await?
                    .load_schedule(&schedule)
                    .await?;
                println!(
                    "loaded {} flights from {}",
                    schedule.flights.len(),
                    file.display()
                );
                Ok(true)
            }
            Command::Check(args) => check(args).await,
        }
    })?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let sim = flyhigh_simulator::Simulator::new(flyhigh_simulator::SimConfig::new(
        args.seed,
        args.events,
    ))?;
    let expected = flyhigh_simulator::expected_inventory(&sim.collect::<Vec<_>>());
    let stored = pipeline::open_store(&args.store).await?.inventory().await?;
    let check = report::InventoryCheck::new(&expected, &stored);
    println!("inventory check: {}", check.describe());
    if let Some(path) = &args.summary_json {
        report::write_json(
            path,
            &serde_json::json!({ "inventory_check": check, "cabins": stored.len() }),
        )?;
    }
    Ok(check.is_ok())
}
