//! In-memory adapters of the hot-route ports, with the real stores' conditions and
//! injectable failures.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use flyhigh_schemas::Alert;

use crate::demand::{CabinAlertState, CounterKey, CounterUpdate, Counts, Position, RouteState};
use crate::inventory::CabinKey;
use crate::ports::{
    Added, AlertFilter, AlertPublisher, AlertStore, DemandStore, NotedRoute, ShardWatermark,
    StoreError, StoredAlert,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes one from a failure budget; `true` when the call must fail.
fn spend(budget: &mut u32) -> bool {
    if *budget > 0 {
        *budget -= 1;
        true
    } else {
        false
    }
}

#[derive(Debug, Default)]
struct DemandState {
    counters: BTreeMap<CounterKey, (Counts, Position)>,
    /// Counter → when it may be deleted (epoch seconds), as DynamoDB's TTL holds it.
    expiries: BTreeMap<CounterKey, i64>,
    /// Route → when it was last noted.
    routes: BTreeMap<String, DateTime<Utc>>,
    watermarks: BTreeMap<String, ShardWatermark>,
    writes: u64,
    fail_adds: u32,
}

/// An in-memory [`DemandStore`].
#[derive(Debug, Default)]
pub struct MemoryDemandStore {
    state: Mutex<DemandState>,
}

impl MemoryDemandStore {
    /// An empty store.
    pub fn new() -> MemoryDemandStore {
        MemoryDemandStore::default()
    }

    /// The next `n` counter changes fail with a transient error, changing nothing.
    pub fn fail_next_adds(&self, n: u32) {
        lock(&self.state).fail_adds = n;
    }

    /// Counter changes attempted so far (applied or stale).
    pub fn writes(&self) -> u64 {
        lock(&self.state).writes
    }

    /// Every counter with its mark.
    pub fn all(&self) -> Vec<(CounterKey, Counts, Position)> {
        lock(&self.state)
            .counters
            .iter()
            .map(|(k, (c, p))| (k.clone(), *c, p.clone()))
            .collect()
    }

    /// When a counter may be deleted (epoch seconds; the latest applied change's
    /// [`CounterUpdate::expires_at`]), `None` when there is no such counter.
    pub fn expires_at(&self, key: &CounterKey) -> Option<i64> {
        lock(&self.state).expiries.get(key).copied()
    }

    /// Deletes the counters whose expiry is before `now` (epoch seconds), as a TTL
    /// sweep does; returns how many.
    pub fn purge_expired(&self, now: i64) -> usize {
        let mut s = lock(&self.state);
        let expired: Vec<CounterKey> = s
            .expiries
            .iter()
            .filter(|(_, e)| **e < now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            s.expiries.remove(k);
            s.counters.remove(k);
        }
        expired.len()
    }

    /// Counts per route and bucket, summed over shards.
    pub fn totals(&self) -> BTreeMap<(String, i64), Counts> {
        let mut out: BTreeMap<(String, i64), Counts> = BTreeMap::new();
        for (k, (c, _)) in &lock(&self.state).counters {
            out.entry((k.route.clone(), k.bucket)).or_default().add(c);
        }
        out
    }
}

impl DemandStore for MemoryDemandStore {
    async fn add(&self, update: &CounterUpdate) -> Result<Added, StoreError> {
        let mut s = lock(&self.state);
        if spend(&mut s.fail_adds) {
            return Err(StoreError::Transient("injected counter failure".into()));
        }
        s.writes += 1;
        match s.counters.get_mut(&update.key) {
            Some((_, mark)) if *mark >= update.first => {
                return Ok(Added::Stale { mark: mark.clone() });
            }
            Some((counts, mark)) => {
                counts.add(&update.counts);
                *mark = update.last.clone();
            }
            None => {
                s.counters
                    .insert(update.key.clone(), (update.counts, update.last.clone()));
            }
        }
        s.expiries.insert(update.key.clone(), update.expires_at());
        Ok(Added::Applied)
    }

    async fn add_all(&self, updates: &[CounterUpdate]) -> Vec<Result<Added, StoreError>> {
        let mut results = Vec::with_capacity(updates.len());
        for update in updates {
            results.push(self.add(update).await);
        }
        results
    }

    async fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(CounterKey, Counts)>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let key = |bucket| CounterKey {
            route: route.to_string(),
            bucket,
            shard_id: String::new(),
        };
        Ok(lock(&self.state)
            .counters
            .range(key(from)..key(to))
            .map(|(k, (c, _))| (k.clone(), *c))
            .collect())
    }

    async fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        for route in routes {
            let last = s.routes.entry(route.clone()).or_insert(seen_at);
            *last = (*last).max(seen_at);
        }
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.state).routes.keys().cloned().collect())
    }

    async fn noted_routes(&self) -> Result<Vec<NotedRoute>, StoreError> {
        Ok(lock(&self.state)
            .routes
            .iter()
            .map(|(route, &last_seen)| NotedRoute {
                route: route.clone(),
                last_seen,
            })
            .collect())
    }

    async fn forget_route(&self, route: &NotedRoute) -> Result<bool, StoreError> {
        let mut s = lock(&self.state);
        if s.routes.get(&route.route) == Some(&route.last_seen) {
            s.routes.remove(&route.route);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn watermark(&self, shard_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(lock(&self.state)
            .watermarks
            .get(shard_id)
            .map(|w| w.progress))
    }

    async fn advance_watermark(
        &self,
        shard_id: &str,
        progress: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        let w = s
            .watermarks
            .entry(shard_id.to_string())
            .or_insert_with(|| ShardWatermark {
                shard_id: shard_id.to_string(),
                progress,
                updated_at,
            });
        // Later, or replacing what no arrival can have stamped (see the port).
        if progress > w.progress || w.progress > updated_at {
            w.progress = progress;
            w.updated_at = updated_at;
        }
        Ok(())
    }

    async fn watermarks(&self) -> Result<Vec<ShardWatermark>, StoreError> {
        Ok(lock(&self.state).watermarks.values().cloned().collect())
    }
}

#[derive(Debug, Default)]
struct AlertState {
    alerts: BTreeMap<String, StoredAlert>,
    /// Pending alert id → claim expiry.
    outbox: BTreeMap<String, Option<DateTime<Utc>>>,
    routes: HashMap<String, RouteState>,
    cabins: HashMap<CabinKey, CabinAlertState>,
    cursor: Option<String>,
    fail_records: u32,
    fail_marks: u32,
    fail_saves: u32,
}

impl AlertState {
    /// Records the alerts not recorded yet, each with its outbox entry; how many.
    fn insert_alerts(&mut self, alerts: &[Alert]) -> usize {
        let mut n = 0;
        for alert in alerts {
            if self.alerts.contains_key(&alert.alert_id) {
                continue;
            }
            self.alerts.insert(
                alert.alert_id.clone(),
                StoredAlert {
                    alert: alert.clone(),
                    published_at: None,
                },
            );
            self.outbox.insert(alert.alert_id.clone(), None);
            n += 1;
        }
        n
    }
}

/// An in-memory [`AlertStore`].
#[derive(Debug, Default)]
pub struct MemoryAlertStore {
    state: Mutex<AlertState>,
}

impl MemoryAlertStore {
    /// An empty store.
    pub fn new() -> MemoryAlertStore {
        MemoryAlertStore::default()
    }

    /// The next `n` calls of `record` fail with a transient error.
    pub fn fail_next_records(&self, n: u32) {
        lock(&self.state).fail_records = n;
    }

    /// The next `n` calls of `mark_published` fail with a transient error (a crash
    /// between publish and mark).
    pub fn fail_next_marks(&self, n: u32) {
        lock(&self.state).fail_marks = n;
    }

    /// The next `n` state saves fail with a transient error (a crash after judging).
    pub fn fail_next_saves(&self, n: u32) {
        lock(&self.state).fail_saves = n;
    }

    /// Every alert recorded, by id.
    pub fn all(&self) -> Vec<StoredAlert> {
        lock(&self.state).alerts.values().cloned().collect()
    }
}

impl AlertStore for MemoryAlertStore {
    async fn record(&self, alert: &Alert) -> Result<bool, StoreError> {
        let mut s = lock(&self.state);
        if spend(&mut s.fail_records) {
            return Err(StoreError::Transient("injected record failure".into()));
        }
        Ok(s.insert_alerts(std::slice::from_ref(alert)) == 1)
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let s = lock(&self.state);
        let mut out: Vec<Alert> = s
            .outbox
            .keys()
            .filter_map(|id| s.alerts.get(id).map(|a| a.alert.clone()))
            .collect();
        out.sort_by(|a, b| (a.raised_at, &a.alert_id).cmp(&(b.raised_at, &b.alert_id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn claim(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut s = lock(&self.state);
        match s.outbox.get_mut(alert_id) {
            Some(claim) if claim.is_none_or(|c| c < now) => {
                *claim = Some(until);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn mark_published(&self, alert_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        if spend(&mut s.fail_marks) {
            return Err(StoreError::Transient("injected mark failure".into()));
        }
        s.outbox.remove(alert_id);
        if let Some(a) = s.alerts.get_mut(alert_id)
            && a.published_at.is_none()
        {
            a.published_at = Some(at);
        }
        Ok(())
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        Ok(filter.select(lock(&self.state).alerts.values().cloned()))
    }

    async fn route_state(&self, route: &str) -> Result<Option<RouteState>, StoreError> {
        Ok(lock(&self.state).routes.get(route).cloned())
    }

    async fn save_route_state(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let mut s = lock(&self.state);
        if spend(&mut s.fail_saves) {
            return Err(StoreError::Transient("injected state save failure".into()));
        }
        let stored = s.routes.get(route).map_or(0, |r| r.version);
        if stored + 1 != state.version {
            return Ok(false);
        }
        s.routes.insert(route.to_string(), state.clone());
        s.insert_alerts(alerts);
        Ok(true)
    }

    async fn evaluator_cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.state).cursor.clone())
    }

    async fn save_evaluator_cursor(&self, route: &str) -> Result<(), StoreError> {
        lock(&self.state).cursor = Some(route.to_string());
        Ok(())
    }

    async fn cabin_states(
        &self,
        keys: &[CabinKey],
    ) -> Result<HashMap<CabinKey, CabinAlertState>, StoreError> {
        let s = lock(&self.state);
        Ok(keys
            .iter()
            .filter_map(|k| s.cabins.get(k).map(|c| (k.clone(), c.clone())))
            .collect())
    }

    async fn save_cabin_state(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let mut s = lock(&self.state);
        if spend(&mut s.fail_saves) {
            return Err(StoreError::Transient("injected state save failure".into()));
        }
        let stored = s.cabins.get(key).map_or(0, |c| c.version);
        if stored + 1 != state.version {
            return Ok(false);
        }
        s.cabins.insert(key.clone(), state.clone());
        s.insert_alerts(alerts);
        Ok(true)
    }
}

/// An [`AlertPublisher`] that keeps what it published, and can fail on demand.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    state: Mutex<(Vec<Alert>, u32)>,
}

impl MemoryPublisher {
    /// A publisher with nothing published.
    pub fn new() -> MemoryPublisher {
        MemoryPublisher::default()
    }

    /// The next `n` publishes fail with a transient error.
    pub fn fail_next(&self, n: u32) {
        lock(&self.state).1 = n;
    }

    /// Every alert published, in order (repeats included).
    pub fn published(&self) -> Vec<Alert> {
        lock(&self.state).0.clone()
    }
}

impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, alert: &Alert) -> Result<(), StoreError> {
        let mut s = lock(&self.state);
        if spend(&mut s.1) {
            return Err(StoreError::Transient("injected publish failure".into()));
        }
        s.0.push(alert.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_counter_of_an_event_40_days_old_expires_from_its_arrival() {
        let store = MemoryDemandStore::new();
        let arrived = at("2026-12-01T09:00:00Z");
        let key = CounterKey {
            route: "LHR-JFK".into(),
            bucket: (arrived - Duration::days(40)).timestamp(),
            shard_id: "s".into(),
        };
        let update = CounterUpdate {
            key: key.clone(),
            counts: Counts {
                searches: 1,
                ..Counts::default()
            },
            first: Position::new("1", None),
            last: Position::new("1", None),
            arrived,
        };
        assert_eq!(store.add(&update).await.unwrap(), Added::Applied);
        let expires = store.expires_at(&key).unwrap();
        assert!(expires > arrived.timestamp(), "{expires}");
        // A TTL sweep a day later keeps it, so a redelivery meets its mark.
        assert_eq!(
            store.purge_expired((arrived + Duration::days(1)).timestamp()),
            0
        );
        assert!(matches!(
            store.add(&update).await.unwrap(),
            Added::Stale { .. }
        ));
        assert_eq!(store.totals().values().map(|c| c.searches).sum::<u64>(), 1);
        assert_eq!(store.purge_expired(expires + 1), 1);
        assert_eq!(store.expires_at(&key), None);
    }

    #[tokio::test]
    async fn progress_moves_only_forward_but_a_value_no_arrival_can_have_stamped_is_replaced() {
        let store = MemoryDemandStore::new();
        let (t1, t2) = (at("2026-12-01T09:00:00Z"), at("2026-12-01T09:01:00Z"));
        // An event-time watermark of an older build, an hour ahead.
        store
            .advance_watermark("s", t1 + Duration::hours(1), t1)
            .await
            .unwrap();
        store.advance_watermark("s", t2, t2).await.unwrap();
        assert_eq!(store.watermark("s").await.unwrap(), Some(t2));
        store
            .advance_watermark("s", t1, t2 + Duration::seconds(1))
            .await
            .unwrap();
        let marks = store.watermarks().await.unwrap();
        assert_eq!(
            (marks[0].progress, marks[0].updated_at),
            (t2, t2),
            "never back"
        );
    }
}
