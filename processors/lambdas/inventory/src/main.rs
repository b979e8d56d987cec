//! The inventory Lambda: Kinesis batches → seat inventory in DynamoDB.
//!
//! Wiring only. Configuration (read once at cold start):
//! - `INVENTORY_TABLE`: the DynamoDB table (see `flyhigh-aws` for its design);
//! - `DEAD_LETTER_QUEUE_URL`: the SQS queue for poison records.
//!
//! The event source mapping must enable `ReportBatchItemFailures`.

use aws_lambda_events::event::kinesis::KinesisEvent;
use flyhigh_aws::dynamodb::DynamoInventoryStore;
use flyhigh_aws::sqs::SqsQueue;
use flyhigh_handlers::InventoryHandler;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let table = std::env::var("INVENTORY_TABLE").map_err(|_| "INVENTORY_TABLE is not set")?;
    let queue_url =
        std::env::var("DEAD_LETTER_QUEUE_URL").map_err(|_| "DEAD_LETTER_QUEUE_URL is not set")?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = InventoryHandler::new(
        DynamoInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), table),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url),
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(handler.handle(event.payload).await)
        },
    ))
    .await
}
