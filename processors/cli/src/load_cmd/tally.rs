//! What the answers add up to: each response read per the ingest contract
//! ([`classify`]), every request's [`Outcome`] folded into a [`Tally`], and the
//! [`Summary`] `flyhigh load` prints and writes. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{KEPT_UP_TOLERANCE, MAX_ERROR_SAMPLES, Plan};

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
        // The service's stages and this one are summarized alike.
        let s = flyhigh_handlers::latency::summarize(&self.latency_us);
        let latency = if s.count == 0 {
            LatencyMs::default()
        } else {
            LatencyMs {
                count: s.count,
                p50: round3(s.p50),
                p90: round3(s.p90),
                p99: round3(s.p99),
                p999: round3(s.p999),
                max: round3(s.max),
                mean: round3(self.latency_us.mean() / 1000.0),
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
            server_latency_ms: None,
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
    /// The service's own latency per stage once its processors caught up
    /// (`flyhigh serve`'s `/v1/stats`: event → acknowledged, → committed by each
    /// processor, a surge's bucket closed → its alert), in milliseconds; absent when the
    /// target serves no stats. Cumulative since the service started: measure a
    /// fresh one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_latency_ms: Option<serde_json::Value>,
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
