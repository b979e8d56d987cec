//! One line of text for an AWS SDK error, shared by the Kinesis transport and the
//! SQS dead-letter sink: `Code: message` for a service error, else the error and
//! its sources by `Display` (the SDK's `DisplayErrorContext` appends a `Debug`
//! dump, unfit for a person).

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// `Code: message` of a service error, for logs, dead letters and receipts.
pub(crate) fn error_text(e: &impl ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        e.code().unwrap_or("Unknown"),
        e.message().unwrap_or_default()
    )
}

/// An error and its sources, `: `-separated, each by its `Display`.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // A service error displays its code and message, and so does its source.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
