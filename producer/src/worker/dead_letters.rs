//! Dead letters off the worker: the sink runs on its own task behind a bounded
//! queue.
//!
//! The worker hands each batch it gives up on to the queue as a [`Job`] (the
//! Kinesis record's bytes and, per user record, when it was accepted); the
//! batch's members stay with the worker, holding their budget charge, until the
//! task reports the letters stored. So a slow sink (an fsync, an SQS call) never
//! stalls a shard, and expired records waiting for their sink still count
//! against the budget: `send` waits rather than the process grow.
//!
//! The task takes jobs in order, up to [`WRITE_BYTES`] of records per sink call (a
//! file sink syncs once per call), copies each user record out of its aggregate
//! only then, and drops the bytes once the call returns: on top of the budget it
//! holds at most one call's letters.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use tokio::sync::mpsc;

use super::Worker;
use super::routing::Batch;
use crate::budget::Charge;
use crate::dead_letter::{DeadLetter, DeadLetterReason, DeadLetterSink};
use crate::exchange::{DeliveryError, Member};
use crate::metrics::Counters;
use crate::transport::Entry;
use crate::transport::Transport;

/// Jobs the queue holds before the worker keeps further ones in its backlog
/// (their bytes count against the budget either way).
pub(crate) const QUEUE_JOBS: usize = 64;
/// Record bytes the task gathers into one sink call (it stops once it holds this
/// many, so a call holds less than this plus one record of at most 1 MiB).
pub(crate) const WRITE_BYTES: usize = 1024 * 1024;

/// One batch given up on, on its way to the sink.
pub(crate) struct Job {
    pub id: u64,
    /// The Kinesis record (an aggregate or a plain record); `None` when it was
    /// lost with a failed request task.
    pub entry: Option<Entry>,
    pub aggregated: bool,
    /// When each user record was accepted, in aggregate order.
    pub accepted_at: Vec<DateTime<Utc>>,
    pub reason: DeadLetterReason,
    pub error: String,
    pub attempts: u32,
}

impl Job {
    pub fn bytes(&self) -> usize {
        self.entry.as_ref().map_or(0, crate::limits::entry_size)
    }

    /// The letters, one per user record: copied out of the aggregate here, on the
    /// sink task, one job at a time.
    fn letters(self, now: DateTime<Utc>) -> Vec<DeadLetter> {
        let records: Vec<(String, Vec<u8>)> = match self.entry {
            Some(entry) if self.aggregated => match deaggregate(&entry.data) {
                Ok(Deaggregated::Aggregated(records)) => records
                    .iter()
                    .map(|r| (r.partition_key.to_string(), r.data.to_vec()))
                    .collect(),
                // Our own aggregates always decode; keep the bytes whole if not.
                _ => vec![(entry.partition_key, entry.data)],
            },
            Some(entry) => vec![(entry.partition_key, entry.data)],
            None => Vec::new(),
        };
        let (reason, error, attempts) = (self.reason, self.error, self.attempts);
        self.accepted_at
            .into_iter()
            .zip(
                records
                    .into_iter()
                    .chain(std::iter::repeat_with(|| (String::new(), Vec::new()))),
            )
            .map(|(accepted_at, (partition_key, data))| DeadLetter {
                partition_key,
                data,
                reason,
                error: error.clone(),
                attempts,
                accepted_at,
                dead_lettered_at: now,
            })
            .collect()
    }
}

/// What the task reports for each job: stored, or the sink's error.
pub(crate) type Stored = (u64, Result<(), String>);

/// Starts the sink task: it reads jobs until the queue's sender is dropped, and
/// reports each on `stored`.
pub(crate) fn spawn(
    sink: Arc<dyn DeadLetterSink>,
    counters: Arc<Counters>,
    stored: mpsc::UnboundedSender<Stored>,
) -> (mpsc::Sender<Job>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_JOBS);
    let handle = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut bytes = first.bytes();
            let mut jobs = vec![first];
            while bytes < WRITE_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        bytes += job.bytes();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
            let now = Utc::now();
            let letters: Vec<DeadLetter> = jobs.into_iter().flat_map(|j| j.letters(now)).collect();
            let records = letters.len();
            let result = sink.write(letters).await.map_err(|e| e.to_string());
            counters.dead_letter_writes.fetch_add(1, Ordering::Relaxed);
            counters
                .dead_letter_queue_bytes
                .fetch_sub(bytes as u64, Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::error!(records, error = %e, "dead-letter sink failed; the records' receipts carry them");
            }
            for id in ids {
                if stored.send((id, result.clone())).is_err() {
                    return;
                }
            }
        }
    });
    (tx, handle)
}

// The worker's side: what it keeps while the task writes.

/// A batch handed to the sink task: its members wait here, holding their budget
/// charge, until the task says the letters are stored.
pub(super) struct Waiting {
    pub(super) members: Vec<Member>,
    /// Their budget charge, given back once the letters are stored.
    _charge: Option<Charge>,
    reason: DeadLetterReason,
    error: String,
    attempts: u32,
}

/// The worker's side of the dead-letter task.
pub(super) struct DeadLetters {
    pub(super) queue: Option<mpsc::Sender<Job>>,
    /// Jobs that did not fit in the queue (their bytes count against the budget).
    pub(super) backlog: VecDeque<Job>,
    pub(super) waiting: HashMap<u64, Waiting>,
    pub(super) next_id: u64,
    pub(super) stored: mpsc::UnboundedReceiver<Stored>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

impl<T: Transport> Worker<T> {
    /// Hands a batch to the dead-letter task; its members wait for the answer.
    pub(super) fn dead_letter(&mut self, batch: Batch, reason: DeadLetterReason) {
        let error = if batch.last_error.is_empty() {
            match reason {
                DeadLetterReason::Expired => {
                    "time-to-live passed before the first attempt".to_string()
                }
                DeadLetterReason::Closed => {
                    "producer closed before the record was sent".to_string()
                }
                _ => "rejected".to_string(),
            }
        } else {
            batch.last_error
        };
        tracing::warn!(records = batch.members.len(), reason = reason.as_str(), attempts = batch.attempts, error = %error, "dead-lettering records");
        let id = self.dead.next_id;
        self.dead.next_id += 1;
        let job = Job {
            id,
            entry: batch.entry,
            aggregated: batch.aggregated,
            accepted_at: batch.members.iter().map(|m| m.accepted_at).collect(),
            reason,
            error: error.clone(),
            attempts: batch.attempts,
        };
        self.counters
            .dead_letter_queue_bytes
            .fetch_add(job.bytes() as u64, Ordering::Relaxed);
        self.dead.backlog.push_back(job);
        self.dead.waiting.insert(
            id,
            Waiting {
                members: batch.members,
                _charge: batch.charge,
                reason,
                error,
                attempts: batch.attempts,
            },
        );
    }

    /// Moves backlog jobs into the sink's queue while it has room (it frees room as
    /// the task takes jobs, and each stored answer wakes the loop to try again).
    pub(super) fn send_dead_letters(&mut self) {
        if self.dead.backlog.is_empty() {
            return;
        }
        let Some(queue) = self.dead.queue.clone() else {
            // Only once the task stopped: nothing can store these.
            self.sink_task_stopped();
            return;
        };
        while let Some(job) = self.dead.backlog.pop_front() {
            match queue.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => {
                    self.dead.backlog.push_front(job);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(job)) => {
                    // The task is gone (it panicked): the receipts must say so.
                    let bytes = job.bytes() as u64;
                    self.counters
                        .dead_letter_queue_bytes
                        .fetch_sub(bytes, Ordering::Relaxed);
                    self.stored((job.id, Err("the dead-letter task stopped".into())));
                }
            }
        }
    }

    /// Every letter still waiting fails: the sink task stopped.
    pub(super) fn sink_task_stopped(&mut self) {
        tracing::error!(
            batches = self.dead.waiting.len(),
            "the dead-letter task stopped; the records' receipts carry them"
        );
        self.dead.queue = None;
        let queued: u64 = self.dead.backlog.drain(..).map(|j| j.bytes() as u64).sum();
        self.counters
            .dead_letter_queue_bytes
            .fetch_sub(queued, Ordering::Relaxed);
        let ids: Vec<u64> = self.dead.waiting.keys().copied().collect();
        for id in ids {
            self.stored((id, Err("the dead-letter task stopped".into())));
        }
    }

    /// The sink task stored (or failed to store) a job's letters: resolve them.
    pub(super) fn stored(&mut self, (id, result): Stored) {
        let Some(waiting) = self.dead.waiting.remove(&id) else {
            return;
        };
        let n = waiting.members.len() as u64;
        if result.is_err() {
            Counters::add(&self.counters.dead_letter_failures, n);
        }
        for member in waiting.members {
            let outcome = match &result {
                Ok(()) => DeliveryError::DeadLettered {
                    reason: waiting.reason,
                    error: waiting.error.clone(),
                    attempts: waiting.attempts,
                },
                Err(sink) => DeliveryError::DeadLetterFailed {
                    reason: waiting.reason,
                    error: waiting.error.clone(),
                    sink_error: sink.clone(),
                },
            };
            self.resolve(member, Err(outcome));
        }
        Counters::add(&self.counters.dead_lettered, n);
        self.report.dead_lettered += n;
        self.report.last_error = Some(format!("{}: {}", waiting.reason.as_str(), waiting.error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::MemoryDeadLetters;
    use flyhigh_schemas::aggregation::AggregateBuilder;

    #[tokio::test]
    async fn jobs_become_one_letter_per_user_record_with_its_own_bytes_and_key() {
        let mut builder = AggregateBuilder::new();
        builder.push("FH1", None, b"one");
        builder.push("FH2", None, b"two");
        let data = builder.finish();
        let sink = MemoryDeadLetters::new();
        let (stored_tx, mut stored) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let (tx, task) = spawn(Arc::new(sink.clone()), counters.clone(), stored_tx);
        let at: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let job = Job {
            id: 7,
            entry: Some(Entry::new("FH1", data)),
            aggregated: true,
            accepted_at: vec![at, at],
            reason: DeadLetterReason::Expired,
            error: "ttl".into(),
            attempts: 3,
        };
        counters
            .dead_letter_queue_bytes
            .fetch_add(job.bytes() as u64, Ordering::Relaxed);
        tx.send(job).await.unwrap();
        assert_eq!(stored.recv().await, Some((7, Ok(()))));
        drop(tx);
        task.await.unwrap();
        let letters = sink.letters();
        assert_eq!(letters.len(), 2);
        assert_eq!(
            (letters[0].partition_key.as_str(), &letters[0].data[..]),
            ("FH1", &b"one"[..])
        );
        assert_eq!(
            (letters[1].partition_key.as_str(), &letters[1].data[..]),
            ("FH2", &b"two"[..])
        );
        assert_eq!(letters[1].attempts, 3);
        assert_eq!(counters.dead_letter_queue_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(counters.dead_letter_writes.load(Ordering::Relaxed), 1);
    }
}
