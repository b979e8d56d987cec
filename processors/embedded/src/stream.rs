//! A durable local stream: records as Kinesis holds them (KPL aggregates, sequence
//! numbers, arrival times, shards) in one SQLite file in WAL mode, acknowledged only
//! once synced to disk.
//!
//! It is what `flyhigh serve` writes to and the local event-source-mapping runner
//! reads from: the on-disk twin of the in-memory [`flyhigh_producer::LocalStream`],
//! with the same shard placement (MD5 of the partition key, or the explicit hash
//! key, over equal ranges), the same PutRecords limits
//! ([`flyhigh_producer::limits`]), sequence numbers in the same format and arrival
//! stamped by an injectable clock. On top of it:
//!
//! - **Durability with group commit.** One writer thread owns the write connection;
//!   [`DurableStream::put`] hands it the request and waits. The thread takes every
//!   request waiting, writes them in one transaction and commits with
//!   `synchronous=FULL`, then answers them all: one sync for many concurrent
//!   requests, and nothing answered `Ok` before its commit returned. Puts wait
//!   while [`MAX_PENDING_BYTES`] of requests are already queued: callers slow to
//!   the disk's pace instead of filling memory.
//! - **Event-id dedupe** (on by default, [`StreamConfig::dedupe_event_ids`]). Each
//!   user record's `event_id` (in an aggregate or alone) is recorded in the same
//!   transaction as the record; one already in the stream, or earlier in the same
//!   commit, is dropped, and an aggregate that lost records is re-encoded from the
//!   rest. A client's retry of an event is harmless, with no window between the
//!   check and the write. A record that is not a JSON event with an `event_id` is
//!   kept as it is (consumers dead-letter it). An entry left empty is not stored
//!   but still answered `Ok` with a sequence number: Kinesis numbers have gaps too.
//! - **Retention.** Records older than [`StreamConfig::retention`] by the stream's
//!   clock are deleted with their event ids, by the writer now and then and by
//!   [`DurableStream::trim`].
//! - **Crash recovery** is SQLite's: reopening after a kill, even mid-transaction,
//!   gives exactly the committed records, and the sequence numbers go on after the
//!   largest ever given out.
//! - **Readers** ([`DurableShardReader`], through
//!   [`StreamSource`](flyhigh_runner::StreamSource)) each have a read-only
//!   connection; in WAL mode they never block the writer. They wait for the
//!   writer's signal after each commit, or 20 ms, so another process's writes are
//!   seen too.
//!
//! Layout: `prepare` (pure: limits, placement, event ids, re-encoding), `writer`
//! (the thread and its transactions), `reader` (the shard reader and the
//! [`StreamSource`](flyhigh_runner::StreamSource) implementation).
//!
//! # Example
//!
//! ```
//! use flyhigh_embedded::stream::{DurableStream, StreamConfig};
//! use flyhigh_producer::{Entry, EntryResult};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let stream = DurableStream::open(&dir.path().join("stream.sqlite"), StreamConfig::new("events", 2))?;
//! let results = stream.put(&[Entry::new("FH0123-20261201", br#"{"not":"an event"}"#.to_vec())]).await?;
//! // Ok means synced to disk.
//! assert!(matches!(&results[0], EntryResult::Ok { sequence_number, .. } if sequence_number.len() == 56));
//! assert_eq!(stream.stats().shards.iter().map(|s| s.records).sum::<u64>(), 1);
//! stream.close();
//! # Ok(())
//! # }
//! ```

mod prepare;
mod reader;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flyhigh_producer::limits::entry_size;
use flyhigh_producer::{Entry, EntryResult, ShardInfo, ShardLimits, Transport, TransportError};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{Notify, Semaphore, oneshot};
use uuid::Uuid;

pub use reader::DurableShardReader;
use writer::{Command, Shared, Writer};

/// Bytes of put requests (data and partition keys) that may wait for the writer at
/// once; further puts wait. Bounds memory when callers outpace the disk's syncs.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// How long a reader or a stream operation waits for a SQLite lock held by another
/// connection (a trim, another process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables. `records` holds the Kinesis records, `event_ids` the event ids of
/// the user records they hold (for dedupe, trimmed with them), `meta` the shard
/// count and the next sequence number.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    shard INTEGER NOT NULL,
    partition_key TEXT NOT NULL,
    arrival_us INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_shard ON records (shard, seq);
CREATE INDEX IF NOT EXISTS records_by_arrival ON records (arrival_us);
CREATE TABLE IF NOT EXISTS event_ids (
    event_id BLOB PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_ids_by_seq ON event_ids (seq);
";

/// How a [`DurableStream`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// The stream's name (in its ARN and the producer's metrics). Default
    /// `flyhigh-events`.
    pub name: String,
    /// Shards over equal hash-key ranges, at least one; fixed when the file is
    /// created. Default 4.
    pub shards: usize,
    /// How long records are kept, by the stream's clock. Default 24 hours (Kinesis's
    /// default).
    pub retention: Duration,
    /// Drop user records whose `event_id` is already in the stream. Default true.
    pub dedupe_event_ids: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: "flyhigh-events".into(),
            shards: 4,
            retention: Duration::from_secs(24 * 60 * 60),
            dedupe_event_ids: true,
        }
    }
}

impl StreamConfig {
    /// A stream named `name` of `shards` shards, with the other defaults.
    pub fn new(name: impl Into<String>, shards: usize) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            shards,
            ..StreamConfig::default()
        }
    }

    /// Keeps records this long.
    pub fn retention(mut self, retention: Duration) -> StreamConfig {
        self.retention = retention;
        self
    }

    /// Turns event-id dedupe on or off.
    pub fn dedupe_event_ids(mut self, dedupe: bool) -> StreamConfig {
        self.dedupe_event_ids = dedupe;
        self
    }
}

/// Why the stream could not be opened or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A setting is out of range: fix the configuration.
    #[error("invalid stream configuration: {0}")]
    Config(String),
    /// The file was created with another shard count. Shards are fixed when the file
    /// is created: open it with the stored count, or use a new file.
    #[error(
        "the stream file {path} has {stored} shards but {configured} were asked for: open it with {stored} shards or use a new file"
    )]
    ShardCountMismatch {
        /// The file.
        path: PathBuf,
        /// The shard count it was created with.
        stored: usize,
        /// The shard count asked for.
        configured: usize,
    },
    /// The file could not be opened or created (permissions, not a SQLite file, disk
    /// full).
    #[error("cannot open the stream file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A read or write of the database failed; retrying may succeed.
    #[error("stream database error (retry): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread could not start or has stopped: reopen the stream.
    #[error("the stream's writer has stopped: {0}")]
    WriterStopped(String),
}

/// One shard's content, as [`DurableStream::stats`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShardStats {
    /// The shard's id.
    pub shard_id: String,
    /// Records stored.
    pub records: u64,
    /// Sequence number of the oldest record kept.
    pub first_sequence_number: Option<String>,
    /// Sequence number of the newest record.
    pub last_sequence_number: Option<String>,
    /// Arrival time of the newest record.
    pub latest_arrival: Option<DateTime<Utc>>,
}

/// Records a reader has not read yet in one shard ([`DurableStream::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// Records after the reader's position.
    pub records: u64,
    /// When the oldest of them arrived; `None` when there are none.
    pub oldest_arrival: Option<DateTime<Utc>>,
}

/// What the stream holds, and what its writer did since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamStats {
    /// Per shard, in shard order: what is stored (read from the file when opened,
    /// kept current by the writer).
    pub shards: Vec<ShardStats>,
    /// Transactions committed (each one sync).
    pub commits: u64,
    /// Put requests committed.
    pub requests: u64,
    /// Most requests one commit carried.
    pub max_requests_per_commit: u64,
    /// Kinesis records stored.
    pub records_written: u64,
    /// User records dropped because their event id was already in the stream.
    pub duplicates_dropped: u64,
    /// Records deleted by retention.
    pub records_trimmed: u64,
}

impl StreamStats {
    /// Put requests per commit, on average (0 before the first commit).
    pub fn requests_per_commit(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.requests as f64 / self.commits as f64
        }
    }
}

/// Formats the `n`th sequence number as [`flyhigh_producer::LocalStream`] does: 56
/// digits, increasing.
pub(crate) fn format_sequence_number(n: i64) -> String {
    format!("49{n:054}")
}

/// The number inside a sequence number of this stream, if it is one.
pub(crate) fn parse_sequence_number(s: &str) -> Option<i64> {
    if s.len() != 56 || !s.starts_with("49") {
        return None;
    }
    s[2..].parse().ok()
}

struct Inner {
    name: String,
    path: PathBuf,
    shards: Vec<ShardInfo>,
    dedupe: bool,
    closed: AtomicBool,
    shared: Arc<Shared>,
    /// `None` only while dropping.
    commands: Option<Sender<Command>>,
    /// KiB of put requests waiting for or in a commit (back-pressure).
    pending: Semaphore,
    writer: Option<JoinHandle<()>>,
    /// A read-only connection for [`DurableStream::contains_events`].
    lookups: Arc<Mutex<Option<Connection>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer ends when its channel closes; wait for it so that the file is
        // released when the last handle goes.
        self.commands = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A durable, sharded, Kinesis-like stream in one SQLite file. Cheap to clone
/// (shared); the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct DurableStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DurableStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStream")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("shards", &self.inner.shards.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl DurableStream {
    /// Creates the stream file at `path` (and its directory), or reopens it.
    ///
    /// Reopening keeps exactly what was committed, even after a crash, and numbers
    /// new records after the largest sequence number ever given out.
    ///
    /// # Errors
    ///
    /// [`StreamError::Config`] for zero shards or zero retention,
    /// [`StreamError::ShardCountMismatch`] when the file has another shard count,
    /// [`StreamError::Open`] when the file cannot be opened or set up.
    pub fn open(path: &Path, config: StreamConfig) -> Result<DurableStream, StreamError> {
        if config.shards == 0 {
            return Err(StreamError::Config(
                "a stream needs at least one shard".into(),
            ));
        }
        if config.retention.is_zero() {
            return Err(StreamError::Config(
                "retention must be longer than zero".into(),
            ));
        }
        let open_error = |source| StreamError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let mut conn = Connection::open(path).map_err(open_error)?;
        let (stored_shards, next) = setup(&mut conn, config.shards).map_err(open_error)?;
        if let Some(stored) = stored_shards
            && stored != config.shards
        {
            return Err(StreamError::ShardCountMismatch {
                path: path.to_path_buf(),
                stored,
                configured: config.shards,
            });
        }
        let shards = prepare::equal_shards(config.shards);
        let shard_ids: Vec<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
        let stats = StreamStats {
            shards: writer::shard_stats(&conn, &shard_ids).map_err(open_error)?,
            ..StreamStats::default()
        };
        let shared = Arc::new(Shared {
            clock: RwLock::new(Arc::new(Utc::now)),
            stats: Mutex::new(stats),
            committed: Notify::new(),
            retention: config.retention,
            shard_ids,
        });
        let writer = Writer {
            conn,
            shared: shared.clone(),
            next,
            commits_since_trim: 0,
            last_trim: Instant::now(),
        };
        let (commands, receiver) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("stream-writer-{}", config.name))
            .spawn(move || writer.run(receiver))
            .map_err(|e| {
                StreamError::WriterStopped(format!("cannot start the writer thread: {e}"))
            })?;
        tracing::info!(stream = %config.name, path = %path.display(), shards = config.shards, next_sequence = next, "durable stream opened");
        Ok(DurableStream {
            inner: Arc::new(Inner {
                name: config.name,
                path: path.to_path_buf(),
                shards,
                dedupe: config.dedupe_event_ids,
                closed: AtomicBool::new(false),
                shared,
                commands: Some(commands),
                writer: Some(handle),
                lookups: Arc::default(),
                pending: Semaphore::new(MAX_PENDING_BYTES / 1024),
            }),
        })
    }

    /// Stamps arrival times (and judges retention) with `clock` instead of the wall
    /// clock, for every clone of this stream: a pipeline that runs simulated time
    /// gives its own clock, so that arrival and event times are comparable.
    pub fn with_clock(self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        *self
            .inner
            .shared
            .clock
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(clock);
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file the stream lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// An ARN in the Kinesis format, for events built from this stream.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:local:000000000000:stream/{}",
            self.inner.name
        )
    }

    /// The shards, in hash-key order.
    pub fn shards(&self) -> Vec<ShardInfo> {
        self.inner.shards.clone()
    }

    /// The index of the shard owning a partition key.
    pub fn shard_for(&self, partition_key: &str) -> usize {
        prepare::shard_index(&self.inner.shards, flyhigh_schemas::hash_key(partition_key))
    }

    /// Appends records as PutRecords would, durably: the whole request is refused if
    /// it breaks a request limit; otherwise each entry gets its own result once the
    /// transaction holding it is committed and synced. Concurrent calls share
    /// commits.
    ///
    /// # Errors
    ///
    /// Waits while [`MAX_PENDING_BYTES`] of requests are already waiting for the
    /// disk: callers are slowed to what the disk syncs, rather than queueing without
    /// bound.
    ///
    /// # Errors
    ///
    /// [`TransportError::Permanent`] when the stream is closed or the request breaks
    /// a limit; [`TransportError::Transient`] when the commit failed (nothing of the
    /// request was written: retry).
    pub async fn put(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        if self.is_closed() {
            return Err(TransportError::Permanent(format!(
                "stream {} is closed",
                self.inner.name
            )));
        }
        prepare::check_request(entries)?;
        // Held until answered. A request is at most 5 MiB, within the bound.
        let kib = entries.iter().map(entry_size).sum::<usize>() / 1024 + 1;
        let _pending = self
            .inner
            .pending
            .acquire_many(u32::try_from(kib).unwrap_or(u32::MAX))
            .await
            .map_err(|_| {
                TransportError::Permanent(format!("stream {} is closed", self.inner.name))
            })?;
        let prepared = entries
            .iter()
            .map(|e| prepare::prepare(&self.inner.shards, e, self.inner.dedupe))
            .collect();
        let (reply, answer) = oneshot::channel();
        self.send(Command::Put {
            entries: prepared,
            reply,
        })
        .map_err(TransportError::Permanent)?;
        answer.await.map_err(|_| {
            TransportError::Transient(format!(
                "the writer of stream {} stopped before answering: the request may or may not be written",
                self.inner.name
            ))
        })?
    }

    /// Which of `ids` are event ids of user records in the stream (as dedupe sees
    /// them: only with [`StreamConfig::dedupe_event_ids`], until trimmed).
    ///
    /// # Errors
    ///
    /// [`StreamError::Sqlite`] when the file cannot be read.
    pub async fn contains_events(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StreamError> {
        let ids = ids.to_vec();
        self.lookup(move |conn| {
            let mut query = conn.prepare_cached("SELECT 1 FROM event_ids WHERE event_id = ?1")?;
            let mut found = HashSet::new();
            for id in ids {
                if query
                    .query_row([id.as_bytes().as_slice()], |_| Ok(()))
                    .optional()?
                    .is_some()
                {
                    found.insert(id);
                }
            }
            Ok(found)
        })
        .await
    }

    /// How far readers are behind: for each `(shard index, last sequence number
    /// read)` (`None`: nothing read yet), the records after it and the arrival time of
    /// the oldest of them, as Kinesis's `MillisBehindLatest` would be computed.
    ///
    /// # Errors
    ///
    /// [`StreamError::Sqlite`] when the file cannot be read.
    pub async fn backlog(
        &self,
        positions: Vec<(usize, Option<String>)>,
    ) -> Result<Vec<Backlog>, StreamError> {
        self.lookup(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT count(*), min(arrival_us) FROM records WHERE shard = ?1 AND seq > ?2",
            )?;
            positions
                .iter()
                .map(|(shard, after)| {
                    let after = after
                        .as_deref()
                        .and_then(parse_sequence_number)
                        .unwrap_or(0);
                    query.query_row(rusqlite::params![*shard as i64, after], |r| {
                        let records: i64 = r.get(0)?;
                        let oldest: Option<i64> = r.get(1)?;
                        Ok(Backlog {
                            records: records.max(0) as u64,
                            oldest_arrival: oldest.and_then(DateTime::from_timestamp_micros),
                        })
                    })
                })
                .collect()
        })
        .await
    }

    /// Runs `read` on the stream's read-only lookup connection (opened on first use,
    /// kept for the next), off the async threads.
    async fn lookup<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StreamError> {
        let path = self.inner.path.clone();
        let lookups = self.inner.lookups.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = lookups.lock().unwrap_or_else(|p| p.into_inner());
            let conn = match slot.take() {
                Some(conn) => conn,
                None => open_reader(&path)?,
            };
            let result = read(&conn);
            *slot = Some(conn);
            Ok(result?)
        })
        .await
        .map_err(|e| StreamError::WriterStopped(format!("the lookup task failed: {e}")))?
    }

    /// What the stream holds and what its writer did since it was opened.
    pub fn stats(&self) -> StreamStats {
        self.inner
            .shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies retention now (the writer also does it every 1,000 commits or
    /// minute); returns how many records were deleted.
    ///
    /// # Errors
    ///
    /// [`StreamError::Sqlite`] when the delete fails, [`StreamError::WriterStopped`]
    /// when the writer is gone.
    pub async fn trim(&self) -> Result<u64, StreamError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Trim { reply })
            .map_err(StreamError::WriterStopped)?;
        answer
            .await
            .map_err(|_| StreamError::WriterStopped("the writer stopped before answering".into()))?
    }

    /// Stops the stream (the service is shutting down): further puts fail, and
    /// readers see [`ReadOutcome::Stopped`](flyhigh_runner::ReadOutcome::Stopped) after
    /// the last record of each shard, never `Ended`: the shards go on when the file is
    /// opened again, and their readers' checkpoints must not mark them finished.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.shared.committed.notify_waiters();
    }

    /// Whether [`DurableStream::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    fn send(&self, command: Command) -> Result<(), String> {
        let stopped = || format!("the writer of stream {} has stopped", self.inner.name);
        self.inner
            .commands
            .as_ref()
            .ok_or_else(stopped)?
            .send(command)
            .map_err(|_| stopped())
    }
}

impl Transport for DurableStream {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        self.put(entries).await
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        Ok(self.shards())
    }

    /// A local file has no per-shard throughput limit; the disk's sync rate is the
    /// limit, and group commit spreads it over many requests.
    fn shard_limits(&self) -> ShardLimits {
        ShardLimits::UNLIMITED
    }

    fn stream_name(&self) -> String {
        self.name().to_string()
    }
}

/// Sets the write connection up (WAL, full sync, the tables); returns the stored
/// shard count (`None` for a new file, which gets `shards`) and the next sequence
/// number.
fn setup(conn: &mut Connection, shards: usize) -> rusqlite::Result<(Option<usize>, i64)> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "the file cannot be put in WAL mode (it is in {mode} mode)"
            )),
        ));
    }
    // In WAL mode, FULL syncs the log at every commit: a commit that returned
    // survives a power cut, not only a crash of the process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let stored: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE key = 'shards'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if stored.is_none() {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('shards', ?1)",
            [shards as i64],
        )?;
    }
    let stored_next: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let max_seq: Option<i64> = tx.query_row("SELECT MAX(seq) FROM records", [], |r| r.get(0))?;
    tx.commit()?;
    let next = stored_next
        .unwrap_or(1)
        .max(max_seq.map_or(1, |m| m + 1))
        .max(1);
    Ok((stored.map(|s| s.max(0) as usize), next))
}

/// A read-only connection to the stream file.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_local_streams_and_parse_back() {
        let s = format_sequence_number(7);
        assert_eq!(s.len(), 56);
        assert_eq!(s, format!("49{:054}", 7));
        assert_eq!(parse_sequence_number(&s), Some(7));
        assert_eq!(parse_sequence_number("1"), None);
        assert_eq!(parse_sequence_number(&format!("50{:054}", 7)), None);
    }

    #[test]
    fn a_bad_configuration_is_refused_before_the_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        assert!(matches!(
            DurableStream::open(&path, StreamConfig::new("s", 0)),
            Err(StreamError::Config(_))
        ));
        assert!(matches!(
            DurableStream::open(&path, StreamConfig::new("s", 1).retention(Duration::ZERO)),
            Err(StreamError::Config(_))
        ));
        assert!(!path.exists());
    }

    #[test]
    fn reopening_with_another_shard_count_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("s.sqlite");
        drop(DurableStream::open(&path, StreamConfig::new("s", 2)).unwrap());
        let error = DurableStream::open(&path, StreamConfig::new("s", 3)).unwrap_err();
        assert!(matches!(
            error,
            StreamError::ShardCountMismatch {
                stored: 2,
                configured: 3,
                ..
            }
        ));
        assert!(
            error.to_string().contains("open it with 2 shards"),
            "{error}"
        );
        assert!(DurableStream::open(&path, StreamConfig::new("s", 2)).is_ok());
    }
}
