//! Routing and resharding: the worker's per-shard states, which state a hash key
//! goes to, and what a new shard map does to them.
//!
//! Until the first map loads (or without `kinesis:ListShards`), one catch-all state
//! takes every record and sends them plain (an aggregate could mix keys of
//! different shards). A new map keeps the states of shards it still has, adds
//! states for new shards, and retires the rest: a retired state takes no new
//! records and drains its queue, and every new state whose range overlaps a
//! retired one with work waits for it ([`ShardState::blocked_by`]), so a key's
//! records before a split are written before its records after.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use flyhigh_schemas::HashKey;
use tokio::time::Instant;

use crate::aggregate::{Aggregate, ShardAggregator};
use crate::budget::Charge;
use crate::exchange::Member;
use crate::limits::entry_size;
use crate::rate::ShardRate;
use crate::shard_map::ShardMap;
use crate::transport::Entry;

/// A sealed Kinesis record waiting in its shard's queue (or in flight).
pub(crate) struct Batch {
    /// `None` while in flight (the request owns it).
    pub entry: Option<Entry>,
    pub members: Vec<Member>,
    /// The budget charges of all its members, merged: given back at once when the
    /// batch is dropped.
    pub charge: Option<Charge>,
    pub aggregated: bool,
    /// Distinct hash keys of its records.
    pub keys: Vec<HashKey>,
    pub size: usize,
    pub attempts: u32,
    pub last_error: String,
    /// Its oldest record's deadline.
    pub deadline: Instant,
}

impl Batch {
    /// Seals an aggregate into a batch.
    pub fn new(mut aggregate: Aggregate<Member>) -> Batch {
        let size = entry_size(&aggregate.entry);
        let mut charge: Option<Charge> = None;
        for member in &mut aggregate.members {
            if let Some(c) = member.charge.take() {
                match &mut charge {
                    Some(held) => held.merge(c),
                    None => charge = Some(c),
                }
            }
        }
        let mut keys: Vec<HashKey> = aggregate.members.iter().map(|m| m.hash_key).collect();
        keys.sort_unstable();
        keys.dedup();
        let deadline = aggregate
            .members
            .iter()
            .map(|m| m.deadline)
            .min()
            .unwrap_or_else(Instant::now);
        Batch {
            entry: Some(aggregate.entry),
            members: aggregate.members,
            charge,
            aggregated: aggregate.aggregated,
            keys,
            size,
            attempts: 0,
            last_error: String::new(),
            deadline,
        }
    }

    /// Bytes of the budget it holds.
    pub fn charged(&self) -> usize {
        self.charge.as_ref().map_or(0, Charge::bytes)
    }

    /// When its oldest record was accepted.
    pub fn oldest(&self) -> Option<DateTime<Utc>> {
        self.members.iter().map(|m| m.accepted_at).min()
    }
}

/// Totals of one state, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ShardTotals {
    pub user_records_written: u64,
    pub kinesis_records_written: u64,
    pub bytes_written: u64,
    pub throttles: u64,
}

pub(crate) struct ShardState {
    /// `None` for the catch-all pseudo-shard used while the map is unknown.
    pub shard_id: Option<Arc<str>>,
    pub start: HashKey,
    pub end: HashKey,
    pub aggregate: bool,
    pub aggregator: ShardAggregator<Member>,
    pub linger_deadline: Option<Instant>,
    pub queue: VecDeque<Batch>,
    pub in_flight: usize,
    pub not_before: Instant,
    /// Consecutive responses with a failure (for the backoff); a clean one resets.
    pub failures: u32,
    pub rate: ShardRate,
    /// Left the map: drains its queue, receives no new records.
    pub retired: bool,
    /// States that must drain before this one sends (their ranges overlap ours).
    pub blocked_by: Vec<usize>,
    pub totals: ShardTotals,
    /// `totals` when the metrics were last published (for per-second rates).
    pub published: ShardTotals,
}

impl ShardState {
    pub fn new(
        shard_id: Option<Arc<str>>,
        start: HashKey,
        end: HashKey,
        aggregate: bool,
        aggregate_max_bytes: usize,
        rate: ShardRate,
    ) -> ShardState {
        ShardState {
            shard_id,
            start,
            end,
            aggregate,
            aggregator: ShardAggregator::new(aggregate_max_bytes),
            linger_deadline: None,
            queue: VecDeque::new(),
            in_flight: 0,
            not_before: Instant::now(),
            failures: 0,
            rate,
            retired: false,
            blocked_by: Vec::new(),
            totals: ShardTotals::default(),
            published: ShardTotals::default(),
        }
    }

    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.in_flight > 0 || !self.aggregator.is_empty()
    }

    /// Seals the open aggregate into the queue.
    pub fn seal(&mut self) {
        if let Some(aggregate) = self.aggregator.seal() {
            self.queue.push_back(Batch::new(aggregate));
        }
        self.linger_deadline = None;
    }

    /// Adds a record; seals what the aggregator returns (and, for plain-record
    /// states, the record itself at once).
    pub fn add(
        &mut self,
        record: crate::aggregate::UserRecord,
        member: Member,
        now: Instant,
        linger: std::time::Duration,
    ) {
        if self.aggregator.is_empty() {
            self.linger_deadline = Some(now + linger);
        }
        if let Some(aggregate) = self.aggregator.add(record, member) {
            self.queue.push_back(Batch::new(aggregate));
            if !self.aggregator.is_empty() {
                self.linger_deadline = Some(now + linger);
            }
        }
        if !self.aggregate {
            self.seal();
        }
    }
}

/// Which state each shard of the map routes to, after a new map.
pub(crate) struct Remap {
    /// `map` index → `states` index.
    pub routes: Vec<usize>,
    /// States that left the map.
    pub retired: Vec<usize>,
}

/// Applies a new map to the states: keeps those of unchanged shards, adds new
/// ones (made by `make`), retires the rest (sealing their open aggregates), and
/// blocks each new state behind the retired states with work that overlap it.
pub(crate) fn remap(
    states: &mut Vec<ShardState>,
    old_routes: &[usize],
    map: &ShardMap,
    mut make: impl FnMut(&crate::transport::ShardInfo) -> ShardState,
) -> Remap {
    let mut routes = Vec::with_capacity(map.shards().len());
    let mut kept = Vec::new();
    for shard in map.shards() {
        let existing = old_routes.iter().copied().find(|&i| {
            let s = &states[i];
            s.shard_id.as_deref() == Some(shard.shard_id.as_str())
                && s.start == shard.starting_hash_key
                && s.end == shard.ending_hash_key
        });
        match existing {
            Some(i) => {
                kept.push(i);
                routes.push(i);
            }
            None => {
                states.push(make(shard));
                routes.push(states.len() - 1);
            }
        }
    }
    let retired: Vec<usize> = old_routes
        .iter()
        .copied()
        .filter(|i| !kept.contains(i))
        .collect();
    for &r in &retired {
        states[r].retired = true;
        states[r].seal();
    }
    for &n in &routes {
        if kept.contains(&n) {
            continue;
        }
        let (start, end) = (states[n].start, states[n].end);
        let blockers: Vec<usize> = states
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                *i != n && s.retired && s.has_work() && s.start <= end && start <= s.end
            })
            .map(|(i, _)| i)
            .collect();
        states[n].blocked_by = blockers;
    }
    Remap { routes, retired }
}

/// Clears `blocked_by` entries of state `i` whose states have drained.
pub(crate) fn unblock(states: &mut [ShardState], i: usize) {
    if states[i].blocked_by.is_empty() {
        return;
    }
    let blockers = std::mem::take(&mut states[i].blocked_by);
    let still: Vec<usize> = blockers
        .into_iter()
        .filter(|&b| states[b].has_work())
        .collect();
    states[i].blocked_by = still;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::ShardLimits;
    use crate::transport::ShardInfo;

    fn info(id: &str, start: HashKey, end: HashKey) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            starting_hash_key: start,
            ending_hash_key: end,
        }
    }

    fn state(s: &ShardInfo) -> ShardState {
        ShardState::new(
            Some(Arc::from(s.shard_id.as_str())),
            s.starting_hash_key,
            s.ending_hash_key,
            true,
            51_200,
            ShardRate::new(ShardLimits::UNLIMITED, Instant::now()),
        )
    }

    fn member(hash_key: HashKey) -> Member {
        let (reply, _) = tokio::sync::oneshot::channel();
        let budget = crate::budget::Budget::new(1 << 20, 1.0, 1);
        Member::new(
            reply,
            budget.try_charge(hash_key, 10).unwrap(),
            hash_key,
            Instant::now() + std::time::Duration::from_secs(60),
            Utc::now(),
        )
    }

    #[tokio::test]
    async fn a_split_keeps_the_unchanged_shard_retires_the_parent_and_blocks_its_children() {
        let half = u128::MAX / 2;
        let first =
            ShardMap::new(vec![info("s0", 0, half), info("s1", half + 1, u128::MAX)]).unwrap();
        let mut states = Vec::new();
        let r = remap(&mut states, &[], &first, state);
        assert_eq!(r.routes, vec![0, 1]);
        // s1 has an open aggregate when it splits.
        let key = half + 10;
        states[1].add(
            crate::aggregate::UserRecord::new("k", b"{}".to_vec()),
            member(key),
            Instant::now(),
            std::time::Duration::from_millis(50),
        );
        let quarter = half + (u128::MAX - half) / 2;
        let second = ShardMap::new(vec![
            info("s0", 0, half),
            info("s2", half + 1, quarter),
            info("s3", quarter + 1, u128::MAX),
        ])
        .unwrap();
        let r = remap(&mut states, &[0, 1], &second, state);
        assert_eq!(r.routes, vec![0, 2, 3], "s0 kept, two new states");
        assert_eq!(r.retired, vec![1]);
        assert!(states[1].retired);
        assert_eq!(states[1].queue.len(), 1, "its open aggregate was sealed");
        assert_eq!(states[2].blocked_by, vec![1]);
        assert_eq!(states[3].blocked_by, vec![1]);
        assert!(states[0].blocked_by.is_empty());
        // Once the parent drained, its children are unblocked.
        unblock(&mut states, 2);
        assert_eq!(states[2].blocked_by, vec![1]);
        states[1].queue.clear();
        unblock(&mut states, 2);
        assert!(states[2].blocked_by.is_empty());
    }

    #[test]
    fn the_same_map_again_changes_nothing() {
        let map = ShardMap::new(vec![info("s0", 0, u128::MAX)]).unwrap();
        let mut states = Vec::new();
        let r = remap(&mut states, &[], &map, state);
        let again = remap(&mut states, &r.routes, &map, state);
        assert_eq!(again.routes, r.routes);
        assert!(again.retired.is_empty());
        assert_eq!(states.len(), 1);
    }
}
