//! [`Producer`]: the async handle applications hold. It validates and serializes in
//! the caller's task, charges the record to the byte budget (waiting or failing when
//! it is spent), and hands it to the worker ([`crate::worker`]) that aggregates,
//! collects, puts and retries. Each accepted record gets a [`Receipt`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::Utc;
use flyhigh_schemas::{Envelope, FieldError, ValidationErrors};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot, watch};

use crate::aggregate::UserRecord;
use crate::config::{ProducerConfig, RECORD_OVERHEAD_BYTES};
use crate::dead_letter::DeadLetterReason;
use crate::limits::{MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES};
use crate::metrics::{Counters, ProducerMetrics};
use crate::transport::Transport;
use crate::worker::{Command, Member, Pending, Worker};

/// Why `send` or `try_send` did not accept a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The event is invalid; nothing was sent. Fix the fields named.
    #[error("invalid event: {0}")]
    Invalid(ValidationErrors),
    /// `try_send` only: the buffer budget is spent (Kinesis is slower than the
    /// application, or throttling). Wait, shed load, or use `send`, which waits.
    #[error(
        "producer buffer full: {buffered_bytes} of {budget_bytes} bytes held; the record needs {record_bytes}"
    )]
    BufferFull {
        /// What the record would have charged.
        record_bytes: usize,
        /// Bytes held now.
        buffered_bytes: usize,
        /// The budget.
        budget_bytes: usize,
    },
    /// The producer was closed.
    #[error("producer is closed")]
    Closed,
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The shard.
    pub shard_id: Arc<str>,
    /// The Kinesis record's sequence number (shared by an aggregate's user records).
    pub sequence_number: Arc<str>,
    /// The user record's index within its aggregate; `None` when it was sent as a
    /// plain record. Consumers see it as the sub-sequence number.
    pub sub_sequence_number: Option<u32>,
}

/// Why a record was not written. In every case but `WorkerStopped` the record is
/// in the dead-letter sink (or the error says the sink failed too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// Given up and stored in the dead-letter sink.
    #[error("dead-lettered ({}) after {attempts} attempts: {error}", reason.as_str())]
    DeadLettered {
        /// Why.
        reason: DeadLetterReason,
        /// The last error.
        error: String,
        /// Put attempts made.
        attempts: u32,
    },
    /// Given up, and the dead-letter sink failed to store it: this receipt is the
    /// only trace left, so the application must keep or resend the record itself.
    #[error("dead-letter sink failed ({sink_error}) for a record given up ({}): {error}", reason.as_str())]
    DeadLetterFailed {
        /// Why it was given up.
        reason: DeadLetterReason,
        /// The last error.
        error: String,
        /// The sink's error.
        sink_error: String,
    },
    /// The worker stopped before deciding (a bug: it panicked); the record's fate is
    /// unknown.
    #[error("the producer worker stopped before the record was resolved")]
    WorkerStopped,
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

/// What a flush or close achieved since the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// User records written.
    pub records_written: u64,
    /// User records dead-lettered.
    pub dead_lettered: u64,
    /// The last reason a record was dead-lettered, if any.
    pub last_error: Option<String>,
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
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
            .field("budget_bytes", &self.shared.budget_bytes)
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
        let budget_bytes = config
            .buffer_budget_bytes
            .max(MAX_RECORD_BYTES + RECORD_OVERHEAD_BYTES);
        let budget = Arc::new(Semaphore::new(budget_bytes));
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
            budget_bytes,
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
                budget_bytes,
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
        let permit = self
            .shared
            .budget
            .clone()
            .acquire_many_owned(Self::cost(&record) as u32)
            .await
            .map_err(|_| SendError::Closed)?;
        self.submit(record, permit)
    }

    fn try_enqueue(&self, record: UserRecord) -> Result<Receipt, SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let cost = Self::cost(&record);
        let permit = match self
            .shared
            .budget
            .clone()
            .try_acquire_many_owned(cost as u32)
        {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                return Err(SendError::BufferFull {
                    record_bytes: cost,
                    buffered_bytes: self.buffered_bytes(),
                    budget_bytes: self.shared.budget_bytes,
                });
            }
            Err(TryAcquireError::Closed) => return Err(SendError::Closed),
        };
        self.submit(record, permit)
    }

    fn submit(
        &self,
        record: UserRecord,
        permit: OwnedSemaphorePermit,
    ) -> Result<Receipt, SendError> {
        let (reply, rx) = oneshot::channel();
        let member = Member::new(
            reply,
            permit,
            record.hash_key,
            tokio::time::Instant::now() + self.shared.record_ttl,
            Utc::now(),
        );
        self.shared
            .commands
            .send(Command::Record(Pending { record, member }))
            .map_err(|_| SendError::Closed)?;
        Counters::add(&self.shared.counters.accepted, 1);
        Counters::add(&self.shared.counters.buffered_records, 1);
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

    /// Bytes of the budget held by accepted, unresolved records.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.budget_bytes
            - self
                .shared
                .budget
                .available_permits()
                .min(self.shared.budget_bytes)
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
    pub fn metrics(&self) -> ProducerMetrics {
        self.shared.counters.snapshot(
            self.buffered_bytes() as u64,
            self.shared.budget_bytes as u64,
        )
    }
}

#[cfg(test)]
mod tests;
