//! Where records the producer gives up on go: never dropped, always somewhere an
//! operator can find and replay them.
//!
//! A record is dead-lettered when its time-to-live passes before Kinesis accepts it,
//! when Kinesis rejects it for good (a missing stream, a disabled KMS key), or when
//! the producer is closed with a deadline and the record is still unsent. Its
//! [`crate::Receipt`] resolves with the same reason.
//!
//! [`FileDeadLetters`] (the default) appends one JSON object per record to a local
//! file; [`MemoryDeadLetters`] keeps them in memory for tests. Applications with a
//! queue or bucket of their own implement [`DeadLetterSink`].

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};

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

/// A dead-letter sink could not store records.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter sink failed: {0}")]
pub struct DeadLetterError(pub String);

/// Stores dead letters. Called from the producer's worker with each batch it gives
/// up on; keep it quick (it is called rarely, so a blocking local write is fine).
pub trait DeadLetterSink: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `letters` durably, or says why not (the producer then logs an error and
    /// the records' receipts say so too).
    fn write(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError>;
}

/// Appends dead letters as JSON lines to a file, created on the first letter (so a
/// healthy producer leaves no empty file behind).
///
/// Each line: `{"partition_key", "data_base64", "data_utf8" (when the bytes are
/// UTF-8), "reason", "error", "attempts", "accepted_at", "dead_lettered_at"}`.
#[derive(Debug)]
pub struct FileDeadLetters {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
}

impl FileDeadLetters {
    /// The default file name, in the working directory.
    pub const DEFAULT_PATH: &'static str = "flyhigh-producer-dead-letters.jsonl";

    /// Dead letters appended to `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> FileDeadLetters {
        FileDeadLetters {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn letter_json(letter: &DeadLetter) -> serde_json::Value {
    let mut line = serde_json::json!({
        "partition_key": letter.partition_key,
        "data_base64": base64::engine::general_purpose::STANDARD.encode(&letter.data),
        "reason": letter.reason.as_str(),
        "error": letter.error,
        "attempts": letter.attempts,
        "accepted_at": letter.accepted_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "dead_lettered_at": letter.dead_lettered_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    if let Ok(text) = std::str::from_utf8(&letter.data) {
        line["data_utf8"] = text.into();
    }
    line
}

impl DeadLetterSink for FileDeadLetters {
    fn write(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        let io = |e: std::io::Error| DeadLetterError(format!("{}: {e}", self.path.display()));
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let out = match guard.as_mut() {
            Some(out) => out,
            None => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(io)?;
                guard.insert(BufWriter::new(file))
            }
        };
        for letter in letters {
            serde_json::to_writer(&mut *out, &letter_json(letter))
                .map_err(|e| DeadLetterError(e.to_string()))?;
            out.write_all(b"\n").map_err(io)?;
        }
        // Durable before the receipts resolve: the letters are the only copy.
        out.flush().map_err(io)?;
        out.get_ref().sync_data().map_err(io)
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
    fn write(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(letters);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(data: &[u8]) -> DeadLetter {
        DeadLetter {
            partition_key: "FH0001-20261201".into(),
            data: data.to_vec(),
            reason: DeadLetterReason::Expired,
            error: "ProvisionedThroughputExceededException: Rate exceeded".into(),
            attempts: 7,
            accepted_at: "2026-11-22T10:15:00.250Z".parse().unwrap(),
            dead_lettered_at: "2026-11-22T10:17:00.250Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_file_sink_appends_one_json_line_per_letter_and_keeps_binary_data() {
        let dir = std::env::temp_dir().join(format!("flyhigh-dlq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        let _ = std::fs::remove_file(&path);
        let sink = FileDeadLetters::new(&path);
        assert!(!path.exists(), "created lazily");
        sink.write(&[letter(br#"{"event_type":"booking"}"#)])
            .unwrap();
        sink.write(&[letter(&[0xff, 0x00])]).unwrap();
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
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_sink_reports_an_unwritable_path() {
        let sink = FileDeadLetters::new("/nonexistent-dir/flyhigh/dead.jsonl");
        let err = sink.write(&[letter(b"{}")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }
}
