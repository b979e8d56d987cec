//! Reading dead letters back from the queue, for the operator commands
//! (`flyhigh dead-letters list | replay`): receive with a visibility timeout, then
//! either delete (handled) or release (visible again at once).

use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use flyhigh_core::ports::{DeadLetter, StoreError};

use super::{SqsQueue, store_error};
use crate::sqs::messages::MAX_BATCH_ENTRIES;

/// Most messages one `ReceiveMessage` returns.
const MAX_RECEIVE: i32 = 10;

/// A message received from a dead-letter queue.
#[derive(Debug, Clone)]
pub struct ReceivedLetter {
    /// The letter, or why the body is not one (a message some other writer sent).
    pub letter: Result<DeadLetter, String>,
    /// The handle to delete or release the message with.
    pub receipt_handle: String,
    /// The SQS message id.
    pub message_id: String,
}

impl SqsQueue {
    /// Receives up to `max` messages, each hidden from other readers for
    /// `visibility` (long enough to handle them all), until the queue returns none.
    /// Nothing is deleted: messages not [deleted](Self::delete) reappear when their
    /// visibility ends or when [released](Self::release).
    ///
    /// # Errors
    ///
    /// As SQS fails, classified ([`StoreError::Permanent`] for a missing queue).
    pub async fn receive_letters(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedLetter>, StoreError> {
        let mut out = Vec::new();
        while out.len() < max {
            let want = i32::try_from(max - out.len())
                .unwrap_or(MAX_RECEIVE)
                .min(MAX_RECEIVE);
            let response = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want)
                .visibility_timeout(
                    i32::try_from(visibility.as_secs())
                        .unwrap_or(i32::MAX)
                        .max(1),
                )
                // A short long-poll: an empty answer then means an empty queue, not an
                // unlucky sample of SQS's servers.
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| store_error("ReceiveMessage", &e))?;
            let messages = response.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let body = m.body().unwrap_or_default();
                out.push(ReceivedLetter {
                    letter: serde_json::from_str::<DeadLetter>(body)
                        .map_err(|e| format!("not a dead letter: {e}")),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                    message_id: m.message_id().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Makes received messages visible again at once (visibility 0).
    ///
    /// # Errors
    ///
    /// As SQS fails; the messages then reappear when their visibility ends anyway.
    pub async fn release(&self, receipt_handles: &[String]) -> Result<(), StoreError> {
        for chunk in receipt_handles.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| StoreError::Permanent(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store_error("ChangeMessageVisibilityBatch", &e))?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::Transient(format!(
                    "SQS ChangeMessageVisibilityBatch failed {} of {} entries (first: {} {})",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or("")
                )));
            }
        }
        Ok(())
    }

    /// Deletes a handled message.
    ///
    /// # Errors
    ///
    /// As SQS fails; the message then reappears and may be handled again.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| store_error("DeleteMessage", &e))?;
        Ok(())
    }
}
