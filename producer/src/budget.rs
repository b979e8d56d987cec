//! The byte budget: how much accepted, unresolved data the producer may hold, in
//! total and per shard.
//!
//! Every accepted record is charged its data, key and
//! [`RECORD_OVERHEAD_BYTES`](crate::RECORD_OVERHEAD_BYTES) twice over: against the
//! whole budget ([`ProducerConfig::buffer_budget_bytes`](crate::ProducerConfig::buffer_budget_bytes))
//! and against the share of the shard its key maps to
//! ([`ProducerConfig::shard_budget_share`](crate::ProducerConfig::shard_budget_share)
//! of it). The charge is given back when the record is resolved: written, or its
//! dead letter stored. So a throttled shard (one hot flight) can fill its share and
//! make `send` wait for its own keys, while records for every other shard still
//! find room.
//!
//! The worker publishes the shard map here whenever it loads one; until the first
//! map (or without `kinesis:ListShards`), there is one share: the whole budget.

use std::sync::{Arc, RwLock};

use flyhigh_schemas::HashKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::shard_map::ShardMap;

/// A record's hold on the budget: its bytes, in the whole budget and in its
/// shard's share. Dropping it gives them back. The charges of a sealed batch are
/// merged into one ([`Charge::merge`]), so the budget is given back once per
/// Kinesis record, not once per user record.
#[derive(Debug)]
pub(crate) struct Charge {
    /// The whole budget's permits: one per byte held.
    total: OwnedSemaphorePermit,
    shard: Option<OwnedSemaphorePermit>,
    /// Permits of other shares (of an earlier map, around a reshard).
    others: Vec<OwnedSemaphorePermit>,
}

impl Charge {
    pub fn bytes(&self) -> usize {
        self.total.num_permits()
    }

    /// Holds `other`'s bytes too, until this charge is dropped.
    pub fn merge(&mut self, other: Charge) {
        // One semaphore for the whole budget: those always merge.
        self.total.merge(other.total);
        for permit in other.shard.into_iter().chain(other.others) {
            match &mut self.shard {
                None => self.shard = Some(permit),
                Some(held) if Arc::ptr_eq(held.semaphore(), permit.semaphore()) => {
                    held.merge(permit)
                }
                Some(_) => self.others.push(permit),
            }
        }
    }
}

/// Why a charge could not be taken without waiting.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The whole budget is spent.
    Total {
        held: usize,
        budget: usize,
    },
    /// The shard's share is spent.
    Shard {
        shard_id: Arc<str>,
        held: usize,
        share: usize,
    },
    Closed,
}

/// The shares of one shard map.
#[derive(Debug)]
struct Shares {
    map: Option<ShardMap>,
    /// One per shard of `map`, in its order; empty without a map.
    shards: Vec<Arc<Semaphore>>,
    ids: Vec<Arc<str>>,
    share_bytes: usize,
}

/// The budget, shared by the handle (charges) and the worker (publishes maps).
#[derive(Debug)]
pub(crate) struct Budget {
    total: Arc<Semaphore>,
    total_bytes: usize,
    share: f64,
    /// Smallest share in bytes: one record of the largest size must fit.
    min_share_bytes: usize,
    shares: RwLock<Arc<Shares>>,
}

/// Bytes of a share: `share` of the budget, at least `min` (one largest record),
/// all of it for a stream of one shard.
pub(crate) fn share_bytes(total: usize, share: f64, shards: usize, min: usize) -> usize {
    if shards <= 1 {
        return total;
    }
    ((total as f64 * share) as usize).max(min).min(total)
}

impl Budget {
    pub fn new(total_bytes: usize, share: f64, min_share_bytes: usize) -> Budget {
        Budget {
            total: Arc::new(Semaphore::new(total_bytes)),
            total_bytes,
            share,
            min_share_bytes,
            shares: RwLock::new(Arc::new(Shares {
                map: None,
                shards: Vec::new(),
                ids: Vec::new(),
                share_bytes: total_bytes,
            })),
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Bytes held by unresolved records.
    pub fn held(&self) -> usize {
        self.total_bytes - self.total.available_permits().min(self.total_bytes)
    }

    fn current(&self) -> Arc<Shares> {
        self.shares
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// New shares for a new map. Charges taken under the old map keep their old
    /// semaphores and give back to them; the whole budget bounds the overlap.
    pub fn publish(&self, map: &ShardMap) {
        let n = map.shards().len();
        let share_bytes = share_bytes(self.total_bytes, self.share, n, self.min_share_bytes);
        let shares = Shares {
            map: Some(map.clone()),
            shards: (0..n)
                .map(|_| Arc::new(Semaphore::new(share_bytes)))
                .collect(),
            ids: map
                .shards()
                .iter()
                .map(|s| Arc::from(s.shard_id.as_str()))
                .collect(),
            share_bytes,
        };
        *self.shares.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(shares);
    }

    /// The shard whose share a key is charged to; `None` when the share is the
    /// whole budget anyway (no map, one shard, or a share of 1).
    fn shard_of(&self, shares: &Shares, hash_key: HashKey) -> Option<usize> {
        let map = shares.map.as_ref()?;
        if shares.share_bytes >= self.total_bytes {
            return None;
        }
        Some(map.index_of(hash_key))
    }

    /// Takes `bytes` for a record of `hash_key`, waiting for its shard's share and
    /// then for the whole budget. `None` when the producer is closing.
    pub async fn charge(&self, hash_key: HashKey, bytes: usize) -> Option<Charge> {
        // Most sends find room: no waiting, but a turn of the task's cooperative
        // budget, so that a sending loop on a current-thread runtime still lets
        // the worker run (waiting on a semaphore did that before).
        match self.try_charge(hash_key, bytes) {
            Ok(charge) => {
                tokio::task::consume_budget().await;
                return Some(charge);
            }
            Err(Refused::Closed) => return None,
            Err(_) => {}
        }
        let shares = self.current();
        let shard = match self.shard_of(&shares, hash_key) {
            Some(i) => Some(
                shares.shards[i]
                    .clone()
                    .acquire_many_owned(bytes as u32)
                    .await
                    .ok()?,
            ),
            None => None,
        };
        let total = self
            .total
            .clone()
            .acquire_many_owned(bytes as u32)
            .await
            .ok()?;
        Some(Charge {
            total,
            shard,
            others: Vec::new(),
        })
    }

    /// Like [`Budget::charge`], without waiting.
    pub fn try_charge(&self, hash_key: HashKey, bytes: usize) -> Result<Charge, Refused> {
        let shares = self.shares.read().unwrap_or_else(|p| p.into_inner());
        let shard = match self.shard_of(&shares, hash_key) {
            Some(i) => match shares.shards[i]
                .clone()
                .try_acquire_many_owned(bytes as u32)
            {
                Ok(p) => Some(p),
                Err(TryAcquireError::NoPermits) => {
                    return Err(Refused::Shard {
                        shard_id: shares.ids[i].clone(),
                        held: shares.share_bytes
                            - shares.shards[i].available_permits().min(shares.share_bytes),
                        share: shares.share_bytes,
                    });
                }
                Err(TryAcquireError::Closed) => return Err(Refused::Closed),
            },
            None => None,
        };
        match self.total.clone().try_acquire_many_owned(bytes as u32) {
            Ok(total) => Ok(Charge {
                total,
                shard,
                others: Vec::new(),
            }),
            Err(TryAcquireError::NoPermits) => Err(Refused::Total {
                held: self.held(),
                budget: self.total_bytes,
            }),
            Err(TryAcquireError::Closed) => Err(Refused::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ShardInfo;

    fn map(n: u128) -> ShardMap {
        let step = u128::MAX / n;
        ShardMap::new(
            (0..n)
                .map(|i| ShardInfo {
                    shard_id: format!("shardId-{i:012}"),
                    starting_hash_key: i * step,
                    ending_hash_key: if i == n - 1 {
                        u128::MAX
                    } else {
                        (i + 1) * step - 1
                    },
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn shares_are_half_the_budget_all_of_it_for_one_shard_and_at_least_one_record() {
        assert_eq!(share_bytes(1000, 0.5, 1, 10), 1000);
        assert_eq!(share_bytes(1000, 0.5, 4, 10), 500);
        assert_eq!(share_bytes(1000, 0.01, 4, 300), 300);
        assert_eq!(share_bytes(1000, 1.0, 4, 10), 1000);
    }

    #[tokio::test]
    async fn a_full_shard_refuses_its_keys_while_other_shards_still_charge() {
        let budget = Budget::new(1000, 0.5, 10);
        budget.publish(&map(4));
        let hot = 1u128; // shard 0
        let cold = u128::MAX - 1; // shard 3
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(budget.try_charge(hot, 100).expect("within the share"));
        }
        match budget.try_charge(hot, 100) {
            Err(Refused::Shard {
                shard_id,
                held,
                share,
            }) => {
                assert_eq!(&*shard_id, "shardId-000000000000");
                assert_eq!((held, share), (500, 500));
            }
            other => panic!("{other:?}"),
        }
        // The rest of the budget is there for the other shards.
        let cold_charge = budget.try_charge(cold, 400).expect("another shard");
        assert_eq!(budget.held(), 900);
        // A third shard has room in its share, but the whole budget has not.
        match budget.try_charge(u128::MAX / 4 + 10, 200) {
            Err(Refused::Total { held, budget }) => assert_eq!((held, budget), (900, 1000)),
            other => panic!("{other:?}"),
        }
        drop(held);
        drop(cold_charge);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn merged_charges_give_everything_back_at_once_also_across_a_new_map() {
        let budget = Budget::new(10_000, 0.5, 10);
        budget.publish(&map(2));
        let mut batch = budget.try_charge(1, 100).unwrap();
        batch.merge(budget.try_charge(2, 200).unwrap());
        // A record charged under the next map's shares joins the same batch.
        budget.publish(&map(2));
        batch.merge(budget.try_charge(3, 300).unwrap());
        assert_eq!(batch.bytes(), 600);
        assert_eq!(budget.held(), 600);
        drop(batch);
        assert_eq!(budget.held(), 0);
        let shares = budget.current();
        assert_eq!(shares.shards[0].available_permits(), shares.share_bytes);
    }

    #[tokio::test]
    async fn without_a_map_there_is_one_share() {
        let budget = Budget::new(1000, 0.5, 10);
        let a = budget.try_charge(1, 900).expect("whole budget");
        assert!(matches!(
            budget.try_charge(1, 200),
            Err(Refused::Total { .. })
        ));
        drop(a);
        assert!(budget.charge(1, 1000).await.is_some());
    }
}
