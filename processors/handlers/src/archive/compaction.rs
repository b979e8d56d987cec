//! [`Compactor`]: merges a closed hour's files into files of the target size.
//!
//! Per partition ([`flyhigh_core::archive::compaction`] decides what):
//! 1. read the `event_id`s of the full compacted files it keeps;
//! 2. read every file it merges, drop the rows whose `event_id` is kept or came
//!    earlier, sort;
//! 3. write the new files (named by the generation), one at a time;
//! 4. delete the merged files.
//!
//! What a query sees: before 3 the old files; between the first put of 3 and the
//! end of 4 the merged rows **twice** (once in the old files, once in the new);
//! after 4 each row once. Never a row missing: nothing is deleted before its rows
//! are in a new file. A crash in 3 or 4 leaves the doubled state until the next run,
//! which keeps the new full files, merges the rest and drops the rows kept, ending
//! in the same rows once each. Run one compactor at a time (the scheduled Lambda has
//! a reserved concurrency of 1): two runs over different listings of one partition
//! could each keep rows the other wrote.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::StoreError;
use flyhigh_core::archive::compaction::{self, CompactionPlan, is_closed, merge_rows};
use flyhigh_core::archive::{
    ArchivedEvent, DataFile, FileRun, KeyValue, ParquetOptions, Partition, read_event_ids,
    read_file,
};
use flyhigh_core::ports::{ObjectInfo, ObjectStore};

/// Why a compaction stopped. Either way the partition reads correctly (no row
/// missing) and a rerun finishes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{0}")]
    File(String),
}

/// What compacting one partition did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartitionReport {
    /// `event_type=.../dt=.../hour=...`.
    pub partition: String,
    /// Full files kept as they were.
    pub files_kept: usize,
    /// Files merged (and deleted).
    pub files_merged: usize,
    /// Files written.
    pub files_written: usize,
    /// Rows read from the merged files.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows dropped as duplicates of an `event_id` kept or merged.
    pub duplicates_dropped: u64,
    /// Bytes of the merged files.
    pub bytes_merged: u64,
    /// Bytes of the files written.
    pub bytes_written: u64,
}

/// What a compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactionReport {
    /// Partitions with data files.
    pub partitions: usize,
    /// Of them, closed ones.
    pub closed: usize,
    /// Compacted now (the other closed ones were compact already).
    pub compacted: Vec<PartitionReport>,
    /// Partitions that failed, and why; the others were still compacted, and the
    /// next run tries these again (each still reads correctly).
    pub failed: Vec<(String, String)>,
}

impl CompactionReport {
    /// Duplicates dropped over all partitions.
    pub fn duplicates_dropped(&self) -> u64 {
        self.compacted.iter().map(|p| p.duplicates_dropped).sum()
    }
}

/// Compacts closed hours of the archive in an [`ObjectStore`].
pub struct Compactor<O> {
    objects: O,
    options: ParquetOptions,
    target_bytes: u64,
    grace: Duration,
}

impl<O: ObjectStore> Compactor<O> {
    /// A compactor with the defaults: 128 MiB files, hours closed 15 minutes after
    /// their end.
    pub fn new(objects: O) -> Self {
        Compactor {
            objects,
            options: ParquetOptions::default(),
            target_bytes: compaction::DEFAULT_TARGET_BYTES,
            grace: compaction::DEFAULT_GRACE,
        }
    }

    /// Files of at least `bytes` (the last of a partition excepted).
    pub fn with_target_bytes(mut self, bytes: u64) -> Self {
        self.target_bytes = bytes.max(1);
        self
    }

    /// Hours count as closed `grace` after their end.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Writes files with `options`.
    pub fn with_options(mut self, options: ParquetOptions) -> Self {
        self.options = options;
        self
    }

    /// The partitions with data files, and their objects.
    pub async fn partitions(&self) -> Result<BTreeMap<Partition, Vec<ObjectInfo>>, CompactError> {
        let mut out: BTreeMap<Partition, Vec<ObjectInfo>> = BTreeMap::new();
        for object in self.objects.list("event_type=").await? {
            if let Some(file) = DataFile::parse(&object.key) {
                out.entry(file.partition).or_default().push(object);
            }
        }
        Ok(out)
    }

    /// Compacts every partition closed at `now` that is not compact yet, oldest hour
    /// first. A partition that fails is reported in [`CompactionReport::failed`] and
    /// the others are still done; only a failure to list the archive is an error.
    pub async fn compact_closed(
        &self,
        now: DateTime<Utc>,
    ) -> Result<CompactionReport, CompactError> {
        let partitions = self.partitions().await?;
        let mut report = CompactionReport {
            partitions: partitions.len(),
            ..CompactionReport::default()
        };
        // Oldest hour first, all tables of an hour together: a run cut short by its
        // time limit leaves the newest hours, not a whole table, for the next one.
        let mut partitions: Vec<(Partition, Vec<ObjectInfo>)> = partitions.into_iter().collect();
        partitions.sort_by_key(|(p, _)| (p.date, p.hour, p.table));
        for (partition, objects) in partitions {
            if !is_closed(&partition, now, self.grace) {
                continue;
            }
            report.closed += 1;
            if let Some(plan) = compaction::plan(partition, &objects, self.target_bytes) {
                // One partition that cannot be compacted (an unreadable object) must
                // not hold back every hour after it.
                match self.compact(&plan).await {
                    Ok(done) => report.compacted.push(done),
                    Err(e) => {
                        tracing::warn!(partition = %partition, error = %e, "partition not compacted");
                        report.failed.push((partition.path(), e.to_string()));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Compacts one partition as listed now, closed or not; `None` if it is compact
    /// already.
    pub async fn compact_partition(
        &self,
        partition: Partition,
    ) -> Result<Option<PartitionReport>, CompactError> {
        let objects = self.objects.list(&format!("{}/", partition.path())).await?;
        match compaction::plan(partition, &objects, self.target_bytes) {
            Some(plan) => Ok(Some(self.compact(&plan).await?)),
            None => Ok(None),
        }
    }

    /// Carries out a plan.
    pub async fn compact(&self, plan: &CompactionPlan) -> Result<PartitionReport, CompactError> {
        let table = plan.partition.table;
        let mut kept = HashSet::new();
        for object in &plan.keep {
            let bytes = self.read(&object.key).await?;
            let ids = read_event_ids(bytes).map_err(|e| file_error(&object.key, e))?;
            kept.extend(ids);
        }
        let mut rows: Vec<ArchivedEvent> = Vec::new();
        let mut bytes_merged = 0;
        for object in &plan.merge {
            let bytes = self.read(&object.key).await?;
            bytes_merged += bytes.len() as u64;
            rows.extend(read_file(table, bytes).map_err(|e| file_error(&object.key, e))?);
        }
        let rows_read = rows.len() as u64;
        let (rows, dropped) = merge_rows(rows, &kept);
        let refs: Vec<&ArchivedEvent> = rows.iter().collect();
        let metadata = vec![
            KeyValue::new("flyhigh.partition".to_string(), plan.partition.path()),
            KeyValue::new("flyhigh.generation".to_string(), plan.generation.clone()),
        ];
        let mut written = 0;
        let mut bytes_written = 0;
        for (index, file) in
            FileRun::new(table, &refs, &self.options, self.target_bytes, &metadata).enumerate()
        {
            let key = plan.output_key(index);
            if plan.touches(&key) {
                return Err(CompactError::File(format!(
                    "{key} would replace a file this compaction reads; nothing was deleted"
                )));
            }
            let file = file.map_err(|e| file_error(&key, e))?;
            bytes_written += file.len() as u64;
            self.objects.put(&key, file).await?;
            written += 1;
        }
        let merged: Vec<String> = plan.merge.iter().map(|o| o.key.clone()).collect();
        self.objects.delete(&merged).await?;
        let report = PartitionReport {
            partition: plan.partition.path(),
            files_kept: plan.keep.len(),
            files_merged: plan.merge.len(),
            files_written: written,
            rows_read,
            rows_written: rows.len() as u64,
            duplicates_dropped: dropped as u64,
            bytes_merged,
            bytes_written,
        };
        tracing::info!(partition = %report.partition, files_merged = report.files_merged,
            files_written = report.files_written, rows_written = report.rows_written,
            duplicates_dropped = report.duplicates_dropped, "partition compacted");
        Ok(report)
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, CompactError> {
        self.objects.get(key).await?.ok_or_else(|| {
            CompactError::File(format!(
                "{key} was listed but is gone (another compaction running?); rerun"
            ))
        })
    }
}

fn file_error(key: &str, e: flyhigh_core::archive::ArchiveError) -> CompactError {
    CompactError::File(format!("{key}: {e}"))
}
