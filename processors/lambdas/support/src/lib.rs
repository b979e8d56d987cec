//! What every FlyHigh Lambda binary's `main` does the same way, so that each one
//! holds only its wiring: JSON logs ([`init_tracing`]), settings from the
//! environment ([`required`], [`optional`], [`number`]) and the runtime loop of a
//! Kinesis handler ([`serve_kinesis`], or [`serve_kinesis_by`] for a handler that
//! takes the invocation's [`Deadline`] from Lambda's `Context`).

use std::future::Future;
use std::str::FromStr;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::time::SystemTime;

use flyhigh_handlers::Deadline;
use lambda_runtime::{Context, Error, LambdaEvent, service_fn};

/// JSON log lines, filtered by `RUST_LOG`, without a timestamp (CloudWatch Logs
/// stamps each line).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
}

/// The variable `name`, or an error saying it is not set.
pub fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// The variable `name`, `None` when unset or empty (a template may pass "" for
/// "not connected").
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The variable `name` parsed, `default` when unset; an error names the variable
/// and its value.
pub fn number<T: FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(s) => s.parse().map_err(|e| format!("{name}={s:?}: {e}")),
        Err(_) => Ok(default),
    }
}

/// Serves a Kinesis event source mapping with `handle` until the runtime stops.
/// `handle` does not learn the invocation's deadline; see [`serve_kinesis_by`].
pub async fn serve_kinesis<H, F>(handle: H) -> Result<(), Error>
where
    H: Fn(KinesisEvent) -> F,
    F: Future<Output = KinesisEventResponse>,
{
    serve_kinesis_by(move |event, _deadline| handle(event)).await
}

/// Serves a Kinesis event source mapping with `handle`, given each invocation's
/// [`Deadline`] (from the `Context`), until the runtime stops.
///
/// The runtime loop is boxed: with a deep handler future (the inventory's with
/// flight alerts), nesting it inline in `main`'s future goes past the compiler's
/// query depth limit when it computes the layout.
pub async fn serve_kinesis_by<H, F>(handle: H) -> Result<(), Error>
where
    H: Fn(KinesisEvent, Deadline) -> F,
    F: Future<Output = KinesisEventResponse>,
{
    let handle = &handle;
    Box::pin(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            let deadline = deadline(&event.context, SystemTime::now());
            Ok::<_, Error>(handle(event.payload, deadline).await)
        },
    )))
    .await
}

/// The invocation's deadline: Lambda's `deadline` is milliseconds since the epoch.
pub fn deadline(context: &Context, now: SystemTime) -> Deadline {
    Deadline::from_epoch_millis(context.deadline, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_comes_from_the_invocation_context() {
        use std::time::{Duration, UNIX_EPOCH};
        let mut context = Context::default();
        context.deadline = 1_000_000 + 300_000;
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let deadline = deadline(&context, now);
        assert!(deadline.allows(Duration::from_secs(290)));
        assert!(!deadline.allows(Duration::from_secs(301)));
        // Dropping the context (what serve_kinesis did) left no deadline at all.
        assert_ne!(deadline, Deadline::none());
    }

    #[test]
    fn settings_name_the_variable_that_is_missing_or_wrong() {
        // Names no other test or Lambda reads.
        let name = "FLYHIGH_LAMBDA_SUPPORT_TEST_NUMBER";
        assert_eq!(number::<u64>(name, 7), Ok(7));
        assert_eq!(
            required("FLYHIGH_LAMBDA_SUPPORT_TEST_MISSING"),
            Err("FLYHIGH_LAMBDA_SUPPORT_TEST_MISSING is not set".to_string())
        );
        assert_eq!(optional("FLYHIGH_LAMBDA_SUPPORT_TEST_MISSING"), None);
        // SAFETY: this test is the only reader and writer of the variable.
        unsafe { std::env::set_var(name, "ten") };
        assert!(
            number::<u64>(name, 7)
                .unwrap_err()
                .starts_with(&format!("{name}=\"ten\""))
        );
        unsafe { std::env::set_var(name, "") };
        assert_eq!(optional(name), None);
        unsafe { std::env::remove_var(name) };
    }
}
