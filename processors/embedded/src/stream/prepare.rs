//! The pure part of a put: the PutRecords limit checks, shard placement, reading the
//! event ids a record carries and re-encoding an aggregate that lost duplicates.
//!
//! It runs on the caller's task, before the request reaches the writer thread, so
//! the one thread that owns the database spends its time on SQLite alone.

use std::borrow::Cow;

use flyhigh_producer::{Entry, ShardInfo};
use flyhigh_schemas::aggregation::{AggregateBuilder, Deaggregated, deaggregate};
use uuid::Uuid;

/// An entry checked, placed and with its event ids read: what the writer stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreparedEntry {
    /// Index of the shard owning the entry's hash key.
    pub shard: usize,
    /// The Kinesis record's partition key (an aggregate's own key).
    pub partition_key: String,
    /// The bytes as sent.
    pub data: Vec<u8>,
    /// Whether `data` is a KPL aggregate (decoded without error).
    pub aggregated: bool,
    /// Per user record, in order, its event id when it is a JSON event that has
    /// one. Empty when dedupe is off.
    pub event_ids: Vec<Option<Uuid>>,
}

/// The shards of a new stream, exactly as [`flyhigh_producer::LocalStream`] makes
/// them.
pub(crate) use flyhigh_producer::shard_map::equal_shards;

/// The index of the shard whose range holds `hash_key` (`shards` tile the space in
/// order, as [`equal_shards`] makes them).
pub(crate) fn shard_index(shards: &[ShardInfo], hash_key: u128) -> usize {
    shards
        .partition_point(|s| s.starting_hash_key <= hash_key)
        .saturating_sub(1)
}

/// The PutRecords limits, as [`flyhigh_producer::LocalStream::put`] holds them.
pub(crate) use flyhigh_producer::limits::check_put_request as check_request;

/// The one field dedupe needs from an event.
#[derive(serde::Deserialize)]
struct EventId {
    event_id: Uuid,
}

/// The event id of a user record, when it is a JSON event that has one. Anything
/// else is kept as it is: the consumers dead-letter what they cannot decode.
pub(crate) fn event_id(user_record: &[u8]) -> Option<Uuid> {
    serde_json::from_slice::<EventId>(user_record)
        .ok()
        .map(|e| e.event_id)
}

/// Places an entry and, with `dedupe`, reads the event id of each of its user
/// records.
pub(crate) fn prepare(shards: &[ShardInfo], entry: &Entry, dedupe: bool) -> PreparedEntry {
    let (aggregated, event_ids) = if dedupe {
        match deaggregate(&entry.data) {
            Ok(Deaggregated::Aggregated(records)) => {
                (true, records.iter().map(|r| event_id(r.data)).collect())
            }
            Ok(Deaggregated::Single(data)) => (false, vec![event_id(data)]),
            // A damaged aggregate is stored as sent: consumers quarantine it.
            Err(_) => (false, Vec::new()),
        }
    } else {
        (false, Vec::new())
    };
    PreparedEntry {
        shard: shard_index(shards, entry.hash_key()),
        partition_key: entry.partition_key.clone(),
        data: entry.data.clone(),
        aggregated,
        event_ids,
    }
}

/// What is left of a record once the user records at the `dropped` indexes (in
/// order) are removed: `None` when nothing is left, the aggregate re-encoded from
/// the others (each keeping its partition and explicit hash keys) otherwise.
pub(crate) fn without<'a>(entry: &'a PreparedEntry, dropped: &[usize]) -> Option<Cow<'a, [u8]>> {
    if dropped.is_empty() {
        return Some(Cow::Borrowed(&entry.data));
    }
    if !entry.aggregated {
        return None;
    }
    let Ok(Deaggregated::Aggregated(records)) = deaggregate(&entry.data) else {
        // `prepare` decoded it once already; bytes do not change.
        return Some(Cow::Borrowed(&entry.data));
    };
    let mut builder = AggregateBuilder::new();
    for (i, r) in records.iter().enumerate() {
        if dropped.binary_search(&i).is_err() {
            builder.push(r.partition_key, r.explicit_hash_key, r.data);
        }
    }
    if builder.is_empty() {
        None
    } else {
        Some(Cow::Owned(builder.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyhigh_producer::LocalStream;
    use flyhigh_producer::limits::MAX_RECORD_BYTES;

    fn event(id: Uuid) -> Vec<u8> {
        format!(r#"{{"event_id":"{id}","schema_version":1}}"#).into_bytes()
    }

    #[test]
    fn shards_are_local_streams_shards() {
        for n in [1, 2, 3, 4, 7, 16] {
            assert_eq!(equal_shards(n), LocalStream::new("s", n).shards());
        }
        assert_eq!(equal_shards(0), LocalStream::new("s", 0).shards());
    }

    #[test]
    fn placement_is_local_streams() {
        let stream = LocalStream::new("s", 5);
        let shards = equal_shards(5);
        for i in 0..500 {
            let key = format!("FH{i:04}-20261201");
            assert_eq!(
                shard_index(&shards, flyhigh_schemas::hash_key(&key)),
                stream.shard_for(&key)
            );
        }
        assert_eq!(shard_index(&shards, 0), 0);
        assert_eq!(shard_index(&shards, u128::MAX), 4);
    }

    #[test]
    fn event_ids_are_read_from_json_events_only() {
        let id = Uuid::now_v7();
        assert_eq!(event_id(&event(id)), Some(id));
        assert_eq!(event_id(b"not json"), None);
        assert_eq!(event_id(br#"{"event_id":"nope"}"#), None);
        assert_eq!(event_id(br#"{"booking_id":"BK1"}"#), None);
    }

    #[test]
    fn an_aggregate_that_lost_records_is_re_encoded_from_the_rest() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut builder = AggregateBuilder::new();
        for (i, id) in ids.iter().enumerate() {
            builder.push(&format!("pk{i}"), Some("42"), &event(*id));
        }
        let entry = Entry::new("agg", builder.finish());
        let prepared = prepare(&equal_shards(1), &entry, true);
        assert!(prepared.aggregated);
        assert_eq!(
            prepared.event_ids,
            ids.iter().copied().map(Some).collect::<Vec<_>>()
        );
        let rest = without(&prepared, &[1]).expect("two left");
        let Ok(Deaggregated::Aggregated(records)) = deaggregate(&rest) else {
            panic!("an aggregate")
        };
        assert_eq!(
            records
                .iter()
                .map(|r| (r.partition_key, r.explicit_hash_key, event_id(r.data)))
                .collect::<Vec<_>>(),
            [
                ("pk0", Some("42"), Some(ids[0])),
                ("pk2", Some("42"), Some(ids[2]))
            ]
        );
        assert_eq!(without(&prepared, &[0, 1, 2]), None);
        assert_eq!(
            without(&prepared, &[]).as_deref(),
            Some(entry.data.as_slice())
        );
    }

    #[test]
    fn a_single_duplicate_leaves_nothing_and_dedupe_off_reads_nothing() {
        let entry = Entry::new("k", event(Uuid::now_v7()));
        let prepared = prepare(&equal_shards(1), &entry, true);
        assert!(!prepared.aggregated);
        assert_eq!(without(&prepared, &[0]), None);
        assert!(
            prepare(&equal_shards(1), &entry, false)
                .event_ids
                .is_empty()
        );
    }

    #[test]
    fn requests_beyond_the_kinesis_limits_are_refused() {
        let too_many: Vec<Entry> = (0..501)
            .map(|i| Entry::new(i.to_string(), vec![]))
            .collect();
        assert!(check_request(&too_many).is_err());
        assert!(check_request(&[]).is_err());
        assert!(check_request(&[Entry::new("k", vec![0; MAX_RECORD_BYTES])]).is_err());
        assert!(check_request(&[Entry::new("k".repeat(257), vec![])]).is_err());
        assert!(check_request(&[Entry::new("", vec![])]).is_err());
        let big: Vec<Entry> = (0..6)
            .map(|i| Entry::new(i.to_string(), vec![0; MAX_RECORD_BYTES - 1]))
            .collect();
        assert!(check_request(&big).is_err());
        assert!(check_request(&[Entry::new("k", b"{}".to_vec())]).is_ok());
    }
}
