//! Shared by the moto integration tests: SDK configuration for the moto server named
//! by `FLYHIGH_MOTO_URL`, and unique resource names so that tests run in parallel
//! against one server.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};

#[cfg(feature = "dynamodb")]
use aws_sdk_dynamodb::config::Credentials;
#[cfg(all(not(feature = "dynamodb"), not(feature = "sqs"), feature = "kinesis"))]
use aws_sdk_kinesis::config::Credentials;
#[cfg(all(not(feature = "dynamodb"), feature = "sqs"))]
use aws_sdk_sqs::config::Credentials;

/// The moto server's URL.
///
/// # Panics
///
/// When `FLYHIGH_MOTO_URL` is not set: an integration test never passes without
/// having run.
pub fn moto_url() -> String {
    match std::env::var("FLYHIGH_MOTO_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "FLYHIGH_MOTO_URL is not set; these tests need a moto server. \
             Start moto: scripts/moto.sh start && source target/moto.env"
        ),
    }
}

/// SDK configuration for moto: its endpoint, `us-east-1`, static test credentials.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "moto-tests",
        ))
        .load()
        .await
}

/// A resource name no other test (in this or a concurrent run) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// A received SQS message: its body and its String attributes.
#[cfg(feature = "sqs")]
pub struct Received {
    pub body: String,
    pub attributes: std::collections::HashMap<String, String>,
}

/// Receives (and deletes) until `expected` messages have arrived or 20 s pass; then
/// `extra_rounds` more one-second waits for any that should not come.
#[cfg(feature = "sqs")]
pub async fn receive(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
    mut extra_rounds: u32,
) -> Vec<Received> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && (out.len() < expected || extra_rounds > 0) {
        if out.len() >= expected {
            extra_rounds -= 1;
        }
        let page = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in page.messages() {
            let attributes = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    assert_eq!(v.data_type(), "String", "attribute {k}");
                    (k.clone(), v.string_value().unwrap_or_default().to_string())
                })
                .collect();
            out.push(Received {
                body: m.body().unwrap_or_default().to_string(),
                attributes,
            });
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().expect("receipt handle"))
                .send()
                .await
                .expect("delete");
        }
    }
    out
}

/// An S3 client for moto: path-style addressing, since the bucket cannot be a host
/// name of `127.0.0.1`.
#[cfg(feature = "s3")]
pub async fn s3_client() -> aws_sdk_s3::Client {
    let config = sdk_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// A bucket name no other test uses: lower case, at most 63 characters.
#[cfg(feature = "s3")]
pub fn unique_bucket(prefix: &str) -> String {
    let name = unique_name(prefix).to_ascii_lowercase();
    assert!(name.len() <= 63, "bucket name {name} is too long for S3");
    name
}
