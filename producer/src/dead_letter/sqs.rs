//! [`SqsDeadLetters`] (feature `sqs`): dead letters as SQS messages, for hosts whose
//! disk does not outlive them (AWS Lambda, containers).
//!
//! Pure parts first (messages as SQS counts them, batches, what a batch answer
//! leaves to do, the one-line errors), then the only code that calls SQS. What an
//! app must know (big records, IAM) is on [`SqsDeadLetters`].

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry,
};
use rand::Rng;

use super::{DeadLetter, DeadLetterError, DeadLetterSink, SinkFuture};
use crate::sdk_error::{self, error_chain};

/// Most bytes of one SQS message ([`SqsDeadLetters::MAX_MESSAGE_BYTES`]).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most bytes of all the messages of one `SendMessageBatch`.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Most messages of one `SendMessageBatch`.
const MAX_BATCH_ENTRIES: usize = 10;
const REASON_ATTRIBUTE: &str = "reason";
const PARTITION_KEY_ATTRIBUTE: &str = "partition_key";

/// The data type of both attributes.
const STRING: &str = "String";
/// Sends of one batch, the first included, while SQS fails some of its entries on
/// its side.
const MAX_ATTEMPTS: u32 = 4;
/// The first pause before a batch's failed entries are sent again (full jitter,
/// doubling, at most [`BACKOFF_MAX`]).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Error codes of a queue that does not exist (the first is what SQS sends, the
/// second the JSON protocol's name for it).
const MISSING_QUEUE_CODES: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];
/// Error codes of credentials that may not use the queue.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "KMS.AccessDeniedException",
];

/// Stores dead letters in an SQS queue, up to ten per `SendMessageBatch` (a
/// standard queue, not FIFO: letters carry no message group, and need no order). Each letter is
/// one message whose body is its JSON line ([`DeadLetter::to_json_line`], the file
/// sink's format, so one reader handles both), with the String attributes
/// [`reason`](Self::REASON_ATTRIBUTE) and
/// [`partition_key`](Self::PARTITION_KEY_ATTRIBUTE) for routing and filtering
/// without parsing bodies.
///
/// Entries SQS fails on its side are sent again, up to four sends with a short
/// jittered backoff; whole requests are retried by the client's own retry
/// configuration (keep the SDK's standard retries on this client: unlike the
/// Kinesis one, nothing retries under it). A write that leaves letters unstored
/// fails with one line saying how many and why. Delivery is at least once: a letter
/// sent again may arrive twice.
///
/// ```no_run
/// # #[cfg(feature = "kinesis")]
/// # async fn run() -> Result<(), flyhigh_producer::BuildError> {
/// use flyhigh_producer::{Producer, SqsDeadLetters, aws_config};
///
/// let sdk = aws_config::load_from_env().await;
/// let producer = Producer::builder()
///    .stream("flyhigh-events")
///    .kinesis(&sdk)
///    // The build checks the queue: a missing one fails here, named.
///    .dead_letters(SqsDeadLetters::from_sdk_config(
///        &sdk,
///        "https://sqs.eu-west-1.amazonaws.com/123456789012/flyhigh-producer-dead-letters",
///    ))
///    .build()
///    .await?;
/// # Ok(()) }
/// ```
///
/// # Big records
///
/// SQS takes messages of at most [`MAX_MESSAGE_BYTES`](Self::MAX_MESSAGE_BYTES) (256 KiB), and a letter's
/// line carries its bytes in base64, plus once more as text when they are UTF-8: a
/// 1 MiB record (the Kinesis limit) cannot be stored in SQS. A letter whose line is
/// too big is sent without its `data_utf8` copy (the line still reads back with
/// [`DeadLetter::from_json_line`]), which stores records up to about 190 KiB; a
/// bigger one fails the write with its size in the error, while the other letters
/// of the call are still stored. The producer then resolves the receipts of that
/// whole call [`DeliveryError::DeadLetterFailed`](crate::DeliveryError), logs and
/// counts it (a sink answers per call, so an app that resends on `DeadLetterFailed`
/// may send some records twice, which consumers absorb).
///
/// If records can be that big, send those to a file ([`FileDeadLetters`](crate::FileDeadLetters), on
/// storage that outlives the host) and the rest to SQS, with a sink of your own
/// that splits by [`SqsDeadLetters::fits`]:
///
/// ```no_run
/// use flyhigh_producer::{DeadLetter, DeadLetterSink, FileDeadLetters, SinkFuture, SqsDeadLetters};
///
/// /// Letters SQS can hold go to the queue, bigger ones to a file.
/// #[derive(Debug)]
/// struct SqsOrFile {
///     sqs: SqsDeadLetters,
///     file: FileDeadLetters,
/// }
///
/// impl DeadLetterSink for SqsOrFile {
///     fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_> {
///         let (small, big): (Vec<_>, Vec<_>) = letters.into_iter().partition(SqsDeadLetters::fits);
///         Box::pin(async move {
///             let queued = self.sqs.write(small).await;
///             if !big.is_empty() {
///                 self.file.write(big).await?;
///             }
///             queued
///         })
///     }
///
///     fn check(&self) -> SinkFuture<'_> {
///         Box::pin(async move {
///             self.sqs.check().await?;
///             self.file.check().await
///         })
///     }
/// }
/// ```
///
/// IAM: `sqs:SendMessage` to store letters, `sqs:GetQueueAttributes` for the check
/// [`ProducerBuilder::build`](crate::ProducerBuilder) makes, `sqs:GetQueueUrl` for
/// [`SqsDeadLetters::from_queue_name`].
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// Most bytes of one SQS message, as SQS counts them: the body, and each
    /// attribute's name, data type and value (256 KiB).
    pub const MAX_MESSAGE_BYTES: usize = MAX_MESSAGE_BYTES;
    /// The message attribute naming the letter's reason (`expired`, `rejected`,
    /// `closed`).
    pub const REASON_ATTRIBUTE: &'static str = REASON_ATTRIBUTE;
    /// The message attribute holding the record's partition key (left out when the
    /// key is empty or has characters SQS refuses in attributes; the body always has
    /// it).
    pub const PARTITION_KEY_ATTRIBUTE: &'static str = PARTITION_KEY_ATTRIBUTE;

    /// Letters sent to the queue at `queue_url` through `client` (endpoint, region
    /// and credentials are the client's).
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsDeadLetters {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Letters sent to the queue at `queue_url` through a client made from `sdk`.
    pub fn from_sdk_config(sdk: &SdkConfig, queue_url: impl Into<String>) -> SqsDeadLetters {
        SqsDeadLetters::new(Client::new(sdk), queue_url)
    }

    /// Letters sent to the queue named `name`, its URL found with one `GetQueueUrl`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), flyhigh_producer::DeadLetterError> {
    /// use flyhigh_producer::{SqsDeadLetters, aws_config, aws_sdk_sqs};
    ///
    /// let sdk = aws_config::load_from_env().await;
    /// let sink =
    ///     SqsDeadLetters::from_queue_name(aws_sdk_sqs::Client::new(&sdk), "flyhigh-producer-dead-letters")
    ///         .await?;
    /// println!("dead letters go to {}", sink.queue_url());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// One line naming the queue and what to fix: it does not exist (in this
    /// account and region), access is denied, or SQS cannot be reached.
    pub async fn from_queue_name(
        client: Client,
        name: &str,
    ) -> Result<SqsDeadLetters, DeadLetterError> {
        let url = match client.get_queue_url().queue_name(name).send().await {
            Ok(out) => out.queue_url().map(str::to_owned).ok_or_else(|| {
                DeadLetterError(format!("SQS GetQueueUrl answered no URL for queue {name}"))
            })?,
            Err(e) => {
                let (code, text) = error_text(&e);
                return Err(DeadLetterError(queue_problem(
                    "name",
                    name,
                    "sqs:GetQueueUrl",
                    code.as_deref(),
                    &text,
                )));
            }
        };
        Ok(SqsDeadLetters::new(client, url))
    }

    /// The queue written to.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Whether SQS can hold `letter`: its message is at most
    /// [`MAX_MESSAGE_BYTES`](Self::MAX_MESSAGE_BYTES). For sinks that send the others
    /// elsewhere (see [big records](SqsDeadLetters#big-records)).
    ///
    /// ```
    /// use flyhigh_producer::{DeadLetter, DeadLetterReason, SqsDeadLetters};
    ///
    /// let at = "2026-11-22T10:15:00.250Z".parse().unwrap();
    /// let letter = |bytes: usize| DeadLetter {
    ///     partition_key: "FH0123-20261201".into(),
    ///     data: vec![0xff; bytes],
    ///     reason: DeadLetterReason::Expired,
    ///     error: "ttl".into(),
    ///     attempts: 3,
    ///     accepted_at: at,
    ///     dead_lettered_at: at,
    /// };
    /// assert!(SqsDeadLetters::fits(&letter(100 * 1024)));
    /// assert!(!SqsDeadLetters::fits(&letter(1024 * 1024))); // 1.33 MiB in base64
    /// ```
    pub fn fits(letter: &DeadLetter) -> bool {
        message(letter).is_ok()
    }

    /// Sends every letter that fits, batch by batch, and says which did not make it.
    async fn send_all(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        let mut unstored = Unstored::default();
        let mut messages = Vec::with_capacity(letters.len());
        for letter in letters {
            match message(letter) {
                Ok(m) => messages.push(m),
                Err(size) => unstored.too_big.push(size),
            }
        }
        let sizes: Vec<usize> = messages.iter().map(Message::size).collect();
        let mut batches = batches(&sizes).into_iter();
        for range in batches.by_ref() {
            if let Err((pending, e)) = self.send_batch(&messages[range], &mut unstored).await {
                // A failed request (a missing queue, denied access, SQS unreachable
                // after the client's retries) fails the rest alike: stop here.
                unstored.unsent += pending + batches.map(|r| r.len()).sum::<usize>();
                unstored.unsent_error = Some(e);
                break;
            }
        }
        if unstored.count() == 0 {
            if !letters.is_empty() {
                tracing::info!(queue_url = %self.queue_url, letters = letters.len(), "dead letters sent to SQS");
            }
            return Ok(());
        }
        Err(DeadLetterError(
            unstored.describe(&self.queue_url, letters.len()),
        ))
    }

    /// Sends one batch, sending again the entries SQS failed on its side; what is
    /// left unstored is added to `unstored`. Err: a request itself failed, with the
    /// entries it was to send.
    async fn send_batch(
        &self,
        batch: &[Message],
        unstored: &mut Unstored,
    ) -> Result<(), (usize, String)> {
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut last_error = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| entry(i, &batch[i]))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (pending.len(), e))?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    let why = format!("SendMessageBatch: {}", error_text(&e).1);
                    (pending.len(), why)
                })?;
            let successful: HashSet<&str> = output.successful().iter().map(|s| s.id()).collect();
            let settled = settle(&pending, &successful, output.failed());
            unstored.refused += settled.refused.len();
            if let Some((_, why)) = settled.refused.first() {
                unstored.refused_error.get_or_insert_with(|| why.clone());
            }
            pending = settled.retry;
            if pending.is_empty() {
                return Ok(());
            }
            last_error = settled.retry_error.unwrap_or_default();
            tracing::warn!(
                queue_url = %self.queue_url, failed = pending.len(), attempt, error = %last_error,
                "SQS failed some dead-letter entries; sending them again"
            );
        }
        unstored.exhausted += pending.len();
        unstored.exhausted_error.get_or_insert(last_error);
        Ok(())
    }

    /// `GetQueueAttributes` on the URL: the queue exists and the credentials may use
    /// it.
    async fn check_queue(&self) -> Result<(), DeadLetterError> {
        if let Some(problem) = fifo_problem(&self.queue_url) {
            return Err(DeadLetterError(problem));
        }
        match self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let (code, text) = error_text(&e);
                Err(DeadLetterError(queue_problem(
                    "URL",
                    &self.queue_url,
                    "sqs:GetQueueAttributes",
                    code.as_deref(),
                    &text,
                )))
            }
        }
    }
}

impl DeadLetterSink for SqsDeadLetters {
    fn write(&self, letters: Vec<DeadLetter>) -> SinkFuture<'_> {
        Box::pin(async move { self.send_all(&letters).await })
    }

    /// One `GetQueueAttributes`: a missing queue, denied access or a FIFO queue fails
    /// [`ProducerBuilder::build`](crate::ProducerBuilder) with
    /// [`BuildError::DeadLetters`](crate::BuildError), one line naming the queue and
    /// what to fix.
    fn check(&self) -> SinkFuture<'_> {
        Box::pin(self.check_queue())
    }
}

/// A message to send: the letter's line and its String attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    body: String,
    attributes: Vec<(&'static str, String)>,
}

impl Message {
    /// The bytes SQS counts against its limits: the body, and each attribute's name,
    /// data type and value.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + STRING.len() + value.len())
                .sum::<usize>()
    }
}

/// The letter as a message, or its size when it is over [`MAX_MESSAGE_BYTES`] even
/// without the `data_utf8` copy of its bytes.
fn message(letter: &DeadLetter) -> Result<Message, usize> {
    let mut attributes = vec![(REASON_ATTRIBUTE, letter.reason.as_str().to_owned())];
    // SQS refuses an empty String attribute, and characters outside its set (the
    // body escapes them; an attribute cannot).
    if !letter.partition_key.is_empty() && letter.partition_key.chars().all(sqs_allows) {
        attributes.push((PARTITION_KEY_ATTRIBUTE, letter.partition_key.clone()));
    }
    let line = letter.to_json_line();
    let full = Message {
        body: sqs_safe(line),
        attributes,
    };
    if full.size() <= MAX_MESSAGE_BYTES {
        return Ok(full);
    }
    let slim = Message {
        body: sqs_safe(without_utf8_copy(&full.body)),
        ..full
    };
    match slim.size() {
        size if size <= MAX_MESSAGE_BYTES => Ok(slim),
        size => Err(size),
    }
}

/// The line without its `data_utf8` field: the same letter to
/// [`DeadLetter::from_json_line`], which reads the bytes from `data_base64`.
fn without_utf8_copy(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut v) => {
            if let Some(fields) = v.as_object_mut() {
                fields.remove("data_utf8");
            }
            v.to_string()
        }
        Err(_) => line.to_owned(),
    }
}

/// The characters SQS takes in bodies and String attributes.
fn sqs_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A JSON line SQS takes: serde_json escapes control characters already; U+FFFE and
/// U+FFFF (only possible inside strings) become `\u` escapes, the same text to any
/// JSON reader.
fn sqs_safe(line: String) -> String {
    if !line.contains(['\u{fffe}', '\u{ffff}']) {
        return line;
    }
    line.replace('\u{fffe}', "\\ufffe")
        .replace('\u{ffff}', "\\uffff")
}

/// Splits messages of these sizes, in order, into batches of at most
/// [`MAX_BATCH_ENTRIES`] messages and [`MAX_BATCH_BYTES`] bytes (each size is at
/// most [`MAX_MESSAGE_BYTES`]).
fn batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// A batch entry; its id is the message's position in the batch.
fn entry(index: usize, message: &Message) -> Result<SendMessageBatchRequestEntry, String> {
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body);
    for (name, value) in &message.attributes {
        let value = MessageAttributeValue::builder()
            .data_type(STRING)
            .string_value(value)
            .build()
            .map_err(|e| format!("attribute {name}: {e}"))?;
        entry = entry.message_attributes(*name, value);
    }
    entry.build().map_err(|e| format!("batch entry: {e}"))
}

/// What one `SendMessageBatch` answer leaves to do with the entries `sent`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settled {
    /// Failed on SQS's side, or not answered for: send again.
    retry: Vec<usize>,
    /// The first of their errors.
    retry_error: Option<String>,
    /// Refused as the sender's fault (too big, a bad character): sending again
    /// cannot help.
    refused: Vec<(usize, String)>,
}

/// Sorts the entries `sent` by the answer: `successful` ids are done, failures the
/// sender caused are refused, and everything else (SQS's failures, and an entry the
/// answer does not mention) is sent again.
fn settle(sent: &[usize], successful: &HashSet<&str>, failed: &[BatchResultErrorEntry]) -> Settled {
    let mut settled = Settled::default();
    for &i in sent {
        let id = i.to_string();
        if successful.contains(id.as_str()) {
            continue;
        }
        match failed.iter().find(|f| f.id() == id) {
            Some(f) if f.sender_fault() => settled.refused.push((i, failure_text(f))),
            Some(f) => {
                settled.retry.push(i);
                settled.retry_error.get_or_insert_with(|| failure_text(f));
            }
            None => {
                settled.retry.push(i);
                settled
                    .retry_error
                    .get_or_insert_with(|| "no result for the entry".to_owned());
            }
        }
    }
    settled
}

fn failure_text(f: &BatchResultErrorEntry) -> String {
    match f.message() {
        Some(m) if !m.is_empty() => format!("{}: {m}", f.code()),
        _ => f.code().to_owned(),
    }
}

/// The letters of one write that were not stored, by cause.
#[derive(Debug, Default)]
struct Unstored {
    /// Message sizes of letters too big for SQS.
    too_big: Vec<usize>,
    refused: usize,
    refused_error: Option<String>,
    exhausted: usize,
    exhausted_error: Option<String>,
    /// Not sent: a request failed first.
    unsent: usize,
    unsent_error: Option<String>,
}

impl Unstored {
    fn count(&self) -> usize {
        self.too_big.len() + self.refused + self.exhausted + self.unsent
    }

    /// One line: how many of `total` were not stored, and why.
    fn describe(&self, queue_url: &str, total: usize) -> String {
        let mut causes = Vec::new();
        if let Some(&largest) = self.too_big.iter().max() {
            causes.push(format!(
                "{} too big for SQS (the largest a {largest}-byte message, over the \
                 {MAX_MESSAGE_BYTES}-byte limit: send such records to a FileDeadLetters, \
                 e.g. with a sink that splits by SqsDeadLetters::fits)",
                self.too_big.len()
            ));
        }
        let reason = |e: &Option<String>| e.clone().unwrap_or_default();
        if self.refused > 0 {
            causes.push(format!(
                "{} refused by SQS ({})",
                self.refused,
                reason(&self.refused_error)
            ));
        }
        if self.exhausted > 0 {
            causes.push(format!(
                "{} still failing after {MAX_ATTEMPTS} sends ({})",
                self.exhausted,
                reason(&self.exhausted_error)
            ));
        }
        if self.unsent > 0 {
            causes.push(format!(
                "{} not sent ({})",
                self.unsent,
                reason(&self.unsent_error)
            ));
        }
        format!(
            "SQS queue {queue_url}: {} of {total} dead letters not stored: {}",
            self.count(),
            causes.join("; ")
        )
    }
}

/// The pause before send `attempt + 1` of a batch: full jitter up to
/// `BACKOFF_BASE * 2^(attempt - 1)`, at most [`BACKOFF_MAX`].
fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    rand::thread_rng().gen_range(Duration::ZERO..=cap)
}

/// A failed request's error code (service errors only) and one line: `Code:
/// message` for a service error, else the error and its sources by `Display`
/// (never the SDK's `Debug` dump).
fn error_text<E, R>(error: &SdkError<E, R>) -> (Option<String>, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let SdkError::ServiceError(service) = error {
        let e = service.err();
        return (e.code().map(str::to_owned), sdk_error::error_text(e));
    }
    (None, error_chain(error).replace('\n', " "))
}

/// A FIFO queue takes no message without a message group, so every write would
/// fail: refused at the check instead.
fn fifo_problem(queue_url: &str) -> Option<String> {
    queue_url.ends_with(".fifo").then(|| {
        format!(
            "SQS dead-letter queue {queue_url} is a FIFO queue: dead letters go to a standard \
             queue (they need no order), name one"
        )
    })
}

/// The one line for a queue (named by its `what`, "URL" or "name") that cannot be
/// used, by what the person starting the producer must do.
fn queue_problem(what: &str, queue: &str, action: &str, code: Option<&str>, text: &str) -> String {
    match code {
        Some(c) if MISSING_QUEUE_CODES.contains(&c) => format!(
            "SQS dead-letter queue {queue} does not exist in this account and region: check the \
             queue {what} and the region (AWS_REGION), or create the queue"
        ),
        Some(c) if DENIED_CODES.contains(&c) => format!(
            "access to SQS dead-letter queue {queue} denied ({text}): the credentials need \
             {action}, and sqs:SendMessage to store letters"
        ),
        _ => format!(
            "cannot check SQS dead-letter queue {queue}: {text}; try again, and if it persists \
             check the queue {what}, endpoint, region, credentials and network"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::test_support::letter;

    fn failed(id: &str, sender_fault: bool, code: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .sender_fault(sender_fault)
            .code(code)
            .message("m")
            .build()
            .unwrap()
    }

    #[test]
    fn a_message_is_the_file_line_with_reason_and_key_attributes() {
        let l = letter(br#"{"event_type":"booking"}"#);
        let m = message(&l).unwrap();
        assert_eq!(m.body, l.to_json_line());
        assert_eq!(
            m.attributes,
            vec![
                ("reason", "expired".to_owned()),
                ("partition_key", "FH0001-20261201".to_owned())
            ]
        );
        assert_eq!(
            m.size(),
            m.body.len() + "reason".len() + 6 + 7 + "partition_key".len() + 6 + 15
        );
        assert_eq!(DeadLetter::from_json_line(&m.body).unwrap(), l);
    }

    #[test]
    fn keys_sqs_cannot_carry_are_left_to_the_body() {
        let mut l = letter(b"{}");
        l.partition_key = String::new();
        assert_eq!(message(&l).unwrap().attributes.len(), 1);
        l.partition_key = "FH\u{1}1".into();
        let m = message(&l).unwrap();
        assert_eq!(m.attributes.len(), 1);
        assert_eq!(
            DeadLetter::from_json_line(&m.body).unwrap().partition_key,
            "FH\u{1}1"
        );
    }

    #[test]
    fn regression_noncharacters_in_text_data_are_escaped_for_sqs() {
        let l = letter("{\"name\":\"\u{ffff}\u{fffe}\"}".as_bytes());
        let m = message(&l).unwrap();
        assert!(m.body.chars().all(sqs_allows), "{}", m.body);
        assert_eq!(DeadLetter::from_json_line(&m.body).unwrap(), l);
    }

    #[test]
    fn a_big_text_record_goes_without_its_text_copy_and_a_1_mib_one_does_not_fit() {
        // 150 KiB of JSON: base64 and text together are over the limit, base64
        // alone is not.
        let data = format!("{{\"pad\":\"{}\"}}", "x".repeat(150 * 1024));
        let l = letter(data.as_bytes());
        assert!(l.to_json_line().len() > MAX_MESSAGE_BYTES);
        let m = message(&l).expect("fits without data_utf8");
        assert!(m.size() <= MAX_MESSAGE_BYTES);
        assert!(!m.body.contains("data_utf8"));
        assert_eq!(DeadLetter::from_json_line(&m.body).unwrap(), l);

        let size = message(&letter(&vec![b'x'; 1024 * 1024])).unwrap_err();
        assert!(size > 1024 * 1024 * 4 / 3, "{size}");
        assert!(!SqsDeadLetters::fits(&letter(&vec![0; 200 * 1024])));
        assert!(SqsDeadLetters::fits(&letter(&vec![0; 180 * 1024])));
    }

    #[test]
    fn entries_carry_the_body_and_string_attributes() {
        let m = message(&letter(b"{}")).unwrap();
        let e = entry(3, &m).unwrap();
        assert_eq!((e.id(), e.message_body()), ("3", m.body.as_str()));
        let attr = &e.message_attributes().unwrap()["reason"];
        assert_eq!(
            (attr.data_type(), attr.string_value()),
            ("String", Some("expired"))
        );
    }

    #[test]
    fn an_answer_settles_done_refused_and_retried_entries() {
        let successful: HashSet<&str> = ["0", "3"].into();
        let settled = settle(
            &[0, 1, 2, 3, 4],
            &successful,
            &[
                failed("1", false, "InternalError"),
                failed("2", true, "InvalidMessageContents"),
            ],
        );
        assert_eq!(settled.retry, vec![1, 4], "4 had no result at all");
        assert_eq!(settled.retry_error.as_deref(), Some("InternalError: m"));
        assert_eq!(
            settled.refused,
            vec![(2, "InvalidMessageContents: m".to_owned())]
        );
        let none = settle(&[0, 1], &["0", "1"].into(), &[]);
        assert_eq!(none, Settled::default());
    }

    #[test]
    fn unstored_letters_are_one_line_with_counts_and_causes() {
        let unstored = Unstored {
            too_big: vec![300_000, 1_398_200],
            exhausted: 3,
            exhausted_error: Some("InternalError: m".into()),
            ..Unstored::default()
        };
        let line = unstored.describe("https://q", 20);
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("SQS queue https://q: 5 of 20 dead letters not stored: 2 too big"),
            "{line}"
        );
        assert!(line.contains("1398200-byte message"), "{line}");
        assert!(line.contains("FileDeadLetters"), "{line}");
        assert!(
            line.contains("3 still failing after 4 sends (InternalError: m)"),
            "{line}"
        );
    }

    #[test]
    fn queue_problems_say_what_to_fix() {
        let missing = queue_problem(
            "URL",
            "https://q/x",
            "sqs:GetQueueAttributes",
            Some("AWS.SimpleQueueService.NonExistentQueue"),
            "t",
        );
        assert!(
            missing.contains("https://q/x does not exist") && missing.contains("create the queue"),
            "{missing}"
        );
        let denied = queue_problem(
            "URL",
            "q",
            "sqs:GetQueueAttributes",
            Some("AccessDenied"),
            "AccessDenied: no",
        );
        assert!(denied.contains("sqs:GetQueueAttributes"), "{denied}");
        let other = queue_problem("name", "q", "sqs:GetQueueUrl", None, "dispatch failure");
        assert!(
            other.contains("dispatch failure") && other.contains("try again"),
            "{other}"
        );
    }

    #[test]
    fn a_fifo_queue_is_refused_at_the_check() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/dead.fifo";
        let problem = fifo_problem(url).unwrap();
        assert!(
            problem.contains(url) && problem.contains("standard"),
            "{problem}"
        );
        assert_eq!(
            fifo_problem("https://sqs.eu-west-1.amazonaws.com/1/dead"),
            None
        );
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= BACKOFF_MAX);
        }
        assert!(backoff(1) <= BACKOFF_BASE);
    }

    proptest! {
        #[test]
        fn batches_keep_order_and_sqs_limits(
            sizes in proptest::collection::vec(1usize..=MAX_MESSAGE_BYTES, 0..60)
        ) {
            let ranges = batches(&sizes);
            let mut next = 0;
            for r in &ranges {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty() && r.len() <= MAX_BATCH_ENTRIES);
                prop_assert!(sizes[r.clone()].iter().sum::<usize>() <= MAX_BATCH_BYTES);
                next = r.end;
            }
            prop_assert_eq!(next, sizes.len());
            // Greedy: a batch ends only where the next message would break a limit.
            for pair in ranges.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let bytes: usize = sizes[a.clone()].iter().sum();
                prop_assert!(a.len() == MAX_BATCH_ENTRIES || bytes + sizes[b.start] > MAX_BATCH_BYTES);
            }
        }
    }
}
