//! What every FlyHigh Lambda binary's `main` does the same way, so that each one
//! holds only its wiring: JSON logs ([`init_tracing`]), settings from the
//! environment ([`required`], [`optional`], [`number`]) and the runtime loop of a
//! Kinesis handler ([`serve_kinesis`]).

use std::future::Future;
use std::str::FromStr;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};

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
///
/// The runtime loop is boxed: with a deep handler future (the inventory's with
/// flight alerts), nesting it inline in `main`'s future goes past the compiler's
/// query depth limit when it computes the layout.
pub async fn serve_kinesis<H, F>(handle: H) -> Result<(), Error>
where
    H: Fn(KinesisEvent) -> F,
    F: Future<Output = KinesisEventResponse>,
{
    let handle = &handle;
    Box::pin(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            Ok::<_, Error>(handle(event.payload).await)
        },
    )))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
