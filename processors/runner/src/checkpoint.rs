//! Checkpoints: how far each shard of a mapping has been processed, so that a
//! restarted runner goes on where the last one stopped.
//!
//! The runner saves a shard's checkpoint after each batch is done (handled, or sent
//! to the on-failure destination) and marks the shard finished once it was closed by
//! a reshard, read to its end and its last batch checkpointed. On start it loads the
//! checkpoint of every shard it lists: a finished shard is not read again, any other
//! is read `AFTER_SEQUENCE_NUMBER` its checkpoint.
//!
//! Two stores live here: [`MemoryCheckpoints`] (the default: a run starts from the
//! mapping's start position) and [`FileCheckpoints`] (one JSON file per mapping).
//!
//! # The checkpoint file
//!
//! ```json
//! {
//!   "version": 1,
//!   "streams": {
//!     "arn:aws:kinesis:us-east-1:000000000000:stream/flyhigh-events": {
//!       "shardId-000000000000": { "sequenceNumber": "4968...", "finished": true },
//!       "shardId-000000000001": { "sequenceNumber": "4968..." }
//!     }
//!   }
//! }
//! ```
//!
//! Keyed by stream ARN, then shard id. `sequenceNumber` is the last record whose
//! processing is done (a decimal string, compared as an integer); `finished` is
//! absent while the shard may still have records. The file is replaced whole on
//! each save: written to `<file>.tmp`, flushed to disk, then renamed over the file,
//! so a crash leaves either the old or the new document, never half of one. While a
//! [`FileCheckpoints`] is open it holds an exclusive lock on `<file>.lock`, so a second
//! consumer given the same file is refused at start instead of overwriting the first
//! one's checkpoints.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::source::compare_sequence_numbers;

/// Version of the checkpoint file format.
pub const CHECKPOINT_FILE_VERSION: u32 = 1;

/// Where one shard stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The last sequence number whose processing is done; reading resumes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// The shard was closed, read to its end, and its last batch checkpointed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
}

impl Checkpoint {
    /// Moves the checkpoint to `sequence_number` unless it is already past it:
    /// a checkpoint never goes back.
    pub fn advance(&mut self, sequence_number: &str) {
        let behind = self
            .sequence_number
            .as_deref()
            .is_none_or(|current| compare_sequence_numbers(current, sequence_number).is_lt());
        if behind {
            self.sequence_number = Some(sequence_number.to_string());
        }
    }
}

/// Why a checkpoint could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a checkpoint document: fix or remove it by hand rather than
    /// let the runner start over and process every record again.
    #[error("checkpoint file {} is not a checkpoint document: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process has the file open: each consumer needs a file of its own (two
    /// writers would overwrite each other's checkpoints).
    #[error(
        "checkpoint file {} is in use by another process: give each consumer its own checkpoint file",
        path.display()
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// Another store (a database) failed.
    #[error("checkpoint store: {0}")]
    Store(String),
}

/// Where checkpoints are kept.
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint of a shard, if one was saved.
    fn load(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, CheckpointError>> + Send;

    /// Records that every record up to `sequence_number` is done. Never moves a
    /// checkpoint back.
    fn save(
        &self,
        stream: &str,
        shard_id: &str,
        sequence_number: &str,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Records that the shard is drained: it is never read again.
    fn finish(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;
}

/// Checkpoints of every shard of a mapping, by stream and shard; the file document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointTable {
    /// The format version, [`CHECKPOINT_FILE_VERSION`].
    pub version: u32,
    /// Stream ARN → shard id → checkpoint.
    pub streams: BTreeMap<String, BTreeMap<String, Checkpoint>>,
}

impl CheckpointTable {
    /// An empty table.
    pub fn new() -> CheckpointTable {
        CheckpointTable {
            version: CHECKPOINT_FILE_VERSION,
            streams: BTreeMap::new(),
        }
    }

    /// The checkpoint of a shard.
    pub fn get(&self, stream: &str, shard_id: &str) -> Option<&Checkpoint> {
        self.streams.get(stream)?.get(shard_id)
    }

    fn entry(&mut self, stream: &str, shard_id: &str) -> &mut Checkpoint {
        self.streams
            .entry(stream.to_string())
            .or_default()
            .entry(shard_id.to_string())
            .or_default()
    }

    /// Advances a shard's checkpoint; says whether anything changed.
    pub fn save(&mut self, stream: &str, shard_id: &str, sequence_number: &str) -> bool {
        let checkpoint = self.entry(stream, shard_id);
        let before = checkpoint.sequence_number.clone();
        checkpoint.advance(sequence_number);
        checkpoint.sequence_number != before
    }

    /// Marks a shard finished; says whether anything changed.
    pub fn finish(&mut self, stream: &str, shard_id: &str) -> bool {
        let checkpoint = self.entry(stream, shard_id);
        !std::mem::replace(&mut checkpoint.finished, true)
    }
}

/// Checkpoints in memory: gone with the process.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    table: Mutex<CheckpointTable>,
}

impl MemoryCheckpoints {
    /// A copy of every checkpoint.
    pub fn table(&self) -> CheckpointTable {
        lock(&self.table).clone()
    }
}

impl CheckpointStore for MemoryCheckpoints {
    async fn load(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(lock(&self.table).get(stream, shard_id).cloned())
    }

    async fn save(
        &self,
        stream: &str,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), CheckpointError> {
        lock(&self.table).save(stream, shard_id, sequence_number);
        Ok(())
    }

    async fn finish(&self, stream: &str, shard_id: &str) -> Result<(), CheckpointError> {
        lock(&self.table).finish(stream, shard_id);
        Ok(())
    }
}

/// Checkpoints in a JSON file (format in the [module docs](self)), one file per
/// mapping.
///
/// Every change rewrites the file (temp file, `fsync`, rename) before the call
/// returns, under a lock shared by the mapping's shards. The writes are small and
/// synchronous: a save per batch costs about one `fsync`.
#[derive(Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
    table: Mutex<CheckpointTable>,
    /// `<file>.lock`, locked exclusively for as long as this value lives (the OS
    /// releases it if the process dies).
    _lock: std::fs::File,
}

impl FileCheckpoints {
    /// Opens the file, or starts an empty table when it does not exist yet (its
    /// directory is created), and locks it against other processes until dropped.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read or is not a checkpoint document, or
    /// another process has it open ([`CheckpointError::InUse`]).
    pub fn open(path: impl Into<PathBuf>) -> Result<FileCheckpoints, CheckpointError> {
        let path = path.into();
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(sibling(&path, ".lock"))
            .map_err(io)?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CheckpointError::InUse { path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let table = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CheckpointTable::new(),
            Err(e) => return Err(io(e)),
        };
        Ok(FileCheckpoints {
            path,
            table: Mutex::new(table),
            _lock: lock_file,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of every checkpoint.
    pub fn table(&self) -> CheckpointTable {
        lock(&self.table).clone()
    }

    /// Applies `change` and writes the table when it changed.
    fn update(
        &self,
        change: impl FnOnce(&mut CheckpointTable) -> bool,
    ) -> Result<(), CheckpointError> {
        let mut table = lock(&self.table);
        let mut next = table.clone();
        if change(&mut next) {
            write_atomically(&self.path, &next)?;
            *table = next;
        }
        Ok(())
    }
}

impl CheckpointStore for FileCheckpoints {
    async fn load(
        &self,
        stream: &str,
        shard_id: &str,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(lock(&self.table).get(stream, shard_id).cloned())
    }

    async fn save(
        &self,
        stream: &str,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), CheckpointError> {
        self.update(|t| t.save(stream, shard_id, sequence_number))
    }

    async fn finish(&self, stream: &str, shard_id: &str) -> Result<(), CheckpointError> {
        self.update(|t| t.finish(stream, shard_id))
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<CheckpointTable, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let table: CheckpointTable =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if table.version != CHECKPOINT_FILE_VERSION {
        return Err(invalid(format!(
            "version {} (this runner reads version {CHECKPOINT_FILE_VERSION})",
            table.version
        )));
    }
    Ok(table)
}

/// `path` with `suffix` appended to its name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn write_atomically(path: &Path, table: &CheckpointTable) -> Result<(), CheckpointError> {
    let tmp = sibling(path, ".tmp");
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(table).map_err(|e| io(std::io::Error::other(e)))?;
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

/// A poisoned lock still holds a consistent table: every change is made on a copy
/// and swapped in only once written.
fn lock(table: &Mutex<CheckpointTable>) -> std::sync::MutexGuard<'_, CheckpointTable> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kinesis:local:000000000000:stream/s";

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "flyhigh-checkpoints-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_checkpoint_never_moves_back_whatever_the_digit_count() {
        let mut table = CheckpointTable::new();
        assert!(table.save(ARN, "s0", "9"));
        assert!(table.save(ARN, "s0", "10"), "10 is after 9");
        assert!(!table.save(ARN, "s0", "9"));
        assert_eq!(
            table.get(ARN, "s0").unwrap().sequence_number.as_deref(),
            Some("10")
        );
        assert!(table.finish(ARN, "s0"));
        assert!(!table.finish(ARN, "s0"));
        assert_eq!(table.get(ARN, "s1"), None);
    }

    #[tokio::test]
    async fn the_file_survives_a_reopen_and_holds_the_documented_format() {
        let path = temp_dir("reopen").join("nested/mapping.json");
        let store = FileCheckpoints::open(&path).unwrap();
        assert_eq!(store.load(ARN, "shardId-0").await.unwrap(), None);
        let seq = "49680733449988888077045701118359641833282381966127136770";
        store.save(ARN, "shardId-0", seq).await.unwrap();
        store.save(ARN, "shardId-1", "3").await.unwrap();
        store.finish(ARN, "shardId-1").await.unwrap();
        drop(store);

        let reopened = FileCheckpoints::open(&path).unwrap();
        assert_eq!(
            reopened.load(ARN, "shardId-0").await.unwrap(),
            Some(Checkpoint {
                sequence_number: Some(seq.into()),
                finished: false
            })
        );
        assert!(
            reopened
                .load(ARN, "shardId-1")
                .await
                .unwrap()
                .unwrap()
                .finished
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["streams"][ARN]["shardId-0"]["sequenceNumber"], seq);
        assert_eq!(json["streams"][ARN]["shardId-1"]["finished"], true);
        assert!(json["streams"][ARN]["shardId-0"].get("finished").is_none());
        assert!(
            !path.with_extension("json.tmp").exists(),
            "the temp file is renamed"
        );
    }

    #[test]
    fn regression_a_checkpoint_file_is_refused_while_another_consumer_has_it_open() {
        // Two `flyhigh consume` processes on the default file raced on its temp file
        // and one failed mid-run with "No such file or directory".
        let path = temp_dir("in-use").join("checkpoints.json");
        let first = FileCheckpoints::open(&path).expect("first open");
        let err = FileCheckpoints::open(&path).unwrap_err();
        assert!(matches!(err, CheckpointError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("its own checkpoint file"), "{err}");
        drop(first);
        FileCheckpoints::open(&path).expect("free again once the first is closed");
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_document_is_refused() {
        let dir = temp_dir("invalid");
        let garbage = dir.join("garbage.json");
        std::fs::write(&garbage, b"{not json").unwrap();
        assert!(matches!(
            FileCheckpoints::open(&garbage),
            Err(CheckpointError::Invalid { .. })
        ));
        let future = dir.join("future.json");
        std::fs::write(&future, br#"{"version": 2, "streams": {}}"#).unwrap();
        assert!(matches!(
            FileCheckpoints::open(&future),
            Err(CheckpointError::Invalid { .. })
        ));
    }
}
