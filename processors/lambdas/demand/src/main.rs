//! The demand Lambda: Kinesis batches → demand counters per route, bucket and shard in
//! DynamoDB, for the alerts Lambda to judge.
//!
//! Wiring only (the handler is `flyhigh_handlers::DemandHandler`). Configuration, read
//! once at cold start:
//! - `DEMAND_TABLE`: the demand table (see `flyhigh_aws::demand` for its design);
//! - `INVENTORY_TABLE`: the inventory table, read only: a cancellation names only its
//!   flight, and its route comes from the schedule there;
//! - `DEAD_LETTER_QUEUE_URL`: the SQS queue for poison records;
//! - `LATE_ALLOWANCE_SECONDS` (optional, default
//!   `flyhigh_handlers::demand::counting::DEFAULT_LATE_ALLOWANCE`, two minutes): how
//!   long after its event time an event's record may arrive before it is counted as
//!   late. The alerts Lambda judges this far behind: give both the same value (the
//!   template does).
//!
//! The event source mapping must enable `ReportBatchItemFailures` and keep
//! `ParallelizationFactor` at 1: each shard's counters are written by one batch at a
//! time, in shard order (see `infra/hot-routes.yaml`).

use chrono::Duration;
use flyhigh_aws::demand::DynamoDemandStore;
use flyhigh_aws::dynamodb::DynamoInventoryStore;
use flyhigh_aws::sqs::SqsQueue;
use flyhigh_handlers::DemandHandler;
use flyhigh_handlers::demand::counting::DEFAULT_LATE_ALLOWANCE;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_support::init_tracing();
    let demand_table = lambda_support::required("DEMAND_TABLE")?;
    let inventory_table = lambda_support::required("INVENTORY_TABLE")?;
    let queue_url = lambda_support::required("DEAD_LETTER_QUEUE_URL")?;
    let late_allowance = match std::env::var_os("LATE_ALLOWANCE_SECONDS") {
        Some(_) => {
            Duration::seconds(lambda_support::number::<u32>("LATE_ALLOWANCE_SECONDS", 0)?.into())
        }
        None => DEFAULT_LATE_ALLOWANCE,
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let handler = DemandHandler::new(
        DynamoDemandStore::new(dynamodb.clone(), demand_table),
        DynamoInventoryStore::new(dynamodb, inventory_table),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url),
    )
    .with_late_allowance(late_allowance);
    lambda_support::serve_kinesis(|event| handler.handle(event)).await
}
