//! [`Producer`]: the async handle applications hold. It validates and serializes in
//! the caller's task, charges the record to the byte budget (waiting or failing when
//! it is spent), and hands it to the worker (private `worker` module) that aggregates,
//! collects, puts and retries. Each accepted record gets a [`Receipt`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::Utc;
use flyhigh_schemas::{Envelope, FieldError, ValidationErrors};
use tokio::sync::{mpsc, oneshot, watch};

use crate::aggregate::UserRecord;
use crate::budget::{Budget, Charge, Refused};
use crate::config::{ProducerConfig, RECORD_OVERHEAD_BYTES};
use crate::exchange::{Command, Member, Pending};
pub use crate::exchange::{Delivery, DeliveryError, FlushReport};
use crate::limits::{MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES};
use crate::metrics::{Counters, ProducerMetrics};
use crate::transport::Transport;
use crate::worker::Worker;

/// Why `send` or `try_send` did not accept a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The event is invalid; nothing was sent. Fix the fields named.
    #[error("invalid event: {0}")]
    Invalid(ValidationErrors),
    /// `try_send` only: the buffer budget is spent (Kinesis is slower than the
    /// application, or throttling), or the share of it the record's shard may hold
    /// ([`ProducerConfig::shard_budget_share`]; `shard` names it). Wait, shed load,
    /// or use `send`, which waits.
    #[error(
        "producer buffer full{}: {buffered_bytes} of {budget_bytes} bytes held; the record needs {record_bytes}",
        shard.as_ref().map(|s| format!(" for shard {s}")).unwrap_or_default()
    )]
    BufferFull {
        /// What the record would have charged.
        record_bytes: usize,
        /// Bytes held now (by the shard, when `shard` is set).
        buffered_bytes: usize,
        /// The budget (the shard's share, when `shard` is set).
        budget_bytes: usize,
        /// The shard whose share is spent; `None`: the whole budget is.
        shard: Option<Arc<str>>,
    },
    /// The producer was closed.
    #[error("producer is closed")]
    Closed,
}

/// The outcome of one accepted record: await it for its [`Delivery`], or drop it if
/// the dead-letter sink is enough.
#[derive(Debug)]
pub struct Receipt {
    rx: oneshot::Receiver<Result<Delivery, DeliveryError>>,
}

impl Future for Receipt {
    type Output = Result<Delivery, DeliveryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(DeliveryError::WorkerStopped)))
    }
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    budget: Arc<Budget>,
    record_ttl: Duration,
    counters: Arc<Counters>,
    closed: AtomicBool,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    done: watch::Receiver<bool>,
}

impl Drop for Shared {
    /// The last handle dropped without [`Producer::close`]: the worker still drains
    /// what was accepted, but only while the runtime runs, and nobody can learn the
    /// outcome. Say so, with the count, rather than lose them without a word if the
    /// runtime stops next.
    fn drop(&mut self) {
        if !self.closed.load(Ordering::SeqCst) {
            let unresolved = self.counters.buffered_records.load(Ordering::Relaxed);
            if unresolved > 0 {
                tracing::warn!(
                    unresolved,
                    "producer dropped without close(): {unresolved} accepted records not yet \
                     written or dead-lettered; they are lost if the runtime stops before the \
                     worker drains them"
                );
            }
        }
    }
}

/// The async producer. Cheap to clone; clones share one worker, budget and metrics.
///
/// Dropping every clone without [`Producer::close`] still writes what was accepted
/// (the worker drains, then stops), but nobody can wait for it, and a runtime that
/// stops first abandons it: the drop logs a warning with how many records were
/// still unresolved.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("budget_bytes", &self.shared.budget.total_bytes())
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Producer {
    /// The front door: a [`ProducerBuilder`](crate::ProducerBuilder) with the default
    /// settings. Its `build` checks every setting and, for Kinesis, that the stream
    /// exists and takes writes, before the producer starts.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use flyhigh_producer::{LocalStream, Producer};
    ///
    /// let producer = Producer::builder().build_with(LocalStream::new("events", 2)).await?;
    /// # producer.close().await;
    /// # Ok::<(), flyhigh_producer::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub fn builder() -> crate::builder::ProducerBuilder {
        crate::builder::ProducerBuilder::default()
    }

    /// A producer writing through `transport`, starting its worker on the current
    /// Tokio runtime. The worker first loads the stream's shard map.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, and at once, with the setting named, when a setting
    /// is out of range ([`ProducerConfig::validate`]; [`Producer::try_new`] returns
    /// the error instead).
    pub fn new<T: Transport>(transport: T, config: ProducerConfig) -> Producer {
        match Producer::try_new(transport, config) {
            Ok(producer) => producer,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Producer::new`], but a setting out of range
    /// ([`ProducerConfig::validate`]) is an error naming it, instead of a panic.
    pub fn try_new<T: Transport>(
        transport: T,
        config: ProducerConfig,
    ) -> Result<Producer, crate::config::ConfigError> {
        config.validate()?;
        Ok(Producer::start(transport, config))
    }

    fn start<T: Transport>(transport: T, config: ProducerConfig) -> Producer {
        let largest = MAX_RECORD_BYTES + RECORD_OVERHEAD_BYTES;
        let budget_bytes = config.buffer_budget_bytes.max(largest);
        let budget = Arc::new(Budget::new(
            budget_bytes,
            config.shard_budget_share,
            largest,
        ));
        let (commands, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let (done_tx, done) = watch::channel(false);
        let record_ttl = config.record_ttl;
        let (refreshed, refreshes) = mpsc::unbounded_channel();
        let worker = Worker::new(
            Arc::new(transport),
            config,
            counters.clone(),
            budget.clone(),
            refreshed,
        );
        let handle = tokio::spawn(async move {
            worker.run(rx, refreshes).await;
            let _ = done_tx.send(true);
        });
        Producer {
            shared: Arc::new(Shared {
                commands,
                budget,
                record_ttl,
                counters,
                closed: AtomicBool::new(false),
                worker: Mutex::new(Some(handle)),
                done,
            }),
        }
    }

    /// Validates an event and queues it under its design partition key
    /// ([`Envelope::partition_key`]); waits while the buffer budget is spent.
    ///
    /// Returns [`SendError::Invalid`] with every offending field for an invalid
    /// event, which is then not sent.
    pub async fn send(&self, event: &Envelope) -> Result<Receipt, SendError> {
        let record = self.prepare_event(event)?;
        self.enqueue(record).await
    }

    /// Like [`Producer::send`], but fails with [`SendError::BufferFull`] instead of
    /// waiting: for request handlers that would rather shed load than stall.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use flyhigh_producer::{LocalStream, Producer, ProducerConfig, SendError};
    /// # use flyhigh_schemas::{Envelope, Payload, Search};
    /// # let search = |i: u32| Envelope::new("web-app", "2026-11-22T10:15:00.250Z".parse().unwrap(),
    /// #     Payload::Search(Search { session_id: format!("s-{i:06x}"), origin: "LHR".into(),
    /// #         destination: "JFK".into(), departure_date: "2026-12-01".parse().unwrap(),
    /// #         return_date: None, passengers: 1, cabin: flyhigh_schemas::Cabin::Economy }));
    /// let producer = Producer::new(LocalStream::new("events", 2), ProducerConfig::default());
    /// match producer.try_send(&search(1)) {
    ///     Ok(_receipt) => {}
    ///     Err(SendError::BufferFull { buffered_bytes, budget_bytes, .. }) => {
    ///         eprintln!("shedding a search: {buffered_bytes} of {budget_bytes} bytes buffered");
    ///     }
    ///     Err(e) => panic!("{e}"),
    /// }
    /// producer.close().await;
    /// # });
    /// ```
    pub fn try_send(&self, event: &Envelope) -> Result<Receipt, SendError> {
        let record = self.prepare_event(event)?;
        self.try_enqueue(record)
    }

    /// Queues pre-serialized bytes under `partition_key` (for data that is not a
    /// FlyHigh envelope, or a dead letter being re-sent). Checks only the Kinesis
    /// limits: a partition key of 1 to 256 characters, at most 1 MiB with its key.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use flyhigh_producer::{LocalStream, Producer, ProducerConfig, SendError};
    ///
    /// let producer = Producer::new(LocalStream::new("events", 2), ProducerConfig::default());
    /// let receipt = producer.send_record("FH0123-20261201", br#"{"replayed":true}"#.to_vec()).await?;
    /// producer.flush().await?;
    /// assert!(receipt.await.is_ok());
    /// assert!(matches!(
    ///     producer.send_record("", b"{}".to_vec()).await,
    ///     Err(SendError::Invalid(errors)) if errors.0[0].field == "(partition_key)"
    /// ));
    /// # producer.close().await;
    /// # Ok::<(), SendError>(())
    /// # }).unwrap();
    /// ```
    pub async fn send_record(
        &self,
        partition_key: &str,
        data: Vec<u8>,
    ) -> Result<Receipt, SendError> {
        let record = self.prepare_record(partition_key, data)?;
        self.enqueue(record).await
    }

    /// Like [`Producer::send_record`], but fails with [`SendError::BufferFull`]
    /// instead of waiting.
    pub fn try_send_record(
        &self,
        partition_key: &str,
        data: Vec<u8>,
    ) -> Result<Receipt, SendError> {
        let record = self.prepare_record(partition_key, data)?;
        self.try_enqueue(record)
    }

    fn prepare_event(&self, event: &Envelope) -> Result<UserRecord, SendError> {
        let data = event.to_json();
        if let Err(errors) = event.validate_encoded(data.len()) {
            Counters::add(&self.shared.counters.rejected, 1);
            return Err(SendError::Invalid(errors));
        }
        self.prepare_record(&event.partition_key(), data)
    }

    fn prepare_record(&self, partition_key: &str, data: Vec<u8>) -> Result<UserRecord, SendError> {
        let mut errors = Vec::new();
        let chars = partition_key.chars().count();
        if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
            errors.push(FieldError {
                field: "(partition_key)".into(),
                reason: format!("must be 1 to {MAX_PARTITION_KEY_CHARS} characters, got {chars}"),
            });
        }
        if data.len() + partition_key.len() > MAX_RECORD_BYTES {
            errors.push(FieldError {
                field: "(record)".into(),
                reason: format!(
                    "data plus partition key is {} bytes, over the {MAX_RECORD_BYTES}-byte Kinesis record limit",
                    data.len() + partition_key.len()
                ),
            });
        }
        if !errors.is_empty() {
            Counters::add(&self.shared.counters.rejected, 1);
            return Err(SendError::Invalid(ValidationErrors(errors)));
        }
        Ok(UserRecord::new(partition_key, data))
    }

    fn cost(record: &UserRecord) -> usize {
        record.size() + RECORD_OVERHEAD_BYTES
    }

    async fn enqueue(&self, record: UserRecord) -> Result<Receipt, SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let charge = self
            .shared
            .budget
            .charge(record.hash_key, Self::cost(&record))
            .await
            .ok_or(SendError::Closed)?;
        self.submit(record, charge)
    }

    fn try_enqueue(&self, record: UserRecord) -> Result<Receipt, SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let cost = Self::cost(&record);
        let charge = match self.shared.budget.try_charge(record.hash_key, cost) {
            Ok(charge) => charge,
            Err(Refused::Total { held, budget }) => {
                return Err(SendError::BufferFull {
                    record_bytes: cost,
                    buffered_bytes: held,
                    budget_bytes: budget,
                    shard: None,
                });
            }
            Err(Refused::Shard {
                shard_id,
                held,
                share,
            }) => {
                return Err(SendError::BufferFull {
                    record_bytes: cost,
                    buffered_bytes: held,
                    budget_bytes: share,
                    shard: Some(shard_id),
                });
            }
            Err(Refused::Closed) => return Err(SendError::Closed),
        };
        self.submit(record, charge)
    }

    fn submit(&self, record: UserRecord, charge: Charge) -> Result<Receipt, SendError> {
        let (reply, rx) = oneshot::channel();
        let member = Member::new(
            reply,
            charge,
            record.hash_key,
            tokio::time::Instant::now() + self.shared.record_ttl,
            Utc::now(),
        );
        // Counted before it is sent: the worker may resolve it (and count it down)
        // before this returns.
        Counters::add(&self.shared.counters.buffered_records, 1);
        if self
            .shared
            .commands
            .send(Command::Record(Pending { record, member }))
            .is_err()
        {
            self.shared
                .counters
                .buffered_records
                .fetch_sub(1, Ordering::Relaxed);
            return Err(SendError::Closed);
        }
        Counters::add(&self.shared.counters.accepted, 1);
        Ok(Receipt { rx })
    }

    /// Sends every record accepted so far and waits until each is written or
    /// dead-lettered; returns what happened since the previous flush.
    pub async fn flush(&self) -> Result<FlushReport, SendError> {
        let (ack, done) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Flush(ack))
            .map_err(|_| SendError::Closed)?;
        done.await.map_err(|_| SendError::Closed)
    }

    /// Stops accepting records, writes everything accepted (retrying within each
    /// record's time-to-live, dead-lettering what expires), and stops the worker.
    /// Returns what happened since the previous flush. Later sends fail with
    /// [`SendError::Closed`]; closing twice waits for the first close.
    pub async fn close(&self) -> FlushReport {
        self.close_inner(None).await
    }

    /// Like [`Producer::close`], but after `deadline` every record still unsent is
    /// dead-lettered (reason `closed`) instead of retried: for shutdowns with a
    /// time limit (a container's SIGTERM grace period). A request already in flight
    /// at the deadline is still awaited (at most
    /// [`ProducerConfig::request_timeout`]), because its records may be written.
    ///
    /// ```no_run
    /// # async fn shutdown(producer: flyhigh_producer::Producer) {
    /// use std::time::Duration;
    /// // On SIGTERM, with 30 s of grace: drain for 25 s, dead-letter the rest.
    /// let report = producer.close_within(Duration::from_secs(25)).await;
    /// if report.dead_lettered > 0 {
    ///     eprintln!("{} records dead-lettered at shutdown", report.dead_lettered);
    /// }
    /// # }
    /// ```
    pub async fn close_within(&self, deadline: Duration) -> FlushReport {
        self.close_inner(Some(deadline)).await
    }

    async fn close_inner(&self, deadline: Option<Duration>) -> FlushReport {
        self.shared.closed.store(true, Ordering::SeqCst);
        let (ack, report) = oneshot::channel();
        let sent = self
            .shared
            .commands
            .send(Command::Close {
                deadline: deadline.map(|d| tokio::time::Instant::now() + d),
                ack,
            })
            .is_ok();
        let report = if sent {
            report.await.unwrap_or_default()
        } else {
            FlushReport::default()
        };
        let handle = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match handle {
            Some(handle) => {
                if let Err(e) = handle.await
                    && e.is_panic()
                {
                    // A panic in the worker is a bug: surface it, never report success.
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            None => {
                let mut done = self.shared.done.clone();
                let _ = done.wait_for(|d| *d).await;
            }
        }
        report
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Bytes of the budget held by accepted, unresolved records (including dead
    /// letters waiting for their sink).
    pub fn buffered_bytes(&self) -> usize {
        self.shared.budget.held()
    }

    /// A snapshot of the metrics (also logged every
    /// [`ProducerConfig::metrics_interval`]).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use flyhigh_producer::{LocalStream, Producer, ProducerConfig};
    ///
    /// let producer = Producer::new(LocalStream::new("events", 1), ProducerConfig::default());
    /// for i in 0..100 {
    ///     producer.send_record("FH0123-20261201", format!("{{\"n\":{i}}}").into_bytes()).await.unwrap();
    /// }
    /// producer.flush().await.unwrap();
    /// let m = producer.metrics();
    /// assert_eq!(m.user_records_written, 100);
    /// assert_eq!(m.kinesis_records_written, 1); // one aggregate
    /// assert_eq!(m.user_records_per_kinesis_record(), 100.0);
    /// assert_eq!(m.buffered_bytes, 0);
    /// # producer.close().await;
    /// # });
    /// ```
    /// Throttled records so far (the `throttles` metric): one counter read, cheap
    /// enough for every request of a server built on the producer.
    pub fn throttles(&self) -> u64 {
        self.shared.counters.throttles.load(Ordering::Relaxed)
    }

    /// A snapshot of every metric.
    pub fn metrics(&self) -> ProducerMetrics {
        self.shared.counters.snapshot(
            self.buffered_bytes() as u64,
            self.shared.budget.total_bytes() as u64,
        )
    }
}

#[cfg(test)]
mod tests;
