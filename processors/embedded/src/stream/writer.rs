//! The writer thread: the one owner of the stream's write connection, and the group
//! commit.
//!
//! Callers send their prepared requests over a channel, each with a oneshot for
//! the answer. The thread takes every request waiting, writes them all in one
//! SQLite transaction, commits (WAL, `synchronous=FULL`: the commit returns once
//! the log is synced) and only then answers them all. Under concurrency many
//! requests share one sync; alone, a request pays one sync, as it must.
//!
//! The same thread applies retention now and then (every [`TRIM_EVERY_COMMITS`]
//! commits or [`TRIM_EVERY`]) and when asked ([`Command::Trim`]), so a trim never
//! races a write.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flyhigh_producer::{EntryResult, TransportError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};

use super::prepare::{PreparedEntry, without};
use super::{ShardStats, StreamError, StreamStats, format_sequence_number};

/// Requests written in one transaction at most: bounds a commit's size (and so the
/// wait of the first request in it) when callers outpace the disk.
pub(crate) const MAX_REQUESTS_PER_COMMIT: usize = 1_024;

/// Retention is applied after this many commits...
pub(crate) const TRIM_EVERY_COMMITS: u64 = 1_000;

/// ...or this long after the last trim, whichever comes first (checked when the
/// thread wakes, at least this often).
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(60);

/// What stamps arrival times.
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What the writer is asked to do.
pub(crate) enum Command {
    /// Store one PutRecords request; answer with one result per entry.
    Put {
        entries: Vec<PreparedEntry>,
        reply: oneshot::Sender<Result<Vec<EntryResult>, TransportError>>,
    },
    /// Apply retention now; answer with the records deleted.
    Trim {
        reply: oneshot::Sender<Result<u64, StreamError>>,
    },
}

/// What the writer shares with the stream's handles.
pub(crate) struct Shared {
    pub clock: RwLock<Clock>,
    pub stats: Mutex<StreamStats>,
    /// Signalled after every commit, for readers waiting for records.
    pub committed: Notify,
    pub retention: Duration,
    pub shard_ids: Vec<String>,
}

impl Shared {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let clock = self.clock.read().unwrap_or_else(|p| p.into_inner());
        clock()
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, StreamStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer's own state.
pub(crate) struct Writer {
    pub conn: Connection,
    pub shared: Arc<Shared>,
    /// The next sequence number to give out (the stored one wins if larger: another
    /// process may have written).
    pub next: i64,
    pub commits_since_trim: u64,
    pub last_trim: Instant,
}

/// A put as the transaction sees it, with where its answer goes.
struct Put {
    entries: Vec<PreparedEntry>,
    reply: oneshot::Sender<Result<Vec<EntryResult>, TransportError>>,
}

/// What one commit wrote, applied to the stats once it is durable.
#[derive(Default)]
struct Written {
    records: u64,
    dropped: u64,
    /// Per shard: records, first and last sequence number stored.
    shards: Vec<(u64, Option<i64>, Option<i64>)>,
}

impl Writer {
    /// Serves commands until every handle of the stream is gone.
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        loop {
            let first = match commands.recv_timeout(TRIM_EVERY) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.trim_if_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut puts = Vec::new();
            let mut trims = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next {
                match command {
                    Command::Put { entries, reply } => puts.push(Put { entries, reply }),
                    Command::Trim { reply } => trims.push(reply),
                }
                next = if puts.len() < MAX_REQUESTS_PER_COMMIT {
                    commands.try_recv().ok()
                } else {
                    None
                };
            }
            if !puts.is_empty() {
                self.commit(puts);
            }
            for reply in trims {
                let _ = reply.send(self.trim());
            }
            self.trim_if_due();
        }
    }

    /// Writes `puts` in one transaction and answers them after the commit.
    fn commit(&mut self, puts: Vec<Put>) {
        let now = self.shared.now();
        let requests = puts.len() as u64;
        match self.write(&puts, now) {
            Ok((answers, written)) => {
                self.commits_since_trim += 1;
                {
                    let mut stats = self.shared.stats();
                    stats.commits += 1;
                    stats.requests += requests;
                    stats.max_requests_per_commit = stats.max_requests_per_commit.max(requests);
                    stats.records_written += written.records;
                    stats.duplicates_dropped += written.dropped;
                    for (shard, (records, first, last)) in
                        stats.shards.iter_mut().zip(&written.shards)
                    {
                        if *records == 0 {
                            continue;
                        }
                        shard.records += records;
                        if shard.first_sequence_number.is_none() {
                            shard.first_sequence_number = first.map(format_sequence_number);
                        }
                        shard.last_sequence_number = last.map(format_sequence_number);
                        shard.latest_arrival = Some(now);
                    }
                }
                self.shared.committed.notify_waiters();
                for (put, answer) in puts.into_iter().zip(answers) {
                    let _ = put.reply.send(Ok(answer));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests, "stream commit failed; the requests are answered with a retryable error");
                for put in puts {
                    let _ = put.reply.send(Err(TransportError::Transient(format!(
                        "the stream could not commit the request (nothing of it was written; retry): {error}"
                    ))));
                }
            }
        }
    }

    /// The transaction of one commit. Sequence numbers are given to every entry,
    /// stored or not (a gap is what Kinesis numbers have too).
    fn write(
        &mut self,
        puts: &[Put],
        now: DateTime<Utc>,
    ) -> rusqlite::Result<(Vec<Vec<EntryResult>>, Written)> {
        let arrival = now.timestamp_micros();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored_next: Option<i64> = tx
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let mut n = self.next.max(stored_next.unwrap_or(1));
        let mut written = Written {
            shards: vec![(0, None, None); self.shared.shard_ids.len()],
            ..Written::default()
        };
        let mut answers = Vec::with_capacity(puts.len());
        {
            let mut insert_record = tx.prepare_cached(
                "INSERT INTO records (seq, shard, partition_key, arrival_us, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut insert_id = tx.prepare_cached(
                "INSERT OR IGNORE INTO event_ids (event_id, seq) VALUES (?1, ?2)",
            )?;
            let mut dropped = Vec::new();
            for put in puts {
                let mut results = Vec::with_capacity(put.entries.len());
                for entry in &put.entries {
                    let seq = n;
                    n += 1;
                    dropped.clear();
                    for (i, id) in entry.event_ids.iter().enumerate() {
                        // Already in the stream, or earlier in this transaction.
                        if let Some(id) = id
                            && insert_id.execute(params![id.as_bytes().as_slice(), seq])? == 0
                        {
                            dropped.push(i);
                        }
                    }
                    written.dropped += dropped.len() as u64;
                    if let Some(data) = without(entry, &dropped) {
                        insert_record.execute(params![
                            seq,
                            entry.shard as i64,
                            entry.partition_key,
                            arrival,
                            data.as_ref()
                        ])?;
                        written.records += 1;
                        if let Some(shard) = written.shards.get_mut(entry.shard) {
                            shard.0 += 1;
                            shard.1.get_or_insert(seq);
                            shard.2 = Some(seq);
                        }
                    }
                    results.push(EntryResult::Ok {
                        shard_id: self.shared.shard_ids[entry.shard].clone(),
                        sequence_number: format_sequence_number(seq),
                    });
                }
                answers.push(results);
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [n],
        )?;
        tx.commit()?;
        self.next = n;
        Ok((answers, written))
    }

    fn trim_if_due(&mut self) {
        let due =
            self.commits_since_trim >= TRIM_EVERY_COMMITS || self.last_trim.elapsed() >= TRIM_EVERY;
        if due && let Err(error) = self.trim() {
            tracing::warn!(%error, "stream retention failed; it is tried again later");
        }
    }

    /// Deletes the records older than the retention (by the stream's clock) with
    /// their event ids; returns how many records went.
    pub(crate) fn trim(&mut self) -> Result<u64, StreamError> {
        self.commits_since_trim = 0;
        self.last_trim = Instant::now();
        let retention =
            chrono::Duration::from_std(self.shared.retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = self
            .shared
            .now()
            .checked_sub_signed(retention)
            .map_or(i64::MIN, |t| t.timestamp_micros());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM event_ids WHERE seq IN (SELECT seq FROM records WHERE arrival_us < ?1)",
            [cutoff],
        )?;
        let deleted = tx.execute("DELETE FROM records WHERE arrival_us < ?1", [cutoff])? as u64;
        tx.commit()?;
        if deleted > 0 {
            let shards = shard_stats(&self.conn, &self.shared.shard_ids)?;
            let mut stats = self.shared.stats();
            stats.shards = shards;
            stats.records_trimmed += deleted;
            tracing::info!(deleted, "stream retention applied");
        }
        Ok(deleted)
    }
}

/// Each shard's records, first and last sequence numbers and latest arrival, as
/// stored.
pub(crate) fn shard_stats(
    conn: &Connection,
    shard_ids: &[String],
) -> rusqlite::Result<Vec<ShardStats>> {
    let mut shards: Vec<ShardStats> = shard_ids
        .iter()
        .map(|id| ShardStats {
            shard_id: id.clone(),
            ..ShardStats::default()
        })
        .collect();
    let mut query = conn.prepare(
        "SELECT shard, COUNT(*), MIN(seq), MAX(seq), MAX(arrival_us) FROM records GROUP BY shard",
    )?;
    let rows = query.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (shard, count, first, last, arrival) = row?;
        if let Some(s) = usize::try_from(shard).ok().and_then(|i| shards.get_mut(i)) {
            s.records = count.max(0) as u64;
            s.first_sequence_number = Some(format_sequence_number(first));
            s.last_sequence_number = Some(format_sequence_number(last));
            s.latest_arrival = DateTime::from_timestamp_micros(arrival);
        }
    }
    Ok(shards)
}
