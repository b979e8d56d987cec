//! `SqsQueue` against moto, through the real SDK client: what is sent is received
//! back and compared.
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own queue.

#![cfg(feature = "sqs")]

mod common;

use aws_sdk_sqs::Client;
use flyhigh_aws::sqs::{MAX_BATCH_BYTES, SqsQueue, create_queue};
use flyhigh_core::{DeadLetter, DeadLetterSink};

async fn queue() -> (Client, SqsQueue) {
    let client = Client::new(&common::sdk_config().await);
    let url = create_queue(&client, &common::unique_name("dlq"))
        .await
        .expect("create queue");
    (client.clone(), SqsQueue::new(client, url))
}

fn letter(i: usize) -> DeadLetter {
    DeadLetter {
        processor: if i.is_multiple_of(2) {
            "inventory"
        } else {
            "archive"
        }
        .into(),
        shard_id: "shardId-000000000001".into(),
        sequence_number: format!("4959033827149025660855969253836157109592157598913658{i:04}"),
        sub_sequence_number: None,
        partition_key: format!("FH{i}-20261201"),
        approximate_arrival: chrono::DateTime::from_timestamp_millis(1_795_000_000_000 + i as i64),
        reason_kind: "invalid_field".into(),
        reason: format!("seats: {i} is not between 1 and 9"),
        data_base64: "eyJzZWF0cyI6IDB9".into(),
    }
}

#[tokio::test]
async fn dead_letters_arrive_as_json_with_filterable_attributes() {
    let (client, queue) = queue().await;
    let letters: Vec<DeadLetter> = (0..3).map(letter).collect();
    queue.send(&letters).await.expect("send");
    let mut received = common::receive(&client, queue.queue_url(), 3, 0).await;
    assert_eq!(received.len(), 3);
    for r in &received {
        let got: DeadLetter = serde_json::from_str(&r.body).expect("JSON body");
        let sent = letters
            .iter()
            .find(|l| l.sequence_number == got.sequence_number)
            .expect("a letter we sent");
        assert_eq!(&got, sent);
        assert_eq!(r.attributes["processor"], sent.processor);
        assert_eq!(r.attributes["reason_kind"], sent.reason_kind);
    }
    received.sort_by(|a, b| a.body.cmp(&b.body));
    received.dedup_by(|a, b| a.body == b.body);
    assert_eq!(received.len(), 3, "three distinct letters");
}

#[tokio::test]
async fn more_than_ten_letters_are_sent_in_several_batches() {
    let (client, queue) = queue().await;
    let letters: Vec<DeadLetter> = (0..23).map(letter).collect();
    queue.send(&letters).await.expect("send");
    let received = common::receive(&client, queue.queue_url(), 23, 0).await;
    let mut got: Vec<DeadLetter> = received
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("JSON"))
        .collect();
    got.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
    assert_eq!(got, letters);
}

#[tokio::test]
async fn a_letter_too_big_for_sqs_arrives_without_its_data() {
    // moto accepts messages over 256 KiB; SQS does not. The limit is ours to keep.
    let (client, queue) = queue().await;
    let mut big = letter(1);
    big.data_base64 = "A".repeat(MAX_BATCH_BYTES);
    queue.send(&[big.clone(), letter(2)]).await.expect("send");
    let received = common::receive(&client, queue.queue_url(), 2, 0).await;
    let r = received
        .iter()
        .find(|r| r.attributes.contains_key("data_omitted_base64_chars"))
        .expect("slimmed letter");
    assert_eq!(
        r.attributes["data_omitted_base64_chars"],
        MAX_BATCH_BYTES.to_string()
    );
    let sent: DeadLetter = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(
        sent,
        DeadLetter {
            data_base64: String::new(),
            ..big
        }
    );
}

#[tokio::test]
async fn no_letters_send_nothing() {
    let (client, queue) = queue().await;
    queue.send(&[]).await.expect("send nothing");
    let page = client
        .receive_message()
        .queue_url(queue.queue_url())
        .send()
        .await
        .expect("receive");
    assert!(page.messages().is_empty());
}

#[cfg(feature = "runner")]
#[tokio::test]
async fn a_failed_batch_arrives_as_json() {
    use flyhigh_runner::failure::{BatchFailure, FailureDestination, KinesisBatchInfo};

    let (client, queue) = queue().await;
    let at = chrono::DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
    let failure = BatchFailure {
        condition: "RetryAttemptsExhausted".into(),
        attempts: 3,
        timestamp: at,
        kinesis_batch_info: KinesisBatchInfo {
            shard_id: "shardId-000000000000".into(),
            start_sequence_number: "1".into(),
            end_sequence_number: "12".into(),
            approximate_arrival_of_first_record: at,
            approximate_arrival_of_last_record: at,
            batch_size: 12,
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/bookings".into(),
        },
        records_base64: vec!["e30=".into()],
    };
    FailureDestination::send(&queue, &failure)
        .await
        .expect("send");
    let received = common::receive(&client, queue.queue_url(), 1, 0).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        serde_json::from_str::<BatchFailure>(&received[0].body).expect("JSON"),
        failure
    );
    assert_eq!(received[0].attributes["kind"], "batch_failure");
    assert_eq!(received[0].attributes["shard_id"], "shardId-000000000000");
}

#[tokio::test]
async fn create_queue_is_idempotent() {
    let client = Client::new(&common::sdk_config().await);
    let name = common::unique_name("twice");
    let first = create_queue(&client, &name).await.expect("first");
    let second = create_queue(&client, &name).await.expect("second");
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_missing_queue_is_a_permanent_error() {
    let (_, queue) = queue().await;
    let missing = SqsQueue::new(
        Client::new(&common::sdk_config().await),
        format!("{}-missing", queue.queue_url()),
    );
    let err = missing.send(&[letter(0)]).await.unwrap_err();
    assert!(
        matches!(err, flyhigh_core::StoreError::Permanent(_)),
        "{err:?}"
    );
}
