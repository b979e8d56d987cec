//! Regressions for faults of the producer where one part of the stream held up the
//! rest:
//!
//! - "one hot shard can block every send": one global byte budget, so a throttled
//!   shard (a hot flight) filled it and `send` waited for all shards;
//! - "the dead-letter sink can stall every shard": the sink was synchronous and
//!   called on the worker, so a slow write stopped every put.
//!
//! Against the in-process stream, through a transport that throttles the records
//! of one shard for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use flyhigh_producer::{
    DeadLetter, DeadLetterSink, DeliveryError, Entry, EntryResult, LocalStream, MemoryDeadLetters,
    Producer, ProducerBuilder, SendError, ShardInfo, SinkFuture, Transport, TransportError,
};

/// A stream whose shard `hot` throttles every record; the others write.
#[derive(Clone)]
struct HotShard {
    stream: LocalStream,
    hot: usize,
}

impl Transport for HotShard {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if self.stream.shard_for_hash(e.hash_key()) == self.hot {
                out.push(EntryResult::Failed {
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "Rate exceeded for shard".into(),
                });
            } else {
                out.extend(self.stream.put(std::slice::from_ref(e))?);
            }
        }
        Ok(out)
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        Ok(self.stream.shards())
    }

    fn shard_limits(&self) -> flyhigh_producer::ShardLimits {
        flyhigh_producer::ShardLimits::UNLIMITED
    }
}

/// A producer over `stream` with its shard 0 throttled for good, quick retries and
/// no periodic metrics; `configure` sets the rest.
async fn hot_producer(
    stream: &LocalStream,
    configure: impl FnOnce(ProducerBuilder) -> ProducerBuilder,
) -> Producer {
    configure(
        Producer::builder()
            .backoff_base(Duration::from_millis(5))
            .backoff_max(Duration::from_millis(50))
            .metrics_interval(None),
    )
    .build_with(HotShard {
        stream: stream.clone(),
        hot: 0,
    })
    .await
    .expect("producer")
}

/// Shares are per shard of the map, which the worker loads as it starts.
async fn wait_for_map(producer: &Producer) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while producer.metrics().shard_map_refreshes == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the shard map loads");
}

/// Partition keys whose records land on shard `shard` of `stream` (or not).
fn keys(stream: &LocalStream, shard: usize, on: bool, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("FH{i:04}-20261201"))
        .filter(|k| (stream.shard_for(k) == shard) == on)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_one_throttled_shard_does_not_block_sends_to_the_others() {
    let stream = LocalStream::new("hot", 4);
    let hot_keys = keys(&stream, 0, true, 20);
    let cold_keys = keys(&stream, 0, false, 20);
    let budget = 2 * 1024 * 1024;
    let producer = hot_producer(&stream, |b| {
        b.buffer_budget_bytes(budget)
            .dead_letters(MemoryDeadLetters::new())
            .record_ttl(Duration::from_secs(600))
    })
    .await;
    wait_for_map(&producer).await;
    // Fill the hot shard's share: its records are throttled for good.
    let data = vec![b'x'; 4096];
    let mut hot_accepted = 0;
    let refused_shard = loop {
        let key = &hot_keys[hot_accepted % hot_keys.len()];
        match producer.try_send_record(key, data.clone()) {
            Ok(_) => hot_accepted += 1,
            Err(SendError::BufferFull { shard, .. }) => break shard,
            Err(e) => panic!("{e}"),
        }
        assert!(hot_accepted < 10_000, "the hot shard's share never filled");
    };
    assert_eq!(
        refused_shard.as_deref(),
        Some(stream.shards()[0].shard_id.as_str()),
        "refused for the hot shard's share, not the whole budget"
    );
    assert!(producer.buffered_bytes() < budget);
    // Every other shard still takes records, and they are written.
    let mut receipts = Vec::new();
    for (i, key) in cold_keys.iter().cycle().take(200).enumerate() {
        let receipt = tokio::time::timeout(
            Duration::from_secs(10),
            producer.send_record(key, format!("{{\"n\":{i}}}").into_bytes()),
        )
        .await
        .expect("send to a cold shard does not wait for the hot one")
        .expect("accepted");
        receipts.push(receipt);
    }
    for receipt in receipts {
        let delivery = tokio::time::timeout(Duration::from_secs(10), receipt)
            .await
            .expect("written while the hot shard is throttled")
            .expect("written");
        assert_ne!(&*delivery.shard_id, stream.shards()[0].shard_id.as_str());
    }
    let m = producer.metrics();
    assert!(m.throttles > 0);
    let report = producer.close_within(Duration::from_millis(100)).await;
    assert_eq!(
        report.dead_lettered, hot_accepted as u64,
        "the hot records end in the sink"
    );
}

/// A sink that takes `delay` per write, and says when a write finished.
#[derive(Debug, Clone)]
struct SlowSink {
    inner: MemoryDeadLetters,
    delay: Duration,
    writes_done: Arc<AtomicUsize>,
    writing: Arc<AtomicBool>,
}

impl DeadLetterSink for SlowSink {
    fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_> {
        Box::pin(async move {
            self.writing.store(true, Ordering::SeqCst);
            // A blocking fsync or an SQS call: seconds, on the sink's own task.
            tokio::time::sleep(self.delay).await;
            self.inner.write(letters).await?;
            self.writes_done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_slow_dead_letter_sink_does_not_stall_other_shards() {
    let stream = LocalStream::new("slow-sink", 4);
    let hot_keys = keys(&stream, 0, true, 4);
    let cold_keys = keys(&stream, 0, false, 20);
    let sink = SlowSink {
        inner: MemoryDeadLetters::new(),
        delay: Duration::from_secs(3),
        writes_done: Arc::new(AtomicUsize::new(0)),
        writing: Arc::new(AtomicBool::new(false)),
    };
    let producer = Producer::builder()
        .dead_letters(sink.clone())
        // The hot shard's records expire quickly and go to the slow sink.
        .record_ttl(Duration::from_millis(200))
        .backoff_base(Duration::from_millis(5))
        .backoff_max(Duration::from_millis(20))
        .metrics_interval(None)
        .build_with(HotShard {
            stream: stream.clone(),
            hot: 0,
        })
        .await
        .expect("producer");
    let mut hot = Vec::new();
    for key in &hot_keys {
        hot.push(producer.send_record(key, b"{}".to_vec()).await.unwrap());
    }
    // Wait until the sink is busy with them.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !sink.writing.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the expired records reach the sink");
    // While it writes, records for other shards are written.
    for key in &cold_keys {
        let receipt = producer.send_record(key, b"{}".to_vec()).await.unwrap();
        receipt.await.expect("written");
    }
    assert_eq!(
        sink.writes_done.load(Ordering::SeqCst),
        0,
        "every other shard's record was written while the sink was still busy"
    );
    // And the dead letters are stored, with their receipts saying so.
    for receipt in hot {
        match receipt.await {
            Err(DeliveryError::DeadLettered { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sink.inner.letters().len(), hot_keys.len());
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_shard_metrics_show_the_throttled_shard_slowed_and_holding_its_records() {
    let stream = LocalStream::new("metrics", 4);
    let limits = flyhigh_producer::ShardLimits {
        records_per_sec: 1_000.0,
        bytes_per_sec: 1e7,
    };
    let producer = hot_producer(&stream, |b| {
        b.dead_letters(MemoryDeadLetters::new())
            .shard_limits(limits)
            .record_ttl(Duration::from_secs(600))
    })
    .await;
    for key in keys(&stream, 0, true, 5)
        .iter()
        .chain(&keys(&stream, 0, false, 30))
    {
        producer.send_record(key, b"{}".to_vec()).await.unwrap();
    }
    // The figures are published about once a second.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let m = producer.metrics();
    assert_eq!(m.shards.len(), 4, "{:?}", m.shards);
    let hot_id = stream.shards()[0].shard_id.clone();
    let hot = m.shards.iter().find(|s| s.shard_id == hot_id).unwrap();
    assert!(hot.throttles > 0);
    assert!(hot.rate_share < 0.5, "{hot:?}");
    assert!(hot.allowed_records_per_sec < 500.0, "{hot:?}");
    assert_eq!(hot.buffered_records, 5);
    assert_eq!(hot.user_records_written, 0);
    let written: u64 = m.shards.iter().map(|s| s.user_records_written).sum();
    assert_eq!(written, 30);
    assert!(
        m.shards
            .iter()
            .filter(|s| s.shard_id != hot_id)
            .all(|s| s.rate_share == 1.0)
    );
    assert!(
        m.oldest_buffered_age >= Duration::from_secs(1),
        "{:?}",
        m.oldest_buffered_age
    );
    producer.close_within(Duration::from_millis(50)).await;
}

/// A sink that panics.
#[derive(Debug)]
struct PanickingSink;

impl DeadLetterSink for PanickingSink {
    fn write(&self, _: Vec<DeadLetter>) -> SinkFuture<'_> {
        Box::pin(async { panic!("a bug in the sink") })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_panics_fails_the_receipts_and_the_close_still_returns() {
    let stream = LocalStream::new("panic", 2);
    let producer = hot_producer(&stream, |b| {
        b.dead_letters(PanickingSink)
            .record_ttl(Duration::from_millis(100))
    })
    .await;
    let key = &keys(&stream, 0, true, 1)[0];
    let first = producer.send_record(key, b"{}".to_vec()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("resolved")
    {
        Err(DeliveryError::DeadLetterFailed { sink_error, .. }) => {
            assert!(sink_error.contains("stopped"), "{sink_error}")
        }
        other => panic!("{other:?}"),
    }
    // Later letters fail the same way, at once.
    let second = producer.send_record(key, b"{}".to_vec()).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("resolved"),
        Err(DeliveryError::DeadLetterFailed { .. })
    ));
    let report = tokio::time::timeout(Duration::from_secs(10), producer.close())
        .await
        .expect("close returns");
    assert_eq!(report.dead_lettered, 2);
    assert_eq!(producer.metrics().dead_letter_failures, 2);
}
