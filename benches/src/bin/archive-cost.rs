//! What the archive costs: bytes per event in Parquet against raw and gzip JSON, and
//! the archive handler's peak heap on a 10,000-record batch (Lambda's largest).
//!
//! `cargo run --release -p flyhigh-benches --bin archive-cost [-- --events N]`
//!
//! Traffic is the simulator's at airline scale (10 million events a day), so one
//! batch covers about a minute and a compacted hour holds `--events` events. Peak
//! heap is measured by a counting allocator around `ArchiveHandler::process` on the
//! in-memory ports: what the handler holds beyond its input (the decoded events,
//! one file's Arrow arrays and bytes), with the files it wrote kept in the store
//! and counted separately.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{TimeZone, Utc};
use flyhigh_core::archive::{DataFile, ParquetOptions};
use flyhigh_core::memory::{MemoryArchiveCheckpoints, MemoryDeadLetters, MemoryObjectStore};
use flyhigh_core::ports::ObjectStore;
use flyhigh_handlers::{ArchiveHandler, Compactor};
use flyhigh_schemas::Envelope;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BATCH: usize = 10_000;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = flyhigh_benches::arg(&args, "--events", 400_000);
    let events: Vec<Envelope> = flyhigh_benches::records::dense_events(n.max(BATCH));
    let json: Vec<Vec<u8>> = events.iter().map(Envelope::to_json).collect();
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for line in &json {
        gz.write_all(line).expect("in memory");
        gz.write_all(b"\n").expect("in memory");
    }
    let gzip_bytes = gz.finish().expect("in memory").len();

    // One 10,000-record batch through the handler, heap measured.
    let records = flyhigh_benches::records::plain(0, &events[..BATCH]);
    let input: usize = records
        .iter()
        .map(|r| r.data.len() + r.sequence_number.len())
        .sum();
    let objects = MemoryObjectStore::new();
    let (checkpoints, letters) = (MemoryArchiveCheckpoints::new(), MemoryDeadLetters::new());
    let handler = ArchiveHandler::new(&objects, &checkpoints, &letters);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let outcome = handler.process(&records).await;
    assert_eq!(outcome.first_failed, None, "{:?}", outcome.error);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let stats = handler.stats();
    let written = stats.bytes as usize;

    // The whole sample archived in batches, then compacted.
    let all = flyhigh_benches::records::plain(0, &events);
    let archive = MemoryObjectStore::new();
    let (checkpoints, letters) = (MemoryArchiveCheckpoints::new(), MemoryDeadLetters::new());
    let handler = ArchiveHandler::new(&archive, &checkpoints, &letters);
    for batch in all.chunks(BATCH) {
        assert_eq!(handler.process(batch).await.first_failed, None);
    }
    let batch_files = data_files(&archive).await;
    let report = Compactor::new(&archive)
        .with_options(ParquetOptions::default())
        .compact_closed(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap())
        .await
        .expect("compacts");
    let compacted = data_files(&archive).await;

    let per = |bytes: usize, count: usize| bytes as f64 / count as f64;
    println!(
        "{} events at airline density ({} JSON bytes)",
        events.len(),
        json_bytes
    );
    println!(
        "  raw JSON            {:>7.1} bytes/event",
        per(json_bytes, events.len())
    );
    println!(
        "  gzip JSON (level 6) {:>7.1} bytes/event ({:.3}x raw)",
        per(gzip_bytes, events.len()),
        gzip_bytes as f64 / json_bytes as f64
    );
    println!(
        "  Parquet batch files {:>7.1} bytes/event ({:.3}x raw, {:.3}x gzip; {} files of 10,000-record batches)",
        per(batch_files.1, events.len()),
        batch_files.1 as f64 / json_bytes as f64,
        batch_files.1 as f64 / gzip_bytes as f64,
        batch_files.0
    );
    println!(
        "  Parquet compacted   {:>7.1} bytes/event ({:.3}x raw, {:.3}x gzip; {} files, {} partitions)",
        per(compacted.1, events.len()),
        compacted.1 as f64 / json_bytes as f64,
        compacted.1 as f64 / gzip_bytes as f64,
        compacted.0,
        report.compacted.len()
    );
    println!(
        "handler on one batch of {BATCH} records ({:.2} MiB of record data):",
        mib(input)
    );
    println!(
        "  peak heap above its input {:>6.2} MiB; files written {:>5.2} MiB ({} files, {} rows)",
        mib(peak),
        mib(written),
        stats.files,
        stats.rows
    );
}

/// Data files visible in a store, and their bytes.
async fn data_files(store: &MemoryObjectStore) -> (usize, usize) {
    let listed = store.list("").await.expect("in memory");
    let files: Vec<_> = listed
        .iter()
        .filter(|o| DataFile::parse(&o.key).is_some())
        .collect();
    (files.len(), files.iter().map(|o| o.size as usize).sum())
}
