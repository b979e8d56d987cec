//! [`Deployment`]: the pipeline `infra/` deploys on AWS, built on one machine from a
//! data directory: a stream, the three processors' event source mappings over it
//! (inventory, hot routes, archive), the scheduled surge evaluator and, for a service,
//! the scheduled compaction, with the embedded stores.
//!
//! | AWS (`infra/`)                          | here                                      |
//! |-----------------------------------------|-------------------------------------------|
//! | Kinesis stream                          | [`Stream`]: in memory, or SQLite on disk  |
//! | three Lambda event source mappings      | three [`Runner`]s, checkpoints in memory or on disk |
//! | inventory / demand / archive Lambdas    | the same handlers over SQLite and a directory |
//! | alerts Lambda, every minute             | the evaluator task ([`EvaluatorSchedule`]) |
//! | compact Lambda, hourly                  | the compaction task (`compact_every`)     |
//! | SQS dead-letter queues, on-failure dest | JSON-lines files in the data directory    |
//! | SNS topic                               | `alerts.jsonl` and the console            |

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use flyhigh_core::demand::registry::RouteCheck;
use flyhigh_core::{InventoryStore, Schedule};
use flyhigh_embedded::{
    AlertLog, JsonLinesFile, LocalObjectStore, SqliteArchiveCheckpoints, SqliteDemandStore,
    SqliteInventoryStore,
};
use flyhigh_handlers::{
    ArchiveHandler, DemandHandler, FlightAlerts, InventoryHandler, SurgeEvaluator,
};
use flyhigh_runner::{
    CheckpointError, CheckpointStore, FileCheckpoints, Handler, MappingConfig, MappingStats,
    MemoryCheckpoints, Runner, RunnerError, handler_fn, handler_fn_by,
};
use flyhigh_schemas::{AlertRule, AlertStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::files::Files;
use crate::processors::Processors;
use crate::status::{DeploymentStats, EvaluationCounters, Latencies, StatusHandle, lag_of};
use crate::stream::Stream;

/// A clock: the wall clock, or a simulated day's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Where alert lines are printed besides `alerts.jsonl`.
pub type Console = Arc<dyn Fn(&str) + Send + Sync>;

/// The inventory handler as deployed here.
pub type Inventory = InventoryHandler<
    SqliteInventoryStore,
    JsonLinesFile,
    FlightAlerts<Arc<SqliteDemandStore>, Arc<AlertLog>>,
>;
/// The hot-route counting handler as deployed here.
pub type Demand = DemandHandler<Arc<SqliteDemandStore>, SqliteInventoryStore, JsonLinesFile>;
/// The archive handler as deployed here.
pub type Archive = ArchiveHandler<LocalObjectStore, SqliteArchiveCheckpoints, JsonLinesFile>;
/// The surge evaluator as deployed here.
pub type Evaluator = SurgeEvaluator<Arc<SqliteDemandStore>, Arc<SqliteDemandStore>, Arc<AlertLog>>;

/// When the evaluator runs and how far it judges.
#[derive(Debug, Clone, Copy)]
pub struct EvaluatorSchedule {
    /// Time between runs.
    pub every: Duration,
    /// How far each run judges.
    pub horizon: Horizon,
}

/// How far an evaluator run judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// As the alerts Lambda does: `now - allowance` by the wall clock, held back
    /// while a shard's consumer lags ([`SurgeEvaluator::settled_horizon`]).
    Settled,
    /// The allowance behind the slowest shard's progress, once every shard has
    /// some: for a simulated day, whose clock runs far faster than the wall's.
    BehindSlowestShard,
}

/// What to build.
pub struct DeploymentConfig {
    /// The data directory.
    pub data: std::path::PathBuf,
    /// The stream: in memory, or durable in the data directory.
    pub stream: StreamKind,
    /// Shards of a new stream.
    pub shards: usize,
    /// Records per handler invocation (Lambda's batch size).
    pub batch_size: usize,
    /// How often an idle shard is read again.
    pub poll_interval: Duration,
    /// How long a mapping gathers records before it invokes with fewer than a full
    /// batch (Lambda's `MaximumBatchingWindowInSeconds`; zero: at once).
    pub batching_window: Duration,
    /// Flights to load into the inventory (kept as they are when already there: a
    /// schedule load never resets seats sold).
    pub schedule: Schedule,
    /// The demand handler's late allowance, and the evaluator's distance behind.
    pub late_allowance: chrono::Duration,
    /// Arrival times and the demand handler's clock; `None`: the wall clock.
    pub clock: Option<Clock>,
    /// The inventory handler's clock (booking-record expiry); `None`: the wall clock.
    pub inventory_clock: Option<Clock>,
    /// The evaluator's schedule.
    pub evaluator: EvaluatorSchedule,
    /// Compaction of closed hours every so often; `None`: never while running.
    pub compact_every: Option<Duration>,
    /// Checkpoints in files under the data directory (a restart goes on where it
    /// stopped) rather than in memory.
    pub checkpoints_on_disk: bool,
    /// Where alert lines go besides `alerts.jsonl` (the console).
    pub console: Option<Console>,
    /// Which mappings run: all three, except to measure one alone.
    pub processors: Processors,
}

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// In memory: a bounded run.
    Memory,
    /// SQLite in the data directory (`stream.sqlite`), keeping records this long.
    Durable {
        /// Records older than this (by arrival) are trimmed, as Kinesis's retention.
        retention: Duration,
    },
}

/// The running pipeline.
pub struct Deployment {
    files: Files,
    stream: Stream,
    inventory: Arc<Inventory>,
    demand: Arc<Demand>,
    archive: Arc<Archive>,
    demand_store: Arc<SqliteDemandStore>,
    evaluator: Arc<Evaluator>,
    runners: [Runner; 3],
    positions: [Arc<Checkpoints>; 3],
    /// The running mappings, by processor name.
    mappings: Vec<(&'static str, JoinHandle<Result<MappingStats, RunnerError>>)>,
    schedules: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    evaluations: Arc<EvaluationCounters>,
    latencies: Arc<Latencies>,
}

/// Checkpoints in memory or in a file.
pub(crate) enum Checkpoints {
    Memory(MemoryCheckpoints),
    File(FileCheckpoints),
}

impl CheckpointStore for Checkpoints {
    async fn load(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> Result<Option<flyhigh_runner::Checkpoint>, CheckpointError> {
        match self {
            Checkpoints::Memory(c) => c.load(stream, shard_id).await,
            Checkpoints::File(c) => c.load(stream, shard_id).await,
        }
    }

    async fn save(
        &self,
        stream: &str,
        shard_id: &str,
        sequence: &str,
    ) -> Result<(), CheckpointError> {
        match self {
            Checkpoints::Memory(c) => c.save(stream, shard_id, sequence).await,
            Checkpoints::File(c) => c.save(stream, shard_id, sequence).await,
        }
    }

    async fn finish(&self, stream: &str, shard_id: &str) -> Result<(), CheckpointError> {
        match self {
            Checkpoints::Memory(c) => c.finish(stream, shard_id).await,
            Checkpoints::File(c) => c.finish(stream, shard_id).await,
        }
    }
}

impl Deployment {
    /// Opens the stores under `config.data` (creating what is missing), loads the
    /// schedule, and starts the three mappings and the schedules.
    ///
    /// # Errors
    ///
    /// A store cannot be opened or created.
    pub async fn start(config: DeploymentConfig) -> anyhow::Result<Deployment> {
        let files = Files::under(&config.data);
        std::fs::create_dir_all(&files.data)
            .with_context(|| format!("creating {}", files.data.display()))?;
        let clock: Clock = config.clock.clone().unwrap_or_else(|| Arc::new(Utc::now));
        let stream = match config.stream {
            StreamKind::Memory => Stream::Memory(
                flyhigh_producer::LocalStream::new("flyhigh-events", config.shards).with_clock({
                    let clock = clock.clone();
                    move || clock()
                }),
            ),
            StreamKind::Durable { retention } => Stream::Durable(
                flyhigh_embedded::DurableStream::open(
                    &files.stream_sqlite,
                    flyhigh_embedded::StreamConfig::new("flyhigh-events", config.shards)
                        .retention(retention),
                )
                .with_context(|| format!("opening the stream {}", files.stream_sqlite.display()))?
                .with_clock({
                    let clock = clock.clone();
                    move || clock()
                }),
            ),
        };

        let store = SqliteInventoryStore::open(&files.inventory_sqlite)
            .with_context(|| format!("opening {}", files.inventory_sqlite.display()))?;
        store
            .load_schedule(&config.schedule)
            .await
            .context("loading the schedule into the inventory")?;
        // The hot-route processor: one SQLite file for counters and alerts, alerts to
        // alerts.jsonl (and the console).
        let demand_store = Arc::new(
            SqliteDemandStore::open(&files.demand_sqlite)
                .with_context(|| format!("opening {}", files.demand_sqlite.display()))?,
        );
        let latencies = Arc::new(Latencies::on(&clock));
        let mut alert_log = AlertLog::new(&files.alerts)?.with_observer({
            let surge = latencies.surge_alert.clone();
            move |alert| {
                if alert.rule == AlertRule::RouteSurge
                    && alert.status == AlertStatus::Raised
                    && let Some(closed) = alert.window_end
                {
                    surge.record_since(closed);
                }
            }
        });
        if let Some(console) = config.console.clone() {
            alert_log = alert_log.with_console(move |line| console(line));
        }
        let alert_log = Arc::new(alert_log);
        let demand = Arc::new(
            DemandHandler::new(
                demand_store.clone(),
                SqliteInventoryStore::open_read_only(&files.inventory_sqlite)?,
                JsonLinesFile::create(&files.demand_dead_letters)?,
            )
            .with_late_allowance(config.late_allowance)
            .with_latency(latencies.demand.clone())
            .with_clock({
                let clock = clock.clone();
                move || clock()
            }),
        );
        // Routes between airports the schedule does not serve (a client inventing
        // pairs) leave the registry unjudged, as the alerts Lambda's KNOWN_AIRPORTS does.
        let evaluator = Arc::new(
            SurgeEvaluator::new(
                demand_store.clone(),
                demand_store.clone(),
                alert_log.clone(),
            )
            .with_route_check(RouteCheck::of_schedule(&config.schedule)),
        );
        let mut inventory =
            InventoryHandler::new(store, JsonLinesFile::create(&files.dead_letters)?)
                .with_latency(latencies.inventory.clone());
        if let Some(now) = config.inventory_clock.clone() {
            inventory = inventory.with_clock(move || now());
        }
        let inventory = Arc::new(
            inventory.with_flight_watch(FlightAlerts::new(demand_store.clone(), alert_log.clone())),
        );
        let archive = Arc::new(
            ArchiveHandler::new(
                LocalObjectStore::open(&files.archive)?,
                SqliteArchiveCheckpoints::open(&files.archive_checkpoints)?,
                JsonLinesFile::create(&files.archive_dead_letters)?,
            )
            .with_latency(latencies.archive.clone()),
        );

        let mapping_config = MappingConfig {
            batch_size: config.batch_size,
            poll_interval: config.poll_interval,
            batching_window: config.batching_window,
            bisect_batch_on_function_error: true,
            ..MappingConfig::default()
        };
        let runners = [
            Runner::new(mapping_config.clone()),
            Runner::new(mapping_config.clone()),
            Runner::new(mapping_config.clone()),
        ];
        let checkpoints = |processor: &str| -> anyhow::Result<Arc<Checkpoints>> {
            Ok(Arc::new(if config.checkpoints_on_disk {
                let path = files.checkpoint(processor);
                Checkpoints::File(
                    FileCheckpoints::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?,
                )
            } else {
                Checkpoints::Memory(MemoryCheckpoints::default())
            }))
        };
        let positions = [
            checkpoints("inventory")?,
            checkpoints("demand")?,
            checkpoints("archive")?,
        ];
        // Each processor's event source mapping over the same stream, as three Lambda
        // mappings read it. The archive handler is given each invocation's deadline
        // (the runner's function timeout), as the archive Lambda is given its
        // context's: a heavy batch commits the parts it has time for and reports the
        // rest.
        let mut mappings = Vec::new();
        if config.processors.inventory {
            mappings.push((
                "inventory",
                spawn_mapping(
                    &runners[0],
                    &stream,
                    handler_fn({
                        let handler = inventory.clone();
                        move |event| {
                            let handler = handler.clone();
                            async move { Ok(handler.handle(event).await) }
                        }
                    }),
                    JsonLinesFile::create(&files.failed_batches)?,
                    &positions[0],
                ),
            ));
        }
        if config.processors.demand {
            mappings.push((
                "demand",
                spawn_mapping(
                    &runners[1],
                    &stream,
                    handler_fn({
                        let handler = demand.clone();
                        move |event| {
                            let handler = handler.clone();
                            async move { Ok(handler.handle(event).await) }
                        }
                    }),
                    JsonLinesFile::create(&files.demand_failed_batches)?,
                    &positions[1],
                ),
            ));
        }
        if config.processors.archive {
            mappings.push((
                "archive",
                spawn_mapping(
                    &runners[2],
                    &stream,
                    handler_fn_by({
                        let handler = archive.clone();
                        move |event, deadline| {
                            let handler = handler.clone();
                            async move {
                                Ok(handler
                                    .handle_by(event, flyhigh_handlers::Deadline::at(deadline))
                                    .await)
                            }
                        }
                    }),
                    JsonLinesFile::create(&files.archive_failed_batches)?,
                    &positions[2],
                ),
            ));
        }
        if config.processors.decode {
            // Takes every batch apart and decodes each event, then drops them: what
            // each processor pays before its own work. Nothing to fail, nothing kept.
            mappings.push((
                "decode",
                spawn_mapping(
                    &Runner::new(mapping_config.clone()),
                    &stream,
                    handler_fn(move |event| async move {
                        let records = flyhigh_handlers::kinesis::kinesis_records(&event);
                        let expanded =
                            flyhigh_handlers::batch::expand("decode", &records, |_, _| None);
                        std::hint::black_box(expanded);
                        Ok(Default::default())
                    }),
                    JsonLinesFile::create(&files.data.join("decode-failed-batches.jsonl"))?,
                    &Arc::new(Checkpoints::Memory(MemoryCheckpoints::default())),
                ),
            ));
        }

        let (stop, stopped) = watch::channel(false);
        let evaluations = Arc::new(EvaluationCounters::default());
        let mut schedules = vec![spawn_evaluator(
            evaluator.clone(),
            demand_store.clone(),
            (stream.clone(), positions[1].clone()),
            config.evaluator,
            config.late_allowance,
            config.shards,
            clock.clone(),
            evaluations.clone(),
            stopped.clone(),
        )];
        if let Some(every) = config.compact_every {
            schedules.push(spawn_compaction(
                files.archive.clone(),
                every,
                evaluations.clone(),
                stopped,
            ));
        }
        Ok(Deployment {
            files,
            stream,
            inventory,
            demand,
            archive,
            demand_store,
            evaluator,
            runners,
            positions,
            mappings,
            schedules,
            stop,
            evaluations,
            latencies,
        })
    }

    /// The stream: the producer's transport.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The data directory's paths.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// The inventory handler (its store: `.store()`).
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The hot-route counting handler.
    pub fn demand(&self) -> &Demand {
        &self.demand
    }

    /// The archive handler.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The demand counters, route registry and alert outbox.
    pub fn demand_store(&self) -> &SqliteDemandStore {
        &self.demand_store
    }

    /// The surge evaluator.
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// The inventory mapping's runner (its live `stats()`, for progress).
    pub fn inventory_runner(&self) -> Runner {
        self.runners[0].clone()
    }

    /// What each processor has done so far.
    pub fn stats(&self) -> DeploymentStats {
        self.status_handle().stats()
    }

    /// A handle that reads [`Deployment::stats`] from anywhere (a status page).
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            inventory: self.inventory.clone(),
            demand: self.demand.clone(),
            archive: self.archive.clone(),
            runners: self.runners.clone(),
            evaluations: self.evaluations.clone(),
            stream: self.stream.clone(),
            positions: self.positions.clone(),
            latencies: self.latencies.clone(),
        }
    }

    /// Closes the stream, lets every mapping read it to its end (each batch handled
    /// and checkpointed), stops the schedules, and, with `judge_until`, runs the
    /// evaluator once more up to it. Returns the final stats; the stores stay open
    /// for reading.
    ///
    /// # Errors
    ///
    /// A mapping failed (its stream or checkpoints could not be read or written), or
    /// the last evaluator run failed.
    pub async fn finish(
        &mut self,
        judge_until: Option<DateTime<Utc>>,
    ) -> anyhow::Result<DeploymentStats> {
        self.stream.close();
        for (name, mapping) in self.mappings.drain(..) {
            mapping
                .await
                .with_context(|| format!("the {name} mapping's task"))?
                .with_context(|| format!("the {name} mapping"))?;
        }
        let _ = self.stop.send(true);
        for schedule in self.schedules.drain(..) {
            let _ = schedule.await;
        }
        if let Some(horizon) = judge_until {
            let report = self.evaluator.run(horizon, Utc::now).await?;
            use std::sync::atomic::Ordering::Relaxed;
            self.evaluations.runs.fetch_add(1, Relaxed);
            self.evaluations
                .buckets_judged
                .fetch_add(report.buckets_judged, Relaxed);
        }
        Ok(self.stats())
    }
}

/// Runs `runner` over every shard of `stream`, invoking `handler`, failed batches to
/// `failed`, going on from `checkpoints`; the task ends with the stream.
fn spawn_mapping<H: Handler + 'static>(
    runner: &Runner,
    stream: &Stream,
    handler: H,
    failed: JsonLinesFile,
    checkpoints: &Arc<Checkpoints>,
) -> JoinHandle<Result<MappingStats, RunnerError>> {
    let (runner, stream, checkpoints) = (runner.clone(), stream.clone(), checkpoints.clone());
    tokio::spawn(async move {
        runner
            .run_with_checkpoints(&stream, &handler, &failed, &*checkpoints)
            .await
    })
}

#[allow(clippy::too_many_arguments)]
fn spawn_evaluator(
    evaluator: Arc<Evaluator>,
    demand_store: Arc<SqliteDemandStore>,
    (stream, demand_positions): (Stream, Arc<Checkpoints>),
    schedule: EvaluatorSchedule,
    allowance: chrono::Duration,
    shards: usize,
    clock: Clock,
    counters: Arc<EvaluationCounters>,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    use flyhigh_core::DemandStore;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(schedule.every) => {}
            }
            let horizon = match schedule.horizon {
                // Caught up: every record in the stream is counted, so a bucket that
                // ended an allowance ago can gain only late events, whatever the
                // shards' progress says (a shard without new traffic keeps its last
                // arrival time, which would hold the horizon back until it is idle).
                Horizon::Settled if caught_up(&stream, &demand_positions).await => {
                    clock() - allowance
                }
                Horizon::Settled => match evaluator.settled_horizon(clock(), allowance).await {
                    Ok(horizon) => horizon,
                    Err(e) => {
                        tracing::warn!(error = %e, "evaluator: the shards' progress cannot be read");
                        continue;
                    }
                },
                Horizon::BehindSlowestShard => {
                    let Ok(marks) = demand_store.watermarks().await else {
                        continue;
                    };
                    if marks.len() < shards {
                        continue;
                    }
                    let Some(slowest) = marks.iter().map(|w| w.progress).min() else {
                        continue;
                    };
                    slowest - allowance
                }
            };
            // A run stops starting routes a little before the next is due.
            let until = tokio::time::Instant::now() + schedule.every.mul_f64(0.8);
            match evaluator.run_until(horizon, Utc::now, Some(until)).await {
                Ok(report) => {
                    use std::sync::atomic::Ordering::Relaxed;
                    counters.runs.fetch_add(1, Relaxed);
                    counters
                        .buckets_judged
                        .fetch_add(report.buckets_judged, Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "evaluator run failed; the next one retries"),
            }
        }
    })
}

/// Whether the demand mapping has no record of the durable stream left to count.
async fn caught_up(stream: &Stream, demand_positions: &Checkpoints) -> bool {
    match stream {
        Stream::Durable(stream) => lag_of(stream, demand_positions)
            .await
            .is_some_and(|lag| lag.records == 0),
        Stream::Memory(_) => false,
    }
}

fn spawn_compaction(
    archive: std::path::PathBuf,
    every: Duration,
    counters: Arc<EvaluationCounters>,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(every) => {}
            }
            match crate::compact_closed(&archive, Utc::now()).await {
                Ok(report) => {
                    counters
                        .compactions
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    counters.hours_compacted.fetch_add(
                        report.compacted.len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    if !report.compacted.is_empty() {
                        tracing::info!(hours = report.compacted.len(), "archive hours compacted");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "compaction failed; the next run retries"),
            }
        }
    })
}
