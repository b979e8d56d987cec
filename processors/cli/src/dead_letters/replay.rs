//! `flyhigh dead-letters replay`: where replayed letters go (a stream, or the
//! embedded default's SQLite inventory), and the ledgers that make a rerun put
//! nothing twice: a file ledger for files, deletion for queue messages.

use super::*;

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

impl ReplayReport {
    /// Adds what [`flyhigh_producer::replay`] did with producer letters; the first
    /// error of letters that failed again is printed (they stay in the source).
    fn add_producer(&mut self, r: &flyhigh_producer::ReplayReport, source: &str) {
        self.replayed += r.replayed;
        // Twins are the same letter twice in the source, as duplicates in a file are
        // for processor letters.
        self.already_replayed += r.already_replayed + r.twins;
        for n in &r.not_replayed {
            match n.kind {
                NotReplayedKind::Refused => {
                    eprintln!("skipping producer letter {}: {}", n.id, n.error);
                    self.without_data += 1;
                }
                NotReplayedKind::Unrecorded => {}
                _ => self.failed_again += 1,
            }
        }
        let again =
            r.count(NotReplayedKind::DeadLetteredAgain) + r.count(NotReplayedKind::NotStored);
        if let Some(first) = r.not_replayed.iter().find(|n| {
            matches!(
                n.kind,
                NotReplayedKind::DeadLetteredAgain | NotReplayedKind::NotStored
            )
        }) {
            eprintln!(
                "{again} producer letters failed again and stay in {source} (first: {})",
                first.error
            );
        }
    }
}

pub(super) async fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    // A file is read first: producer letters in it are refused before an SQLite
    // inventory is opened (or created).
    let file_letters = match (&args.source.queue, &args.source.file) {
        (None, Some(file)) => Some(read_file(file)?),
        _ => None,
    };
    let wanted_kind = |kind: &str| args.reason_kind.as_ref().is_none_or(|k| k == kind);
    let sink = match (&args.target.stream, &args.target.sqlite) {
        (Some(name), _) => Sink::Stream {
            client: aws_sdk_kinesis::Client::new(&aws_config().await),
            name: name.clone(),
        },
        (None, Some(path)) => {
            let (Some(file), Some(letters)) = (&args.source.file, &file_letters) else {
                bail!(
                    "--sqlite replays the embedded default's file: use it with --file PATH (replay a queue with --stream NAME)"
                );
            };
            let producer_letters = letters
                .iter()
                .filter(|l| matches!(l, Letter::Producer(_)) && wanted_kind(l.reason_kind()))
                .count();
            if producer_letters > 0 {
                bail!(
                    "{} holds {producer_letters} producer dead letters, which --sqlite cannot apply (they never reached a stream): replay them with --stream NAME",
                    file.display()
                );
            }
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
    let wanted = |l: &DeadLetter| wanted_kind(&l.reason_kind);
    let mut report = ReplayReport::default();
    let outcome = match (&args.source.queue, &args.source.file, file_letters) {
        (Some(name), _, _) => {
            let queue = open_queue(name).await?;
            let received = queue.receive(args.max, VISIBILITY).await?;
            let (processor, producer) = split(received);
            let replayed = replay_queue(&queue.sqs, processor, &sink, &wanted, &mut report).await;
            match (replayed, &sink) {
                (Ok(()), Sink::Stream { name: stream, .. }) => {
                    replay_producer_queue(&queue, producer, stream, &wanted_kind, &mut report).await
                }
                (replayed, _) => {
                    let handles: Vec<String> = producer.into_iter().map(|(_, h)| h).collect();
                    queue.sqs.release(&handles).await.context(
                        "making the letters not replayed visible again (they reappear within 5 minutes anyway)",
                    )?;
                    replayed
                }
            }
        }
        (None, Some(file), Some(letters)) => {
            replay_file(file, letters, &sink, &args, &wanted_kind, &mut report).await
        }
        _ => bail!("name a source with --queue NAME or --file PATH"),
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
    received: Vec<ReceivedLetter>,
    sink: &Sink,
    wanted: &impl Fn(&DeadLetter) -> bool,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
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

/// A producer for `stream`, to replay producer letters through. Its own letters are
/// kept in memory: a letter it gives up on again is not recorded as replayed, so the
/// source keeps it, and remains its only copy.
async fn stream_producer(stream: &str) -> anyhow::Result<Producer> {
    Producer::builder()
        .stream(stream)
        .kinesis(&aws_config().await)
        .dead_letters(MemoryDeadLetters::new())
        .build()
        .await
        .context("starting the producer that replays the producer's dead letters")
}

/// The queue as a replay ledger: a letter's message is deleted once its record is
/// written; the others are released afterwards.
struct QueueLedger<'a> {
    queue: &'a SqsQueue,
    handles: Vec<String>,
    handled: Vec<bool>,
}

impl ReplayLedger for QueueLedger<'_> {
    fn contains(&self, _id: &str) -> bool {
        // A message still in the queue was not replayed (or its delete failed, and
        // putting it again is what at least once means).
        false
    }

    fn record<'a>(&'a mut self, written: Written<'a>) -> LedgerFuture<'a> {
        Box::pin(async move {
            self.handled[written.index] = true;
            if let Err(e) = self.queue.delete(&self.handles[written.index]).await {
                eprintln!(
                    "warning: producer letter {} was replayed but not deleted ({e}); a later replay puts it again, which the consumers absorb",
                    written.id
                );
            }
            Ok(())
        })
    }
}

async fn replay_producer_queue(
    queue: &Queue,
    received: Vec<(ProducerLetter, String)>,
    stream: &str,
    wanted: &impl Fn(&str) -> bool,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let (mut letters, others): (Vec<_>, Vec<_>) = received
        .into_iter()
        .partition(|(l, _)| wanted(l.reason.as_str()));
    report.other_reason_kind += others.len();
    let mut keep: Vec<String> = others.into_iter().map(|(_, h)| h).collect();
    if !letters.is_empty() {
        // SQS keeps no order: acceptance order is each key's original order (stable
        // within a millisecond, which SQS may still have shuffled).
        letters.sort_by_key(|(l, _)| l.accepted_at);
        let (letters, handles): (Vec<ProducerLetter>, Vec<String>) = letters.into_iter().unzip();
        let producer = match stream_producer(stream).await {
            Ok(p) => p,
            Err(e) => {
                keep.extend(handles);
                let _ = queue.sqs.release(&keep).await;
                return Err(e.context("the producer letters stay in the queue"));
            }
        };
        let mut ledger = QueueLedger {
            queue: &queue.sqs,
            handled: vec![false; handles.len()],
            handles,
        };
        let replayed = flyhigh_producer::replay(&producer, &letters, &mut ledger).await;
        producer.close().await;
        report.add_producer(&replayed, &format!("queue {}", queue.name));
        keep.extend(
            ledger
                .handles
                .into_iter()
                .zip(ledger.handled)
                .filter(|(_, handled)| !handled)
                .map(|(h, _)| h),
        );
    }
    queue.sqs.release(&keep).await.context(
        "making the letters not replayed visible again (they reappear within 5 minutes anyway)",
    )
}

/// A replay ledger file as a ledger of producer letters, keyed by [`letter_id`].
struct FileLedger<'a> {
    done: &'a mut HashSet<String>,
    file: &'a JsonLinesFile,
    path: &'a Path,
    target: String,
}

impl ReplayLedger for FileLedger<'_> {
    fn contains(&self, id: &str) -> bool {
        self.done.contains(id)
    }

    fn record<'a>(&'a mut self, written: Written<'a>) -> LedgerFuture<'a> {
        let appended = self
            .file
            .append(&[LedgerEntry {
                key: written.id.to_owned(),
                reason_kind: written.letter.reason.as_str().to_owned(),
                target: self.target.clone(),
                replayed_at: chrono::Utc::now(),
            }])
            .map_err(|e| {
                LedgerError(format!(
                    "recording producer letter {} in {}: {e} (it was replayed; a later replay puts it again, which the consumers absorb)",
                    written.id,
                    self.path.display()
                ))
            });
        if appended.is_ok() {
            self.done.insert(written.id.to_owned());
        }
        Box::pin(async move { appended })
    }
}

async fn replay_file(
    file: &Path,
    letters: Vec<Letter>,
    sink: &Sink,
    args: &ReplayArgs,
    wanted_kind: &impl Fn(&str) -> bool,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let wanted = |l: &DeadLetter| wanted_kind(&l.reason_kind);
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
    let (letters, producer_letters): (Vec<DeadLetter>, Vec<ProducerLetter>) = {
        let (mut processor, mut producer) = (Vec::new(), Vec::new());
        for l in letters {
            match l {
                Letter::Processor(l) => processor.push(l),
                Letter::Producer(l) => producer.push(l),
            }
        }
        (processor, producer)
    };
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
    // Producer letters (refused earlier for --sqlite): through a producer, in file
    // order, the ledger's own checks skipping those replayed before.
    let Sink::Stream { name: stream, .. } = sink else {
        return Ok(());
    };
    let mut batch = Vec::new();
    for letter in producer_letters {
        if done.contains(&letter_id(&letter)) {
            report.already_replayed += 1;
        } else if !wanted_kind(letter.reason.as_str()) {
            report.other_reason_kind += 1;
        } else if report.replayed + batch.len() < args.max {
            batch.push(letter);
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    let producer = stream_producer(stream).await?;
    let mut ledger = FileLedger {
        done: &mut done,
        file: &ledger,
        path: &ledger_path,
        target,
    };
    let replayed = flyhigh_producer::replay(&producer, &batch, &mut ledger).await;
    producer.close().await;
    report.add_producer(&replayed, &file.display().to_string());
    match replayed.stopped {
        Some(why) => bail!("replay of the producer letters stopped: {why}"),
        None => Ok(()),
    }
}

/// `dir/dead-letters.jsonl` → `dir/dead-letters.jsonl.<suffix>`.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}
