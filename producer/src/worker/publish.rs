//! Publishing what [`crate::Producer::metrics`] reads: per-shard figures and the
//! oldest unresolved record, about once a second, and the periodic `tracing`
//! event and EMF lines.

use tokio::time::Instant;

use super::Worker;
use super::routing::Batch;
use crate::metrics::{ShardMetrics, UNMAPPED_SHARD};
use crate::transport::Transport;

/// How often per-shard figures are published for [`crate::Producer::metrics`].
pub(super) const PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl<T: Transport> Worker<T> {
    pub(super) fn snapshot(&self) -> crate::ProducerMetrics {
        self.counters
            .snapshot(self.budget.held() as u64, self.budget.total_bytes() as u64)
    }

    /// Publishes per-shard figures and the oldest unresolved record for
    /// [`crate::Producer::metrics`], about once a second.
    pub(super) fn maybe_publish(&mut self, now: Instant) {
        if now >= self.published_at + PUBLISH_INTERVAL {
            self.publish(now);
        }
    }

    pub(super) fn publish(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.published_at)
            .as_secs_f64()
            .max(1e-3);
        self.published_at = now;
        let mut oldest = None;
        let mut consider = |t: Option<chrono::DateTime<chrono::Utc>>| {
            if let Some(t) = t {
                oldest = Some(oldest.map_or(t, |o: chrono::DateTime<chrono::Utc>| o.min(t)));
            }
        };
        for flight in self.in_flight.values() {
            for (_, b) in &flight.batches {
                consider(b.oldest());
            }
        }
        for s in &self.states {
            consider(s.queue.front().and_then(Batch::oldest));
            consider(s.aggregator.first_member().map(|m| m.accepted_at));
        }
        for w in self.dead.waiting.values() {
            consider(w.members.iter().map(|m| m.accepted_at).min());
        }
        let mut shards = Vec::new();
        for (k, state) in self.states.iter_mut().enumerate() {
            let previous = std::mem::replace(&mut state.published, state.totals);
            let live = self.routes.contains(&k) || state.has_work();
            if !live {
                continue;
            }
            let (mut buffered_bytes, mut buffered_records) = (0u64, 0u64);
            let mut count = |b: &Batch| {
                buffered_records += b.members.len() as u64;
                buffered_bytes += b.charged() as u64;
            };
            state.queue.iter().for_each(&mut count);
            for flight in self.in_flight.values() {
                for (i, b) in &flight.batches {
                    if *i == k {
                        count(b);
                    }
                }
            }
            let open = state.aggregator.members();
            buffered_records += open.len() as u64;
            buffered_bytes += open.iter().map(|m| m.charged() as u64).sum::<u64>();
            let allowed = state.rate.allowed();
            let rate = |now: u64, before: u64| (now - before) as f64 / elapsed;
            shards.push(ShardMetrics {
                shard_id: state
                    .shard_id
                    .as_deref()
                    .unwrap_or(UNMAPPED_SHARD)
                    .to_string(),
                user_records_per_sec: rate(
                    state.totals.user_records_written,
                    previous.user_records_written,
                ),
                kinesis_records_per_sec: rate(
                    state.totals.kinesis_records_written,
                    previous.kinesis_records_written,
                ),
                bytes_per_sec: rate(state.totals.bytes_written, previous.bytes_written),
                user_records_written: state.totals.user_records_written,
                bytes_written: state.totals.bytes_written,
                throttles: state.totals.throttles,
                rate_share: state.rate.share(),
                allowed_records_per_sec: allowed.records_per_sec,
                allowed_bytes_per_sec: allowed.bytes_per_sec,
                buffered_bytes,
                buffered_records,
            });
        }
        let mut published = self
            .counters
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        published.shards = shards;
        published.oldest_accepted = oldest;
    }

    pub(super) fn maybe_emit_metrics(&mut self, now: Instant) {
        let (Some(at), Some(interval)) = (self.next_metrics, self.config.metrics_interval) else {
            return;
        };
        if now >= at {
            self.publish(now);
            let metrics = self.snapshot();
            metrics.trace();
            self.emit_emf(&metrics);
            self.next_metrics = Some(now + interval);
        }
    }

    /// Prints the snapshot's EMF documents to stdout, when a namespace is set.
    pub(super) fn emit_emf(&mut self, metrics: &crate::ProducerMetrics) {
        if let Some(emf) = &mut self.emf {
            for line in emf.documents(metrics, chrono::Utc::now()) {
                println!("{line}");
            }
        }
    }
}
