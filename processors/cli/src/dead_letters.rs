//! `flyhigh dead-letters list | replay`: what was quarantined, and putting it back on
//! the stream once the cause is fixed.
//!
//! Sources: the SQS dead-letter queue (`--queue NAME`) or a JSON-lines file of
//! [`DeadLetter`]s (`--file PATH`, the embedded default's `dead-letters.jsonl`).
//!
//! Replay targets: a Kinesis stream (`--stream NAME`), or, for the embedded default,
//! whose stream lives only inside a running `flyhigh demo`, the SQLite inventory
//! itself (`--sqlite PATH`): each letter's bytes go through the same inventory
//! handler the demo's consumer runs, as a one-record batch.
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
    pub fn new<'a>(letters: impl IntoIterator<Item = &'a DeadLetter>) -> Counts {
        let mut c = Counts::default();
        for l in letters {
            c.total += 1;
            *c.by_reason
                .entry(l.reason_kind.clone())
                .or_default()
                .entry(l.processor.clone())
                .or_default() += 1;
        }
        c
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
/// new records under old ids.
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

async fn open_queue(name: &str) -> anyhow::Result<SqsQueue> {
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
    Ok(SqsQueue::new(sqs, url))
}

fn read_file(path: &Path) -> anyhow::Result<Vec<DeadLetter>> {
    read_all::<DeadLetter>(path)
        .with_context(|| format!("reading dead letters from {}", path.display()))
}

async fn list(args: ListArgs) -> anyhow::Result<bool> {
    let (letters, unreadable) = match (&args.source.queue, &args.source.file) {
        (Some(name), _) => {
            let queue = open_queue(name).await?;
            let received = queue.receive_letters(args.max, VISIBILITY).await?;
            let handles: Vec<String> = received.iter().map(|r| r.receipt_handle.clone()).collect();
            // Peek: every message is visible again at once.
            queue.release(&handles).await.context(
                "making the peeked messages visible again (they reappear within 5 minutes anyway)",
            )?;
            split(received)
        }
        (None, Some(path)) => {
            let mut letters = read_file(path)?;
            letters.truncate(args.max);
            (letters, 0)
        }
        (None, None) => bail!("name a source with --queue NAME or --file PATH"),
    };
    let mut counts = Counts::new(&letters);
    counts.unreadable = unreadable;
    let first: Vec<&DeadLetter> = letters.iter().take(args.show).collect();
    if args.json {
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
    if !first.is_empty() {
        println!();
        let mut table = Table::new(&[
            "shard",
            "sequence",
            ">sub",
            "partition_key",
            "reason_kind",
            "reason",
        ]);
        for l in first {
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
    Ok(true)
}

fn split(received: Vec<ReceivedLetter>) -> (Vec<DeadLetter>, usize) {
    let mut unreadable = 0;
    let letters = received
        .into_iter()
        .filter_map(|r| r.letter.map_err(|_| unreadable += 1).ok())
        .collect();
    (letters, unreadable)
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        one_line.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// Where replayed records go.
enum Sink {
    Stream {
        client: aws_sdk_kinesis::Client,
        name: String,
    },
    Sqlite {
        handler: Box<InventoryHandler<SqliteInventoryStore, JsonLinesFile>>,
        path: PathBuf,
    },
}

/// What became of one replayed letter.
enum Put {
    Done,
    /// The handler dead-lettered it again (the cause is not fixed).
    FailedAgain,
}

impl Sink {
    fn describe(&self) -> String {
        match self {
            Sink::Stream { name, .. } => format!("stream {name}"),
            Sink::Sqlite { path, .. } => format!("SQLite inventory {}", path.display()),
        }
    }

    async fn put(&self, letter: &DeadLetter, data: Vec<u8>) -> anyhow::Result<Put> {
        match self {
            Sink::Stream { client, name } => {
                client
                    .put_record()
                    .stream_name(name)
                    .partition_key(&letter.partition_key)
                    .data(aws_sdk_kinesis::primitives::Blob::new(data))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", crate::errors::sdk_message(&e)))
                    .with_context(|| format!("putting the record back on Kinesis stream {name}"))?;
                Ok(Put::Done)
            }
            Sink::Sqlite { handler, path } => {
                let before = handler.stats().dead_lettered;
                let record = KinesisRecord {
                    shard_id: letter.shard_id.clone(),
                    sequence_number: letter.sequence_number.clone(),
                    partition_key: letter.partition_key.clone(),
                    approximate_arrival: letter.approximate_arrival,
                    data,
                };
                let outcome = handler.process(std::slice::from_ref(&record)).await;
                if let Some(error) = outcome.error {
                    bail!("applying the record to {}: {error}", path.display());
                }
                Ok(if handler.stats().dead_lettered > before {
                    Put::FailedAgain
                } else {
                    Put::Done
                })
            }
        }
    }
}

#[derive(Default, Serialize)]
struct ReplayReport {
    replayed: usize,
    failed_again: usize,
    already_replayed: usize,
    other_reason_kind: usize,
    without_data: usize,
    unreadable: usize,
}

async fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    let sink = match (&args.target.stream, &args.target.sqlite) {
        (Some(name), _) => Sink::Stream {
            client: aws_sdk_kinesis::Client::new(&aws_config().await),
            name: name.clone(),
        },
        (None, Some(path)) => {
            let Some(file) = &args.source.file else {
                bail!(
                    "--sqlite replays the embedded default's file: use it with --file PATH (replay a queue with --stream NAME)"
                );
            };
            let again = args
                .failed_again
                .clone()
                .unwrap_or_else(|| with_suffix(file, "failed-again.jsonl"));
            let store = SqliteInventoryStore::open(path)
                .with_context(|| format!("opening SQLite inventory {}", path.display()))?;
            let sink = JsonLinesFile::create(&again)
                .with_context(|| format!("opening {}", again.display()))?;
            Sink::Sqlite {
                handler: Box::new(InventoryHandler::new(store, sink)),
                path: path.clone(),
            }
        }
        (None, None) => bail!("name a target with --stream NAME or --sqlite PATH"),
    };
    let wanted = |l: &DeadLetter| {
        args.reason_kind
            .as_ref()
            .is_none_or(|k| &l.reason_kind == k)
    };
    let mut report = ReplayReport::default();
    let outcome = match (&args.source.queue, &args.source.file) {
        (Some(name), _) => {
            let queue = open_queue(name).await?;
            replay_queue(&queue, &sink, &args, &wanted, &mut report).await
        }
        (None, Some(file)) => replay_file(file, &sink, &args, &wanted, &mut report).await,
        (None, None) => bail!("name a source with --queue NAME or --file PATH"),
    };
    println!(
        "replayed {} letters to {}; {} failed again, {} already replayed, {} of another reason_kind, {} without data, {} unreadable",
        report.replayed,
        sink.describe(),
        report.failed_again,
        report.already_replayed,
        report.other_reason_kind,
        report.without_data,
        report.unreadable
    );
    outcome?;
    Ok(report.failed_again == 0)
}

async fn replay_queue(
    queue: &SqsQueue,
    sink: &Sink,
    args: &ReplayArgs,
    wanted: &impl Fn(&DeadLetter) -> bool,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let received = queue.receive_letters(args.max, VISIBILITY).await?;
    let mut keep: Vec<String> = Vec::new();
    let mut result = Ok(());
    for (i, r) in received.iter().enumerate() {
        let letter = match &r.letter {
            Ok(l) => l,
            Err(_) => {
                report.unreadable += 1;
                keep.push(r.receipt_handle.clone());
                continue;
            }
        };
        if !wanted(letter) {
            report.other_reason_kind += 1;
            keep.push(r.receipt_handle.clone());
            continue;
        }
        let data = match original_bytes(letter) {
            Ok(d) => d,
            Err(why) => {
                eprintln!("skipping {}: {why}", letter_key(letter));
                report.without_data += 1;
                keep.push(r.receipt_handle.clone());
                continue;
            }
        };
        match sink.put(letter, data).await {
            Ok(Put::Done) => {
                report.replayed += 1;
                // Only now: a message whose put failed stays in the queue.
                if let Err(e) = queue.delete(&r.receipt_handle).await {
                    eprintln!(
                        "warning: {} was replayed but not deleted ({e}); a later replay puts it again, which the consumers absorb",
                        letter_key(letter)
                    );
                }
            }
            Ok(Put::FailedAgain) => {
                report.failed_again += 1;
                keep.push(r.receipt_handle.clone());
            }
            Err(e) => {
                // Stop at the first failure, so that later records of a flight are not
                // put before an earlier one; everything left stays in the queue.
                keep.extend(received[i..].iter().map(|r| r.receipt_handle.clone()));
                result = Err(e.context(format!(
                    "replay stopped at {}; it and the letters after it stay in the queue",
                    letter_key(letter)
                )));
                break;
            }
        }
    }
    queue.release(&keep).await.context(
        "making the letters not replayed visible again (they reappear within 5 minutes anyway)",
    )?;
    result
}

async fn replay_file(
    file: &Path,
    sink: &Sink,
    args: &ReplayArgs,
    wanted: &impl Fn(&DeadLetter) -> bool,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let letters = read_file(file)?;
    let ledger_path = args
        .ledger
        .clone()
        .unwrap_or_else(|| with_suffix(file, "replayed.jsonl"));
    let mut done: HashSet<String> = if ledger_path.exists() {
        read_all::<LedgerEntry>(&ledger_path)
            .with_context(|| format!("reading the replay ledger {}", ledger_path.display()))?
            .into_iter()
            .map(|e| e.key)
            .collect()
    } else {
        HashSet::new()
    };
    let ledger = JsonLinesFile::create(&ledger_path)
        .with_context(|| format!("opening the replay ledger {}", ledger_path.display()))?;
    let target = sink.describe();
    for letter in letters {
        if report.replayed >= args.max {
            break;
        }
        let key = letter_key(&letter);
        let ledger_entry = ledger_key(&letter);
        if done.contains(&ledger_entry) {
            report.already_replayed += 1;
            continue;
        }
        if !wanted(&letter) {
            report.other_reason_kind += 1;
            continue;
        }
        let data = match original_bytes(&letter) {
            Ok(d) => d,
            Err(why) => {
                eprintln!("skipping {key}: {why}");
                report.without_data += 1;
                continue;
            }
        };
        match sink
            .put(&letter, data)
            .await
            .with_context(|| format!("replay stopped at {key}; run it again once fixed"))?
        {
            Put::Done => {
                ledger
                    .append(&[LedgerEntry {
                        key: ledger_entry.clone(),
                        reason_kind: letter.reason_kind.clone(),
                        target: target.clone(),
                        replayed_at: chrono::Utc::now(),
                    }])
                    .with_context(|| {
                        format!(
                            "recording {key} in {} (it was replayed; a later replay puts it again, which the consumers absorb)",
                            ledger_path.display()
                        )
                    })?;
                done.insert(ledger_entry);
                report.replayed += 1;
            }
            Put::FailedAgain => report.failed_again += 1,
        }
    }
    Ok(())
}

/// `dir/dead-letters.jsonl` → `dir/dead-letters.jsonl.<suffix>`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
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
        let c = Counts::new(&letters);
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
}
