//! `flyhigh dead-letters list | replay` with the PRODUCER's letters, run as the built
//! binary: a `FileDeadLetters` file replayed to a kinesalite stream (every letter
//! once, per key in file order; a second replay puts nothing), an `SqsDeadLetters`
//! queue on moto replayed to a moto stream (messages deleted once written), and
//! `--sqlite` refusing producer letters in one line.
//!
//! Needs `FLYHIGH_KINESALITE_URL` (`scripts/kinesalite.sh start && source
//! target/kinesalite.env`) and `FLYHIGH_MOTO_URL` (`scripts/moto.sh start && source
//! target/moto.env`); `scripts/test.sh` sets both.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use flyhigh_producer::aws_sdk_sqs;
use flyhigh_producer::schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_producer::{
    DeadLetter, DeadLetterReason, DeadLetterSink, FileDeadLetters, SqsDeadLetters,
};
use flyhigh_testkit::{
    create_stream, kinesalite_url, kinesis_client, moto_url, read_all, unique_name,
};
use serde_json::Value;

/// Letters in the file: several keys, JSON and bytes that are not UTF-8.
const LETTERS: usize = 60;
const KEYS: usize = 5;

fn flyhigh_at(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flyhigh"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run flyhigh")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn letter(i: usize) -> DeadLetter {
    let key = format!("FH{:04}-20261201", i % KEYS);
    let data = if i % 7 == 6 {
        vec![0xff, 0x00, i as u8]
    } else {
        format!(r#"{{"seq":{i},"flight_id":"{key}"}}"#).into_bytes()
    };
    let at = chrono::DateTime::from_timestamp_millis(1_795_000_000_000 + i as i64).unwrap();
    DeadLetter {
        partition_key: key,
        data,
        reason: if i.is_multiple_of(3) {
            DeadLetterReason::Rejected
        } else {
            DeadLetterReason::Expired
        },
        error: "ProvisionedThroughputExceededException: Rate exceeded for shard".into(),
        attempts: 5,
        accepted_at: at,
        dead_lettered_at: at + chrono::Duration::seconds(120),
    }
}

/// Every user record of the stream, per partition key in stream order.
async fn on_stream(
    client: &flyhigh_producer::aws_sdk_kinesis::Client,
    stream: &str,
) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (_, record) in read_all(client, stream).await.expect("read the stream") {
        match deaggregate(record.data().as_ref()).expect("a record") {
            Deaggregated::Aggregated(users) => {
                for u in users.iter() {
                    by_key
                        .entry(u.partition_key.to_string())
                        .or_default()
                        .push(u.data.to_vec());
                }
            }
            Deaggregated::Single(data) => by_key
                .entry(record.partition_key().unwrap_or_default().to_owned())
                .or_default()
                .push(data.to_vec()),
        }
    }
    by_key
}

fn by_key(letters: &[DeadLetter]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for l in letters {
        by_key
            .entry(l.partition_key.clone())
            .or_default()
            .push(l.data.clone());
    }
    by_key
}

async fn write_file(path: &Path, letters: &[DeadLetter]) {
    let sink = FileDeadLetters::new(path);
    sink.check().await.expect("a writable directory");
    // Two writes, as the producer's dead-letter task makes them.
    let (first, rest) = letters.split_at(letters.len() / 2);
    sink.write(first.to_vec()).await.unwrap();
    sink.write(rest.to_vec()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_dead_letter_file_is_replayed_to_kinesis_once_in_order_per_key() {
    let endpoint = kinesalite_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("cli-producer-replay");
    create_stream(&kinesis, &stream, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("producer-dead-letters.jsonl");
    let letters: Vec<DeadLetter> = (0..LETTERS).map(letter).collect();
    write_file(&file, &letters).await;
    let f = file.to_str().unwrap();

    let o = flyhigh_at(&endpoint, &["dead-letters", "list", "--file", f, "--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["counts"]["total"], LETTERS);
    assert_eq!(
        v["counts"]["by_reason"]["rejected"]["producer"],
        LETTERS / 3
    );
    assert_eq!(
        v["counts"]["by_reason"]["expired"]["producer"],
        LETTERS - LETTERS / 3
    );
    assert_eq!(v["first"][0]["partition_key"], letters[0].partition_key);
    assert_eq!(
        v["first"][0]["data_base64"],
        base64::engine::general_purpose::STANDARD.encode(&letters[0].data)
    );
    let o = flyhigh_at(&endpoint, &["dead-letters", "list", "--file", f]);
    assert!(
        out(&o)
            .lines()
            .any(|l| l.contains("expired") && l.contains("producer"))
            && out(&o).contains("60 dead letters"),
        "{}",
        out(&o)
    );

    let replay = || {
        flyhigh_at(
            &endpoint,
            &["dead-letters", "replay", "--file", f, "--stream", &stream],
        )
    };
    let o = replay();
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains(&format!("replayed {LETTERS} letters to stream {stream}"))
            && out(&o).contains("0 failed again"),
        "{}",
        out(&o)
    );
    let expected = by_key(&letters);
    assert_eq!(
        on_stream(&kinesis, &stream).await,
        expected,
        "every letter once, per key in file order"
    );

    // The ledger: a second replay puts nothing.
    let o = replay();
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("replayed 0 letters")
            && out(&o).contains(&format!("{LETTERS} already replayed")),
        "{}",
        out(&o)
    );
    assert_eq!(
        on_stream(&kinesis, &stream).await,
        expected,
        "nothing twice"
    );
    let ledger = std::fs::read_to_string(
        dir.path()
            .join("producer-dead-letters.jsonl.replayed.jsonl"),
    )
    .unwrap();
    assert_eq!(ledger.lines().count(), LETTERS);

    // Only some reasons, into a fresh ledger: the others are counted, not replayed.
    let other_ledger = dir.path().join("other.jsonl");
    let o = flyhigh_at(
        &endpoint,
        &[
            "dead-letters",
            "replay",
            "--file",
            f,
            "--stream",
            &stream,
            "--reason-kind",
            "rejected",
            "--ledger",
            other_ledger.to_str().unwrap(),
            "--max",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("replayed 3 letters")
            && out(&o).contains(&format!("{} of another reason_kind", LETTERS - LETTERS / 3)),
        "{}",
        out(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_is_one_line_before_any_producer_letter_is_replayed() {
    let endpoint = kinesalite_url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("producer-dead-letters.jsonl");
    write_file(&file, &[letter(0), letter(1)]).await;
    let o = flyhigh_at(
        &endpoint,
        &[
            "dead-letters",
            "replay",
            "--file",
            file.to_str().unwrap(),
            "--stream",
            "no-such-stream",
        ],
    );
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.starts_with("error: ") && e.lines().count() <= 2, "{e}");
    assert!(
        e.contains("no-such-stream") && e.contains("does not exist"),
        "{e}"
    );
    assert!(
        !dir.path()
            .join("producer-dead-letters.jsonl.replayed.jsonl")
            .exists()
            || std::fs::read_to_string(
                dir.path()
                    .join("producer-dead-letters.jsonl.replayed.jsonl")
            )
            .unwrap()
            .is_empty(),
        "nothing recorded"
    );
}

#[test]
fn sqlite_refuses_producer_letters_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("producer-dead-letters.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            letter(0).to_json_line(),
            letter(1).to_json_line()
        ),
    )
    .unwrap();
    let db = dir.path().join("inventory.sqlite");
    let o = flyhigh_at(
        "http://127.0.0.1:9",
        &[
            "dead-letters",
            "replay",
            "--file",
            file.to_str().unwrap(),
            "--sqlite",
            db.to_str().unwrap(),
        ],
    );
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.starts_with("error: ") && e.lines().count() <= 2, "{e}");
    assert!(
        e.contains("2 producer dead letters") && e.contains("--stream"),
        "{e}"
    );
    assert!(!db.exists(), "no inventory created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_dead_letter_queue_is_replayed_and_emptied() {
    let endpoint = moto_url();
    let config = flyhigh_producer::aws_config::defaults(
        flyhigh_producer::aws_config::BehaviorVersion::latest(),
    )
    .endpoint_url(&endpoint)
    .region(flyhigh_producer::aws_config::Region::new("us-east-1"))
    .credentials_provider(aws_sdk_sqs::config::Credentials::new(
        "testing", "testing", None, None, "static",
    ))
    .load()
    .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = unique_name("cli-producer-dlq");
    sqs.create_queue().queue_name(&queue).send().await.unwrap();
    let kinesis = flyhigh_producer::aws_sdk_kinesis::Client::new(&config);
    let stream = unique_name("cli-producer-events");
    // One shard: the producer then sends one request at a time, which moto needs.
    create_stream(&kinesis, &stream, 1).await.unwrap();
    let sink = SqsDeadLetters::from_queue_name(sqs.clone(), &queue)
        .await
        .unwrap();
    let letters: Vec<DeadLetter> = (0..25).map(letter).collect();
    sink.write(letters.clone()).await.unwrap();

    let o = flyhigh_at(
        &endpoint,
        &["dead-letters", "list", "--queue", &queue, "--json"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["counts"]["total"], 25, "{v}");
    assert_eq!(v["counts"]["by_reason"]["rejected"]["producer"], 9);

    // Expired ones only: the rejected stay in the queue.
    let o = flyhigh_at(
        &endpoint,
        &[
            "dead-letters",
            "replay",
            "--queue",
            &queue,
            "--stream",
            &stream,
            "--reason-kind",
            "expired",
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("replayed 16 letters") && out(&o).contains("9 of another reason_kind"),
        "{}",
        out(&o)
    );
    let expired: Vec<DeadLetter> = letters
        .iter()
        .filter(|l| l.reason == DeadLetterReason::Expired)
        .cloned()
        .collect();
    assert_eq!(
        on_stream(&kinesis, &stream).await,
        by_key(&expired),
        "the queue's letters in acceptance order"
    );
    let o = flyhigh_at(
        &endpoint,
        &["dead-letters", "list", "--queue", &queue, "--json"],
    );
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        v["counts"]["total"], 9,
        "replayed messages were deleted: {v}"
    );
    assert_eq!(v["counts"]["by_reason"]["rejected"]["producer"], 9);
}
