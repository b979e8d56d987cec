//! Regressions for "unchecked settings panic or spin": `record_ttl = Duration::MAX`
//! panicked on the send path, `metrics_interval = Some(ZERO)` busy-looped the worker,
//! `records_per_sec = 0.0` panicked, and a periodic ListShards that never answered
//! stopped shard-map refreshes for good. Settings are now checked at start-up, with
//! the setting named, and the refresh is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flyhigh_producer::{
    Entry, EntryResult, LocalStream, MemoryDeadLetters, Producer, ProducerConfig, ShardInfo,
    ShardLimits, Transport, TransportError,
};

fn config() -> ProducerConfig {
    ProducerConfig {
        dead_letters: Arc::new(MemoryDeadLetters::new()),
        ..ProducerConfig::default()
    }
}

fn refused(config: ProducerConfig) -> &'static str {
    match config.validate() {
        Ok(()) => panic!("accepted"),
        Err(e) => {
            assert!(e.to_string().contains(e.setting), "{e}");
            e.setting
        }
    }
}

#[test]
fn the_defaults_are_valid() {
    config().validate().expect("valid defaults");
}

#[test]
fn record_ttl_of_duration_max_is_refused_instead_of_panicking_on_send() {
    assert_eq!(
        refused(ProducerConfig {
            record_ttl: Duration::MAX,
            ..config()
        }),
        "record_ttl"
    );
    assert_eq!(
        refused(ProducerConfig {
            record_ttl: Duration::ZERO,
            ..config()
        }),
        "record_ttl"
    );
}

#[test]
fn metrics_interval_of_zero_is_refused_instead_of_busy_looping() {
    assert_eq!(
        refused(ProducerConfig {
            metrics_interval: Some(Duration::ZERO),
            ..config()
        }),
        "metrics_interval"
    );
    ProducerConfig {
        metrics_interval: None,
        ..config()
    }
    .validate()
    .expect("None turns it off");
}

#[test]
fn zero_or_nan_shard_limits_are_refused_instead_of_panicking() {
    let limits = |records_per_sec, bytes_per_sec| ProducerConfig {
        shard_limits: Some(ShardLimits {
            records_per_sec,
            bytes_per_sec,
        }),
        ..config()
    };
    assert_eq!(refused(limits(0.0, 1e6)), "shard_limits.records_per_sec");
    assert_eq!(refused(limits(1e3, f64::NAN)), "shard_limits.bytes_per_sec");
    assert_eq!(refused(limits(-1.0, 1e6)), "shard_limits.records_per_sec");
    limits(f64::INFINITY, f64::INFINITY)
        .validate()
        .expect("infinity is no limit");
}

#[test]
fn other_settings_out_of_range_are_named() {
    assert_eq!(
        refused(ProducerConfig {
            buffer_budget_bytes: 0,
            ..config()
        }),
        "buffer_budget_bytes"
    );
    assert_eq!(
        refused(ProducerConfig {
            aggregate_max_bytes: 2 << 20,
            ..config()
        }),
        "aggregate_max_bytes"
    );
    assert_eq!(
        refused(ProducerConfig {
            backoff_base: Duration::ZERO,
            ..config()
        }),
        "backoff_base"
    );
    assert_eq!(
        refused(ProducerConfig {
            backoff_max: Duration::from_millis(1),
            ..config()
        }),
        "backoff_max"
    );
    assert_eq!(
        refused(ProducerConfig {
            max_requests_in_flight: 0,
            ..config()
        }),
        "max_requests_in_flight"
    );
    assert_eq!(
        refused(ProducerConfig {
            request_timeout: Duration::ZERO,
            ..config()
        }),
        "request_timeout"
    );
    assert_eq!(
        refused(ProducerConfig {
            shard_map_refresh: Duration::ZERO,
            ..config()
        }),
        "shard_map_refresh"
    );
}

#[tokio::test]
async fn try_new_returns_the_error_and_new_panics_at_start_naming_it() {
    let stream = LocalStream::new("settings", 1);
    let bad = ProducerConfig {
        record_ttl: Duration::MAX,
        ..config()
    };
    let err = Producer::try_new(stream.clone(), bad.clone()).unwrap_err();
    assert_eq!(err.setting, "record_ttl");
    let panic =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Producer::new(stream, bad)))
            .expect_err("Producer::new with a bad setting");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("record_ttl"), "{message}");
}

/// The in-process stream, with a ListShards that never answers after the first.
struct HangingListShards {
    stream: LocalStream,
    calls: AtomicU32,
}

impl Transport for HangingListShards {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        self.stream.put_records(entries).await
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.stream.list_shards().await
        } else {
            std::future::pending().await
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_shard_map_refresh_times_out_and_refreshes_go_on() {
    let transport = Arc::new(HangingListShards {
        stream: LocalStream::new("settings", 2),
        calls: AtomicU32::new(0),
    });
    let producer = Producer::new(
        transport.clone(),
        ProducerConfig {
            shard_map_refresh: Duration::from_secs(1),
            ..config()
        },
    );
    // Refreshes every second; each hangs, times out after 5 s, and the next follows.
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let calls = transport.calls.load(Ordering::SeqCst);
    assert!(
        calls >= 4,
        "shard-map refreshes stopped after a hung call: {calls} calls in 30 s"
    );
    let _ = producer.close_within(Duration::from_secs(1)).await;
}
