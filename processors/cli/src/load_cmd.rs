//! `flyhigh load`: an open-model HTTP load generator for the ingest API, with the
//! acknowledgement latency in an HDR histogram.
//!
//! Layout:
//! - the pure core: [`Plan`] (arguments checked, the schedule's arithmetic:
//!   request `k` is due at `start + k * batch / rate`), [`BodyTemplate`] (a JSON
//!   array of envelopes serialized ahead, whose `occurred_at` values are patched in
//!   place at send time), [`classify`] (a response per the ingest contract) and
//!   [`Tally`] (the fold of every request's [`Outcome`] into the [`Summary`]);
//! - the edge: [`run`] checks `GET /healthz`, starts the body generator (a blocking
//!   task feeding a bounded channel, so generation never delays the schedule and
//!   memory stays bounded), sends each request at its due time on its own task
//!   (hyper-util's pooled HTTP/1.1 client) and folds the outcomes.
//!
//! Open model: a request is sent when due, whether or not earlier ones have been
//! answered, and its latency is measured from its due time, so a stalled server shows
//! as latency rather than as a slower sender (no coordinated omission). When
//! `--max-in-flight` requests are outstanding the due request is skipped and counted.
//!
//! ```text
//! flyhigh load --url http://127.0.0.1:8080/v1/events --rate 2000 --seconds 10 \
//!     --batch 50 --summary-json load.json
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use flyhigh_schemas::Envelope;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The most events one request may carry (the contract's
/// `MAX_EVENTS_PER_REQUEST`; beyond it the server answers 413).
pub const MAX_BATCH: usize = 1000;

/// Bodies generated ahead of the schedule: enough to ride out a slow moment of the
/// generator, few enough to keep memory bounded (at most this many bodies wait).
const BODIES_AHEAD: usize = 256;

/// Error messages kept for the summary (the first ones).
const MAX_ERROR_SAMPLES: usize = 5;

/// How late the sender may run at worst and still count as having kept up: tokio's
/// timer has a millisecond resolution, so a few milliseconds is noise.
const KEPT_UP_TOLERANCE: Duration = Duration::from_millis(10);

/// Where a timestamp starts after the key in an envelope's JSON.
const OCCURRED_AT_KEY: &[u8] = br#""occurred_at":""#;

/// A timestamp as the contract writes it: `2026-12-07T22:12:49.123Z`.
const STAMP_LEN: usize = 24;

/// Arguments of `flyhigh load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The full URL to POST to, e.g. http://127.0.0.1:8080/v1/events.
    #[arg(long)]
    pub url: String,
    /// Events per second offered (open model: sent on schedule whatever the answers).
    #[arg(long)]
    pub rate: u64,
    /// How long to offer traffic; rate * seconds events are sent in all.
    #[arg(long)]
    pub seconds: u64,
    /// Events per request (a JSON array), 1 to 1000.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Simulator seed of the events.
    #[arg(long, default_value_t = flyhigh_simulator::DEFAULT_SEED)]
    pub seed: u64,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "FLYHIGH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests outstanding at most; a request due beyond that is skipped (counted).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout_seconds: u64,
}

/// Arguments that cannot make a run; each message says which flag to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("--rate must be at least 1 event per second")]
    Rate,
    #[error("--seconds must be at least 1")]
    Seconds,
    #[error("--batch must be between 1 and {MAX_BATCH} events per request, got {0}")]
    Batch(usize),
    #[error("--max-in-flight must be at least 1")]
    MaxInFlight,
    #[error("--timeout-seconds must be at least 1")]
    Timeout,
    #[error("--rate times --seconds is too many events ({0} * {1})")]
    TooManyEvents(u64, u64),
    #[error("--url {0} is not an http:// URL with a host (https is not supported)")]
    Url(String),
}

/// A checked run: how many events and requests, and when each request is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub rate: u64,
    pub seconds: u64,
    pub batch: usize,
    /// rate * seconds.
    pub events: usize,
    pub max_in_flight: usize,
    pub timeout: Duration,
}

impl Plan {
    /// Checks the arguments.
    pub fn new(args: &LoadArgs) -> Result<Plan, PlanError> {
        if args.rate == 0 {
            return Err(PlanError::Rate);
        }
        if args.seconds == 0 {
            return Err(PlanError::Seconds);
        }
        if args.batch == 0 || args.batch > MAX_BATCH {
            return Err(PlanError::Batch(args.batch));
        }
        if args.max_in_flight == 0 {
            return Err(PlanError::MaxInFlight);
        }
        if args.timeout_seconds == 0 {
            return Err(PlanError::Timeout);
        }
        let events = args
            .rate
            .checked_mul(args.seconds)
            .and_then(|e| usize::try_from(e).ok())
            .ok_or(PlanError::TooManyEvents(args.rate, args.seconds))?;
        Ok(Plan {
            rate: args.rate,
            seconds: args.seconds,
            batch: args.batch,
            events,
            max_in_flight: args.max_in_flight,
            timeout: Duration::from_secs(args.timeout_seconds),
        })
    }

    /// Requests in the run: the last one carries the remainder.
    pub fn requests(&self) -> usize {
        self.events.div_ceil(self.batch)
    }

    /// Events carried by request `k`.
    pub fn events_in(&self, k: usize) -> usize {
        self.batch.min(self.events.saturating_sub(k * self.batch))
    }

    /// When request `k` is due after the start: `k * batch / rate` seconds, computed
    /// in integer nanoseconds so that no drift accumulates over a long run.
    pub fn due_after_start(&self, k: usize) -> Duration {
        let nanos = (k as u128) * (self.batch as u128) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The time between two requests.
    pub fn interval(&self) -> Duration {
        self.due_after_start(1)
    }
}

/// The URL checked: where to POST, and where the same origin answers `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub events: Uri,
    pub healthz: Uri,
}

impl Target {
    /// Parses `--url` (http only: the client speaks plain HTTP/1.1).
    pub fn parse(url: &str) -> Result<Target, PlanError> {
        let bad = || PlanError::Url(url.to_string());
        let events: Uri = url.parse().map_err(|_| bad())?;
        if events.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = events.authority().ok_or_else(bad)?.clone();
        let healthz = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query("/healthz")
            .build()
            .map_err(|_| bad())?;
        Ok(Target { events, healthz })
    }
}

/// A request body serialized ahead of time: a JSON array of envelopes, with where
/// each envelope's `occurred_at` value sits so it can be set to the send time
/// without serializing again.
#[derive(Debug, Clone)]
pub struct BodyTemplate {
    bytes: Vec<u8>,
    stamps: Vec<usize>,
}

impl BodyTemplate {
    /// Serializes a batch.
    pub fn new(envelopes: &[Envelope]) -> Result<BodyTemplate, serde_json::Error> {
        let mut bytes = Vec::with_capacity(envelopes.len() * 512 + 2);
        let mut stamps = Vec::with_capacity(envelopes.len());
        bytes.push(b'[');
        for (i, envelope) in envelopes.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            let one = serde_json::to_vec(envelope)?;
            // The envelope's own key comes first (the payload is flattened after it).
            if let Some(at) = find(&one, OCCURRED_AT_KEY) {
                let value = bytes.len() + at + OCCURRED_AT_KEY.len();
                if one.get(at + OCCURRED_AT_KEY.len() + STAMP_LEN) == Some(&b'"') {
                    stamps.push(value);
                }
            }
            bytes.extend_from_slice(&one);
        }
        bytes.push(b']');
        Ok(BodyTemplate { bytes, stamps })
    }

    /// Events in the body.
    pub fn events(&self) -> usize {
        self.stamps.len()
    }

    /// The body with every `occurred_at` set to `now`, truncated to the millisecond.
    pub fn stamped(mut self, now: DateTime<Utc>) -> Bytes {
        let stamp = stamp(now);
        if stamp.len() == STAMP_LEN {
            for &at in &self.stamps {
                if let Some(slot) = self.bytes.get_mut(at..at + STAMP_LEN) {
                    slot.copy_from_slice(stamp.as_bytes());
                }
            }
        }
        Bytes::from(self.bytes)
    }
}

/// A time as the contract writes `occurred_at`: UTC, truncated to the millisecond.
pub fn stamp(t: DateTime<Utc>) -> String {
    let ms = DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
    ms.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Events by what the server said of them, plus those never answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    #[serde(default)]
    pub accepted: u64,
    #[serde(default)]
    pub duplicate: u64,
    #[serde(default)]
    pub rejected: u64,
    #[serde(default)]
    pub retry: u64,
}

impl EventCounts {
    fn add(&mut self, other: EventCounts) {
        self.accepted += other.accepted;
        self.duplicate += other.duplicate;
        self.rejected += other.rejected;
        self.retry += other.retry;
    }
}

/// The per-event answer of 200, 422, 429 and 503 (the fields read here).
#[derive(Debug, Deserialize)]
struct IngestAnswer {
    #[serde(flatten)]
    counts: Option<EventCounts>,
    #[serde(default)]
    results: Vec<EventResult>,
}

#[derive(Debug, Deserialize)]
struct EventResult {
    status: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

#[derive(Debug, Deserialize)]
struct FieldError {
    #[serde(default)]
    field: String,
    #[serde(default)]
    reason: String,
}

/// What a response says about its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Per-event counts, and the first rejection's reason if any.
    Counted(EventCounts, Option<String>),
    /// No per-event answer (400, 401, 413, an unexpected status or body): the
    /// request's events count as failed.
    Unanswered(String),
    /// A 429 or 503 before the body was read (the service is saturated): every event
    /// of the request is to be sent again.
    Busy(String),
}

/// Reads a response per the ingest contract. Pure.
pub fn classify(status: u16, body: &[u8]) -> Ack {
    let text = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if !matches!(status, 200 | 422 | 429 | 503) {
        return Ack::Unanswered(format!("HTTP {status}: {}", text().trim()));
    }
    let answer: IngestAnswer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(e) => return Ack::Unanswered(format!("HTTP {status}: unreadable answer ({e})")),
    };
    if matches!(status, 429 | 503)
        && answer.results.is_empty()
        && answer.counts.is_none_or(|c| c == EventCounts::default())
    {
        return Ack::Busy(format!("HTTP {status}: {}", text().trim()));
    }
    let counted = answer.counts.filter(|c| *c != EventCounts::default());
    let counts = counted.unwrap_or_else(|| {
        let mut c = EventCounts::default();
        for r in &answer.results {
            match r.status.as_str() {
                "accepted" => c.accepted += 1,
                "duplicate" => c.duplicate += 1,
                "rejected" => c.rejected += 1,
                "retry" => c.retry += 1,
                _ => {}
            }
        }
        c
    });
    let rejection = answer
        .results
        .iter()
        .filter(|r| r.status == "rejected")
        .find_map(|r| r.errors.first())
        .map(|e| format!("event rejected: {}: {}", e.field, e.reason));
    Ack::Counted(counts, rejection)
}

/// What happened to one sent request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events the request carried.
    pub events: u64,
    /// From the request's due time to the end of its answer (or its failure).
    pub latency: Duration,
    pub result: Answer,
}

/// The end of one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Http(u16, Ack),
    Timeout,
    Transport(String),
}

/// The running totals: every [`Outcome`] folded in.
#[derive(Debug)]
pub struct Tally {
    by_status: BTreeMap<u16, u64>,
    events: EventCounts,
    failed_events: u64,
    responses: u64,
    transport_errors: u64,
    timeouts: u64,
    latency_us: Histogram<u64>,
    errors: Vec<String>,
}

impl Tally {
    /// Empty totals (an error only if the histogram's precision were out of range).
    pub fn new() -> Result<Tally, hdrhistogram::CreationError> {
        Ok(Tally {
            by_status: BTreeMap::new(),
            events: EventCounts::default(),
            failed_events: 0,
            responses: 0,
            transport_errors: 0,
            timeouts: 0,
            // Auto-resizing from 1 µs: 3 significant digits keep the percentiles
            // within 0.1% whatever the largest latency turns out to be.
            latency_us: Histogram::new(3)?,
            errors: Vec::new(),
        })
    }

    /// Folds one request's outcome in. Ack latency is recorded for every HTTP
    /// answer; a timeout or transport error has no acknowledgement to time.
    pub fn apply(&mut self, outcome: Outcome) {
        match outcome.result {
            Answer::Http(status, ack) => {
                self.responses += 1;
                *self.by_status.entry(status).or_default() += 1;
                let micros = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX);
                // Auto-resizing: `record` grows the histogram (saturating would clamp
                // to its current, tiny, top).
                if self.latency_us.record(micros.max(1)).is_err() {
                    self.latency_us.saturating_record(micros.max(1));
                }
                match ack {
                    Ack::Counted(counts, rejection) => {
                        self.events.add(counts);
                        if let Some(message) = rejection {
                            self.note(message);
                        }
                    }
                    Ack::Unanswered(message) => {
                        self.failed_events += outcome.events;
                        self.note(message);
                    }
                    Ack::Busy(message) => {
                        self.events.retry += outcome.events;
                        self.note(message);
                    }
                }
            }
            Answer::Timeout => {
                self.timeouts += 1;
                self.failed_events += outcome.events;
                self.note(format!(
                    "timeout: no answer within {:.1}s of the due time",
                    outcome.latency.as_secs_f64()
                ));
            }
            Answer::Transport(message) => {
                self.transport_errors += 1;
                self.failed_events += outcome.events;
                self.note(message);
            }
        }
    }

    fn note(&mut self, message: String) {
        if self.errors.len() < MAX_ERROR_SAMPLES && !self.errors.contains(&message) {
            self.errors.push(message);
        }
    }

    /// The summary of a finished run.
    pub fn summary(&self, run: &RunFacts) -> Summary {
        let plan = &run.plan;
        let sent_events = run.sent_events;
        let send_window = run.send_window.as_secs_f64();
        let elapsed = run.elapsed.as_secs_f64();
        let per_second = |n: u64, over: f64| {
            if over > 0.0 {
                round3(n as f64 / over)
            } else {
                0.0
            }
        };
        let ms = |us: u64| round3(us as f64 / 1000.0);
        let h = &self.latency_us;
        let latency = if h.is_empty() {
            LatencyMs::default()
        } else {
            LatencyMs {
                count: h.len(),
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
                mean: round3(h.mean() / 1000.0),
            }
        };
        Summary {
            url: run.url.clone(),
            rate: plan.rate,
            seconds: plan.seconds,
            batch: plan.batch,
            seed: run.seed,
            max_in_flight: plan.max_in_flight,
            timeout_seconds: plan.timeout.as_secs(),
            requests: RequestCounts {
                planned: plan.requests() as u64,
                sent: run.sent_requests,
                skipped: run.skipped_requests,
                answered: self.responses,
                by_status: self
                    .by_status
                    .iter()
                    .map(|(s, n)| (s.to_string(), *n))
                    .collect(),
                transport_errors: self.transport_errors,
                timeouts: self.timeouts,
            },
            events: EventSummary {
                planned: plan.events as u64,
                sent: sent_events,
                skipped: run.skipped_events,
                accepted: self.events.accepted,
                duplicate: self.events.duplicate,
                rejected: self.events.rejected,
                retry: self.events.retry,
                failed: self.failed_events,
            },
            achieved: Achieved {
                offered_per_second: per_second(sent_events, send_window),
                accepted_per_second: per_second(self.events.accepted, elapsed),
                send_window_seconds: round3(send_window),
                elapsed_seconds: round3(elapsed),
            },
            schedule: ScheduleSummary {
                kept_up: run.max_late <= KEPT_UP_TOLERANCE,
                max_late_ms: round3(run.max_late.as_secs_f64() * 1000.0),
                interval_ms: round3(plan.interval().as_secs_f64() * 1000.0),
            },
            ack_latency_ms: latency,
            errors: self.errors.clone(),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What the sender knows at the end of a run (the [`Tally`] knows the answers).
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub url: String,
    pub seed: u64,
    pub plan: Plan,
    pub sent_requests: u64,
    pub sent_events: u64,
    pub skipped_requests: u64,
    pub skipped_events: u64,
    /// From the start to the last send, plus one interval (equals `--seconds` when
    /// the sender kept up).
    pub send_window: Duration,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// How late the sender ran at worst behind a request's due time.
    pub max_late: Duration,
}

/// The document written by `--summary-json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub url: String,
    pub rate: u64,
    pub seconds: u64,
    pub batch: usize,
    pub seed: u64,
    pub max_in_flight: usize,
    pub timeout_seconds: u64,
    pub requests: RequestCounts,
    pub events: EventSummary,
    pub achieved: Achieved,
    pub schedule: ScheduleSummary,
    pub ack_latency_ms: LatencyMs,
    /// The first few distinct error messages.
    pub errors: Vec<String>,
}

/// Requests: planned = sent + skipped; sent = answered + transport_errors + timeouts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestCounts {
    pub planned: u64,
    pub sent: u64,
    pub skipped: u64,
    pub answered: u64,
    /// HTTP status → requests.
    pub by_status: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub timeouts: u64,
}

/// Events: sent = accepted + duplicate + rejected + retry + failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventSummary {
    pub planned: u64,
    pub sent: u64,
    pub skipped: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    pub retry: u64,
    /// Sent but without a per-event answer: timeouts, transport errors, and
    /// responses without results (400, 401, 413, other statuses).
    pub failed: u64,
}

/// The rates reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Achieved {
    /// Events sent per second of the send window.
    pub offered_per_second: f64,
    /// Events accepted per second of the whole run (start to last answer).
    pub accepted_per_second: f64,
    pub send_window_seconds: f64,
    pub elapsed_seconds: f64,
}

/// Whether the sender kept to the schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduleSummary {
    /// The sender was never more than 10 ms behind a due time.
    pub kept_up: bool,
    pub max_late_ms: f64,
    /// Time between two due requests.
    pub interval_ms: f64,
}

/// Ack latency percentiles, milliseconds, from the due time to the full answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyMs {
    /// HTTP answers timed.
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// The short human table for stdout.
    pub fn table(&self) -> String {
        let mut t = crate::table::Table::new(&["load", "value"]);
        let r = &self.requests;
        let e = &self.events;
        let l = &self.ack_latency_ms;
        let statuses = r
            .by_status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            ("url", self.url.clone()),
            (
                "offered",
                format!(
                    "{} events/s for {}s, {} per request",
                    self.rate, self.seconds, self.batch
                ),
            ),
            (
                "requests",
                format!(
                    "{} sent, {} skipped, {} timeouts, {} transport errors",
                    r.sent, r.skipped, r.timeouts, r.transport_errors
                ),
            ),
            ("by status", statuses),
            (
                "events",
                format!(
                    "{} sent: {} accepted, {} duplicate, {} rejected, {} retry, {} failed",
                    e.sent, e.accepted, e.duplicate, e.rejected, e.retry, e.failed
                ),
            ),
            (
                "achieved",
                format!(
                    "{:.1} offered/s, {:.1} accepted/s",
                    self.achieved.offered_per_second, self.achieved.accepted_per_second
                ),
            ),
            (
                "schedule",
                format!(
                    "{} (worst {:.1} ms late)",
                    if self.schedule.kept_up {
                        "kept up"
                    } else {
                        "FELL BEHIND"
                    },
                    self.schedule.max_late_ms
                ),
            ),
            (
                "ack latency ms",
                format!(
                    "p50 {:.1}, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1}, mean {:.1}",
                    l.p50, l.p90, l.p99, l.p999, l.max, l.mean
                ),
            ),
        ];
        for (name, value) in rows {
            t.row(vec![name.to_string(), value]);
        }
        let mut text = t.render();
        for error in &self.errors {
            text.push_str(&format!("error: {error}\n"));
        }
        text
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Runs `flyhigh load`: `Ok(true)` when the run happened (whatever the server
/// answered), an error when the arguments are invalid or the server cannot be
/// reached at the start.
pub async fn run(args: LoadArgs) -> anyhow::Result<bool> {
    let plan = Plan::new(&args)?;
    let target = Target::parse(&args.url)?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(plan.timeout));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    check_health(&client, &target.healthz, plan.timeout).await?;

    // Today's day (UTC): searches are for flights from today on and bookings name
    // flights `flyhigh serve` schedules from today, whatever day the load runs.
    let mut sim_config = flyhigh_simulator::SimConfig::new(args.seed, plan.events);
    sim_config.start = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let simulator =
        flyhigh_simulator::Simulator::new(sim_config).context("setting up the simulator")?;
    let (body_tx, mut bodies) = mpsc::channel::<BodyTemplate>(BODIES_AHEAD);
    let generator_plan = plan.clone();
    let generator = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut simulator = simulator;
        for k in 0..generator_plan.requests() {
            let envelopes: Vec<Envelope> = simulator
                .by_ref()
                .take(generator_plan.events_in(k))
                .collect();
            let body = BodyTemplate::new(&envelopes).context("serializing events")?;
            if body_tx.blocking_send(body).is_err() {
                break; // the sender stopped
            }
        }
        Ok(())
    });

    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let mut tally = Tally::new().context("setting up the latency histogram")?;
    let folder = tokio::spawn(async move {
        while let Some(outcome) = outcomes.recv().await {
            tally.apply(outcome);
        }
        tally
    });

    let shared = Arc::new(Sender {
        client,
        uri: target.events.clone(),
        // An empty FLYHIGH_API_KEY means no key, not `Bearer ` with nothing after it.
        authorization: args
            .api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| format!("Bearer {k}")),
        timeout: plan.timeout,
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    // The first body is ready before the clock starts: the generator's warm-up is
    // not the server's latency.
    let mut next = bodies.recv().await;
    let start = Instant::now();
    let mut facts = RunFacts {
        url: args.url.clone(),
        seed: args.seed,
        plan: plan.clone(),
        sent_requests: 0,
        sent_events: 0,
        skipped_requests: 0,
        skipped_events: 0,
        send_window: Duration::ZERO,
        elapsed: Duration::ZERO,
        max_late: Duration::ZERO,
    };
    let mut last_send = start;
    for k in 0..plan.requests() {
        let due = start + plan.due_after_start(k);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let body = match next.take() {
            Some(body) => body,
            None => match bodies.recv().await {
                Some(body) => body,
                None => break, // the generator stopped (its error is reported below)
            },
        };
        let now = Instant::now();
        facts.max_late = facts.max_late.max(now.saturating_duration_since(due));
        let events = body.events() as u64;
        if in_flight.load(Ordering::Acquire) >= plan.max_in_flight {
            facts.skipped_requests += 1;
            facts.skipped_events += events;
            continue;
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        facts.sent_requests += 1;
        facts.sent_events += events;
        last_send = now;
        let guard = InFlight(in_flight.clone());
        let sender = shared.clone();
        let outcome_tx = outcome_tx.clone();
        tokio::spawn(async move {
            let outcome = sender.send(body, due).await;
            drop(guard);
            // The folder outlives every sender; a closed channel only means the run
            // is being torn down.
            let _ = outcome_tx.send(outcome);
        });
    }
    facts.send_window = last_send.saturating_duration_since(start) + plan.interval();
    drop(outcome_tx);
    drop(bodies);
    let tally = folder.await.context("collecting the answers")?;
    facts.elapsed = start.elapsed();
    generator
        .await
        .context("generating events")?
        .context("generating events")?;

    let summary = tally.summary(&facts);
    print!("{}", summary.table());
    if let Some(path) = &args.summary_json {
        crate::report::write_json(path, &summary)?;
        println!("summary written to {}", path.display());
    }
    Ok(true)
}

/// Decrements the in-flight count when a request ends, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every request task shares.
struct Sender {
    client: HttpClient,
    uri: Uri,
    authorization: Option<String>,
    timeout: Duration,
}

impl Sender {
    /// Sends one body, `occurred_at` set to now; latency counts from `due`.
    async fn send(&self, body: BodyTemplate, due: Instant) -> Outcome {
        let events = body.events() as u64;
        let bytes = body.stamped(Utc::now());
        let result = match tokio::time::timeout(self.timeout, self.exchange(bytes)).await {
            Ok(Ok((status, body))) => Answer::Http(status, classify(status, &body)),
            Ok(Err(message)) => Answer::Transport(message),
            Err(_) => Answer::Timeout,
        };
        Outcome {
            events,
            latency: due.elapsed(),
            result,
        }
    }

    async fn exchange(&self, body: Bytes) -> Result<(u16, Bytes), String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("sending: {}", cause(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {}", cause(&e)))?
            .to_bytes();
        Ok((status, body))
    }
}

/// `GET /healthz` once, before the clock starts.
async fn check_health(client: &HttpClient, healthz: &Uri, timeout: Duration) -> anyhow::Result<()> {
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "cannot reach the ingest API at {healthz} ({why}); start it (flyhigh serve) or fix --url"
        )
    };
    let request = Request::get(healthz.clone())
        .body(Full::new(Bytes::new()))
        .context("building the health check")?;
    let response = match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Err(unreachable(cause(&e))),
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {}s",
                timeout.as_secs()
            )));
        }
    };
    let status = response.status();
    if !status.is_success() {
        return Err(anyhow::anyhow!(
            "the ingest API at {healthz} answered {status}; is --url the ingest API, and is it healthy?"
        ));
    }
    Ok(())
}

/// The innermost useful cause of a client error, in lower case words: an I/O
/// error's kind ("connection refused") rather than the OS text.
fn cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind().to_string();
        }
        last = e.to_string();
        source = e.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rate: u64, seconds: u64, batch: usize) -> LoadArgs {
        LoadArgs {
            url: "http://127.0.0.1:8080/v1/events".into(),
            rate,
            seconds,
            batch,
            summary_json: None,
            seed: 1,
            api_key: None,
            max_in_flight: 4096,
            timeout_seconds: 10,
        }
    }

    #[test]
    fn request_k_is_due_at_k_times_batch_over_rate() {
        let plan = Plan::new(&args(2000, 2, 50)).expect("valid");
        assert_eq!(plan.events, 4000);
        assert_eq!(plan.requests(), 80);
        assert_eq!(plan.due_after_start(0), Duration::ZERO);
        assert_eq!(plan.due_after_start(1), Duration::from_millis(25));
        assert_eq!(plan.due_after_start(79), Duration::from_millis(1975));
        assert_eq!(plan.interval(), Duration::from_millis(25));
    }

    #[test]
    fn due_times_do_not_drift_over_a_long_run() {
        // 3 requests a second: 1/3 s has no exact float or nanosecond form.
        let plan = Plan::new(&args(150, 3600, 50)).expect("valid");
        assert_eq!(plan.requests(), 10_800);
        assert_eq!(plan.due_after_start(3), Duration::from_secs(1));
        assert_eq!(
            plan.due_after_start(10_799),
            Duration::from_nanos(3_599_666_666_666)
        );
        let monotonic =
            (1..plan.requests()).all(|k| plan.due_after_start(k) > plan.due_after_start(k - 1));
        assert!(monotonic);
    }

    #[test]
    fn the_last_request_carries_the_remainder() {
        let plan = Plan::new(&args(7, 10, 50)).expect("valid");
        assert_eq!(plan.requests(), 2);
        assert_eq!(plan.events_in(0), 50);
        assert_eq!(plan.events_in(1), 20);
        assert_eq!(plan.events_in(2), 0);
    }

    #[test]
    fn invalid_arguments_name_the_flag() {
        assert_eq!(Plan::new(&args(0, 2, 50)), Err(PlanError::Rate));
        assert_eq!(Plan::new(&args(10, 0, 50)), Err(PlanError::Seconds));
        assert_eq!(Plan::new(&args(10, 2, 0)), Err(PlanError::Batch(0)));
        assert_eq!(Plan::new(&args(10, 2, 1001)), Err(PlanError::Batch(1001)));
        assert!(Plan::new(&args(10, 2, 1000)).is_ok());
        assert_eq!(
            Plan::new(&args(u64::MAX, 2, 50)),
            Err(PlanError::TooManyEvents(u64::MAX, 2))
        );
        assert!(PlanError::Batch(0).to_string().contains("--batch"));
    }

    #[test]
    fn healthz_is_on_the_same_origin() {
        let t = Target::parse("http://127.0.0.1:8080/v1/events?x=1").expect("valid");
        assert_eq!(t.healthz.to_string(), "http://127.0.0.1:8080/healthz");
        assert!(Target::parse("https://example.com/v1/events").is_err());
        assert!(Target::parse("127.0.0.1:8080/v1/events").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn bodies_get_the_send_time_to_the_millisecond() {
        let sim = flyhigh_simulator::Simulator::new(flyhigh_simulator::SimConfig::new(3, 5))
            .expect("sim");
        let envelopes: Vec<Envelope> = sim.collect();
        let template = BodyTemplate::new(&envelopes).expect("serializes");
        assert_eq!(template.events(), 5);
        let now = DateTime::parse_from_rfc3339("2026-12-07T22:12:49.123987Z")
            .expect("time")
            .with_timezone(&Utc);
        let body = template.stamped(now);
        let sent: Vec<Envelope> = serde_json::from_slice(&body).expect("a JSON array");
        assert_eq!(sent.len(), 5);
        let truncated = DateTime::parse_from_rfc3339("2026-12-07T22:12:49.123Z")
            .expect("time")
            .with_timezone(&Utc);
        for (sent, original) in sent.iter().zip(&envelopes) {
            assert_eq!(sent.occurred_at, truncated);
            assert_eq!(sent.event_id, original.event_id);
            assert_eq!(sent.payload, original.payload);
        }
        // The stamp is written exactly as the contract's serializer writes it.
        let mut one = envelopes[0].clone();
        one.occurred_at = truncated;
        let json = serde_json::to_string(&one).expect("serializes");
        assert!(json.contains(&format!("\"occurred_at\":\"{}\"", stamp(now))));
    }

    #[test]
    fn answers_are_read_per_the_contract() {
        let ok = br#"{"accepted":48,"duplicate":1,"rejected":1,"retry":0,"results":[
            {"index":0,"event_id":"x","status":"rejected",
             "errors":[{"field":"payload.seats","reason":"must be between 1 and 9, got 0"}]}]}"#;
        assert_eq!(
            classify(422, ok),
            Ack::Counted(
                EventCounts {
                    accepted: 48,
                    duplicate: 1,
                    rejected: 1,
                    retry: 0
                },
                Some("event rejected: payload.seats: must be between 1 and 9, got 0".into())
            )
        );
        let only_results = br#"{"results":[{"index":0,"status":"retry","reason":"buffer_full"},
            {"index":1,"status":"accepted"}]}"#;
        assert_eq!(
            classify(429, only_results),
            Ack::Counted(
                EventCounts {
                    accepted: 1,
                    retry: 1,
                    ..EventCounts::default()
                },
                None
            )
        );
        assert!(matches!(
            classify(401, br#"{"error":"missing API key"}"#),
            Ack::Unanswered(m) if m.contains("401") && m.contains("missing API key")
        ));
        assert!(matches!(classify(200, b"not json"), Ack::Unanswered(_)));
        assert!(matches!(
            classify(429, br#"{"error":"busy: 256 requests in flight","hint":"send it again after Retry-After"}"#),
            Ack::Busy(m) if m.contains("busy")
        ));
    }

    #[test]
    fn the_tally_counts_events_requests_and_latency() {
        let mut tally = Tally::new().expect("3 significant digits are in range");
        let counted = |accepted, retry| {
            Ack::Counted(
                EventCounts {
                    accepted,
                    retry,
                    ..EventCounts::default()
                },
                None,
            )
        };
        for (ms, result) in [
            (10, Answer::Http(200, counted(50, 0))),
            (20, Answer::Http(429, counted(0, 50))),
            (
                30,
                Answer::Http(413, Ack::Unanswered("HTTP 413: too large".into())),
            ),
            (10_000, Answer::Timeout),
            (5, Answer::Transport("sending: connection reset".into())),
        ] {
            tally.apply(Outcome {
                events: 50,
                latency: Duration::from_millis(ms),
                result,
            });
        }
        let plan = Plan::new(&args(250, 1, 50)).expect("valid");
        let facts = RunFacts {
            url: "u".into(),
            seed: 1,
            plan,
            sent_requests: 5,
            sent_events: 250,
            skipped_requests: 0,
            skipped_events: 0,
            send_window: Duration::from_secs(1),
            elapsed: Duration::from_secs(2),
            max_late: Duration::from_millis(2),
        };
        let s = tally.summary(&facts);
        assert_eq!(s.requests.answered, 3);
        assert_eq!(s.requests.by_status.get("429"), Some(&1));
        assert_eq!((s.requests.timeouts, s.requests.transport_errors), (1, 1));
        assert_eq!(
            (s.events.accepted, s.events.retry, s.events.failed),
            (50, 50, 150)
        );
        assert_eq!(s.ack_latency_ms.count, 3);
        assert!(
            (s.ack_latency_ms.p50 - 20.0).abs() < 0.1,
            "{:?}",
            s.ack_latency_ms
        );
        assert!((s.ack_latency_ms.max - 30.0).abs() < 0.1);
        assert_eq!(s.achieved.offered_per_second, 250.0);
        assert_eq!(s.achieved.accepted_per_second, 25.0);
        assert!(s.schedule.kept_up);
        assert_eq!(s.errors.len(), 3);
    }
}
