//! The inventory Lambda: Kinesis batches → seat inventory in DynamoDB, and flight
//! alerts from what it committed.
//!
//! Wiring only. Configuration (read once at cold start):
//! - `INVENTORY_TABLE`: the DynamoDB table (see `flyhigh-aws` for its design);
//! - `DEAD_LETTER_QUEUE_URL`: the SQS queue for poison records;
//! - `ALERTS_TABLE` and `ALERTS_TOPIC_ARN` (optional, together): the alerts table and
//!   the SNS topic of the hot-route processor (`infra/hot-routes.yaml`). When both are
//!   set (and not empty), each batch's flights are checked after the commit and
//!   near-sold-out, sold-out and oversold alerts are recorded and published
//!   (`flyhigh_handlers::FlightAlerts`). Otherwise the Lambda keeps inventory only,
//!   exactly as without them; one of the two alone is logged as a warning.
//!
//! The event source mapping must enable `ReportBatchItemFailures`.

use flyhigh_aws::demand::DynamoAlertStore;
use flyhigh_aws::dynamodb::DynamoInventoryStore;
use flyhigh_aws::sns::SnsTopic;
use flyhigh_aws::sqs::SqsQueue;
use flyhigh_handlers::demand::FlightWatch;
use flyhigh_handlers::{FlightAlerts, InventoryHandler};
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_support::init_tracing();
    let table = lambda_support::required("INVENTORY_TABLE")?;
    let queue_url = lambda_support::required("DEAD_LETTER_QUEUE_URL")?;
    let alerts = (
        lambda_support::optional("ALERTS_TABLE"),
        lambda_support::optional("ALERTS_TOPIC_ARN"),
    );
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let handler = InventoryHandler::new(
        DynamoInventoryStore::new(dynamodb.clone(), table),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url),
    );
    match alerts {
        (Some(alerts_table), Some(topic_arn)) => {
            tracing::info!(alerts_table, topic_arn, "flight alerts on");
            serve(handler.with_flight_watch(FlightAlerts::new(
                DynamoAlertStore::new(dynamodb, alerts_table),
                SnsTopic::new(aws_sdk_sns::Client::new(&config), topic_arn),
            )))
            .await
        }
        (None, None) => {
            tracing::info!("flight alerts off: ALERTS_TABLE and ALERTS_TOPIC_ARN are not set");
            serve(handler).await
        }
        (table, topic) => {
            tracing::warn!(
                alerts_table = table.is_some(),
                alerts_topic_arn = topic.is_some(),
                "flight alerts off: they need both ALERTS_TABLE and ALERTS_TOPIC_ARN"
            );
            serve(handler).await
        }
    }
}

/// Serves `handler` until the runtime stops: one handler type per watch.
async fn serve<W: FlightWatch>(
    handler: InventoryHandler<DynamoInventoryStore, SqsQueue, W>,
) -> Result<(), Error> {
    lambda_support::serve_kinesis(|event| handler.handle(event)).await
}
