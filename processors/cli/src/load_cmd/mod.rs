//! `flyhigh load`: an open-model HTTP load generator for the ingest API, with the
//! acknowledgement latency in an HDR histogram.
//!
//! Layout:
//! - the pure core: [`Plan`] (arguments checked, the schedule's arithmetic:
//!   request `k` is due at `start + k * batch / rate`), [`BodyTemplate`] (a JSON
//!   array of envelopes serialized ahead, whose `occurred_at` values are patched in
//!   place at send time), and in [`tally`]: [`classify`] (a response per the ingest
//!   contract) and [`Tally`] (the fold of every request's [`Outcome`] into the
//!   [`Summary`]);
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

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use flyhigh_schemas::Envelope;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
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
    /// `flyhigh serve`'s `/v1/stats` on the same origin.
    pub stats: Uri,
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
        let path = |p: &str| {
            Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query(p)
                .build()
                .map_err(|_| bad())
        };
        Ok(Target {
            healthz: path("/healthz")?,
            stats: path("/v1/stats")?,
            events,
        })
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

pub mod tally;
#[cfg(test)]
mod tests;

pub use tally::*;

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

    let mut summary = tally.summary(&facts);
    summary.server_latency_ms = server_latency(&shared.client, &target.stats, plan.timeout).await;
    print!("{}", summary.table());
    if let Some(stages) = summary
        .server_latency_ms
        .as_ref()
        .and_then(|v| v.as_object())
    {
        println!("service latency, ms (event → stage, once every processor caught up):");
        for (stage, s) in stages {
            let ms = |k: &str| s.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            println!(
                "  {stage:<12} p50 {:>9.1}  p99 {:>9.1}  p999 {:>9.1}  max {:>9.1}  ({} values)",
                ms("p50"),
                ms("p99"),
                ms("p999"),
                ms("max"),
                s.get("count")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            );
        }
    }
    if let Some(path) = &args.summary_json {
        crate::report::write_json(path, &summary)?;
        println!("summary written to {}", path.display());
    }
    Ok(true)
}

/// How long a run waits for the service's processors to catch up before it reads
/// their latencies.
const CATCH_UP: Duration = Duration::from_secs(120);

/// The service's latency per stage (`latency_ms` of `/v1/stats`), read once no
/// processor has records left behind (or after [`CATCH_UP`]); `None` when the target
/// serves no stats (an API Gateway, say).
async fn server_latency(
    client: &HttpClient,
    stats: &Uri,
    timeout: Duration,
) -> Option<serde_json::Value> {
    let read = || async {
        let request = Request::get(stats.clone())
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = tokio::time::timeout(timeout, client.request(request))
            .await
            .ok()?
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).ok()
    };
    let until = Instant::now() + CATCH_UP;
    loop {
        let value = read().await?;
        let behind: u64 = value
            .get("lag")
            .and_then(|l| l.as_object())
            .map(|lag| {
                lag.values()
                    .filter_map(|p| p.get("records").and_then(serde_json::Value::as_u64))
                    .sum()
            })
            .unwrap_or(0);
        if behind == 0 || Instant::now() >= until {
            return value.get("latency_ms").cloned();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
