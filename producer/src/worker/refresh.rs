//! Loading the shard map: the first load, periodic refreshes, refreshes when a put
//! lands on an unexpected shard, and backing off when ListShards fails (a producer
//! without `kinesis:ListShards` sends plain records meanwhile). What a new map does
//! to the shard states is [`super::routing::remap`]; this is the I/O around it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Worker;
use super::routing::{ShardState, remap};
use crate::metrics::Counters;
use crate::rate::ShardRate;
use crate::shard_map::ShardMap;
use crate::transport::{ShardInfo, Transport, TransportError};

/// Shortest interval between two map reloads triggered by unexpected shards.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a ListShards may take (the first load and every refresh).
pub(super) const LIST_SHARDS_TIMEOUT: Duration = Duration::from_secs(5);

/// Shard map loading: the first load, periodic refreshes, and refreshes on demand.
pub(super) struct Refresh {
    /// Where a spawned `list_shards` reports; `running` while one runs.
    pub(super) report: mpsc::UnboundedSender<Result<Vec<ShardInfo>, TransportError>>,
    pub(super) running: bool,
    /// Consecutive failed map loads.
    pub(super) failures: u32,
    pub(super) next: Instant,
    pub(super) last: Option<Instant>,
}

impl<T: Transport> Worker<T> {
    /// Loading the map failed (or gave an unusable map): try again later, waiting
    /// twice as long each time up to the regular refresh interval, so that a
    /// producer without `kinesis:ListShards` permission does not poll (it sends plain
    /// records meanwhile).
    pub(super) fn refresh_failed(&mut self) {
        self.refresh.failures = self.refresh.failures.saturating_add(1);
        let delay = self
            .config
            .backoff_max
            .saturating_mul(1 << self.refresh.failures.saturating_sub(1).min(16))
            .min(self.config.shard_map_refresh.max(self.config.backoff_max));
        self.refresh.next = Instant::now() + delay;
    }

    pub(super) fn request_refresh(&mut self) {
        let now = Instant::now();
        let earliest = self.refresh.last.map_or(now, |t| t + MIN_REFRESH_INTERVAL);
        self.refresh.next = self.refresh.next.min(earliest.max(now));
    }

    pub(super) fn maybe_refresh(&mut self, now: Instant) {
        if self.refresh.running || now < self.refresh.next || self.closing.is_some() {
            return;
        }
        self.refresh.running = true;
        self.refresh.last = Some(now);
        self.refresh.next = now + self.config.shard_map_refresh;
        let transport = self.transport.clone();
        let report = self.refresh.report.clone();
        // Bounded, like the first load: one hung call must not stop map refreshes
        // for good (`running` stays set until it reports).
        tokio::spawn(async move {
            let listed =
                match tokio::time::timeout(LIST_SHARDS_TIMEOUT, transport.list_shards()).await {
                    Ok(result) => result,
                    Err(_) => Err(TransportError::Transient(format!(
                        "listing shards timed out after {LIST_SHARDS_TIMEOUT:?}"
                    ))),
                };
            let _ = report.send(listed);
        });
    }

    pub(super) fn apply_map(&mut self, shards: Vec<ShardInfo>) {
        let map = match ShardMap::new(shards) {
            Ok(map) => map,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unusable shard map");
                self.refresh_failed();
                return;
            }
        };
        Counters::add(&self.counters.refreshes, 1);
        self.refresh.failures = 0;
        self.refresh.last = Some(Instant::now());
        self.refresh.next = Instant::now() + self.config.shard_map_refresh;
        if self.map.as_ref() == Some(&map) {
            return;
        }
        let old_routes = std::mem::take(&mut self.routes);
        let (aggregate, max_bytes, limits) = (
            self.config.aggregation,
            self.config.aggregate_max_bytes,
            self.limits,
        );
        let plan = remap(&mut self.states, &old_routes, &map, |shard| {
            ShardState::new(
                Some(Arc::from(shard.shard_id.as_str())),
                shard.starting_hash_key,
                shard.ending_hash_key,
                aggregate,
                max_bytes,
                ShardRate::new(limits, Instant::now()),
            )
        });
        tracing::info!(
            shards = map.shards().len(),
            retired = plan.retired.len(),
            "shard map loaded"
        );
        self.routes = plan.routes;
        self.budget.publish(&map);
        self.map = Some(map);
    }
}
