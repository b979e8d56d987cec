//! `flyhigh demo`: the main job, the whole pipeline in one process: the simulator
//! driving the local deployment (`flyhigh_local`) over an in-memory stream for one
//! simulated day, then the checks and the summary.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use flyhigh_core::InventoryStore;
use flyhigh_embedded::LocalObjectStore;
use flyhigh_producer::Producer;
use flyhigh_simulator::{SimConfig, Simulator, SurgeConfig};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use flyhigh_local::{
    Deployment, DeploymentConfig, EvaluatorSchedule, Files, Horizon, Processors, StreamKind,
};

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
    /// Milliseconds each mapping gathers records before invoking with less than a
    /// full batch (Lambda's MaximumBatchingWindowInSeconds). The demo replays a day in
    /// seconds, so without a window every few milliseconds of it would be its own
    /// invocation: its own Parquet file, commit and counter writes.
    #[arg(long, default_value_t = 100)]
    batching_window_ms: u64,
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
    /// Simulate an ordinary day: no demand surge on any route.
    #[arg(long)]
    no_surge: bool,
    /// Leave the archive as the batches wrote it (by default every hour is
    /// compacted once the stream has ended: the simulated day is over).
    #[arg(long)]
    no_compact: bool,
    /// Also send the events of FILE (NDJSON: one JSON envelope a line, as captured from
    /// the apps) through the producer, spread over the simulated day (`--events 0`:
    /// only the file). A line that is not a valid event is rejected with its line
    /// number, field and reason, and counted; the checks include the file's events.
    #[arg(long, value_name = "FILE")]
    events_file: Option<PathBuf>,
    /// Which processors run: `all`, or a comma-separated list of inventory, demand,
    /// archive and decode (a mapping that only decodes: the baseline each processor
    /// pays), or `none` (the simulator and producer alone). To measure one
    /// processor's cost per event: the checks of processors that did not run are
    /// skipped.
    #[arg(long, default_value = "all", value_parser = Processors::parse)]
    processors: Processors,
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
    /// The processors that ran (`inventory,demand,archive` for the pipeline).
    processors: String,
    /// CPU time of the run (user and system, every thread, start to end of the
    /// stream's consumption: the simulator, producer and processors).
    cpu_seconds: f64,
    /// `cpu_seconds` per event produced, in microseconds.
    cpu_us_per_event: f64,
    /// Event → committed by each processor, and a surge's bucket closed → its alert, in
    /// milliseconds of the simulated day's clock (the demo replays a day in seconds:
    /// this is how far the day had gone on when each event was committed, not wall
    /// time; `flyhigh serve` reports wall time).
    latency_ms: std::collections::BTreeMap<String, flyhigh_handlers::LatencySummary>,
    inventory_check: InventoryCheck,
    inventory: InventorySummary,
    simulation: flyhigh_simulator::SimStats,
    producer: ProducerSummary,
    handler: flyhigh_handlers::HandlerStats,
    runner: flyhigh_runner::MappingStats,
    demand: DemandSummary,
    alerts: AlertsSummary,
    archive: ArchiveDemoSummary,
    events_file: Option<EventsFileSummary>,
    files: Files,
}

/// `"events_file"` in the summary: what `--events-file` sent and rejected.
#[derive(Serialize)]
struct EventsFileSummary {
    path: PathBuf,
    /// Non-blank lines.
    lines: u64,
    /// Valid events sent through the producer (in `events_produced` too).
    sent: u64,
    /// Lines that are not valid events.
    rejected: u64,
    /// The first 100 of them: line number, kind, field and reason.
    rejections: Vec<crate::pipeline::Rejection>,
}

/// `"archive"` in the summary: what the archive holds once the run (and its
/// compaction) is done, with what the handler and the compaction did.
#[derive(Serialize)]
struct ArchiveDemoSummary {
    #[serde(flatten)]
    contents: crate::archive_cmd::ArchiveSummary,
    /// Rows equal the events produced (each event once, poison aside).
    rows_check: bool,
    handler: flyhigh_handlers::archive::ArchiveStats,
    runner: flyhigh_runner::MappingStats,
    compaction: Option<flyhigh_handlers::archive::CompactionReport>,
}

/// The hot-route processor's part of the summary.
#[derive(Serialize)]
struct DemandSummary {
    /// What the counting handler did.
    handler: flyhigh_handlers::demand::DemandStats,
    /// Its event source mapping.
    runner: flyhigh_runner::MappingStats,
    /// Events in the counters, summed over routes, buckets and shards.
    counted: flyhigh_core::demand::Counts,
    /// `counted` equals what was produced (cancellations of unscheduled flights
    /// aside, which have no route).
    counts_check: bool,
    /// Evaluator runs and buckets judged over all routes.
    evaluator_runs: u64,
    buckets_judged: u64,
    /// The simulated surge, for comparison with the alerts.
    surge_route: Option<String>,
    surge_start: Option<chrono::DateTime<chrono::Utc>>,
}

/// `"alerts"` in the summary: every alert exactly as published.
#[derive(Serialize)]
struct AlertsSummary {
    count: usize,
    /// Per rule, raised and cleared notices alike.
    by_rule: std::collections::BTreeMap<String, usize>,
    /// Of `count`, the notices that clear an earlier alert.
    cleared: usize,
    items: Vec<flyhigh_schemas::Alert>,
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

pub async fn run(args: DemoArgs) -> anyhow::Result<bool> {
    let events_file = match &args.events_file {
        Some(path) => Some(pipeline::EventsFile::read(path)?),
        None => None,
    };
    if let Some(file) = &events_file {
        for r in file.rejected.iter().take(20) {
            eprintln!(
                "rejected: {} line {}: {} ({})",
                file.path.display(),
                r.line,
                r.reason,
                r.kind
            );
        }
        if file.rejected.len() > 20 {
            eprintln!(
                "rejected: {} more lines of {} (all in the summary's events_file)",
                file.rejected.len() - 20,
                file.path.display()
            );
        }
    }
    let extra: &[flyhigh_schemas::Envelope] = events_file.as_ref().map_or(&[], |f| &f.events);
    let mut config = SimConfig::new(args.seed, args.events);
    if args.no_surge {
        config.surge = SurgeConfig::disabled();
    }
    // The demo runs as of the end of its simulated span: which events are beyond the
    // retention horizon depends on the simulated day, not on the day it is run.
    let simulated_now = config.start + Duration::from_secs(u64::from(config.days) * 86_400);
    let sim = Simulator::new(config)?;
    // Arrival times, and the demand consumers' clock, are the simulated day's: event
    // and arrival times must be on one clock for lateness and progress to mean
    // anything (see flyhigh_core::demand::counting).
    let sim_clock = sim.clock();
    let schedule = sim.schedule();
    let files = Files::under(&args.out);
    // A demo run starts from nothing, so that its check compares like with like.
    files.reset()?;
    let bars = MultiProgress::new();
    let clock: flyhigh_local::Clock = {
        let clock = sim_clock.clone();
        Arc::new(move || clock.now())
    };
    let allowance = chrono::Duration::from_std(DEMO_ALLOWANCE).unwrap_or_default();
    // The pipeline infra/ deploys, on an in-memory stream, in simulated time: arrival
    // times and the demand consumers' clock are the simulated day's (event and arrival
    // times must be on one clock for lateness and progress to mean anything, see
    // flyhigh_core::demand::counting), and the scheduled evaluator judges what every
    // shard's counters have passed, as the alerts Lambda judges what the wall clock has.
    let mut deployment = Deployment::start(DeploymentConfig {
        data: args.out.clone(),
        stream: StreamKind::Memory,
        shards: args.shards,
        batch_size: args.batch_size,
        poll_interval: Duration::from_millis(5),
        batching_window: Duration::from_millis(args.batching_window_ms),
        schedule,
        late_allowance: allowance,
        clock: Some(clock),
        inventory_clock: Some(Arc::new(move || simulated_now)),
        evaluator: EvaluatorSchedule {
            every: Duration::from_millis(250),
            horizon: Horizon::BehindSlowestShard,
        },
        compact_every: None,
        checkpoints_on_disk: false,
        console: Some({
            let bars = bars.clone();
            Arc::new(move |line: &str| {
                let _ = bars.println(line);
            })
        }),
        processors: args.processors,
    })
    .await?;

    let style =
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos:>8}/{len} {per_sec:>12} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let to_produce = (args.events + extra.len()) as u64;
    let produced_bar = bars.add(
        ProgressBar::new(to_produce)
            .with_style(style.clone())
            .with_prefix("produced"),
    );
    let consumed_bar = bars.add(
        ProgressBar::new(to_produce)
            .with_style(style)
            .with_prefix("consumed"),
    );

    let started = Instant::now();
    let cpu_at_start = report::cpu_time();
    let ticker = {
        let (status, bar) = (deployment.status_handle(), consumed_bar.clone());
        tokio::spawn(async move {
            loop {
                let s = status.stats();
                bar.set_position(
                    s.inventory
                        .runner
                        .records_done
                        .max(s.demand.runner.records_done)
                        .max(s.archive.runner.records_done),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let producer = Producer::builder()
        .dead_letters_file(&files.producer_dead_letters)
        .build_with(deployment.stream().clone())
        .await
        .context("starting the producer")?;
    let outcome = pipeline::produce(sim, extra, &producer, args.poison_every, |n| {
        produced_bar.set_position(n)
    })
    .await?;
    let report = producer.close().await;
    let producer_metrics = producer.metrics();
    produced_bar.finish();
    // The stream ends; each mapping reads it to its end. Then judge everything up to
    // the end of the simulated span.
    let stats = deployment
        .finish(Some(simulated_now + chrono::Duration::minutes(1)))
        .await?;
    ticker.abort();
    consumed_bar.set_position(
        stats
            .inventory
            .runner
            .records_done
            .max(stats.demand.runner.records_done)
            .max(stats.archive.runner.records_done),
    );
    consumed_bar.finish();
    let elapsed = started.elapsed();
    let cpu = report::cpu_time().saturating_sub(cpu_at_start);

    let handler_stats = stats.inventory.handler;
    let runner_stats = stats.inventory.runner;
    let inventory = deployment.inventory().store().inventory().await?;
    let check = InventoryCheck::new(&outcome.expected, &inventory);
    let demand_stats = stats.demand.handler;
    let surge_route = outcome.simulation.surge_route.clone();
    let surge_start = outcome.simulation.surge_window.map(|(from, _)| from);
    // Every counter, routes the evaluator forgot included.
    let counted = deployment.demand_store().total_counts()?;
    let unrouted = demand_stats.unrouted_cancellations;
    let counts_check = counted.searches == outcome.produced.search
        && counted.bookings == outcome.produced.booking
        && counted.cancellations + unrouted == outcome.produced.cancellation
        && demand_stats.failed_batches == 0;
    // The simulated day is over, so every hour of it is closed: compact them all, as
    // the scheduled compaction does an hour at a time.
    let ran = args.processors;
    let compaction = if args.no_compact || !ran.archive {
        None
    } else {
        let after = simulated_now + flyhigh_handlers::archive::DEFAULT_GRACE;
        Some(flyhigh_local::compact_closed(&files.archive, after).await?)
    };
    let archive_contents = crate::archive_cmd::summarize(
        &LocalObjectStore::open(&files.archive)?,
        flyhigh_handlers::archive::DEFAULT_TARGET_BYTES,
        true,
    )
    .await?;
    let archive_stats = stats.archive.handler;
    // Compaction keeps one row per event_id (an events file may repeat an event).
    let rows_check = archive_contents.rows == outcome.produced.distinct
        || (args.no_compact && archive_contents.rows >= outcome.produced.total);
    let items: Vec<flyhigh_schemas::Alert> = flyhigh_embedded::read_all(&files.alerts)?;
    let mut by_rule = std::collections::BTreeMap::new();
    for alert in &items {
        *by_rule.entry(alert.rule.as_str().to_string()).or_insert(0) += 1;
    }
    let cleared = items
        .iter()
        .filter(|a| a.status == flyhigh_schemas::AlertStatus::Cleared)
        .count();
    let summary = DemoSummary {
        seed: args.seed,
        events_requested: args.events,
        events_per_second: outcome.produced.total as f64 / elapsed.as_secs_f64(),
        cpu_us_per_event: cpu.as_secs_f64() * 1e6 / outcome.produced.total.max(1) as f64,
        events_produced: outcome.produced,
        poison_records_injected: outcome.poison_injected,
        events_consumed: handler_stats.searches + handler_stats.inventory_events,
        dead_lettered: handler_stats.dead_lettered + runner_stats.records_to_failure_destination,
        failed_batches: runner_stats.batches_to_failure_destination,
        elapsed_seconds: elapsed.as_secs_f64(),
        processors: describe(ran),
        latency_ms: deployment.status_handle().latency(),
        cpu_seconds: cpu.as_secs_f64(),
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
        demand: DemandSummary {
            handler: demand_stats,
            runner: stats.demand.runner,
            counted,
            counts_check,
            evaluator_runs: stats.evaluator_runs,
            buckets_judged: stats.buckets_judged,
            surge_route: surge_route.clone(),
            surge_start,
        },
        alerts: AlertsSummary {
            count: items.len(),
            by_rule,
            cleared,
            items,
        },
        archive: ArchiveDemoSummary {
            contents: archive_contents,
            rows_check,
            handler: archive_stats,
            runner: stats.archive.runner,
            compaction,
        },
        events_file: events_file.map(|f| EventsFileSummary {
            lines: f.lines,
            sent: f.events.len() as u64,
            rejected: f.rejected.len() as u64,
            rejections: f.rejected.into_iter().take(100).collect(),
            path: f.path,
        }),
        files,
    };
    let path = args
        .summary_json
        .clone()
        .unwrap_or_else(|| args.out.join("summary.json"));
    report::write_json(&path, &summary)?;
    print_summary(&summary, &path);
    // A processor that did not run has nothing to check.
    Ok((!ran.inventory || summary.inventory_check.is_ok())
        && report.dead_lettered == 0
        && (!ran.demand || summary.demand.counts_check)
        && (!ran.archive || summary.archive.rows_check))
}

/// The processors that ran, as `--processors` names them.
fn describe(p: Processors) -> String {
    let names: Vec<&str> = [
        (p.inventory, "inventory"),
        (p.demand, "demand"),
        (p.archive, "archive"),
        (p.decode, "decode"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// The demo's allowance, one setting for the demand handler's late flag and the
/// evaluator's distance behind the slowest shard's progress, in simulated time.
/// Arrival times are stamped by the simulated day's clock (`Simulator::clock`: the
/// time of the latest event generated) when a request reaches the stream, so an event
/// waiting in the producer's buffers arrives simulated hours after it occurred (the
/// simulator runs a day in seconds; measured with seed 42, up to 5.9 hours). A day
/// keeps the live evaluator from judging a bucket before its events arrive; it judges
/// everything once the stream ends. In AWS, where event and arrival times are wall
/// time, the allowance is two minutes.
const DEMO_ALLOWANCE: Duration = Duration::from_secs(24 * 3600);

fn print_summary(s: &DemoSummary, path: &std::path::Path) {
    let p = &s.events_produced;
    let inv = &s.inventory;
    println!();
    println!(
        "FlyHigh demo: seed {}, {} events in {:.1} s ({:.0} events/s end to end)",
        s.seed, p.total, s.elapsed_seconds, s.events_per_second
    );
    println!(
        "  cost          {:.2} s of CPU, {:.1} µs per event (processors: {})",
        s.cpu_seconds, s.cpu_us_per_event, s.processors
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
    let ran = |name: &str| s.processors.split(',').any(|p| p == name);
    println!(
        "  check         inventory_check: {}",
        if ran("inventory") {
            s.inventory_check.describe()
        } else {
            "not run (the inventory processor did not run)".to_string()
        }
    );
    let d = &s.demand;
    println!(
        "  demand        {} events counted in {} conditional counter writes ({} stale: redeliveries); {} late; counts {}",
        d.handler.events_counted,
        d.handler.counter_writes,
        d.handler.stale_writes,
        d.handler.late,
        if !ran("demand") {
            "not checked (the demand processor did not run)"
        } else if d.counts_check {
            "equal what was produced"
        } else {
            "DIFFER from what was produced"
        }
    );
    let rules: Vec<String> = s
        .alerts
        .by_rule
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    if let Some(f) = &s.events_file {
        println!(
            "  events file   {} valid events sent from {} ({} lines), {} lines rejected",
            f.sent,
            f.path.display(),
            f.lines,
            f.rejected
        );
    }
    println!(
        "  alerts        {} ({}; {} of them clearances) in {}; surge simulated on {}",
        s.alerts.count,
        if rules.is_empty() {
            "none".to_string()
        } else {
            rules.join(", ")
        },
        s.alerts.cleared,
        s.files.alerts.display(),
        d.surge_route.as_deref().unwrap_or("no route")
    );
    let a = &s.archive;
    println!(
        "  archive       {} rows in {} Parquet files, {} bytes ({:.1} per event) under {}; rows {}",
        a.contents.rows,
        a.contents.files,
        a.contents.bytes,
        a.contents.bytes as f64 / a.contents.rows.max(1) as f64,
        s.files.archive.display(),
        if !ran("archive") {
            "not checked (the archive processor did not run)"
        } else if a.rows_check {
            "equal the events produced"
        } else {
            "DIFFER from the events produced"
        }
    );
    if let Some(c) = &a.compaction {
        let merged: usize = c.compacted.iter().map(|p| p.files_merged).sum();
        println!(
            "                compacted {} hours: {} batch files merged, {} duplicates dropped; {} committed by the handler",
            c.compacted.len(),
            merged,
            c.duplicates_dropped(),
            a.handler.files
        );
    }
    println!("  summary       {}", path.display());
}
