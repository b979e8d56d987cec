//! The in-process [`LocalStream`] as a [`StreamSource`].

use std::time::Duration;

use flyhigh_producer::LocalStream;
use flyhigh_producer::local::LocalRead;

use crate::source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
    compare_sequence_numbers,
};

/// How long a read waits for new records before answering "none yet".
const READ_WAIT: Duration = Duration::from_millis(20);

/// Reads a [`LocalStream`].
#[derive(Debug, Clone)]
pub struct LocalSource {
    stream: LocalStream,
}

impl LocalSource {
    /// A source over a stream.
    pub fn new(stream: LocalStream) -> LocalSource {
        LocalSource { stream }
    }
}

/// A position in one shard of a [`LocalStream`].
pub struct LocalShardReader {
    stream: LocalStream,
    shard: usize,
    position: usize,
}

impl ShardReader for LocalShardReader {
    async fn read(&mut self, limit: usize) -> Result<ReadOutcome, SourceError> {
        for waited in [false, true] {
            match self.stream.read(self.shard, self.position, limit) {
                LocalRead::Ended => return Ok(ReadOutcome::Ended),
                LocalRead::Records(records) if records.is_empty() && !waited => {
                    self.stream.wait_for_records(READ_WAIT).await;
                }
                LocalRead::Records(records) => {
                    self.position += records.len();
                    return Ok(ReadOutcome::Records(
                        records
                            .into_iter()
                            .map(|r| SourceRecord {
                                sequence_number: r.sequence_number,
                                partition_key: r.partition_key,
                                approximate_arrival: r.approximate_arrival,
                                data: r.data.to_vec(),
                            })
                            .collect(),
                    ));
                }
            }
        }
        Ok(ReadOutcome::Records(Vec::new()))
    }
}

impl StreamSource for LocalSource {
    type Reader = LocalShardReader;

    fn stream_arn(&self) -> String {
        self.stream.arn()
    }

    /// The in-process stream never reshards: every shard is a root.
    async fn shards(&self) -> Result<Vec<SourceShard>, SourceError> {
        Ok(self
            .stream
            .shards()
            .into_iter()
            .map(|s| SourceShard::root(s.shard_id))
            .collect())
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<LocalShardReader, SourceError> {
        let shard = self
            .stream
            .shards()
            .iter()
            .position(|s| s.shard_id == shard_id)
            .ok_or_else(|| SourceError::Permanent(format!("no shard {shard_id}")))?;
        let position = match start {
            StartPosition::TrimHorizon => 0,
            StartPosition::Latest => self.shard_len(shard),
            StartPosition::AfterSequenceNumber(seq) => match self.stream.read(shard, 0, usize::MAX)
            {
                // The first record after the checkpoint, as AFTER_SEQUENCE_NUMBER.
                LocalRead::Records(records) => records
                    .iter()
                    .position(|r| compare_sequence_numbers(&r.sequence_number, &seq).is_gt())
                    .unwrap_or(records.len()),
                LocalRead::Ended => 0,
            },
        };
        Ok(LocalShardReader {
            stream: self.stream.clone(),
            shard,
            position,
        })
    }
}

impl LocalSource {
    fn shard_len(&self, shard: usize) -> usize {
        match self.stream.read(shard, 0, usize::MAX) {
            LocalRead::Records(records) => records.len(),
            LocalRead::Ended => 0,
        }
    }
}
