//! `flyhigh dead-letters list | replay`: what was quarantined, and putting it back on
//! the stream once the cause is fixed.
//!
//! Sources: an SQS dead-letter queue (`--queue NAME`) or a JSON-lines file
//! (`--file PATH`), holding either kind of letter, told apart line by line (message
//! by message):
//!
//! - the processors' [`DeadLetter`]s: records read from the stream that a consumer
//!   could not apply (the embedded default's `dead-letters.jsonl`);
//! - the producer's letters ([`ProducerLetter`], a line that
//!   [`ProducerLetter::from_json_line`] reads: it has `dead_lettered_at` and
//!   `attempts` and no `processor`): records that never reached the stream
//!   (`FileDeadLetters`, the demo's `producer-dead-letters.jsonl`, or an
//!   `SqsDeadLetters` queue). `list` counts them under processor `producer`, by
//!   reason (`expired`, `rejected`, `closed`), which `--reason-kind` also selects.
//!
//! Replay targets: a Kinesis stream (`--stream NAME`), or, for the embedded default,
//! whose stream lives only inside a running `flyhigh demo`, the SQLite inventory
//! itself (`--sqlite PATH`): each letter's bytes go through the same inventory
//! handler the demo's consumer runs, as a one-record batch.
//!
//! Producer letters go back through a [`Producer`] on the stream
//! ([`flyhigh_producer::replay`]: in file order, or from a queue, which keeps no
//! order, in the order they were first accepted), never to `--sqlite`: they were
//! never on a stream, so there is no inventory record to apply.
//!
//! # What a replay guarantees
//!
//! A letter is replayed as its ORIGINAL bytes (`data_base64`) with its original
//! partition key, so each flight's records land on the flight's shard again.
//!
//! - From the queue, a message is deleted only after its put succeeded: a failed put
//!   leaves it in the queue (released at once), so nothing is lost. If the delete
//!   fails or the command dies between put and delete, the next replay puts it again.
//! - From a file, every replayed letter is recorded in a ledger (JSON lines, by
//!   default `<file>.replayed.jsonl`) keyed by shard, sequence number and
//!   sub-sequence number, written after the put succeeded; letters in the ledger (and
//!   duplicates within the file) are skipped. A crash between put and ledger entry
//!   replays that one letter again.
//! - Producer letters likewise: a queue message is deleted, and a file letter's
//!   ledger entry (keyed by [`letter_id`]) written, only after the producer's
//!   receipt says the record was written. A letter the producer gives up on again
//!   stays in the source (the replaying producer keeps its own letters in memory, so
//!   the source remains their only copy) and counts as failed again.
//!
//! So the stream sees each letter at least once, and at most once unless the command
//! is interrupted; the inventory changes exactly once either way, because the
//! consumer applies a booking or cancellation once per `booking_id` (conditional
//! writes on the booking's state).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use flyhigh_aws::sqs::{ReceivedLetter, SqsQueue};
use flyhigh_core::{DeadLetter, KinesisRecord};
use flyhigh_embedded::{JsonLinesFile, SqliteInventoryStore, read_all};
use flyhigh_handlers::InventoryHandler;
use flyhigh_producer::DeadLetter as ProducerLetter;
use flyhigh_producer::replay::{
    LedgerError, LedgerFuture, NotReplayedKind, ReplayLedger, Written, letter_id,
};
use flyhigh_producer::{MemoryDeadLetters, Producer};
use serde::{Deserialize, Serialize};

use crate::pipeline::aws_config;
use crate::table::Table;

/// How long received messages stay hidden while a command works through them.
const VISIBILITY: Duration = Duration::from_secs(300);

#[derive(Subcommand)]
pub enum DeadLetterCommand {
    /// Counts by reason_kind and processor, and the first few letters. Peeks: from
    /// the queue, messages are received with a visibility timeout and made visible
    /// again at once; nothing is deleted.
    List(ListArgs),
    /// Puts dead letters back on the stream, as their original bytes with their
    /// original partition key. Run it AFTER fixing the cause (a consumer that knows
    /// the schema version, a producer fixed and its data corrected...): a letter whose
    /// cause remains is only dead-lettered again. Idempotent: queue messages are
    /// deleted only after their put succeeded, file letters are recorded in a ledger
    /// and never replayed twice, and the consumers apply a booking once by booking_id.
    Replay(ReplayArgs),
}

#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// The SQS dead-letter queue (AWS or AWS_ENDPOINT_URL), e.g. flyhigh-dead-letters.
    #[arg(long)]
    queue: Option<String>,
    /// A JSON-lines file of dead letters (the embedded default's dead-letters.jsonl).
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    source: Source,
    /// Letters shown in full after the counts.
    #[arg(long, default_value_t = 5, value_name = "N")]
    show: usize,
    /// Read at most N letters.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max: usize,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// The Kinesis stream to put the records back on.
    #[arg(long)]
    stream: Option<String>,
    /// The embedded default: apply the records to this SQLite inventory through the
    /// inventory handler (with --file only).
    #[arg(long)]
    sqlite: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    target: Target,
    /// Replay only letters with this reason_kind (e.g. future_schema_version).
    #[arg(long, value_name = "K")]
    reason_kind: Option<String>,
    /// Replay at most N letters.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max: usize,
    /// With --file: the ledger of letters already replayed (default
    /// FILE.replayed.jsonl).
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// With --sqlite: where letters that fail again are written (default
    /// FILE.failed-again.jsonl); they are not recorded as replayed.
    #[arg(long)]
    failed_again: Option<PathBuf>,
}

/// Counts by reason and processor.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub by_reason: BTreeMap<String, BTreeMap<String, usize>>,
    /// Queue messages whose body is not a dead letter.
    pub unreadable: usize,
}

impl Counts {
    /// Counts either kind: a producer letter under its reason and processor
    /// [`PRODUCER`].
    pub fn of<'a>(letters: impl IntoIterator<Item = &'a Letter>) -> Counts {
        let mut c = Counts::default();
        for l in letters {
            c.add(l.reason_kind(), l.processor());
        }
        c
    }

    fn add(&mut self, reason_kind: &str, processor: &str) {
        self.total += 1;
        *self
            .by_reason
            .entry(reason_kind.to_owned())
            .or_default()
            .entry(processor.to_owned())
            .or_default() += 1;
    }
}

/// The processor producer letters are counted under.
pub const PRODUCER: &str = "producer";

/// A letter of a file or queue: a processor's or the producer's.
#[derive(Debug, Clone, PartialEq)]
pub enum Letter {
    /// A record read from the stream that a consumer could not apply.
    Processor(DeadLetter),
    /// A record the producer never wrote.
    Producer(ProducerLetter),
}

impl Letter {
    /// A file line or message body: the producer's when it has `dead_lettered_at`
    /// and no `processor` (and then must read as one), else a processor's.
    pub fn parse(text: &str) -> Result<Letter, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a dead letter: {e}"))?;
        if v.get("processor").is_none() && v.get("dead_lettered_at").is_some() {
            return ProducerLetter::from_json_line(text)
                .map(Letter::Producer)
                .map_err(|e| format!("not a producer dead letter: {e}"));
        }
        serde_json::from_value(v)
            .map(Letter::Processor)
            .map_err(|e| format!("not a dead letter: {e}"))
    }

    /// The processor's reason_kind, or the producer's reason.
    pub fn reason_kind(&self) -> &str {
        match self {
            Letter::Processor(l) => &l.reason_kind,
            Letter::Producer(l) => l.reason.as_str(),
        }
    }

    pub fn processor(&self) -> &str {
        match self {
            Letter::Processor(l) => &l.processor,
            Letter::Producer(_) => PRODUCER,
        }
    }

    /// The letter as its source holds it.
    fn to_json(&self) -> serde_json::Value {
        match self {
            Letter::Processor(l) => serde_json::to_value(l).unwrap_or_default(),
            Letter::Producer(l) => serde_json::from_str(&l.to_json_line()).unwrap_or_default(),
        }
    }
}

/// The identity of a letter in the stream: shard, sequence number and, inside an
/// aggregate, the user record's position.
pub fn letter_key(l: &DeadLetter) -> String {
    match l.sub_sequence_number {
        Some(sub) => format!("{}/{}/{sub}", l.shard_id, l.sequence_number),
        None => format!("{}/{}", l.shard_id, l.sequence_number),
    }
}

/// A letter's entry in a replay ledger: its place in the stream and a digest of its
/// bytes. The place alone repeats: the embedded default's stream numbers its records
/// from the start on every demo run, and a stream created again under its name has
/// new records under old ids. (A producer letter's entry is its [`letter_id`].)
pub fn ledger_key(l: &DeadLetter) -> String {
    format!(
        "{}@{}",
        letter_key(l),
        flyhigh_schemas::hash_key(&l.data_base64)
    )
}

/// The original bytes of a letter.
pub fn original_bytes(l: &DeadLetter) -> Result<Vec<u8>, String> {
    if l.data_base64.is_empty() {
        return Err(format!(
            "its data was too big for the queue and left out; read it from the stream at shard {} sequence number {}",
            l.shard_id, l.sequence_number
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(&l.data_base64)
        .map_err(|e| format!("data_base64 is not base64: {e}"))
}

/// One line of a replay ledger.
#[derive(Debug, Serialize, Deserialize)]
struct LedgerEntry {
    key: String,
    reason_kind: String,
    target: String,
    replayed_at: chrono::DateTime<chrono::Utc>,
}

pub async fn run(command: DeadLetterCommand) -> anyhow::Result<bool> {
    match command {
        DeadLetterCommand::List(args) => list(args).await,
        DeadLetterCommand::Replay(args) => replay(args).await,
    }
}

/// A dead-letter queue: [`SqsQueue`] to release and delete, and the client to
/// receive bodies of either kind of letter.
struct Queue {
    sqs: SqsQueue,
    client: aws_sdk_sqs::Client,
    name: String,
}

/// A message received from a dead-letter queue.
struct Received {
    letter: Result<Letter, String>,
    receipt_handle: String,
    message_id: String,
}

async fn open_queue(name: &str) -> anyhow::Result<Queue> {
    let config = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::errors::sdk_message(&e)))
        .with_context(|| format!("finding SQS queue {name}"))?;
    let url = url
        .queue_url()
        .with_context(|| format!("SQS returned no URL for queue {name}"))?;
    Ok(Queue {
        sqs: SqsQueue::new(sqs.clone(), url),
        client: sqs,
        name: name.to_owned(),
    })
}

impl Queue {
    /// Receives up to `max` messages, each hidden for `visibility`, until the queue
    /// returns none; nothing is deleted (as [`SqsQueue::receive_letters`], keeping
    /// the bodies of producer letters too).
    async fn receive(&self, max: usize, visibility: Duration) -> anyhow::Result<Vec<Received>> {
        let mut out = Vec::new();
        while out.len() < max {
            let want = i32::try_from(max - out.len()).unwrap_or(10).min(10);
            let page = self
                .client
                .receive_message()
                .queue_url(self.sqs.queue_url())
                .max_number_of_messages(want)
                .visibility_timeout(i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX))
                // A short long-poll: an empty answer then means an empty queue.
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", crate::errors::sdk_message(&e)))
                .with_context(|| format!("receiving from SQS queue {}", self.name))?;
            if page.messages().is_empty() {
                break;
            }
            for m in page.messages() {
                out.push(Received {
                    letter: Letter::parse(m.body().unwrap_or_default()),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(out)
    }
}

/// Every letter of a file, in file order. A last line cut short (a writer died while
/// appending) is left out; any other line that is neither kind of letter fails.
fn read_file(path: &Path) -> anyhow::Result<Vec<Letter>> {
    let context = || format!("reading dead letters from {}", path.display());
    let bytes = std::fs::read(path).with_context(context)?;
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.len() - 1;
    let mut letters = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let letter = std::str::from_utf8(line)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(Letter::parse);
        match letter {
            Ok(l) => letters.push(l),
            Err(_) if i == last && !complete => break,
            Err(why) => bail!("{}: line {}: {why}", context(), i + 1),
        }
    }
    Ok(letters)
}

async fn list(args: ListArgs) -> anyhow::Result<bool> {
    let (letters, unreadable) = match (&args.source.queue, &args.source.file) {
        (Some(name), _) => {
            let queue = open_queue(name).await?;
            let received = queue.receive(args.max, VISIBILITY).await?;
            let handles: Vec<String> = received.iter().map(|r| r.receipt_handle.clone()).collect();
            // Peek: every message is visible again at once.
            queue.sqs.release(&handles).await.context(
                "making the peeked messages visible again (they reappear within 5 minutes anyway)",
            )?;
            let mut unreadable = 0;
            let letters = received
                .into_iter()
                .filter_map(|r| r.letter.map_err(|_| unreadable += 1).ok())
                .collect();
            (letters, unreadable)
        }
        (None, Some(path)) => {
            let mut letters = read_file(path)?;
            letters.truncate(args.max);
            (letters, 0)
        }
        (None, None) => bail!("name a source with --queue NAME or --file PATH"),
    };
    let mut counts = Counts::of(&letters);
    counts.unreadable = unreadable;
    let first: Vec<&Letter> = letters.iter().take(args.show).collect();
    if args.json {
        let first: Vec<serde_json::Value> = first.iter().map(|l| l.to_json()).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "counts": counts, "first": first }))?
        );
        return Ok(true);
    }
    if counts.total == 0 && unreadable == 0 {
        println!("no dead letters");
        return Ok(true);
    }
    let mut table = Table::new(&["reason_kind", "processor", ">letters"]);
    for (reason, by_processor) in &counts.by_reason {
        for (processor, n) in by_processor {
            table.row(vec![reason.clone(), processor.clone(), n.to_string()]);
        }
    }
    print!("{}", table.render());
    println!("{} dead letters", counts.total);
    if unreadable > 0 {
        println!("{unreadable} messages are not dead letters (left in the queue)");
    }
    let processor: Vec<&DeadLetter> = first
        .iter()
        .filter_map(|l| match l {
            Letter::Processor(l) => Some(l),
            Letter::Producer(_) => None,
        })
        .collect();
    if !processor.is_empty() {
        println!();
        let mut table = Table::new(&[
            "shard",
            "sequence",
            ">sub",
            "partition_key",
            "reason_kind",
            "reason",
        ]);
        for l in processor {
            table.row(vec![
                l.shard_id.clone(),
                l.sequence_number.clone(),
                l.sub_sequence_number
                    .map_or(String::new(), |s| s.to_string()),
                l.partition_key.clone(),
                l.reason_kind.clone(),
                shorten(&l.reason, 80),
            ]);
        }
        print!("{}", table.render());
    }
    let producer: Vec<&ProducerLetter> = first
        .iter()
        .filter_map(|l| match l {
            Letter::Producer(l) => Some(l),
            Letter::Processor(_) => None,
        })
        .collect();
    if !producer.is_empty() {
        println!();
        let mut table = Table::new(&[
            "accepted_at",
            "partition_key",
            "reason",
            ">attempts",
            "error",
        ]);
        for l in producer {
            table.row(vec![
                l.accepted_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                l.partition_key.clone(),
                l.reason.as_str().to_owned(),
                l.attempts.to_string(),
                shorten(&l.error, 80),
            ]);
        }
        print!("{}", table.render());
    }
    Ok(true)
}

/// Processor letters as [`SqsQueue::receive_letters`] gives them, for the replay
/// that has always taken them; the producer letters (with their receipt handles)
/// apart.
fn split(received: Vec<Received>) -> (Vec<ReceivedLetter>, Vec<(ProducerLetter, String)>) {
    let mut processor = Vec::new();
    let mut producer = Vec::new();
    for r in received {
        let letter = match r.letter {
            Ok(Letter::Producer(l)) => {
                producer.push((l, r.receipt_handle));
                continue;
            }
            Ok(Letter::Processor(l)) => Ok(l),
            Err(e) => Err(e),
        };
        processor.push(ReceivedLetter {
            letter,
            receipt_handle: r.receipt_handle,
            message_id: r.message_id,
        });
    }
    (processor, producer)
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        one_line.chars().take(max - 1).collect::<String>() + "…"
    }
}

mod replay;
use replay::replay;

#[cfg(test)]
mod tests {
    use super::replay::with_suffix;
    use super::*;

    fn letter(reason: &str, processor: &str, sub: Option<u32>) -> DeadLetter {
        DeadLetter {
            processor: processor.into(),
            shard_id: "shardId-000000000001".into(),
            sequence_number: "4959".into(),
            sub_sequence_number: sub,
            partition_key: "FH1-20261201".into(),
            approximate_arrival: None,
            reason_kind: reason.into(),
            reason: "r".into(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(b"{}"),
        }
    }

    #[test]
    fn counts_group_by_reason_and_processor() {
        let letters = [
            letter("not_json", "inventory", None),
            letter("not_json", "inventory", None),
            letter("not_json", "archive", None),
            letter("invalid", "inventory", None),
        ];
        let letters: Vec<Letter> = letters.into_iter().map(Letter::Processor).collect();
        let c = Counts::of(&letters);
        assert_eq!(c.total, 4);
        assert_eq!(c.by_reason["not_json"]["inventory"], 2);
        assert_eq!(c.by_reason["not_json"]["archive"], 1);
        assert_eq!(c.by_reason["invalid"].len(), 1);
    }

    #[test]
    fn keys_tell_user_records_of_one_aggregate_apart() {
        assert_eq!(
            letter_key(&letter("x", "p", None)),
            "shardId-000000000001/4959"
        );
        assert_ne!(
            letter_key(&letter("x", "p", Some(0))),
            letter_key(&letter("x", "p", Some(1)))
        );
    }

    #[test]
    fn regression_a_new_letter_at_a_replayed_place_is_not_taken_for_the_old_one() {
        // The demo's stream numbers records from the start on every run: a letter of
        // a later run at the same shard and sequence number must still be replayed.
        let old = letter("x", "p", None);
        let mut new = letter("x", "p", None);
        new.data_base64 = "eyJhIjoxfQ==".into();
        assert_eq!(letter_key(&old), letter_key(&new));
        assert_ne!(ledger_key(&old), ledger_key(&new));
        assert_eq!(ledger_key(&old), ledger_key(&old.clone()));
    }

    #[test]
    fn original_bytes_decode_and_name_what_is_missing() {
        assert_eq!(original_bytes(&letter("x", "p", None)).unwrap(), b"{}");
        let mut l = letter("x", "p", None);
        l.data_base64.clear();
        assert!(
            original_bytes(&l)
                .unwrap_err()
                .contains("sequence number 4959")
        );
        l.data_base64 = "!!".into();
        assert!(original_bytes(&l).unwrap_err().contains("not base64"));
    }

    #[test]
    fn ledger_and_failed_again_files_sit_next_to_the_source() {
        assert_eq!(
            with_suffix(Path::new("out/demo/dead-letters.jsonl"), "replayed.jsonl"),
            PathBuf::from("out/demo/dead-letters.jsonl.replayed.jsonl")
        );
    }

    fn producer_letter(key: &str) -> ProducerLetter {
        ProducerLetter {
            partition_key: key.into(),
            data: b"{}".to_vec(),
            reason: flyhigh_producer::DeadLetterReason::Expired,
            error: "ProvisionedThroughputExceededException: Rate exceeded".into(),
            attempts: 4,
            accepted_at: "2026-11-22T10:15:00.250Z".parse().unwrap(),
            dead_lettered_at: "2026-11-22T10:17:00.250Z".parse().unwrap(),
        }
    }

    #[test]
    fn lines_are_told_apart_producer_from_processor() {
        let producer = producer_letter("FH1-20261201");
        assert_eq!(
            Letter::parse(&producer.to_json_line()),
            Ok(Letter::Producer(producer.clone()))
        );
        let processor = letter("not_json", "inventory", None);
        assert_eq!(
            Letter::parse(&serde_json::to_string(&processor).unwrap()),
            Ok(Letter::Processor(processor))
        );
        // A producer letter with a bad field says so, not that a processor field is
        // missing.
        let mut bad: serde_json::Value = serde_json::from_str(&producer.to_json_line()).unwrap();
        bad["reason"] = "lost".into();
        let e = Letter::parse(&bad.to_string()).unwrap_err();
        assert!(e.contains("producer") && e.contains("reason"), "{e}");
        assert!(Letter::parse("{\"a\":1}").is_err());
        assert!(Letter::parse("not json").is_err());
    }

    #[test]
    fn producer_letters_count_by_reason_under_the_producer() {
        let letters = [
            Letter::Producer(producer_letter("FH1")),
            Letter::Producer(producer_letter("FH2")),
            Letter::Processor(letter("not_json", "inventory", None)),
        ];
        let c = Counts::of(&letters);
        assert_eq!(c.total, 3);
        assert_eq!(c.by_reason["expired"][PRODUCER], 2);
        assert_eq!(c.by_reason["not_json"]["inventory"], 1);
    }

    #[test]
    fn a_file_of_both_kinds_reads_in_order_without_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letters.jsonl");
        let processor = letter("not_json", "inventory", None);
        let producer = producer_letter("FH1");
        let torn = &producer.to_json_line()[..30];
        std::fs::write(
            &path,
            format!(
                "{}\n\n{}\n{torn}",
                producer.to_json_line(),
                serde_json::to_string(&processor).unwrap()
            ),
        )
        .unwrap();
        assert_eq!(
            read_file(&path).unwrap(),
            vec![
                Letter::Producer(producer.clone()),
                Letter::Processor(processor)
            ]
        );
        std::fs::write(&path, format!("{{}}\n{}\n", producer.to_json_line())).unwrap();
        let e = format!("{:#}", read_file(&path).unwrap_err());
        assert!(e.contains("line 1"), "{e}");
    }
}
