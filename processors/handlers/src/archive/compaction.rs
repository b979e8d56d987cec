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
//!
//! **Budget and order** ([`Compactor::compact_closed_by`]): a run has a deadline
//! (the Lambda's) and, optionally, a most partitions per run; it starts another
//! partition only while [`PARTITION_TIME_RESERVE`] (or twice its slowest partition
//! so far) is left, and always does at least one, so every run makes progress.
//! Closed partitions are taken in this order:
//! 1. **first compactions** (a closed hour with no compacted file yet), oldest first:
//!    a new hour is never queued behind old ones that keep getting late events;
//! 2. **re-compactions** (late batch files for an hour compacted already, which
//!    reread the kept files' ids), round robin from a **cursor**: the object
//!    [`CURSOR_KEY`] names the last partition re-compacted, and the next run starts
//!    after it. One partition fed all day is then re-compacted once per turn, not
//!    first in every run, and cannot starve the others.
//!
//! What a run did not reach is listed in [`CompactionReport::deferred`], for the
//! next run.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::StoreError;
use flyhigh_core::archive::FileKind;
use flyhigh_core::archive::compaction::{self, CompactionPlan, is_closed, merge_rows};
use flyhigh_core::archive::{
    ArchivedEvent, DataFile, FileRun, KeyValue, ParquetOptions, Partition, read_event_ids,
    read_file,
};
use flyhigh_core::ports::{ObjectInfo, ObjectStore};

use crate::deadline::Deadline;

/// Where the compactor keeps its cursor: the path of the last partition it
/// re-compacted, outside every table (`event_type=...`).
pub const CURSOR_KEY: &str = "_compaction/cursor";

/// The least time left before a run's deadline to start another partition (or
/// twice the slowest partition of the run so far, if more). The compact Lambda's
/// timeout is 900 s; a first compaction of an hour at 10 million events a day takes
/// seconds.
pub const PARTITION_TIME_RESERVE: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// Closed partitions to compact that the run's budget did not reach, in the
    /// order the next run takes them (each still reads correctly).
    pub deferred: Vec<String>,
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
    max_partitions: Option<usize>,
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
            max_partitions: None,
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

    /// Compacts at most `n` partitions per run (at least one); the rest are
    /// [`deferred`](CompactionReport::deferred). Unset, only the deadline bounds a
    /// run.
    pub fn with_max_partitions_per_run(mut self, n: usize) -> Self {
        self.max_partitions = Some(n.max(1));
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

    /// Compacts every partition closed at `now` that is not compact yet, without a
    /// deadline (the CLI); see [`compact_closed_by`](Self::compact_closed_by).
    pub async fn compact_closed(
        &self,
        now: DateTime<Utc>,
    ) -> Result<CompactionReport, CompactError> {
        self.compact_closed_by(now, Deadline::none()).await
    }

    /// Compacts the partitions closed at `now` that are not compact yet, in the
    /// order of the module docs, until `deadline` (or the most partitions per run)
    /// leaves the rest [`deferred`](CompactionReport::deferred). A partition that
    /// fails is reported in [`CompactionReport::failed`] and the others are still
    /// done; only a failure to list the archive is an error.
    pub async fn compact_closed_by(
        &self,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<CompactionReport, CompactError> {
        let partitions = self.partitions().await?;
        let mut report = CompactionReport {
            partitions: partitions.len(),
            ..CompactionReport::default()
        };
        let mut first = Vec::new();
        let mut again = Vec::new();
        for (partition, objects) in partitions {
            if !is_closed(&partition, now, self.grace) {
                continue;
            }
            report.closed += 1;
            let compacted_before = objects
                .iter()
                .any(|o| DataFile::parse(&o.key).is_some_and(|f| f.kind == FileKind::Compacted));
            if let Some(plan) = compaction::plan(partition, &objects, self.target_bytes) {
                if compacted_before {
                    again.push(plan);
                } else {
                    first.push(plan);
                }
            }
        }
        let cursor = self.cursor().await;
        let work = work_order(first, again, cursor.as_deref());

        let (mut done, mut slowest) = (0usize, std::time::Duration::ZERO);
        for (n, (plan, recompaction)) in work.iter().enumerate() {
            let out_of_partitions = self.max_partitions.is_some_and(|max| done >= max);
            let needed = PARTITION_TIME_RESERVE.max(slowest * 2);
            if done > 0 && (out_of_partitions || !deadline.allows(needed)) {
                report.deferred = work[n..].iter().map(|(p, _)| p.partition.path()).collect();
                tracing::info!(
                    deferred = report.deferred.len(),
                    done,
                    "compaction budget spent; the rest is left for the next run"
                );
                break;
            }
            let started = Instant::now();
            let partition = plan.partition;
            // One partition that cannot be compacted (an unreadable object) must
            // not hold back the others.
            match self.compact(plan).await {
                Ok(result) => report.compacted.push(result),
                Err(e) => {
                    tracing::warn!(partition = %partition, error = %e, "partition not compacted");
                    report.failed.push((partition.path(), e.to_string()));
                }
            }
            if *recompaction {
                // Its turn is over even if it failed: the next run starts after it.
                if let Err(e) = self
                    .objects
                    .put(CURSOR_KEY, partition.path().into_bytes())
                    .await
                {
                    tracing::warn!(partition = %partition, error = %e,
                        "compaction cursor not saved; the next run starts from the one before");
                }
            }
            done += 1;
            slowest = slowest.max(started.elapsed());
        }
        Ok(report)
    }

    /// The path of the last partition re-compacted, `None` if there is none or it
    /// cannot be read (then the round starts again from the first).
    async fn cursor(&self) -> Option<String> {
        match self.objects.get(CURSOR_KEY).await {
            Ok(bytes) => bytes.and_then(|b| String::from_utf8(b).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "compaction cursor not read; starting the round again");
                None
            }
        }
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

/// The order a run takes its plans in: first compactions oldest hour first (all
/// tables of an hour together), then re-compactions by partition path starting
/// after `cursor` and wrapping around; each with whether it is a re-compaction.
fn work_order(
    mut first: Vec<CompactionPlan>,
    mut again: Vec<CompactionPlan>,
    cursor: Option<&str>,
) -> Vec<(CompactionPlan, bool)> {
    first.sort_by_key(|p| (p.partition.date, p.partition.hour, p.partition.table));
    again.sort_by_key(|p| p.partition.path());
    let turn = cursor.map_or(0, |c| {
        again.partition_point(|p| p.partition.path().as_str() <= c)
    });
    again.rotate_left(turn);
    first
        .into_iter()
        .map(|p| (p, false))
        .chain(again.into_iter().map(|p| (p, true)))
        .collect()
}

fn file_error(key: &str, e: flyhigh_core::archive::ArchiveError) -> CompactError {
    CompactError::File(format!("{key}: {e}"))
}
