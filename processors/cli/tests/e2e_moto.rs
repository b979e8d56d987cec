//! End to end against moto server, through the real AWS SDK clients:
//! simulator → producer → Kinesis → local runner → inventory handler → DynamoDB,
//! with poison records dead-lettered to SQS, and the stored inventory compared with an
//! independent recomputation from the generated events.
//!
//! Needs `FLYHIGH_MOTO_URL` (set by `scripts/test.sh`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use flyhigh_aws::dynamodb::{DynamoInventoryStore, create_table};
use flyhigh_aws::kinesis::{KinesisSource, create_stream};
use flyhigh_aws::sqs::{SqsQueue, create_queue};
use flyhigh_core::InventoryStore;
use flyhigh_handlers::InventoryHandler;
use flyhigh_producer::{Entry, KinesisTransport, Producer, ProducerConfig, Transport};
use flyhigh_runner::{MappingConfig, Runner, handler_fn};
use flyhigh_simulator::{ExpectedInventory, SimConfig, Simulator, compare};

const EVENTS: usize = 2_500;

async fn sdk_config() -> aws_config::SdkConfig {
    let url = std::env::var("FLYHIGH_MOTO_URL")
        .expect("FLYHIGH_MOTO_URL is not set: run scripts/test.sh, or scripts/moto.sh start && source target/moto.env");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_traffic_through_kinesis_and_dynamodb_matches_the_recomputation() {
    let config = sdk_config().await;
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    let (stream, table) = (
        format!("e2e-events-{suffix}"),
        format!("e2e-inventory-{suffix}"),
    );
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    create_stream(&kinesis, &stream, 2).await.unwrap();
    create_table(&dynamodb, &table).await.unwrap();
    let dlq_url = create_queue(&sqs, &format!("e2e-dlq-{suffix}"))
        .await
        .unwrap();
    let failures_url = create_queue(&sqs, &format!("e2e-failures-{suffix}"))
        .await
        .unwrap();

    // Produce: schedule into the table, events into the stream.
    let events: Vec<_> = Simulator::new(SimConfig::new(7, EVENTS)).unwrap().collect();
    let mut sim = Simulator::new(SimConfig::new(7, EVENTS)).unwrap();
    // moto copies the whole table for every item of a transaction, so the test loads
    // only the flights its events touch (plus a few it does not) to stay fast.
    let touched: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            flyhigh_schemas::Payload::Booking(b) => Some(b.flight_id.clone()),
            _ => None,
        })
        .collect();
    let mut schedule = sim.schedule();
    let total_flights = schedule.flights.len();
    schedule.flights.retain(|f| touched.contains(&f.flight_id));
    schedule.flights.extend(
        sim.schedule()
            .flights
            .into_iter()
            .filter(|f| !touched.contains(&f.flight_id))
            .take(10),
    );
    assert!(schedule.flights.len() < total_flights);
    let store = DynamoInventoryStore::new(dynamodb.clone(), &table);
    store.load_schedule(&schedule).await.unwrap();
    let transport = KinesisTransport::new(kinesis.clone(), &stream);
    // One request at a time: moto loses records under concurrent puts to a stream.
    let producer = Producer::new(
        transport.clone(),
        ProducerConfig {
            max_requests_in_flight: 1,
            dead_letters: std::sync::Arc::new(flyhigh_producer::MemoryDeadLetters::new()),
            ..ProducerConfig::default()
        },
    );
    let mut expected = ExpectedInventory::new();
    for event in sim.by_ref() {
        expected.add(&event);
        producer.send(&event).await.unwrap();
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);
    assert_eq!(report.records_written, EVENTS as u64);
    // Aggregated: far fewer Kinesis records than events.
    let metrics = producer.metrics();
    assert!(
        metrics.kinesis_records_written * 10 < EVENTS as u64,
        "{metrics:?}"
    );
    // Poison, written after the producer is done: moto loses records under concurrent puts.
    let poison = [
        b"\xff\xfe garbage".to_vec(),
        b"{\"event_type\":\"booking\"".to_vec(),
        br#"{"event_type":"refund","schema_version":1}"#.to_vec(),
    ];
    let entries: Vec<Entry> = poison
        .iter()
        .enumerate()
        .map(|(i, d)| Entry::new(format!("poison-{i}"), d.clone()))
        .collect();
    transport.put_records(&entries).await.unwrap();

    // Consume until idle.
    let handler = InventoryHandler::new(store, SqsQueue::new(sqs.clone(), &dlq_url));
    let runner = Runner::new(MappingConfig {
        batch_size: 200,
        idle_timeout: Some(Duration::from_secs(2)),
        poll_interval: Duration::from_millis(50),
        region: "us-east-1".into(),
        // moto's DynamoDB transactions race under concurrent writers.
        shard_concurrency: Some(1),
        ..MappingConfig::default()
    });
    let handler = &handler;
    let invoke = handler_fn(|event| async move { Ok(handler.handle(event).await) });
    let stats = runner
        .run(
            &KinesisSource::new(kinesis, &stream),
            &invoke,
            &SqsQueue::new(sqs.clone(), &failures_url),
        )
        .await
        .unwrap();
    // The runner counts Kinesis records: the producer's aggregates plus the three
    // plain poison records; the handler counts the user records inside them.
    assert_eq!(stats.records_read, metrics.kinesis_records_written + 3);
    assert_eq!(handler.stats().user_records, EVENTS as u64 + 3);
    assert_eq!(stats.batches_to_failure_destination, 0);

    let stored = handler.store().inventory().await.unwrap();
    let expected = expected.finish();
    assert!(
        expected.values().sum::<i64>() > 0,
        "the simulation sold no seats"
    );
    let differences = compare(&expected, &stored);
    assert!(
        differences.is_empty(),
        "{} cabins differ, first {:?}",
        differences.len(),
        differences.first()
    );
    assert_eq!(handler.stats().dead_lettered, 3);
    let sim_stats = sim.stats();
    assert!(
        sim_stats.duplicate_bookings + sim_stats.early_cancellations > 0,
        "the run exercised no duplicate or early cancellation"
    );

    // The dead letters are in SQS, with their reasons.
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let letter: flyhigh_core::DeadLetter = serde_json::from_str(m.body().unwrap()).unwrap();
            reasons.push(letter.reason_kind);
        }
        if reasons.len() >= 3 {
            break;
        }
    }
    reasons.sort();
    assert_eq!(reasons, ["not_json", "not_utf8", "unknown_event_type"]);
}
