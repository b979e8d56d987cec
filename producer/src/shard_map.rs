//! Which shard owns a hash key: the stream's open shards sorted by range.

use flyhigh_schemas::HashKey;

use crate::transport::ShardInfo;

/// The shards of a new stream of `count` shards (at least one): equal contiguous
/// ranges of the 128-bit hash-key space, named as Kinesis names them. What the
/// in-process streams are made of.
pub fn equal_shards(count: usize) -> Vec<ShardInfo> {
    let n = count.max(1) as u128;
    let width = u128::MAX / n;
    (0..n)
        .map(|i| ShardInfo {
            shard_id: format!("shardId-{i:012}"),
            starting_hash_key: i * width,
            ending_hash_key: if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * width - 1
            },
        })
        .collect()
}

/// The open shards of a stream, sorted by starting hash key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<ShardInfo>,
}

/// Why a list of shards cannot be used as a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    /// ListShards returned no open shard.
    #[error("the stream has no open shards")]
    Empty,
    /// The open shards do not cover the hash-key space exactly once (a reshard in
    /// progress can show this briefly): try again later.
    #[error("open shards do not tile the hash-key space: {0}")]
    NotATiling(String),
}

impl ShardMap {
    /// A map from the open shards; they must tile the whole 128-bit space.
    pub fn new(mut shards: Vec<ShardInfo>) -> Result<ShardMap, ShardMapError> {
        if shards.is_empty() {
            return Err(ShardMapError::Empty);
        }
        shards.sort_by_key(|s| s.starting_hash_key);
        let mut expected: Option<HashKey> = Some(0);
        for s in &shards {
            if Some(s.starting_hash_key) != expected || s.ending_hash_key < s.starting_hash_key {
                return Err(ShardMapError::NotATiling(format!(
                    "{} starts at {} where {} was expected",
                    s.shard_id,
                    s.starting_hash_key,
                    expected.map_or("nothing".to_string(), |h| h.to_string())
                )));
            }
            expected = s.ending_hash_key.checked_add(1);
        }
        if expected.is_some() {
            return Err(ShardMapError::NotATiling(
                "the last shard does not reach the end of the space".into(),
            ));
        }
        Ok(ShardMap { shards })
    }

    /// The shards, in hash-key order.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// The index (in [`ShardMap::shards`]) of the shard owning `hash_key`.
    pub fn index_of(&self, hash_key: HashKey) -> usize {
        // The map tiles the space, so the owner is the last shard starting at or
        // before the key.
        self.shards
            .partition_point(|s| s.starting_hash_key <= hash_key)
            .saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(id: usize, start: u128, end: u128) -> ShardInfo {
        ShardInfo {
            shard_id: format!("shardId-{id:012}"),
            starting_hash_key: start,
            ending_hash_key: end,
        }
    }

    #[test]
    fn gaps_overlaps_and_empty_lists_are_refused() {
        assert_eq!(ShardMap::new(vec![]), Err(ShardMapError::Empty));
        assert!(ShardMap::new(vec![shard(0, 0, 10), shard(1, 12, u128::MAX)]).is_err());
        assert!(ShardMap::new(vec![shard(0, 0, 10), shard(1, 10, u128::MAX)]).is_err());
        assert!(ShardMap::new(vec![shard(0, 0, 10)]).is_err());
        assert!(ShardMap::new(vec![shard(0, 0, u128::MAX)]).is_ok());
    }

    proptest! {
        #[test]
        fn every_key_maps_to_the_shard_whose_range_holds_it(
            mut cuts in proptest::collection::btree_set(1u128..u128::MAX, 0..12),
            keys in proptest::collection::vec(any::<u128>(), 1..64),
        ) {
            let mut starts = vec![0u128];
            starts.extend(std::mem::take(&mut cuts));
            let mut shards = Vec::new();
            for (i, start) in starts.iter().enumerate() {
                let end = starts.get(i + 1).map_or(u128::MAX, |next| next - 1);
                shards.push(shard(i, *start, end));
            }
            shards.reverse(); // ListShards order is not guaranteed
            let map = ShardMap::new(shards).unwrap();
            for key in keys {
                let s = &map.shards()[map.index_of(key)];
                prop_assert!(s.starting_hash_key <= key && key <= s.ending_hash_key);
            }
        }
    }
}
