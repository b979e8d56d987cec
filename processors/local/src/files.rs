//! Where a local deployment keeps everything: one data directory, one file or folder
//! per store, named as the embedded adapters name them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// The paths of a deployment's data directory.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    /// The directory itself.
    pub data: PathBuf,
    /// The durable stream (`flyhigh serve`; the demo's stream is in memory).
    pub stream_sqlite: PathBuf,
    /// The mappings' checkpoints, one JSON file per processor.
    pub checkpoints: PathBuf,
    /// Seat inventory and bookings (the inventory processor).
    pub inventory_sqlite: PathBuf,
    /// The inventory processor's poison records and failed batches.
    pub dead_letters: PathBuf,
    pub failed_batches: PathBuf,
    /// Records the producer gave up on.
    pub producer_dead_letters: PathBuf,
    /// Demand counters, the route registry and the alert outbox (hot routes).
    pub demand_sqlite: PathBuf,
    pub demand_dead_letters: PathBuf,
    pub demand_failed_batches: PathBuf,
    /// Every alert as published, one JSON object a line.
    pub alerts: PathBuf,
    /// The Parquet archive (Hive-partitioned) and its checkpoints.
    pub archive: PathBuf,
    pub archive_checkpoints: PathBuf,
    pub archive_dead_letters: PathBuf,
    pub archive_failed_batches: PathBuf,
}

impl Files {
    /// The layout under `data`.
    pub fn under(data: &Path) -> Files {
        Files {
            data: data.to_path_buf(),
            stream_sqlite: data.join("stream.sqlite"),
            checkpoints: data.join("checkpoints"),
            inventory_sqlite: data.join(flyhigh_embedded::INVENTORY_FILE),
            dead_letters: data.join(flyhigh_embedded::DEAD_LETTER_FILE),
            failed_batches: data.join(flyhigh_embedded::FAILED_BATCH_FILE),
            producer_dead_letters: data.join("producer-dead-letters.jsonl"),
            demand_sqlite: data.join(flyhigh_embedded::DEMAND_FILE),
            demand_dead_letters: data.join("demand-dead-letters.jsonl"),
            demand_failed_batches: data.join("demand-failed-batches.jsonl"),
            alerts: data.join(flyhigh_embedded::ALERTS_FILE),
            archive: data.join(flyhigh_embedded::ARCHIVE_DIR),
            archive_checkpoints: data.join(flyhigh_embedded::ARCHIVE_CHECKPOINTS_FILE),
            archive_dead_letters: data.join("archive-dead-letters.jsonl"),
            archive_failed_batches: data.join("archive-failed-batches.jsonl"),
        }
    }

    /// The checkpoint file of one processor's mapping.
    pub fn checkpoint(&self, processor: &str) -> PathBuf {
        self.checkpoints.join(format!("{processor}.json"))
    }

    /// Removes everything a deployment wrote here (a fresh demo starts from nothing,
    /// so that its checks compare like with like). Other files are left alone.
    ///
    /// # Errors
    ///
    /// A file exists and cannot be removed.
    pub fn reset(&self) -> anyhow::Result<()> {
        for path in [
            &self.stream_sqlite,
            &self.inventory_sqlite,
            &self.dead_letters,
            &self.failed_batches,
            &self.producer_dead_letters,
            &self.demand_sqlite,
            &self.demand_dead_letters,
            &self.demand_failed_batches,
            &self.alerts,
            &self.archive_checkpoints,
            &self.archive_dead_letters,
            &self.archive_failed_batches,
        ] {
            remove_if_exists(path)?;
            // SQLite's side files, and what `flyhigh dead-letters replay` keeps beside a
            // letter file: the ledger of an earlier run's letters means nothing now.
            for suffix in ["-wal", "-shm", ".replayed.jsonl", ".failed-again.jsonl"] {
                remove_if_exists(&PathBuf::from(format!("{}{suffix}", path.display())))?;
            }
        }
        for dir in [&self.archive, &self.checkpoints] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
