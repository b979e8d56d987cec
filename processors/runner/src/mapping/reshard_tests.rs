//! Lineage, re-listing, bisection and restarts, over a stream of our own that can
//! reshard while the runner reads it (the in-process `LocalStream` never reshards).

use std::sync::Mutex;

use super::*;
use crate::checkpoint::FileCheckpoints;
use crate::source::compare_sequence_numbers;

/// A stream whose shards are added, closed and dropped by the test.
///
/// Sequence numbers are one counter for the whole stream, written without padding
/// (`"9"`, `"10"`...), so that resuming must compare them as integers.
#[derive(Clone, Default)]
struct ReshardStream {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    shards: Vec<TestShard>,
    next_sequence: u64,
    opened: Vec<(String, StartPosition)>,
}

struct TestShard {
    info: SourceShard,
    records: Vec<SourceRecord>,
    closed: bool,
    listed: bool,
}

impl ReshardStream {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    fn add(&self, shard_id: &str, parents: &[&str]) {
        self.lock().shards.push(TestShard {
            info: SourceShard {
                shard_id: shard_id.into(),
                parent_shard_id: parents.first().map(|p| p.to_string()),
                adjacent_parent_shard_id: parents.get(1).map(|p| p.to_string()),
            },
            records: Vec::new(),
            closed: false,
            listed: true,
        });
    }

    /// Appends records named `<shard_id>/<i>` for `i` in `range`.
    fn put(&self, shard_id: &str, range: std::ops::Range<usize>) {
        let mut inner = self.lock();
        for i in range {
            inner.next_sequence += 1;
            let sequence_number = inner.next_sequence.to_string();
            let shard = inner
                .shards
                .iter_mut()
                .find(|s| s.info.shard_id == shard_id)
                .unwrap();
            assert!(!shard.closed, "put to closed shard {shard_id}");
            shard.records.push(SourceRecord {
                sequence_number,
                partition_key: format!("k{i}"),
                approximate_arrival: Utc::now(),
                data: format!("{shard_id}/{i}").into_bytes(),
            });
        }
    }

    fn close(&self, shard_id: &str) {
        self.shard(shard_id, |s| s.closed = true);
    }

    /// Drops a shard from the listing, as trimming does to an old closed shard.
    fn trim(&self, shard_id: &str) {
        self.shard(shard_id, |s| s.listed = false);
    }

    /// Closes `parent` and lists two children of it.
    fn split(&self, parent: &str, children: [&str; 2]) {
        self.close(parent);
        for child in children {
            self.add(child, &[parent]);
        }
    }

    fn shard(&self, shard_id: &str, f: impl FnOnce(&mut TestShard)) {
        let mut inner = self.lock();
        f(inner
            .shards
            .iter_mut()
            .find(|s| s.info.shard_id == shard_id)
            .unwrap());
    }

    fn opened(&self) -> Vec<(String, StartPosition)> {
        self.lock().opened.clone()
    }
}

struct TestReader {
    stream: ReshardStream,
    shard_id: String,
    position: usize,
}

impl ShardReader for TestReader {
    async fn read(&mut self, limit: usize) -> Result<ReadOutcome, SourceError> {
        let inner = self.stream.lock();
        let shard = inner
            .shards
            .iter()
            .find(|s| s.info.shard_id == self.shard_id)
            .ok_or_else(|| SourceError::Permanent(format!("no shard {}", self.shard_id)))?;
        if self.position >= shard.records.len() && shard.closed {
            return Ok(ReadOutcome::Ended);
        }
        let end = shard.records.len().min(self.position + limit);
        let records = shard.records[self.position..end].to_vec();
        self.position = end;
        Ok(ReadOutcome::Records(records))
    }
}

impl StreamSource for ReshardStream {
    type Reader = TestReader;

    fn stream_arn(&self) -> String {
        "arn:aws:kinesis:local:000000000000:stream/reshard".into()
    }

    async fn shards(&self) -> Result<Vec<SourceShard>, SourceError> {
        Ok(self
            .lock()
            .shards
            .iter()
            .filter(|s| s.listed)
            .map(|s| s.info.clone())
            .collect())
    }

    async fn open(&self, shard_id: &str, start: StartPosition) -> Result<TestReader, SourceError> {
        let mut inner = self.lock();
        inner.opened.push((shard_id.to_string(), start.clone()));
        let records = &inner
            .shards
            .iter()
            .find(|s| s.info.shard_id == shard_id)
            .ok_or_else(|| SourceError::Permanent(format!("no shard {shard_id}")))?
            .records;
        let position = match start {
            StartPosition::TrimHorizon => 0,
            StartPosition::Latest => records.len(),
            StartPosition::AfterSequenceNumber(seq) => records
                .iter()
                .position(|r| compare_sequence_numbers(&r.sequence_number, &seq).is_gt())
                .unwrap_or(records.len()),
        };
        drop(inner);
        Ok(TestReader {
            stream: self.clone(),
            shard_id: shard_id.to_string(),
            position,
        })
    }
}

/// Records every batch; a batch holding a record named in `poison` fails, by a
/// function error or by reporting that record, as `report_item` says.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Vec<String>>>,
    poison: Vec<String>,
    report_item: bool,
    /// Invocations after which the handler never answers (a crash mid-batch).
    hang_after: Option<usize>,
}

impl Recorder {
    fn poisoned(poison: &[&str], report_item: bool) -> Recorder {
        Recorder {
            poison: poison.iter().map(|p| p.to_string()).collect(),
            report_item,
            ..Recorder::default()
        }
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.seen.lock().unwrap().clone()
    }

    /// Every record seen, in invocation order.
    fn records(&self) -> Vec<String> {
        self.batches().concat()
    }
}

impl Handler for Recorder {
    async fn handle(&self, event: KinesisEvent) -> Result<KinesisEventResponse, HandlerError> {
        let names: Vec<String> = event
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.kinesis.data.0).into_owned())
            .collect();
        let invocation = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(names.clone());
            seen.len()
        };
        if self.hang_after.is_some_and(|n| invocation > n) {
            std::future::pending::<()>().await;
        }
        // Let other shards' tasks run between batches, as real I/O would.
        tokio::task::yield_now().await;
        let mut response = KinesisEventResponse::default();
        if let Some(i) = names.iter().position(|n| self.poison.contains(n)) {
            if !self.report_item {
                return Err(HandlerError(format!("cannot handle {}", names[i])));
            }
            response.add_failure(event.records[i].kinesis.sequence_number.clone());
        }
        Ok(response)
    }
}

use crate::failure::MemoryFailures as Failures;

fn config(batch_size: usize) -> MappingConfig {
    MappingConfig {
        batch_size,
        retry_backoff: Duration::from_millis(1),
        poll_interval: Duration::from_millis(1),
        shard_refresh_interval: Duration::from_millis(20),
        ..MappingConfig::default()
    }
}

fn names(shard_id: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{shard_id}/{i}")).collect()
}

/// The records of one shard, in the order they were seen.
fn of_shard(seen: &[String], shard_id: &str) -> Vec<String> {
    seen.iter()
        .filter(|r| r.starts_with(&format!("{shard_id}/")))
        .cloned()
        .collect()
}

/// Position of the last record of `shard_id`, and of the first of each of `others`.
fn last_of(seen: &[String], shard_id: &str) -> usize {
    seen.iter()
        .rposition(|r| r.starts_with(&format!("{shard_id}/")))
        .unwrap()
}

fn first_of(seen: &[String], shard_id: &str) -> usize {
    seen.iter()
        .position(|r| r.starts_with(&format!("{shard_id}/")))
        .unwrap()
}

#[tokio::test]
async fn children_start_only_after_every_parent_is_drained() {
    // P splits into A and B; B and a root R merge into M. Every shard is listed from
    // the start, each with records, so a runner that ignored lineage would read
    // them all at once.
    let stream = ReshardStream::default();
    stream.add("P", &[]);
    stream.add("R", &[]);
    stream.put("P", 0..30);
    stream.put("R", 0..5);
    stream.split("P", ["A", "B"]);
    stream.put("A", 0..10);
    stream.put("B", 0..10);
    stream.close("A");
    stream.close("B");
    stream.close("R");
    stream.add("M", &["B", "R"]);
    stream.put("M", 0..10);
    stream.close("M");

    let handler = Recorder::default();
    let runner = Runner::new(config(3));
    let stats = runner
        .run(&stream, &handler, &Failures::default())
        .await
        .unwrap();
    let seen = handler.records();
    for (shard, n) in [("P", 30), ("R", 5), ("A", 10), ("B", 10), ("M", 10)] {
        assert_eq!(
            of_shard(&seen, shard),
            names(shard, 0..n),
            "{shard}: once, in order"
        );
    }
    assert!(last_of(&seen, "P") < first_of(&seen, "A"), "{seen:?}");
    assert!(last_of(&seen, "P") < first_of(&seen, "B"), "{seen:?}");
    assert!(last_of(&seen, "B") < first_of(&seen, "M"), "{seen:?}");
    assert!(last_of(&seen, "R") < first_of(&seen, "M"), "{seen:?}");
    assert_eq!(stats.shards_finished, 5);
    // Children start at their beginning whatever the mapping's start position.
    assert!(
        stream
            .opened()
            .iter()
            .filter(|(id, _)| ["A", "B", "M"].contains(&id.as_str()))
            .all(|(_, start)| *start == StartPosition::TrimHorizon)
    );
}

#[tokio::test]
async fn a_child_whose_parent_was_trimmed_is_read_at_once() {
    let stream = ReshardStream::default();
    stream.add("P", &[]);
    stream.split("P", ["A", "B"]);
    stream.trim("P");
    stream.put("A", 0..4);
    stream.put("B", 0..4);
    stream.close("A");
    stream.close("B");
    let handler = Recorder::default();
    Runner::new(config(10))
        .run(&stream, &handler, &Failures::default())
        .await
        .unwrap();
    let seen = handler.records();
    assert_eq!(of_shard(&seen, "A"), names("A", 0..4));
    assert_eq!(of_shard(&seen, "B"), names("B", 0..4));
}

#[tokio::test]
async fn shards_created_after_the_first_listing_are_found_and_read_after_their_parent() {
    let stream = ReshardStream::default();
    stream.add("P", &[]);
    stream.put("P", 0..10);
    let handler = Recorder::default();
    let runner = Runner::new(config(4));
    let failures = Failures::default();
    let reshard = async {
        wait_for(|| handler.records().len() >= 10).await;
        // A new root while P is still open: found by the periodic listing.
        stream.add("Q", &[]);
        stream.put("Q", 0..3);
        wait_for(|| handler.records().len() >= 13).await;
        // Then P splits; its last records come after the children exist.
        stream.put("P", 10..15);
        stream.split("P", ["A", "B"]);
        stream.put("A", 0..5);
        stream.put("B", 0..5);
        for shard in ["Q", "A", "B"] {
            stream.close(shard);
        }
    };
    let (stats, ()) = tokio::join!(runner.run(&stream, &handler, &failures), reshard);
    stats.unwrap();
    let seen = handler.records();
    assert_eq!(of_shard(&seen, "P"), names("P", 0..15));
    assert_eq!(of_shard(&seen, "Q"), names("Q", 0..3));
    assert_eq!(of_shard(&seen, "A"), names("A", 0..5));
    assert_eq!(of_shard(&seen, "B"), names("B", 0..5));
    assert!(last_of(&seen, "P") < first_of(&seen, "A"));
    assert!(last_of(&seen, "P") < first_of(&seen, "B"));
}

/// Waits (polling) until `done` holds; fails the test after 10 s.
async fn wait_for(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn bisect_isolates(report_item: bool) {
    let stream = ReshardStream::default();
    stream.add("S", &[]);
    stream.put("S", 0..8);
    stream.close("S");
    let handler = Recorder::poisoned(&["S/5"], report_item);
    let failures = Failures::default();
    let runner = Runner::new(MappingConfig {
        bisect_batch_on_function_error: true,
        max_retry_attempts: Some(2),
        ..config(8)
    });
    let stats = runner.run(&stream, &handler, &failures).await.unwrap();

    let sent = failures.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let info = &sent[0].kinesis_batch_info;
    assert_eq!(info.batch_size, 1, "only the poison record is given up");
    assert_eq!(sent[0].records_base64, ["Uy81"], "S/5 in base64");
    // Bisecting counted no retry: the lone record had its own 1 + 2 attempts.
    assert_eq!(sent[0].attempts, 3);

    // Every other record was handled in an invocation that succeeded, once, in order.
    let batches = handler.batches();
    let succeeded: Vec<String> = batches
        .iter()
        .filter(|b| !b.iter().any(|r| r == "S/5"))
        .flatten()
        .cloned()
        .collect();
    let mut expected = names("S", 0..8);
    expected.remove(5);
    if report_item {
        // A reported failure marks the records before it done: they are not sent
        // again, and the rest is retried, then bisected.
        assert_eq!(batches[0], names("S", 0..8));
        assert!(batches[1..].iter().flatten().all(|r| r.as_str() >= "S/5"));
        expected.retain(|r| r.as_str() > "S/5");
    }
    assert_eq!(succeeded, expected, "{batches:?}");
    assert_eq!(stats.records_done, 8);
    // By a function error: 8 → 4 + [4] → 2 + [2] → 1 + [1]; by a reported failure
    // at S/5, records 0..5 are done, the 3 left are retried whole (split at the
    // reported record), fail at their first record, and → 1 + 2.
    assert_eq!(
        stats.bisections,
        if report_item { 1 } else { 3 },
        "{stats:?}"
    );
    assert_eq!(handler.records().iter().filter(|r| *r == "S/5").count(), {
        // Every segment holding S/5 down to the lone record, plus its 2 retries, plus
        // the split at the reported record.
        stats.bisections as usize + 1 + 2 + usize::from(report_item)
    });
}

#[tokio::test]
async fn bisect_on_a_function_error_isolates_one_poison_record() {
    bisect_isolates(false).await;
}

#[tokio::test]
async fn bisect_on_a_reported_item_failure_isolates_one_poison_record() {
    bisect_isolates(true).await;
}

#[tokio::test]
async fn without_bisect_the_whole_failing_batch_goes_to_the_failure_destination() {
    let stream = ReshardStream::default();
    stream.add("S", &[]);
    stream.put("S", 0..8);
    stream.close("S");
    let handler = Recorder::poisoned(&["S/5"], false);
    let failures = Failures::default();
    let runner = Runner::new(MappingConfig {
        max_retry_attempts: Some(2),
        ..config(8)
    });
    let stats = runner.run(&stream, &handler, &failures).await.unwrap();
    let sent = failures.sent();
    assert_eq!(sent[0].kinesis_batch_info.batch_size, 8);
    assert_eq!((stats.invocations, stats.bisections), (3, 0));
}

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!(
            "flyhigh-runner-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ))
        .join("checkpoints.json")
}

#[tokio::test]
async fn a_restart_from_the_checkpoint_file_redelivers_nothing_before_the_checkpoint() {
    let path = temp_file("restart");
    let stream = ReshardStream::default();
    stream.add("P", &[]);
    // Sequence numbers 1..=12: the checkpoint crosses from one digit to two.
    stream.put("P", 0..12);
    let runner = Runner::new(config(3));

    // Run 1 crashes in its fourth invocation: batches 1 to 3 (P/0..P/8, sequence
    // numbers 1 to 9) are done, the fourth (P/9..P/11) was being handled.
    let crashing = Recorder {
        hang_after: Some(3),
        ..Recorder::default()
    };
    {
        let checkpoints = FileCheckpoints::open(&path).unwrap();
        let failures = Failures::default();
        let run = runner.run_with_checkpoints(&stream, &crashing, &failures, &checkpoints);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), run)
                .await
                .is_err(),
            "run 1 hangs in its fourth invocation"
        );
    }
    assert_eq!(crashing.records().len(), 12);

    // Run 2 resumes after the checkpoint "9" (so at "10", which a string comparison
    // would put before it), redelivers the unfinished batch, finishes P, and reads
    // its children.
    stream.put("P", 12..14);
    stream.split("P", ["A", "B"]);
    stream.put("A", 0..2);
    stream.put("B", 0..2);
    stream.close("A");
    stream.close("B");
    let again = Recorder::default();
    let checkpoints = FileCheckpoints::open(&path).unwrap();
    runner
        .run_with_checkpoints(&stream, &again, &Failures::default(), &checkpoints)
        .await
        .unwrap();
    let seen = again.records();
    assert_eq!(
        of_shard(&seen, "P"),
        names("P", 9..14),
        "nothing before the checkpoint"
    );
    assert_eq!(of_shard(&seen, "A"), names("A", 0..2));
    assert_eq!(of_shard(&seen, "B"), names("B", 0..2));
    let arn = stream.stream_arn();
    let table = checkpoints.table();
    assert!(
        ["P", "A", "B"]
            .iter()
            .all(|s| table.get(&arn, s).unwrap().finished)
    );
    drop(checkpoints);

    // Run 3 finds every shard finished: it opens none and delivers nothing.
    let opened_before = stream.opened().len();
    let idle = Recorder::default();
    let stats = Runner::new(config(3))
        .run_with_checkpoints(
            &stream,
            &idle,
            &Failures::default(),
            &FileCheckpoints::open(&path).unwrap(),
        )
        .await
        .unwrap();
    assert!(idle.records().is_empty());
    assert_eq!(stats.invocations, 0);
    assert_eq!(stream.opened().len(), opened_before);
}
