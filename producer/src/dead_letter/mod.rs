//! Where records the producer gives up on go: never dropped, always somewhere an
//! operator can find and replay them.
//!
//! A record is dead-lettered when its time-to-live passes before Kinesis accepts it,
//! when Kinesis rejects it for good (a missing stream, a disabled KMS key), or when
//! the producer is closed with a deadline and the record is still unsent. Its
//! [`crate::Receipt`] resolves with the same reason once the letter is stored.
//!
//! Sinks run on their own task, behind a bounded queue (the worker's
//! `dead_letters` module): a slow sink (an fsync, an SQS call) never stalls a
//! shard, and a letter's bytes stay charged to the budget until it is stored, so
//! expiring records cannot grow the process past it.
//!
//! - [`FileDeadLetters`] (the default) appends one JSON line per record
//!   ([`DeadLetter::to_json_line`]) to a file in a writable place
//!   ([`FileDeadLetters::default_location`]) or one you name.
//! - `SqsDeadLetters` (feature `sqs`) sends the same JSON lines as SQS messages;
//!   a letter too big for SQS (over 256 KiB as a message) fails its write, see
//!   its docs for big records.
//! - [`MemoryDeadLetters`] keeps them in memory for tests.
//!
//! `flyhigh dead-letters replay --file F --stream S` (or `--queue Q`) puts them
//! back through a producer ([`replay`](mod@crate::replay), which applications can
//! call too). Applications with a store of their own implement [`DeadLetterSink`].

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};

#[cfg(feature = "sqs")]
mod sqs;
#[cfg(feature = "sqs")]
pub use sqs::SqsDeadLetters;

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Its time-to-live passed before Kinesis accepted it.
    Expired,
    /// Kinesis rejected it and retrying cannot help.
    Rejected,
    /// The producer was closed with a deadline before it could be sent.
    Closed,
}

impl DeadLetterReason {
    /// A stable short name for files, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Closed => "closed",
        }
    }

    /// The reason named by [`DeadLetterReason::as_str`].
    pub fn parse(name: &str) -> Option<DeadLetterReason> {
        match name {
            "expired" => Some(DeadLetterReason::Expired),
            "rejected" => Some(DeadLetterReason::Rejected),
            "closed" => Some(DeadLetterReason::Closed),
            _ => None,
        }
    }
}

/// One record the producer gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The record's partition key.
    pub partition_key: String,
    /// The record's bytes (for FlyHigh events, the envelope's JSON).
    pub data: Vec<u8>,
    /// Why it was given up.
    pub reason: DeadLetterReason,
    /// The last error from Kinesis, or what happened instead.
    pub error: String,
    /// Put attempts made.
    pub attempts: u32,
    /// When `send` accepted it.
    pub accepted_at: DateTime<Utc>,
    /// When it was given up.
    pub dead_lettered_at: DateTime<Utc>,
}

impl DeadLetter {
    /// The letter as one JSON object, the format of the file sink's lines and the
    /// SQS sink's messages: `{"partition_key", "data_base64", "data_utf8" (when
    /// the bytes are UTF-8), "reason", "error", "attempts", "accepted_at",
    /// "dead_lettered_at"}`.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::json!({
            "partition_key": self.partition_key,
            "data_base64": base64::engine::general_purpose::STANDARD.encode(&self.data),
            "reason": self.reason.as_str(),
            "error": self.error,
            "attempts": self.attempts,
            "accepted_at": self.accepted_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "dead_lettered_at": self.dead_lettered_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Ok(text) = std::str::from_utf8(&self.data) {
            line["data_utf8"] = text.into();
        }
        line.to_string()
    }

    /// Reads a letter written by [`DeadLetter::to_json_line`]; the error names the
    /// field that is missing or wrong.
    pub fn from_json_line(line: &str) -> Result<DeadLetter, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let text = |field: &str| {
            v.get(field)
                .and_then(|x| x.as_str())
                .ok_or_else(|| format!("{field}: missing or not a string"))
        };
        let time = |field: &str| {
            text(field)?
                .parse::<DateTime<Utc>>()
                .map_err(|e| format!("{field}: {e}"))
        };
        let reason = text("reason")?;
        Ok(DeadLetter {
            partition_key: text("partition_key")?.to_string(),
            data: base64::engine::general_purpose::STANDARD
                .decode(text("data_base64")?)
                .map_err(|e| format!("data_base64: {e}"))?,
            reason: DeadLetterReason::parse(reason)
                .ok_or_else(|| format!("reason: unknown {reason:?}"))?,
            error: text("error")?.to_string(),
            attempts: v
                .get("attempts")
                .and_then(|x| x.as_u64())
                .ok_or("attempts: missing or not a number")? as u32,
            accepted_at: time("accepted_at")?,
            dead_lettered_at: time("dead_lettered_at")?,
        })
    }
}

/// A dead-letter sink could not store records.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter sink failed: {0}")]
pub struct DeadLetterError(pub String);

/// What a sink's methods return: a boxed future, so sinks can be shared as
/// `Arc<dyn DeadLetterSink>`.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeadLetterError>> + Send + 'a>>;

/// Stores dead letters. Called on the producer's dead-letter task (never on the
/// worker), one batch of letters at a time, so it may take its time: write to a
/// file, send to a queue.
pub trait DeadLetterSink: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `letters` durably, or says why not (the producer then logs an error,
    /// counts it, and the records' receipts say so too).
    fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_>;

    /// Checks at start-up that letters could be stored (a writable directory, a
    /// queue that exists), so a misconfigured sink fails
    /// [`ProducerBuilder::build`](crate::ProducerBuilder) instead of the first
    /// expired record. The default checks nothing.
    fn check(&self) -> SinkFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

impl<S: DeadLetterSink + ?Sized> DeadLetterSink for Arc<S> {
    fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_> {
        (**self).write(letters)
    }
    fn check(&self) -> SinkFuture<'_> {
        (**self).check()
    }
}

/// Appends dead letters as JSON lines ([`DeadLetter::to_json_line`]) to a file,
/// created on the first letter (so a healthy producer leaves no empty file
/// behind). Each batch is one `write` followed by `fsync`, on a blocking thread.
#[derive(Debug, Clone)]
pub struct FileDeadLetters {
    inner: Arc<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    /// The path asked for; `None`: the default location, found on first use.
    requested: Option<PathBuf>,
    resolved: OnceLock<PathBuf>,
    file: Mutex<Option<std::fs::File>>,
}

impl FileDeadLetters {
    /// The file name in the default location.
    pub const FILE_NAME: &'static str = "flyhigh-producer-dead-letters.jsonl";
    /// Names the default directory, when set.
    pub const DIR_ENV: &'static str = "FLYHIGH_PRODUCER_DEAD_LETTER_DIR";

    /// Dead letters appended to `path` (its directory must exist and be writable;
    /// the builder checks).
    pub fn new(path: impl Into<PathBuf>) -> FileDeadLetters {
        FileDeadLetters::from_parts(Some(path.into()))
    }

    /// Dead letters appended to [`FileDeadLetters::FILE_NAME`] in
    /// [`FileDeadLetters::default_location`]: what `ProducerConfig::default()` uses.
    pub fn in_default_location() -> FileDeadLetters {
        FileDeadLetters::from_parts(None)
    }

    fn from_parts(requested: Option<PathBuf>) -> FileDeadLetters {
        FileDeadLetters {
            inner: Arc::new(FileInner {
                requested,
                resolved: OnceLock::new(),
                file: Mutex::new(None),
            }),
        }
    }

    /// The default directory: the first of these that can be created and written
    /// to:
    ///
    /// 1. `$FLYHIGH_PRODUCER_DEAD_LETTER_DIR`;
    /// 2. `$XDG_STATE_HOME/flyhigh`, or `$HOME/.local/state/flyhigh`;
    /// 3. `flyhigh` in the temporary directory (`$TMPDIR` or `/tmp`; on AWS Lambda,
    ///    where everything else is read-only, this is where letters land: ship them
    ///    off the instance, with the SQS sink, before it is recycled).
    ///
    /// Not the working directory: it is read-only on Lambda and in many containers,
    /// and a letter that cannot be written survives only in a receipt the caller may
    /// have dropped.
    pub fn default_location() -> PathBuf {
        let candidates = default_candidates();
        candidates
            .iter()
            .find(|dir| probe(dir).is_ok())
            .or(candidates.last())
            .cloned()
            .unwrap_or_else(std::env::temp_dir)
    }

    /// The file written to (for the default, where it is or will be).
    pub fn path(&self) -> &Path {
        self.inner
            .resolved
            .get_or_init(|| match &self.inner.requested {
                Some(path) => path.clone(),
                None => Self::default_location().join(Self::FILE_NAME),
            })
    }

    fn append(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        let path = self.path();
        let io = |e: std::io::Error| DeadLetterError(format!("{}: {e}", path.display()));
        let mut buffer = Vec::new();
        for letter in letters {
            buffer.extend_from_slice(letter.to_json_line().as_bytes());
            buffer.push(b'\n');
        }
        let mut guard = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        let file = match guard.as_mut() {
            Some(file) => file,
            None => {
                if self.inner.requested.is_none()
                    && let Some(dir) = path.parent()
                {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                guard.insert(file)
            }
        };
        // One write per batch: lines of concurrent producers appending to the same
        // file do not interleave.
        file.write_all(&buffer).map_err(io)?;
        // Durable before the receipts resolve: the letters are the only copy.
        file.sync_data().map_err(io)
    }
}

fn default_candidates() -> Vec<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut dirs = Vec::new();
    if let Some(dir) = env(FileDeadLetters::DIR_ENV) {
        dirs.push(dir);
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        dirs.push(state.join("flyhigh"));
    } else if let Some(home) = env("HOME") {
        dirs.push(home.join(".local/state/flyhigh"));
    }
    dirs.push(std::env::temp_dir().join("flyhigh"));
    dirs
}

/// Whether `dir` can be created and a file written in it (the probe is removed).
fn probe(dir: &Path) -> std::io::Result<()> {
    // One name per probe, not per process: two producers of one process checking
    // the same directory at once would otherwise remove each other's probe, and the
    // second removal would fail with "No such file or directory".
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".flyhigh-probe-{}-{n}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

impl DeadLetterSink for FileDeadLetters {
    fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_> {
        let sink = self.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || sink.append(&letters)).await {
                Ok(result) => result,
                Err(e) => Err(DeadLetterError(format!("the file write task failed: {e}"))),
            }
        })
    }

    /// The file's directory exists and is writable.
    fn check(&self) -> SinkFuture<'_> {
        let sink = self.clone();
        Box::pin(async move {
            let path = sink.path().to_path_buf();
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let check = move || {
                if sink.inner.requested.is_some() && !dir.is_dir() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the directory does not exist",
                    ));
                }
                probe(&dir)
            };
            match tokio::task::spawn_blocking(check).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(DeadLetterError(format!(
                    "cannot write dead letters to {}: {e} (name a writable file with \
                     dead_letters_file, or set {})",
                    path.display(),
                    FileDeadLetters::DIR_ENV
                ))),
                Err(e) => Err(DeadLetterError(format!("the check task failed: {e}"))),
            }
        })
    }
}

/// Keeps dead letters in memory (tests, or apps that forward them elsewhere).
#[derive(Debug, Clone, Default)]
pub struct MemoryDeadLetters {
    letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl MemoryDeadLetters {
    /// An empty sink; clones share the letters.
    pub fn new() -> MemoryDeadLetters {
        MemoryDeadLetters::default()
    }

    /// The letters so far.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(letters);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::letter;

    #[tokio::test]
    async fn the_file_sink_appends_one_json_line_per_letter_and_keeps_binary_data() {
        let dir = std::env::temp_dir().join(format!("flyhigh-dlq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        let _ = std::fs::remove_file(&path);
        let sink = FileDeadLetters::new(&path);
        assert!(!path.exists(), "created lazily");
        sink.check().await.expect("writable");
        assert!(!path.exists(), "the check leaves no file");
        sink.write(vec![letter(br#"{"event_type":"booking"}"#)])
            .await
            .unwrap();
        sink.write(vec![letter(&[0xff, 0x00])]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "expired");
        assert_eq!(lines[0]["attempts"], 7);
        assert_eq!(lines[0]["data_utf8"], r#"{"event_type":"booking"}"#);
        assert_eq!(lines[1]["data_base64"], "/wA=");
        assert!(lines[1].get("data_utf8").is_none());
        // Each line reads back as the letter written.
        let back: Vec<DeadLetter> = text
            .lines()
            .map(|l| DeadLetter::from_json_line(l).unwrap())
            .collect();
        assert_eq!(
            back,
            vec![
                letter(br#"{"event_type":"booking"}"#),
                letter(&[0xff, 0x00])
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_file_sink_reports_an_unwritable_path_at_the_check_and_at_the_write() {
        let sink = FileDeadLetters::new("/nonexistent-dir/flyhigh/dead.jsonl");
        let err = sink.check().await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
        assert!(err.to_string().contains("dead_letters_file"), "{err}");
        let err = sink.write(vec![letter(b"{}")]).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }

    #[test]
    fn the_default_location_is_writable_and_not_the_working_directory() {
        let dir = FileDeadLetters::default_location();
        assert!(probe(&dir).is_ok(), "{}", dir.display());
        assert_ne!(dir, std::env::current_dir().unwrap());
        let sink = FileDeadLetters::in_default_location();
        assert_eq!(sink.path(), dir.join(FileDeadLetters::FILE_NAME));
    }

    /// Regression: builders of one process checking the default directory at once
    /// shared one probe name, and one's removal made another's fail ("No such file
    /// or directory"), failing its `build`.
    #[test]
    fn regression_concurrent_probes_of_one_directory_all_succeed() {
        let dir = std::env::temp_dir().join(format!("flyhigh-probes-{}", std::process::id()));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || (0..200).all(|_| probe(&dir).is_ok()))
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap(), "a probe failed");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn letters_name_the_field_they_lack() {
        let line = letter(b"{}").to_json_line();
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["reason"] = "lost".into();
        assert_eq!(
            DeadLetter::from_json_line(&v.to_string()).unwrap_err(),
            "reason: unknown \"lost\""
        );
        v.as_object_mut().unwrap().remove("data_base64");
        assert!(
            DeadLetter::from_json_line(&v.to_string())
                .unwrap_err()
                .starts_with("data_base64")
        );
    }
}
