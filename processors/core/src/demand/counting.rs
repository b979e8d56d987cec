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
//! # Event time and arrival
//!
//! An event's `occurred_at` is the client's claim (a phone's clock may be minutes or
//! years off); its record's arrival time (`approximateArrivalTimestamp`, stamped by
//! the stream) is ours. Each is used for what it can be trusted with
//! ([`flag_timing`]):
//!
//! - **Buckets** are of event time: an event is counted in the bucket its
//!   `occurred_at` falls in, whatever its date, and nothing is dropped.
//! - **Flags.** An event that arrived more than the allowance after its event time is
//!   *late* ([`Timing::Late`]): its bucket may have been judged already. One dated
//!   more than the skew after its arrival is *early* ([`Timing::Early`]): a client
//!   clock ahead, counted in a bucket not judged yet. Both are counted in the
//!   bucket's `late` count ("out of time"), so a reader knows the bucket holds
//!   events whose time is in doubt.
//! - **Progress.** How far a shard's consumer has got is the latest *arrival* time it
//!   has counted (capped at the consumer's clock plus the skew, so no record stamped
//!   by a clock ahead of ours moves it further), never an event time: a lagging
//!   consumer holds the evaluator back however its events are dated, and one event
//!   from 2099 moves nothing. The evaluator judges buckets that closed before the
//!   slowest active shard's progress minus the allowance, and before the wall clock
//!   minus the allowance ([`super::surge::settled_horizon`]), so every event not
//!   flagged late is counted before its bucket is judged: **one setting**, the
//!   allowance ([`DEFAULT_ALLOWANCE`]), is both the late flag's bound and the
//!   evaluator's delay.
//! - **Expiry** counts from arrival ([`CounterUpdate::expires_at`]): a counter lives
//!   [`COUNTER_RETENTION_SECONDS`] past the later of its bucket and the last arrival
//!   it counted, so an event dated 40 days back is not forgotten (and counted again
//!   on a redelivery) the moment it is written.

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
    /// Of all the above, events out of time: late (arrived more than the allowance
    /// after their event time) or early (dated more than the skew after their
    /// arrival). See the module docs.
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
        if event.timing != Timing::OnTime {
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
    /// Event time (the client's claim).
    pub occurred_at: DateTime<Utc>,
    /// When its record arrived in the stream (ours).
    pub arrived_at: DateTime<Utc>,
    /// Where it sits in its shard.
    pub position: Position,
    /// What it adds.
    pub kind: DemandKind,
    /// Set by [`flag_timing`].
    pub timing: Timing,
}

/// How an event's time compares with its arrival (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Timing {
    /// Within the allowance before its arrival and the skew after it.
    #[default]
    OnTime,
    /// Arrived more than the allowance after its event time.
    Late,
    /// Dated more than the skew after its arrival (a client clock ahead).
    Early,
}

/// The one setting shared by the late flag and the evaluator: how long after its
/// event time an event may arrive and still be counted before its bucket is judged,
/// and so how far behind the wall clock (and the slowest shard's progress) the
/// evaluator judges. Two minutes.
pub const DEFAULT_ALLOWANCE: Duration = Duration::minutes(2);

/// How far after its arrival an event may be dated before it is flagged early, and
/// how far ahead of the consumer's clock an arrival time may be before it is capped:
/// clocks of phones and of the stream are not exact. Two minutes.
pub const DEFAULT_SKEW: Duration = Duration::minutes(2);

/// How long a counter is kept past the later of its bucket and the last arrival it
/// counted: 35 days.
///
/// The evaluator reads a route's counters only from its state's next bucket minus
/// one window (the baseline lives in its state, not in old counters), so a counter is
/// needed for minutes; 35 days leaves a month of demand for operators to look at and
/// outlasts a stream's retention (24 hours by default, 7 days extended), so a replay
/// meets the counters' marks and counts nothing twice. Counting from arrival, not
/// from the bucket, keeps that true for events dated long ago.
pub const COUNTER_RETENTION_SECONDS: i64 = 35 * 24 * 3600;

/// The start of the bucket of `t`, seconds since the epoch, for buckets of
/// `bucket_seconds` (≥ 1).
pub fn bucket_of(t: DateTime<Utc>, bucket_seconds: i64) -> i64 {
    t.timestamp().div_euclid(bucket_seconds.max(1)) * bucket_seconds.max(1)
}

/// Flags the events of one shard's batch as late, early or on time against their own
/// arrival, and finds how far the shard's consumer has got: the latest arrival, each
/// capped at `now + skew` (`now`: the consumer's clock).
pub fn flag_timing(
    events: &mut [DemandEvent],
    allowance: Duration,
    skew: Duration,
    now: DateTime<Utc>,
) -> TimingScan {
    let mut scan = TimingScan {
        progress: None,
        max_behind: Duration::zero(),
        late: 0,
        early: 0,
    };
    let ceiling = now + skew;
    for event in events {
        let behind = event.arrived_at - event.occurred_at;
        scan.max_behind = scan.max_behind.max(behind);
        event.timing = if behind > allowance {
            scan.late += 1;
            Timing::Late
        } else if -behind > skew {
            scan.early += 1;
            Timing::Early
        } else {
            Timing::OnTime
        };
        let arrived = event.arrived_at.min(ceiling);
        if scan.progress.is_none_or(|p| arrived > p) {
            scan.progress = Some(arrived);
        }
    }
    scan
}

/// What [`flag_timing`] found in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingScan {
    /// The latest arrival counted, capped (`None` for no events): the shard's
    /// progress after the batch.
    pub progress: Option<DateTime<Utc>>,
    /// How long after its event time the most delayed event arrived (zero when none
    /// arrived after it): what the allowance must cover.
    pub max_behind: Duration,
    /// Events flagged [`Timing::Late`].
    pub late: u64,
    /// Events flagged [`Timing::Early`].
    pub early: u64,
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
    /// The latest arrival of the events it counts: the counter's expiry counts from
    /// it.
    pub arrived: DateTime<Utc>,
}

impl CounterUpdate {
    /// When the counter may be deleted after this change, seconds since the epoch:
    /// [`COUNTER_RETENTION_SECONDS`] past the later of its bucket and
    /// [`arrived`](Self::arrived), so never already past for an event dated long ago.
    pub fn expires_at(&self) -> i64 {
        self.key
            .bucket
            .max(self.arrived.timestamp())
            .saturating_add(COUNTER_RETENTION_SECONDS)
    }
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
        let mut arrived: Option<DateTime<Utc>> = None;
        for &i in &self.events {
            let e = &events[i];
            if mark.is_some_and(|m| e.position <= *m) {
                continue;
            }
            counts.count(e);
            if first.is_none() {
                first = Some(e.position.clone());
            }
            arrived = arrived.max(Some(e.arrived_at));
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
            arrived: arrived?,
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
            arrived_at: at(t),
            position: Position::new(seq, Some(sub)),
            kind: DemandKind::Search { passengers: 2 },
            timing: Timing::OnTime,
        }
    }

    /// A search dated `t` whose record arrived at `arrived`.
    fn arriving(t: &str, arrived: &str, seq: &str) -> DemandEvent {
        DemandEvent {
            arrived_at: at(arrived),
            ..search("LHR-JFK", t, seq, 0)
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
    fn events_late_by_more_than_the_allowance_are_flagged_against_their_arrival() {
        // Issue 15: lateness was measured against the shard's watermark with a
        // five-minute allowance while the evaluator judged two minutes behind, so an
        // event arriving 2 to 5 minutes after its time landed in a judged bucket
        // unflagged. Now it is measured against its own arrival, with the allowance
        // the evaluator uses.
        let mut events = vec![
            arriving("2026-12-01T09:10:00Z", "2026-12-01T09:10:01Z", "1"),
            arriving("2026-12-01T09:07:00Z", "2026-12-01T09:10:02Z", "2"),
            arriving("2026-12-01T09:08:00Z", "2026-12-01T09:10:00Z", "3"),
            arriving("2026-12-01T09:11:00Z", "2026-12-01T09:10:03Z", "4"),
            arriving("2026-12-01T09:13:00Z", "2026-12-01T09:10:03Z", "5"),
        ];
        let now = at("2026-12-01T09:10:05Z");
        let scan = flag_timing(&mut events, DEFAULT_ALLOWANCE, DEFAULT_SKEW, now);
        let timing: Vec<Timing> = events.iter().map(|e| e.timing).collect();
        assert_eq!(
            timing,
            [
                Timing::OnTime,
                Timing::Late,
                Timing::OnTime,
                Timing::OnTime,
                Timing::Early
            ]
        );
        assert_eq!((scan.late, scan.early), (1, 1));
        assert_eq!(scan.max_behind, Duration::seconds(182));
        assert_eq!(scan.progress, Some(at("2026-12-01T09:10:03Z")));
        let tallies = tally("s", &events, 60);
        let counts: Vec<Counts> = tallies
            .iter()
            .filter_map(|t| t.update_above(&events, None))
            .map(|u| u.counts)
            .collect();
        let total = counts.iter().fold(Counts::default(), |mut a, c| {
            a.add(c);
            a
        });
        assert_eq!(total.searches, 5, "flagged events are counted too");
        assert_eq!(total.late, 2, "late and early are both out of time");
    }

    #[test]
    fn an_event_from_2099_or_2000_is_counted_in_its_bucket_flagged_and_moves_no_progress() {
        // Issue 15: one event dated ahead moved the shard's watermark with it.
        let arrived = "2026-12-01T09:10:00Z";
        let mut events = vec![
            arriving("2099-01-01T00:00:00Z", arrived, "1"),
            arriving("2000-01-01T00:00:00Z", arrived, "2"),
            arriving("2026-12-01T09:09:59Z", arrived, "3"),
        ];
        let now = at("2026-12-01T09:10:01Z");
        let scan = flag_timing(&mut events, DEFAULT_ALLOWANCE, DEFAULT_SKEW, now);
        assert_eq!(events[0].timing, Timing::Early);
        assert_eq!(events[1].timing, Timing::Late);
        assert_eq!(events[2].timing, Timing::OnTime);
        assert_eq!(scan.progress, Some(at(arrived)));
        assert!(scan.progress.unwrap() <= at(arrived) + DEFAULT_SKEW);
        let tallies = tally("s", &events, 60);
        let buckets: Vec<i64> = tallies.iter().map(|t| t.key.bucket).collect();
        assert_eq!(
            buckets,
            [
                at("2000-01-01T00:00:00Z").timestamp(),
                at("2026-12-01T09:09:00Z").timestamp(),
                at("2099-01-01T00:00:00Z").timestamp(),
            ]
        );
        for t in &tallies {
            let u = t.update_above(&events, None).unwrap();
            assert_eq!(u.counts.searches, 1);
            let flagged = u64::from(t.key.bucket != at("2026-12-01T09:09:00Z").timestamp());
            assert_eq!(u.counts.late, flagged, "{:?}", t.key);
        }
    }

    #[test]
    fn an_arrival_stamped_ahead_of_the_consumers_clock_is_capped_at_its_skew() {
        let mut events = vec![arriving(
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00Z",
            "1",
        )];
        let now = at("2026-12-01T09:00:00Z");
        let scan = flag_timing(&mut events, DEFAULT_ALLOWANCE, DEFAULT_SKEW, now);
        assert_eq!(scan.progress, Some(now + DEFAULT_SKEW));
        assert_eq!(
            flag_timing(&mut [], DEFAULT_ALLOWANCE, DEFAULT_SKEW, now).progress,
            None
        );
    }

    #[test]
    fn a_counter_of_an_event_40_days_old_expires_from_its_arrival() {
        // Issue 15: a counter's expiry counted from its bucket, so the counter of an
        // event more than 35 days old expired as it was written, and TTL deletion
        // followed by a redelivery counted it twice.
        let arrived = "2026-12-01T09:10:00Z";
        let events = vec![arriving("2026-10-22T09:10:00Z", arrived, "1")];
        let u = tally("s", &events, 60)[0]
            .update_above(&events, None)
            .unwrap();
        assert_eq!(u.arrived, at(arrived));
        assert_eq!(
            u.expires_at(),
            at(arrived).timestamp() + COUNTER_RETENTION_SECONDS
        );
        assert!(u.expires_at() > at(arrived).timestamp());
        // A bucket after its arrival (a clock ahead) keeps it from its bucket.
        let ahead = vec![arriving("2027-01-01T00:00:00Z", arrived, "1")];
        let u = tally("s", &ahead, 60)[0]
            .update_above(&ahead, None)
            .unwrap();
        assert_eq!(
            u.expires_at(),
            at("2027-01-01T00:00:00Z").timestamp() + COUNTER_RETENTION_SECONDS
        );
    }
}
