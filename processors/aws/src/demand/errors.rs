//! The demand and alert stores' conditional writes, classified: a failed condition is
//! an answer (stale, raised already, saved by another), anything else a
//! [`StoreError`] by what the caller must do. Pure: tested with SDK errors built by
//! their builders.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use flyhigh_core::ports::{CommitError, StoreError};

use crate::dynamodb::errors::{commit_error, store_error};
use crate::dynamodb::items::Item;

/// A failed `UpdateItem`: `Ok` with the item as it was (when DynamoDB returned it,
/// `ReturnValuesOnConditionCheckFailure::AllOld`) if its condition failed.
pub(crate) fn update_refused(err: &SdkError<UpdateItemError>) -> Result<Option<Item>, StoreError> {
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(e)) => Ok(e.item().cloned()),
        _ => Err(store_error("UpdateItem", err)),
    }
}

/// A failed `DeleteItem`: `Ok` if its condition failed.
pub(crate) fn delete_refused(err: &SdkError<DeleteItemError>) -> Result<(), StoreError> {
    match err.as_service_error() {
        Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
        _ => Err(store_error("DeleteItem", err)),
    }
}

/// A failed `PutItem`: `Ok` if its condition failed.
pub(crate) fn put_refused(err: &SdkError<PutItemError>) -> Result<(), StoreError> {
    match err.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(()),
        _ => Err(store_error("PutItem", err)),
    }
}

/// A failed `TransactWriteItems`: `Ok` if it was cancelled because a condition
/// failed (the only conditional action of the alert store's transactions is the
/// alert item's), else the error by its reasons (see `dynamodb::errors`).
pub(crate) fn transaction_refused(
    err: &SdkError<TransactWriteItemsError>,
) -> Result<(), StoreError> {
    match commit_error(err) {
        CommitError::Conflict => Ok(()),
        CommitError::Store(e) => Err(e),
    }
}

/// The actions of a cancelled `TransactWriteItems` whose condition failed, by index;
/// `None` when it failed otherwise (throttling, a conflict, a request error).
pub(crate) fn condition_failures(err: &SdkError<TransactWriteItemsError>) -> Option<Vec<usize>> {
    let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error()
    else {
        return None;
    };
    let reasons = e.cancellation_reasons();
    let failed: Vec<usize> = reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
        .map(|(i, _)| i)
        .collect();
    // Only conditions: any other reason makes the whole transaction a store error.
    let others = reasons.iter().any(|r| {
        !matches!(
            r.code(),
            None | Some("None") | Some("ConditionalCheckFailed")
        )
    });
    (!failed.is_empty() && !others).then_some(failed)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
        ResourceNotFoundException, TransactionCanceledException,
    };
    use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("test").build()
    }

    fn condition_failed(item: Option<Item>) -> ConditionalCheckFailedException {
        ConditionalCheckFailedException::builder()
            .meta(meta("ConditionalCheckFailedException"))
            .set_item(item)
            .build()
    }

    #[test]
    fn a_failed_update_condition_returns_the_old_item() {
        let old = Item::from([("mark".to_string(), AttributeValue::S("m".into()))]);
        let err = SdkError::service_error(
            UpdateItemError::ConditionalCheckFailedException(condition_failed(Some(old.clone()))),
            response(400),
        );
        assert_eq!(update_refused(&err), Ok(Some(old)));
        let err = SdkError::service_error(
            UpdateItemError::ConditionalCheckFailedException(condition_failed(None)),
            response(400),
        );
        assert_eq!(update_refused(&err), Ok(None));
    }

    #[test]
    fn other_update_failures_are_store_errors_by_kind() {
        let throttled = SdkError::service_error(
            UpdateItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .meta(meta("ProvisionedThroughputExceededException"))
                    .build(),
            ),
            response(400),
        );
        assert!(matches!(
            update_refused(&throttled),
            Err(StoreError::Transient(ref m)) if m.contains("UpdateItem")
        ));
        let missing = SdkError::service_error(
            UpdateItemError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .meta(meta("ResourceNotFoundException"))
                    .build(),
            ),
            response(400),
        );
        assert!(matches!(
            update_refused(&missing),
            Err(StoreError::Permanent(_))
        ));
        let timeout: SdkError<UpdateItemError> = SdkError::timeout_error("deadline");
        assert!(matches!(
            update_refused(&timeout),
            Err(StoreError::Transient(_))
        ));
    }

    #[test]
    fn a_failed_put_condition_is_a_refusal_and_a_500_transient() {
        let err = SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(condition_failed(None)),
            response(400),
        );
        assert_eq!(put_refused(&err), Ok(()));
        let err = SdkError::service_error(
            PutItemError::generic(meta("InternalServerError")),
            response(500),
        );
        assert!(
            matches!(put_refused(&err), Err(StoreError::Transient(ref m)) if m.contains("PutItem"))
        );
        let err = SdkError::service_error(
            PutItemError::generic(meta("ValidationException")),
            response(400),
        );
        assert!(matches!(put_refused(&err), Err(StoreError::Permanent(_))));
    }

    fn cancelled(reasons: &[&str]) -> SdkError<TransactWriteItemsError> {
        let mut e =
            TransactionCanceledException::builder().meta(meta("TransactionCanceledException"));
        for r in reasons {
            e = e.cancellation_reasons(CancellationReason::builder().code(*r).build());
        }
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(e.build()),
            response(400),
        )
    }

    #[test]
    fn a_transaction_cancelled_by_the_alert_items_condition_is_a_refusal() {
        assert_eq!(
            transaction_refused(&cancelled(&["ConditionalCheckFailed", "None"])),
            Ok(())
        );
        assert!(matches!(
            transaction_refused(&cancelled(&["None", "TransactionConflict"])),
            Err(StoreError::Transient(_))
        ));
        assert!(matches!(
            transaction_refused(&cancelled(&["ValidationError", "None"])),
            Err(StoreError::Permanent(_))
        ));
    }
}
