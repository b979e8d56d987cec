//! With `metrics_emf_namespace` set, the producer prints its metrics to stdout as
//! CloudWatch Embedded Metric Format documents (what Lambda and the awslogs driver
//! turn into metrics). The test runs itself again as a child process, so that it
//! can read the child's real stdout.

use std::process::Command;
use std::time::Duration;

use flyhigh_producer::{LocalStream, MemoryDeadLetters, Producer};

const CHILD: &str = "FLYHIGH_EMF_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_go_to_stdout_as_emf_documents_at_each_interval_and_at_close() {
    if std::env::var_os(CHILD).is_some() {
        let producer = Producer::builder()
            .dead_letters(MemoryDeadLetters::new())
            .metrics_interval(Duration::from_secs(1))
            .metrics_emf_namespace("FlyHigh/Producer")
            .build_with(LocalStream::new("emf-stream", 2))
            .await
            .expect("producer");
        for i in 0..50 {
            producer
                .send_record(&format!("FH{i:04}-20261201"), b"{}".to_vec())
                .await
                .unwrap();
        }
        producer.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        producer.close().await;
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "metrics_go_to_stdout_as_emf_documents_at_each_interval_and_at_close",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("the child runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let documents: Vec<serde_json::Value> = stdout
        .lines()
        // The test harness may print its "test ... " prefix on the first line.
        .filter_map(|l| l.find("{\"").map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).expect("each EMF line is one JSON document"))
        .collect();
    let stream_docs: Vec<&serde_json::Value> = documents
        .iter()
        .filter(|d| d.get("ShardId").is_none())
        .collect();
    assert!(
        stream_docs.len() >= 2,
        "one at the interval, one at close: {stdout}"
    );
    for d in &documents {
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "FlyHigh/Producer");
        assert_eq!(d["StreamName"], "emf-stream");
        assert!(d["_aws"]["Timestamp"].is_u64());
    }
    // Counters are changes since the previous document: they add up to the total.
    let written: u64 = stream_docs
        .iter()
        .map(|d| d["UserRecordsWritten"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(written, 50);
    let shards: std::collections::BTreeSet<&str> = documents
        .iter()
        .filter_map(|d| d.get("ShardId").and_then(|s| s.as_str()))
        .collect();
    assert_eq!(shards.len(), 2, "one document per shard: {shards:?}");
}
