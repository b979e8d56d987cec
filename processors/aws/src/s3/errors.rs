//! S3 errors, classified by what the caller must do: a missing key is an answer
//! (`None`, not moved), throttling and service failures are transient, anything
//! else (`AccessDenied`, `NoSuchBucket`, `InvalidRequest`, a KMS key S3 may not
//! use) is permanent. Pure: tested with SDK errors built by their builders.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::Error as KeyError;
use flyhigh_core::ports::StoreError;

use crate::retry::{Retry, classify_service, sdk_retry_of};

/// S3 error codes of throttling and of a service that is briefly unavailable.
/// `OperationAborted` is a conflicting operation on the same bucket or key still in
/// progress. Any 5xx and 429 are transient too, whatever the code.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
];

/// The code S3 answers for an object that is not there.
pub(crate) const NO_SUCH_KEY: &str = "NoSuchKey";

sdk_retry_of!(aws_sdk_s3, TRANSIENT_CODES);

/// A store error for a failed request of operation `op` on `target` (`s3://bucket`
/// or `s3://bucket/key`, so that the operator reads which bucket).
pub(crate) fn store_error<E>(op: &str, target: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("S3 {op} {target}: {}", crate::error_text(err));
    match retry_of(err) {
        Retry::Transient => StoreError::Transient(message),
        Retry::Permanent => StoreError::Permanent(message),
    }
}

/// Whether the request failed because its (source) object is not there. `CopyObject`
/// has no modeled `NoSuchKey`: the code tells.
pub(crate) fn is_no_such_key<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.code() == Some(NO_SUCH_KEY))
}

/// The keys a `DeleteObjects` response reports as not deleted, as one error: the
/// count, then the first key's code and message; transient when every failure is
/// (S3 reports `InternalError` or `SlowDown` per key), else permanent. `None` when
/// there is none. A missing key is never among them: S3 deletes it as success.
pub(crate) fn delete_errors(target: &str, errors: &[KeyError], asked: usize) -> Option<StoreError> {
    let first = errors.first()?;
    let message = format!(
        "S3 DeleteObjects {target}: {} of {asked} keys not deleted; first {}: {}: {}",
        errors.len(),
        first.key().unwrap_or("(no key)"),
        first.code().unwrap_or("(no code)"),
        first.message().unwrap_or("(no message)"),
    );
    let transient = errors
        .iter()
        .all(|e| classify_service(e.code(), 200, TRANSIENT_CODES) == Retry::Transient);
    Some(if transient {
        StoreError::Transient(message)
    } else {
        StoreError::Permanent(message)
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::copy_object::CopyObjectError;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::types::error::NoSuchKey;

    use super::*;
    use crate::test_sdk::{meta, response};

    fn put_error(code: &str, status: u16) -> StoreError {
        store_error(
            "PutObject",
            "s3://bucket/key",
            &SdkError::service_error(PutObjectError::generic(meta(code)), response(status)),
        )
    }

    #[test]
    fn throttling_timeouts_and_server_failures_are_transient() {
        for (code, status) in [
            ("SlowDown", 503),
            ("InternalError", 500),
            ("ServiceUnavailable", 503),
            ("RequestTimeout", 400),
            ("OperationAborted", 409),
            ("Whatever", 429),
            ("Whatever", 502),
        ] {
            let err = put_error(code, status);
            assert!(matches!(err, StoreError::Transient(_)), "{code}: {err:?}");
        }
        let timeout: SdkError<PutObjectError> = SdkError::timeout_error("deadline");
        assert!(matches!(
            store_error("PutObject", "s3://b/k", &timeout),
            StoreError::Transient(_)
        ));
    }

    #[test]
    fn denied_access_a_missing_bucket_and_bad_requests_are_permanent() {
        for (code, status) in [
            ("AccessDenied", 403),
            ("NoSuchBucket", 404),
            ("InvalidRequest", 400),
            ("KMS.NotFoundException", 400),
            ("InvalidArgument", 400),
        ] {
            let err = put_error(code, status);
            assert!(matches!(err, StoreError::Permanent(_)), "{code}: {err:?}");
        }
    }

    #[test]
    fn errors_are_one_line_naming_the_operation_the_target_and_the_code() {
        let StoreError::Permanent(message) = put_error("NoSuchBucket", 404) else {
            panic!("not permanent")
        };
        assert!(
            message.starts_with("S3 PutObject s3://bucket/key: "),
            "{message}"
        );
        assert!(message.contains("NoSuchBucket"), "{message}");
        assert!(
            !message.contains('\n') && !message.contains("HttpResponse"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_key_is_told_apart_by_its_code() {
        let get = SdkError::service_error(
            GetObjectError::NoSuchKey(NoSuchKey::builder().meta(meta(NO_SUCH_KEY)).build()),
            response(404),
        );
        assert!(is_no_such_key(&get));
        let copy =
            SdkError::service_error(CopyObjectError::generic(meta(NO_SUCH_KEY)), response(404));
        assert!(is_no_such_key(&copy));
        let denied = SdkError::service_error(
            CopyObjectError::generic(meta("AccessDenied")),
            response(403),
        );
        assert!(!is_no_such_key(&denied));
        let timeout: SdkError<CopyObjectError> = SdkError::timeout_error("deadline");
        assert!(!is_no_such_key(&timeout));
    }

    fn key_error(key: &str, code: &str) -> KeyError {
        KeyError::builder().key(key).code(code).message("m").build()
    }

    #[test]
    fn keys_a_delete_left_are_errors_transient_only_when_all_are() {
        assert_eq!(delete_errors("s3://b", &[], 3), None);
        let err = delete_errors(
            "s3://b",
            &[key_error("a", "InternalError"), key_error("b", "SlowDown")],
            3,
        );
        assert!(
            matches!(err, Some(StoreError::Transient(ref m)) if m.contains("2 of 3 keys") && m.contains("first a: InternalError")),
            "{err:?}"
        );
        let err = delete_errors(
            "s3://b",
            &[
                key_error("a", "InternalError"),
                key_error("b", "AccessDenied"),
            ],
            2,
        );
        assert!(matches!(err, Some(StoreError::Permanent(_))), "{err:?}");
    }
}
