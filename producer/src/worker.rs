//! The producer's worker: one task that owns every buffered record.
//!
//! ```text
//! records ─► route by hash key (shard map) ─► shard state: open aggregate ──seal──► queue
//!                                                         (size or linger)          │
//!   requests ◄── collect dispatchable batches across shards (≤ 500, ≤ 5 MiB) ◄──────┘
//!      │            a batch is dispatchable when: its shard's token buckets allow it,
//!      │            its shard is past its backoff, and none of its partition keys is
//!      │            in flight or held by an earlier batch (per-key order)
//!      ▼
//!   put (≤ max_requests_in_flight at once) ─► written: resolve receipts, free budget
//!                                          ─► throttled/transient: back to the front
//!                                             of its queue, shard backs off (and slows)
//!                                          ─► permanent or expired: dead-letter
//! ```
//!
//! Per-key order: a batch is only put when no batch holding one of its keys is in
//! flight, and a failed batch goes back to the front of its queue, ahead of every
//! later batch. So for any partition key at most one batch is in flight, and batches
//! are written in the order their records were accepted. (PutRecords itself does
//! not promise order within a request, which is why two batches sharing a key never
//! travel together.)
//!
//! Resharding: the worker starts with the shard map from `list_shards` (or, if that
//! fails, one catch-all pseudo-shard that sends plain records), reloads it
//! periodically and whenever a put lands on an unexpected shard. Shards that left the
//! map drain their queues; the new shards covering their ranges wait until they have.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flyhigh_schemas::HashKey;
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::aggregate::{ShardAggregator, UserRecord};
use crate::config::ProducerConfig;
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::limits::{self, entry_size};
use crate::metrics::Counters;
use crate::producer::{Delivery, DeliveryError, FlushReport};
use crate::rate::{ShardLimits, ShardRate, backoff};
use crate::shard_map::ShardMap;
use crate::transport::{
    Entry, EntryFailure, EntryResult, ShardInfo, Transport, TransportError, classify_entry_failure,
};

/// Records taken from the channel per wake-up.
const RECV_BATCH: usize = 1024;
/// How deep into a shard's queue dispatch looks for an aggregate whose keys are
/// free. Aggregates of one shard usually share a hot key, so looking far rarely finds
/// one and costs a hash-set insert per key of every aggregate passed over.
const SCAN_DEPTH: usize = 4;
/// Shortest interval between two map reloads triggered by unexpected shards.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the worker waits for the first shard map before sending plain records.
const INITIAL_MAP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) enum Command {
    Record(Pending),
    Flush(oneshot::Sender<FlushReport>),
    Close {
        deadline: Option<Instant>,
        ack: oneshot::Sender<FlushReport>,
    },
}

pub(crate) struct Pending {
    pub record: UserRecord,
    pub member: Member,
}

/// One accepted user record's bookkeeping, travelling with its bytes.
pub(crate) struct Member {
    reply: oneshot::Sender<Result<Delivery, DeliveryError>>,
    /// Released (returning its bytes to the budget) when the member is dropped.
    _permit: OwnedSemaphorePermit,
    hash_key: HashKey,
    deadline: Instant,
    accepted_at: DateTime<Utc>,
    /// The flush epoch it was accepted in.
    epoch: u64,
}

impl Member {
    pub fn new(
        reply: oneshot::Sender<Result<Delivery, DeliveryError>>,
        permit: OwnedSemaphorePermit,
        hash_key: HashKey,
        deadline: Instant,
        accepted_at: DateTime<Utc>,
    ) -> Member {
        Member {
            reply,
            _permit: permit,
            hash_key,
            deadline,
            accepted_at,
            epoch: 0,
        }
    }
}

/// Hash keys are MD5 digests, already uniformly spread: fold them instead of hashing.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

type KeySet = HashSet<HashKey, BuildHasherDefault<KeyHasher>>;

/// A sealed Kinesis record waiting in its shard's queue (or in flight).
struct Batch {
    /// `None` while in flight (the request owns it).
    entry: Option<Entry>,
    members: Vec<Member>,
    aggregated: bool,
    /// Distinct hash keys of its records.
    keys: Vec<HashKey>,
    size: usize,
    attempts: u32,
    last_error: String,
    /// Its oldest record's deadline.
    deadline: Instant,
}

struct ShardState {
    /// `None` for the catch-all pseudo-shard used while the map is unknown.
    shard_id: Option<Arc<str>>,
    start: HashKey,
    end: HashKey,
    aggregate: bool,
    aggregator: ShardAggregator<Member>,
    linger_deadline: Option<Instant>,
    queue: VecDeque<Batch>,
    in_flight: usize,
    not_before: Instant,
    failures: u32,
    rate: ShardRate,
    /// Left the map: drains its queue, receives no new records.
    retired: bool,
    /// States that must drain before this one sends (their ranges overlap ours).
    blocked_by: Vec<usize>,
}

impl ShardState {
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.in_flight > 0 || !self.aggregator.is_empty()
    }
}

/// A batch given up on, waiting for the turn's single dead-letter write.
struct DeadBatch {
    letters: Vec<DeadLetter>,
    members: Vec<Member>,
    reason: DeadLetterReason,
    error: String,
    attempts: u32,
}

struct InFlight {
    batches: Vec<(usize, Batch)>,
}

type PutOutcome = (
    u64,
    Vec<Entry>,
    Result<Vec<EntryResult>, TransportError>,
    Duration,
);

pub(crate) struct Worker<T> {
    transport: Arc<T>,
    config: ProducerConfig,
    limits: ShardLimits,
    counters: Arc<Counters>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    rng: StdRng,
    states: Vec<ShardState>,
    map: Option<ShardMap>,
    /// `map` index → `states` index (or the catch-all state alone when `map` is None).
    routes: Vec<usize>,
    keys_in_flight: KeySet,
    /// Scratch for dispatch: keys of batches passed over (kept for its capacity).
    held: KeySet,
    requests: JoinSet<PutOutcome>,
    in_flight: HashMap<u64, InFlight>,
    next_request: u64,
    /// Where a spawned `list_shards` reports; `refreshing` while one runs.
    refreshed: mpsc::UnboundedSender<Result<Vec<ShardInfo>, TransportError>>,
    refreshing: bool,
    /// Consecutive failed map loads.
    refresh_failures: u32,
    next_refresh: Instant,
    last_refresh: Option<Instant>,
    /// Unresolved records per flush epoch, oldest first; `epoch_base` is the first's.
    epochs: VecDeque<u64>,
    epoch_base: u64,
    flushes: Vec<(u64, oneshot::Sender<FlushReport>)>,
    report: FlushReport,
    dead: Vec<DeadBatch>,
    closing: Option<Option<Instant>>,
    /// Every `close` caller (several clones may close at once) gets the report.
    close_acks: Vec<oneshot::Sender<FlushReport>>,
    next_metrics: Option<Instant>,
    rotate: usize,
}

impl<T: Transport> Worker<T> {
    pub fn new(
        transport: Arc<T>,
        config: ProducerConfig,
        counters: Arc<Counters>,
        budget: Arc<Semaphore>,
        budget_bytes: usize,
        refreshed: mpsc::UnboundedSender<Result<Vec<ShardInfo>, TransportError>>,
    ) -> Worker<T> {
        let limits = config
            .shard_limits
            .unwrap_or_else(|| transport.shard_limits());
        let rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let now = Instant::now();
        let mut worker = Worker {
            transport,
            limits,
            counters,
            budget,
            budget_bytes,
            rng,
            states: Vec::new(),
            map: None,
            routes: Vec::new(),
            keys_in_flight: KeySet::default(),
            held: KeySet::default(),
            requests: JoinSet::new(),
            in_flight: HashMap::new(),
            next_request: 0,
            refreshed,
            refreshing: false,
            refresh_failures: 0,
            next_refresh: now,
            last_refresh: None,
            epochs: VecDeque::from([0]),
            epoch_base: 0,
            flushes: Vec::new(),
            report: FlushReport::default(),
            dead: Vec::new(),
            closing: None,
            close_acks: Vec::new(),
            next_metrics: config.metrics_interval.map(|i| now + i),
            rotate: 0,
            config,
        };
        // The catch-all state: used until a map arrives (plain records, since an
        // aggregate could mix keys of different shards).
        let catch_all = worker.new_state(None, 0, HashKey::MAX, false, ShardLimits::UNLIMITED);
        worker.states.push(catch_all);
        worker.routes = vec![0];
        worker
    }

    fn new_state(
        &self,
        shard_id: Option<Arc<str>>,
        start: HashKey,
        end: HashKey,
        aggregate: bool,
        limits: ShardLimits,
    ) -> ShardState {
        let now = Instant::now();
        ShardState {
            shard_id,
            start,
            end,
            aggregate,
            aggregator: ShardAggregator::new(self.config.aggregate_max_bytes),
            linger_deadline: None,
            queue: VecDeque::new(),
            in_flight: 0,
            not_before: now,
            failures: 0,
            rate: ShardRate::new(limits, now),
            retired: false,
            blocked_by: Vec::new(),
        }
    }

    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut refreshes: mpsc::UnboundedReceiver<Result<Vec<ShardInfo>, TransportError>>,
    ) {
        // The first map, before any record is routed.
        match tokio::time::timeout(INITIAL_MAP_TIMEOUT, self.transport.list_shards()).await {
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
            self.flush_dead_letters();
            self.resolve_flushes();
            self.maybe_refresh(now);
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
                Some(result) = refreshes.recv(), if self.refreshing => {
                    self.refreshing = false;
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
        let metrics = self
            .counters
            .snapshot(self.buffered_bytes(), self.budget_bytes as u64);
        metrics.trace();
        let report = std::mem::take(&mut self.report);
        for (_, ack) in self.flushes.drain(..) {
            let _ = ack.send(FlushReport::default());
        }
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(report.clone());
        }
    }

    fn buffered_bytes(&self) -> u64 {
        (self.budget_bytes - self.budget.available_permits().min(self.budget_bytes)) as u64
    }

    fn has_work(&self) -> bool {
        !self.requests.is_empty() || self.states.iter().any(ShardState::has_work)
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Record(pending) => self.add(pending),
            Command::Flush(ack) => {
                let epoch = self.current_epoch();
                self.seal_all();
                self.epochs.push_back(0);
                self.flushes.push((epoch, ack));
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

    fn current_epoch(&self) -> u64 {
        self.epoch_base + self.epochs.len() as u64 - 1
    }

    fn add(&mut self, pending: Pending) {
        let Pending { record, mut member } = pending;
        member.epoch = self.current_epoch();
        if let Some(count) = self.epochs.back_mut() {
            *count += 1;
        }
        let index = match &self.map {
            Some(map) => self.routes[map.index_of(record.hash_key)],
            None => self.routes[0],
        };
        let now = Instant::now();
        let state = &mut self.states[index];
        if state.aggregator.is_empty() {
            state.linger_deadline = Some(now + self.config.linger);
        }
        let sealed = state.aggregator.add(record, member);
        if let Some(aggregate) = sealed {
            push_batch(state, aggregate);
            if !state.aggregator.is_empty() {
                state.linger_deadline = Some(now + self.config.linger);
            }
        }
        if !state.aggregate
            && let Some(aggregate) = state.aggregator.seal()
        {
            push_batch(state, aggregate);
            state.linger_deadline = None;
        }
    }

    fn seal_all(&mut self) {
        for state in &mut self.states {
            if let Some(aggregate) = state.aggregator.seal() {
                push_batch(state, aggregate);
            }
            state.linger_deadline = None;
        }
    }

    fn seal_lingering(&mut self, now: Instant) {
        for state in &mut self.states {
            if state.linger_deadline.is_some_and(|d| d <= now) {
                if let Some(aggregate) = state.aggregator.seal() {
                    push_batch(state, aggregate);
                }
                state.linger_deadline = None;
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
        while self.requests.len() < self.config.max_requests_in_flight.max(1) {
            let mut request: Vec<(usize, Batch)> = Vec::new();
            let mut bytes = 0;
            let n = self.states.len();
            for k in 0..n {
                let i = (self.rotate + k) % n;
                self.unblock(i);
                let state = &self.states[i];
                if state.queue.is_empty() || state.not_before > now || !state.blocked_by.is_empty()
                {
                    continue;
                }
                // Plain records travel many to a request; aggregates are few and big.
                let depth = if state.aggregate {
                    SCAN_DEPTH
                } else {
                    limits::MAX_RECORDS_PER_REQUEST
                };
                let mut held = std::mem::take(&mut self.held);
                held.clear();
                let mut j = 0;
                while j < self.states[i].queue.len().min(depth) {
                    let batch = &self.states[i].queue[j];
                    let size = batch.size;
                    let free = batch
                        .keys
                        .iter()
                        .all(|k| !self.keys_in_flight.contains(k) && !held.contains(k));
                    if !free {
                        held.extend(batch.keys.iter().copied());
                        j += 1;
                        continue;
                    }
                    if !limits::fits_request(request.len(), bytes, size) {
                        break;
                    }
                    if let Some(at) = self.states[i].rate.try_take(size, now) {
                        self.states[i].not_before = at;
                        break;
                    }
                    let Some(batch) = self.states[i].queue.remove(j) else {
                        break;
                    };
                    self.keys_in_flight.extend(batch.keys.iter().copied());
                    bytes += batch.size;
                    self.states[i].in_flight += 1;
                    request.push((i, batch));
                }
                self.held = held;
            }
            self.rotate = self.rotate.wrapping_add(1);
            if request.is_empty() {
                return;
            }
            self.start_request(request);
        }
    }

    /// Clears `blocked_by` entries of state `i` whose states have drained.
    fn unblock(&mut self, i: usize) {
        if self.states[i].blocked_by.is_empty() {
            return;
        }
        let blockers = std::mem::take(&mut self.states[i].blocked_by);
        let still: Vec<usize> = blockers
            .into_iter()
            .filter(|&b| self.states[b].has_work())
            .collect();
        self.states[i].blocked_by = still;
    }

    fn start_request(&mut self, mut request: Vec<(usize, Batch)>) {
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
        self.in_flight.insert(id, InFlight { batches: request });
    }

    fn complete(&mut self, (id, entries, result, latency): PutOutcome) {
        let Some(InFlight { batches }) = self.in_flight.remove(&id) else {
            return;
        };
        let now = Instant::now();
        self.counters
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(latency);
        let mut batches: Vec<(usize, Batch)> = batches
            .into_iter()
            .zip(entries)
            .map(|((i, mut b), e)| {
                b.entry = Some(e);
                (i, b)
            })
            .collect();
        for (i, b) in &batches {
            self.states[*i].in_flight -= 1;
            for k in &b.keys {
                self.keys_in_flight.remove(k);
            }
        }
        match result {
            Ok(results) if results.len() == batches.len() => {
                let mut retry = Vec::new();
                for ((i, batch), result) in batches.drain(..).zip(results) {
                    match result {
                        EntryResult::Ok {
                            shard_id,
                            sequence_number,
                        } => self.written(i, batch, &shard_id, &sequence_number),
                        EntryResult::Failed { code, message } => {
                            let error = format!("{code}: {message}");
                            match classify_entry_failure(&code) {
                                EntryFailure::Permanent => {
                                    let mut batch = batch;
                                    batch.last_error = error;
                                    self.dead_letter(batch, DeadLetterReason::Rejected);
                                }
                                kind => {
                                    let throttled = kind == EntryFailure::Throttled;
                                    self.failed(i, now, throttled);
                                    let mut batch = batch;
                                    batch.last_error = error;
                                    retry.push((i, batch));
                                }
                            }
                        }
                    }
                }
                self.requeue(retry, now);
            }
            Ok(results) => {
                let error = format!(
                    "PutRecords answered {} results for {} records",
                    results.len(),
                    batches.len()
                );
                self.request_failed(batches, error, false, now);
            }
            Err(TransportError::Permanent(error)) => {
                Counters::add(&self.counters.request_errors, 1);
                tracing::error!(records = batches.len(), error = %error, "PutRecords rejected for good; dead-lettering its records");
                for (_, mut batch) in batches {
                    batch.last_error = error.clone();
                    self.dead_letter(batch, DeadLetterReason::Rejected);
                }
            }
            Err(e) => {
                let throttled = matches!(e, TransportError::Throttled(_));
                self.request_failed(batches, e.to_string(), throttled, now);
            }
        }
    }

    fn request_failed(
        &mut self,
        batches: Vec<(usize, Batch)>,
        error: String,
        throttled: bool,
        now: Instant,
    ) {
        Counters::add(&self.counters.request_errors, 1);
        tracing::debug!(records = batches.len(), error = %error, "PutRecords failed; retrying its records");
        let mut shards: Vec<usize> = batches.iter().map(|(i, _)| *i).collect();
        shards.sort_unstable();
        shards.dedup();
        if throttled {
            Counters::add(&self.counters.throttles, 1);
        }
        for i in shards {
            self.shard_failed(i, now, throttled);
        }
        let retry = batches
            .into_iter()
            .map(|(i, mut b)| {
                b.last_error = error.clone();
                (i, b)
            })
            .collect();
        self.requeue(retry, now);
    }

    /// A record of shard `i` failed inside a request.
    fn failed(&mut self, i: usize, now: Instant, throttled: bool) {
        if throttled {
            Counters::add(&self.counters.throttles, 1);
        }
        self.shard_failed(i, now, throttled);
    }

    fn shard_failed(&mut self, i: usize, now: Instant, throttled: bool) {
        let state = &mut self.states[i];
        state.failures = state.failures.saturating_add(1);
        if throttled {
            state.rate.throttled(now);
        }
        let delay = backoff(
            self.config.backoff_base,
            self.config.backoff_max,
            state.failures,
            &mut self.rng,
        );
        state.not_before = state.not_before.max(now + delay);
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
        state.failures = 0;
        state.rate.succeeded();
        if let Some(expected) = &state.shard_id
            && **expected != *shard_id
        {
            tracing::debug!(expected = %expected, shard_id, "record landed on an unexpected shard; reloading the shard map");
            self.request_refresh();
        }
        let shard_id: Arc<str> = Arc::from(shard_id);
        let sequence_number: Arc<str> = Arc::from(sequence_number);
        let n = batch.members.len() as u64;
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
            batch.last_error.clone()
        };
        let now = Utc::now();
        let records: Vec<(String, Vec<u8>)> = match &batch.entry {
            Some(entry) if batch.aggregated => match deaggregate(&entry.data) {
                Ok(Deaggregated::Aggregated(records)) => records
                    .iter()
                    .map(|r| (r.partition_key.to_string(), r.data.to_vec()))
                    .collect(),
                // Our own aggregates always decode; keep the bytes whole if not.
                _ => vec![(entry.partition_key.clone(), entry.data.clone())],
            },
            Some(entry) => vec![(entry.partition_key.clone(), entry.data.clone())],
            None => Vec::new(),
        };
        let letters: Vec<DeadLetter> = batch
            .members
            .iter()
            .zip(
                records
                    .into_iter()
                    .chain(std::iter::repeat_with(|| (String::new(), Vec::new()))),
            )
            .map(|(m, (partition_key, data))| DeadLetter {
                partition_key,
                data,
                reason,
                error: error.clone(),
                attempts: batch.attempts,
                accepted_at: m.accepted_at,
                dead_lettered_at: now,
            })
            .collect();
        tracing::warn!(records = letters.len(), reason = reason.as_str(), attempts = batch.attempts, error = %error, "dead-lettering records");
        self.dead.push(DeadBatch {
            letters,
            members: batch.members,
            reason,
            error,
            attempts: batch.attempts,
        });
    }

    /// Stores the dead letters gathered in this turn of the loop with one sink call
    /// (a file sink syncs once, not once per batch), then resolves their receipts.
    fn flush_dead_letters(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.dead);
        let letters: Vec<DeadLetter> = batches
            .iter()
            .flat_map(|b| b.letters.iter().cloned())
            .collect();
        let stored = self.config.dead_letters.write(&letters);
        if let Err(sink) = &stored {
            Counters::add(&self.counters.dead_letter_failures, letters.len() as u64);
            tracing::error!(records = letters.len(), error = %sink, "dead-letter sink failed; the records' receipts carry them");
        }
        drop(letters);
        for batch in batches {
            let n = batch.members.len() as u64;
            for member in batch.members {
                let outcome = match &stored {
                    Ok(()) => DeliveryError::DeadLettered {
                        reason: batch.reason,
                        error: batch.error.clone(),
                        attempts: batch.attempts,
                    },
                    Err(sink) => DeliveryError::DeadLetterFailed {
                        reason: batch.reason,
                        error: batch.error.clone(),
                        sink_error: sink.to_string(),
                    },
                };
                self.resolve(member, Err(outcome));
            }
            Counters::add(&self.counters.dead_lettered, n);
            self.report.dead_lettered += n;
            self.report.last_error = Some(format!("{}: {}", batch.reason.as_str(), batch.error));
        }
    }

    fn resolve(&mut self, member: Member, outcome: Result<Delivery, DeliveryError>) {
        let slot = (member.epoch - self.epoch_base) as usize;
        if let Some(count) = self.epochs.get_mut(slot) {
            *count -= 1;
        }
        self.counters
            .buffered_records
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // The application may have dropped its receipt: that is its choice.
        let _ = member.reply.send(outcome);
    }

    fn resolve_flushes(&mut self) {
        // Retire fully resolved epochs, but always keep the current one.
        while self.epochs.len() > 1 && self.epochs.front() == Some(&0) {
            self.epochs.pop_front();
            self.epoch_base += 1;
        }
        if self.flushes.is_empty() {
            return;
        }
        // A flush waits for its epoch and every earlier one; epochs before
        // `epoch_base` are fully resolved.
        let mut k = 0;
        while k < self.flushes.len() {
            if self.flushes[k].0 < self.epoch_base {
                let (_, ack) = self.flushes.swap_remove(k);
                let _ = ack.send(std::mem::take(&mut self.report));
            } else {
                k += 1;
            }
        }
    }

    /// Loading the map failed (or gave an unusable map): try again later, waiting
    /// twice as long each time up to the regular refresh interval, so that a
    /// producer without `kinesis:ListShards` permission does not poll (it sends plain
    /// records meanwhile).
    fn refresh_failed(&mut self) {
        self.refresh_failures = self.refresh_failures.saturating_add(1);
        let delay = self
            .config
            .backoff_max
            .saturating_mul(1 << self.refresh_failures.saturating_sub(1).min(16))
            .min(self.config.shard_map_refresh.max(self.config.backoff_max));
        self.next_refresh = Instant::now() + delay;
    }

    fn request_refresh(&mut self) {
        let now = Instant::now();
        let earliest = self.last_refresh.map_or(now, |t| t + MIN_REFRESH_INTERVAL);
        self.next_refresh = self.next_refresh.min(earliest.max(now));
    }

    fn maybe_refresh(&mut self, now: Instant) {
        if self.refreshing || now < self.next_refresh || self.closing.is_some() {
            return;
        }
        self.refreshing = true;
        self.last_refresh = Some(now);
        self.next_refresh = now + self.config.shard_map_refresh;
        let transport = self.transport.clone();
        let report = self.refreshed.clone();
        // Bounded, like the first load: one hung call must not stop map refreshes
        // for good (`refreshing` stays set until it reports).
        tokio::spawn(async move {
            let listed =
                match tokio::time::timeout(INITIAL_MAP_TIMEOUT, transport.list_shards()).await {
                    Ok(result) => result,
                    Err(_) => Err(TransportError::Transient(format!(
                        "listing shards timed out after {INITIAL_MAP_TIMEOUT:?}"
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
        self.refresh_failures = 0;
        self.last_refresh = Some(Instant::now());
        self.next_refresh = Instant::now() + self.config.shard_map_refresh;
        if self.map.as_ref() == Some(&map) {
            return;
        }
        let old_routes = std::mem::take(&mut self.routes);
        let mut routes = Vec::with_capacity(map.shards().len());
        let mut kept = Vec::new();
        for shard in map.shards() {
            let existing = old_routes.iter().copied().find(|&i| {
                let s = &self.states[i];
                s.shard_id.as_deref() == Some(shard.shard_id.as_str())
                    && s.start == shard.starting_hash_key
                    && s.end == shard.ending_hash_key
            });
            match existing {
                Some(i) => {
                    kept.push(i);
                    routes.push(i);
                }
                None => {
                    let state = self.new_state(
                        Some(Arc::from(shard.shard_id.as_str())),
                        shard.starting_hash_key,
                        shard.ending_hash_key,
                        self.config.aggregation,
                        self.limits,
                    );
                    self.states.push(state);
                    routes.push(self.states.len() - 1);
                }
            }
        }
        // Shards that left the map drain; new shards overlapping them wait for that.
        let retired: Vec<usize> = old_routes
            .into_iter()
            .filter(|i| !kept.contains(i))
            .collect();
        for &r in &retired {
            let state = &mut self.states[r];
            state.retired = true;
            if let Some(aggregate) = state.aggregator.seal() {
                push_batch(state, aggregate);
            }
            state.linger_deadline = None;
        }
        for &n in &routes {
            if kept.contains(&n) {
                continue;
            }
            let (start, end) = (self.states[n].start, self.states[n].end);
            let blockers: Vec<usize> = self
                .states
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    *i != n && s.retired && s.has_work() && s.start <= end && start <= s.end
                })
                .map(|(i, _)| i)
                .collect();
            self.states[n].blocked_by = blockers;
        }
        tracing::info!(
            shards = map.shards().len(),
            retired = retired.len(),
            "shard map loaded"
        );
        self.routes = routes;
        self.map = Some(map);
    }

    fn maybe_emit_metrics(&mut self, now: Instant) {
        let (Some(at), Some(interval)) = (self.next_metrics, self.config.metrics_interval) else {
            return;
        };
        if now >= at {
            self.counters
                .snapshot(self.buffered_bytes(), self.budget_bytes as u64)
                .trace();
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
        if !self.refreshing && self.closing.is_none() {
            consider(self.next_refresh);
        }
        if let Some(at) = self.next_metrics {
            consider(at);
        }
        if let Some(Some(d)) = self.closing
            && d > now
        {
            consider(d);
        }
        wake.max(now)
    }
}

fn push_batch(state: &mut ShardState, aggregate: crate::aggregate::Aggregate<Member>) {
    let size = entry_size(&aggregate.entry);
    let mut keys: Vec<HashKey> = aggregate.members.iter().map(|m| m.hash_key).collect();
    keys.sort_unstable();
    keys.dedup();
    let deadline = aggregate
        .members
        .iter()
        .map(|m| m.deadline)
        .min()
        .unwrap_or_else(Instant::now);
    state.queue.push_back(Batch {
        entry: Some(aggregate.entry),
        members: aggregate.members,
        aggregated: aggregate.aggregated,
        keys,
        size,
        attempts: 0,
        last_error: String::new(),
        deadline,
    });
}
