//! Append-only JSON lines files: the dead-letter sink and the on-failure destination
//! of the embedded default.
//!
//! One entry is one JSON object on one line, so the files can be tailed, grepped,
//! read with `jq -c`, loaded by DuckDB (`read_json_auto`) and replayed by the CLI.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use flyhigh_core::{DeadLetter, DeadLetterSink, StoreError};
use flyhigh_runner::failure::{BatchFailure, FailureDestination};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What went wrong with a JSON lines file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonLinesError {
    /// Opening, writing or reading the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A line is not the JSON the reader expected.
    #[error("{}:{line}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An entry could not be serialized (nothing was written).
    #[error("serializing an entry: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl JsonLinesError {
    /// The error as a store error, by what the caller must do: an interrupted write
    /// is worth a retry; a missing directory, a full disk or a permission needs an
    /// operator (the batch then fails and is retried or sent to the failure
    /// destination, never dropped).
    pub fn into_store_error(self) -> StoreError {
        match &self {
            JsonLinesError::Io { source, .. }
                if matches!(
                    source.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) =>
            {
                StoreError::Transient(self.to_string())
            }
            _ => StoreError::Permanent(self.to_string()),
        }
    }
}

/// An append-only JSON lines file, safe to share between tasks and threads.
///
/// # Durability
///
/// Every [`append`](Self::append) hands all of its lines to the operating system in
/// one `write` before it returns, so they survive a crash of the process. They reach
/// the disk when the kernel writes its page cache back, so a power loss may lose the
/// last seconds of them. That is the right default for the local pipeline: the same
/// records are still in the source or in the SQLite WAL, and an `fsync` per batch
/// would cost milliseconds. Turn on [`sync_data`](Self::sync_data) to `fsync` (data
/// only) before every `append` returns, when the file is the only copy that matters.
///
/// # Why no `BufWriter`
///
/// Entries are serialized outside the lock into one buffer, then written with one
/// `write_all`, so a `BufWriter` would only add a copy; worse, after a failed flush it
/// would keep the half-written entry and prepend it to the next one. Instead a failed
/// write is cut off again (the file is truncated to its length before the write), so
/// the file only ever holds whole lines.
#[derive(Debug)]
pub struct JsonLinesFile {
    path: PathBuf,
    file: Mutex<Appender>,
    sync_data: bool,
}

#[derive(Debug)]
struct Appender {
    file: File,
    /// A failed write could not be cut off: start the next one on a fresh line, so
    /// that only the torn entry is unreadable, not the next one too.
    torn: bool,
}

impl JsonLinesFile {
    /// Opens `path` for appending, creating it and its parent directories if missing.
    /// Entries already in the file are kept.
    ///
    /// # Errors
    ///
    /// [`JsonLinesError::Io`] when the directory or the file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, JsonLinesError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| JsonLinesError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        Ok(JsonLinesFile {
            file: Mutex::new(Appender { file, torn: false }),
            path,
            sync_data: false,
        })
    }

    /// Whether every [`append`](Self::append) waits for `fsync` (of the data; off by
    /// default, see [Durability](Self#durability)).
    #[must_use]
    pub fn sync_data(mut self, on: bool) -> Self {
        self.sync_data = on;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per entry, all of them or none (short of a crash in the
    /// middle of the write), and flushes them to the operating system.
    ///
    /// # Errors
    ///
    /// [`JsonLinesError::Serialize`] if an entry cannot be serialized (nothing is
    /// written), [`JsonLinesError::Io`] if the write fails.
    pub fn append<T: Serialize>(&self, entries: &[T]) -> Result<(), JsonLinesError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(256 * entries.len());
        for entry in entries {
            serde_json::to_writer(&mut buf, entry).map_err(JsonLinesError::Serialize)?;
            buf.push(b'\n');
        }
        // The lock only guards the file; no panic can happen while it is held, and if
        // one did the file would still hold whole lines.
        let mut appender = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        appender
            .write(&buf, self.sync_data)
            .map_err(|source| JsonLinesError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

impl Appender {
    fn write(&mut self, buf: &[u8], sync_data: bool) -> io::Result<()> {
        if self.torn {
            self.file.write_all(b"\n")?;
            self.torn = false;
        }
        let start = self.file.metadata()?.len();
        if let Err(e) = self.file.write_all(buf) {
            // O_APPEND writes go to the end whatever the cursor, so truncating is all
            // it takes to undo a partial write.
            self.torn = self.file.set_len(start).is_err();
            return Err(e);
        }
        // `File` has no user-space buffer: `flush` is a no-op kept for clarity.
        self.file.flush()?;
        if sync_data {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl DeadLetterSink for JsonLinesFile {
    /// One [`DeadLetter`] per line.
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        self.append(letters)
            .map_err(JsonLinesError::into_store_error)
    }
}

impl FailureDestination for JsonLinesFile {
    /// One [`BatchFailure`] per line.
    async fn send(&self, failure: &BatchFailure) -> Result<(), String> {
        self.append(std::slice::from_ref(failure))
            .map_err(|e| e.to_string())
    }
}

/// Reads every entry of a JSON lines file, in order; blank lines are skipped.
///
/// A last line without its newline that does not parse is the tail of a write cut
/// short by a crash, and is skipped: the writer had not returned, so the entry was
/// never acknowledged. Any other line that does not parse is an error naming it.
///
/// # Errors
///
/// [`JsonLinesError::Io`] if the file cannot be read (a missing file included),
/// [`JsonLinesError::Parse`] for a line that is not a `T`.
pub fn read_all<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>, JsonLinesError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| JsonLinesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.len() - 1;
    let mut out = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(entry) => out.push(entry),
            Err(_) if i == last && !complete => break,
            Err(source) => {
                return Err(JsonLinesError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use flyhigh_runner::failure::KinesisBatchInfo;

    use super::*;

    fn letter(n: usize) -> DeadLetter {
        DeadLetter {
            processor: "inventory".into(),
            shard_id: "shardId-000000000001".into(),
            sequence_number: format!("4959000000000000000000000000000000000000000000000000{n:04}"),
            sub_sequence_number: None,
            partition_key: "FH0123-20261201".into(),
            approximate_arrival: Some(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()),
            reason_kind: "invalid_json".into(),
            reason: "expected value at line 1 column 1".into(),
            data_base64: "bm90IGpzb24=".into(),
        }
    }

    fn failure() -> BatchFailure {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        BatchFailure {
            condition: "RetryAttemptsExhausted".into(),
            attempts: 3,
            timestamp: at,
            kinesis_batch_info: KinesisBatchInfo {
                shard_id: "shardId-000000000000".into(),
                start_sequence_number: "1".into(),
                end_sequence_number: "9".into(),
                approximate_arrival_of_first_record: at,
                approximate_arrival_of_last_record: at,
                batch_size: 9,
                stream_arn: "arn:aws:kinesis:local:000000000000:stream/flyhigh-events".into(),
            },
            records_base64: vec!["e30=".into()],
        }
    }

    #[tokio::test]
    async fn dead_letters_round_trip_one_per_line() {
        // Given a file in a directory that does not exist yet
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/dead-letters.jsonl");
        let file = JsonLinesFile::create(&path).unwrap();

        // When two batches of letters are sent
        DeadLetterSink::send(&file, &[letter(1), letter(2)])
            .await
            .unwrap();
        DeadLetterSink::send(&file, &[letter(3)]).await.unwrap();
        DeadLetterSink::send(&file, &[]).await.unwrap();

        // Then each letter is one line, read back equal and in order
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        let back: Vec<DeadLetter> = read_all(&path).unwrap();
        assert_eq!(back, vec![letter(1), letter(2), letter(3)]);
    }

    #[tokio::test]
    async fn batch_failures_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed-batches.jsonl");
        let file = JsonLinesFile::create(&path).unwrap().sync_data(true);

        FailureDestination::send(&file, &failure()).await.unwrap();
        FailureDestination::send(&file, &failure()).await.unwrap();

        let back: Vec<BatchFailure> = read_all(&path).unwrap();
        assert_eq!(back, vec![failure(), failure()]);
        // Lambda's field names, so the local file reads like an on-failure record.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("\"kinesisBatchInfo\"")
        );
    }

    #[tokio::test]
    async fn reopening_appends_after_existing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letters.jsonl");
        DeadLetterSink::send(&JsonLinesFile::create(&path).unwrap(), &[letter(1)])
            .await
            .unwrap();
        DeadLetterSink::send(&JsonLinesFile::create(&path).unwrap(), &[letter(2)])
            .await
            .unwrap();

        let back: Vec<DeadLetter> = read_all(&path).unwrap();
        assert_eq!(back, vec![letter(1), letter(2)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sends_never_interleave_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letters.jsonl");
        let file = std::sync::Arc::new(JsonLinesFile::create(&path).unwrap());

        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let file = file.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let batch: Vec<_> = (0..5).map(|j| letter(t * 1000 + i * 10 + j)).collect();
                        DeadLetterSink::send(&*file, &batch).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }

        let back: Vec<DeadLetter> = read_all(&path).unwrap();
        assert_eq!(back.len(), 8 * 50 * 5);
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letters.jsonl");
        let good = serde_json::to_string(&letter(1)).unwrap();

        std::fs::write(&path, format!("{good}\n\n{}", &good[..good.len() / 2])).unwrap();
        assert_eq!(read_all::<DeadLetter>(&path).unwrap(), vec![letter(1)]);

        std::fs::write(&path, format!("{good}\n{{\"processor\":\n{good}\n")).unwrap();
        let err = read_all::<DeadLetter>(&path).unwrap_err();
        assert!(
            matches!(err, JsonLinesError::Parse { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_all::<DeadLetter>(dir.path().join("nope.jsonl")).unwrap_err();
        assert!(matches!(err, JsonLinesError::Io { .. }));
        assert!(matches!(err.into_store_error(), StoreError::Permanent(_)));
    }
}
