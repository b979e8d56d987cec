//! Errors a person can act on: the CLI prints `error: <what failed, its causes>` on
//! one line and, when it recognises the cause, `hint: <what to do>` on a second.
//! Never a backtrace or a debug dump (RUST_BACKTRACE does not change that).

/// What to do about an error, judged from its text (the adapters' messages name the
/// service and the SDK's error code, see `DisplayErrorContext`).
pub fn hint(message: &str) -> Option<&'static str> {
    let m = message;
    let has = |s: &str| m.contains(s);
    // Before "dispatch failure": a credentials failure is reported as one.
    if has("credentials") && (has("no providers") || has("failed to load") || has("NoCredentials"))
    {
        return Some(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        );
    }
    if has("dispatch failure")
        || has("Connection refused")
        || has("tcp connect error")
        || has("dns error")
    {
        return Some(
            "the AWS endpoint cannot be reached: check AWS_ENDPOINT_URL (is the local endpoint running?), AWS_REGION and the network, then run the command again",
        );
    }
    if has("NonExistentQueue") || has("QueueDoesNotExist") {
        return Some(
            "the queue does not exist in this account and region: check --queue (and AWS_REGION), or create it with `flyhigh setup`",
        );
    }
    if has("ResourceNotFoundException") && has("DynamoDB") {
        return Some(
            "the DynamoDB table does not exist in this account and region: check --table (and AWS_REGION), or create it with `flyhigh setup`",
        );
    }
    if has("ResourceNotFoundException") && has("Kinesis") {
        return Some(
            "the Kinesis stream does not exist in this account and region: check --stream (and AWS_REGION), or create it with `flyhigh setup`",
        );
    }
    if has("schedule file") && has("invalid") {
        return Some(
            "fix the file where the message says and load it again (CSV columns: flight_id,origin,destination,departure,economy,premium_economy,business,first)",
        );
    }
    if has("database is locked") || has("database is busy") {
        return Some(
            "another process holds the SQLite file locked: wait for it and run the command again",
        );
    }
    if has("schema version") {
        return Some("the file was written by a newer flyhigh: use that build to read it");
    }
    if has("No such file or directory") {
        return Some("check the path");
    }
    None
}

/// An SDK error as one line (see [`flyhigh_aws::error_text`]).
pub fn sdk_message(err: &(dyn std::error::Error + 'static)) -> String {
    tidy(&flyhigh_aws::error_text(err))
}

/// Where `DisplayErrorContext` starts the `Debug` of an `SdkError`.
const DEBUG_TAILS: [&str; 5] = [
    " (ServiceError(",
    " (DispatchFailure(",
    " (TimeoutError(",
    " (ResponseError(",
    " (ConstructionFailure(",
];

/// Drops the `Debug` tail `DisplayErrorContext` appends (always last in a message:
/// the innermost cause), and a cause repeated right after itself (an SDK service
/// error displays its code and message, and so does its source).
pub fn tidy(message: &str) -> String {
    let mut m = message.replace('\n', " ");
    if let Some(at) = DEBUG_TAILS.iter().filter_map(|t| m.find(t)).min() {
        m.truncate(at);
    }
    let parts: Vec<&str> = m.split(": ").collect();
    let mut out: Vec<&str> = Vec::with_capacity(parts.len());
    for part in parts {
        out.push(part);
        for width in [1, 2] {
            let n = out.len();
            if n >= 2 * width && out[n - width..] == out[n - 2 * width..n - width] {
                out.truncate(n - width);
                break;
            }
        }
    }
    out.join(": ")
}

/// The lines printed for an error: `error: ...` and maybe `hint: ...`.
pub fn report(err: &anyhow::Error) -> String {
    let message = tidy(&format!("{err:#}"));
    match hint(&message) {
        Some(h) => format!("error: {message}\nhint: {h}"),
        None => format!("error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_what_to_do() {
        let cases = [
            (
                "reading flight X: permanent store error: DynamoDB Query: ResourceNotFoundException: Requested resource not found",
                "--table",
            ),
            (
                "finding SQS queue q: AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist",
                "--queue",
            ),
            (
                "putting the record back on Kinesis stream s: ResourceNotFoundException: Stream s not found",
                "--stream",
            ),
            (
                "DynamoDB Query: dispatch failure: io error: client error (Connect): tcp connect error: Connection refused (os error 111)",
                "AWS_ENDPOINT_URL",
            ),
            (
                "DynamoDB Query: dispatch failure: other: an error occurred while loading credentials: failed to load IMDS session token",
                "AWS_ACCESS_KEY_ID",
            ),
            (
                "schedule file s.csv is invalid; nothing loaded: line 3, column `origin`: ...",
                "load it again",
            ),
        ];
        for (message, expected) in cases {
            let h = hint(message).unwrap_or_else(|| panic!("no hint for {message}"));
            assert!(h.contains(expected), "{message}: {h}");
        }
        assert_eq!(hint("something else"), None);
    }

    #[test]
    fn sdk_debug_tails_and_repeated_causes_are_dropped() {
        let m = "reading flight F: DynamoDB Query: service error: ResourceNotFoundException: Requested resource not found: ResourceNotFoundException: Requested resource not found (ServiceError(ServiceError { source: X, raw: Response { status: 400 } }))";
        assert_eq!(
            tidy(m),
            "reading flight F: DynamoDB Query: service error: ResourceNotFoundException: Requested resource not found"
        );
        assert_eq!(tidy("a: b: b: c"), "a: b: c");
        assert_eq!(
            tidy("dispatch failure: io error (DispatchFailure(DispatchFailure { .. }))"),
            "dispatch failure: io error"
        );
    }

    #[test]
    fn a_report_is_one_line_plus_a_hint() {
        let err =
            anyhow::anyhow!("Connection refused\n(os error 111)").context("reading flight FH1");
        let text = report(&err);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("error: reading flight FH1: Connection refused (os error 111)"));
    }
}
