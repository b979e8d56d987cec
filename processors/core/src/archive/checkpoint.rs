//! The per-shard archive checkpoint, and the plan of one batch's files.
//!
//! A batch is archived in three steps, each safe to repeat:
//! 1. **stage**: every file of the batch is put under its staged key
//!    ([`staged_key`](super::staged_key)), invisible to queries;
//! 2. **commit**: the shard's checkpoint moves to the batch's last position and
//!    lists the files as pending, *conditionally* on the version read before step 1;
//! 3. **promote**: each pending file moves from its staged key to its key (visible),
//!    then the checkpoint drops the pending list (conditionally again).
//!
//! Records at or below the checkpoint are never written again, so a redelivered
//! batch, a retry from any record and a replay add no row; a crash after the commit
//! leaves pending files that whoever handles the shard next promotes first; a
//! consumer that loses the commit race wrote only staged copies that nobody
//! promotes.
//!
//! A batch whose events span many hours touches many partitions, and every file of
//! a commit is listed in the checkpoint, one DynamoDB item of at most 400 KB. So a
//! batch is committed in **parts** ([`cut_parts`]): consecutive runs of its records
//! whose pending list fits [`MAX_PENDING_BYTES`] (counted as DynamoDB counts it,
//! [`pending_list_bytes`]) and [`MAX_FILES_PER_PART`]; each part is staged,
//! committed and promoted on its own, and the checkpoint moves to its last record.
//! The promise is the same per part: a retry from any record finds what earlier
//! parts archived covered by the checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::layout::{Partition, batch_file_key, position_text};
use super::order::sort_rows;
use super::rows::ArchivedEvent;
use crate::records::Position;

/// DynamoDB's limit on an item's size, which a checkpoint is.
pub const DYNAMODB_ITEM_LIMIT_BYTES: usize = 400 * 1024;

/// What a checkpoint item holds besides its pending list, at most: the key (stream
/// ARN and shard id, under 300 bytes), the version, the position (75 bytes), the
/// time saved and the attribute names, with a wide margin.
pub const CHECKPOINT_RESERVE_BYTES: usize = 8 * 1024;

/// The largest pending list a part may commit, as DynamoDB counts it.
pub const MAX_PENDING_BYTES: usize = DYNAMODB_ITEM_LIMIT_BYTES - CHECKPOINT_RESERVE_BYTES;

/// The most files one part writes: bounds a part's time (three S3 calls per file,
/// [`S3_CONCURRENCY`] at once), so that the handler can stop at a part boundary
/// before its deadline.
pub const MAX_FILES_PER_PART: usize = 512;

/// How many files of a part are put, or promoted, at once.
pub const S3_CONCURRENCY: usize = 32;

/// DynamoDB's size of a list of strings (`L` of `S`): 3 bytes for the list, 1 per
/// element, and each string's UTF-8 bytes.
pub fn pending_list_bytes<S: AsRef<str>>(keys: &[S]) -> usize {
    3 + keys.iter().map(|k| 1 + k.as_ref().len()).sum::<usize>()
}

/// Limits of one part of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartLimits {
    /// The largest pending list, in DynamoDB bytes ([`pending_list_bytes`]).
    pub max_pending_bytes: usize,
    /// The most files.
    pub max_files: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits {
            max_pending_bytes: MAX_PENDING_BYTES,
            max_files: MAX_FILES_PER_PART,
        }
    }
}

/// Cuts a shard's records after its checkpoint (`records`: each one's position, in
/// shard order, and the partition of its event, `None` for poison) into parts, each
/// a range of `records` whose batch files ([`plan_batch`] of the range, named by
/// `source`) have keys that fit `limits`. Every part holds at least one record, so
/// every batch is cut into parts that can be committed. Pure.
pub fn cut_parts(
    source: &str,
    records: &[(Position, Option<Partition>)],
    limits: PartLimits,
) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let first = &records[start].0;
        let first_text = position_text(first).len();
        let mut partitions: BTreeSet<Partition> = BTreeSet::new();
        // The list's bytes without the last position's text in each key.
        let mut fixed = 3usize;
        let mut end = start;
        while end < records.len() {
            let (position, partition) = &records[end];
            let mut added = 0;
            let is_new = partition.is_some_and(|p| !partitions.contains(&p));
            if let Some(p) = partition.filter(|_| is_new) {
                added = 1 + batch_file_key(&p, source, first, first).len() - first_text;
            }
            let files = partitions.len() + usize::from(is_new);
            let bytes = fixed + added + files * position_text(position).len();
            if end > start && (files > limits.max_files || bytes > limits.max_pending_bytes) {
                break;
            }
            if let Some(p) = partition.filter(|_| is_new) {
                partitions.insert(p);
            }
            fixed += added;
            end += 1;
        }
        parts.push(start..end);
        start = end;
    }
    parts
}

/// How far one shard is archived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveCheckpoint {
    /// The position of the last user record archived (or dead-lettered); `None`
    /// before the first.
    pub archived_through: Option<Position>,
    /// Moves by one with every save; each save is conditional on the version read.
    pub version: u64,
    /// Keys of files committed but perhaps not yet promoted from staging.
    pub pending: Vec<String>,
}

impl ArchiveCheckpoint {
    /// Whether the record at `position` is archived already.
    pub fn covers(&self, position: &Position) -> bool {
        self.archived_through
            .as_ref()
            .is_some_and(|through| position <= through)
    }

    /// The checkpoint after committing files `pending` of records up to `through`.
    pub fn commit(&self, through: Position, pending: Vec<String>) -> ArchiveCheckpoint {
        ArchiveCheckpoint {
            archived_through: Some(through),
            version: self.version + 1,
            pending,
        }
    }

    /// The checkpoint once every pending file is promoted.
    pub fn promoted(&self) -> ArchiveCheckpoint {
        ArchiveCheckpoint {
            archived_through: self.archived_through.clone(),
            version: self.version + 1,
            pending: Vec::new(),
        }
    }
}

/// One file a batch writes: the batch's events of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    /// Its partition.
    pub partition: Partition,
    /// Its key, from the shard and the batch's range.
    pub key: String,
    /// Its rows, in [`row_order`].
    pub rows: Vec<ArchivedEvent>,
}

/// The files of the part of a batch the checkpoint does not cover yet.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlan {
    /// The first user record not yet archived.
    pub first: Position,
    /// The batch's last user record: where the checkpoint moves.
    pub last: Position,
    /// One file per partition with events, in partition order.
    pub files: Vec<PlannedFile>,
}

/// Plans the files of `source` (a shard, named by
/// [`source_name`](super::layout::source_name)) for `events` (its valid user records after the
/// checkpoint, in any order) when the records after the checkpoint run from `first`
/// to `last` (poison included: it is dead-lettered, and the checkpoint moves past it
/// too). Pure: the same inputs give the same keys and rows.
pub fn plan_batch(
    source: &str,
    first: Position,
    last: Position,
    events: Vec<ArchivedEvent>,
) -> BatchPlan {
    let mut by_partition: BTreeMap<Partition, Vec<ArchivedEvent>> = BTreeMap::new();
    for event in events {
        by_partition
            .entry(Partition::of(&event.event))
            .or_default()
            .push(event);
    }
    let files = by_partition
        .into_iter()
        .map(|(partition, mut rows)| {
            sort_rows(&mut rows);
            PlannedFile {
                key: batch_file_key(&partition, source, &first, &last),
                partition,
                rows,
            }
        })
        .collect();
    BatchPlan { first, last, files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use flyhigh_schemas::archive::ArchiveTable;
    use proptest::prelude::*;

    const TABLES: [ArchiveTable; 3] = [
        ArchiveTable::Searches,
        ArchiveTable::Bookings,
        ArchiveTable::Cancellations,
    ];

    fn partition(n: usize) -> Partition {
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date")
            + chrono::Days::new((n / 3 / 24) as u64);
        Partition {
            table: TABLES[n % 3],
            date: day,
            hour: ((n / 3) % 24) as u32,
        }
    }

    const SOURCE: &str = "1a2b3c4d-shardId-000000000001";

    /// The keys `plan_batch` gives the part: one per partition its events touch.
    fn part_keys(records: &[(Position, Option<Partition>)], part: &Range<usize>) -> Vec<String> {
        let slice = &records[part.clone()];
        let (first, last) = (&slice[0].0, &slice[slice.len() - 1].0);
        let partitions: BTreeSet<Partition> = slice.iter().filter_map(|(_, p)| *p).collect();
        partitions
            .iter()
            .map(|p| batch_file_key(p, SOURCE, first, last))
            .collect()
    }

    fn check_parts(records: &[(Position, Option<Partition>)], limits: PartLimits) {
        let parts = cut_parts(SOURCE, records, limits);
        // The parts cover the records in order, each at least one.
        let mut next = 0;
        for part in &parts {
            assert_eq!(part.start, next);
            assert!(part.end > part.start);
            next = part.end;
            let keys = part_keys(records, part);
            assert!(keys.len() <= limits.max_files.max(1));
            assert!(
                part.len() == 1 || pending_list_bytes(&keys) <= limits.max_pending_bytes,
                "{} bytes",
                pending_list_bytes(&keys)
            );
        }
        assert_eq!(next, records.len());
    }

    #[test]
    fn a_batch_over_three_thousand_partitions_is_cut_into_parts_that_fit_an_item() {
        // Sequence numbers of today's length: 56 digits.
        let records: Vec<_> = (0..3_300)
            .map(|i| {
                let sequence = format!("49590338271490256608559692538361571095921575989136{i:06}");
                (Position::new(&sequence, None), Some(partition(i)))
            })
            .collect();
        // Without parts, the one pending list is past the item limit.
        let whole = part_keys(&records, &(0..records.len()));
        assert!(pending_list_bytes(&whole) > DYNAMODB_ITEM_LIMIT_BYTES);
        let parts = cut_parts(SOURCE, &records, PartLimits::default());
        assert_eq!(parts.len(), 3_300usize.div_ceil(MAX_FILES_PER_PART));
        check_parts(&records, PartLimits::default());
        // Cut by bytes alone, a part still fits.
        let by_bytes = PartLimits {
            max_files: usize::MAX,
            ..PartLimits::default()
        };
        assert!(cut_parts(SOURCE, &records, by_bytes).len() >= 2);
        check_parts(&records, by_bytes);
    }

    proptest! {
        #[test]
        fn every_part_fits_its_limits(
            steps in proptest::collection::vec((1u64..1_000_000_000, 0usize..200, any::<bool>()), 1..300),
            max_files in 1usize..40,
            max_pending_bytes in 1usize..20_000,
        ) {
            let mut sequence: u128 = 1;
            let records: Vec<_> = steps
                .iter()
                .map(|&(step, p, poison)| {
                    sequence += u128::from(step);
                    (Position::new(&sequence.to_string(), None), (!poison).then(|| partition(p)))
                })
                .collect();
            check_parts(&records, PartLimits { max_pending_bytes, max_files });
        }
    }

    #[test]
    fn a_checkpoint_covers_what_it_archived_and_counts_its_saves() {
        let empty = ArchiveCheckpoint::default();
        assert!(!empty.covers(&Position::new("1", None)));
        let committed = empty.commit(Position::new("10", Some(2)), vec!["k".into()]);
        assert_eq!(committed.version, 1);
        assert!(committed.covers(&Position::new("10", Some(2))));
        assert!(committed.covers(&Position::new("9", Some(7))));
        assert!(!committed.covers(&Position::new("10", Some(3))));
        // Numeric, not textual: 100 comes after 99.
        assert!(!committed.covers(&Position::new("100", None)));
        let promoted = committed.promoted();
        assert_eq!(promoted.version, 2);
        assert!(promoted.pending.is_empty());
        assert_eq!(promoted.archived_through, committed.archived_through);
    }
}
