//! The surge evaluator's run time with many registered routes, against DynamoDB
//! (moto or real) through the real SDK: how long one run takes against the alerts
//! Lambda's budget, how soon it publishes a pending alert, and how many runs judge
//! every route.
//!
//! ```text
//! scripts/moto.sh start && source target/moto.env
//! cargo run --release -p flyhigh-benches --bin evaluator-load -- --routes 10000 --budget 45
//! ```
//!
//! Each route gets one counted search in the last hour (a client that invents routes
//! sends searches for them), so judging one costs a `GetItem` of its state, a
//! `Query` of its counters and a `PutItem` of its new state. `--budget S` is the
//! judging time per run (the Lambda's 55 s timeout minus its 10 s reserve: 45 s).
//! `--runs N` stops after N runs. `--full` also times one run without a deadline:
//! what every run cost before runs had one.

use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use chrono::{DateTime, Duration, Utc};
use flyhigh_aws::demand::{
    DynamoAlertStore, DynamoDemandStore, create_alerts_table, create_demand_table,
};
use flyhigh_core::demand::{CounterKey, CounterUpdate, Counts, Position, SurgeConfig};
use flyhigh_core::{AlertPublisher, AlertStore, DemandStore, StoreError};
use flyhigh_handlers::SurgeEvaluator;
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};

/// Counts what it publishes and when the first one went out.
struct Timed {
    start: Mutex<Option<Instant>>,
    first: Mutex<Option<StdDuration>>,
}

impl AlertPublisher for Timed {
    async fn publish(&self, _: &Alert) -> Result<(), StoreError> {
        let start = *self.start.lock().unwrap_or_else(|p| p.into_inner());
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = start.map(|s| s.elapsed());
        }
        Ok(())
    }
}

/// An oversold alert of flight `n`, left pending as the inventory path leaves one.
fn oversold(n: usize, now: DateTime<Utc>) -> Alert {
    let flight_id = format!("FH{n:04}-20261201");
    Alert {
        alert_id: Alert::flight_id_for(AlertRule::Oversold, &flight_id, Cabin::Business, 1),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule: AlertRule::Oversold,
        severity: Severity::Critical,
        route: "LHR-JFK".into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        flight_id: Some(flight_id),
        cabin: Some(Cabin::Business),
        window_start: None,
        window_end: None,
        observed: None,
        baseline: None,
        capacity: Some(8),
        sold: Some(9),
        detected_at: now,
        raised_at: now,
        summary: "oversold".into(),
    }
}

fn routes(n: usize) -> Vec<String> {
    let code = |i: usize| -> String {
        let l = |k: usize| char::from(b'A' + u8::try_from(k % 26).unwrap_or(0));
        [l(i / 676), l(i / 26), l(i)].iter().collect()
    };
    let mut r: Vec<String> = (0..n).map(|i| format!("{}-QQQ", code(i))).collect();
    r.sort();
    r
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = flyhigh_benches::arg(&args, "--routes", 10_000);
    let budget = StdDuration::from_secs(flyhigh_benches::arg(&args, "--budget", 45));
    let full = args.iter().any(|a| a == "--full");
    let max_runs: usize = flyhigh_benches::arg(&args, "--runs", usize::MAX);
    let endpoint = std::env::var("FLYHIGH_MOTO_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .map_err(|_| "set FLYHIGH_MOTO_URL (scripts/moto.sh start && source target/moto.env)")?;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "load"))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let suffix = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let (demand_table, alerts_table) = (
        format!("evaluator-load-demand-{suffix}"),
        format!("evaluator-load-alerts-{suffix}"),
    );
    create_demand_table(&client, &demand_table).await?;
    create_alerts_table(&client, &alerts_table).await?;
    let demand = DynamoDemandStore::new(client.clone(), demand_table);
    let alerts = DynamoAlertStore::new(client, alerts_table);

    let now = Utc::now();
    let routes = routes(n);
    let t = Instant::now();
    let bucket = SurgeConfig::default().bucket_of(now - Duration::minutes(30));
    for route in &routes {
        demand
            .add(&CounterUpdate {
                key: CounterKey {
                    route: route.clone(),
                    bucket,
                    shard_id: "shardId-000000000000".into(),
                },
                counts: Counts {
                    searches: 1,
                    passengers: 1,
                    ..Counts::default()
                },
                first: Position::new("1", None),
                last: Position::new("1", None),
                arrived: now,
            })
            .await?;
    }
    demand.note_routes(&routes, now).await?;
    println!(
        "{n} routes registered, one counter each, in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let publisher = Timed {
        start: Mutex::new(None),
        first: Mutex::new(None),
    };
    let evaluator = SurgeEvaluator::new(&demand, &alerts, &publisher);
    let horizon = Utc::now() - Duration::minutes(2);
    let mut judged = 0;
    let mut run = 0;
    println!("run  time (s)  judged  left  published  first publish (ms)");
    while judged < n && run < max_runs {
        run += 1;
        alerts.record(&oversold(run, Utc::now())).await?;
        *publisher.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        *publisher.first.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let t = Instant::now();
        let deadline = tokio::time::Instant::now() + budget;
        let report = evaluator
            .run_until(horizon, Utc::now, Some(deadline))
            .await?;
        let first = publisher
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        println!(
            "{run:>3}  {:>8.1}  {:>6}  {:>4}  {:>9}  {first:>18.0}",
            t.elapsed().as_secs_f64(),
            report.routes_judged,
            report.routes_left,
            report.published.published,
        );
        judged += report.routes_judged;
        if report.routes_judged == 0 {
            break;
        }
    }
    println!(
        "{judged} of {n} routes judged in {run} runs of at most {} s of judging",
        budget.as_secs()
    );
    if full {
        // Every route again (nothing new to judge: a read of state and counters each),
        // as every run did before runs had a deadline.
        let t = Instant::now();
        let report = evaluator.run(horizon, Utc::now).await?;
        println!(
            "one run without a deadline: {:.1} s for {} routes",
            t.elapsed().as_secs_f64(),
            report.routes_judged
        );
    }
    Ok(())
}
