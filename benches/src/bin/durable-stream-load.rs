//! What durability costs: N simulated events through the producer into the
//! in-memory `LocalStream` and into the durable SQLite stream
//! (`flyhigh_embedded::DurableStream`, in a temporary directory), in the same run.
//!
//! `cargo run --release -p flyhigh-benches --bin durable-stream-load [-- --events N] [--shards S] [--senders T] [--direct-tasks D] [--direct-events E]`
//!
//! Each run sends the same events (the simulator's airline-scale day, default
//! 200,000) from T sending tasks (default 4, as a server's request handlers) into a
//! fresh producer with default settings, and times from the first send until
//! `close` returns (every event written). Prints one JSON object: events/s for each
//! stream, their ratio, and the durable stream's commits, requests and requests per
//! commit (how well group commit shares each sync).
//!
//! The producer aggregates, so its requests are few and large and the disk's synced
//! bandwidth bounds the durable run. A second durable run shows group commit under
//! many small requests: D tasks (default 64) each putting one unaggregated event per
//! request, E events in all (default 20,000), straight into a fresh
//! `DurableStream`, as many clients of a server would.
//!
//! Exits 1 when an event is dead-lettered or a durable stream holds another number
//! of events than sent.

use std::sync::Arc;
use std::time::Instant;

use flyhigh_embedded::{DurableStream, StreamConfig};
use flyhigh_producer::{Entry, LocalStream, MemoryDeadLetters, Producer, Transport};
use flyhigh_runner::{ReadOutcome, ShardReader, StartPosition, StreamSource};
use flyhigh_schemas::Envelope;
use flyhigh_schemas::aggregation::deaggregate;

/// One run: events/s and whether every event was written.
struct Run {
    seconds: f64,
    dead_lettered: u64,
}

async fn run<T: Transport + Clone>(
    transport: T,
    events: Arc<Vec<Envelope>>,
    senders: usize,
) -> Run {
    let dead_letters = MemoryDeadLetters::new();
    let producer = Producer::builder()
        .dead_letters(dead_letters.clone())
        .build_with(transport)
        .await
        .expect("default settings are valid");
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|t| {
            let (producer, events) = (producer.clone(), events.clone());
            tokio::spawn(async move {
                for event in events.iter().skip(t).step_by(senders) {
                    let receipt = producer.send(event).await;
                    // Not awaited: `close` waits for every record.
                    drop(receipt.expect("simulated events are valid"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender");
    }
    let report = producer.close().await;
    Run {
        seconds: started.elapsed().as_secs_f64(),
        dead_lettered: report.dead_lettered + dead_letters.letters().len() as u64,
    }
}

/// `events` put one per request from `tasks` concurrent tasks; returns the seconds
/// taken.
async fn direct(stream: &DurableStream, events: &[Envelope], tasks: usize) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let stream = stream.clone();
            let mine: Vec<Entry> = events
                .iter()
                .skip(t)
                .step_by(tasks)
                .map(|e| Entry::new(e.partition_key(), e.to_json()))
                .collect();
            tokio::spawn(async move {
                for entry in mine {
                    stream
                        .put(std::slice::from_ref(&entry))
                        .await
                        .expect("the durable stream takes the put");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("putting task");
    }
    started.elapsed().as_secs_f64()
}

/// User records in the durable stream, read back through its `StreamSource`.
async fn user_records(stream: &DurableStream) -> usize {
    let mut n = 0;
    for shard in stream.shards() {
        let mut reader = StreamSource::open(stream, &shard.shard_id, StartPosition::TrimHorizon)
            .await
            .expect("shard");
        while let ReadOutcome::Records(records) = reader.read(10_000).await.expect("read") {
            n += records
                .iter()
                .map(|r| deaggregate(&r.data).map_or(1, |d| d.len()))
                .sum::<usize>();
        }
    }
    n
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = flyhigh_benches::arg(&args, "--events", 200_000);
    let shards: usize = flyhigh_benches::arg(&args, "--shards", 4);
    let senders: usize = flyhigh_benches::arg(&args, "--senders", 4).max(1);
    let direct_tasks: usize = flyhigh_benches::arg(&args, "--direct-tasks", 64).max(1);
    let direct_events: usize = flyhigh_benches::arg(&args, "--direct-events", 20_000).min(n);
    let events = Arc::new(flyhigh_benches::records::dense_events(n));
    // Two worker threads, as on the 2-core machine the numbers are measured on.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = runtime.block_on(async {
        let memory = run(LocalStream::new("memory", shards), events.clone(), senders).await;

        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join(flyhigh_embedded::STREAM_FILE);
        let stream = DurableStream::open(&path, StreamConfig::new("durable", shards))
            .expect("a new stream file");
        let durable = run(stream.clone(), events.clone(), senders).await;
        stream.close();
        let stats = stream.stats();
        let stored = user_records(&stream).await;
        let file_bytes: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
            .map(|m| m.len())
            .sum();


        let small_path = dir.path().join("small-requests.sqlite");
        let small = DurableStream::open(&small_path, StreamConfig::new("small", shards))
            .expect("a new stream file");
        let small_seconds = direct(&small, &events[..direct_events], direct_tasks).await;
        small.close();
        let small_stats = small.stats();
        let small_stored = user_records(&small).await;

        let per_sec = |r: &Run| events.len() as f64 / r.seconds;
        let summary = serde_json::json!({
            "events": events.len(),
            "shards": shards,
            "senders": senders,
            "memory_events_per_sec": per_sec(&memory).round(),
            "durable_events_per_sec": per_sec(&durable).round(),
            "durable_over_memory": (per_sec(&durable) / per_sec(&memory) * 1000.0).round() / 1000.0,
            "durable_commits": stats.commits,
            "durable_requests": stats.requests,
            "durable_requests_per_commit": (stats.requests_per_commit() * 100.0).round() / 100.0,
            "durable_max_requests_per_commit": stats.max_requests_per_commit,
            "durable_records_written": stats.records_written,
            "durable_user_records_read_back": stored,
            "durable_duplicates_dropped": stats.duplicates_dropped,
            "durable_file_bytes": file_bytes,
            "dead_lettered": memory.dead_lettered + durable.dead_lettered,
            "small_requests_tasks": direct_tasks,
            "small_requests_events": direct_events,
            "small_requests_events_per_sec": (direct_events as f64 / small_seconds).round(),
            "small_requests_commits": small_stats.commits,
            "small_requests_per_commit": (small_stats.requests_per_commit() * 100.0).round() / 100.0,
            "small_requests_max_per_commit": small_stats.max_requests_per_commit,
        });
        println!("{summary}");
        memory.dead_lettered == 0
            && durable.dead_lettered == 0
            && stored == events.len()
            && small_stored == direct_events
    });
    std::process::exit(if ok { 0 } else { 1 });
}
