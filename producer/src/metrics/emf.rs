//! CloudWatch Embedded Metric Format (EMF): [`ProducerMetrics`] snapshots as JSON
//! lines that CloudWatch Logs turns into metrics, with no API call and no agent
//! protocol: print them to stdout on Lambda, or on ECS with the `awslogs` driver,
//! or anywhere the CloudWatch agent ships the log.
//!
//! Pure: [`EmfEmitter::documents`] renders, the caller prints. [`METRICS`] is the one
//! list of metric names, units and dimensions; `docs/producer.md` documents each
//! row and a test keeps the two equal.
//!
//! Counters are emitted as the change since the previous call, because CloudWatch
//! sums datapoints: a total since start would make `Sum` meaningless and break
//! every "> 0" alarm after the first event. Gauges are emitted as they are.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value, json};

use super::{ProducerMetrics, ShardMetrics};

/// The most metrics one EMF document may declare (a CloudWatch limit).
pub const MAX_METRICS_PER_DOCUMENT: usize = 100;

/// The dimension set of the stream-level metrics.
pub const STREAM_DIMENSIONS: &[&str] = &["StreamName"];

/// The dimension set of the per-shard metrics.
pub const SHARD_DIMENSIONS: &[&str] = &["StreamName", "ShardId"];

/// An EMF unit (a subset of the CloudWatch units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// `Count`
    Count,
    /// `Bytes`
    Bytes,
    /// `Milliseconds`
    Milliseconds,
    /// `Percent` (0 to 100)
    Percent,
    /// `Count/Second`
    CountPerSecond,
    /// `Bytes/Second`
    BytesPerSecond,
    /// `None`: a plain ratio.
    None,
}

impl Unit {
    /// The unit as CloudWatch spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::Percent => "Percent",
            Unit::CountPerSecond => "Count/Second",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::None => "None",
        }
    }
}

/// How a metric's value relates to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A total in the snapshot, emitted as its change since the previous call.
    Counter,
    /// A current value, emitted as it is.
    Gauge,
}

/// One row of [`METRICS`].
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The CloudWatch metric name, PascalCase. Stable: dashboards and alarms name it.
    pub name: &'static str,
    /// The CloudWatch unit.
    pub unit: Unit,
    value: Source,
}

impl Metric {
    /// Whether it is emitted as a change or as it is.
    pub fn kind(&self) -> Kind {
        match self.value {
            Source::Counter(_) | Source::ShardCounter(_) => Kind::Counter,
            Source::Gauge(_) | Source::Interval(_) | Source::ShardGauge(_) => Kind::Gauge,
        }
    }

    /// Its dimension set: [`STREAM_DIMENSIONS`] or [`SHARD_DIMENSIONS`].
    pub fn dimensions(&self) -> &'static [&'static str] {
        match self.value {
            Source::Counter(_) | Source::Gauge(_) | Source::Interval(_) => STREAM_DIMENSIONS,
            Source::ShardCounter(_) | Source::ShardGauge(_) => SHARD_DIMENSIONS,
        }
    }
}

/// Where a metric's value comes from. A value that is not finite (an unlimited
/// rate, a ratio of nothing) is left out of the document.
#[derive(Debug, Clone, Copy)]
enum Source {
    Counter(fn(&ProducerMetrics) -> u64),
    Gauge(fn(&ProducerMetrics) -> f64),
    /// A gauge over the interval since the previous call: `(now, before)`.
    Interval(fn(&ProducerMetrics, &ProducerMetrics) -> f64),
    ShardCounter(fn(&ShardMetrics) -> u64),
    ShardGauge(fn(&ShardMetrics) -> f64),
}

const fn metric(name: &'static str, unit: Unit, value: Source) -> Metric {
    Metric { name, unit, value }
}

/// Every metric the emitter writes: the stream's (dimension `StreamName`), then each
/// shard's (dimensions `StreamName`, `ShardId`). A name may appear at both levels
/// when it means the same thing there (`Throttles`), as Kinesis's own metrics do.
pub const METRICS: &[Metric] = &[
    // Stream counters.
    metric(
        "UserRecordsAccepted",
        Unit::Count,
        Source::Counter(|m| m.user_records_accepted),
    ),
    metric(
        "UserRecordsRejected",
        Unit::Count,
        Source::Counter(|m| m.user_records_rejected),
    ),
    metric(
        "UserRecordsWritten",
        Unit::Count,
        Source::Counter(|m| m.user_records_written),
    ),
    metric(
        "DeadLetters",
        Unit::Count,
        Source::Counter(|m| m.user_records_dead_lettered),
    ),
    metric(
        "KinesisRecordsWritten",
        Unit::Count,
        Source::Counter(|m| m.kinesis_records_written),
    ),
    metric("Requests", Unit::Count, Source::Counter(|m| m.requests)),
    metric(
        "RequestErrors",
        Unit::Count,
        Source::Counter(|m| m.request_errors),
    ),
    metric("Retries", Unit::Count, Source::Counter(|m| m.retries)),
    metric("Throttles", Unit::Count, Source::Counter(|m| m.throttles)),
    metric(
        "ShardMapRefreshes",
        Unit::Count,
        Source::Counter(|m| m.shard_map_refreshes),
    ),
    metric(
        "DeadLetterWrites",
        Unit::Count,
        Source::Counter(|m| m.dead_letter_writes),
    ),
    metric(
        "DeadLetterFailures",
        Unit::Count,
        Source::Counter(|m| m.dead_letter_failures),
    ),
    // Stream gauges.
    metric(
        "BufferedBytes",
        Unit::Bytes,
        Source::Gauge(|m| m.buffered_bytes as f64),
    ),
    metric(
        "BufferedRecords",
        Unit::Count,
        Source::Gauge(|m| m.buffered_records as f64),
    ),
    metric(
        "BufferUtilization",
        Unit::Percent,
        Source::Gauge(buffer_utilization),
    ),
    metric(
        "OldestBufferedAgeMs",
        Unit::Milliseconds,
        Source::Gauge(|m| millis(m.oldest_buffered_age)),
    ),
    metric(
        "DeadLetterQueueBytes",
        Unit::Bytes,
        Source::Gauge(|m| m.dead_letter_queue_bytes as f64),
    ),
    metric(
        "UserRecordsPerKinesisRecord",
        Unit::None,
        Source::Interval(|now, before| {
            interval_ratio(
                delta(now.user_records_written, before.user_records_written),
                delta(now.kinesis_records_written, before.kinesis_records_written),
            )
        }),
    ),
    metric(
        "KinesisRecordsPerRequest",
        Unit::None,
        Source::Interval(|now, before| {
            interval_ratio(
                delta(now.kinesis_records_written, before.kinesis_records_written)
                    + delta(now.retries, before.retries),
                delta(now.requests, before.requests),
            )
        }),
    ),
    metric(
        "PutLatencyP50",
        Unit::Milliseconds,
        Source::Gauge(|m| millis(m.put_latency_p50)),
    ),
    metric(
        "PutLatencyP99",
        Unit::Milliseconds,
        Source::Gauge(|m| millis(m.put_latency_p99)),
    ),
    metric(
        "PutLatencyMax",
        Unit::Milliseconds,
        Source::Gauge(|m| millis(m.put_latency_max)),
    ),
    // Shard counters.
    metric(
        "UserRecordsWritten",
        Unit::Count,
        Source::ShardCounter(|s| s.user_records_written),
    ),
    metric(
        "BytesWritten",
        Unit::Bytes,
        Source::ShardCounter(|s| s.bytes_written),
    ),
    metric(
        "Throttles",
        Unit::Count,
        Source::ShardCounter(|s| s.throttles),
    ),
    // Shard gauges.
    metric(
        "UserRecordsPerSecond",
        Unit::CountPerSecond,
        Source::ShardGauge(|s| s.user_records_per_sec),
    ),
    metric(
        "KinesisRecordsPerSecond",
        Unit::CountPerSecond,
        Source::ShardGauge(|s| s.kinesis_records_per_sec),
    ),
    metric(
        "BytesPerSecond",
        Unit::BytesPerSecond,
        Source::ShardGauge(|s| s.bytes_per_sec),
    ),
    metric(
        "RateShare",
        Unit::None,
        Source::ShardGauge(|s| s.rate_share),
    ),
    metric(
        "AllowedRecordsPerSecond",
        Unit::CountPerSecond,
        Source::ShardGauge(|s| s.allowed_records_per_sec),
    ),
    metric(
        "AllowedBytesPerSecond",
        Unit::BytesPerSecond,
        Source::ShardGauge(|s| s.allowed_bytes_per_sec),
    ),
    metric(
        "BufferedBytes",
        Unit::Bytes,
        Source::ShardGauge(|s| s.buffered_bytes as f64),
    ),
    metric(
        "BufferedRecords",
        Unit::Count,
        Source::ShardGauge(|s| s.buffered_records as f64),
    ),
];

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// NaN (left out) without a budget: a snapshot built by hand, not a producer's.
fn buffer_utilization(m: &ProducerMetrics) -> f64 {
    if m.budget_bytes == 0 {
        f64::NAN
    } else {
        m.buffered_bytes as f64 / m.budget_bytes as f64 * 100.0
    }
}

/// NaN (left out) for an interval with nothing to divide by: 0 would read as "no
/// aggregation", which is not what an idle interval means.
fn interval_ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// The change of a total since the previous call. A total that went down was reset
/// (a new producer behind the same emitter), so all of it is new.
fn delta(now: u64, before: u64) -> u64 {
    now.checked_sub(before).unwrap_or(now)
}

/// Renders [`ProducerMetrics`] snapshots as EMF documents, remembering the previous
/// snapshot so that counters go out as changes.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use flyhigh_producer::ProducerMetrics;
/// use flyhigh_producer::metrics::{EmfEmitter, ShardMetrics};
///
/// let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
/// let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 15, 0).unwrap();
/// let mut m = ProducerMetrics {
///     user_records_written: 300,
///     shards: vec![ShardMetrics { shard_id: "shardId-000000000000".into(), ..Default::default() }],
///     ..Default::default()
/// };
/// // In production: `for line in emf.documents(&producer.metrics(), Utc::now()) { println!("{line}") }`.
/// let lines = emf.documents(&m, at);
/// assert_eq!(lines.len(), 2); // the stream's, then one per shard
/// let stream: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
/// assert_eq!(stream["StreamName"], "bookings");
/// assert_eq!(stream["UserRecordsWritten"], 300);
/// assert_eq!(stream["_aws"]["Timestamp"], at.timestamp_millis());
///
/// m.user_records_written = 350;
/// let stream: serde_json::Value = serde_json::from_str(&emf.documents(&m, at)[0]).unwrap();
/// assert_eq!(stream["UserRecordsWritten"], 50); // the change since the last call
/// ```
#[derive(Debug, Clone)]
pub struct EmfEmitter {
    namespace: String,
    stream_name: String,
    previous: ProducerMetrics,
}

impl EmfEmitter {
    /// An emitter for the CloudWatch `namespace` (e.g. `FlyHigh/Producer`), labelling
    /// every metric with `StreamName` = `stream_name`. The first call to
    /// [`documents`](Self::documents) emits counters as totals since start.
    pub fn new(namespace: impl Into<String>, stream_name: impl Into<String>) -> EmfEmitter {
        EmfEmitter {
            namespace: namespace.into(),
            stream_name: stream_name.into(),
            previous: ProducerMetrics::default(),
        }
    }

    /// One JSON line per EMF document, without a trailing newline: the stream's
    /// document first, then one per shard (each carries its own `ShardId`), in the
    /// snapshot's order. A document declares at most [`MAX_METRICS_PER_DOCUMENT`]
    /// metrics; more would be split across documents with the same dimensions.
    /// Counters are the change since the previous call (per shard, matched by shard
    /// id; a shard not seen before counts from zero); values that are not finite are
    /// left out. `timestamp` is the snapshot's time.
    pub fn documents(
        &mut self,
        metrics: &ProducerMetrics,
        timestamp: DateTime<Utc>,
    ) -> Vec<String> {
        let timestamp = timestamp.timestamp_millis();
        let before = &self.previous;
        let stream_values: Vec<_> = METRICS
            .iter()
            .filter_map(|m| {
                let value = match m.value {
                    Source::Counter(f) => Some(delta(f(metrics), f(before)).into()),
                    Source::Gauge(f) => Number::from_f64(f(metrics)),
                    Source::Interval(f) => Number::from_f64(f(metrics, before)),
                    Source::ShardCounter(_) | Source::ShardGauge(_) => None,
                }?;
                Some((m.name, m.unit, value))
            })
            .collect();
        let stream_dimensions = [("StreamName", self.stream_name.as_str())];
        let mut lines = render(
            &self.namespace,
            &stream_dimensions,
            &stream_values,
            timestamp,
        );

        let shards_before: HashMap<&str, &ShardMetrics> = before
            .shards
            .iter()
            .map(|s| (s.shard_id.as_str(), s))
            .collect();
        let unseen = ShardMetrics::default();
        for shard in &metrics.shards {
            let shard_before = shards_before
                .get(shard.shard_id.as_str())
                .copied()
                .unwrap_or(&unseen);
            let values: Vec<_> = METRICS
                .iter()
                .filter_map(|m| {
                    let value = match m.value {
                        Source::ShardCounter(f) => Some(delta(f(shard), f(shard_before)).into()),
                        Source::ShardGauge(f) => Number::from_f64(f(shard)),
                        Source::Counter(_) | Source::Gauge(_) | Source::Interval(_) => None,
                    }?;
                    Some((m.name, m.unit, value))
                })
                .collect();
            let dimensions = [
                ("StreamName", self.stream_name.as_str()),
                ("ShardId", shard.shard_id.as_str()),
            ];
            lines.extend(render(&self.namespace, &dimensions, &values, timestamp));
        }
        self.previous = metrics.clone();
        lines
    }
}

/// The documents for one dimension set: the values in chunks of at most
/// [`MAX_METRICS_PER_DOCUMENT`], each chunk a complete document.
fn render(
    namespace: &str,
    dimensions: &[(&str, &str)],
    values: &[(&str, Unit, Number)],
    timestamp: i64,
) -> Vec<String> {
    values
        .chunks(MAX_METRICS_PER_DOCUMENT)
        .map(|chunk| {
            let directive: Vec<Value> = chunk
                .iter()
                .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
                .collect();
            let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
            let mut root = Map::new();
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [names],
                        "Metrics": directive,
                    }],
                }),
            );
            for (name, value) in dimensions {
                root.insert((*name).into(), Value::from(*value));
            }
            for (name, _, value) in chunk {
                root.insert((*name).into(), Value::Number(value.clone()));
            }
            Value::Object(root).to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;

    const UNITS: &[&str] = &[
        "Count",
        "Bytes",
        "Milliseconds",
        "Percent",
        "Count/Second",
        "Bytes/Second",
        "None",
    ];

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 15, 0).unwrap()
    }

    fn shard(id: &str, n: u64) -> ShardMetrics {
        ShardMetrics {
            shard_id: id.into(),
            user_records_per_sec: 10.0 * n as f64,
            kinesis_records_per_sec: n as f64,
            bytes_per_sec: 1000.0 * n as f64,
            user_records_written: 100 * n,
            bytes_written: 10_000 * n,
            throttles: n,
            rate_share: 0.5,
            allowed_records_per_sec: 500.0,
            allowed_bytes_per_sec: 524_288.0,
            buffered_bytes: 2048,
            buffered_records: 4,
        }
    }

    fn snapshot(shards: Vec<ShardMetrics>) -> ProducerMetrics {
        ProducerMetrics {
            user_records_accepted: 1010,
            user_records_rejected: 3,
            user_records_written: 1000,
            user_records_dead_lettered: 2,
            kinesis_records_written: 10,
            requests: 4,
            request_errors: 1,
            retries: 2,
            throttles: 5,
            shard_map_refreshes: 1,
            dead_letter_failures: 0,
            buffered_bytes: 8 << 20,
            buffered_records: 8,
            budget_bytes: 32 << 20,
            put_latency_count: 4,
            put_latency_mean: Duration::from_millis(20),
            put_latency_p50: Duration::from_millis(16),
            put_latency_p99: Duration::from_micros(65_536),
            put_latency_max: Duration::from_millis(70),
            oldest_buffered_age: Duration::from_millis(1500),
            dead_letter_queue_bytes: 300,
            dead_letter_writes: 1,
            shards,
        }
    }

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The EMF rules a document must follow, checked on one parsed document.
    fn assert_valid_emf(doc: &Value, dimensions: &[&str]) {
        let directives = doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .expect("directives");
        assert!(doc["_aws"]["Timestamp"].is_i64(), "{doc}");
        assert_eq!(directives.len(), 1, "{doc}");
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], "FlyHigh/Producer");
        assert_eq!(directive["Dimensions"], json!([dimensions]));
        for dimension in dimensions {
            assert!(doc[dimension].is_string(), "{dimension} in {doc}");
        }
        let metrics = directive["Metrics"].as_array().expect("metrics");
        assert!(
            !metrics.is_empty() && metrics.len() <= MAX_METRICS_PER_DOCUMENT,
            "{doc}"
        );
        for m in metrics {
            let name = m["Name"].as_str().expect("name");
            assert!(UNITS.contains(&m["Unit"].as_str().expect("unit")), "{m}");
            assert!(
                doc[name].is_number(),
                "{name} has no numeric value in {doc}"
            );
        }
    }

    fn declared(doc: &Value) -> BTreeSet<String> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_document_is_valid_emf_with_the_stream_first_then_each_shard() {
        let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
        let m = snapshot(vec![
            shard("(unmapped)", 1),
            shard("shardId-000000000001", 2),
        ]);
        let docs = parse(&emf.documents(&m, at()));
        assert_eq!(docs.len(), 3);
        assert_valid_emf(&docs[0], STREAM_DIMENSIONS);
        assert_eq!(docs[0]["StreamName"], "bookings");
        assert_eq!(docs[0]["_aws"]["Timestamp"], at().timestamp_millis());
        for (doc, id) in docs[1..].iter().zip(["(unmapped)", "shardId-000000000001"]) {
            assert_valid_emf(doc, SHARD_DIMENSIONS);
            assert_eq!(doc["StreamName"], "bookings");
            assert_eq!(doc["ShardId"], id);
        }
        // Every metric of the table is there when every value is finite.
        let stream: BTreeSet<_> = METRICS
            .iter()
            .filter(|m| m.dimensions() == STREAM_DIMENSIONS)
            .map(|m| m.name.to_owned())
            .collect();
        assert_eq!(declared(&docs[0]), stream);
        let shard_names: BTreeSet<_> = METRICS
            .iter()
            .filter(|m| m.dimensions() == SHARD_DIMENSIONS)
            .map(|m| m.name.to_owned())
            .collect();
        assert_eq!(declared(&docs[2]), shard_names);
        // Gauges as they are, in their units.
        assert_eq!(docs[0]["BufferUtilization"], 25.0);
        assert_eq!(docs[0]["OldestBufferedAgeMs"], 1500.0);
        assert_eq!(docs[0]["PutLatencyP99"], 65.536);
        assert_eq!(docs[0]["UserRecordsPerKinesisRecord"], 100.0);
        assert_eq!(docs[0]["KinesisRecordsPerRequest"], 3.0);
        assert_eq!(docs[2]["RateShare"], 0.5);
        assert_eq!(docs[2]["BytesPerSecond"], 2000.0);
    }

    #[test]
    fn counters_are_changes_since_the_previous_call_and_gauges_are_as_they_are() {
        let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
        let first = snapshot(vec![shard("shardId-000000000000", 1)]);
        let docs = parse(&emf.documents(&first, at()));
        // The first call: totals since start.
        assert_eq!(docs[0]["UserRecordsWritten"], 1000);
        assert_eq!(docs[0]["DeadLetters"], 2);
        assert_eq!(docs[1]["UserRecordsWritten"], 100);

        let mut second = first.clone();
        second.user_records_written += 500;
        second.kinesis_records_written += 2;
        second.user_records_dead_lettered += 1;
        second.requests += 1;
        second.buffered_bytes = 1 << 20;
        second.shards[0].user_records_written += 40;
        second.shards[0].throttles += 3;
        second.shards[0].buffered_bytes = 10;
        let docs = parse(&emf.documents(&second, at()));
        assert_eq!(docs[0]["UserRecordsWritten"], 500);
        assert_eq!(docs[0]["DeadLetters"], 1);
        assert_eq!(docs[0]["Requests"], 1);
        assert_eq!(docs[0]["Throttles"], 0);
        assert_eq!(docs[0]["UserRecordsAccepted"], 0);
        assert_eq!(
            docs[0]["UserRecordsPerKinesisRecord"], 250.0,
            "over the interval"
        );
        assert_eq!(docs[0]["BufferedBytes"], (1u64 << 20) as f64);
        assert_eq!(docs[1]["UserRecordsWritten"], 40);
        assert_eq!(docs[1]["Throttles"], 3);
        assert_eq!(docs[1]["BytesWritten"], 0);
        assert_eq!(docs[1]["BufferedBytes"], 10.0);
    }

    #[test]
    fn a_shard_not_seen_before_counts_from_zero() {
        let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
        emf.documents(&snapshot(vec![shard("(unmapped)", 1)]), at());
        let docs = parse(&emf.documents(&snapshot(vec![shard("shardId-000000000000", 3)]), at()));
        assert_eq!(docs[1]["ShardId"], "shardId-000000000000");
        assert_eq!(docs[1]["UserRecordsWritten"], 300);
        assert_eq!(docs[1]["Throttles"], 3);
    }

    #[test]
    fn a_total_that_went_down_was_reset_and_counts_whole() {
        let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
        emf.documents(&snapshot(vec![]), at());
        let restarted = ProducerMetrics {
            user_records_written: 7,
            ..Default::default()
        };
        let docs = parse(&emf.documents(&restarted, at()));
        assert_eq!(docs[0]["UserRecordsWritten"], 7);
    }

    #[test]
    fn a_500_shard_snapshot_yields_501_documents_within_the_limit() {
        let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
        let shards = (0..500)
            .map(|i| shard(&format!("shardId-{i:012}"), i))
            .collect();
        let docs = parse(&emf.documents(&snapshot(shards), at()));
        assert_eq!(docs.len(), 501);
        assert_valid_emf(&docs[0], STREAM_DIMENSIONS);
        for (i, doc) in docs[1..].iter().enumerate() {
            assert_valid_emf(doc, SHARD_DIMENSIONS);
            assert_eq!(doc["ShardId"], format!("shardId-{i:012}"));
        }
    }

    #[test]
    fn more_metrics_than_the_limit_are_split_into_complete_documents() {
        let names: Vec<String> = (0..250).map(|i| format!("Metric{i}")).collect();
        let values: Vec<_> = names
            .iter()
            .map(|n| (n.as_str(), Unit::Count, Number::from(1)))
            .collect();
        let docs = parse(&render(
            "FlyHigh/Producer",
            &[("StreamName", "bookings")],
            &values,
            0,
        ));
        assert_eq!(docs.len(), 3);
        let mut all = BTreeSet::new();
        for doc in &docs {
            assert_valid_emf(doc, STREAM_DIMENSIONS);
            all.extend(declared(doc));
        }
        assert_eq!(all.len(), 250);
    }

    #[test]
    fn values_that_are_not_finite_are_left_out() {
        let mut emf = EmfEmitter::new("FlyHigh/Producer", "bookings");
        let unlimited = ShardMetrics {
            allowed_records_per_sec: f64::INFINITY,
            allowed_bytes_per_sec: f64::INFINITY,
            ..shard("shardId-000000000000", 1)
        };
        // No budget and nothing written: utilisation and the ratios are undefined.
        let m = ProducerMetrics {
            shards: vec![unlimited],
            ..Default::default()
        };
        let lines = emf.documents(&m, at());
        let docs = parse(&lines);
        for name in [
            "BufferUtilization",
            "UserRecordsPerKinesisRecord",
            "KinesisRecordsPerRequest",
        ] {
            assert!(!declared(&docs[0]).contains(name), "{name}");
            assert!(docs[0].get(name).is_none(), "{name}");
        }
        for name in ["AllowedRecordsPerSecond", "AllowedBytesPerSecond"] {
            assert!(!declared(&docs[1]).contains(name), "{name}");
            assert!(docs[1].get(name).is_none(), "{name}");
        }
        assert_eq!(docs[1]["RateShare"], 0.5);
        assert_valid_emf(&docs[0], STREAM_DIMENSIONS);
        assert_valid_emf(&docs[1], SHARD_DIMENSIONS);
        assert!(lines.iter().all(|l| !l.contains("null")), "{lines:?}");
    }

    #[test]
    fn metric_names_are_pascal_case_and_unique_per_dimension_set() {
        let mut seen = BTreeSet::new();
        for m in METRICS {
            assert!(
                m.name.starts_with(|c: char| c.is_ascii_uppercase()),
                "{}",
                m.name
            );
            assert!(
                m.name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                m.name
            );
            assert!(
                !SHARD_DIMENSIONS.contains(&m.name),
                "{} is a dimension",
                m.name
            );
            assert!(seen.insert((m.name, m.dimensions())), "{} twice", m.name);
        }
        assert!(
            METRICS
                .iter()
                .filter(|m| m.dimensions() == STREAM_DIMENSIONS)
                .count()
                <= MAX_METRICS_PER_DOCUMENT
        );
    }

    /// The operator's page has one table row per metric: name, unit, dimensions and
    /// kind as the table here has them.
    #[test]
    fn the_operators_page_lists_exactly_the_metric_table() {
        let page = include_str!("../../../docs/producer.md");
        let documented: Vec<(String, String, String, String)> = page
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                let cell = |i: usize| cells[i].trim_matches('`').to_owned();
                (cell(0), cell(1), cell(2), cell(3))
            })
            .collect();
        let expected: Vec<(String, String, String, String)> = METRICS
            .iter()
            .map(|m| {
                let kind = match m.kind() {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                };
                (
                    m.name.into(),
                    m.unit.as_str().into(),
                    m.dimensions().join(", "),
                    kind.into(),
                )
            })
            .collect();
        assert_eq!(
            documented, expected,
            "docs/producer.md's table, in METRICS order"
        );
    }
}
