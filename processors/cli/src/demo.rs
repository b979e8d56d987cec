//! `flyhigh demo`: the main job, the whole pipeline in one process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use flyhigh_core::InventoryStore;
use flyhigh_embedded::{JsonLinesFile, SqliteInventoryStore};
use flyhigh_handlers::InventoryHandler;
use flyhigh_producer::{FileDeadLetters, LocalStream, Producer, ProducerConfig};
use flyhigh_runner::{LocalSource, MappingConfig, Runner, handler_fn};
use flyhigh_simulator::{SimConfig, Simulator};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::pipeline::{self, Produced};
use crate::report::{self, InventoryCheck, InventorySummary};

#[derive(Args)]
pub struct DemoArgs {
    /// Simulator seed: the same seed gives the same events.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_SEED)]
    seed: u64,
    /// Events to simulate.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_EVENTS)]
    events: usize,
    /// Shards of the in-process stream.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Records per handler invocation (Lambda's batch size).
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Inject one poison record (garbage, bad JSON, unknown type, future version,
    /// invalid fields) every N events, to show dead-lettering; 0 for none.
    #[arg(long, default_value_t = 20_000)]
    poison_every: u64,
    /// Directory for the SQLite inventory, dead letters and failed batches.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Where to write the JSON summary (default: OUT/summary.json).
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

/// The `--summary-json` document of `demo`.
#[derive(Serialize)]
struct DemoSummary {
    seed: u64,
    events_requested: usize,
    events_produced: Produced,
    poison_records_injected: u64,
    events_consumed: u64,
    dead_lettered: u64,
    failed_batches: u64,
    events_per_second: f64,
    elapsed_seconds: f64,
    inventory_check: InventoryCheck,
    inventory: InventorySummary,
    simulation: flyhigh_simulator::SimStats,
    producer: ProducerSummary,
    handler: flyhigh_handlers::HandlerStats,
    runner: flyhigh_runner::MappingStats,
    files: Files,
}

#[derive(Serialize)]
struct ProducerSummary {
    accepted: u64,
    rejected: u64,
    written: u64,
    dead_lettered: u64,
    kinesis_records: u64,
    user_records_per_kinesis_record: f64,
    requests: u64,
    retries: u64,
}

#[derive(Serialize)]
struct Files {
    inventory_sqlite: PathBuf,
    dead_letters: PathBuf,
    failed_batches: PathBuf,
    producer_dead_letters: PathBuf,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<bool> {
    let config = SimConfig::new(args.seed, args.events);
    // The demo runs as of the end of its simulated span: which events are beyond the
    // retention horizon depends on the simulated day, not on the day it is run.
    let simulated_now = config.start + Duration::from_secs(u64::from(config.days) * 86_400);
    let sim = Simulator::new(config)?;
    let schedule = sim.schedule();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let files = Files {
        inventory_sqlite: args.out.join("inventory.sqlite"),
        dead_letters: args.out.join("dead-letters.jsonl"),
        failed_batches: args.out.join("failed-batches.jsonl"),
        producer_dead_letters: args.out.join("producer-dead-letters.jsonl"),
    };
    // A demo run starts from nothing, so that its check compares like with like.
    for path in [
        &files.inventory_sqlite,
        &files.dead_letters,
        &files.failed_batches,
        &files.producer_dead_letters,
    ] {
        remove_if_exists(path)?;
        // SQLite's side files, and what `flyhigh dead-letters replay` keeps beside a
        // letter file: the ledger of an earlier run's letters means nothing now.
        for suffix in ["-wal", "-shm", ".replayed.jsonl", ".failed-again.jsonl"] {
            remove_if_exists(&PathBuf::from(format!("{}{suffix}", path.display())))?;
        }
    }
    let store = SqliteInventoryStore::open(&files.inventory_sqlite)?;
    store.load_schedule(&schedule).await?;
    let dead_letters = JsonLinesFile::create(&files.dead_letters)?;
    let failed_batches = JsonLinesFile::create(&files.failed_batches)?;

    let stream = LocalStream::new("flyhigh-events", args.shards);
    let handler =
        Arc::new(InventoryHandler::new(store, dead_letters).with_clock(move || simulated_now));
    let runner = Runner::new(MappingConfig {
        batch_size: args.batch_size,
        poll_interval: Duration::from_millis(5),
        bisect_batch_on_function_error: true,
        ..MappingConfig::default()
    });

    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos:>8}/{len} {per_sec:>12} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let produced_bar = bars.add(
        ProgressBar::new(args.events as u64)
            .with_style(style.clone())
            .with_prefix("produced"),
    );
    let consumed_bar = bars.add(
        ProgressBar::new(args.events as u64)
            .with_style(style)
            .with_prefix("consumed"),
    );

    let started = Instant::now();
    let consumer = {
        let (runner, handler, source) = (
            runner.clone(),
            handler.clone(),
            LocalSource::new(stream.clone()),
        );
        tokio::spawn(async move {
            let invoke = handler_fn(|event| {
                let handler = handler.clone();
                async move { Ok(handler.handle(event).await) }
            });
            runner.run(&source, &invoke, &failed_batches).await
        })
    };
    let ticker = {
        let (runner, bar) = (runner.clone(), consumed_bar.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(runner.stats().records_done);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let producer = Producer::new(
        stream.clone(),
        ProducerConfig {
            dead_letters: std::sync::Arc::new(FileDeadLetters::new(&files.producer_dead_letters)),
            ..ProducerConfig::default()
        },
    );
    let outcome = pipeline::produce(sim, &producer, args.poison_every, |n| {
        produced_bar.set_position(n)
    })
    .await?;
    let report = producer.close().await;
    let producer_metrics = producer.metrics();
    stream.close();
    produced_bar.finish();
    let runner_stats = consumer.await.context("consumer task")??;
    ticker.abort();
    consumed_bar.set_position(runner_stats.records_done);
    consumed_bar.finish();
    let elapsed = started.elapsed();

    let handler_stats = handler.stats();
    let inventory = handler.store().inventory().await?;
    let check = InventoryCheck::new(&outcome.expected, &inventory);
    let summary = DemoSummary {
        seed: args.seed,
        events_requested: args.events,
        events_per_second: outcome.produced.total as f64 / elapsed.as_secs_f64(),
        events_produced: outcome.produced,
        poison_records_injected: outcome.poison_injected,
        events_consumed: handler_stats.searches + handler_stats.inventory_events,
        dead_lettered: handler_stats.dead_lettered + runner_stats.records_to_failure_destination,
        failed_batches: runner_stats.batches_to_failure_destination,
        elapsed_seconds: elapsed.as_secs_f64(),
        inventory_check: check,
        inventory: InventorySummary::new(&inventory),
        simulation: outcome.simulation,
        producer: ProducerSummary {
            accepted: producer_metrics.user_records_accepted,
            rejected: producer_metrics.user_records_rejected,
            written: producer_metrics.user_records_written,
            dead_lettered: producer_metrics.user_records_dead_lettered,
            kinesis_records: producer_metrics.kinesis_records_written,
            user_records_per_kinesis_record: producer_metrics.user_records_per_kinesis_record(),
            requests: producer_metrics.requests,
            retries: producer_metrics.retries,
        },
        handler: handler_stats,
        runner: runner_stats,
        files,
    };
    let path = args
        .summary_json
        .clone()
        .unwrap_or_else(|| args.out.join("summary.json"));
    report::write_json(&path, &summary)?;
    print_summary(&summary, &path);
    Ok(summary.inventory_check.is_ok() && report.dead_lettered == 0)
}

fn remove_if_exists(path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn print_summary(s: &DemoSummary, path: &std::path::Path) {
    let p = &s.events_produced;
    let inv = &s.inventory;
    println!();
    println!(
        "FlyHigh demo: seed {}, {} events in {:.1} s ({:.0} events/s end to end)",
        s.seed, p.total, s.elapsed_seconds, s.events_per_second
    );
    println!(
        "  produced      {} searches, {} bookings, {} cancellations (+{} poison records)",
        p.search, p.booking, p.cancellation, s.poison_records_injected
    );
    println!(
        "  stream        {} Kinesis records ({:.1} events each) in {} requests; {} events dead-lettered by the producer",
        s.producer.kinesis_records,
        s.producer.user_records_per_kinesis_record,
        s.producer.requests,
        s.producer.dead_lettered
    );
    println!(
        "  consumed      {} events in {} handler invocations",
        s.events_consumed, s.runner.invocations
    );
    println!(
        "  dead-lettered {} (see {})",
        s.dead_lettered,
        s.files.dead_letters.display()
    );
    println!(
        "  inventory     {} flights, {} seats sold, {} available; {} cabins sold out, {} oversold by {} seats, {} unscheduled",
        inv.flights,
        inv.seats_sold,
        inv.seats_available,
        inv.sold_out_cabins,
        inv.oversold_cabins,
        inv.oversold_seats,
        inv.unscheduled_cabins
    );
    for line in &inv.most_oversold {
        println!("                oversold: {line}");
    }
    println!(
        "  duplicates    {} re-emitted bookings and {} repeated cancellations counted once; {} no-op events",
        s.simulation.duplicate_bookings, s.simulation.repeated_cancellations, s.handler.no_ops
    );
    println!(
        "  check         inventory_check: {}",
        s.inventory_check.describe()
    );
    println!("  summary       {}", path.display());
}
