//! Unit tests of `flyhigh load`'s pure parts: the schedule, the bodies, the answers
//! and the tally.

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
    let sim =
        flyhigh_simulator::Simulator::new(flyhigh_simulator::SimConfig::new(3, 5)).expect("sim");
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
