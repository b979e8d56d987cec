//! `setup`, `produce`, `consume`: the pipeline against AWS or any `AWS_ENDPOINT_URL`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use flyhigh_aws::dynamodb::{DynamoInventoryStore, create_table};
use flyhigh_aws::kinesis::{KinesisSource, create_stream};
use flyhigh_aws::sqs::{SqsQueue, create_queue};
use flyhigh_core::InventoryStore;
use flyhigh_handlers::InventoryHandler;
use flyhigh_producer::Producer;
use flyhigh_runner::{FileCheckpoints, MappingConfig, Runner, handler_fn};
use flyhigh_simulator::{SimConfig, Simulator};
use serde_json::json;

use crate::pipeline::{self, aws_config};
use crate::report::{self, InventorySummary};

/// Resource names shared by the AWS commands.
#[derive(Args, Clone)]
pub struct Names {
    /// Kinesis stream.
    #[arg(long, default_value = "flyhigh-events")]
    stream: String,
    /// DynamoDB inventory table.
    #[arg(long, default_value = "flyhigh-inventory")]
    table: String,
    /// SQS queue for poison records.
    #[arg(long, default_value = "flyhigh-dead-letters")]
    dead_letter_queue: String,
    /// SQS queue for batches that failed every retry (the on-failure destination).
    #[arg(long, default_value = "flyhigh-failed-batches")]
    failure_queue: String,
}

#[derive(Args)]
pub struct SetupArgs {
    #[command(flatten)]
    names: Names,
    /// Shards of the stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
}

#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    names: Names,
    /// Simulator seed.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_SEED)]
    seed: u64,
    /// Events to simulate.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_EVENTS)]
    events: usize,
    /// One poison record every N events (0: none).
    #[arg(long, default_value_t = 0)]
    poison_every: u64,
    /// Write a JSON summary here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// PutRecords requests in flight at once (1 for moto, which loses records under
    /// concurrent puts to one stream).
    #[arg(long, default_value_t = 8)]
    requests_in_flight: usize,
    /// Where records the producer gives up on are written (JSON lines).
    #[arg(long, default_value = flyhigh_producer::FileDeadLetters::FILE_NAME)]
    dead_letters: PathBuf,
}

#[derive(Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    names: Names,
    /// Records per handler invocation.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Stop reading a shard once it has had no new record for this many seconds; the
    /// command ends when every shard has stopped.
    #[arg(long, default_value_t = 5.0)]
    idle_seconds: f64,
    /// Shards processed at once (default: all, as Lambda does). Against moto, start
    /// it with `scripts/moto.sh` (its launcher serializes DynamoDB calls, so
    /// concurrent shards are safe there).
    #[arg(long)]
    shard_concurrency: Option<usize>,
    /// Write a JSON summary here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Checkpoint file of this mapping (JSON, format in `flyhigh_runner::checkpoint`):
    /// a restarted `consume` goes on after the last checkpoint of each shard and
    /// never re-reads a finished shard. Delete it to start again from the trim
    /// horizon. Default: out/checkpoints/STREAM--TABLE.json (what is stored in that
    /// table). A stream deleted and created again under its name needs its checkpoint
    /// file deleted: its shards are new ones under the same ids.
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// How often to list the shards again to find the children of a reshard (also
    /// done whenever a shard ends).
    #[arg(long, default_value_t = 10.0)]
    shard_refresh_seconds: f64,
}

pub async fn setup(args: SetupArgs) -> anyhow::Result<()> {
    let config = aws_config().await;
    let n = &args.names;
    create_stream(
        &aws_sdk_kinesis::Client::new(&config),
        &n.stream,
        args.shards,
    )
    .await
    .context("creating the stream")?;
    create_table(&aws_sdk_dynamodb::Client::new(&config), &n.table)
        .await
        .context("creating the table")?;
    let sqs = aws_sdk_sqs::Client::new(&config);
    for queue in [&n.dead_letter_queue, &n.failure_queue] {
        create_queue(&sqs, queue)
            .await
            .with_context(|| format!("creating queue {queue}"))?;
    }
    println!(
        "ready: stream {} ({} shards), table {}, queues {} and {}",
        n.stream, args.shards, n.table, n.dead_letter_queue, n.failure_queue
    );
    Ok(())
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let config = aws_config().await;
    let sim = Simulator::new(SimConfig::new(args.seed, args.events))?;
    // Before anything is written: a wrong --stream fails here, in one line, instead
    // of every record being dead-lettered. The builder turns the SDK's retries off
    // (the producer retries per record itself).
    let producer = Producer::builder()
        .stream(&args.names.stream)
        .kinesis(&config)
        .max_requests_in_flight(args.requests_in_flight)
        .dead_letters_file(&args.dead_letters)
        .build()
        .await
        .context("starting the producer")?;
    let store =
        DynamoInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), &args.names.table);
    let schedule = sim.schedule();
    store
        .load_schedule(&schedule)
        .await
        .context("loading the schedule")?;
    let started = Instant::now();
    let outcome = pipeline::produce(sim, &[], &producer, args.poison_every, |_| {}).await?;
    let report = producer.close().await;
    let metrics = producer.metrics();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "produced {} events ({} searches, {} bookings, {} cancellations) and {} poison records in {:.1} s as {} Kinesis records; {} flights scheduled; {} records dead-lettered",
        outcome.produced.total,
        outcome.produced.search,
        outcome.produced.booking,
        outcome.produced.cancellation,
        outcome.poison_injected,
        elapsed,
        metrics.kinesis_records_written,
        schedule.flights.len(),
        report.dead_lettered
    );
    if let Some(path) = &args.summary_json {
        report::write_json(
            path,
            &json!({
                "seed": args.seed,
                "events_produced": outcome.produced,
                "poison_records_injected": outcome.poison_injected,
                "records_dead_lettered": report.dead_lettered,
                "kinesis_records": metrics.kinesis_records_written,
                "flights_scheduled": schedule.flights.len(),
                "elapsed_seconds": elapsed,
            }),
        )?;
    }
    anyhow::ensure!(
        report.dead_lettered == 0,
        "{} records could not be written (see {}); last error: {}",
        report.dead_lettered,
        args.dead_letters.display(),
        report.last_error.unwrap_or_default()
    );
    Ok(())
}

pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let config = aws_config().await;
    let n = &args.names;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dead_letters = SqsQueue::new(sqs.clone(), queue_url(&sqs, &n.dead_letter_queue).await?);
    let failures = SqsQueue::new(sqs.clone(), queue_url(&sqs, &n.failure_queue).await?);
    let handler = InventoryHandler::new(
        DynamoInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), &n.table),
        dead_letters,
    );
    let source = KinesisSource::new(aws_sdk_kinesis::Client::new(&config), &n.stream);
    let checkpoints_path = args
        .checkpoints
        .clone()
        // Keyed by stream and table: the checkpoints say what is stored in that table,
        // so consuming the stream into another table starts from the trim horizon.
        .unwrap_or_else(|| {
            PathBuf::from("out/checkpoints").join(format!("{}--{}.json", n.stream, n.table))
        });
    let checkpoints = FileCheckpoints::open(&checkpoints_path)?;
    let runner = Runner::new(MappingConfig {
        batch_size: args.batch_size,
        idle_timeout: Some(Duration::from_secs_f64(args.idle_seconds)),
        shard_concurrency: args.shard_concurrency,
        // A poison batch is narrowed down to its bad record instead of failing whole.
        bisect_batch_on_function_error: true,
        shard_refresh_interval: Duration::from_secs_f64(args.shard_refresh_seconds),
        region: config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into()),
        ..MappingConfig::default()
    });
    let started = Instant::now();
    let handler = &handler;
    let invoke = handler_fn(|event| async move { Ok(handler.handle(event).await) });
    let stats = runner
        .run_with_checkpoints(&source, &invoke, &failures, &checkpoints)
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let h = handler.stats();
    // The records are done and checkpointed: a throttled summary read is retried
    // rather than failing a run that succeeded.
    let mut attempt = 0;
    let inventory = loop {
        match handler.store().inventory().await {
            Ok(inventory) => break inventory,
            Err(flyhigh_core::StoreError::Transient(e)) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "reading the inventory for the summary failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let summary = InventorySummary::new(&inventory);
    println!(
        "consumed {} Kinesis records ({} user records) in {} invocations ({:.1} s incl. {} s idle wait): {} events, {} dead-lettered, {} batches to the failure queue; {} seats sold; checkpoints in {}",
        stats.records_read,
        h.user_records,
        stats.invocations,
        elapsed,
        args.idle_seconds,
        h.searches + h.inventory_events,
        h.dead_lettered,
        stats.batches_to_failure_destination,
        summary.seats_sold,
        checkpoints_path.display()
    );
    if let Some(path) = &args.summary_json {
        report::write_json(
            path,
            &json!({
                "records_read": stats.records_read,
                "user_records": h.user_records,
                "events_consumed": h.searches + h.inventory_events,
                "dead_lettered": h.dead_lettered + stats.records_to_failure_destination,
                "handler": h,
                "runner": stats,
                "inventory": summary,
                "checkpoints": checkpoints_path,
                "elapsed_seconds": elapsed,
            }),
        )?;
    }
    Ok(())
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    let out = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("finding queue {name} (run `flyhigh setup`)"))?;
    out.queue_url()
        .map(str::to_string)
        .with_context(|| format!("queue {name} has no URL"))
}
