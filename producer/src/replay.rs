//! Putting the producer's dead letters back on the stream, once the cause is fixed:
//! [`replay`], the one path both applications and `flyhigh dead-letters replay`
//! use.
//!
//! Each letter is sent again with [`Producer::send_record`] as its original
//! partition key and bytes, in the order given (so the letters of one key keep their
//! order: the producer writes a key's records in the order it accepted them), and
//! counts as replayed only once its [`Receipt`] says it was written.
//! A [`ReplayLedger`] remembers what was replayed, by [`letter_id`]: letters already
//! in it are skipped, and each letter is recorded right after its record was written,
//! so a replay run twice puts nothing twice, and a replay interrupted puts again at
//! most the letters written but not yet recorded.
//!
//! A letter the replaying producer gives up on again is not lost: it is in that
//! producer's sink again, as a new letter (new acceptance time, so a new id), and it
//! is not recorded, so the source still holds it too. Replay one of the two, not
//! both, or a record is written twice (which consumers absorb). The CLI gives its
//! replaying producer an in-memory sink and keeps the source as the only copy.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::collections::HashSet;
//! use flyhigh_producer::replay::replay;
//! use flyhigh_producer::{DeadLetter, DeadLetterReason, LocalStream, MemoryDeadLetters, Producer};
//!
//! # let at = "2026-11-22T10:15:00.250Z".parse().unwrap();
//! # let letter = |key: &str, data: &[u8]| DeadLetter {
//! #     partition_key: key.into(), data: data.to_vec(), reason: DeadLetterReason::Expired,
//! #     error: "ttl".into(), attempts: 3, accepted_at: at, dead_lettered_at: at,
//! # };
//! // e.g. read back from a FileDeadLetters with replay::read_file(path)
//! let letters: Vec<DeadLetter> = vec![letter("FH1", b"{\"n\":1}"), letter("FH1", b"{\"n\":2}")];
//! let stream = LocalStream::new("bookings", 2);
//! let producer = Producer::builder()
//!     .dead_letters(MemoryDeadLetters::new())
//!     .build_with(stream.clone())
//!     .await?;
//! // A ledger that lasts as long as the process; the CLI keeps one in a file.
//! let mut ledger: HashSet<String> = HashSet::new();
//! let report = replay(&producer, &letters, &mut ledger).await;
//! assert_eq!(report.replayed, 2);
//! assert!(report.is_complete());
//! // Run again: everything is in the ledger.
//! let again = replay(&producer, &letters, &mut ledger).await;
//! assert_eq!((again.replayed, again.already_replayed), (0, 2));
//! producer.close().await;
//! assert_eq!(stream.total_records(), 1); // one aggregate of both records
//! # Ok::<(), flyhigh_producer::BuildError>(())
//! # }).unwrap();
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use md5::{Digest, Md5};

use crate::dead_letter::{DeadLetter, DeadLetterError};
use crate::producer::{Delivery, DeliveryError, Producer, Receipt, SendError};

/// The identity of a producer letter in a replay ledger: 32 lowercase hex digits,
/// the MD5 of its partition key, its bytes and the time it was accepted, each
/// length-prefixed:
///
/// ```text
/// MD5( u64_be(len(key)) ‖ key ‖ u64_be(len(data)) ‖ data ‖ i64_be(accepted_at in ms since the epoch) )
/// ```
///
/// Milliseconds, the precision of the JSON line, so a letter has the same id in
/// memory as read back from its file line or SQS message. Why and when it was given
/// up (`reason`, `error`, `attempts`, `dead_lettered_at`) are left out: a letter
/// SQS delivers twice, or read from a copy of the file, is the same letter. Two
/// records with the same key and bytes accepted in the same millisecond are one
/// letter to a ledger (FlyHigh events carry their `event_id`, so distinct events
/// never are). An identity, not a security measure.
///
/// ```
/// use flyhigh_producer::replay::letter_id;
/// use flyhigh_producer::{DeadLetter, DeadLetterReason};
///
/// let letter = DeadLetter {
///     partition_key: "FH0123-20261201".into(),
///     data: br#"{"event_type":"booking"}"#.to_vec(),
///     reason: DeadLetterReason::Expired,
///     error: "ttl".into(),
///     attempts: 3,
///     accepted_at: "2026-11-22T10:15:00.250Z".parse().unwrap(),
///     dead_lettered_at: "2026-11-22T10:17:00.250Z".parse().unwrap(),
/// };
/// let id = letter_id(&letter);
/// assert_eq!(id.len(), 32);
/// let line = letter.to_json_line();
/// assert_eq!(letter_id(&DeadLetter::from_json_line(&line).unwrap()), id);
/// ```
pub fn letter_id(letter: &DeadLetter) -> String {
    let mut md5 = Md5::new();
    md5.update((letter.partition_key.len() as u64).to_be_bytes());
    md5.update(letter.partition_key.as_bytes());
    md5.update((letter.data.len() as u64).to_be_bytes());
    md5.update(&letter.data);
    md5.update(letter.accepted_at.timestamp_millis().to_be_bytes());
    format!("{:032x}", u128::from_be_bytes(md5.finalize().into()))
}

/// A ledger could not record a replayed letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay ledger failed: {0}")]
pub struct LedgerError(pub String);

/// What [`ReplayLedger::record`] returns.
pub type LedgerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), LedgerError>> + Send + 'a>>;

/// A letter [`replay`] wrote, handed to [`ReplayLedger::record`].
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// Its position in the letters given to [`replay`].
    pub index: usize,
    /// Its [`letter_id`].
    pub id: &'a str,
    /// The letter.
    pub letter: &'a DeadLetter,
    /// Where it landed (for a twin, where its earlier copy did).
    pub delivery: &'a Delivery,
}

/// Remembers which letters were replayed, so that a replay run again skips them:
/// a file of ids (the CLI's `FILE.replayed.jsonl`), a table, or, for a queue, the
/// deletion of each letter's message.
pub trait ReplayLedger: Send {
    /// Whether the letter with this [`letter_id`] was replayed before (it is then
    /// skipped, not sent).
    fn contains(&self, id: &str) -> bool;

    /// Records a letter as replayed. Called right after its record was written, in
    /// the order of the letters (a twin right after the letter it repeats). An
    /// error stops the replay: nothing more is sent, and letters written from then
    /// on are reported [`NotReplayedKind::Unrecorded`].
    fn record<'a>(&'a mut self, written: Written<'a>) -> LedgerFuture<'a>;
}

/// A ledger in memory: the ids replayed.
impl ReplayLedger for HashSet<String> {
    fn contains(&self, id: &str) -> bool {
        HashSet::contains(self, id)
    }

    fn record<'a>(&'a mut self, written: Written<'a>) -> LedgerFuture<'a> {
        self.insert(written.id.to_owned());
        Box::pin(async { Ok(()) })
    }
}

/// Why a letter was not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReplayedKind {
    /// `send_record` refused it (an empty partition key: a letter of a request lost
    /// with its task carries no record). Nothing was sent.
    Refused,
    /// The replaying producer gave up on it again and it is in that producer's
    /// sink again ([`DeliveryError::DeadLettered`]). Fix the cause and replay again.
    DeadLetteredAgain,
    /// The replaying producer gave up on it and could not store it either
    /// ([`DeliveryError::DeadLetterFailed`]), or stopped: the source is its only copy.
    NotStored,
    /// Written, but not recorded in the ledger (it failed, now or earlier): a
    /// later replay writes it again.
    Unrecorded,
}

/// One letter not replayed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReplayed {
    /// Its position in the letters given to [`replay`].
    pub index: usize,
    /// Its [`letter_id`].
    pub id: String,
    /// What happened.
    pub kind: NotReplayedKind,
    /// The error, on one line.
    pub error: String,
}

/// What a [`replay`] did with each letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Written to the stream and recorded in the ledger.
    pub replayed: usize,
    /// Already in the ledger: skipped.
    pub already_replayed: usize,
    /// The same letter (same [`letter_id`]) as an earlier one of the same call that
    /// was replayed: not sent again, recorded with it.
    pub twins: usize,
    /// Letters sent (or refused) but not replayed, in order.
    pub not_replayed: Vec<NotReplayed>,
    /// Letters not even looked at: the replay stopped first (see `stopped`).
    pub not_sent: usize,
    /// Why the replay stopped before the last letter: the ledger failed, or the
    /// producer was closed.
    pub stopped: Option<String>,
}

impl ReplayReport {
    /// Letters not replayed for this reason.
    pub fn count(&self, kind: NotReplayedKind) -> usize {
        self.not_replayed.iter().filter(|n| n.kind == kind).count()
    }

    /// Whether every letter was replayed, now or before.
    pub fn is_complete(&self) -> bool {
        self.not_replayed.is_empty() && self.not_sent == 0 && self.stopped.is_none()
    }
}

/// What became of a letter id seen in this call.
enum Seen {
    /// Sent, its receipt not settled; the twins waiting for it.
    InFlight(Vec<usize>),
    Written(Delivery),
    Failed(NotReplayedKind, String),
}

/// A letter sent, waiting for its receipt.
struct InFlight {
    index: usize,
    id: String,
    receipt: Receipt,
}

/// Replays `letters` through `producer`, in order, skipping those in `ledger` and
/// recording each one written; see the [module docs](self) for the guarantees.
/// Returns once every letter sent is settled (its receipt resolved and, if written,
/// recorded); the producer stays open.
///
/// Waits as `send_record` does when the producer's buffer is full, and at most the
/// producer's `record_ttl` for a receipt. Letters are cloned into the producer one
/// at a time, so the caller keeps them (to delete queue messages, say).
pub async fn replay(
    producer: &Producer,
    letters: &[DeadLetter],
    ledger: &mut dyn ReplayLedger,
) -> ReplayReport {
    let mut run = Run {
        letters,
        ledger,
        report: ReplayReport::default(),
        seen: HashMap::new(),
        pending: VecDeque::new(),
    };
    for (index, letter) in letters.iter().enumerate() {
        if run.report.stopped.is_some() {
            run.report.not_sent = letters.len() - index;
            break;
        }
        let id = letter_id(letter);
        if run.ledger.contains(&id) {
            run.report.already_replayed += 1;
            continue;
        }
        if let Some(seen) = run.seen.get_mut(&id) {
            match seen {
                Seen::InFlight(twins) => twins.push(index),
                Seen::Written(delivery) => {
                    let delivery = delivery.clone();
                    run.record_twin(index, &id, &delivery).await;
                }
                Seen::Failed(kind, error) => {
                    let (kind, error) = (*kind, error.clone());
                    run.not_replayed(index, &id, kind, error);
                }
            }
            continue;
        }
        match producer
            .send_record(&letter.partition_key, letter.data.clone())
            .await
        {
            Ok(receipt) => {
                run.seen.insert(id.clone(), Seen::InFlight(Vec::new()));
                run.pending.push_back(InFlight { index, id, receipt });
            }
            Err(SendError::Closed) => {
                run.report.stopped = Some("the producer is closed".to_owned());
                run.report.not_sent = letters.len() - index;
                break;
            }
            Err(e) => {
                run.seen.insert(
                    id.clone(),
                    Seen::Failed(NotReplayedKind::Refused, e.to_string()),
                );
                run.not_replayed(index, &id, NotReplayedKind::Refused, e.to_string());
            }
        }
        // Record what is written already, so that an interrupted replay puts again
        // as little as possible.
        while let Some(front) = run.pending.front_mut() {
            let Some(outcome) = ready(&mut front.receipt) else {
                break;
            };
            let Some(done) = run.pending.pop_front() else {
                break;
            };
            run.settle(done, outcome).await;
        }
    }
    while let Some(mut done) = run.pending.pop_front() {
        let outcome = (&mut done.receipt).await;
        run.settle(done, outcome).await;
    }
    let report = run.report;
    tracing::info!(
        replayed = report.replayed,
        already_replayed = report.already_replayed,
        twins = report.twins,
        not_replayed = report.not_replayed.len(),
        not_sent = report.not_sent,
        "dead letters replayed"
    );
    report
}

/// The state of one [`replay`] call.
struct Run<'l, 'g> {
    letters: &'l [DeadLetter],
    ledger: &'g mut dyn ReplayLedger,
    report: ReplayReport,
    seen: HashMap<String, Seen>,
    pending: VecDeque<InFlight>,
}

impl Run<'_, '_> {
    /// Settles a sent letter by its receipt's outcome, and its twins with it.
    async fn settle(&mut self, done: InFlight, outcome: Result<Delivery, DeliveryError>) {
        let twins = match self.seen.remove(&done.id) {
            Some(Seen::InFlight(twins)) => twins,
            _ => Vec::new(),
        };
        match outcome {
            Ok(delivery) => {
                if self.record(done.index, &done.id, &delivery).await {
                    self.report.replayed += 1;
                }
                for twin in twins {
                    self.record_twin(twin, &done.id, &delivery).await;
                }
                self.seen.insert(done.id, Seen::Written(delivery));
            }
            Err(e) => {
                let kind = match e {
                    DeliveryError::DeadLettered { .. } => NotReplayedKind::DeadLetteredAgain,
                    _ => NotReplayedKind::NotStored,
                };
                let error = e.to_string();
                for index in std::iter::once(done.index).chain(twins) {
                    self.not_replayed(index, &done.id, kind, error.clone());
                }
                self.seen.insert(done.id, Seen::Failed(kind, error));
            }
        }
    }

    async fn record_twin(&mut self, index: usize, id: &str, delivery: &Delivery) {
        if self.record(index, id, delivery).await {
            self.report.twins += 1;
        }
    }

    /// Records a written letter in the ledger, unless the ledger failed before;
    /// whether it is recorded.
    async fn record(&mut self, index: usize, id: &str, delivery: &Delivery) -> bool {
        if let Some(stopped) = &self.report.stopped {
            let error = format!("written, not recorded: {stopped}");
            self.not_replayed(index, id, NotReplayedKind::Unrecorded, error);
            return false;
        }
        let written = Written {
            index,
            id,
            letter: &self.letters[index],
            delivery,
        };
        match self.ledger.record(written).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(letter_id = id, error = %e, "replay stopped: the ledger cannot record");
                self.not_replayed(
                    index,
                    id,
                    NotReplayedKind::Unrecorded,
                    format!("written, not recorded: {e}"),
                );
                self.report.stopped = Some(e.to_string());
                false
            }
        }
    }

    fn not_replayed(&mut self, index: usize, id: &str, kind: NotReplayedKind, error: String) {
        self.report.not_replayed.push(NotReplayed {
            index,
            id: id.to_owned(),
            kind,
            error,
        });
    }
}

/// The receipt's outcome if it is already resolved; never waits.
fn ready(receipt: &mut Receipt) -> Option<Result<Delivery, DeliveryError>> {
    match Pin::new(receipt).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    }
}

/// The letters of a [`FileDeadLetters`](crate::FileDeadLetters) file, in file order.
/// A last line cut short (the process died while appending) is left out; any other
/// line that is not a letter fails the read, naming it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use flyhigh_producer::replay::read_file;
/// use flyhigh_producer::{DeadLetter, DeadLetterReason, DeadLetterSink, FileDeadLetters};
///
/// let path = std::env::temp_dir().join(format!("read-file-doc-{}.jsonl", std::process::id()));
/// let at = "2026-11-22T10:15:00.250Z".parse().unwrap();
/// let letter = DeadLetter {
///     partition_key: "FH0123-20261201".into(),
///     data: b"{}".to_vec(),
///     reason: DeadLetterReason::Expired,
///     error: "ttl".into(),
///     attempts: 3,
///     accepted_at: at,
///     dead_lettered_at: at,
/// };
/// FileDeadLetters::new(&path).write(vec![letter.clone()]).await?;
/// assert_eq!(read_file(&path)?, vec![letter]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), flyhigh_producer::DeadLetterError>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// The file cannot be read, or a line is not a letter.
pub fn read_file(path: &Path) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DeadLetterError(format!("reading {}: {e}", path.display())))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len() - 1;
    let mut letters = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match DeadLetter::from_json_line(line) {
            Ok(letter) => letters.push(letter),
            Err(_) if i == last && !complete => break,
            Err(why) => {
                return Err(DeadLetterError(format!(
                    "{} line {}: not a producer dead letter: {why}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dead_letter::{DeadLetterReason, MemoryDeadLetters};
    use crate::local::{LocalRead, LocalStream};
    use crate::transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};
    use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};

    fn letter(key: &str, n: usize) -> DeadLetter {
        DeadLetter {
            partition_key: key.into(),
            data: format!("{{\"n\":{n}}}").into_bytes(),
            reason: DeadLetterReason::Expired,
            error: "ttl".into(),
            attempts: 3,
            accepted_at: chrono::DateTime::from_timestamp_millis(1_795_000_000_000 + n as i64)
                .unwrap(),
            dead_lettered_at: "2026-11-22T10:17:00.250Z".parse().unwrap(),
        }
    }

    async fn producer_over<T: Transport>(transport: T) -> (Producer, MemoryDeadLetters) {
        let sink = MemoryDeadLetters::new();
        let producer = Producer::builder()
            .dead_letters(sink.clone())
            .record_ttl(Duration::from_secs(2))
            .linger(Duration::from_millis(5))
            .backoff_base(Duration::from_millis(10))
            .backoff_max(Duration::from_millis(50))
            .build_with(transport)
            .await
            .expect("valid settings");
        (producer, sink)
    }

    /// Every user record on the stream, per shard in order: (key, data).
    fn stored(stream: &LocalStream) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for shard in 0..stream.shards().len() {
            let LocalRead::Records(records) = stream.read(shard, 0, usize::MAX) else {
                continue;
            };
            for r in records {
                match deaggregate(&r.data).unwrap() {
                    Deaggregated::Aggregated(users) => out.extend(
                        users
                            .iter()
                            .map(|u| (u.partition_key.to_string(), u.data.to_vec())),
                    ),
                    Deaggregated::Single(d) => out.push((r.partition_key.clone(), d.to_vec())),
                }
            }
        }
        out
    }

    /// Refuses every record for good: each is dead-lettered `rejected`.
    struct Refusing;

    impl Transport for Refusing {
        async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
            Ok(entries
                .iter()
                .map(|_| EntryResult::Failed {
                    code: "AccessDeniedException".into(),
                    message: "no".into(),
                })
                .collect())
        }

        async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
            Ok(LocalStream::new("s", 1).shards())
        }
    }

    /// Records ids and indices; fails from the `fail_at`-th record on.
    struct Recording {
        ids: HashSet<String>,
        indices: Vec<usize>,
        fail_at: Option<usize>,
    }

    impl ReplayLedger for Recording {
        fn contains(&self, id: &str) -> bool {
            self.ids.contains(id)
        }
        fn record<'a>(&'a mut self, written: Written<'a>) -> LedgerFuture<'a> {
            let result = if self.fail_at.is_some_and(|n| self.indices.len() >= n) {
                Err(LedgerError("disk full".into()))
            } else {
                self.ids.insert(written.id.to_owned());
                self.indices.push(written.index);
                Ok(())
            };
            Box::pin(async move { result })
        }
    }

    fn recording(fail_at: Option<usize>) -> Recording {
        Recording {
            ids: HashSet::new(),
            indices: Vec::new(),
            fail_at,
        }
    }

    #[test]
    fn letter_ids_are_stable_and_leave_out_why_and_when_it_was_given_up() {
        let l = letter("FH1", 1);
        let id = letter_id(&l);
        // Pinned (and computed independently from the documented construction):
        // ledgers on disk name letters by it.
        assert_eq!(id, "cc05888f71fc3781d74060aac67de45c");
        let mut other = l.clone();
        other.error = "rejected".into();
        other.attempts = 9;
        other.reason = DeadLetterReason::Closed;
        other.dead_lettered_at = other.accepted_at;
        assert_eq!(letter_id(&other), id);
        // Nanoseconds (in memory) and milliseconds (a JSON line) agree.
        other.accepted_at += chrono::Duration::nanoseconds(900_000);
        assert_eq!(letter_id(&other), id);
        for changed in [
            DeadLetter {
                partition_key: "FH2".into(),
                ..l.clone()
            },
            DeadLetter {
                data: b"{}".to_vec(),
                ..l.clone()
            },
            DeadLetter {
                accepted_at: l.accepted_at + chrono::Duration::milliseconds(1),
                ..l.clone()
            },
        ] {
            assert_ne!(letter_id(&changed), id);
        }
        // Length prefixes: the key/data boundary counts.
        let a = DeadLetter {
            partition_key: "ab".into(),
            data: b"c".to_vec(),
            ..l.clone()
        };
        let b = DeadLetter {
            partition_key: "a".into(),
            data: b"bc".to_vec(),
            ..l
        };
        assert_ne!(letter_id(&a), letter_id(&b));
    }

    #[tokio::test]
    async fn letters_are_replayed_in_order_per_key_and_recorded_once() {
        let stream = LocalStream::new("s", 4);
        let (producer, sink) = producer_over(stream.clone()).await;
        let letters: Vec<DeadLetter> = (0..200)
            .map(|n| letter(&format!("FH{}", n % 7), n))
            .collect();
        let mut ledger = recording(None);
        let report = replay(&producer, &letters, &mut ledger).await;
        assert_eq!(report.replayed, 200, "{report:?}");
        assert!(report.is_complete());
        assert_eq!(ledger.indices, (0..200).collect::<Vec<_>>(), "in order");
        let again = replay(&producer, &letters, &mut ledger).await;
        assert_eq!((again.replayed, again.already_replayed), (0, 200));
        producer.close().await;
        assert!(sink.letters().is_empty());
        let got = stored(&stream);
        assert_eq!(got.len(), 200, "each once");
        for key in 0..7 {
            let key = format!("FH{key}");
            let want: Vec<&[u8]> = letters
                .iter()
                .filter(|l| l.partition_key == key)
                .map(|l| &l.data[..])
                .collect();
            let have: Vec<&[u8]> = got
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, d)| &d[..])
                .collect();
            assert_eq!(have, want, "{key} in order");
        }
    }

    #[tokio::test]
    async fn a_twin_is_written_once_and_recorded_with_its_letter() {
        let stream = LocalStream::new("s", 1);
        let (producer, _) = producer_over(stream.clone()).await;
        let mut twin = letter("FH1", 1);
        twin.attempts = 1; // SQS delivered it twice, or another copy of the file
        let letters = vec![letter("FH1", 1), letter("FH1", 2), twin];
        let mut ledger = recording(None);
        let report = replay(&producer, &letters, &mut ledger).await;
        assert_eq!((report.replayed, report.twins), (2, 1), "{report:?}");
        assert_eq!(ledger.indices.len(), 3);
        producer.close().await;
        assert_eq!(stored(&stream).len(), 2);
    }

    #[tokio::test]
    async fn a_letter_without_a_key_is_refused_and_the_others_still_go() {
        let stream = LocalStream::new("s", 1);
        let (producer, _) = producer_over(stream.clone()).await;
        let mut lost = letter("", 0);
        lost.data.clear();
        let letters = vec![letter("FH1", 1), lost, letter("FH1", 2)];
        let mut ledger = HashSet::new();
        let report = replay(&producer, &letters, &mut ledger).await;
        assert_eq!(report.replayed, 2);
        assert_eq!(report.count(NotReplayedKind::Refused), 1);
        assert_eq!(report.not_replayed[0].index, 1);
        assert!(
            report.not_replayed[0].error.contains("partition_key"),
            "{report:?}"
        );
        producer.close().await;
    }

    #[tokio::test]
    async fn letters_dead_lettered_again_are_in_the_sink_and_not_recorded() {
        let (producer, sink) = producer_over(Refusing).await;
        let letters: Vec<DeadLetter> = (0..5).map(|n| letter("FH1", n)).collect();
        let mut ledger = HashSet::new();
        let report = replay(&producer, &letters, &mut ledger).await;
        assert_eq!(report.replayed, 0);
        assert_eq!(report.count(NotReplayedKind::DeadLetteredAgain), 5);
        assert!(!report.is_complete());
        assert!(ledger.is_empty(), "the source keeps them");
        producer.close().await;
        let again: Vec<(String, Vec<u8>)> = sink
            .letters()
            .into_iter()
            .map(|l| (l.partition_key, l.data))
            .collect();
        let sent: Vec<(String, Vec<u8>)> = letters
            .into_iter()
            .map(|l| (l.partition_key, l.data))
            .collect();
        assert_eq!(again, sent);
    }

    #[tokio::test]
    async fn a_failing_ledger_stops_the_replay_and_says_what_is_unrecorded() {
        let stream = LocalStream::new("s", 1);
        let (producer, _) = producer_over(stream.clone()).await;
        let letters: Vec<DeadLetter> = (0..50).map(|n| letter("FH1", n)).collect();
        let mut ledger = recording(Some(3));
        let report = replay(&producer, &letters, &mut ledger).await;
        assert_eq!(report.replayed, 3, "{report:?}");
        assert!(report.stopped.as_deref().unwrap().contains("disk full"));
        let unrecorded = report.count(NotReplayedKind::Unrecorded);
        assert!(unrecorded >= 1);
        assert_eq!(3 + unrecorded + report.not_sent, 50, "{report:?}");
        producer.close().await;
        assert_eq!(
            stored(&stream).len(),
            3 + unrecorded,
            "written, not recorded"
        );
    }

    #[tokio::test]
    async fn a_closed_producer_stops_the_replay_before_sending() {
        let (producer, _) = producer_over(LocalStream::new("s", 1)).await;
        producer.close().await;
        let letters: Vec<DeadLetter> = (0..3).map(|n| letter("FH1", n)).collect();
        let report = replay(&producer, &letters, &mut HashSet::new()).await;
        assert_eq!(report.not_sent, 3);
        assert_eq!(report.stopped.as_deref(), Some("the producer is closed"));
    }

    #[test]
    fn files_are_read_in_order_without_a_torn_last_line() {
        let dir = std::env::temp_dir().join(format!("flyhigh-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dead.jsonl");
        let (a, b) = (letter("FH1", 1), letter("FH2", 2));
        let torn = &b.to_json_line()[..20];
        std::fs::write(
            &path,
            format!("{}\n\n{}\n{torn}", a.to_json_line(), b.to_json_line()),
        )
        .unwrap();
        assert_eq!(read_file(&path).unwrap(), vec![a.clone(), b]);
        std::fs::write(&path, format!("{{}}\n{}\n", a.to_json_line())).unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains("dead.jsonl line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
