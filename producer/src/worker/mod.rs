//! The producer's worker: one task that owns every buffered record, and a thin
//! select loop over its pure pieces.
//!
//! ```text
//! records ─► routing: state of the key's shard ─► open aggregate ──seal──► queue
//!                                                 (size or linger)          │
//!   requests ◄── dispatch: batches whose shard's buckets allow them and ◄───┘
//!      │         whose keys are free (≤ 500 records, ≤ 5 MiB)
//!      ▼
//!   put (≤ max_requests_in_flight) ─► outcome: per record written / retry /
//!      reject, per shard one rate signal (AIMD in `rate`)
//!        ─► written: resolve receipts, give back budget
//!        ─► retry: back to the front of its queue, shard backs off
//!        ─► reject, expired, closed: dead_letters task (bounded queue; the
//!           budget is given back once the sink stored them)
//! ```
//!
//! The pieces, each unit-tested on its own:
//! - [`routing`]: shard states, which state a key goes to, resharding;
//! - [`dispatch`]: the per-key dispatch plan (at most one batch per key in flight,
//!   and in order);
//! - [`outcome`]: put-outcome classification and the per-response rate signal;
//! - [`epochs`]: what a flush waits for;
//! - [`dead_letters`]: the sink task and its queue.
//!
//! Per-key order: a batch is only put when no batch holding one of its keys is in
//! flight, and a failed batch goes back to the front of its queue, ahead of every
//! later batch. So for any partition key at most one batch is in flight, and batches
//! are written in the order their records were accepted. (PutRecords itself does
//! not promise order within a request, which is why two batches sharing a key never
//! travel together.)

mod dead_letters;
mod dispatch;
mod epochs;
mod outcome;
mod routing;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::budget::{Budget, Charge};
use crate::config::ProducerConfig;
use crate::dead_letter::DeadLetterReason;
use crate::exchange::{Command, Delivery, DeliveryError, FlushReport, Member, Outcome, Pending};
use crate::metrics::{Counters, EmfEmitter, ShardMetrics, UNMAPPED_SHARD};
use crate::rate::{FALLBACK_MAX_SHARE, ShardLimits, ShardRate, Signal, backoff};
use crate::shard_map::ShardMap;
use crate::transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};

use dead_letters::{Job, Stored};
use dispatch::{Dispatcher, SCAN_DEPTH};
use epochs::Epochs;
use outcome::{Fate, classify, signals};
use routing::{Batch, ShardState, remap};

/// Records taken from the channel per wake-up.
const RECV_BATCH: usize = 1024;
/// Shortest interval between two map reloads triggered by unexpected shards.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a ListShards may take (the first load and every refresh).
const LIST_SHARDS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often per-shard figures are published for [`crate::Producer::metrics`].
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

type PutOutcome = (
    u64,
    Vec<Entry>,
    Result<Vec<EntryResult>, TransportError>,
    Duration,
);

struct InFlight {
    batches: Vec<(usize, Batch)>,
    sent_at: Instant,
}

/// A batch handed to the sink task: its members wait here, holding their budget
/// charge, until the task says the letters are stored.
struct Waiting {
    members: Vec<Member>,
    /// Their budget charge, given back once the letters are stored.
    _charge: Option<Charge>,
    reason: DeadLetterReason,
    error: String,
    attempts: u32,
}

/// The worker's side of the dead-letter task.
struct DeadLetters {
    queue: Option<mpsc::Sender<Job>>,
    /// Jobs that did not fit in the queue (their bytes count against the budget).
    backlog: VecDeque<Job>,
    waiting: HashMap<u64, Waiting>,
    next_id: u64,
    stored: mpsc::UnboundedReceiver<Stored>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Shard map loading: the first load, periodic refreshes, and refreshes on demand.
struct Refresh {
    /// Where a spawned `list_shards` reports; `running` while one runs.
    report: mpsc::UnboundedSender<Result<Vec<ShardInfo>, TransportError>>,
    running: bool,
    /// Consecutive failed map loads.
    failures: u32,
    next: Instant,
    last: Option<Instant>,
}

pub(crate) struct Worker<T> {
    transport: Arc<T>,
    config: ProducerConfig,
    limits: ShardLimits,
    counters: Arc<Counters>,
    budget: Arc<Budget>,
    rng: StdRng,
    states: Vec<ShardState>,
    map: Option<ShardMap>,
    /// `map` index → `states` index (or the catch-all state alone when `map` is None).
    routes: Vec<usize>,
    dispatcher: Dispatcher,
    requests: JoinSet<PutOutcome>,
    in_flight: HashMap<u64, InFlight>,
    next_request: u64,
    refresh: Refresh,
    epochs: Epochs<oneshot::Sender<FlushReport>>,
    report: FlushReport,
    dead: DeadLetters,
    closing: Option<Option<Instant>>,
    /// Every `close` caller (several clones may close at once) gets the report.
    close_acks: Vec<oneshot::Sender<FlushReport>>,
    next_metrics: Option<Instant>,
    emf: Option<EmfEmitter>,
    next_publish: Instant,
    published_at: Instant,
}

impl<T: Transport> Worker<T> {
    pub fn new(
        transport: Arc<T>,
        config: ProducerConfig,
        counters: Arc<Counters>,
        budget: Arc<Budget>,
        refreshed: mpsc::UnboundedSender<Result<Vec<ShardInfo>, TransportError>>,
    ) -> Worker<T> {
        let limits = config
            .shard_limits
            .unwrap_or_else(|| transport.shard_limits());
        let rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let (stored_tx, stored) = mpsc::unbounded_channel();
        let (queue, task) =
            dead_letters::spawn(config.dead_letters.clone(), counters.clone(), stored_tx);
        let emf = config
            .metrics_emf_namespace
            .as_ref()
            .map(|ns| EmfEmitter::new(ns.clone(), transport.stream_name()));
        let now = Instant::now();
        // The catch-all state: used until a map arrives (plain records, since an
        // aggregate could mix keys of different shards), rate-limited from one
        // shard's limits up to many shards' worth.
        let catch_all = ShardState::new(
            None,
            0,
            flyhigh_schemas::HashKey::MAX,
            false,
            config.aggregate_max_bytes,
            ShardRate::with_ceiling(limits, FALLBACK_MAX_SHARE, now),
        );
        Worker {
            transport,
            limits,
            counters,
            budget,
            rng,
            states: vec![catch_all],
            map: None,
            routes: vec![0],
            dispatcher: Dispatcher::default(),
            requests: JoinSet::new(),
            in_flight: HashMap::new(),
            next_request: 0,
            refresh: Refresh {
                report: refreshed,
                running: false,
                failures: 0,
                next: now,
                last: None,
            },
            epochs: Epochs::default(),
            report: FlushReport::default(),
            dead: DeadLetters {
                queue: Some(queue),
                backlog: VecDeque::new(),
                waiting: HashMap::new(),
                next_id: 0,
                stored,
                task: Some(task),
            },
            closing: None,
            close_acks: Vec::new(),
            next_metrics: config.metrics_interval.map(|i| now + i),
            emf,
            next_publish: now + PUBLISH_INTERVAL,
            published_at: now,
            config,
        }
    }

    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut refreshes: mpsc::UnboundedReceiver<Result<Vec<ShardInfo>, TransportError>>,
    ) {
        // The first map, before any record is routed.
        match tokio::time::timeout(LIST_SHARDS_TIMEOUT, self.transport.list_shards()).await {
            Ok(Ok(shards)) => self.apply_map(shards),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list shards; sending plain records until the shard map loads");
                self.refresh_failed();
            }
            Err(_) => {
                tracing::warn!(
                    "listing shards timed out; sending plain records until the shard map loads"
                );
                self.refresh_failed();
            }
        }
        let mut commands = Vec::with_capacity(RECV_BATCH);
        let mut channel_open = true;
        loop {
            let now = Instant::now();
            self.seal_lingering(now);
            self.expire(now);
            self.dispatch(now);
            self.send_dead_letters();
            self.resolve_flushes();
            self.maybe_refresh(now);
            self.maybe_publish(now);
            self.maybe_emit_metrics(now);
            if self.closing.is_some() && !self.has_work() {
                if channel_open {
                    // Refuse new records first, then take whatever raced in
                    // behind the close: a record is accepted only if its send
                    // reached the channel, and every one that did is received here
                    // (`recv` returns `None` once the closed channel is empty). A
                    // non-blocking drain left a window in which a record was
                    // accepted after the last look and dropped with the receiver.
                    rx.close();
                    while let Some(command) = rx.recv().await {
                        self.handle(command);
                    }
                    channel_open = false;
                    if self.has_work() {
                        continue;
                    }
                }
                break;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                biased;
                Some(done) = self.requests.join_next(), if !self.requests.is_empty() => {
                    match done {
                        Ok(outcome) => self.complete(outcome),
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => tracing::error!(error = %e, "put task cancelled"),
                    }
                }
                stored = self.dead.stored.recv(), if !self.dead.waiting.is_empty() => {
                    match stored {
                        Some(stored) => self.stored(stored),
                        // The task is gone (it panicked): the receipts must say so,
                        // and the close must not wait for it forever.
                        None => self.sink_task_stopped(),
                    }
                }
                Some(result) = refreshes.recv(), if self.refresh.running => {
                    self.refresh.running = false;
                    match result {
                        Ok(shards) => self.apply_map(shards),
                        Err(e) => {
                            tracing::warn!(error = %e, "reloading the shard map failed");
                            self.refresh_failed();
                        }
                    }
                }
                n = rx.recv_many(&mut commands, RECV_BATCH), if channel_open => {
                    if n == 0 {
                        channel_open = false;
                        self.begin_close(None);
                    }
                    for command in commands.drain(..) {
                        self.handle(command);
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.seal_all();
        // The sink task ends once its queue is closed and empty (it is: nothing
        // waits for it any more).
        self.dead.queue = None;
        if let Some(task) = self.dead.task.take() {
            let _ = task.await;
        }
        self.publish(Instant::now());
        let metrics = self.snapshot();
        metrics.trace();
        if let Some(emf) = &mut self.emf {
            for line in emf.documents(&metrics, chrono::Utc::now()) {
                println!("{line}");
            }
        }
        let report = std::mem::take(&mut self.report);
        for ack in self.epochs.drain() {
            let _ = ack.send(FlushReport::default());
        }
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(report.clone());
        }
    }

    fn snapshot(&self) -> crate::ProducerMetrics {
        self.counters
            .snapshot(self.budget.held() as u64, self.budget.total_bytes() as u64)
    }

    fn has_work(&self) -> bool {
        !self.requests.is_empty()
            || !self.dead.waiting.is_empty()
            || self.states.iter().any(ShardState::has_work)
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Record(pending) => self.add(pending),
            Command::Flush(ack) => {
                self.seal_all();
                self.epochs.flush(ack);
            }
            Command::Close { deadline, ack } => {
                self.close_acks.push(ack);
                self.begin_close(deadline);
            }
        }
    }

    fn begin_close(&mut self, deadline: Option<Instant>) {
        match self.closing {
            // A deadline given later still applies.
            Some(Some(_)) => {}
            _ => self.closing = Some(deadline),
        }
        self.seal_all();
    }

    fn add(&mut self, pending: Pending) {
        let Pending { record, mut member } = pending;
        member.epoch = self.epochs.admit();
        let index = match &self.map {
            Some(map) => self.routes[map.index_of(record.hash_key)],
            None => self.routes[0],
        };
        self.states[index].add(record, member, Instant::now(), self.config.linger);
    }

    fn seal_all(&mut self) {
        for state in &mut self.states {
            state.seal();
        }
    }

    fn seal_lingering(&mut self, now: Instant) {
        for state in &mut self.states {
            if state.linger_deadline.is_some_and(|d| d <= now) {
                state.seal();
            }
        }
    }

    /// Dead-letters queued batches whose oldest record outlived its time-to-live,
    /// and everything unsent once a close deadline passed.
    fn expire(&mut self, now: Instant) {
        let close_passed = matches!(self.closing, Some(Some(d)) if d <= now);
        if close_passed {
            self.seal_all();
        }
        for i in 0..self.states.len() {
            let queue = &mut self.states[i].queue;
            if !close_passed && queue.iter().all(|b| b.deadline > now) {
                continue;
            }
            let (expired, kept): (VecDeque<Batch>, VecDeque<Batch>) = queue
                .drain(..)
                .partition(|b| close_passed || b.deadline <= now);
            *queue = kept;
            for batch in expired {
                let reason = if close_passed && batch.deadline > now {
                    DeadLetterReason::Closed
                } else {
                    DeadLetterReason::Expired
                };
                self.dead_letter(batch, reason);
            }
        }
    }

    /// Puts every dispatchable batch, in as few requests as the limits allow.
    fn dispatch(&mut self, now: Instant) {
        while self.requests.len() < self.config.max_requests_in_flight {
            let request = self.dispatcher.next_request(&mut self.states, now);
            if request.is_empty() {
                return;
            }
            self.start_request(request, now);
        }
    }

    fn start_request(&mut self, mut request: Vec<(usize, Batch)>, now: Instant) {
        let id = self.next_request;
        self.next_request += 1;
        let entries: Vec<Entry> = request
            .iter_mut()
            .map(|(_, b)| {
                b.attempts += 1;
                if b.attempts > 1 {
                    Counters::add(&self.counters.retries, 1);
                }
                b.entry.take().unwrap_or_else(|| Entry::new("", Vec::new()))
            })
            .collect();
        Counters::add(&self.counters.requests, 1);
        let transport = self.transport.clone();
        let timeout = self.config.request_timeout;
        self.requests.spawn(async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout, transport.put_records(&entries)).await
            {
                Ok(result) => result,
                Err(_) => Err(TransportError::Transient(format!(
                    "PutRecords did not answer within {timeout:?}"
                ))),
            };
            (id, entries, result, started.elapsed())
        });
        self.in_flight.insert(
            id,
            InFlight {
                batches: request,
                sent_at: now,
            },
        );
    }

    fn complete(&mut self, (id, entries, result, latency): PutOutcome) {
        let Some(InFlight { batches, sent_at }) = self.in_flight.remove(&id) else {
            return;
        };
        let now = Instant::now();
        self.counters
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(latency);
        let batches: Vec<(usize, Batch)> = batches
            .into_iter()
            .zip(entries)
            .map(|((i, mut b), e)| {
                b.entry = Some(e);
                (i, b)
            })
            .collect();
        self.dispatcher.returned(&mut self.states, &batches);
        let classified = classify(result, batches.len());
        if let Some(error) = &classified.request_error {
            Counters::add(&self.counters.request_errors, 1);
            tracing::debug!(records = batches.len(), error = %error, "PutRecords failed as a whole");
        }
        // One rate signal per shard of the response (not per record).
        let shards: Vec<usize> = batches.iter().map(|(i, _)| *i).collect();
        for (i, signal) in signals(&shards, &classified.fates) {
            self.respond(i, signal, sent_at, now);
        }
        let mut retry = Vec::new();
        for ((i, mut batch), fate) in batches.into_iter().zip(classified.fates) {
            match fate {
                Fate::Written {
                    shard_id,
                    sequence_number,
                } => self.written(i, batch, &shard_id, &sequence_number),
                Fate::Retry { throttled, error } => {
                    if throttled {
                        Counters::add(&self.counters.throttles, 1);
                        self.states[i].totals.throttles += 1;
                    }
                    batch.last_error = error;
                    retry.push((i, batch));
                }
                Fate::Reject { error } => {
                    batch.last_error = error;
                    self.dead_letter(batch, DeadLetterReason::Rejected);
                }
            }
        }
        self.requeue(retry, now);
    }

    /// One response's signal for shard `i`: the rate rule, and the backoff (a
    /// response with a failure backs the shard off; a clean one resets it).
    fn respond(&mut self, i: usize, signal: Signal, sent_at: Instant, now: Instant) {
        let state = &mut self.states[i];
        state.rate.respond(signal, sent_at, now);
        match signal {
            Signal::Clean => state.failures = 0,
            Signal::Throttled | Signal::Failed => {
                state.failures = state.failures.saturating_add(1);
                let delay = backoff(
                    self.config.backoff_base,
                    self.config.backoff_max,
                    state.failures,
                    &mut self.rng,
                );
                state.not_before = state.not_before.max(now + delay);
            }
        }
    }

    /// Failed batches go back to the front of their queues, keeping their order.
    fn requeue(&mut self, retry: Vec<(usize, Batch)>, now: Instant) {
        let closing_now = matches!(self.closing, Some(Some(d)) if d <= now);
        for (i, batch) in retry.into_iter().rev() {
            if closing_now {
                self.dead_letter(batch, DeadLetterReason::Closed);
            } else if batch.deadline <= now {
                self.dead_letter(batch, DeadLetterReason::Expired);
            } else {
                self.states[i].queue.push_front(batch);
            }
        }
    }

    fn written(&mut self, i: usize, batch: Batch, shard_id: &str, sequence_number: &str) {
        let state = &mut self.states[i];
        let n = batch.members.len() as u64;
        state.totals.user_records_written += n;
        state.totals.kinesis_records_written += 1;
        state.totals.bytes_written += batch.size as u64;
        if let Some(expected) = &state.shard_id
            && **expected != *shard_id
        {
            tracing::debug!(expected = %expected, shard_id, "record landed on an unexpected shard; reloading the shard map");
            self.request_refresh();
        }
        let shard_id: Arc<str> = Arc::from(shard_id);
        let sequence_number: Arc<str> = Arc::from(sequence_number);
        for (k, member) in batch.members.into_iter().enumerate() {
            let delivery = Delivery {
                shard_id: shard_id.clone(),
                sequence_number: sequence_number.clone(),
                sub_sequence_number: batch.aggregated.then_some(k as u32),
            };
            self.resolve(member, Ok(delivery));
        }
        Counters::add(&self.counters.written, n);
        Counters::add(&self.counters.kinesis_written, 1);
        self.report.records_written += n;
    }

    /// Hands a batch to the dead-letter task; its members wait for the answer.
    fn dead_letter(&mut self, batch: Batch, reason: DeadLetterReason) {
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
    fn send_dead_letters(&mut self) {
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
    fn sink_task_stopped(&mut self) {
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
    fn stored(&mut self, (id, result): Stored) {
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

    fn resolve(&mut self, member: Member, outcome: Outcome) {
        self.epochs.resolved(member.epoch);
        self.counters
            .buffered_records
            .fetch_sub(1, Ordering::Relaxed);
        // The application may have dropped its receipt: that is its choice. The
        // member's budget charge is given back as it drops here.
        let _ = member.reply.send(outcome);
    }

    fn resolve_flushes(&mut self) {
        for ack in self.epochs.ready() {
            let _ = ack.send(std::mem::take(&mut self.report));
        }
    }

    /// Loading the map failed (or gave an unusable map): try again later, waiting
    /// twice as long each time up to the regular refresh interval, so that a
    /// producer without `kinesis:ListShards` permission does not poll (it sends plain
    /// records meanwhile).
    fn refresh_failed(&mut self) {
        self.refresh.failures = self.refresh.failures.saturating_add(1);
        let delay = self
            .config
            .backoff_max
            .saturating_mul(1 << self.refresh.failures.saturating_sub(1).min(16))
            .min(self.config.shard_map_refresh.max(self.config.backoff_max));
        self.refresh.next = Instant::now() + delay;
    }

    fn request_refresh(&mut self) {
        let now = Instant::now();
        let earliest = self.refresh.last.map_or(now, |t| t + MIN_REFRESH_INTERVAL);
        self.refresh.next = self.refresh.next.min(earliest.max(now));
    }

    fn maybe_refresh(&mut self, now: Instant) {
        if self.refresh.running || now < self.refresh.next || self.closing.is_some() {
            return;
        }
        self.refresh.running = true;
        self.refresh.last = Some(now);
        self.refresh.next = now + self.config.shard_map_refresh;
        let transport = self.transport.clone();
        let report = self.refresh.report.clone();
        // Bounded, like the first load: one hung call must not stop map refreshes
        // for good (`running` stays set until it reports).
        tokio::spawn(async move {
            let listed =
                match tokio::time::timeout(LIST_SHARDS_TIMEOUT, transport.list_shards()).await {
                    Ok(result) => result,
                    Err(_) => Err(TransportError::Transient(format!(
                        "listing shards timed out after {LIST_SHARDS_TIMEOUT:?}"
                    ))),
                };
            let _ = report.send(listed);
        });
    }

    fn apply_map(&mut self, shards: Vec<ShardInfo>) {
        let map = match ShardMap::new(shards) {
            Ok(map) => map,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unusable shard map");
                self.refresh_failed();
                return;
            }
        };
        Counters::add(&self.counters.refreshes, 1);
        self.refresh.failures = 0;
        self.refresh.last = Some(Instant::now());
        self.refresh.next = Instant::now() + self.config.shard_map_refresh;
        if self.map.as_ref() == Some(&map) {
            return;
        }
        let old_routes = std::mem::take(&mut self.routes);
        let (aggregate, max_bytes, limits) = (
            self.config.aggregation,
            self.config.aggregate_max_bytes,
            self.limits,
        );
        let plan = remap(&mut self.states, &old_routes, &map, |shard| {
            ShardState::new(
                Some(Arc::from(shard.shard_id.as_str())),
                shard.starting_hash_key,
                shard.ending_hash_key,
                aggregate,
                max_bytes,
                ShardRate::new(limits, Instant::now()),
            )
        });
        tracing::info!(
            shards = map.shards().len(),
            retired = plan.retired.len(),
            "shard map loaded"
        );
        self.routes = plan.routes;
        self.budget.publish(&map);
        self.map = Some(map);
    }

    /// Publishes per-shard figures and the oldest unresolved record for
    /// [`crate::Producer::metrics`], about once a second.
    fn maybe_publish(&mut self, now: Instant) {
        if now >= self.next_publish {
            self.publish(now);
        }
    }

    fn publish(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.published_at)
            .as_secs_f64()
            .max(1e-3);
        self.published_at = now;
        self.next_publish = now + PUBLISH_INTERVAL;
        let mut oldest = None;
        let mut consider = |t: Option<chrono::DateTime<chrono::Utc>>| {
            if let Some(t) = t {
                oldest = Some(oldest.map_or(t, |o: chrono::DateTime<chrono::Utc>| o.min(t)));
            }
        };
        for flight in self.in_flight.values() {
            for (_, b) in &flight.batches {
                consider(b.oldest());
            }
        }
        for s in &self.states {
            consider(s.queue.front().and_then(Batch::oldest));
            consider(s.aggregator.first_member().map(|m| m.accepted_at));
        }
        for w in self.dead.waiting.values() {
            consider(w.members.iter().map(|m| m.accepted_at).min());
        }
        let mut shards = Vec::new();
        for (k, state) in self.states.iter_mut().enumerate() {
            let previous = std::mem::replace(&mut state.published, state.totals);
            let live = self.routes.contains(&k) || state.has_work();
            if !live {
                continue;
            }
            let (mut buffered_bytes, mut buffered_records) = (0u64, 0u64);
            let mut count = |b: &Batch| {
                buffered_records += b.members.len() as u64;
                buffered_bytes += b.charged() as u64;
            };
            state.queue.iter().for_each(&mut count);
            for flight in self.in_flight.values() {
                for (i, b) in &flight.batches {
                    if *i == k {
                        count(b);
                    }
                }
            }
            let open = state.aggregator.members();
            buffered_records += open.len() as u64;
            buffered_bytes += open.iter().map(|m| m.charged() as u64).sum::<u64>();
            let allowed = state.rate.allowed();
            let rate = |now: u64, before: u64| (now - before) as f64 / elapsed;
            shards.push(ShardMetrics {
                shard_id: state
                    .shard_id
                    .as_deref()
                    .unwrap_or(UNMAPPED_SHARD)
                    .to_string(),
                user_records_per_sec: rate(
                    state.totals.user_records_written,
                    previous.user_records_written,
                ),
                kinesis_records_per_sec: rate(
                    state.totals.kinesis_records_written,
                    previous.kinesis_records_written,
                ),
                bytes_per_sec: rate(state.totals.bytes_written, previous.bytes_written),
                user_records_written: state.totals.user_records_written,
                bytes_written: state.totals.bytes_written,
                throttles: state.totals.throttles,
                rate_share: state.rate.share(),
                allowed_records_per_sec: allowed.records_per_sec,
                allowed_bytes_per_sec: allowed.bytes_per_sec,
                buffered_bytes,
                buffered_records,
            });
        }
        let mut published = self
            .counters
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        published.shards = shards;
        published.oldest_accepted = oldest;
    }

    fn maybe_emit_metrics(&mut self, now: Instant) {
        let (Some(at), Some(interval)) = (self.next_metrics, self.config.metrics_interval) else {
            return;
        };
        if now >= at {
            self.publish(now);
            let metrics = self.snapshot();
            metrics.trace();
            if let Some(emf) = &mut self.emf {
                for line in emf.documents(&metrics, chrono::Utc::now()) {
                    println!("{line}");
                }
            }
            self.next_metrics = Some(now + interval);
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(3600);
        let mut consider = |t: Instant| wake = wake.min(t);
        for s in &self.states {
            if let Some(d) = s.linger_deadline {
                consider(d);
            }
            if let Some(front) = s.queue.front() {
                if s.not_before > now {
                    consider(s.not_before);
                }
                consider(front.deadline);
            }
            for b in s.queue.iter().skip(1).take(SCAN_DEPTH) {
                consider(b.deadline);
            }
        }
        if !self.refresh.running && self.closing.is_none() {
            consider(self.refresh.next);
        }
        if let Some(at) = self.next_metrics {
            consider(at);
        }
        consider(self.next_publish);
        if let Some(Some(d)) = self.closing
            && d > now
        {
            consider(d);
        }
        wake.max(now)
    }
}
