//! The deployment's stream: in memory for a bounded demo, durable on disk for a
//! service. One type, so that the producer writes and the three mappings read it the
//! same way whichever it is.

use flyhigh_embedded::{DurableShardReader, DurableStream};
use flyhigh_producer::{Entry, EntryResult, LocalStream, ShardInfo, Transport, TransportError};
use flyhigh_runner::local::LocalShardReader;
use flyhigh_runner::{
    LocalSource, ReadOutcome, ShardReader, SourceError, SourceShard, StartPosition, StreamSource,
};

/// The stream of a local deployment. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub enum Stream {
    /// In memory (`flyhigh demo`): fast, gone when the process ends.
    Memory(LocalStream),
    /// SQLite on disk (`flyhigh serve`): acknowledged once synced, kept across
    /// restarts and crashes, an `event_id` stored once.
    Durable(DurableStream),
}

impl Stream {
    /// Marks the stream finished: readers end after its last record, puts fail.
    pub fn close(&self) {
        match self {
            Stream::Memory(s) => s.close(),
            Stream::Durable(s) => s.close(),
        }
    }

    /// The shards, in hash-key order.
    pub fn shards(&self) -> Vec<ShardInfo> {
        match self {
            Stream::Memory(s) => s.shards(),
            Stream::Durable(s) => s.shards(),
        }
    }
}

impl Transport for Stream {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        match self {
            Stream::Memory(s) => s.put(entries),
            Stream::Durable(s) => s.put(entries).await,
        }
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        Ok(self.shards())
    }

    fn shard_limits(&self) -> flyhigh_producer::ShardLimits {
        flyhigh_producer::ShardLimits::UNLIMITED
    }

    fn stream_name(&self) -> String {
        match self {
            Stream::Memory(s) => s.name().to_string(),
            Stream::Durable(s) => s.name().to_string(),
        }
    }
}

/// A reader of either stream.
pub enum Reader {
    /// Of the in-memory stream.
    Memory(LocalShardReader),
    /// Of the durable stream.
    Durable(DurableShardReader),
}

impl ShardReader for Reader {
    async fn read(&mut self, limit: usize) -> Result<ReadOutcome, SourceError> {
        match self {
            Reader::Memory(r) => r.read(limit).await,
            Reader::Durable(r) => r.read(limit).await,
        }
    }
}

impl StreamSource for Stream {
    type Reader = Reader;

    fn stream_arn(&self) -> String {
        match self {
            Stream::Memory(s) => s.arn(),
            Stream::Durable(s) => s.arn(),
        }
    }

    async fn shards(&self) -> Result<Vec<SourceShard>, SourceError> {
        match self {
            Stream::Memory(s) => LocalSource::new(s.clone()).shards().await,
            Stream::Durable(s) => StreamSource::shards(s).await,
        }
    }

    async fn open(&self, shard_id: &str, start: StartPosition) -> Result<Reader, SourceError> {
        match self {
            Stream::Memory(s) => Ok(Reader::Memory(
                LocalSource::new(s.clone()).open(shard_id, start).await?,
            )),
            Stream::Durable(s) => Ok(Reader::Durable(
                StreamSource::open(s, shard_id, start).await?,
            )),
        }
    }
}
