//! Retry decisions shared by the adapters: pure, tested without a network.
//!
//! Each adapter turns an SDK error into a [`Retry`] (what the caller must do) and then
//! into its port's error type. The SDK already retries throttling and 5xx a few times
//! inside one call (standard retry mode); what reaches us has outlived those retries,
//! so "transient" here means "give the batch back and let it be redelivered".

#[cfg(any(feature = "dynamodb", feature = "sqs", feature = "kinesis", test))]
use std::time::Duration;

/// What the caller must do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Throttled, timed out, or the service failed: the same request may succeed later.
    Transient,
    /// The request itself is wrong (validation, missing resource, access denied):
    /// sending it again cannot succeed.
    Permanent,
}

/// Classifies a modeled service error by its error code and HTTP status.
///
/// `transient_codes` are the service's throttling and availability codes; any 5xx
/// and 429 are transient whatever the code says.
pub(crate) fn classify_service(code: Option<&str>, status: u16, transient_codes: &[&str]) -> Retry {
    if status >= 500 || status == 429 || code.is_some_and(|c| transient_codes.contains(&c)) {
        Retry::Transient
    } else {
        Retry::Permanent
    }
}

/// Exponential backoff without jitter: `base * 2^attempt`, capped at `max`.
///
/// Jitter matters when many clients retry in lockstep against one partition; the
/// callers here retry a handful of leftover entries of their own request, where a
/// deterministic schedule keeps tests reproducible.
#[cfg(any(feature = "dynamodb", feature = "sqs", feature = "kinesis", test))]
pub(crate) fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt)).min(max)
}

/// Polls `is_active` with backoff (100 ms doubling to 5 s) until it answers true or
/// `timeout` has passed; returns whether the resource became active. An error from a
/// poll is returned at once.
#[cfg(any(feature = "dynamodb", feature = "kinesis"))]
pub(crate) async fn wait_until_active<E, F, Fut>(
    timeout: Duration,
    mut is_active: F,
) -> Result<bool, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
{
    let started = tokio::time::Instant::now();
    for attempt in 0.. {
        if is_active().await? {
            return Ok(true);
        }
        if started.elapsed() > timeout {
            break;
        }
        tokio::time::sleep(backoff(
            attempt,
            Duration::from_millis(100),
            Duration::from_secs(5),
        ))
        .await;
    }
    Ok(false)
}

/// Defines `fn retry_of(&SdkError<E>) -> Retry` for one SDK crate.
///
/// Every SDK crate re-exports the same `SdkError`, but this crate reaches it only
/// through whichever SDK crates its features enable, so each adapter instantiates
/// the same match through its own crate path.
macro_rules! sdk_retry_of {
    ($sdk:ident, $transient_codes:expr) => {
        /// What the caller must do about this SDK error.
        pub(crate) fn retry_of<E>(err: &$sdk::error::SdkError<E>) -> $crate::retry::Retry
        where
            E: $sdk::error::ProvideErrorMetadata,
        {
            use $crate::retry::Retry;
            use $sdk::error::SdkError;
            match err {
                SdkError::ServiceError(ctx) => $crate::retry::classify_service(
                    ctx.err().code(),
                    ctx.raw().status().as_u16(),
                    $transient_codes,
                ),
                // Wrong endpoint or TLS setup: retrying cannot help.
                SdkError::DispatchFailure(e) if e.is_user() => Retry::Permanent,
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_) => Retry::Transient,
                SdkError::ConstructionFailure(_) => Retry::Permanent,
                // A variant added later: prefer redelivery over quarantining good data.
                _ => Retry::Transient,
            }
        }
    };
}
pub(crate) use sdk_retry_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_listed_as_transient_are_transient() {
        assert_eq!(
            classify_service(Some("Slow"), 400, &["Slow"]),
            Retry::Transient
        );
        assert_eq!(
            classify_service(Some("Bad"), 400, &["Slow"]),
            Retry::Permanent
        );
        assert_eq!(classify_service(None, 400, &["Slow"]), Retry::Permanent);
    }

    #[test]
    fn server_errors_and_429_are_transient_whatever_the_code() {
        assert_eq!(classify_service(Some("Bad"), 503, &[]), Retry::Transient);
        assert_eq!(classify_service(None, 500, &[]), Retry::Transient);
        assert_eq!(classify_service(None, 429, &[]), Retry::Transient);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(50);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(0, base, max), Duration::from_millis(50));
        assert_eq!(backoff(1, base, max), Duration::from_millis(100));
        assert_eq!(backoff(4, base, max), Duration::from_millis(800));
        assert_eq!(backoff(5, base, max), max);
        assert_eq!(backoff(60, base, max), max);
    }
}
