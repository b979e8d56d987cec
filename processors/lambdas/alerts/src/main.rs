//! The alerts Lambda: invoked every minute by an EventBridge schedule, it judges every
//! route's demand for surges and publishes what the outbox holds.
//!
//! Wiring only (the evaluator is `flyhigh_handlers::SurgeEvaluator`). Configuration,
//! read once at cold start:
//! - `DEMAND_TABLE`: the counters the demand Lambda writes (`flyhigh_aws::demand`);
//! - `ALERTS_TABLE`: alerts, their outbox and each route's state;
//! - `ALERTS_TOPIC_ARN`: the SNS topic alerts are published to;
//! - `LATE_ALLOWANCE_SECONDS` (optional, default 120, the demand handler's
//!   `DEFAULT_LATE_ALLOWANCE`): each run judges the buckets that closed before now
//!   minus this, so that events still in flight are counted first, and waits further
//!   for a shard whose consumer lags (`SurgeEvaluator::settled_horizon`). The demand
//!   Lambda flags events late with the same setting: give both the same value.
//!
//! The payload is ignored (any JSON: the scheduled event, or `{}` by hand). Each run
//! answers with the `EvaluationReport` as JSON and logs a one-line summary. Routes that
//! failed are in the report and retried by the next run; only a failure to list the
//! routes fails the invocation. One evaluator at a time is what the infrastructure
//! asks for, but two racing ones raise each alert once: a route's state and the alerts
//! it raised are one conditional write (see `flyhigh_handlers::demand::evaluator`).

use chrono::{Duration, Utc};
use flyhigh_aws::demand::{DynamoAlertStore, DynamoDemandStore};
use flyhigh_aws::sns::SnsTopic;
use flyhigh_handlers::SurgeEvaluator;
use flyhigh_handlers::demand::EvaluationReport;
use flyhigh_handlers::demand::counting::DEFAULT_LATE_ALLOWANCE;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_support::init_tracing();
    let demand_table = lambda_support::required("DEMAND_TABLE")?;
    let alerts_table = lambda_support::required("ALERTS_TABLE")?;
    let topic_arn = lambda_support::required("ALERTS_TOPIC_ARN")?;
    // Unset: the demand handler's default, so that both Lambdas share one setting.
    let allowance = match std::env::var_os("LATE_ALLOWANCE_SECONDS") {
        Some(_) => {
            Duration::seconds(lambda_support::number::<u32>("LATE_ALLOWANCE_SECONDS", 0)?.into())
        }
        None => DEFAULT_LATE_ALLOWANCE,
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let evaluator = SurgeEvaluator::new(
        DynamoDemandStore::new(dynamodb.clone(), demand_table),
        DynamoAlertStore::new(dynamodb, alerts_table),
        SnsTopic::new(aws_sdk_sns::Client::new(&config), topic_arn),
    );
    let evaluator = &evaluator;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            // Wall clock minus the allowance, held back while a shard's consumer lags.
            let horizon = evaluator.settled_horizon(Utc::now(), allowance).await?;
            let report: EvaluationReport = evaluator.run(horizon, Utc::now).await?;
            tracing::info!(
                horizon = %horizon,
                routes = report.routes,
                buckets_judged = report.buckets_judged,
                raised = report.raised.len(),
                lost_races = report.lost_races,
                failed_routes = report.failed_routes.len(),
                published = report.published.published,
                left_pending = report.published.left_pending,
                "routes judged"
            );
            Ok::<_, Error>(report)
        },
    ))
    .await
}
