//! The demand table's items and requests: counters, the route registry, the shards'
//! watermarks. Pure; the store alone sends them. The layout is in the parent
//! module's docs.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use flyhigh_core::demand::{CounterKey, CounterUpdate, Counts, Position};
use flyhigh_core::ports::{NotedRoute, ShardWatermark};

use super::keys::{TimeOutOfRange, bucket_key, parse_time, time_key};
use crate::dynamodb::items::{Item, PK, SK, get_n, get_s, n, s};
use crate::dynamodb::reads::Expression;

/// Most put requests one `BatchWriteItem` may carry.
pub const BATCH_WRITE_MAX_ITEMS: usize = 25;

/// How long DynamoDB keeps a counter past the later of its bucket and the last
/// arrival it counted: 35 days ([`flyhigh_core::demand::counting::COUNTER_RETENTION_SECONDS`],
/// which says why). Counting from arrival keeps a counter of an event dated long ago
/// (its bucket 40 days back) alive for 35 days from now, so TTL cannot delete it
/// before a redelivery meets its mark. TTL deletes an expired item within days, never
/// before its time.
pub const COUNTER_TTL_SECONDS: i64 = flyhigh_core::demand::counting::COUNTER_RETENTION_SECONDS;

/// Partition key prefix of a route's counters.
pub(crate) const ROUTE_PREFIX: &str = "ROUTE#";
/// The route registry's partition.
pub(crate) const ROUTES_PK: &str = "#routes";
/// The shards' watermarks' partition.
pub(crate) const WATERMARKS_PK: &str = "#watermarks";
/// Separates the bucket from the shard id in a counter's sort key.
const SK_SEPARATOR: char = '#';
/// The character after [`SK_SEPARATOR`]: the upper end of a bucket's sort keys.
const SK_AFTER_SEPARATOR: char = '$';

pub(crate) const ROUTE: &str = "route";
pub(crate) const BUCKET: &str = "bucket";
pub(crate) const SHARD_ID: &str = "shard_id";
/// The counter's high-water mark, [`Position::to_key`].
pub(crate) const MARK: &str = "mark";
/// When DynamoDB's TTL may delete a counter (epoch seconds): the table's TTL
/// attribute.
pub(crate) const EXPIRES_AT: &str = "expires_at";
/// A shard's progress (an arrival time; the attribute keeps the name it had when it
/// held event time, so items of older builds read back).
pub(crate) const EVENT_TIME: &str = "event_time";
pub(crate) const UPDATED_AT: &str = "updated_at";
/// When a consumer last noted a registry's route (fixed-width RFC 3339).
pub(crate) const LAST_SEEN: &str = "last_seen";

/// The counted attributes, each changed only by `ADD`.
const COUNTS: [&str; 6] = [
    "searches",
    "passengers",
    "bookings",
    "seats",
    "cancellations",
    "late",
];

fn count_values(c: &Counts) -> [u64; 6] {
    [
        c.searches,
        c.passengers,
        c.bookings,
        c.seats,
        c.cancellations,
        c.late,
    ]
}

/// A conditional `UpdateItem`: the key, the update and condition expressions, and the
/// placeholders they share.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Write {
    pub(crate) key: Item,
    pub(crate) update: String,
    pub(crate) condition: String,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: Item,
}

#[cfg(test)]
impl Write {
    /// Both expressions as one, to check their placeholders.
    pub(crate) fn expression(&self) -> Expression {
        Expression {
            text: format!("{} {}", self.update, self.condition),
            names: self.names.clone(),
            values: self.values.clone(),
        }
    }
}

fn names(attrs: &[&str]) -> HashMap<String, String> {
    attrs
        .iter()
        .map(|a| (format!("#{a}"), a.to_string()))
        .collect()
}

fn counter_sk(bucket: i64, shard_id: &str) -> String {
    format!("{}{SK_SEPARATOR}{shard_id}", bucket_key(bucket))
}

/// The key of a counter: its route's partition, sorted by bucket, then shard.
pub(crate) fn counter_key(key: &CounterKey) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{ROUTE_PREFIX}{}", key.route))),
        (SK.into(), s(counter_sk(key.bucket, &key.shard_id))),
    ])
}

/// The one `UpdateItem` of a [`CounterUpdate`]: add the counts and move the mark, if
/// the counter is new or its mark is below the update's first position.
pub(crate) fn counter_write(update: &CounterUpdate) -> Write {
    let mut attrs = vec![PK, MARK, ROUTE, BUCKET, SHARD_ID, EXPIRES_AT];
    attrs.extend(COUNTS);
    let adds: Vec<String> = COUNTS.iter().map(|c| format!("#{c} :{c}")).collect();
    let mut values: Item = COUNTS
        .iter()
        .zip(count_values(&update.counts))
        .map(|(c, v)| (format!(":{c}"), n(v)))
        .collect();
    let key = &update.key;
    values.extend([
        (":last".to_string(), s(update.last.to_key())),
        (":first".to_string(), s(update.first.to_key())),
        (":route".to_string(), s(&key.route)),
        (":bucket".to_string(), n(key.bucket)),
        (":shard_id".to_string(), s(&key.shard_id)),
        (":expires_at".to_string(), n(update.expires_at())),
    ]);
    Write {
        key: counter_key(key),
        update: format!(
            "SET #mark = :last, #route = :route, #bucket = :bucket, #shard_id = :shard_id, \
             #expires_at = :expires_at ADD {}",
            adds.join(", ")
        ),
        condition: "attribute_not_exists(#pk) OR #mark < :first".into(),
        names: names(&attrs),
        values,
    }
}

/// Decodes a counter item.
pub(crate) fn parse_counter(item: &Item) -> Result<(CounterKey, Counts), String> {
    let key = CounterKey {
        route: get_s(item, ROUTE)?.to_string(),
        bucket: get_n(item, BUCKET)?.ok_or_else(|| format!("attribute `{BUCKET}` is missing"))?,
        shard_id: get_s(item, SHARD_ID)?.to_string(),
    };
    let mut v = [0u64; 6];
    for (slot, name) in v.iter_mut().zip(COUNTS) {
        *slot = get_n(item, name)?.unwrap_or(0);
    }
    let counts = Counts {
        searches: v[0],
        passengers: v[1],
        bookings: v[2],
        seats: v[3],
        cancellations: v[4],
        late: v[5],
    };
    Ok((key, counts))
}

/// The mark of a counter item.
pub(crate) fn parse_mark(item: &Item) -> Result<Position, String> {
    let mark = get_s(item, MARK)?;
    Position::from_key(mark).ok_or_else(|| format!("attribute `{MARK}` is not a position: {mark}"))
}

/// The key condition of a route's counters in buckets `from <= bucket < to`; `None`
/// when the range is empty (DynamoDB refuses a `BETWEEN` whose ends are reversed).
///
/// Sort keys are `bucket_key#shard_id` with fixed-width bucket keys, so
/// `bucket_key(from)#` is below every key of bucket `from` and `bucket_key(to - 1)$`
/// above every key of bucket `to - 1` (`$` follows `#`).
pub(crate) fn counters_query(route: &str, from: i64, to: i64) -> Option<Expression> {
    if from >= to {
        return None;
    }
    let lo = format!("{}{SK_SEPARATOR}", bucket_key(from));
    let hi = format!("{}{SK_AFTER_SEPARATOR}", bucket_key(to - 1));
    Some(Expression {
        text: "#pk = :pk AND #sk BETWEEN :lo AND :hi".into(),
        names: HashMap::from([("#pk".into(), PK.into()), ("#sk".into(), SK.into())]),
        values: HashMap::from([
            (":pk".into(), s(format!("{ROUTE_PREFIX}{route}"))),
            (":lo".into(), s(lo)),
            (":hi".into(), s(hi)),
        ]),
    })
}

/// The key condition of a whole fixed partition (the registry, the watermarks).
pub(crate) fn partition_query(pk: &str) -> Expression {
    Expression {
        text: "#pk = :pk".into(),
        names: HashMap::from([("#pk".into(), PK.into())]),
        values: HashMap::from([(":pk".into(), s(pk))]),
    }
}

/// The key of a route's registry item.
pub(crate) fn route_key(route: &str) -> Item {
    HashMap::from([(PK.into(), s(ROUTES_PK)), (SK.into(), s(route))])
}

/// A route's registry item, noted at `seen_at`.
pub(crate) fn route_item(route: &str, seen_at: DateTime<Utc>) -> Result<Item, TimeOutOfRange> {
    let mut item = route_key(route);
    item.insert(ROUTE.into(), s(route));
    item.insert(LAST_SEEN.into(), s(time_key(seen_at)?));
    Ok(item)
}

/// Decodes a registry item. An item written before `last_seen` existed reads as
/// seen at the epoch: quiet, so the evaluator forgets it unless it is noted again.
pub(crate) fn parse_route(item: &Item) -> Result<NotedRoute, String> {
    let last_seen = match item.get(LAST_SEEN) {
        Some(_) => parse_time(get_s(item, LAST_SEEN)?)?,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    Ok(NotedRoute {
        route: get_s(item, ROUTE)?.to_string(),
        last_seen,
    })
}

/// Forgets a registry route if it was not noted again since it was listed: the
/// condition of the `DeleteItem`.
pub(crate) fn forget_route_condition(route: &NotedRoute) -> Result<Expression, TimeOutOfRange> {
    Ok(Expression {
        // An item written before `last_seen` existed has none: it goes too.
        text: "#last_seen = :seen OR attribute_not_exists(#last_seen)".into(),
        names: HashMap::from([("#last_seen".into(), LAST_SEEN.into())]),
        values: HashMap::from([(":seen".into(), s(time_key(route.last_seen)?))]),
    })
}

/// The routes to put, without repeats (`BatchWriteItem` refuses a request that names
/// one key twice), in requests of at most [`BATCH_WRITE_MAX_ITEMS`].
pub(crate) fn route_batches(routes: &[String]) -> Vec<Vec<&str>> {
    let unique: BTreeSet<&str> = routes.iter().map(String::as_str).collect();
    let unique: Vec<&str> = unique.into_iter().collect();
    unique
        .chunks(BATCH_WRITE_MAX_ITEMS)
        .map(<[&str]>::to_vec)
        .collect()
}

/// The key of a shard's watermark.
pub(crate) fn watermark_key(shard_id: &str) -> Item {
    HashMap::from([(PK.into(), s(WATERMARKS_PK)), (SK.into(), s(shard_id))])
}

/// Moves a shard's progress to `progress`, if there is none, it is earlier, or it is
/// later than `updated_at` (no arrival can have stamped it: an event-time watermark
/// of an older build, or a clock gone wrong; see the port).
pub(crate) fn watermark_write(
    shard_id: &str,
    progress: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> Result<Write, TimeOutOfRange> {
    Ok(Write {
        key: watermark_key(shard_id),
        update: "SET #event_time = :t, #updated_at = :u, #shard_id = :shard_id".into(),
        condition: "attribute_not_exists(#pk) OR #event_time < :t OR #event_time > :u".into(),
        names: names(&[PK, EVENT_TIME, UPDATED_AT, SHARD_ID]),
        values: HashMap::from([
            (":t".into(), s(time_key(progress)?)),
            (":u".into(), s(time_key(updated_at)?)),
            (":shard_id".into(), s(shard_id)),
        ]),
    })
}

/// Decodes a watermark item.
pub(crate) fn parse_watermark(item: &Item) -> Result<ShardWatermark, String> {
    Ok(ShardWatermark {
        shard_id: get_s(item, SHARD_ID)?.to_string(),
        progress: parse_time(get_s(item, EVENT_TIME)?)?,
        updated_at: parse_time(get_s(item, UPDATED_AT)?)?,
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn update(route: &str, bucket: i64, first: &str, last: &str) -> CounterUpdate {
        CounterUpdate {
            arrived: DateTime::from_timestamp(bucket + 30, 0).unwrap(),
            key: CounterKey {
                route: route.into(),
                bucket,
                shard_id: "shardId-000000000003".into(),
            },
            counts: Counts {
                searches: 4,
                passengers: 7,
                bookings: 2,
                seats: 5,
                cancellations: 1,
                late: 3,
            },
            first: Position::new(first, Some(0)),
            last: Position::new(last, Some(2)),
        }
    }

    /// The item an applied write leaves on a new counter.
    fn applied(write: &Write) -> Item {
        let mut item = write.key.clone();
        for attr in write.names.values() {
            if let Some(v) = write.values.get(&format!(":{attr}")) {
                item.insert(attr.clone(), v.clone());
            }
        }
        item.insert(MARK.into(), write.values[":last"].clone());
        item
    }

    #[test]
    fn a_counter_update_adds_every_count_and_moves_the_mark_conditionally() {
        let u = update("ORD-SFO", 1_796_115_600, "9", "10");
        let w = counter_write(&u);
        w.expression().assert_consistent();
        assert_eq!(w.key[PK], s("ROUTE#ORD-SFO"));
        assert_eq!(w.key[SK], s("00000000001796115600#shardId-000000000003"));
        assert_eq!(w.condition, "attribute_not_exists(#pk) OR #mark < :first");
        for c in COUNTS {
            assert!(
                w.update.contains(&format!("#{c} :{c}")),
                "{c}: {}",
                w.update
            );
        }
        assert_eq!(w.values[":searches"], n(4));
        assert_eq!(w.values[":late"], n(3));
        // The marks compare as strings in the condition: "9" is below "10".
        let (AttributeValue::S(first), AttributeValue::S(last)) =
            (&w.values[":first"], &w.values[":last"])
        else {
            panic!("marks are strings")
        };
        assert!(first < last, "{first} {last}");
        assert_eq!(
            w.values[":expires_at"],
            n(1_796_115_600 + 30 + COUNTER_TTL_SECONDS)
        );
        // What it writes reads back as the counter and its mark.
        let item = applied(&w);
        assert_eq!(parse_counter(&item), Ok((u.key.clone(), u.counts)));
        assert_eq!(parse_mark(&item), Ok(u.last.clone()));
    }

    #[test]
    fn a_counter_of_an_event_40_days_old_expires_from_its_arrival() {
        // Issue 15: `expires_at` was the bucket plus 35 days, already past for an
        // event more than 35 days old, so TTL could delete the counter and a
        // redelivery count it twice.
        let arrived: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let bucket = (arrived - chrono::Duration::days(40)).timestamp();
        let u = CounterUpdate {
            arrived,
            ..update("ORD-SFO", bucket, "1", "1")
        };
        let w = counter_write(&u);
        assert_eq!(
            w.values[":expires_at"],
            n(arrived.timestamp() + COUNTER_TTL_SECONDS)
        );
        assert!(arrived.timestamp() + COUNTER_TTL_SECONDS > arrived.timestamp());
    }

    #[test]
    fn a_kinesis_sequence_number_mark_reads_back() {
        let seq = "49590338271490256608559692538361571095921575989136588898";
        let u = update("LHR-JFK", 60, seq, seq);
        let item = applied(&counter_write(&u));
        assert_eq!(parse_mark(&item).unwrap().sequence, seq);
    }

    #[test]
    fn broken_counter_items_name_the_attribute() {
        let mut item = applied(&counter_write(&update("ORD-SFO", 60, "1", "2")));
        item.insert(MARK.into(), s("12"));
        assert!(parse_mark(&item).unwrap_err().contains("mark"));
        item.insert("seats".into(), s("many"));
        assert!(parse_counter(&item).unwrap_err().contains("seats"));
        item.remove(BUCKET);
        assert!(parse_counter(&item).unwrap_err().contains("bucket"));
    }

    #[test]
    fn a_bucket_range_is_one_key_condition_on_the_sort_key() {
        let e = counters_query("ORD-SFO", 120, 300).unwrap();
        e.assert_consistent();
        let AttributeValue::S(lo) = &e.values[":lo"] else {
            panic!()
        };
        let AttributeValue::S(hi) = &e.values[":hi"] else {
            panic!()
        };
        let inside = |b: i64, shard: &str| {
            let sk = counter_sk(b, shard);
            lo.as_str() <= sk.as_str() && sk.as_str() <= hi.as_str()
        };
        for shard in ["", "shardId-000000000000", "~~~~", "shard#$"] {
            assert!(!inside(60, shard), "{shard}");
            assert!(inside(120, shard), "{shard}");
            assert!(inside(240, shard), "{shard}");
            assert!(!inside(300, shard), "{shard}");
        }
        assert_eq!(e.values[":pk"], s("ROUTE#ORD-SFO"));
        assert_eq!(counters_query("ORD-SFO", 300, 300), None);
        assert_eq!(counters_query("ORD-SFO", 300, 0), None);
        assert!(counters_query("ORD-SFO", i64::MIN, i64::MIN + 1).is_some());
    }

    #[test]
    fn routes_are_put_once_each_in_batches_of_25() {
        let routes: Vec<String> = (0..60)
            .map(|i| format!("R{:02}-XXX", i % 30))
            .chain(["AAA-BBB".to_string()])
            .collect();
        let batches = route_batches(&routes);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [BATCH_WRITE_MAX_ITEMS, 31 - BATCH_WRITE_MAX_ITEMS]
        );
        assert_eq!(batches[0][0], "AAA-BBB");
        assert!(route_batches(&[]).is_empty());
        let seen: DateTime<Utc> = "2026-12-01T09:36:00Z".parse().unwrap();
        let item = route_item("ORD-SFO", seen).unwrap();
        assert_eq!((&item[PK], &item[SK]), (&s(ROUTES_PK), &s("ORD-SFO")));
        let noted = parse_route(&item).unwrap();
        assert_eq!((noted.route.as_str(), noted.last_seen), ("ORD-SFO", seen));
    }

    #[test]
    fn a_watermark_moves_only_forward_and_reads_back_exactly() {
        let t: DateTime<Utc> = "2026-12-01T09:36:00.125Z".parse().unwrap();
        let u: DateTime<Utc> = "2026-12-01T09:40:01.000000007Z".parse().unwrap();
        let w = watermark_write("shardId-1", t, u).unwrap();
        w.expression().assert_consistent();
        assert_eq!(
            w.condition,
            "attribute_not_exists(#pk) OR #event_time < :t OR #event_time > :u"
        );
        let mut item = w.key.clone();
        item.insert(EVENT_TIME.into(), w.values[":t"].clone());
        item.insert(UPDATED_AT.into(), w.values[":u"].clone());
        item.insert(SHARD_ID.into(), w.values[":shard_id"].clone());
        assert_eq!(
            parse_watermark(&item),
            Ok(ShardWatermark {
                shard_id: "shardId-1".into(),
                progress: t,
                updated_at: u,
            })
        );
        let far = DateTime::<Utc>::from_timestamp(300_000_000_000, 0).unwrap();
        assert!(watermark_write("s", far, u).is_err());
        partition_query(WATERMARKS_PK).assert_consistent();
    }
}
