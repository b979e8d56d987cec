//! Dead letters and failed batches in an SQS queue: [`SqsQueue`] implements
//! [`DeadLetterSink`] and, with the `runner` feature, the runner's
//! `FailureDestination`.
//!
//! - `messages`: bodies, attributes, sizes and batching (pure).
//! - `receive`: reading letters back for the operator commands (receive, release,
//!   delete).
//! - this module: the only code that calls SQS to send, and the classification of its
//!   failures (pure functions, tested with SDK types built by their builders).
//!
//! Each letter is one message whose body is the letter as JSON, with the String
//! attributes `processor` and `reason_kind`, so that operators can route or filter
//! them (SNS filter policies, EventBridge Pipes) without parsing bodies. Delivery is
//! at least once: when a retried batch is sent again, its letters may arrive twice.

mod messages;
mod receive;

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::create_queue::CreateQueueError;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use flyhigh_core::ports::{DeadLetter, DeadLetterSink, StoreError};

use self::messages::Message;
pub use self::messages::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
pub use self::receive::ReceivedLetter;
use crate::retry::{Retry, backoff, sdk_retry_of};

/// Attempts per batch at entries SQS failed on its side (`SenderFault == false`),
/// the first included.
const MAX_ENTRY_ATTEMPTS: u32 = 4;
const ENTRY_BACKOFF_BASE: Duration = Duration::from_millis(100);
const ENTRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// SQS error codes of throttling and of a service that is briefly unavailable.
const TRANSIENT_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "KmsThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "OverLimit",
];

sdk_retry_of!(aws_sdk_sqs, TRANSIENT_CODES);

/// An SQS queue that takes dead letters and failed batches.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// Sends to the queue at `queue_url` (see [`create_queue`]).
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    async fn send_all(&self, messages: &[Message]) -> Result<(), StoreError> {
        let sizes: Vec<usize> = messages.iter().map(Message::size).collect();
        for range in messages::batches(&sizes) {
            self.send_batch(&messages[range]).await?;
        }
        Ok(())
    }

    /// Sends one batch, sending again the entries SQS failed on its side.
    async fn send_batch(&self, batch: &[Message]) -> Result<(), StoreError> {
        // Entry ids are positions in `batch`, so that a failed id finds its message.
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        for attempt in 0..MAX_ENTRY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt - 1, ENTRY_BACKOFF_BASE, ENTRY_BACKOFF_MAX))
                    .await;
            }
            let entries = pending
                .iter()
                .map(|&i| entry(i, &batch[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store_error("SendMessageBatch", &e))?;
            pending = entries_to_retry(output.failed(), batch.len())?;
            if pending.is_empty() {
                return Ok(());
            }
            tracing::warn!(queue_url = %self.queue_url, failed = pending.len(), attempt, "SQS failed some entries; sending them again");
        }
        Err(StoreError::Transient(format!(
            "SQS SendMessageBatch: {} entries still failing after {MAX_ENTRY_ATTEMPTS} attempts",
            pending.len()
        )))
    }
}

fn entry(index: usize, message: &Message) -> Result<SendMessageBatchRequestEntry, StoreError> {
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body);
    for (name, value) in &message.attributes {
        let value = MessageAttributeValue::builder()
            .data_type(messages::STRING)
            .string_value(value)
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        entry = entry.message_attributes(*name, value);
    }
    entry
        .build()
        .map_err(|e| StoreError::Permanent(e.to_string()))
}

/// Which entries of a batch of `len` to send again, from the `Failed` list of a
/// `SendMessageBatch` response.
///
/// An entry SQS blames on the sender (too big, bad characters, bad attribute) fails
/// again however often it is sent: the whole send is permanent. The others (SQS's
/// own failures) are sent again.
fn entries_to_retry(
    failed: &[BatchResultErrorEntry],
    len: usize,
) -> Result<Vec<usize>, StoreError> {
    let describe = |f: &BatchResultErrorEntry| {
        format!(
            "entry {}: {} {}",
            f.id(),
            f.code(),
            f.message().unwrap_or("")
        )
    };
    if let Some(f) = failed.iter().find(|f| f.sender_fault()) {
        return Err(StoreError::Permanent(format!(
            "SQS SendMessageBatch refused {}",
            describe(f)
        )));
    }
    let mut out = Vec::with_capacity(failed.len());
    for f in failed {
        match f.id().parse::<usize>() {
            Ok(i) if i < len => out.push(i),
            _ => {
                return Err(StoreError::Transient(format!(
                    "SQS SendMessageBatch failed an unknown {}",
                    describe(f)
                )));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A store error for a failed SQS request of operation `op`.
pub(crate) fn store_error<E>(op: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("SQS {op}: {}", crate::error_text(err));
    match retry_of(err) {
        Retry::Transient => StoreError::Transient(message),
        Retry::Permanent => StoreError::Permanent(message),
    }
}

impl DeadLetterSink for SqsQueue {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        let messages: Vec<Message> = letters.iter().map(messages::dead_letter).collect();
        self.send_all(&messages).await?;
        if !letters.is_empty() {
            tracing::info!(queue_url = %self.queue_url, letters = letters.len(), "dead letters sent");
        }
        Ok(())
    }
}

#[cfg(feature = "runner")]
impl flyhigh_runner::failure::FailureDestination for SqsQueue {
    async fn send(&self, failure: &flyhigh_runner::failure::BatchFailure) -> Result<(), String> {
        self.send_all(&[messages::batch_failure(failure)])
            .await
            .map_err(|e| e.to_string())
    }
}

/// Creates a standard queue named `name`, or finds it when it exists, and returns its
/// URL. Meant for tests and the local setup; production queues come from `infra/`.
pub async fn create_queue(client: &Client, name: &str) -> Result<String, StoreError> {
    match client.create_queue().queue_name(name).send().await {
        Ok(out) => {
            if let Some(url) = out.queue_url() {
                return Ok(url.to_string());
            }
        }
        // Exists with other attributes: it is still the queue we want.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateQueueError::QueueNameExists(_))
            ) => {}
        Err(e) => return Err(store_error("CreateQueue", &e)),
    }
    let out = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| store_error("GetQueueUrl", &e))?;
    out.queue_url()
        .map(str::to_string)
        .ok_or_else(|| StoreError::Permanent(format!("SQS GetQueueUrl returned no URL for {name}")))
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
    use aws_sdk_sqs::types::error::{QueueDoesNotExist, RequestThrottled};

    use super::*;
    use crate::test_sdk::{meta, response};

    fn failed(id: &str, sender_fault: bool, code: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .sender_fault(sender_fault)
            .code(code)
            .build()
            .unwrap()
    }

    #[test]
    fn no_failures_means_done() {
        assert_eq!(entries_to_retry(&[], 10), Ok(vec![]));
    }

    #[test]
    fn service_side_failures_are_sent_again() {
        let f = [
            failed("7", false, "InternalError"),
            failed("2", false, "ServiceUnavailable"),
        ];
        assert_eq!(entries_to_retry(&f, 10), Ok(vec![2, 7]));
    }

    #[test]
    fn a_sender_fault_is_permanent() {
        let f = [
            failed("1", false, "InternalError"),
            failed("3", true, "InvalidMessageContents"),
        ];
        let err = entries_to_retry(&f, 10).unwrap_err();
        assert!(
            matches!(err, StoreError::Permanent(ref m) if m.contains("InvalidMessageContents")),
            "{err:?}"
        );
    }

    #[test]
    fn an_unknown_entry_id_is_transient() {
        assert!(matches!(
            entries_to_retry(&[failed("10", false, "InternalError")], 10),
            Err(StoreError::Transient(_))
        ));
        assert!(matches!(
            entries_to_retry(&[failed("x", false, "InternalError")], 10),
            Err(StoreError::Transient(_))
        ));
    }

    #[test]
    fn throttling_is_transient_and_a_missing_queue_permanent() {
        let throttled = SendMessageBatchError::RequestThrottled(
            RequestThrottled::builder()
                .meta(meta("RequestThrottled"))
                .build(),
        );
        let err = store_error(
            "SendMessageBatch",
            &SdkError::service_error(throttled, response(400)),
        );
        assert!(matches!(err, StoreError::Transient(_)), "{err:?}");
        let missing = SendMessageBatchError::QueueDoesNotExist(
            QueueDoesNotExist::builder()
                .meta(meta("AWS.SimpleQueueService.NonExistentQueue"))
                .build(),
        );
        let err = store_error(
            "SendMessageBatch",
            &SdkError::service_error(missing, response(400)),
        );
        assert!(matches!(err, StoreError::Permanent(_)), "{err:?}");
        let unavailable = SendMessageBatchError::generic(meta("ServiceUnavailable"));
        let err = store_error(
            "SendMessageBatch",
            &SdkError::service_error(unavailable, response(503)),
        );
        assert!(matches!(err, StoreError::Transient(_)), "{err:?}");
        let timeout: SdkError<SendMessageBatchError> = SdkError::timeout_error("deadline");
        assert!(matches!(
            store_error("SendMessageBatch", &timeout),
            StoreError::Transient(_)
        ));
    }

    #[test]
    fn entries_carry_body_and_string_attributes() {
        let m = Message {
            body: "{}".into(),
            attributes: vec![("processor", "inventory".into())],
        };
        let e = entry(3, &m).unwrap();
        assert_eq!((e.id(), e.message_body()), ("3", "{}"));
        let attr = &e.message_attributes().unwrap()["processor"];
        assert_eq!(
            (attr.data_type(), attr.string_value()),
            ("String", Some("inventory"))
        );
    }
}
