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
//! The pieces, the pure ones unit-tested on their own:
//! - [`routing`]: shard states, which state a key goes to, resharding;
//! - [`dispatch`]: the per-key dispatch plan (at most one batch per key in flight,
//!   and in order);
//! - [`outcome`]: put-outcome classification and the per-response rate signal;
//! - [`epochs`]: what a flush waits for;
//! - [`dead_letters`]: the sink task, its queue, and what the worker keeps while it
//!   writes;
//!
//! and the worker's I/O around them, tested through the producer:
//! - [`refresh`]: loading the shard map;
//! - [`publish`]: the figures [`crate::Producer::metrics`] reads, the periodic
//!   `tracing` event and EMF lines;
//! - this module: the select loop, and records from acceptance to resolution.
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
mod publish;
mod refresh;
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

use crate::budget::Budget;
use crate::config::ProducerConfig;
use crate::dead_letter::DeadLetterReason;
use crate::exchange::{Command, Delivery, FlushReport, Member, Outcome, Pending};
use crate::metrics::{Counters, EmfEmitter};
use crate::rate::{FALLBACK_MAX_SHARE, ShardLimits, ShardRate, Signal, backoff};
use crate::shard_map::ShardMap;
use crate::transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};

use dead_letters::DeadLetters;
use dispatch::{Dispatcher, SCAN_DEPTH};
use epochs::Epochs;
use outcome::{Fate, classify, signals};
use publish::PUBLISH_INTERVAL;
use refresh::{LIST_SHARDS_TIMEOUT, Refresh};
use routing::{Batch, ShardState};

/// Records taken from the channel per wake-up.
const RECV_BATCH: usize = 1024;

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
    /// When per-shard figures were last published (the next are due
    /// [`PUBLISH_INTERVAL`] later).
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
        self.emit_emf(&metrics);
        let report = std::mem::take(&mut self.report);
        for ack in self.epochs.drain() {
            let _ = ack.send(FlushReport::default());
        }
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(report.clone());
        }
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
        consider(self.published_at + PUBLISH_INTERVAL);
        if let Some(Some(d)) = self.closing
            && d > now
        {
            consider(d);
        }
        wake.max(now)
    }
}
