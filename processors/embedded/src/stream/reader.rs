//! Reading the stream: [`DurableShardReader`], and the
//! [`StreamSource`](flyhigh_runner::StreamSource) the local event-source-mapping
//! runner reads through.
//!
//! Each reader has its own read-only connection (WAL: it never blocks the writer and
//! sees only committed records) and keeps the last sequence number it returned; a
//! read is `seq > last` in shard order, on the blocking pool. When there is nothing
//! new it waits for the writer's signal or [`READ_WAIT`], as the in-memory source
//! does, so records written by another process are seen too.

use std::time::Duration;

use chrono::DateTime;
use flyhigh_runner::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
    compare_sequence_numbers,
};
use rusqlite::Connection;

use super::{DurableStream, format_sequence_number, open_reader, parse_sequence_number};

/// How long a read waits for new records before answering "none yet".
pub(crate) const READ_WAIT: Duration = Duration::from_millis(20);

/// A position in one shard of a [`DurableStream`].
pub struct DurableShardReader {
    stream: DurableStream,
    shard: usize,
    /// The last sequence number returned (or skipped by the start position).
    last: i64,
    /// Taken while a query runs on the blocking pool; reopened if a query failed.
    conn: Option<Connection>,
}

impl std::fmt::Debug for DurableShardReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableShardReader")
            .field("stream", &self.stream.name())
            .field("shard", &self.shard)
            .field("last", &self.last)
            .finish()
    }
}

fn transient(what: &str, error: impl std::fmt::Display) -> SourceError {
    SourceError::Transient(format!("{what}: {error}"))
}

impl DurableShardReader {
    /// Up to `limit` records after `last`, from the blocking pool.
    async fn query(&mut self, limit: usize) -> Result<Vec<(i64, SourceRecord)>, SourceError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => open_reader(self.stream.path())
                .map_err(|e| transient("cannot open the stream file for reading", e))?,
        };
        let (shard, last) = (self.shard as i64, self.last);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (conn, rows) = tokio::task::spawn_blocking(move || {
            let rows = read_rows(&conn, shard, last, limit);
            (conn, rows)
        })
        .await
        .map_err(|e| transient("the stream read task failed", e))?;
        // A connection whose query failed is dropped: the next read opens a new one.
        let rows = rows.map_err(|e| transient("cannot read the stream file", e))?;
        self.conn = Some(conn);
        Ok(rows)
    }
}

/// The records of `shard` after `last`, in order. After a trim the first is the
/// oldest record kept, wherever `last` was.
fn read_rows(
    conn: &Connection,
    shard: i64,
    last: i64,
    limit: i64,
) -> rusqlite::Result<Vec<(i64, SourceRecord)>> {
    let mut query = conn.prepare_cached(
        "SELECT seq, partition_key, arrival_us, data FROM records \
         WHERE shard = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = query.query_map([shard, last, limit], |r| {
        let seq: i64 = r.get(0)?;
        Ok((
            seq,
            SourceRecord {
                sequence_number: format_sequence_number(seq),
                partition_key: r.get(1)?,
                approximate_arrival: DateTime::from_timestamp_micros(r.get(2)?).unwrap_or_default(),
                data: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}

impl ShardReader for DurableShardReader {
    async fn read(&mut self, limit: usize) -> Result<ReadOutcome, SourceError> {
        for waited in [false, true] {
            // Read `closed` before the records: a close after this point cannot hide
            // records committed before it.
            let closed = self.stream.is_closed();
            let shared = self.stream.inner.shared.clone();
            let notified = shared.committed.notified();
            let rows = self.query(limit).await?;
            if let Some((last, _)) = rows.last() {
                self.last = *last;
                return Ok(ReadOutcome::Records(
                    rows.into_iter().map(|(_, r)| r).collect(),
                ));
            }
            if closed {
                // The service is stopping; the shard itself never ends (the durable
                // stream does not reshard), so a restart reads on from here.
                return Ok(ReadOutcome::Stopped);
            }
            if !waited {
                let _ = tokio::time::timeout(READ_WAIT, notified).await;
            }
        }
        Ok(ReadOutcome::Records(Vec::new()))
    }
}

impl StreamSource for DurableStream {
    type Reader = DurableShardReader;

    fn stream_arn(&self) -> String {
        self.arn()
    }

    /// The durable stream never reshards: every shard is a root.
    async fn shards(&self) -> Result<Vec<SourceShard>, SourceError> {
        Ok(self
            .inner
            .shards
            .iter()
            .map(|s| SourceShard::root(s.shard_id.clone()))
            .collect())
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<DurableShardReader, SourceError> {
        let shard = self
            .inner
            .shards
            .iter()
            .position(|s| s.shard_id == shard_id)
            .ok_or_else(|| {
                SourceError::Permanent(format!("stream {} has no shard {shard_id}", self.name()))
            })?;
        let mut reader = DurableShardReader {
            stream: self.clone(),
            shard,
            last: 0,
            conn: None,
        };
        reader.last = match start {
            StartPosition::TrimHorizon => 0,
            StartPosition::Latest => {
                let path = self.path().to_path_buf();
                let (conn, last) = tokio::task::spawn_blocking(move || {
                    let conn = open_reader(&path)?;
                    let last =
                        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| {
                            r.get::<_, i64>(0)
                        })?;
                    Ok::<_, rusqlite::Error>((conn, last))
                })
                .await
                .map_err(|e| transient("the stream read task failed", e))?
                .map_err(|e| transient("cannot read the stream file", e))?;
                reader.conn = Some(conn);
                last
            }
            StartPosition::AfterSequenceNumber(seq) => match parse_sequence_number(&seq) {
                Some(n) => n,
                // Smaller than any number this stream gives: from the start.
                None if compare_sequence_numbers(&seq, &format_sequence_number(0)).is_lt() => 0,
                None => {
                    return Err(SourceError::Permanent(format!(
                        "{seq} is not a sequence number of stream {}",
                        self.name()
                    )));
                }
            },
        };
        Ok(reader)
    }
}
