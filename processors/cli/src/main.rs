//! `flyhigh`: the FlyHigh pipeline's command line.
//!
//! - `demo`: the main job on the embedded default. Simulator → producer → in-process
//!   stream → local event-source-mapping runners → the inventory handler (with flight
//!   alerts) and the demand handler → SQLite, the surge evaluator in simulated time,
//!   alerts to `alerts.jsonl` and the console; all in one process, no AWS, no Docker.
//! - `serve`: the same pipeline as a long-running local service
//!   (`flyhigh_local::Service`): the ingest API for apps (`POST /v1/events`) in front of
//!   a durable stream in `--data`; SIGINT/SIGTERM drain and stop; a restart goes on.
//! - `load`: offer HTTP traffic to the ingest API at a fixed rate (an open model) and
//!   report the ack latency.
//! - `setup`, `produce`, `consume`: the same pipeline against AWS, or any endpoint set
//!   with `AWS_ENDPOINT_URL` (moto in the tests).
//! - `schedule`: write the simulator's flight schedule to a file, or load a schedule
//!   file into either store (the operator command).
//! - `inventory show | list`: the operator's reads, from either store.
//! - `dead-letters list | replay`: what was quarantined, and putting it back on the
//!   stream once the cause is fixed.
//! - `routes top`, `alerts list`: the hot-route processor's real-time view and the
//!   alerts raised, from either store.
//! - `archive compact | summary | ddl`: merge the archive's closed hours into large
//!   files, count what it holds, print the Athena DDL.
//! - `dashboard`: the live dashboard (served by `serve` at `/`) over DynamoDB tables
//!   or the files of a stopped service or a demo.
//! - `check`: recompute the expected inventory from the simulator's events and compare
//!   it with a store.
//!
//! This crate parses and prints: `demo` and `serve` get the pipeline from
//! `flyhigh_local` (the local deployment), the AWS commands build adapters and hand
//! them to the same handlers and runner the Lambda binaries use.

mod archive_cmd;
mod aws;
mod dashboard_cmd;
mod dead_letters;
mod demand_cmd;
mod demo;
mod errors;
mod inventory_cmd;
mod load_cmd;
mod pipeline;
mod report;
mod schedule_cmd;
mod serve_cmd;
mod table;

use flyhigh_core::InventoryStore;

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Run the pipeline as a local service with the ingest API, until stopped.
    Serve(serve_cmd::ServeArgs),
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
    /// Read seat inventory: one flight, or a filtered listing.
    #[command(subcommand)]
    Inventory(inventory_cmd::InventoryCommand),
    /// List or replay dead letters (records the consumers could not use).
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(dead_letters::DeadLetterCommand),
    /// Demand per route right now, against each route's baseline.
    #[command(subcommand)]
    Routes(demand_cmd::RoutesCommand),
    /// Alerts raised for the revenue team (surges, near-sold-out, sold-out, oversold).
    #[command(subcommand)]
    Alerts(demand_cmd::AlertsCommand),
    /// The Parquet archive: compact closed hours, summarize, print the Athena DDL.
    #[command(subcommand)]
    Archive(archive_cmd::ArchiveCommand),
    /// Write sample events as NDJSON, for `demo --events-file`.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Offer HTTP traffic to the ingest API on a fixed schedule; report ack latency.
    Load(load_cmd::LoadArgs),
    /// Serve the live dashboard over DynamoDB tables or a data directory's files.
    Dashboard(dashboard_cmd::DashboardArgs),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// A hostile sample for the simulated day: apps with clocks off by minutes to
    /// hours, events dated in 2000 and 2099, a backlog over thousands of hours,
    /// thousands of searches on invented routes, and a few invalid lines.
    Hostile {
        /// Seed of the sample.
        #[arg(long, default_value_t = 666)]
        seed: u64,
        /// Output file (NDJSON).
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Load a schedule file into a store, keeping seats already sold (a capacity
    /// lowered below them shows as oversold). CSV with a header
    /// `flight_id,origin,destination,departure,economy,premium_economy,business,first`
    /// (cabin columns optional, an empty cell for a cabin the aircraft lacks,
    /// departure in RFC 3339), or JSON `{"flights": [...]}`; chosen by the extension,
    /// else by the content. An invalid file loads nothing.
    Load {
        /// The schedule file (.csv or .json).
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

impl StoreArgs {
    /// The store as a person names it, for messages.
    pub fn describe(&self) -> String {
        match (&self.sqlite, &self.table) {
            (Some(path), _) => format!("SQLite file {}", path.display()),
            (None, Some(table)) => format!("DynamoDB table {table}"),
            (None, None) => "no store".into(),
        }
    }
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // The SDK's credential chain warns, with Debug dumps, for every provider it
            // tries; the CLI's own error says what failed and what to do.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,aws_config=error".into()),
        )
        .init();
    // Usage errors exit 2 (clap); failures print what failed and what to do, exit 1.
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{}", errors::report(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve_cmd::run(args).await,
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
                schedule_cmd::load(&file, &store).await
            }
            Command::Events(EventsCommand::Hostile { seed, out }) => {
                let day = flyhigh_simulator::SimConfig::new(flyhigh_simulator::DEFAULT_SEED, 0);
                let config = flyhigh_simulator::hostile::HostileConfig {
                    seed,
                    ..Default::default()
                };
                let sample = flyhigh_simulator::hostile::hostile_sample(&day, &config)?;
                let mut text = sample.lines.join("\n");
                text.push('\n');
                std::fs::write(&out, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
                println!(
                    "{} lines ({} valid events, {} invalid lines) written to {}",
                    sample.lines.len(),
                    sample.valid,
                    sample.invalid,
                    out.display()
                );
                Ok(true)
            }
            Command::Check(args) => check(args).await,
            Command::Inventory(command) => inventory_cmd::run(command).await,
            Command::DeadLetters(command) => dead_letters::run(command).await,
            Command::Routes(command) => demand_cmd::routes(command).await,
            Command::Alerts(command) => demand_cmd::alerts(command).await,
            Command::Archive(command) => archive_cmd::run(command).await,
            Command::Load(args) => load_cmd::run(args).await,
            Command::Dashboard(args) => dashboard_cmd::run(args).await,
        }
    })
}

async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let sim = flyhigh_simulator::Simulator::new(flyhigh_simulator::SimConfig::new(
        args.seed,
        args.events,
    ))?;
    let expected = flyhigh_simulator::expected_inventory(&sim.collect::<Vec<_>>());
    let stored = pipeline::open_store_read_only(&args.store)
        .await?
        .inventory()
        .await?;
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
