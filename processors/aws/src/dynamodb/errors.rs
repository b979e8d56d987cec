//! DynamoDB errors, classified by what the caller must do. Pure: tested with SDK
//! error types built by their builders.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;
use flyhigh_core::ports::{CommitError, StoreError};

use crate::retry::{Retry, sdk_retry_of};

/// Error codes of throttling and of a service that is briefly unavailable.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "ReplicatedWriteConflictException",
    "LimitExceededException",
];

/// Cancellation reason codes that another attempt may clear.
const TRANSIENT_REASONS: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
    "InternalServerError",
];

const CONDITION_FAILED: &str = "ConditionalCheckFailed";

sdk_retry_of!(aws_sdk_dynamodb, TRANSIENT_CODES);

/// A store error for a failed request of operation `op`.
pub(crate) fn store_error<E>(op: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("DynamoDB {op}: {}", crate::error_text(err));
    match retry_of(err) {
        Retry::Transient => StoreError::Transient(message),
        Retry::Permanent => StoreError::Permanent(message),
    }
}

/// Why `TransactWriteItems` failed, as the inventory handler must act on it.
pub(crate) fn commit_error(err: &SdkError<TransactWriteItemsError>) -> CommitError {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            cancellation_error(e.cancellation_reasons(), e.message())
        }
        _ => CommitError::Store(store_error("TransactWriteItems", err)),
    }
}

/// Classifies a cancelled transaction by its reasons (one per action, in order,
/// `"None"` for the actions that were fine).
///
/// A failed condition wins over everything else: the plan was made from a state that
/// is gone, so the handler must re-read and plan again whatever else went wrong. When
/// the reasons are missing, their codes are taken from the message, which DynamoDB
/// words as `... specific reasons [ConditionalCheckFailed, None]`.
pub(crate) fn cancellation_error(
    reasons: &[CancellationReason],
    message: Option<&str>,
) -> CommitError {
    let mut codes: Vec<&str> = reasons
        .iter()
        .filter_map(CancellationReason::code)
        .collect();
    if codes.is_empty() {
        codes = message.map(codes_in_message).unwrap_or_default();
    }
    let described = format!(
        "DynamoDB TransactWriteItems cancelled: [{}]",
        codes.join(", ")
    );
    if codes.contains(&CONDITION_FAILED) {
        CommitError::Conflict
    } else if codes.iter().any(|c| TRANSIENT_REASONS.contains(c)) {
        CommitError::Store(StoreError::Transient(described))
    } else if codes.iter().all(|c| *c == "None") {
        // Cancelled with no item to blame: nothing says the request is wrong.
        CommitError::Store(StoreError::Transient(described))
    } else {
        // ValidationError, ItemCollectionSizeLimitExceeded: the same request fails again.
        CommitError::Store(StoreError::Permanent(described))
    }
}

/// The codes in `"... reasons [A, None, B]"`.
fn codes_in_message(message: &str) -> Vec<&str> {
    let Some(start) = message.rfind('[') else {
        return Vec::new();
    };
    let Some(len) = message[start..].find(']') else {
        return Vec::new();
    };
    message[start + 1..start + len]
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
    use aws_sdk_dynamodb::types::error::{
        InternalServerError, ProvisionedThroughputExceededException, RequestLimitExceeded,
        ResourceNotFoundException, ThrottlingException, TransactionCanceledException,
        TransactionInProgressException,
    };

    use super::*;
    use crate::test_sdk::{meta, response};

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn cancelled(reasons: &[&str], message: Option<&str>) -> SdkError<TransactWriteItemsError> {
        let mut e =
            TransactionCanceledException::builder().meta(meta("TransactionCanceledException"));
        for r in reasons {
            e = e.cancellation_reasons(reason(r));
        }
        if let Some(m) = message {
            e = e.message(m);
        }
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(e.build()),
            response(400),
        )
    }

    #[test]
    fn a_failed_condition_is_a_conflict() {
        assert_eq!(
            commit_error(&cancelled(
                &["None", "ConditionalCheckFailed", "None"],
                None
            )),
            CommitError::Conflict
        );
    }

    #[test]
    fn a_failed_condition_wins_over_throttling() {
        assert_eq!(
            commit_error(&cancelled(
                &["ThrottlingError", "ConditionalCheckFailed"],
                None
            )),
            CommitError::Conflict
        );
    }

    #[test]
    fn conflicts_and_throttling_in_reasons_are_transient() {
        for code in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            let err = commit_error(&cancelled(&["None", code], None));
            assert!(
                matches!(err, CommitError::Store(StoreError::Transient(ref m)) if m.contains(code)),
                "{code}: {err:?}"
            );
        }
    }

    #[test]
    fn validation_reasons_are_permanent() {
        for code in ["ValidationError", "ItemCollectionSizeLimitExceeded"] {
            let err = commit_error(&cancelled(&[code, "None"], None));
            assert!(
                matches!(err, CommitError::Store(StoreError::Permanent(_))),
                "{code}: {err:?}"
            );
        }
    }

    #[test]
    fn reasons_are_read_from_the_message_when_absent() {
        let message = "Transaction cancelled, please refer cancellation reasons for specific reasons \
                       [None, ConditionalCheckFailed]";
        assert_eq!(
            commit_error(&cancelled(&[], Some(message))),
            CommitError::Conflict
        );
        let message = "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]";
        assert!(matches!(
            commit_error(&cancelled(&[], Some(message))),
            CommitError::Store(StoreError::Transient(_))
        ));
    }

    #[test]
    fn a_cancellation_without_any_reason_is_transient() {
        assert!(matches!(
            commit_error(&cancelled(&[], None)),
            CommitError::Store(StoreError::Transient(_))
        ));
        assert!(matches!(
            commit_error(&cancelled(&["None"], None)),
            CommitError::Store(StoreError::Transient(_))
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        let cases = [
            (
                TransactWriteItemsError::ThrottlingException(
                    ThrottlingException::builder()
                        .meta(meta("ThrottlingException"))
                        .build(),
                ),
                400,
            ),
            (
                TransactWriteItemsError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .meta(meta("ProvisionedThroughputExceededException"))
                        .build(),
                ),
                400,
            ),
            (
                TransactWriteItemsError::RequestLimitExceeded(
                    RequestLimitExceeded::builder()
                        .meta(meta("RequestLimitExceeded"))
                        .build(),
                ),
                400,
            ),
            (
                TransactWriteItemsError::TransactionInProgressException(
                    TransactionInProgressException::builder()
                        .meta(meta("TransactionInProgressException"))
                        .build(),
                ),
                400,
            ),
            (
                TransactWriteItemsError::InternalServerError(
                    InternalServerError::builder()
                        .meta(meta("InternalServerError"))
                        .build(),
                ),
                500,
            ),
            (
                TransactWriteItemsError::generic(meta("ServiceUnavailable")),
                503,
            ),
        ];
        for (err, status) in cases {
            let name = format!("{err:?}");
            let err = commit_error(&SdkError::service_error(err, response(status)));
            assert!(
                matches!(err, CommitError::Store(StoreError::Transient(_))),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn missing_table_and_validation_are_permanent() {
        let missing = TransactWriteItemsError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(meta("ResourceNotFoundException"))
                .build(),
        );
        let err = commit_error(&SdkError::service_error(missing, response(400)));
        assert!(
            matches!(err, CommitError::Store(StoreError::Permanent(_))),
            "{err:?}"
        );
        let invalid = TransactWriteItemsError::generic(meta("ValidationException"));
        let err = commit_error(&SdkError::service_error(invalid, response(400)));
        assert!(
            matches!(err, CommitError::Store(StoreError::Permanent(_))),
            "{err:?}"
        );
    }

    #[test]
    fn timeouts_and_connection_failures_are_transient() {
        let timeout: SdkError<BatchGetItemError> = SdkError::timeout_error("deadline");
        assert!(matches!(
            store_error("BatchGetItem", &timeout),
            StoreError::Transient(_)
        ));
        let io = aws_sdk_dynamodb::error::ConnectorError::io("reset".into());
        let dispatch: SdkError<BatchGetItemError> = SdkError::dispatch_failure(io);
        assert!(matches!(
            store_error("BatchGetItem", &dispatch),
            StoreError::Transient(_)
        ));
        let construction: SdkError<BatchGetItemError> =
            SdkError::construction_failure("no table name");
        assert!(matches!(
            store_error("BatchGetItem", &construction),
            StoreError::Permanent(_)
        ));
    }

    #[test]
    fn store_errors_name_the_operation_and_the_code() {
        let err = SdkError::service_error(
            BatchGetItemError::generic(meta("ThrottlingException")),
            response(400),
        );
        let StoreError::Transient(message) = store_error("BatchGetItem", &err) else {
            panic!("not transient")
        };
        assert!(
            message.contains("BatchGetItem") && message.contains("ThrottlingException"),
            "{message}"
        );
    }
}
