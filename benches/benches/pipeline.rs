use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flyhigh_core::KinesisRecord;
use flyhigh_core::memory::{MemoryDeadLetters, MemoryStore};
use flyhigh_embedded::SqliteInventoryStore;
use flyhigh_handlers::InventoryHandler;
use flyhigh_producer::{Entry, LocalStream, Producer, ProducerConfig};
use flyhigh_schemas::Envelope;
use flyhigh_simulator::{SimConfig, Simulator};

fn events(n: usize) -> Vec<Envelope> {
    Simulator::new(SimConfig::new(42, n))
        .expect("valid config")
        .collect()
}

fn decode(c: &mut Criterion) {
    let bytes: Vec<Vec<u8>> = events(10_000).iter().map(Envelope::to_json).collect();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(bytes.len() as u64));
    group.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| {
            bytes
                .iter()
                .map(|d| serde_json::from_slice::<serde_json::Value>(d).is_ok() as usize)
                .sum::<usize>()
        })
    });
    group.bench_function("decode_and_validate", |b| {
        b.iter(|| {
            bytes
                .iter()
                .map(|d| flyhigh_schemas::decode(d).is_ok() as usize)
                .sum::<usize>()
        })
    });
    group.finish();
}

fn aggregation(c: &mut Criterion) {
    use flyhigh_benches::aggregation::{aggregated_path, even_map, plain_path, sample_records};
    let records = sample_records(100_000, 42);
    let map = even_map(4);
    let config = ProducerConfig::default();
    let mut group = c.benchmark_group("aggregation");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(20);
    group.bench_function("baseline_unaggregated_collect", |b| {
        b.iter_batched(
            || records.clone(),
            |r| black_box(plain_path(r)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("aggregate_and_collect", |b| {
        b.iter_batched(
            || records.clone(),
            |r| black_box(aggregated_path(r, &map, &config)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn producer(c: &mut Criterion) {
    let events = events(10_000);
    let entries: Vec<Entry> = events
        .iter()
        .map(|e| Entry::new(e.partition_key(), e.to_json()))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("producer");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("baseline_raw_puts", |b| {
        b.iter_batched(
            || LocalStream::new("bench", 4),
            |stream| {
                for chunk in entries.chunks(500) {
                    black_box(stream.put(chunk).expect("put"));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("validate_serialize_batch_put", |b| {
        b.iter_batched(
            || LocalStream::new("bench", 4),
            |stream| {
                runtime.block_on(async {
                    let producer = Producer::new(stream, ProducerConfig::default());
                    for e in &events {
                        producer.send(e).await.expect("valid");
                    }
                    black_box(producer.close().await)
                })
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn kinesis_records(n: usize) -> Vec<KinesisRecord> {
    flyhigh_benches::records::plain(0, &events(n))
}

/// The same events as [`kinesis_records`], packed as the producer packs them: KPL
/// aggregates of up to 51,200 bytes (one shard, so every event shares them).
fn aggregated_records(n: usize) -> Vec<KinesisRecord> {
    flyhigh_benches::records::aggregated(0, &events(n))
}

fn inventory_handler(c: &mut Criterion) {
    let records = kinesis_records(5_000);
    let aggregated = aggregated_records(5_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("inventory_handler");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("baseline_decode_only", |b| {
        b.iter(|| records.iter().filter(|r| r.decode().is_ok()).count())
    });
    group.bench_function("process_batches_of_500", |b| {
        b.iter_batched(
            || InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new()),
            |handler| {
                runtime.block_on(async {
                    for batch in records.chunks(500) {
                        black_box(handler.process(batch).await);
                    }
                })
            },
            BatchSize::LargeInput,
        )
    });
    // The same events in KPL aggregates: deaggregation (MD5 check included) on top.
    group.bench_function("process_aggregated_records", |b| {
        b.iter_batched(
            || InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new()),
            |handler| {
                runtime.block_on(async {
                    for batch in aggregated.chunks(4) {
                        black_box(handler.process(batch).await);
                    }
                })
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The pure part of the inventory handler on a 10,000-record batch (Lambda's largest):
/// decode and validate every record, fold the inventory events over the stored states
/// and pack the transactions, against decoding alone.
fn plan(c: &mut Criterion) {
    use flyhigh_core::inventory::{InventoryEvent, MAX_TRANSACTION_ITEMS, pack, plan};
    use flyhigh_schemas::Payload;
    let records = kinesis_records(10_000);
    let current = std::collections::HashMap::new();
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("baseline_decode_only", |b| {
        b.iter(|| records.iter().filter(|r| r.decode().is_ok()).count())
    });
    group.bench_function("decode_validate_plan_pack_10000", |b| {
        b.iter(|| {
            let events: Vec<(usize, Envelope)> = records
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.decode().ok().map(|e| (i, e)))
                .collect();
            let inventory = events.iter().filter_map(|(i, e)| match &e.payload {
                Payload::Booking(b) => Some((*i, InventoryEvent::Booking(b))),
                Payload::Cancellation(c) => Some((*i, InventoryEvent::Cancellation(c))),
                Payload::Search(_) => None,
            });
            let plan = plan(&current, inventory);
            black_box(pack(plan.changes, MAX_TRANSACTION_ITEMS))
        })
    });
    group.finish();
}

/// The handler over the SQLite file store (the embedded default) against the same
/// handler over the in-memory store.
fn sqlite_store(c: &mut Criterion) {
    let records = kinesis_records(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("sqlite_store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records.len() as u64));
    let run = |handler: &InventoryHandler<_, MemoryDeadLetters>| {
        runtime.block_on(async {
            for batch in records.chunks(500) {
                black_box(handler.process(batch).await);
            }
        })
    };
    group.bench_function("baseline_memory_store", |b| {
        b.iter_batched(
            || InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new()),
            |h| run(&h),
            BatchSize::LargeInput,
        )
    });
    let mut n = 0;
    group.bench_function("sqlite_file_store", |b| {
        b.iter_batched(
            || {
                n += 1;
                let store =
                    SqliteInventoryStore::open(&dir.path().join(format!("inventory-{n}.sqlite")))
                        .expect("open");
                InventoryHandler::new(store, MemoryDeadLetters::new())
            },
            |h| {
                runtime.block_on(async {
                    for batch in records.chunks(500) {
                        black_box(h.process(batch).await);
                    }
                })
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    decode,
    aggregation,
    producer,
    inventory_handler,
    plan,
    sqlite_store,
    demand,
    archive
);
criterion_main!(benches);

/// The demand-counting handler on a 10,000-record batch (Lambda's largest) of
/// airline-scale traffic (10 million events a day), in memory: decode, route, flag
/// late events, group by counter and write one conditional change per route and
/// bucket, against decoding alone.
fn demand(c: &mut Criterion) {
    use flyhigh_core::memory::MemoryDemandStore;
    use flyhigh_handlers::DemandHandler;
    let records =
        flyhigh_benches::records::plain(0, &flyhigh_benches::records::dense_events(10_000));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let routes = MemoryStore::new();
    let mut group = c.benchmark_group("demand");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("baseline_decode_only", |b| {
        b.iter(|| records.iter().filter(|r| r.decode().is_ok()).count())
    });
    group.bench_function("count_batch_of_10000", |b| {
        b.iter_batched(
            || DemandHandler::new(MemoryDemandStore::new(), &routes, MemoryDeadLetters::new()),
            |handler| runtime.block_on(async { black_box(handler.process(&records).await) }),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Parquet encoding of a 10,000-event batch (airline-scale traffic, so an hour's
/// partition per table), straight from decoded events, against JSON decoding of the
/// same events: the encoding alone (Arrow arrays, Parquet pages, statistics, bloom
/// filters, zstd) of rows already partitioned and sorted, and the whole batch
/// (partition, sort, encode, and dropping the rows). The bar is 1,000,000 events/s
/// on one core.
fn archive(c: &mut Criterion) {
    use flyhigh_core::archive::{ArchivedEvent, ParquetOptions, plan_batch, write_file};
    use flyhigh_core::records::Position;
    let events = flyhigh_benches::records::dense_events(10_000);
    let bytes: Vec<Vec<u8>> = events.iter().map(Envelope::to_json).collect();
    let archived: Vec<ArchivedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| ArchivedEvent {
            event: e.clone(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: format!("49{i:054}"),
            sub_sequence_number: 0,
            arrived_at: Some(e.occurred_at),
        })
        .collect();
    let options = ParquetOptions::default();
    let mut group = c.benchmark_group("archive");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("baseline_json_decode", |b| {
        b.iter(|| {
            bytes
                .iter()
                .filter(|d| flyhigh_schemas::decode(d).is_ok())
                .count()
        })
    });
    // Encoding alone: the batch's files from rows already partitioned and sorted.
    let planned = plan_batch(
        "shardId-000000000000",
        Position::new("1", None),
        Position::new("10000", None),
        archived.clone(),
    );
    group.bench_function("parquet_encode_sorted_rows_10000", |b| {
        b.iter(|| {
            let mut total = 0;
            for file in &planned.files {
                let refs: Vec<&ArchivedEvent> = file.rows.iter().collect();
                total += write_file(file.partition.table, &refs, &options, Vec::new())
                    .expect("encodes")
                    .len();
            }
            black_box(total)
        })
    });
    group.bench_function("parquet_encode_batch_of_10000", |b| {
        b.iter_batched(
            || archived.clone(),
            |rows| {
                let plan = plan_batch(
                    "shardId-000000000000",
                    Position::new("1", None),
                    Position::new("10000", None),
                    rows,
                );
                let mut total = 0;
                for file in &plan.files {
                    let refs: Vec<&ArchivedEvent> = file.rows.iter().collect();
                    total += write_file(file.partition.table, &refs, &options, Vec::new())
                        .expect("encodes")
                        .len();
                }
                black_box(total)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}
