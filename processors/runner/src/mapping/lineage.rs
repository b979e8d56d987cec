//! The scheduling of shards by lineage, pure: a child of a reshard becomes ready once
//! every listed parent is finished, and says where it must start.

use std::collections::HashMap;

use crate::checkpoint::Checkpoint;
use crate::source::{SourceShard, StartPosition};

/// Where each known shard stands in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ShardState {
    /// Not started; resume after this checkpoint, if any.
    Waiting(Option<String>),
    Running,
    /// Drained: closed, read to its end and checkpointed (now or in an earlier run).
    Finished,
    /// Stopped by the idle timeout before its end: its children must wait.
    Stopped,
}

/// The scheduling of shards by lineage, pure.
#[derive(Debug, Default)]
pub(super) struct Lineage {
    states: HashMap<String, ShardState>,
}

impl Lineage {
    pub(super) fn knows(&self, shard_id: &str) -> bool {
        self.states.contains_key(shard_id)
    }

    pub(super) fn learn(&mut self, shard_id: &str, checkpoint: Checkpoint) {
        let state = if checkpoint.finished {
            ShardState::Finished
        } else {
            ShardState::Waiting(checkpoint.sequence_number)
        };
        self.states.insert(shard_id.to_string(), state);
    }

    pub(super) fn set(&mut self, shard_id: &str, state: ShardState) {
        self.states.insert(shard_id.to_string(), state);
    }

    /// The waiting shards of `listed` whose listed parents are all finished, in
    /// listing order, with where each must start: after its checkpoint; at the trim
    /// horizon for a child of a listed parent (the parent's records came before, the
    /// child's are all new); otherwise the mapping's start position.
    pub(super) fn ready(
        &self,
        listed: &[SourceShard],
        start: &StartPosition,
    ) -> Vec<(String, StartPosition)> {
        let is_listed = |id: &str| listed.iter().any(|s| s.shard_id == id);
        listed
            .iter()
            .filter_map(|shard| {
                let ShardState::Waiting(checkpoint) = self.states.get(&shard.shard_id)? else {
                    return None;
                };
                let parents_drained = shard
                    .parents()
                    .all(|p| !is_listed(p) || self.states.get(p) == Some(&ShardState::Finished));
                if !parents_drained {
                    return None;
                }
                let position = match checkpoint {
                    Some(seq) => StartPosition::AfterSequenceNumber(seq.clone()),
                    None if shard.parents().any(is_listed) => StartPosition::TrimHorizon,
                    None => start.clone(),
                };
                Some((shard.shard_id.clone(), position))
            })
            .collect()
    }

    /// Listed shards still waiting (their parents never finished).
    pub(super) fn waiting(&self, listed: &[SourceShard]) -> Vec<String> {
        listed
            .iter()
            .filter(|s| matches!(self.states.get(&s.shard_id), Some(ShardState::Waiting(_))))
            .map(|s| s.shard_id.clone())
            .collect()
    }
}
