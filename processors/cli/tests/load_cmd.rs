//! `flyhigh load` against a small ingest server on 127.0.0.1:0 that answers per the
//! ingest contract: the built binary is run as a person runs it, and its summary JSON
//! is checked against what the server counted.
//!
//! Servers: one accepting everything; one answering every third request 429 with
//! every event to retry; one taking 300 ms per request (the open model must keep
//! sending on schedule, and the latency must show the wait); and no server at all.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the test server answers.
#[derive(Clone, Copy)]
enum Mode {
    AcceptAll,
    /// Every third request: 429, every event to retry.
    ThrottleEveryThird,
    /// Accepts everything after this long.
    Slow(Duration),
}

/// What the server saw.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    accepted: AtomicU64,
    retry: AtomicU64,
    throttled_requests: AtomicU64,
    /// Requests whose events all had `occurred_at` within 2 s of the server's clock.
    fresh_requests: AtomicU64,
    bearer_requests: AtomicU64,
}

struct Server {
    mode: Mode,
    counts: Counts,
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn events(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Json(body): Json<Vec<Value>>,
) -> Response {
    let n = server.counts.requests.fetch_add(1, Ordering::SeqCst);
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some("Bearer k3y")
    {
        server.counts.bearer_requests.fetch_add(1, Ordering::SeqCst);
    }
    let now = chrono::Utc::now();
    let fresh = body.iter().all(|e| {
        e["occurred_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| {
                (now - t.with_timezone(&chrono::Utc))
                    .num_milliseconds()
                    .abs()
                    < 2000
            })
    });
    if fresh {
        server.counts.fresh_requests.fetch_add(1, Ordering::SeqCst);
    }
    let events = body.len() as u64;
    match server.mode {
        Mode::ThrottleEveryThird if n % 3 == 2 => {
            server
                .counts
                .throttled_requests
                .fetch_add(1, Ordering::SeqCst);
            server.counts.retry.fetch_add(events, Ordering::SeqCst);
            let results: Vec<Value> = (0..body.len())
                .map(|i| json!({"index": i, "event_id": null, "status": "retry", "reason": "buffer_full"}))
                .collect();
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                Json(json!({"accepted": 0, "duplicate": 0, "rejected": 0, "retry": events, "results": results})),
            )
                .into_response()
        }
        mode => {
            if let Mode::Slow(wait) = mode {
                tokio::time::sleep(wait).await;
            }
            server.counts.accepted.fetch_add(events, Ordering::SeqCst);
            let results: Vec<Value> = body
                .iter()
                .enumerate()
                .map(|(i, e)| json!({"index": i, "event_id": e["event_id"], "status": "accepted"}))
                .collect();
            Json(json!({"accepted": events, "duplicate": 0, "rejected": 0, "retry": 0, "results": results}))
                .into_response()
        }
    }
}

async fn start(mode: Mode) -> (SocketAddr, Arc<Server>) {
    let server = Arc::new(Server {
        mode,
        counts: Counts::default(),
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/events", post(events))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, server)
}

/// Runs the built binary off the runtime's threads (the server runs on them).
async fn flyhigh(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flyhigh"))
            .args(&args)
            .env_remove("FLYHIGH_API_KEY")
            .output()
            .expect("running flyhigh")
    })
    .await
    .expect("the flyhigh run")
}

fn load_args(addr: SocketAddr, summary: &Path, extra: &[&str]) -> Vec<String> {
    load_args_with(addr, summary, "2000", "50", extra)
}

fn load_args_with(
    addr: SocketAddr,
    summary: &Path,
    rate: &str,
    batch: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "load",
        "--url",
        &format!("http://{addr}/v1/events"),
        "--rate",
        rate,
        "--seconds",
        "2",
        "--batch",
        batch,
        "--summary-json",
        &summary.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn run_load(addr: SocketAddr, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = dir.path().join("load.json");
    let out = flyhigh(load_args(addr, &summary, extra)).await;
    assert!(
        out.status.success(),
        "flyhigh load failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ack latency"), "{stdout}");
    let text = std::fs::read_to_string(&summary).expect("the summary JSON");
    serde_json::from_str(&text).expect("summary is JSON")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn ms(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepting_server_gets_every_event_on_schedule() {
    let (addr, server) = start(Mode::AcceptAll).await;
    let s = run_load(addr, &["--api-key", "k3y", "--seed", "7"]).await;
    let c = &server.counts;

    assert_eq!(s["url"], format!("http://{addr}/v1/events"));
    assert_eq!(
        (
            n(&s["rate"]),
            n(&s["seconds"]),
            n(&s["batch"]),
            n(&s["seed"])
        ),
        (2000, 2, 50, 7)
    );
    // rate * seconds / batch requests, all sent: the schedule is the count.
    assert_eq!(n(&s["requests"]["planned"]), 80);
    assert_eq!(n(&s["requests"]["sent"]), 80);
    assert_eq!(n(&s["requests"]["skipped"]), 0);
    assert_eq!(n(&s["requests"]["by_status"]["200"]), 80);
    assert_eq!(c.requests.load(Ordering::SeqCst), 80);
    assert_eq!(n(&s["events"]["sent"]), 4000);
    assert_eq!(
        n(&s["events"]["accepted"]),
        c.accepted.load(Ordering::SeqCst)
    );
    assert_eq!(n(&s["events"]["accepted"]), 4000);
    assert_eq!(n(&s["events"]["failed"]), 0);
    // Bearer key on every request; occurred_at is the send time, not the simulator's.
    assert_eq!(c.bearer_requests.load(Ordering::SeqCst), 80);
    assert_eq!(c.fresh_requests.load(Ordering::SeqCst), 80);

    let l = &s["ack_latency_ms"];
    assert!(ms(&l["p50"]) > 0.0 && ms(&l["p50"]) <= ms(&l["p90"]), "{l}");
    assert!(
        ms(&l["p99"]) <= ms(&l["p999"]) && ms(&l["p999"]) <= ms(&l["max"]),
        "{l}"
    );
    assert!(ms(&l["mean"]) > 0.0, "{l}");
    let offered = ms(&s["achieved"]["offered_per_second"]);
    assert!((1800.0..=2200.0).contains(&offered), "offered {offered}/s");
    assert!(ms(&s["achieved"]["accepted_per_second"]) > 1000.0, "{s}");
    assert!(s["schedule"]["max_late_ms"].is_number(), "{s}");
    assert!(s["schedule"]["kept_up"].is_boolean(), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_events_are_counted_as_retry_and_the_run_still_succeeds() {
    let (addr, server) = start(Mode::ThrottleEveryThird).await;
    let s = run_load(addr, &[]).await;
    let c = &server.counts;

    let throttled = c.throttled_requests.load(Ordering::SeqCst);
    assert!(throttled > 0);
    assert_eq!(n(&s["requests"]["sent"]), 80);
    assert_eq!(n(&s["requests"]["by_status"]["429"]), throttled);
    assert_eq!(n(&s["requests"]["by_status"]["200"]), 80 - throttled);
    assert_eq!(
        n(&s["events"]["accepted"]),
        c.accepted.load(Ordering::SeqCst)
    );
    assert_eq!(n(&s["events"]["retry"]), c.retry.load(Ordering::SeqCst));
    assert_eq!(
        n(&s["events"]["accepted"]) + n(&s["events"]["retry"]),
        4000,
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_shows_in_latency_not_in_the_send_rate() {
    let (addr, server) = start(Mode::Slow(Duration::from_millis(300))).await;
    let s = run_load(addr, &[]).await;

    // Open model: 300 ms per answer does not slow the sender down.
    assert_eq!(n(&s["requests"]["sent"]), 80);
    assert_eq!(n(&s["requests"]["skipped"]), 0);
    assert_eq!(server.counts.requests.load(Ordering::SeqCst), 80);
    assert_eq!(n(&s["events"]["accepted"]), 4000);
    let offered = ms(&s["achieved"]["offered_per_second"]);
    assert!((1800.0..=2200.0).contains(&offered), "offered {offered}/s");
    // Measured from the due time, so at least the server's wait.
    let l = &s["ack_latency_ms"];
    assert!(ms(&l["p50"]) >= 300.0, "{l}");
    assert!(ms(&l["max"]) >= ms(&l["p50"]), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_are_skipped_not_queued() {
    let (addr, server) = start(Mode::Slow(Duration::from_millis(300))).await;
    // 25 ms between requests and 300 ms answers: ~12 outstanding wanted, 4 allowed.
    let s = run_load(addr, &["--max-in-flight", "4"]).await;
    let sent = n(&s["requests"]["sent"]);
    let skipped = n(&s["requests"]["skipped"]);
    assert_eq!(sent + skipped, 80, "{s}");
    assert!(skipped > 40, "{s}");
    assert_eq!(server.counts.requests.load(Ordering::SeqCst), sent);
    assert_eq!(n(&s["events"]["skipped"]), skipped * 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_fails_at_the_start_with_one_line() {
    // A port that was just free: nothing listens on it.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
        listener.local_addr().expect("local address")
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = dir.path().join("load.json");
    let out = flyhigh(load_args(addr, &summary, &[])).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(
        stderr.contains(&format!("http://{addr}/healthz")),
        "{stderr}"
    );
    assert!(stderr.contains("--url"), "{stderr}");
    assert!(!summary.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_fail_before_any_request() {
    let (addr, server) = start(Mode::AcceptAll).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = dir.path().join("load.json");
    for (flag, rate, batch) in [
        ("--rate", "0", "50"),
        ("--batch", "2000", "0"),
        ("--batch", "2000", "1001"),
    ] {
        let out = flyhigh(load_args_with(addr, &summary, rate, batch, &[])).await;
        let value = format!("rate {rate} batch {batch}");
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
    assert_eq!(server.counts.requests.load(Ordering::SeqCst), 0);
}
