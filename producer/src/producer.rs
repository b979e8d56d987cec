//! [`Producer`]: validate, serialize, queue, collect into requests, put, retry.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flyhigh_schemas::{Envelope, ValidationErrors};
use rand::Rng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::limits::{self, MAX_RECORD_BYTES, entry_size};
use crate::transport::{
    Entry, EntryFailure, EntryResult, Transport, TransportError, classify_entry_failure,
};

/// Producer settings. Every default is chosen for a booking app on a phone-scale
/// backend; see each field.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Events queued before `send` waits (back-pressure). Default 10,000: at the
    /// 16 KiB event limit that is at most 160 MiB, usually ~3 MiB.
    pub queue_capacity: usize,
    /// How long a record may wait for a fuller request. Default 50 ms: short enough for
    /// near-real-time inventory, long enough to fill requests under load.
    pub linger: Duration,
    /// Put attempts per record before it is reported failed. Default 8 (with backoff
    /// that is about 15 s of retrying).
    pub max_attempts: u32,
    /// First backoff. Default 50 ms.
    pub backoff_base: Duration,
    /// Largest backoff. Default 5 s.
    pub backoff_max: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            queue_capacity: 10_000,
            linger: Duration::from_millis(50),
            max_attempts: 8,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why `send` did not accept an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The event is invalid; nothing was sent. Fix the fields named.
    #[error("invalid event: {0}")]
    Invalid(ValidationErrors),
    /// The producer was closed.
    #[error("producer is closed")]
    Closed,
}

/// A record that could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    /// Its partition key.
    pub partition_key: String,
    /// Its bytes.
    pub data: Vec<u8>,
    /// The last error.
    pub reason: String,
}

/// What a flush or close achieved since the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Records written.
    pub records_sent: u64,
    /// Records that could not be written, with the reason (never dropped silently).
    pub failed: Vec<FailedRecord>,
}

/// Counters an operator can read at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Events accepted by `send`.
    pub accepted: u64,
    /// Events rejected as invalid.
    pub rejected: u64,
    /// Records written.
    pub sent: u64,
    /// Records given up.
    pub failed: u64,
    /// PutRecords requests made.
    pub requests: u64,
    /// Records retried (per attempt).
    pub retries: u64,
    /// Throttling answers (whole requests or records).
    pub throttles: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    throttles: AtomicU64,
}

enum Command {
    Record(Entry),
    Flush(oneshot::Sender<FlushReport>),
}

/// The async producer. Cloning is not needed: share it behind an `Arc`; `send`
/// takes `&self`.
pub struct Producer {
    commands: mpsc::Sender<Command>,
    worker: JoinHandle<FlushReport>,
    counters: Arc<Counters>,
}

impl Producer {
    /// A producer writing through `transport`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the worker is spawned on the current one).
    pub fn new<T: Transport>(transport: T, config: ProducerConfig) -> Producer {
        let (commands, rx) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker = tokio::spawn(
            Worker {
                transport,
                config,
                counters: counters.clone(),
                report: FlushReport::default(),
            }
            .run(rx),
        );
        Producer {
            commands,
            worker,
            counters,
        }
    }

    /// Validates and queues one event; waits while the queue is full.
    ///
    /// Returns [`SendError::Invalid`] with every offending field for an invalid event,
    /// which is then not sent.
    pub async fn send(&self, event: &Envelope) -> Result<(), SendError> {
        let entry = self.prepare(event)?;
        self.commands
            .send(Command::Record(entry))
            .await
            .map_err(|_| SendError::Closed)?;
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn prepare(&self, event: &Envelope) -> Result<Entry, SendError> {
        let data = event.to_json();
        let entry = Entry {
            partition_key: event.partition_key(),
            data,
        };
        let checked = event.validate_encoded(entry.data.len()).and_then(|()| {
            if entry_size(&entry) > MAX_RECORD_BYTES {
                Err(ValidationErrors(vec![flyhigh_schemas::FieldError {
                    field: "(event)".into(),
                    reason: format!("record exceeds {MAX_RECORD_BYTES} bytes"),
                }]))
            } else {
                Ok(())
            }
        });
        match checked {
            Ok(()) => Ok(entry),
            Err(errors) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Invalid(errors))
            }
        }
    }

    /// Writes everything queued so far; returns what was written or failed since the
    /// previous flush.
    pub async fn flush(&self) -> Result<FlushReport, SendError> {
        let (ack, done) = oneshot::channel();
        self.commands
            .send(Command::Flush(ack))
            .await
            .map_err(|_| SendError::Closed)?;
        done.await.map_err(|_| SendError::Closed)
    }

    /// Flushes and stops the worker. Dropping a producer without closing it still
    /// writes what is queued, but nobody learns about records that failed.
    pub async fn close(self) -> FlushReport {
        drop(self.commands);
        match self.worker.await {
            Ok(report) => report,
            // A panic in the worker is a bug; surface it rather than report nothing.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only when the runtime itself is shutting down.
            Err(_) => FlushReport::default(),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> ProducerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProducerStats {
            accepted: get(&c.accepted),
            rejected: get(&c.rejected),
            sent: get(&c.sent),
            failed: get(&c.failed),
            requests: get(&c.requests),
            retries: get(&c.retries),
            throttles: get(&c.throttles),
        }
    }
}

struct Worker<T> {
    transport: T,
    config: ProducerConfig,
    counters: Arc<Counters>,
    report: FlushReport,
}

impl<T: Transport> Worker<T> {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) -> FlushReport {
        let mut pending: VecDeque<Entry> = VecDeque::new();
        let mut pending_bytes = 0usize;
        let mut deadline: Option<Instant> = None;
        loop {
            let command = match deadline {
                Some(at) => tokio::select! {
                    c = rx.recv() => c,
                    () = tokio::time::sleep_until(at) => {
                        self.drain(&mut pending, &mut pending_bytes, true).await;
                        deadline = None;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            match command {
                Some(Command::Record(entry)) => {
                    pending_bytes += entry_size(&entry);
                    pending.push_back(entry);
                    deadline.get_or_insert_with(|| Instant::now() + self.config.linger);
                    if limits::request_full(pending.len(), pending_bytes) {
                        self.drain(&mut pending, &mut pending_bytes, false).await;
                        deadline =
                            (!pending.is_empty()).then(|| Instant::now() + self.config.linger);
                    }
                }
                Some(Command::Flush(ack)) => {
                    self.drain(&mut pending, &mut pending_bytes, true).await;
                    deadline = None;
                    let _ = ack.send(std::mem::take(&mut self.report));
                }
                None => {
                    self.drain(&mut pending, &mut pending_bytes, true).await;
                    return std::mem::take(&mut self.report);
                }
            }
        }
    }

    /// Sends full requests from `pending`, and the remainder too when `all`.
    async fn drain(&mut self, pending: &mut VecDeque<Entry>, pending_bytes: &mut usize, all: bool) {
        while !pending.is_empty() && (all || limits::request_full(pending.len(), *pending_bytes)) {
            let request = limits::take_request(pending);
            *pending_bytes -= request.iter().map(entry_size).sum::<usize>();
            self.put_with_retries(request).await;
        }
    }

    /// Puts a request, retrying only the records that failed, until all are written
    /// or out of attempts.
    async fn put_with_retries(&mut self, mut request: Vec<Entry>) {
        let mut attempt = 1;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let mut retry = Vec::new();
            let mut last_error = String::new();
            match self.transport.put_records(&request).await {
                Ok(results) => {
                    for (entry, result) in request.into_iter().zip(results) {
                        match result {
                            EntryResult::Ok { .. } => {
                                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                                self.report.records_sent += 1;
                            }
                            EntryResult::Failed { code, message } => {
                                let reason = format!("{code}: {message}");
                                match classify_entry_failure(&code) {
                                    EntryFailure::Permanent => self.fail(entry, reason),
                                    kind => {
                                        if kind == EntryFailure::Throttled {
                                            self.counters.throttles.fetch_add(1, Ordering::Relaxed);
                                        }
                                        last_error = reason;
                                        retry.push(entry);
                                    }
                                }
                            }
                        }
                    }
                }
                Err(TransportError::Permanent(reason)) => {
                    for entry in request {
                        self.fail(entry, reason.clone());
                    }
                }
                Err(e) => {
                    if matches!(e, TransportError::Throttled(_)) {
                        self.counters.throttles.fetch_add(1, Ordering::Relaxed);
                    }
                    last_error = e.to_string();
                    retry = request;
                }
            }
            if retry.is_empty() {
                return;
            }
            if attempt >= self.config.max_attempts {
                tracing::warn!(records = retry.len(), attempts = attempt, error = %last_error, "giving up on records");
                for entry in retry {
                    self.fail(entry, format!("after {attempt} attempts: {last_error}"));
                }
                return;
            }
            self.counters
                .retries
                .fetch_add(retry.len() as u64, Ordering::Relaxed);
            tokio::time::sleep(backoff(&self.config, attempt)).await;
            attempt += 1;
            request = retry;
        }
    }

    fn fail(&mut self, entry: Entry, reason: String) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        self.report.failed.push(FailedRecord {
            partition_key: entry.partition_key,
            data: entry.data,
            reason,
        });
    }
}

/// Full-jitter exponential backoff: uniform in `[0, min(max, base · 2^(attempt-1))]`,
/// so that many producers throttled together do not retry together.
fn backoff(config: &ProducerConfig, attempt: u32) -> Duration {
    let cap = config
        .backoff_base
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(config.backoff_max);
    let millis = cap.as_millis().max(1) as u64;
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
}

#[cfg(test)]
mod tests;
