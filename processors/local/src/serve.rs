//! [`Service`]: `flyhigh serve`, the pipeline as a long-running local service.
//!
//! The ingest API ([`flyhigh_ingest`]) on a TCP address → the producer → the durable
//! stream in the data directory → the three processors ([`Deployment`]) with their
//! checkpoints on disk, the evaluator every bucket and compaction of closed hours on
//! schedules. [`Service::stop`] drains: it stops taking requests (those in flight are
//! answered), writes everything the producer holds, lets each processor read the
//! stream to its end and checkpoint, and stops the schedules. A restart, also after
//! `kill -9`, goes on from the checkpoints: records after them are delivered again and
//! the handlers, idempotent by deterministic keys, count nothing twice; an event a
//! client sends again is stored once (the stream keeps one record per `event_id`).
//! The live dashboard (`flyhigh-dashboard`, see `live.rs`) is served at `/`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use flyhigh_core::Schedule;
use flyhigh_embedded::DurableStream;
use flyhigh_ingest::{ApiKeys, Auth, Claim, Ingest, IngestStats, Ledger, LedgerError, StatsHandle};
use flyhigh_producer::{Producer, ProducerMetrics};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::deployment::{Deployment, DeploymentConfig, EvaluatorSchedule, Horizon, StreamKind};
use crate::status::DeploymentStats;
use crate::stream::Stream;

/// What `flyhigh serve` runs.
pub struct ServeConfig {
    /// The data directory (created if missing; reused if there).
    pub data: std::path::PathBuf,
    /// Where the ingest API listens.
    pub listen: SocketAddr,
    /// Shards of the stream (a stream already in the data directory must have been
    /// made with as many: a different number is an error naming both).
    pub shards: usize,
    /// Records per handler invocation.
    pub batch_size: usize,
    /// How long the stream keeps records.
    pub retention: Duration,
    /// Flights loaded into the inventory at start (seats sold are kept).
    pub schedule: Schedule,
    /// `None`: no authentication (anyone on the address may send any source).
    pub api_keys: Option<ApiKeys>,
    /// Browser origins allowed to post (`*` for any).
    pub cors_origins: Vec<String>,
    /// Time between evaluator runs.
    pub evaluate_every: Duration,
    /// How long after its event time an event may arrive and still count in its
    /// bucket's judgement: the evaluator judges a bucket this long after it closes.
    /// With one-minute buckets, 30 s and a 15 s schedule put a surge's alert at most
    /// 1 min 45 s after its first bucket began (within two buckets).
    pub late_allowance: chrono::Duration,
    /// Time between compactions of closed archive hours.
    pub compact_every: Duration,
    /// The producer's byte budget: beyond it, requests are answered 429.
    pub buffer_budget_bytes: usize,
    /// How long the producer waits to fill an aggregate (adds to every ack).
    pub linger: Duration,
}

impl ServeConfig {
    /// The defaults for a data directory and an address.
    pub fn new(
        data: impl Into<std::path::PathBuf>,
        listen: SocketAddr,
        schedule: Schedule,
    ) -> ServeConfig {
        ServeConfig {
            data: data.into(),
            listen,
            shards: 4,
            batch_size: 500,
            retention: Duration::from_secs(24 * 3600),
            schedule,
            api_keys: None,
            cors_origins: Vec::new(),
            evaluate_every: Duration::from_secs(15),
            late_allowance: chrono::Duration::seconds(30),
            compact_every: Duration::from_secs(300),
            buffer_budget_bytes: 8 << 20,
            linger: Duration::from_millis(5),
        }
    }
}

/// The event ledger of the durable stream: an id it holds is written. The stream
/// itself drops a record whose `event_id` it already holds, in the transaction that
/// would write it, so concurrent retries and a crash between write and answer cannot
/// store an event twice; claims need no lease here.
#[derive(Debug, Clone)]
pub struct StreamLedger(DurableStream);

impl Ledger for StreamLedger {
    async fn claim(&self, ids: &[Uuid]) -> Result<Vec<Claim>, LedgerError> {
        let held: HashSet<Uuid> = self
            .0
            .contains_events(ids)
            .await
            .map_err(|e| LedgerError(e.to_string()))?;
        Ok(ids
            .iter()
            .map(|id| {
                if held.contains(id) {
                    Claim::Written
                } else {
                    Claim::New
                }
            })
            .collect())
    }

    async fn settle(&self, _written: &[Uuid], _released: &[Uuid]) -> Result<(), LedgerError> {
        Ok(())
    }
}

/// The running service.
pub struct Service {
    deployment: Deployment,
    /// What `/v1/stats` reads: the producer and the listen address are in it too.
    status: StatusSource,
    server: JoinHandle<std::io::Result<()>>,
    stop_serving: oneshot::Sender<()>,
}

/// What the service has done since it started.
#[derive(Debug, Clone, Serialize)]
pub struct ServeStats {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The ingest API's answers.
    pub ingest: IngestStats,
    /// The producer between the API and the stream.
    pub producer: ProducerSummary,
    /// The stream.
    pub stream: flyhigh_embedded::StreamStats,
    /// Each processor.
    pub processors: DeploymentStats,
    /// How far each processor is behind the end of the stream (records after its
    /// checkpoints, and the oldest one's age).
    pub lag: Option<crate::status::Lag>,
    /// How long events take to reach each stage, in milliseconds on the wall clock:
    /// `ack` (event → durable in the stream and answered), `inventory`, `demand`,
    /// `archive` (event → committed by that processor), `surge_alert` (the bucket
    /// that raised a surge alert closed → the alert published).
    pub latency_ms: std::collections::BTreeMap<String, flyhigh_handlers::LatencySummary>,
}

/// The producer's counters that matter to an operator of the service.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerSummary {
    pub written: u64,
    pub dead_lettered: u64,
    pub buffered_bytes: u64,
    pub budget_bytes: u64,
    pub requests: u64,
    pub user_records_per_kinesis_record: f64,
}

impl ProducerSummary {
    fn of(m: &ProducerMetrics) -> ProducerSummary {
        ProducerSummary {
            written: m.user_records_written,
            dead_lettered: m.user_records_dead_lettered,
            buffered_bytes: m.buffered_bytes,
            budget_bytes: m.budget_bytes,
            requests: m.requests,
            user_records_per_kinesis_record: m.user_records_per_kinesis_record(),
        }
    }
}

impl Service {
    /// Opens (or creates) the data directory, starts the pipeline and the ingest API.
    ///
    /// # Errors
    ///
    /// A store cannot be opened (another version, another shard count), or the
    /// address cannot be bound (in use, not local).
    pub async fn start(config: ServeConfig) -> anyhow::Result<Service> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let deployment = Deployment::start(DeploymentConfig {
            data: config.data.clone(),
            stream: StreamKind::Durable {
                retention: config.retention,
            },
            shards: config.shards,
            batch_size: config.batch_size,
            poll_interval: Duration::from_millis(20),
            batching_window: Duration::ZERO,
            schedule: config.schedule,
            late_allowance: config.late_allowance,
            clock: None,
            inventory_clock: None,
            evaluator: EvaluatorSchedule {
                every: config.evaluate_every,
                horizon: Horizon::Settled,
            },
            compact_every: Some(config.compact_every),
            checkpoints_on_disk: true,
            console: Some(Arc::new(|line: &str| println!("{line}"))),
            processors: crate::processors::Processors::ALL,
        })
        .await?;
        let Stream::Durable(stream) = deployment.stream().clone() else {
            anyhow::bail!("the service's stream is not durable");
        };
        let producer = Producer::builder()
            .linger(config.linger)
            .buffer_budget_bytes(config.buffer_budget_bytes)
            .dead_letters_file(&deployment.files().producer_dead_letters)
            .build_with(deployment.stream().clone())
            .await
            .context("starting the producer")?;
        let readiness_stream = stream.clone();
        let ack = Arc::new(flyhigh_handlers::Latency::new());
        let mut ingest = Ingest::new(producer.clone(), StreamLedger(stream.clone()))
            .with_durable_observer({
                let ack = ack.clone();
                Arc::new(move |occurred: &[chrono::DateTime<chrono::Utc>]| {
                    ack.record_committed(occurred.iter().map(|at| (0, *at)), None);
                })
            })
            .with_cors_origins(config.cors_origins)
            .with_readiness(Arc::new(move || {
                let stream = readiness_stream.clone();
                Box::pin(async move {
                    if stream.is_closed() {
                        return Err("the stream is closed (the service is stopping)".to_string());
                    }
                    stream
                        .contains_events(&[])
                        .await
                        .map(drop)
                        .map_err(|e| format!("the stream cannot be read: {e}"))
                })
            }));
        if let Some(keys) = config.api_keys {
            ingest = ingest.with_auth(Auth::ApiKeys(keys));
        }
        let (stop_serving, stopped) = oneshot::channel::<()>();
        let status = StatusSource {
            ingest: ingest.stats(),
            producer,
            stream,
            runners: deployment.status_handle(),
            listen: local_addr,
            ack,
        };
        // The dashboard at `/`: the same stats in every snapshot.
        let live = crate::live::Live::start(
            deployment.files(),
            format!(
                "flyhigh serve on {local_addr}, data in {}",
                config.data.display()
            ),
            {
                let status = status.clone();
                Arc::new(move || {
                    let status = status.clone();
                    Box::pin(async move { serde_json::to_value(status.snapshot().await).ok() })
                })
            },
        )?;
        let router = ingest
            .router()
            .route(
                "/v1/stats",
                get({
                    let status = status.clone();
                    move || {
                        let status = status.clone();
                        async move { axum::Json(status.snapshot().await) }
                    }
                }),
            )
            .merge(live.router);
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    live.hub.close();
                })
                .await
        });
        Ok(Service {
            deployment,
            status,
            server,
            stop_serving,
        })
    }

    /// Where the ingest API listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.status.listen
    }

    /// The data directory's paths.
    pub fn files(&self) -> &crate::Files {
        self.deployment.files()
    }

    /// What it has done so far.
    pub async fn stats(&self) -> ServeStats {
        self.status.snapshot().await
    }

    /// Drains and stops: no new requests (those in flight are answered), everything
    /// the producer holds written, each processor caught up with the stream and
    /// checkpointed, the schedules stopped. Returns the final stats.
    ///
    /// # Errors
    ///
    /// A processor's mapping failed.
    pub async fn stop(self) -> anyhow::Result<ServeStats> {
        let Service {
            mut deployment,
            status,
            server,
            stop_serving,
        } = self;
        let _ = stop_serving.send(());
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the HTTP server's task failed"),
        }
        let report = status.producer.close().await;
        if report.dead_lettered > 0 {
            tracing::warn!(
                dead_lettered = report.dead_lettered,
                "records the producer gave up on are in {}",
                deployment.files().producer_dead_letters.display()
            );
        }
        deployment.finish(None).await?;
        Ok(status.snapshot().await)
    }
}

/// What `/v1/stats` and [`Service::stats`] read.
#[derive(Clone)]
struct StatusSource {
    ingest: StatsHandle,
    producer: Producer,
    stream: DurableStream,
    runners: crate::status::StatusHandle,
    listen: SocketAddr,
    ack: Arc<flyhigh_handlers::Latency>,
}

impl StatusSource {
    async fn snapshot(&self) -> ServeStats {
        ServeStats {
            listen: self.listen,
            ingest: self.ingest.snapshot(),
            producer: ProducerSummary::of(&self.producer.metrics()),
            stream: self.stream.stats(),
            processors: self.runners.stats(),
            lag: self.runners.lag().await,
            latency_ms: {
                let mut stages = self.runners.latency();
                stages.insert("ack".into(), self.ack.summary());
                stages
            },
        }
    }
}
