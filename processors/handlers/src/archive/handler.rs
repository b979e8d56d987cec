//! [`ArchiveHandler`]: Kinesis batches → Parquet batch files, exactly once per record.
//!
//! Per batch and shard (a Lambda batch is one shard):
//! 1. load the shard's [`ArchiveCheckpoint`]; if it lists pending files (a crash
//!    after a commit), promote them and clear the list first;
//! 2. drop every user record at or below the checkpoint (archived already: this is
//!    what makes a redelivery or a retry from a checkpoint add no row);
//! 3. cut the rest into parts ([`cut_parts`]): consecutive records whose files'
//!    keys fit one checkpoint item (DynamoDB's 400 KB) and
//!    [`MAX_FILES_PER_PART`](flyhigh_core::archive::MAX_FILES_PER_PART); then, for
//!    each part in order:
//! 4. dead-letter the poison among its records, then write one batch file per
//!    partition it touches, each under its staged key;
//! 5. commit: save the checkpoint at the part's last position with the files as
//!    pending, conditionally on the version loaded (a consumer that loses this
//!    race starts again from 1, and finds its records archived);
//! 6. promote each file to its key (now visible to queries), then clear the pending
//!    list.
//!
//! A failure before 5 reports the first record above the checkpoint and changes
//! nothing a query sees (staged copies are outside every table); a failure after 5
//! reports it too, and the retry's step 1 finishes the promotion. Before each part
//! after the first, the handler checks its [`Deadline`]: when less than
//! [`PART_TIME_RESERVE`] (or twice the slowest part) is left, it stops and reports
//! the first record of the next part, so a heavy batch makes progress instead of
//! timing out whole. Puts and promotions of a part run
//! [`S3_CONCURRENCY`] at a time; files are encoded as the puts drain, so a part
//! holds its decoded events and at most that many files' bytes.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::time::{Duration, Instant};

use flyhigh_core::archive::{
    ArchiveCheckpoint, ArchivedEvent, KeyValue, ParquetOptions, PartLimits, Partition, PlannedFile,
    S3_CONCURRENCY, cut_parts, plan_batch, staged_key, write_file,
};
use flyhigh_core::ports::{ArchiveCheckpoints, ObjectStore};
use flyhigh_core::records::Position;
use flyhigh_core::{DeadLetter, DeadLetterSink, KinesisRecord, StoreError};
use futures::StreamExt;
use parquet_metadata::batch_metadata;

use super::PROCESSOR;
use crate::batch::{self, BatchOutcome};
use crate::deadline::Deadline;
use crate::kinesis;

/// Commits lost in a row per part before the batch is reported failed (each costs
/// one more checkpoint load).
const MAX_ATTEMPTS: usize = 4;

/// The least time left before the deadline to start another part (or twice the
/// slowest part so far, if more): a part of [`MAX_FILES_PER_PART`] files takes a
/// few seconds, the Lambda's timeout is 300 s.
///
/// [`MAX_FILES_PER_PART`]: flyhigh_core::archive::MAX_FILES_PER_PART
pub const PART_TIME_RESERVE: Duration = Duration::from_secs(10);

/// Counters over the handler's life (retries count again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveStats {
    /// Batches handled.
    pub batches: u64,
    /// Kinesis records received.
    pub records: u64,
    /// Valid events seen.
    pub events: u64,
    /// Rows written in committed batch files.
    pub rows: u64,
    /// Batch files committed.
    pub files: u64,
    /// Parts committed (a batch touching many partitions commits several).
    pub parts: u64,
    /// Batches stopped at a part boundary because the deadline was near (their
    /// first unfinished record was reported).
    pub deadline_stops: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// User records skipped because the checkpoint covered them (redeliveries).
    pub already_archived: u64,
    /// Poison records dead-lettered.
    pub dead_lettered: u64,
    /// Commits lost to another consumer of the shard.
    pub commit_conflicts: u64,
    /// Pending files promoted on behalf of an earlier attempt.
    pub recovered_files: u64,
    /// Batches that reported a failure.
    pub failed_batches: u64,
    /// Committed files found neither staged nor promoted (see the runbook).
    pub files_missing: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    events: AtomicU64,
    rows: AtomicU64,
    files: AtomicU64,
    parts: AtomicU64,
    deadline_stops: AtomicU64,
    bytes: AtomicU64,
    already_archived: AtomicU64,
    dead_lettered: AtomicU64,
    commit_conflicts: AtomicU64,
    recovered_files: AtomicU64,
    failed_batches: AtomicU64,
    files_missing: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The archive handler, generic over where objects, checkpoints and dead letters go.
pub struct ArchiveHandler<O, C, D> {
    objects: O,
    checkpoints: C,
    dead_letters: D,
    options: ParquetOptions,
    limits: PartLimits,
    concurrency: usize,
    counters: Counters,
    latency: Option<std::sync::Arc<crate::Latency>>,
}

/// One user record of the batch, as the archive sees it.
enum Item {
    Event(ArchivedEvent),
    Poison(DeadLetter),
}

struct ShardBatch {
    shard_id: String,
    /// (Kinesis record index, position, item), in shard order.
    items: Vec<(usize, Position, Item)>,
}

impl<O: ObjectStore, C: ArchiveCheckpoints, D: DeadLetterSink> ArchiveHandler<O, C, D> {
    /// A handler writing files with the default [`ParquetOptions`].
    pub fn new(objects: O, checkpoints: C, dead_letters: D) -> Self {
        ArchiveHandler {
            objects,
            checkpoints,
            dead_letters,
            options: ParquetOptions::default(),
            limits: PartLimits::default(),
            concurrency: S3_CONCURRENCY,
            counters: Counters::default(),
            latency: None,
        }
    }

    /// Records each committed event's time from `occurred_at` to its commit in
    /// `latency` (see [`crate::latency`]).
    pub fn with_latency(mut self, latency: std::sync::Arc<crate::Latency>) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Writes files with `options` instead.
    pub fn with_options(mut self, options: ParquetOptions) -> Self {
        self.options = options;
        self
    }

    /// Cuts batches into parts with `limits` instead of the default (tests: small
    /// parts without thousands of partitions).
    pub fn with_part_limits(mut self, limits: PartLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Puts and promotes `n` files of a part at once instead of
    /// [`S3_CONCURRENCY`] (at least one; benches compare with one at a time).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The object store.
    pub fn objects(&self) -> &O {
        &self.objects
    }

    /// Counters so far.
    pub fn stats(&self) -> ArchiveStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ArchiveStats {
            batches: get(&c.batches),
            records: get(&c.records),
            events: get(&c.events),
            rows: get(&c.rows),
            files: get(&c.files),
            parts: get(&c.parts),
            deadline_stops: get(&c.deadline_stops),
            bytes: get(&c.bytes),
            already_archived: get(&c.already_archived),
            dead_lettered: get(&c.dead_lettered),
            commit_conflicts: get(&c.commit_conflicts),
            recovered_files: get(&c.recovered_files),
            failed_batches: get(&c.failed_batches),
            files_missing: get(&c.files_missing),
        }
    }

    /// Handles a Lambda Kinesis event without a deadline (tests, the CLI).
    pub async fn handle(&self, event: KinesisEvent) -> KinesisEventResponse {
        self.handle_by(event, Deadline::none()).await
    }

    /// Handles a Lambda Kinesis event (what the Lambda and the local runner call),
    /// stopping at a part boundary when `deadline` is near: the response then names
    /// the first record not archived, and the retry goes on from it.
    pub async fn handle_by(&self, event: KinesisEvent, deadline: Deadline) -> KinesisEventResponse {
        let records = kinesis::kinesis_records(&event);
        let stream = event
            .records
            .first()
            .and_then(|r| r.event_source_arn.clone())
            .unwrap_or_default();
        let outcome = self.process_stream_by(&stream, &records, deadline).await;
        kinesis::respond(PROCESSOR, &records, &outcome)
    }

    /// Archives a batch of records of an unnamed stream (tests, benches): the
    /// checkpoints are keyed by shard id alone.
    pub async fn process(&self, records: &[KinesisRecord]) -> BatchOutcome {
        self.process_stream("", records).await
    }

    /// Archives a batch of Kinesis records of `stream` (its ARN, as Lambda names it in
    /// `eventSourceARN`) in shard order. A reported failure at record `i` promises
    /// that every record before it is archived (committed); the retry skips whatever
    /// from `i` on is archived too.
    ///
    /// Checkpoints are keyed by `STREAM/SHARD`: the mapping's stream changed to
    /// another (shard ids start again at `shardId-000000000000`) starts from no
    /// checkpoint instead of skipping records as archived. A stream *deleted and
    /// created again under the same name* has the same ARN: clear its checkpoints
    /// (`docs/runbooks.md`).
    pub async fn process_stream(&self, stream: &str, records: &[KinesisRecord]) -> BatchOutcome {
        self.process_stream_by(stream, records, Deadline::none())
            .await
    }

    /// [`process_stream`](Self::process_stream), stopping at a part boundary when
    /// `deadline` is near.
    pub async fn process_stream_by(
        &self,
        stream: &str,
        records: &[KinesisRecord],
        deadline: Deadline,
    ) -> BatchOutcome {
        add(&self.counters.batches, 1);
        add(&self.counters.records, records.len() as u64);
        let expanded = batch::expand(PROCESSOR, records, |_, _| None);
        add(&self.counters.events, expanded.events.len() as u64);
        // Taken before the events move into the shards' parts.
        let occurred: Vec<(usize, chrono::DateTime<chrono::Utc>)> = match &self.latency {
            Some(_) => expanded
                .events
                .iter()
                .map(|d| (d.index, d.event.occurred_at))
                .collect(),
            None => Vec::new(),
        };

        let mut shards: Vec<ShardBatch> = Vec::new();
        let mut push = |index: usize, item: Item, position: Position| {
            let shard_id = &records[index].shard_id;
            let slot = match shards.iter().position(|s| &s.shard_id == shard_id) {
                Some(slot) => slot,
                None => {
                    shards.push(ShardBatch {
                        shard_id: shard_id.clone(),
                        items: Vec::new(),
                    });
                    shards.len() - 1
                }
            };
            shards[slot].items.push((index, position, item));
        };
        for d in expanded.events {
            let record = &records[d.index];
            let position = Position::new(&record.sequence_number, d.sub_sequence_number);
            let event = ArchivedEvent {
                event: d.event,
                shard_id: record.shard_id.clone(),
                sequence_number: record.sequence_number.clone(),
                sub_sequence_number: d.sub_sequence_number.unwrap_or(0),
                arrived_at: record.approximate_arrival,
            };
            push(d.index, Item::Event(event), position);
        }
        for (index, letter) in expanded.poison {
            // A damaged aggregate is dead-lettered whole: it covers every
            // sub-sequence of its record.
            let sub = letter.sub_sequence_number.unwrap_or(u32::MAX);
            let position = Position::new(&letter.sequence_number, Some(sub));
            push(index, Item::Poison(letter), position);
        }

        let mut outcome = BatchOutcome::default();
        for mut shard in shards {
            shard.items.sort_by(|a, b| a.1.cmp(&b.1));
            if let Err((index, error)) = self.archive_shard(stream, shard, deadline).await
                && outcome.first_failed.is_none_or(|f| index < f)
            {
                outcome.first_failed = Some(index);
                outcome.error = Some(error);
            }
        }
        if outcome.first_failed.is_some() {
            add(&self.counters.failed_batches, 1);
        }
        if let Some(latency) = &self.latency {
            // Committed: in a file the shard's archive checkpoint has taken.
            latency.record_committed(occurred, outcome.first_failed);
        }
        outcome
    }

    /// Archives one shard's part of the batch, part by part ([`cut_parts`]); on
    /// failure, or when `deadline` leaves no time for the next part, the index of
    /// the first Kinesis record not archived and why.
    async fn archive_shard(
        &self,
        stream: &str,
        shard: ShardBatch,
        deadline: Deadline,
    ) -> Result<(), (usize, String)> {
        let ShardBatch { shard_id, items } = shard;
        let key = if stream.is_empty() {
            shard_id.clone()
        } else {
            format!("{stream}/{shard_id}")
        };
        // What names the batch files: the shard, and which stream it belongs to (two
        // streams' shards share ids and may share positions).
        let source = flyhigh_core::archive::layout::source_name(stream, &shard_id);
        let Some(first_index) = items.iter().map(|(i, _, _)| *i).min() else {
            return Ok(());
        };
        let mut items = items;
        let mut letters_sent: Option<Position> = None;
        let mut known: Option<ArchiveCheckpoint> = None;
        let (mut conflicts, mut parts_done) = (0usize, 0u64);
        let mut slowest = Duration::ZERO;
        loop {
            if conflicts >= MAX_ATTEMPTS {
                let index = items.first().map_or(first_index, |(i, _, _)| *i);
                return Err((
                    index,
                    format!(
                        "shard {shard_id}: the archive checkpoint kept changing ({MAX_ATTEMPTS} attempts)"
                    ),
                ));
            }
            let head = items.first().map_or(first_index, |(i, _, _)| *i);
            let fail = |index: usize| move |e: StoreError| (index, e.to_string());
            let mut checkpoint = match known.take() {
                Some(checkpoint) => checkpoint,
                None => self
                    .checkpoints
                    .load(&key)
                    .await
                    .map_err(fail(head))?
                    .unwrap_or_default(),
            };
            if !checkpoint.pending.is_empty() {
                let promoted = self.promote(&checkpoint).await.map_err(fail(head))?;
                add(&self.counters.recovered_files, promoted);
                let cleared = checkpoint.promoted();
                if !self
                    .checkpoints
                    .save(&key, &cleared)
                    .await
                    .map_err(fail(head))?
                {
                    add(&self.counters.commit_conflicts, 1);
                    conflicts += 1;
                    continue;
                }
                checkpoint = cleared;
            }

            let before = items.len();
            items.retain(|(_, position, _)| !checkpoint.covers(position));
            add(
                &self.counters.already_archived,
                (before - items.len()) as u64,
            );
            let Some((index, _, _)) = items.first() else {
                return Ok(());
            };
            let index = *index;
            // At a part boundary: go on only if a part still fits before the deadline
            // (this invocation archived at least one, so the shard makes progress).
            let needed = PART_TIME_RESERVE.max(slowest * 2);
            if parts_done > 0 && !deadline.allows(needed) {
                add(&self.counters.deadline_stops, 1);
                return Err((
                    index,
                    format!(
                        "shard {shard_id}: stopped at a part boundary before the deadline \
                         ({parts_done} parts archived; the retry goes on from here)"
                    ),
                ));
            }
            let started = Instant::now();
            let fail = |e: StoreError| (index, e.to_string());

            let cut: Vec<(Position, Option<Partition>)> = items
                .iter()
                .map(|(_, position, item)| {
                    let partition = match item {
                        Item::Event(e) => Some(Partition::of(&e.event)),
                        Item::Poison(_) => None,
                    };
                    (position.clone(), partition)
                })
                .collect();
            let part = cut_parts(&source, &cut, self.limits)
                .into_iter()
                .next()
                .unwrap_or(0..items.len());
            drop(cut);
            let part_items = &items[part.clone()];
            let first = part_items[0].1.clone();
            let last = part_items[part_items.len() - 1].1.clone();

            // Dead letters before the commit: once the checkpoint passes a poison
            // record, no retry would send its letter.
            let letters: Vec<DeadLetter> = part_items
                .iter()
                .filter(|(_, p, _)| letters_sent.as_ref().is_none_or(|sent| p > sent))
                .filter_map(|(_, _, item)| match item {
                    Item::Poison(letter) => Some(letter.clone()),
                    Item::Event(_) => None,
                })
                .collect();
            if !letters.is_empty() {
                self.dead_letters
                    .send(&letters)
                    .await
                    .map_err(|e| (index, format!("dead-letter sink: {e}")))?;
                for letter in &letters {
                    tracing::warn!(processor = PROCESSOR, shard_id = %letter.shard_id,
                        sequence_number = %letter.sequence_number,
                        sub_sequence_number = ?letter.sub_sequence_number,
                        reason_kind = %letter.reason_kind, reason = %letter.reason,
                        "record dead-lettered");
                }
                add(&self.counters.dead_lettered, letters.len() as u64);
                letters_sent = Some(last.clone());
            }

            let events: Vec<ArchivedEvent> = part_items
                .iter()
                .filter_map(|(_, _, item)| match item {
                    Item::Event(e) => Some(e.clone()),
                    Item::Poison(_) => None,
                })
                .collect();
            let plan = plan_batch(&source, first.clone(), last.clone(), events);
            let keys: Vec<String> = plan.files.iter().map(|f| f.key.clone()).collect();
            let rows: u64 = plan.files.iter().map(|f| f.rows.len() as u64).sum();
            let metadata = batch_metadata(&shard_id, &plan.first, &plan.last);
            // Encoded one file at a time as the puts drain, at most `concurrency` in
            // flight: a part holds its decoded events and that many files' bytes. (A
            // vector of futures, not a mapped stream: a closure in the stream's type
            // makes the handler's future fail `Send` for callers that spawn it.)
            let puts: Vec<_> = plan
                .files
                .iter()
                .map(|file| self.put_staged(file, metadata.clone()))
                .collect();
            let mut puts = futures::stream::iter(puts).buffer_unordered(self.concurrency);
            let mut bytes = 0u64;
            while let Some(put) = puts.next().await {
                bytes += put.map_err(|e| (index, e))?;
            }
            drop(puts);
            drop(plan);

            let committed = checkpoint.commit(last.clone(), keys);
            if !self
                .checkpoints
                .save(&key, &committed)
                .await
                .map_err(fail)?
            {
                add(&self.counters.commit_conflicts, 1);
                conflicts += 1;
                continue;
            }
            add(&self.counters.rows, rows);
            add(&self.counters.files, committed.pending.len() as u64);
            add(&self.counters.bytes, bytes);
            add(&self.counters.parts, 1);
            let files = committed.pending.len();
            if committed.pending.is_empty() {
                known = Some(committed);
            } else {
                self.promote(&committed).await.map_err(fail)?;
                let promoted = committed.promoted();
                // Lost to a consumer that promoted and cleared them first: the same
                // end, but the checkpoint is reloaded.
                if self.checkpoints.save(&key, &promoted).await.map_err(fail)? {
                    known = Some(promoted);
                }
            }
            // The part's records are archived: not "already archived" on the next turn.
            items.drain(part);
            conflicts = 0;
            parts_done += 1;
            slowest = slowest.max(started.elapsed());
            tracing::debug!(processor = PROCESSOR, shard_id = %shard_id, first = %first.to_key(),
                last = %last.to_key(), rows, bytes, files, "batch part archived");
        }
    }

    /// Promotes every pending file of `checkpoint`; how many moved now (the rest had
    /// moved before). A file neither staged nor at its key is reported loudly
    /// ([`ArchiveStats::files_missing`]) and passed over: blocking the shard would
    /// not bring it back (see `docs/runbooks.md`).
    async fn promote(&self, checkpoint: &ArchiveCheckpoint) -> Result<u64, StoreError> {
        let moves: Vec<_> = checkpoint
            .pending
            .iter()
            .map(|key| self.promote_one(key))
            .collect();
        let mut moves = futures::stream::iter(moves).buffer_unordered(self.concurrency);
        let mut moved = 0;
        while let Some(one) = moves.next().await {
            moved += one?;
        }
        Ok(moved)
    }

    /// Promotes the pending file `key`: 1 if it moved now, 0 if it had moved before
    /// (or is missing, reported).
    async fn promote_one(&self, key: &str) -> Result<u64, StoreError> {
        if self.objects.promote(&staged_key(key), key).await? {
            return Ok(1);
        }
        if !self.objects.list(key).await?.iter().any(|o| o.key == key) {
            add(&self.counters.files_missing, 1);
            tracing::error!(processor = PROCESSOR, key = %key,
                "committed batch file missing: neither its staged copy nor the file exists \
                 (compacted since, or the staged copy expired); replay the shard's range if its rows are not in the hour");
        }
        Ok(0)
    }

    /// Encodes `file` and puts it under its staged key; its size in bytes.
    async fn put_staged(&self, file: &PlannedFile, metadata: Vec<KeyValue>) -> Result<u64, String> {
        let refs: Vec<&ArchivedEvent> = file.rows.iter().collect();
        let encoded = write_file(file.partition.table, &refs, &self.options, metadata)
            .map_err(|e| format!("encoding {}: {e}", file.key))?;
        let size = encoded.len() as u64;
        self.objects
            .put(&staged_key(&file.key), encoded)
            .await
            .map_err(|e| e.to_string())?;
        Ok(size)
    }
}

/// The footer metadata of batch files.
mod parquet_metadata {
    use flyhigh_core::archive::KeyValue;
    use flyhigh_core::records::Position;

    /// Names the shard and the range a batch file covers.
    pub fn batch_metadata(shard_id: &str, first: &Position, last: &Position) -> Vec<KeyValue> {
        vec![
            KeyValue::new("flyhigh.shard_id".to_string(), shard_id.to_string()),
            KeyValue::new("flyhigh.first".to_string(), first.to_key()),
            KeyValue::new("flyhigh.last".to_string(), last.to_key()),
        ]
    }
}
