//! SDK errors as one line for messages and logs.

/// An error as one line: its own text and every cause's, joined with `: `, with a
/// cause that repeats the one before it dropped (an SDK service error displays its
/// code and message, and so does its source).
///
/// The SDK's `DisplayErrorContext` prints the same chain but ends with the error's
/// `Debug`, raw HTTP response included; a store error travels into logs, CLI output
/// and dead letters, where that dump helps nobody.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct E(&'static str, #[source] Option<Box<E>>);

    #[test]
    fn causes_are_joined_and_repeats_dropped() {
        let inner = E("ThrottlingException: Rate exceeded", None);
        let middle = E("ThrottlingException: Rate exceeded", Some(Box::new(inner)));
        let outer = E("service error", Some(Box::new(middle)));
        assert_eq!(
            error_text(&outer),
            "service error: ThrottlingException: Rate exceeded"
        );
    }
}
