//! Fixtures for the unit tests of the error classifiers: SDK errors are built with
//! the SDKs' own builders, around these.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;

/// An empty HTTP answer with `status`.
pub(crate) fn response(status: u16) -> HttpResponse {
    HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
}

/// Error metadata with the service's error `code`.
pub(crate) fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message("test message")
        .build()
}
