//! The SQS queue policy that lets a topic deliver to a queue. Pure.

use serde_json::{Value, json};

const SNS_PRINCIPAL: &str = "sns.amazonaws.com";
const SEND_MESSAGE: &str = "sqs:SendMessage";

/// `existing` (the queue's `Policy` attribute, if it has one) with a statement that
/// allows `topic_arn` to send to `queue_arn`; `None` when it allows that already.
///
/// Statements already there are kept, so a queue can take several topics; a policy
/// that is not a JSON object is an error (an operator wrote it; do not overwrite it).
pub(crate) fn allow_topic(
    existing: Option<&str>,
    queue_arn: &str,
    topic_arn: &str,
) -> Result<Option<String>, String> {
    let mut policy = match existing.filter(|p| !p.trim().is_empty()) {
        Some(text) => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("the queue's policy is not JSON: {e}"))?,
        None => json!({ "Version": "2012-10-17", "Statement": [] }),
    };
    let Some(object) = policy.as_object_mut() else {
        return Err("the queue's policy is not a JSON object".into());
    };
    let statements = object
        .entry("Statement")
        .or_insert_with(|| Value::Array(Vec::new()));
    // A single statement may be written as an object.
    if statements.is_object() {
        *statements = Value::Array(vec![statements.take()]);
    }
    let Some(statements) = statements.as_array_mut() else {
        return Err("the queue's policy has a `Statement` that is not a list".into());
    };
    if statements.iter().any(|s| allows(s, topic_arn)) {
        return Ok(None);
    }
    let sid = unique_sid(statements);
    statements.push(json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "Service": SNS_PRINCIPAL },
        "Action": SEND_MESSAGE,
        "Resource": queue_arn,
        "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } },
    }));
    Ok(Some(policy.to_string()))
}

/// Whether a statement is an `Allow` of `sqs:SendMessage` from SNS for `topic_arn`.
fn allows(statement: &Value, topic_arn: &str) -> bool {
    let action = &statement["Action"];
    let sends = action == SEND_MESSAGE
        || action
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == SEND_MESSAGE));
    statement["Effect"] == "Allow"
        && statement["Principal"]["Service"] == SNS_PRINCIPAL
        && sends
        && statement["Condition"]["ArnEquals"]["aws:SourceArn"] == topic_arn
}

/// `FlyHighTopicN`, with the first N no statement uses (IAM wants Sids alphanumeric).
fn unique_sid(statements: &[Value]) -> String {
    (statements.len()..)
        .map(|n| format!("FlyHighTopic{n}"))
        .find(|sid| statements.iter().all(|s| s["Sid"] != sid.as_str()))
        .unwrap_or_else(|| "FlyHighTopic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:revenue";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:flyhigh-alerts";
    const OTHER: &str = "arn:aws:sns:us-east-1:123456789012:other";

    fn statements(policy: &str) -> Vec<Value> {
        serde_json::from_str::<Value>(policy).unwrap()["Statement"]
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_queue_without_a_policy_gets_one_allowing_the_topic() {
        let policy = allow_topic(None, QUEUE, TOPIC).unwrap().unwrap();
        let s = statements(&policy);
        assert_eq!(s.len(), 1);
        assert!(allows(&s[0], TOPIC));
        assert_eq!(s[0]["Resource"], QUEUE);
        assert_eq!(allow_topic(Some(""), QUEUE, TOPIC).unwrap(), Some(policy));
    }

    #[test]
    fn a_policy_allowing_the_topic_already_is_left_alone() {
        let policy = allow_topic(None, QUEUE, TOPIC).unwrap().unwrap();
        assert_eq!(allow_topic(Some(&policy), QUEUE, TOPIC), Ok(None));
    }

    #[test]
    fn other_statements_are_kept_and_sids_stay_unique() {
        let first = allow_topic(None, QUEUE, OTHER).unwrap().unwrap();
        let both = allow_topic(Some(&first), QUEUE, TOPIC).unwrap().unwrap();
        let s = statements(&both);
        assert_eq!(s.len(), 2);
        assert!(allows(&s[0], OTHER) && allows(&s[1], TOPIC));
        assert_ne!(s[0]["Sid"], s[1]["Sid"]);
        // One statement written as an object, with the Sid the next one would take.
        let single = r#"{"Statement": {"Sid": "FlyHighTopic1", "Effect": "Deny"}}"#;
        let s = statements(&allow_topic(Some(single), QUEUE, TOPIC).unwrap().unwrap());
        assert_eq!(s.len(), 2);
        assert_eq!(s[1]["Sid"], "FlyHighTopic2");
    }

    #[test]
    fn a_policy_that_is_not_an_object_is_an_error() {
        assert!(allow_topic(Some("not json"), QUEUE, TOPIC).is_err());
        assert!(allow_topic(Some("[]"), QUEUE, TOPIC).is_err());
        assert!(allow_topic(Some(r#"{"Statement": 3}"#), QUEUE, TOPIC).is_err());
    }
}
