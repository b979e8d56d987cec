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
