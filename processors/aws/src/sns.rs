//! Alerts published to an SNS topic: [`SnsTopic`] implements [`AlertPublisher`].
//!
//! - `messages`: an alert's body, subject and message attributes (pure).
//! - `policy` (with `sqs`): the queue policy that lets a topic deliver to an SQS
//!   queue (pure).
//! - this module: the only code that calls SNS, and the classification of its
//!   failures (pure, tested with SDK types built by their builders).
//!
//! Each alert is one `Publish`: the body is [`Alert::to_json`], the String message
//! attributes are [`Alert::message_attributes`] (`rule`, `severity`, `route`,
//! `origin`, `destination`, and `flight_id`, `cabin` for flight alerts), so that a
//! subscriber filters with a policy such as `{"severity": ["critical"]}` or
//! `{"route": ["ORD-SFO"]}` without reading bodies. A subscription with raw message
//! delivery receives the body as it is. Publishing is at least once (the outbox
//! publishes again after a crash between publish and mark); a subscriber drops
//! repeats by `alert_id`.
//!
//! [`create_topic`] and, with the `sqs` feature, [`subscribe_queue`] make the topic
//! and its queue subscriptions for tests and local setups.

mod messages;
#[cfg(feature = "sqs")]
mod policy;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use flyhigh_core::ports::{AlertPublisher, StoreError};
use flyhigh_schemas::Alert;

pub use self::messages::MAX_SUBJECT_CHARS;
use crate::retry::{Retry, sdk_retry_of};

/// SNS error codes of throttling and of a service that is briefly unavailable
/// (KMS throttling included: the topic's key is throttled, not the request wrong).
/// Everything else (`NotFound`, `InvalidParameter`, `AuthorizationError`, the other
/// `KMS*` codes) is permanent: the topic or its setup must be fixed.
const TRANSIENT_CODES: &[&str] = &[
    "Throttled",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "KMSThrottling",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

sdk_retry_of!(aws_sdk_sns, TRANSIENT_CODES);

fn store_error<E>(op: &str, err: &SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("SNS {op}: {}", crate::error_text(err));
    match retry_of(err) {
        Retry::Transient => StoreError::Transient(message),
        Retry::Permanent => StoreError::Permanent(message),
    }
}

/// An SNS topic that alerts are published to.
#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
}

impl SnsTopic {
    /// Publishes to the topic `topic_arn` (see [`create_topic`]).
    pub fn new(client: Client, topic_arn: impl Into<String>) -> SnsTopic {
        SnsTopic {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// The topic ARN.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type(messages::STRING)
        .string_value(value)
        .build()
        .map_err(|e| StoreError::Permanent(e.to_string()))
}

impl AlertPublisher for SnsTopic {
    async fn publish(&self, alert: &Alert) -> Result<(), StoreError> {
        let publication = messages::publication(alert);
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(publication.message)
            .subject(publication.subject);
        for (name, value) in &publication.attributes {
            request = request.message_attributes(*name, attribute(value)?);
        }
        let out = request
            .send()
            .await
            .map_err(|e| store_error("Publish", &e))?;
        tracing::info!(
            topic_arn = %self.topic_arn,
            alert_id = %alert.alert_id,
            message_id = out.message_id().unwrap_or_default(),
            "alert published"
        );
        Ok(())
    }
}

/// Creates the standard topic `name`, or finds it when it exists (SNS answers a
/// repeated create with the same ARN), and returns its ARN. Meant for tests and the
/// local setup; production topics come from `infra/`.
pub async fn create_topic(client: &Client, name: &str) -> Result<String, StoreError> {
    let out = client
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| store_error("CreateTopic", &e))?;
    out.topic_arn()
        .map(str::to_string)
        .ok_or_else(|| StoreError::Permanent(format!("SNS CreateTopic returned no ARN for {name}")))
}

/// Subscribes the SQS queue at `queue_url` to the topic with raw message delivery
/// (the queue receives the alert JSON as the body, and the alert's attributes as
/// message attributes) and, when given, `filter_policy` (a JSON filter policy on the
/// message attributes). Returns the subscription ARN.
///
/// Looks up the queue's ARN and adds a statement to its policy that lets the topic
/// send to it (kept when there already), then subscribes. Meant for tests and the
/// local setup; production subscriptions come from `infra/`.
#[cfg(feature = "sqs")]
pub async fn subscribe_queue(
    sns: &Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    queue_url: &str,
    filter_policy: Option<&str>,
) -> Result<String, StoreError> {
    use aws_sdk_sqs::types::QueueAttributeName;

    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .map_err(|e| crate::sqs::store_error("GetQueueAttributes", &e))?;
    let attribute = |name: &QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(name))
            .map(String::as_str)
    };
    let queue_arn = attribute(&QueueAttributeName::QueueArn)
        .ok_or_else(|| {
            StoreError::Permanent(format!(
                "SQS GetQueueAttributes returned no QueueArn for {queue_url}"
            ))
        })?
        .to_string();
    let policy = policy::allow_topic(
        attribute(&QueueAttributeName::Policy),
        &queue_arn,
        topic_arn,
    )
    .map_err(|e| StoreError::Permanent(format!("queue {queue_url}: {e}")))?;
    if let Some(policy) = policy {
        sqs.set_queue_attributes()
            .queue_url(queue_url)
            .attributes(QueueAttributeName::Policy, policy)
            .send()
            .await
            .map_err(|e| crate::sqs::store_error("SetQueueAttributes", &e))?;
    }
    let mut request = sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true);
    if let Some(filter) = filter_policy {
        request = request.attributes("FilterPolicy", filter);
    }
    let out = request
        .send()
        .await
        .map_err(|e| store_error("Subscribe", &e))?;
    let arn = out.subscription_arn().map(str::to_string).ok_or_else(|| {
        StoreError::Permanent(format!(
            "SNS Subscribe returned no subscription ARN for {queue_arn}"
        ))
    })?;
    tracing::info!(topic_arn, queue_arn = %queue_arn, subscription_arn = %arn, "queue subscribed");
    Ok(arn)
}

#[cfg(test)]
mod tests {
    use aws_sdk_sns::operation::publish::PublishError;
    use aws_sdk_sns::types::error::{
        AuthorizationErrorException, InternalErrorException, InvalidParameterException,
        KmsDisabledException, KmsThrottlingException, NotFoundException,
    };

    use super::*;
    use crate::test_sdk::{meta, response};

    fn publish_error(err: PublishError, status: u16) -> StoreError {
        store_error("Publish", &SdkError::service_error(err, response(status)))
    }

    #[test]
    fn throttling_and_service_failures_are_transient() {
        let cases = [
            (PublishError::generic(meta("Throttling")), 400),
            (PublishError::generic(meta("Throttled")), 400),
            (
                PublishError::KmsThrottlingException(
                    KmsThrottlingException::builder()
                        .meta(meta("KMSThrottling"))
                        .build(),
                ),
                400,
            ),
            (
                PublishError::InternalErrorException(
                    InternalErrorException::builder()
                        .meta(meta("InternalError"))
                        .build(),
                ),
                500,
            ),
            (PublishError::generic(meta("ServiceUnavailable")), 503),
            (PublishError::generic(meta("Whatever")), 429),
        ];
        for (err, status) in cases {
            let name = format!("{err:?}");
            let err = publish_error(err, status);
            assert!(matches!(err, StoreError::Transient(_)), "{name}: {err:?}");
        }
        let timeout: SdkError<PublishError> = SdkError::timeout_error("deadline");
        assert!(matches!(
            store_error("Publish", &timeout),
            StoreError::Transient(_)
        ));
    }

    #[test]
    fn a_missing_topic_bad_parameters_and_denied_access_are_permanent() {
        let cases = [
            (
                PublishError::NotFoundException(
                    NotFoundException::builder().meta(meta("NotFound")).build(),
                ),
                404,
            ),
            (
                PublishError::InvalidParameterException(
                    InvalidParameterException::builder()
                        .meta(meta("InvalidParameter"))
                        .build(),
                ),
                400,
            ),
            (
                PublishError::AuthorizationErrorException(
                    AuthorizationErrorException::builder()
                        .meta(meta("AuthorizationError"))
                        .build(),
                ),
                403,
            ),
            (
                PublishError::KmsDisabledException(
                    KmsDisabledException::builder()
                        .meta(meta("KMSDisabled"))
                        .build(),
                ),
                400,
            ),
        ];
        for (err, status) in cases {
            let name = format!("{err:?}");
            let err = publish_error(err, status);
            assert!(matches!(err, StoreError::Permanent(_)), "{name}: {err:?}");
        }
    }

    #[test]
    fn errors_are_one_line_naming_the_operation_and_the_code() {
        let err = publish_error(
            PublishError::NotFoundException(
                NotFoundException::builder().meta(meta("NotFound")).build(),
            ),
            404,
        );
        let StoreError::Permanent(message) = err else {
            panic!("not permanent")
        };
        assert!(message.starts_with("SNS Publish: "), "{message}");
        assert!(message.contains("NotFound"), "{message}");
        assert!(
            !message.contains('\n') && !message.contains("HttpResponse"),
            "{message}"
        );
    }

    #[test]
    fn attributes_are_strings() {
        let a = attribute("critical").unwrap();
        assert_eq!(
            (a.data_type(), a.string_value()),
            ("String", Some("critical"))
        );
    }
}
