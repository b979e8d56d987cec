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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layout::{Partition, batch_file_key};
use super::order::sort_rows;
use super::rows::ArchivedEvent;
use crate::records::Position;

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
