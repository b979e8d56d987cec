//! The archive read back by independent readers: pyarrow and DuckDB from PyPI
//! (`scripts/archive_readers.py`, in the test virtualenv), over a local archive and
//! over objects in moto's S3.
//!
//! A simulated day goes through the real `ArchiveHandler` in batches, every batch
//! delivered twice and then again from the middle (a retry from a checkpoint), with
//! records the producer wrote twice (same event, new sequence number); the hours are
//! compacted; then the readers must see the documented column types, every event
//! exactly once, and every example query of `docs/analytics.md` must give what the
//! simulator's events give.
//!
//! Needs `FLYHIGH_PYTHON` (set by `scripts/test.sh`); the S3 test also
//! `FLYHIGH_MOTO_URL`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use flyhigh_aws::s3::S3ObjectStore;
use flyhigh_core::KinesisRecord;
use flyhigh_core::memory::{MemoryArchiveCheckpoints, MemoryDeadLetters};
use flyhigh_core::ports::ObjectStore;
use flyhigh_embedded::{LocalObjectStore, SqliteArchiveCheckpoints};
use flyhigh_handlers::{ArchiveHandler, Compactor};
use flyhigh_schemas::archive::{ArchiveTable, ColumnKind};
use flyhigh_schemas::{Envelope, Payload};
use flyhigh_simulator::{SimConfig, Simulator};
use rust_decimal::Decimal;
use serde_json::Value;

const SHARDS: u128 = 3;

fn python() -> String {
    std::env::var("FLYHIGH_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FLYHIGH_PYTHON is not set: run the tests through scripts/test.sh, which installs \
             pyarrow and duckdb into .venv and exports it (or set it to a python with both)"
        )
    })
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

struct Day {
    shards: Vec<Vec<KinesisRecord>>,
    events: Vec<Envelope>,
    surge_route: Option<String>,
}

/// A simulated day as Kinesis records per shard, with every 29th record written
/// again by the producer further on (same event, new sequence number).
fn day(seed: u64, n: usize) -> Day {
    let mut sim = Simulator::new(SimConfig::new(seed, n)).unwrap();
    let events: Vec<Envelope> = sim.by_ref().collect();
    let surge_route = sim.stats().surge_route.clone();
    let mut shards: Vec<Vec<KinesisRecord>> = (0..SHARDS).map(|_| Vec::new()).collect();
    let push = |shards: &mut Vec<Vec<KinesisRecord>>, e: &Envelope| {
        let key = e.partition_key();
        let shard = (flyhigh_schemas::hash_key(&key) / (u128::MAX / SHARDS + 1)) as usize;
        let seq = shards[shard].len() + 1;
        shards[shard].push(KinesisRecord {
            shard_id: format!("shardId-{shard:012}"),
            sequence_number: format!("49590338271490256608559692538361571095921575989136{seq:06}"),
            partition_key: key,
            approximate_arrival: Some(e.occurred_at),
            data: e.to_json(),
        });
    };
    for (i, e) in events.iter().enumerate() {
        push(&mut shards, e);
        if i % 29 == 0 {
            push(&mut shards, e);
        }
    }
    Day {
        shards,
        events,
        surge_route,
    }
}

/// Archives the day: batches of 200 delivered twice, then each batch's second half
/// once more; then every hour compacted.
async fn archive(
    day: &Day,
    objects: &impl ObjectStore,
    checkpoints: &impl flyhigh_core::ports::ArchiveCheckpoints,
) {
    let letters = MemoryDeadLetters::new();
    let handler = ArchiveHandler::new(objects, checkpoints, &letters);
    for shard in &day.shards {
        for batch in shard.chunks(200) {
            for records in [batch, batch, &batch[batch.len() / 2..]] {
                let outcome = handler.process(records).await;
                assert_eq!(outcome.first_failed, None, "{:?}", outcome.error);
            }
        }
    }
    assert!(letters.letters().is_empty());
    let after = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
    let report = Compactor::new(objects)
        .with_target_bytes(256 * 1024)
        .compact_closed(after)
        .await
        .unwrap();
    assert!(
        report.duplicates_dropped() > 0,
        "the producer's duplicates were in the batch files"
    );
}

fn read(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(root().join("scripts/archive_readers.py"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs python");
    assert!(
        out.status.success(),
        "archive_readers.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from archive_readers.py")
}

/// The pyarrow type each documented column kind must read back as.
fn pyarrow_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Id => "string",
        ColumnKind::Code => "dictionary<values=string, indices=int32, ordered=0>",
        ColumnKind::Timestamp => "timestamp[ms, tz=UTC]",
        ColumnKind::Date => "date32[day]",
        ColumnKind::Int => "int32",
        ColumnKind::BigInt => "int64",
        ColumnKind::Money => "decimal128(12, 2)",
    }
}

/// Types, rows and event ids as the readers saw them, against the events.
fn check_tables(seen: &Value, events: &[Envelope]) {
    for table in ArchiveTable::ALL {
        let t = &seen["tables"][table.name()];
        let expected: Vec<Value> = table
            .columns()
            .iter()
            .map(|c| serde_json::json!([c.name, pyarrow_type(c.kind), c.nullable]))
            .collect();
        assert_eq!(
            t["schema"].as_array().unwrap(),
            &expected,
            "{table}: column types"
        );
        let mut ids: Vec<String> = events
            .iter()
            .filter(|e| ArchiveTable::of(e.event_type()) == table)
            .map(|e| e.event_id.to_string())
            .collect();
        ids.sort();
        let read: Vec<String> = t["event_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(read.len(), ids.len(), "{table}: rows equal events archived");
        assert_eq!(read, ids, "{table}: each event once");
        assert_eq!(t["distinct_event_ids"], t["rows"]);
    }
}

fn route(origin: &str, destination: &str) -> String {
    format!("{origin}-{destination}")
}

/// The first event of each booking (by time, then event id), as the queries take it.
fn first_by_booking<'a, T>(
    events: impl Iterator<Item = (&'a Envelope, &'a T)>,
    id: impl Fn(&T) -> &str,
) -> HashMap<String, (&'a Envelope, &'a T)>
where
    T: 'a,
{
    let mut out: HashMap<String, (&Envelope, &T)> = HashMap::new();
    for (e, x) in events {
        let key = id(x).to_string();
        let better = match out.get(&key) {
            None => true,
            Some((f, _)) => {
                (e.occurred_at, e.event_id.to_string()) < (f.occurred_at, f.event_id.to_string())
            }
        };
        if better {
            out.insert(key, (e, x));
        }
    }
    out
}

fn rows(seen: &Value, query: &str) -> Vec<Vec<Value>> {
    let q = &seen["queries"][query];
    assert!(
        q.is_object(),
        "query {query} did not run (is it still in docs/analytics.md?)"
    );
    q["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().clone())
        .collect()
}

fn money(d: Decimal) -> String {
    format!("{:.2}", d)
}

fn hour_start(t: DateTime<Utc>) -> String {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

/// Every documented query against the same aggregate computed from the events.
fn check_queries(seen: &Value, day: &Day) {
    let events = &day.events;
    let bookings: Vec<(&Envelope, &flyhigh_schemas::Booking)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Booking(b) => Some((e, b)),
            _ => None,
        })
        .collect();
    let cancellations: Vec<(&Envelope, &flyhigh_schemas::Cancellation)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Cancellation(c) => Some((e, c)),
            _ => None,
        })
        .collect();
    let first_booking = first_by_booking(bookings.iter().map(|(e, b)| (*e, *b)), |b| &b.booking_id);

    // Bookings and seats per route per day.
    let mut per_day: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (e, b) in first_booking.values() {
        let entry = per_day
            .entry((
                route(&b.origin, &b.destination),
                e.occurred_at.date_naive().to_string(),
            ))
            .or_default();
        entry.0 += 1;
        entry.1 += u64::from(b.seats);
    }
    let expected: Vec<Vec<Value>> = per_day
        .iter()
        .map(|((r, d), (n, s))| vec![r.clone().into(), d.clone().into(), (*n).into(), (*s).into()])
        .collect();
    assert_eq!(rows(seen, "bookings_per_route_per_day"), expected);

    // Conversion per route.
    let mut searches: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        if let Payload::Search(s) = &e.payload {
            *searches
                .entry(route(&s.origin, &s.destination))
                .or_default() += 1;
        }
    }
    let mut booked: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (_, b) in &bookings {
        booked
            .entry(route(&b.origin, &b.destination))
            .or_default()
            .insert(&b.booking_id);
    }
    let conversion = rows(seen, "conversion_per_route");
    assert_eq!(conversion.len(), searches.len());
    for row in &conversion {
        let r = row[0].as_str().unwrap();
        let b = booked.get(r).map_or(0, BTreeSet::len) as u64;
        assert_eq!(row[1], searches[r], "{r}: searches");
        assert_eq!(row[2], b, "{r}: bookings");
        let rate = b as f64 / searches[r] as f64;
        assert!(
            (row[3].as_f64().unwrap() - rate).abs() < 6e-5,
            "{r}: conversion {row:?} vs {rate}"
        );
    }

    // Cancellation rate per route.
    let cancelled: BTreeSet<&str> = cancellations
        .iter()
        .map(|(_, c)| c.booking_id.as_str())
        .collect();
    let rates = rows(seen, "cancellation_rate_per_route");
    assert_eq!(rates.len(), booked.len());
    for row in &rates {
        let r = row[0].as_str().unwrap();
        let ids = &booked[r];
        let n = ids.iter().filter(|id| cancelled.contains(*id)).count() as u64;
        assert_eq!(row[1], ids.len() as u64, "{r}: bookings");
        assert_eq!(row[2], n, "{r}: cancelled");
    }

    // Revenue by cabin and currency.
    let first_cancellation = first_by_booking(cancellations.iter().map(|(e, c)| (*e, *c)), |c| {
        &c.booking_id
    });
    let mut revenue: BTreeMap<(String, String), (u64, Decimal, Decimal)> = BTreeMap::new();
    for (id, (_, b)) in &first_booking {
        let entry = revenue
            .entry((b.cabin.as_str().to_string(), b.fare.currency.clone()))
            .or_insert((0, Decimal::ZERO, Decimal::ZERO));
        entry.0 += 1;
        entry.1 += b.fare.amount;
        if let Some((_, c)) = first_cancellation.get(id)
            && c.refund.currency == b.fare.currency
        {
            entry.2 += c.refund.amount;
        }
    }
    let expected: Vec<Vec<Value>> = revenue
        .iter()
        .map(|((cabin, currency), (n, gross, refunded))| {
            vec![
                cabin.clone().into(),
                currency.clone().into(),
                (*n).into(),
                money(*gross).into(),
                money(*refunded).into(),
                money(*gross - *refunded).into(),
            ]
        })
        .collect();
    assert_eq!(rows(seen, "revenue_by_cabin_and_currency"), expected);

    // Demand per route per hour against the route's hourly mean.
    let mut hourly: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for e in events {
        if let Payload::Search(s) = &e.payload {
            let entry = hourly
                .entry((route(&s.origin, &s.destination), hour_start(e.occurred_at)))
                .or_default();
            entry.0 += 1;
            entry.1 += u64::from(s.passengers);
        }
    }
    let mut means: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for ((r, _), (n, _)) in &hourly {
        let m = means.entry(r.as_str()).or_default();
        m.0 += *n as f64;
        m.1 += 1.0;
    }
    let ratio = |r: &str, n: u64| n as f64 / (means[r].0 / means[r].1);
    let max_ratio = hourly
        .iter()
        .map(|((r, _), (n, _))| ratio(r, *n))
        .fold(0.0, f64::max);
    let demand = rows(seen, "demand_per_route_per_hour");
    assert_eq!(demand.len(), 20.min(hourly.len()));
    for row in &demand {
        let key = (
            row[0].as_str().unwrap().to_string(),
            row[1].as_str().unwrap().to_string(),
        );
        let (n, passengers) = hourly[&key];
        assert_eq!(
            (row[2].as_u64(), row[3].as_u64()),
            (Some(n), Some(passengers)),
            "{key:?}"
        );
        assert!(
            (row[4].as_f64().unwrap() - ratio(&key.0, n)).abs() < 0.006,
            "{key:?}: ratio"
        );
    }
    assert!(
        (demand[0][4].as_f64().unwrap() - max_ratio).abs() < 0.006,
        "the highest ratio first"
    );
    if let Some(surge) = &day.surge_route {
        assert_eq!(
            demand[0][0],
            surge.as_str(),
            "the surge route's hours come first"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_a_local_archive_and_the_documented_queries_match_the_events() {
    let day = day(31, 12_000);
    let dir = tempfile::tempdir().unwrap();
    let objects = LocalObjectStore::open(dir.path().join("archive")).unwrap();
    let checkpoints =
        SqliteArchiveCheckpoints::open(&dir.path().join("checkpoints.sqlite")).unwrap();
    archive(&day, &objects, &checkpoints).await;
    let archive_dir = dir.path().join("archive");
    let seen = read(&["--dir", archive_dir.to_str().unwrap()]);
    check_tables(&seen, &day.events);
    check_queries(&seen, &day);
    // DuckDB sees the documented types too.
    let types: BTreeMap<String, String> = seen["duckdb_types"]["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_string(),
                c[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(types["fare_amount"], "DECIMAL(12,2)");
    assert_eq!(types["occurred_at"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types["origin"], "VARCHAR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_archive_from_s3() {
    let url = std::env::var("FLYHIGH_MOTO_URL")
        .expect("FLYHIGH_MOTO_URL is not set: run scripts/test.sh, or scripts/moto.sh start && source target/moto.env");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("flyhigh-archive-readers-{}", std::process::id());
    flyhigh_aws::s3::create_bucket(&s3, &bucket).await.unwrap();
    let day = day(32, 4_000);
    let objects = S3ObjectStore::new(s3, bucket.clone(), "archive").with_kms_key(Some(
        "arn:aws:kms:us-east-1:123456789012:key/flyhigh-test".into(),
    ));
    archive(&day, &objects, &MemoryArchiveCheckpoints::new()).await;
    let seen = read(&[
        "--s3-endpoint",
        &url,
        "--bucket",
        &bucket,
        "--prefix",
        "archive",
    ]);
    check_tables(&seen, &day.events);
    assert!(seen["tables"]["searches"]["files"].as_u64().unwrap() > 0);
}
