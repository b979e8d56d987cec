//! The ingest Lambda: the ingest API (`flyhigh_ingest::Ingest::router`, the same
//! router `flyhigh serve` serves) behind API Gateway (HTTP API, payload 2.0, with a
//! JWT authorizer) or a function URL, sending to Kinesis with the producer and
//! remembering event ids in a DynamoDB ledger (`flyhigh_ingest::DynamoLedger`).
//!
//! Wiring only: the request context's verified JWT claims become the request's
//! `flyhigh_ingest::Caller` (`flyhigh_ingest::CallerSources::caller_for`); the router
//! does the rest, and answers 401 to a request without a caller. Configuration, read
//! once at cold start:
//! - `STREAM_NAME`: the Kinesis stream to write to (checked at start-up);
//! - `LEDGER_TABLE`: the ledger table (key `event_id`, TTL on `expires_at`; see
//!   `flyhigh_ingest::dynamodb`);
//! - `DEAD_LETTER_QUEUE_URL` (optional): the SQS queue for the producer's dead
//!   letters (records it could not write within their time-to-live; none of them
//!   was answered `accepted`). Unset: a JSON-lines file in `/tmp`
//!   ([`DEFAULT_DEAD_LETTER_FILE`]), which dies with the instance;
//! - `REQUEST_BUDGET_MS` (optional, default
//!   `flyhigh_ingest::limits::DEFAULT_REQUEST_BUDGET`, 10 s): how long a request
//!   waits for its events to be durable before answering them `retry`. Keep it well
//!   under the function's timeout;
//! - `CORS_ORIGINS` (optional): comma-separated web origins (or `*`) allowed to post
//!   from a browser;
//! - `SOURCE_CLAIM` (optional, default `client_id`): the JWT claim naming the caller;
//! - `CALLER_SOURCES` (optional, default `{}`: nobody may send): a JSON object from
//!   that claim's values to the event sources each may send, e.g.
//!   `{"3abc...": ["ios-app"], "ops": ["*"]}`;
//! - `ALLOW_UNAUTHENTICATED` (optional, default `false`): `true` lets a request
//!   without JWT claims send any source. Only for a function URL with `AWS_IAM` auth
//!   (IAM has already decided who may invoke it) or tests;
//! - `RUST_LOG`: the log filter.
//!
//! The SDK's own variables apply (`AWS_REGION`, `AWS_ENDPOINT_URL_KINESIS`...). IAM:
//! `kinesis:PutRecords`, `kinesis:ListShards`, `kinesis:DescribeStreamSummary`;
//! `dynamodb:PutItem`, `UpdateItem`, `DeleteItem`, `GetItem` on the ledger table;
//! `sqs:SendMessage`, `sqs:GetQueueAttributes` on the dead-letter queue.

use std::collections::HashMap;
use std::time::Duration;

use flyhigh_ingest::claims::DEFAULT_SOURCE_CLAIM;
use flyhigh_ingest::{Auth, CallerSources, DynamoLedger, Ingest};
use flyhigh_producer::{Producer, SqsDeadLetters};
use lambda_http::request::RequestContext;
use lambda_http::{Error, Request, RequestExt};

/// Where dead letters go without `DEAD_LETTER_QUEUE_URL` (`/tmp` is a Lambda's only
/// writable directory).
pub const DEFAULT_DEAD_LETTER_FILE: &str = "/tmp/flyhigh-ingest-dead-letters.jsonl";

/// How long the producer waits to fill a batch: short, since every request waits
/// for its own events.
const LINGER: Duration = Duration::from_millis(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_support::init_tracing();
    let stream = lambda_support::required("STREAM_NAME")?;
    let table = lambda_support::required("LEDGER_TABLE")?;
    let dead_letter_queue = lambda_support::optional("DEAD_LETTER_QUEUE_URL");
    let request_budget = match lambda_support::optional("REQUEST_BUDGET_MS") {
        Some(_) => Some(Duration::from_millis(lambda_support::number::<u64>(
            "REQUEST_BUDGET_MS",
            0,
        )?)),
        None => None,
    };
    let cors_origins: Vec<String> = lambda_support::optional("CORS_ORIGINS")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let claim = lambda_support::optional("SOURCE_CLAIM")
        .unwrap_or_else(|| DEFAULT_SOURCE_CLAIM.to_string());
    let callers = CallerSources::parse(
        claim,
        &lambda_support::optional("CALLER_SOURCES").unwrap_or_default(),
    )?;
    let allow_unauthenticated = lambda_support::number::<bool>("ALLOW_UNAUTHENTICATED", false)?;

    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let producer = Producer::builder()
        .stream(stream)
        .kinesis(&sdk)
        .linger(LINGER);
    let producer = match dead_letter_queue {
        Some(url) => producer.dead_letters(SqsDeadLetters::from_sdk_config(&sdk, url)),
        None => producer.dead_letters_file(DEFAULT_DEAD_LETTER_FILE),
    }
    .build()
    .await?;
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let mut ingest = Ingest::new(producer, ledger)
        .with_auth(Auth::FromHost)
        .with_cors_origins(cors_origins);
    if let Some(budget) = request_budget {
        ingest = ingest.with_request_budget(budget);
    }
    tracing::info!(
        callers = callers.len(),
        claim = callers.claim(),
        allow_unauthenticated,
        "ingest ready"
    );
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut request: Request| {
            if let Some(caller) = callers.caller_for(jwt_claims(&request), allow_unauthenticated) {
                request.extensions_mut().insert(caller);
            }
            request
        })
        .service(ingest.router());
    lambda_http::run(service).await
}

/// The claims API Gateway's JWT authorizer verified, if the request has any.
fn jwt_claims(request: &Request) -> Option<&HashMap<String, String>> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()
            .map(|jwt| &jwt.claims)
            .filter(|claims| !claims.is_empty()),
        // Other event sources, when features unified elsewhere enable them.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
