//! Counting demand per route and bucket, exactly once under redelivery.
//!
//! # The scheme
//!
//! A counter is kept per route, bucket of event time **and shard**
//! ([`CounterKey`]), with the highest record position it has counted
//! ([`Position`]: sequence number, then sub-sequence number inside a KPL aggregate).
//! A batch of one shard is grouped by counter ([`tally`]); each group becomes one
//! [`CounterUpdate`]: the sums of its events and the positions of its first and last
//! event, written as one conditional change: *add these counts and set the mark to
//! `last`, if the stored mark is below `first`* (an absent counter is below
//! everything).
//!
//! Why that is exact: a shard's records reach the consumer in order, and a batch
//! starts only where everything before it is done (Lambda retries from the first
//! failed record; the demand mapping runs with `ParallelizationFactor` 1). So the
//! events a counter has counted are always a *prefix* of its events in shard order,
//! the ones at or below its mark. When the condition fails, the stored mark tells
//! which of the batch's events are counted already; [`Tally::update_above`] builds
//! the change for the rest, again conditional. A redelivered batch, a retry from a
//! checkpoint, a replay or a second consumer racing on the shard all end in a failed
//! condition and a smaller (often empty) change, never in a second count.
//!
//! Writes per batch are one per counter touched (routes × buckets in the batch),
//! not one per event. Summing over shards happens at read time: a route's searches
//! come through every shard.
//!
//! # Late events
//!
//! An event whose `occurred_at` is older than its shard's watermark (the latest
//! event time the shard had shown) by more than the allowance is *late*
//! ([`flag_late`]): it is counted in its own bucket like any other, and also in the
//! bucket's `late` count, so that a reader knows the bucket changed after the
//! evaluator may have judged it. Nothing is dropped.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use crate::records::Position;

/// One counter: a route, a bucket of event time, a shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterKey {
    /// `ORIGIN-DESTINATION`.
    pub route: String,
    /// Start of the bucket, seconds since the Unix epoch (a multiple of the bucket
    /// length).
    pub bucket: i64,
    /// The shard whose events it counts.
    pub shard_id: String,
}

/// What a counter counts. Also used for sums over shards and over buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Search events.
    pub searches: u64,
    /// Passengers those searches asked for.
    pub passengers: u64,
    /// Booking events (a producer's re-emitted booking counts again: this is demand
    /// seen, not seats sold; the inventory counts seats exactly).
    pub bookings: u64,
    /// Seats those bookings asked for.
    pub seats: u64,
    /// Cancellation events.
    pub cancellations: u64,
    /// Of all the above, events that arrived later than the allowance
    /// (see the module docs).
    pub late: u64,
}

impl Counts {
    /// The demand the surge rule judges: searches plus bookings.
    pub fn demand(&self) -> u64 {
        self.searches + self.bookings
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        // Saturating: no panic on the record path, and 2^64 events is out of reach.
        self.searches = self.searches.saturating_add(other.searches);
        self.passengers = self.passengers.saturating_add(other.passengers);
        self.bookings = self.bookings.saturating_add(other.bookings);
        self.seats = self.seats.saturating_add(other.seats);
        self.cancellations = self.cancellations.saturating_add(other.cancellations);
        self.late = self.late.saturating_add(other.late);
    }

    /// Nothing counted.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    fn count(&mut self, event: &DemandEvent) {
        match event.kind {
            DemandKind::Search { passengers } => {
                self.searches += 1;
                self.passengers += u64::from(passengers);
            }
            DemandKind::Booking { seats } => {
                self.bookings += 1;
                self.seats += u64::from(seats);
            }
            DemandKind::Cancellation => self.cancellations += 1,
        }
        if event.late {
            self.late += 1;
        }
    }
}

/// What an event adds to demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandKind {
    /// A search for this many passengers.
    Search {
        /// Passengers searched for.
        passengers: u8,
    },
    /// A booking of this many seats.
    Booking {
        /// Seats booked.
        seats: u8,
    },
    /// A cancellation.
    Cancellation,
}

/// One event as the counter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandEvent {
    /// `ORIGIN-DESTINATION`.
    pub route: String,
    /// Event time.
    pub occurred_at: DateTime<Utc>,
    /// Where it sits in its shard.
    pub position: Position,
    /// What it adds.
    pub kind: DemandKind,
    /// Set by [`flag_late`].
    pub late: bool,
}

/// The start of the bucket of `t`, seconds since the epoch, for buckets of
/// `bucket_seconds` (≥ 1).
pub fn bucket_of(t: DateTime<Utc>, bucket_seconds: i64) -> i64 {
    t.timestamp().div_euclid(bucket_seconds.max(1)) * bucket_seconds.max(1)
}

/// Flags the events of one shard's batch (in shard order) that are late: older than
/// the shard's watermark by more than `allowance`, where the watermark is the latest
/// event time seen before each event (`watermark` from the store for the batch's
/// first event).
pub fn flag_late(
    events: &mut [DemandEvent],
    mut watermark: Option<DateTime<Utc>>,
    allowance: Duration,
) -> LateScan {
    let mut max_behind = Duration::zero();
    for event in events {
        if let Some(w) = watermark {
            max_behind = max_behind.max(w - event.occurred_at);
        }
        event.late = watermark.is_some_and(|w| event.occurred_at < w - allowance);
        if watermark.is_none_or(|w| event.occurred_at > w) {
            watermark = Some(event.occurred_at);
        }
    }
    LateScan {
        watermark,
        max_behind,
    }
}

/// What [`flag_late`] found in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateScan {
    /// The shard's watermark after the batch.
    pub watermark: Option<DateTime<Utc>>,
    /// How far behind the watermark the most delayed event was (zero when none was):
    /// what the late allowance must cover.
    pub max_behind: Duration,
}

/// The events of one batch that go to one counter, in shard order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The counter.
    pub key: CounterKey,
    /// Indexes into the batch's events, ascending.
    pub events: Vec<usize>,
}

/// A conditional change of one counter: add `counts` and set the mark to `last`, if
/// the stored mark is below `first` (or there is no counter yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterUpdate {
    /// The counter.
    pub key: CounterKey,
    /// What to add.
    pub counts: Counts,
    /// Position of the first event counted by this change.
    pub first: Position,
    /// Position of the last one: the counter's new mark.
    pub last: Position,
}

/// Groups the events of one shard's batch by counter (ordered by key).
pub fn tally(shard_id: &str, events: &[DemandEvent], bucket_seconds: i64) -> Vec<Tally> {
    let mut groups: BTreeMap<(&str, i64), Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        groups
            .entry((e.route.as_str(), bucket_of(e.occurred_at, bucket_seconds)))
            .or_default()
            .push(i);
    }
    groups
        .into_iter()
        .map(|((route, bucket), events)| Tally {
            key: CounterKey {
                route: route.to_string(),
                bucket,
                shard_id: shard_id.to_string(),
            },
            events,
        })
        .collect()
}

impl Tally {
    /// The change that counts this tally's events positioned after `mark` (all of
    /// them when `None`); `None` when every one is counted already.
    pub fn update_above(
        &self,
        events: &[DemandEvent],
        mark: Option<&Position>,
    ) -> Option<CounterUpdate> {
        let mut counts = Counts::default();
        let mut first = None;
        let mut last = None;
        for &i in &self.events {
            let e = &events[i];
            if mark.is_some_and(|m| e.position <= *m) {
                continue;
            }
            counts.count(e);
            if first.is_none() {
                first = Some(e.position.clone());
            }
            // Events are in shard order, but a retried aggregate may repeat positions
            // only if the stream misbehaves; keep the largest as the mark regardless.
            if last.as_ref().is_none_or(|l| e.position > *l) {
                last = Some(e.position.clone());
            }
        }
        Some(CounterUpdate {
            key: self.key.clone(),
            counts,
            first: first?,
            last: last?,
        })
    }
}

/// Sums per-shard counters into one series per bucket.
pub fn sum_by_bucket<'a>(
    counters: impl IntoIterator<Item = (i64, &'a Counts)>,
) -> BTreeMap<i64, Counts> {
    let mut out: BTreeMap<i64, Counts> = BTreeMap::new();
    for (bucket, counts) in counters {
        out.entry(bucket).or_default().add(counts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn search(route: &str, t: &str, seq: &str, sub: u32) -> DemandEvent {
        DemandEvent {
            route: route.into(),
            occurred_at: at(t),
            position: Position::new(seq, Some(sub)),
            kind: DemandKind::Search { passengers: 2 },
            late: false,
        }
    }

    #[test]
    fn positions_order_as_numbers_and_their_keys_order_as_strings() {
        let ps = [
            Position::new("9", None),
            Position::new("10", Some(0)),
            Position::new("10", Some(3)),
            Position::new(
                "0049590338271490256608559692538361571095921575989136588898",
                Some(1),
            ),
        ];
        for w in ps.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
            assert!(w[0].to_key() < w[1].to_key(), "{w:?}");
        }
        for p in &ps {
            assert_eq!(Position::from_key(&p.to_key()).as_ref(), Some(p));
        }
        assert_eq!(Position::new("000", None).sequence, "0");
        assert_eq!(Position::from_key("12"), None);
        assert_eq!(Position::from_key("1x.0"), None);
    }

    #[test]
    fn buckets_are_floors_of_event_time() {
        assert_eq!(
            bucket_of(at("2026-12-01T09:36:59.999Z"), 60),
            at("2026-12-01T09:36:00Z").timestamp()
        );
        assert_eq!(
            bucket_of(at("2026-12-01T09:36:00Z"), 300),
            at("2026-12-01T09:35:00Z").timestamp()
        );
        assert_eq!(bucket_of(at("1969-12-31T23:59:30Z"), 60), -60);
    }

    #[test]
    fn a_batch_becomes_one_update_per_route_and_bucket() {
        let events = vec![
            search("LHR-JFK", "2026-12-01T09:00:01Z", "1", 0),
            search("LHR-JFK", "2026-12-01T09:00:02Z", "1", 1),
            search("ORD-SFO", "2026-12-01T09:00:03Z", "2", 0),
            search("LHR-JFK", "2026-12-01T09:01:00Z", "3", 0),
            DemandEvent {
                kind: DemandKind::Booking { seats: 3 },
                ..search("LHR-JFK", "2026-12-01T09:00:30Z", "4", 0)
            },
        ];
        let tallies = tally("shard-1", &events, 60);
        assert_eq!(tallies.len(), 3);
        let first = tallies[0].update_above(&events, None).unwrap();
        assert_eq!(first.key.route, "LHR-JFK");
        assert_eq!(first.counts.searches, 2);
        assert_eq!(first.counts.passengers, 4);
        assert_eq!(first.counts.bookings, 1);
        assert_eq!(first.counts.seats, 3);
        assert_eq!(first.first, Position::new("1", Some(0)));
        assert_eq!(first.last, Position::new("4", Some(0)));
        // What a stored mark already covers is left out.
        let rest = tallies[0]
            .update_above(&events, Some(&Position::new("1", Some(0))))
            .unwrap();
        assert_eq!((rest.counts.searches, rest.counts.bookings), (1, 1));
        assert_eq!(rest.first, Position::new("1", Some(1)));
        assert_eq!(
            tallies[0].update_above(&events, Some(&Position::new("4", Some(0)))),
            None
        );
    }

    #[test]
    fn late_events_are_flagged_against_the_shards_watermark_and_still_counted() {
        let mut events = vec![
            search("LHR-JFK", "2026-12-01T09:10:00Z", "1", 0),
            search("LHR-JFK", "2026-12-01T09:04:00Z", "2", 0),
            search("LHR-JFK", "2026-12-01T09:06:00Z", "3", 0),
            search("LHR-JFK", "2026-12-01T09:11:00Z", "4", 0),
        ];
        let scan = flag_late(&mut events, None, Duration::minutes(5));
        let watermark = scan.watermark;
        assert_eq!(scan.max_behind, Duration::minutes(6));
        let late: Vec<bool> = events.iter().map(|e| e.late).collect();
        assert_eq!(late, [false, true, false, false]);
        assert_eq!(watermark, Some(at("2026-12-01T09:11:00Z")));
        // The stored watermark counts for the batch's first events.
        let mut next = vec![search("LHR-JFK", "2026-12-01T09:05:59Z", "5", 0)];
        flag_late(&mut next, watermark, Duration::minutes(5));
        assert!(next[0].late);
        let tallies = tally("s", &events, 60);
        let total: u64 = tallies
            .iter()
            .filter_map(|t| t.update_above(&events, None))
            .map(|u| u.counts.searches)
            .sum();
        assert_eq!(total, 4, "late events are counted too");
    }
}
