//! Compaction of closed hours: which files of a partition to merge, what the merge
//! keeps, what it is called.
//!
//! A partition's files split in two: **full** compacted files (at least the target
//! size), which are kept as they are, and the **rest** (batch files, and the one
//! compacted remainder below the target), which are merged: read, rows whose
//! `event_id` is in a kept file or earlier in the merge dropped, sorted, and
//! written as compacted files of the target size, one remainder at most. The new
//! files are named by a hash of the merged files' keys and sizes, so a rerun over the
//! same files writes the same keys with the same bytes.
//!
//! Crash safety needs no journal: the new files are written before any old one is
//! deleted, and a rerun over whatever a crash left (old files, some new ones) keeps
//! the new full files, merges the rest, and drops rows already kept, so it reaches
//! the same rows without a duplicate.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use md5::{Digest, Md5};

use super::layout::{DataFile, FileKind, Partition, compacted_file_key};
use super::order::sort_rows;
use super::rows::ArchivedEvent;
use crate::ports::ObjectInfo;

/// The default target size of compacted files: 128 MiB, what Athena recommends at
/// least.
pub const DEFAULT_TARGET_BYTES: u64 = 128 * 1024 * 1024;

/// How long after its end an hour counts as closed by default: events later than
/// this (for example from a producer's retries or a replay) still land in the hour
/// as batch files, and the next compaction merges them.
pub const DEFAULT_GRACE: Duration = Duration::minutes(15);

/// What to do with one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPlan {
    /// The partition.
    pub partition: Partition,
    /// Full compacted files, kept.
    pub keep: Vec<ObjectInfo>,
    /// Files to merge and then delete, by key.
    pub merge: Vec<ObjectInfo>,
    /// The name of the files the merge writes.
    pub generation: String,
}

impl CompactionPlan {
    /// The key of the merge's output file `index`.
    pub fn output_key(&self, index: usize) -> String {
        compacted_file_key(&self.partition, &self.generation, index)
    }

    /// Whether `key` is one of the files the plan keeps or merges (an output must
    /// never be: writing it would replace a file the plan still counts on).
    pub fn touches(&self, key: &str) -> bool {
        self.keep.iter().chain(&self.merge).any(|o| o.key == key)
    }
}

/// Whether `partition` is closed at `now`: it ended at least `grace` ago.
pub fn is_closed(partition: &Partition, now: DateTime<Utc>, grace: Duration) -> bool {
    partition.end() + grace <= now
}

/// The plan for `partition` given the objects listed under it, or `None` when it
/// is compact already: no batch file, and at most one compacted file below the
/// target. Objects that are not data files of the partition are ignored.
pub fn plan(
    partition: Partition,
    objects: &[ObjectInfo],
    target_bytes: u64,
) -> Option<CompactionPlan> {
    let mut keep = Vec::new();
    let mut merge = Vec::new();
    for object in objects {
        let Some(file) = DataFile::parse(&object.key) else {
            continue;
        };
        if file.partition != partition {
            continue;
        }
        if file.kind == FileKind::Compacted && object.size >= target_bytes {
            keep.push(object.clone());
        } else {
            merge.push(object.clone());
        }
    }
    let only_a_remainder = merge.len() == 1
        && DataFile::parse(&merge[0].key).is_some_and(|f| f.kind == FileKind::Compacted);
    if merge.is_empty() || only_a_remainder {
        return None;
    }
    keep.sort_by(|a, b| a.key.cmp(&b.key));
    merge.sort_by(|a, b| a.key.cmp(&b.key));
    // The kept files are hashed too: a rerun after a crash that wrote a full file
    // merges the same files as the crashed run but keeps that file, and must not
    // name its own output after it (it would overwrite a file it keeps).
    let mut hash = Md5::new();
    hash.update(target_bytes.to_be_bytes());
    for (role, objects) in [(b'k', &keep), (b'm', &merge)] {
        for object in objects {
            hash.update([role]);
            hash.update(object.key.as_bytes());
            hash.update([0]);
            hash.update(object.size.to_be_bytes());
        }
    }
    let digest = hash.finalize();
    let generation: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some(CompactionPlan {
        partition,
        keep,
        merge,
        generation,
    })
}

/// The merged rows: sorted in [`row_order`], without a row whose `event_id` is in
/// `kept` or comes earlier in that order. Returns them and how many were dropped.
pub fn merge_rows(
    mut rows: Vec<ArchivedEvent>,
    kept: &HashSet<uuid::Uuid>,
) -> (Vec<ArchivedEvent>, usize) {
    sort_rows(&mut rows);
    let before = rows.len();
    let mut seen: HashSet<uuid::Uuid> = HashSet::with_capacity(rows.len());
    rows.retain(|row| {
        let id = row.event.event_id;
        !kept.contains(&id) && seen.insert(id)
    });
    let dropped = before - rows.len();
    (rows, dropped)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use flyhigh_schemas::archive::ArchiveTable;

    use super::*;

    fn hour() -> Partition {
        Partition {
            table: ArchiveTable::Searches,
            date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            hour: 7,
        }
    }

    fn object(name: &str, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: format!("{}/{name}", hour().path()),
            size,
        }
    }

    #[test]
    fn full_compacted_files_are_kept_and_the_rest_merged() {
        let objects = [
            object("c_aa_0000.parquet", 200),
            object("c_aa_0001.parquet", 50),
            object("b_s_1-0_9-0.parquet", 10),
            object("notes.txt", 1),
        ];
        let p = plan(hour(), &objects, 100).unwrap();
        assert_eq!(p.keep, vec![objects[0].clone()]);
        assert_eq!(p.merge, vec![objects[2].clone(), objects[1].clone()]);
        assert_eq!(p.generation.len(), 16);
        assert!(
            p.output_key(0)
                .ends_with(&format!("/c_{}_0000.parquet", p.generation))
        );
    }

    #[test]
    fn a_compact_partition_has_no_plan() {
        assert_eq!(plan(hour(), &[], 100), None);
        assert_eq!(
            plan(
                hour(),
                &[
                    object("c_aa_0000.parquet", 200),
                    object("c_aa_0001.parquet", 5)
                ],
                100
            ),
            None
        );
        // One batch file alone is merged: it may hold duplicates.
        assert!(plan(hour(), &[object("b_s_1-0_9-0.parquet", 10)], 100).is_some());
    }

    #[test]
    fn the_generation_is_a_function_of_the_merged_files() {
        let a = [
            object("b_s_1-0_9-0.parquet", 10),
            object("b_s_10-0_19-0.parquet", 12),
        ];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(
            plan(hour(), &a, 100).unwrap().generation,
            plan(hour(), &b, 100).unwrap().generation
        );
        let c = [object("b_s_1-0_9-0.parquet", 11), a[1].clone()];
        assert_ne!(
            plan(hour(), &a, 100).unwrap().generation,
            plan(hour(), &c, 100).unwrap().generation
        );
    }

    #[test]
    fn a_rerun_that_keeps_a_file_of_the_crashed_run_names_its_outputs_anew() {
        let merged = [
            object("b_s_1-0_9-0.parquet", 10),
            object("b_s_10-0_19-0.parquet", 12),
        ];
        let first = plan(hour(), &merged, 100).unwrap();
        // The crashed run wrote its first output, full; the rerun keeps it and
        // merges the same batch files.
        let mut after_crash = merged.to_vec();
        after_crash.push(ObjectInfo {
            key: first.output_key(0),
            size: 150,
        });
        let rerun = plan(hour(), &after_crash, 100).unwrap();
        assert_eq!(rerun.merge, first.merge);
        assert_eq!(rerun.keep.len(), 1);
        assert_ne!(rerun.generation, first.generation);
        assert!(!rerun.touches(&rerun.output_key(0)));
        assert!(rerun.touches(&first.output_key(0)));
    }

    #[test]
    fn hours_close_after_the_grace() {
        let end = hour().end();
        assert!(!is_closed(&hour(), end, DEFAULT_GRACE));
        assert!(is_closed(&hour(), end + DEFAULT_GRACE, DEFAULT_GRACE));
    }
}
