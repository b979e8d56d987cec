//! The live hub: a sampler builds a [`Snapshot`] every interval, the hub numbers it,
//! keeps the last few minutes in a bounded ring (the plots' history, and what a
//! reconnecting tab resumes from) and publishes it on a bounded broadcast channel
//! that every server-sent-events stream reads.
//!
//! Memory is bounded whatever the tabs do: the ring holds at most
//! [`HubConfig::ring`] frames, the channel [`HubConfig::channel`], each frame is
//! serialized once and shared, and a tab that reads too slowly skips to the newest
//! frame instead of queueing (a dashboard wants the present, not a backlog). At most
//! [`HubConfig::max_streams`] streams are open at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::model::Snapshot;
use crate::source::Source;

/// How the hub samples and how much it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    /// Time between snapshots.
    pub interval: Duration,
    /// Frames kept for history and resumption (300: five minutes at one a second).
    pub ring: usize,
    /// Frames the broadcast channel holds for a slow stream before it skips.
    pub channel: usize,
    /// Streams open at once; beyond it a tab is answered 503 with `Retry-After`.
    pub max_streams: usize,
    /// Time between snapshots while no stream is open: the history stays warm for
    /// the first tab without the service reading its stores every second for no
    /// one.
    pub idle_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            interval: Duration::from_secs(1),
            ring: 300,
            channel: 8,
            max_streams: 64,
            idle_interval: Duration::from_secs(10),
        }
    }
}

/// One published snapshot, serialized once for every stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Unix milliseconds when published, strictly increasing (also across a
    /// restart, as long as the clock does not step back).
    pub id: u64,
    /// The snapshot as JSON.
    pub json: Arc<str>,
}

/// The live hub; share it in an `Arc`.
pub struct Hub {
    config: HubConfig,
    ring: Mutex<VecDeque<Frame>>,
    tx: broadcast::Sender<Frame>,
    streams: AtomicUsize,
    closed: watch::Sender<bool>,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(config.channel.max(1));
        Arc::new(Hub {
            ring: Mutex::new(VecDeque::with_capacity(config.ring.max(1))),
            tx,
            streams: AtomicUsize::new(0),
            closed: watch::Sender::new(false),
            config,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Numbers `snapshot`, keeps it in the ring (dropping the oldest beyond the
    /// bound) and sends it to every stream.
    pub fn publish(&self, mut snapshot: Snapshot) -> Frame {
        let mut ring = self.lock();
        let last = ring.back().map_or(0, |f| f.id);
        snapshot.id = unix_millis().max(last + 1);
        snapshot.interval_ms = self.config.interval.as_millis() as u64;
        let json: Arc<str> = match serde_json::to_string(&snapshot) {
            Ok(s) => s.into(),
            // A snapshot is plain data; should serialization ever fail, the page
            // still gets a frame that says so instead of silence.
            Err(e) => format!(r#"{{"id":{},"errors":["snapshot: {e}"]}}"#, snapshot.id).into(),
        };
        let frame = Frame {
            id: snapshot.id,
            json,
        };
        while ring.len() >= self.config.ring.max(1) {
            ring.pop_front();
        }
        ring.push_back(frame.clone());
        // Sent under the ring's lock so a subscriber sees each frame exactly once:
        // either in its replay or on its receiver.
        let _ = self.tx.send(frame.clone());
        frame
    }

    /// The newest frame.
    pub fn latest(&self) -> Option<Frame> {
        self.lock().back().cloned()
    }

    /// Frames a tab that last saw `after` should get: those after it when the ring
    /// holds it, else (an id from before a restart, or older than the ring) the
    /// whole ring.
    pub fn replay(&self, after: Option<u64>) -> Vec<Frame> {
        replay_of(&self.lock(), after)
    }

    /// A stream of frames for one tab: the replay after `last_event_id`, then every
    /// new frame (a slow reader skips to the newest). `None` when
    /// [`HubConfig::max_streams`] are open. It ends when the hub is closed.
    pub fn stream(
        self: &Arc<Self>,
        last_event_id: Option<u64>,
    ) -> Option<impl Stream<Item = Frame> + Send + 'static> {
        let guard = StreamGuard::take(self)?;
        let (replay, rx) = {
            let ring = self.lock();
            (replay_of(&ring, last_event_id), self.tx.subscribe())
        };
        let state = StreamState {
            replay: replay.into(),
            rx,
            closed: self.closed.subscribe(),
            _guard: guard,
        };
        Some(futures::stream::unfold(state, |mut s| async move {
            let frame = s.next().await?;
            Some((frame, s))
        }))
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Ends every stream and the sampler: a server shutting down gracefully waits
    /// for its connections, and an event stream would otherwise never end.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Samples `source` every [`HubConfig::interval`] and publishes each snapshot
    /// until the hub is closed or dropped. A slow source skips ticks rather than
    /// piling them up.
    pub fn spawn_sampler<S: Source>(self: &Arc<Self>, source: Arc<S>) -> JoinHandle<()> {
        let hub: Weak<Hub> = Arc::downgrade(self);
        let mut closed = self.closed.subscribe();
        let (interval, idle) = (self.config.interval, self.config.idle_interval);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut last: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = closed.wait_for(|c| *c) => return,
                }
                let watched = hub.upgrade().is_some_and(|h| h.open_streams() > 0);
                if !watched && last.is_some_and(|t| t.elapsed() < idle) {
                    continue;
                }
                last = Some(tokio::time::Instant::now());
                let snapshot = source.snapshot().await;
                let Some(hub) = hub.upgrade() else { return };
                if hub.is_closed() {
                    return;
                }
                hub.publish(snapshot);
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Frame>> {
        // A panic while holding the lock cannot leave the ring inconsistent (each
        // change is one push or pop), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn replay_of(ring: &VecDeque<Frame>, after: Option<u64>) -> Vec<Frame> {
    match after {
        Some(id) if ring.iter().any(|f| f.id == id) => {
            ring.iter().filter(|f| f.id > id).cloned().collect()
        }
        _ => ring.iter().cloned().collect(),
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Counts a stream while it is open.
struct StreamGuard(Arc<Hub>);

impl StreamGuard {
    fn take(hub: &Arc<Hub>) -> Option<StreamGuard> {
        let max = hub.config.max_streams;
        hub.streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(StreamGuard(hub.clone()))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

struct StreamState {
    replay: VecDeque<Frame>,
    rx: broadcast::Receiver<Frame>,
    closed: watch::Receiver<bool>,
    _guard: StreamGuard,
}

impl StreamState {
    async fn next(&mut self) -> Option<Frame> {
        if *self.closed.borrow() {
            return None;
        }
        if let Some(frame) = self.replay.pop_front() {
            return Some(frame);
        }
        loop {
            let received = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.closed.wait_for(|c| *c) => return None,
            };
            match received {
                Ok(frame) => return Some(frame),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(
                        skipped,
                        "a live stream fell behind; skipping to the newest frame"
                    );
                    let mut newest = None;
                    loop {
                        match self.rx.try_recv() {
                            Ok(frame) => newest = Some(frame),
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    if let Some(frame) = newest {
                        return Some(frame);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn snapshot(n: usize) -> Snapshot {
        Snapshot::empty(format!("test {n}"))
    }

    fn hub(ring: usize, channel: usize, max_streams: usize) -> Arc<Hub> {
        Hub::new(HubConfig {
            interval: Duration::from_secs(1),
            ring,
            channel,
            max_streams,
            idle_interval: Duration::from_secs(10),
        })
    }

    #[test]
    fn the_ring_is_bounded_and_ids_strictly_increase() {
        let hub = hub(5, 4, 4);
        let ids: Vec<u64> = (0..20).map(|n| hub.publish(snapshot(n)).id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let kept: Vec<u64> = hub.replay(None).iter().map(|f| f.id).collect();
        assert_eq!(kept, ids[15..], "the newest five");
        assert_eq!(hub.latest().map(|f| f.id), ids.last().copied());
    }

    #[test]
    fn resuming_after_a_known_id_replays_only_what_followed_and_an_unknown_id_replays_all() {
        let hub = hub(10, 4, 4);
        let ids: Vec<u64> = (0..6).map(|n| hub.publish(snapshot(n)).id).collect();
        let after: Vec<u64> = hub.replay(Some(ids[3])).iter().map(|f| f.id).collect();
        assert_eq!(after, ids[4..]);
        assert!(hub.replay(Some(ids[5])).is_empty(), "up to date");
        // An id from before a restart, or one the ring dropped.
        assert_eq!(hub.replay(Some(1)).len(), 6);
    }

    #[tokio::test]
    async fn a_stream_resumes_after_its_last_event_id_then_goes_live() {
        let hub = hub(10, 4, 4);
        let ids: Vec<u64> = (0..4).map(|n| hub.publish(snapshot(n)).id).collect();
        let mut stream = Box::pin(hub.stream(Some(ids[1])).unwrap());
        assert_eq!(stream.next().await.unwrap().id, ids[2]);
        assert_eq!(stream.next().await.unwrap().id, ids[3]);
        let live = hub.publish(snapshot(9)).id;
        assert_eq!(stream.next().await.unwrap().id, live);
    }

    #[tokio::test]
    async fn a_lagging_stream_skips_to_the_newest_frame() {
        let hub = hub(1000, 4, 4);
        let mut stream = Box::pin(hub.stream(None).unwrap());
        // A tab that reads nothing while 100 frames go by: the channel holds 4.
        let ids: Vec<u64> = (0..100).map(|n| hub.publish(snapshot(n)).id).collect();
        // Its replay was taken at connection (empty), then the receiver lagged.
        let next = stream.next().await.unwrap();
        assert_eq!(next.id, *ids.last().unwrap(), "skipped to the newest");
        let more = hub.publish(snapshot(100)).id;
        assert_eq!(stream.next().await.unwrap().id, more);
    }

    #[tokio::test]
    async fn streams_are_capped_and_a_closed_stream_frees_its_place() {
        let hub = hub(10, 4, 2);
        let a = hub.stream(None).unwrap();
        let b = hub.stream(None).unwrap();
        assert!(hub.stream(None).is_none(), "a third stream is refused");
        assert_eq!(hub.open_streams(), 2);
        drop(a);
        assert!(hub.stream(None).is_some());
        drop(b);
    }

    #[tokio::test]
    async fn closing_the_hub_ends_every_stream() {
        let hub = hub(10, 4, 4);
        hub.publish(snapshot(0));
        let mut stream = Box::pin(hub.stream(None).unwrap());
        assert!(stream.next().await.is_some(), "the replay");
        hub.close();
        assert!(stream.next().await.is_none());
        drop(stream);
        assert_eq!(hub.open_streams(), 0);
    }

    /// A source that counts its snapshots.
    struct Counting(AtomicUsize);

    impl Source for Counting {
        async fn snapshot(&self) -> Snapshot {
            snapshot(self.0.fetch_add(1, Ordering::Relaxed))
        }
        async fn flight(
            &self,
            _flight_id: &str,
        ) -> Result<Option<crate::model::FlightView>, crate::source::SourceError> {
            Ok(None)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_publishes_every_interval_keeps_the_ring_bounded_and_stops_when_closed() {
        let hub = hub(30, 4, 4);
        let source = Arc::new(Counting(AtomicUsize::new(0)));
        let _watching = hub.stream(None).unwrap();
        let sampler = hub.spawn_sampler(source.clone());
        // The first tick is immediate, then one a second while a stream is open.
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert_eq!(source.0.load(Ordering::Relaxed), 11);
        assert_eq!(hub.replay(None).len(), 11);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(
            hub.replay(None).len(),
            30,
            "five minutes' worth is the bound, here 30"
        );
        // No one watching: one snapshot every idle interval.
        drop(_watching);
        let before = source.0.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(source.0.load(Ordering::Relaxed) - before, 3);
        hub.close();
        tokio::time::timeout(Duration::from_secs(5), sampler)
            .await
            .expect("the sampler stops once the hub is closed")
            .unwrap();
    }
}
