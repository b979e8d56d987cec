//! SQS messages as the wire sees them: bodies, attributes, sizes, and the batches
//! `SendMessageBatch` accepts. Pure.

use std::ops::Range;

use flyhigh_core::ports::DeadLetter;

/// Most entries one `SendMessageBatch` request may carry.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Most bytes of message bodies and attributes one `SendMessageBatch` request may
/// carry, and one message may have (256 KiB, the limit every SQS endpoint enforces).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The data type of every attribute we set.
pub(crate) const STRING: &str = "String";

/// How much of an oversized letter's `reason` is kept.
const MAX_REASON_CHARS: usize = 4096;

/// A message to send: a JSON body and String attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) body: String,
    pub(crate) attributes: Vec<(&'static str, String)>,
}

impl Message {
    fn new(body: String, attributes: Vec<(&'static str, String)>) -> Message {
        // SQS rejects an empty String attribute value: an empty label is left out.
        let attributes = attributes
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Message {
            body: sqs_safe(body),
            attributes,
        }
    }

    /// The bytes SQS counts against its limits: the body, and each attribute's name,
    /// data type and value.
    pub(crate) fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + STRING.len() + value.len())
                .sum::<usize>()
    }
}

/// Escapes the characters JSON allows and SQS refuses (U+FFFE, U+FFFF). serde_json
/// already escapes control characters; these two can only occur inside JSON strings,
/// where `\uXXXX` means the same character to any JSON reader.
fn sqs_safe(body: String) -> String {
    if !body.contains(['\u{fffe}', '\u{ffff}']) {
        return body;
    }
    body.replace('\u{fffe}', "\\ufffe")
        .replace('\u{ffff}', "\\uffff")
}

/// A dead letter as one message: the letter as JSON, with `processor` and
/// `reason_kind` as attributes so that operators can filter on them.
///
/// A letter too big for SQS (a Kinesis record may be 1 MiB, 1.33 MiB in base64) is
/// sent without its data, with a `data_omitted_base64_chars` attribute: its shard and
/// sequence number still find the record in the stream. Dropping the data beats
/// failing the batch forever, which would block the shard.
pub(crate) fn dead_letter(letter: &DeadLetter) -> Message {
    let attributes = || {
        vec![
            ("processor", letter.processor.clone()),
            ("reason_kind", letter.reason_kind.clone()),
        ]
    };
    let message = Message::new(to_json(letter), attributes());
    if message.size() <= MAX_BATCH_BYTES {
        return message;
    }
    let mut slim = letter.clone();
    slim.data_base64 = String::new();
    if slim.reason.chars().count() > MAX_REASON_CHARS {
        slim.reason = slim
            .reason
            .chars()
            .take(MAX_REASON_CHARS)
            .collect::<String>()
            + "…";
    }
    let mut attributes = attributes();
    attributes.push((
        "data_omitted_base64_chars",
        letter.data_base64.len().to_string(),
    ));
    Message::new(to_json(&slim), attributes)
}

/// A failed batch as one message, with `kind` and `shard_id` attributes. Without the
/// records' bytes when they do not fit (the sequence range finds them in the stream).
#[cfg(feature = "runner")]
pub(crate) fn batch_failure(failure: &flyhigh_runner::failure::BatchFailure) -> Message {
    let attributes = || {
        vec![
            ("kind", "batch_failure".to_string()),
            ("shard_id", failure.kinesis_batch_info.shard_id.clone()),
        ]
    };
    let message = Message::new(to_json(failure), attributes());
    if message.size() <= MAX_BATCH_BYTES {
        return message;
    }
    let mut slim = failure.clone();
    slim.records_base64.clear();
    slim.condition = slim.condition.chars().take(MAX_REASON_CHARS).collect();
    let mut attributes = attributes();
    attributes.push(("records_omitted", failure.records_base64.len().to_string()));
    Message::new(to_json(&slim), attributes)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain data structs with string keys: serialization cannot fail.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"serialization_error\":\"{e}\"}}"))
}

/// Splits messages of these sizes, in order, into batches of at most
/// [`MAX_BATCH_ENTRIES`] entries and [`MAX_BATCH_BYTES`] bytes. A message bigger than
/// the limit on its own gets a batch of its own (SQS will refuse it, loudly).
pub(crate) fn batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn letter(data_len: usize) -> DeadLetter {
        DeadLetter {
            processor: "inventory".into(),
            shard_id: "shardId-000000000001".into(),
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            sub_sequence_number: None,
            partition_key: "FH1-20261201".into(),
            approximate_arrival: None,
            reason_kind: "invalid_field".into(),
            reason: "seats: must be between 1 and 9".into(),
            data_base64: "A".repeat(data_len),
        }
    }

    #[test]
    fn a_letter_is_its_json_with_filterable_attributes() {
        let l = letter(8);
        let m = dead_letter(&l);
        assert_eq!(serde_json::from_str::<DeadLetter>(&m.body).unwrap(), l);
        assert_eq!(
            m.attributes,
            vec![
                ("processor", "inventory".into()),
                ("reason_kind", "invalid_field".into())
            ]
        );
        assert_eq!(
            m.size(),
            m.body.len() + "processor".len() + "inventory".len() + "reason_kind".len() + 13 + 12
        );
    }

    #[test]
    fn empty_attribute_values_are_left_out() {
        let mut l = letter(8);
        l.reason_kind.clear();
        assert_eq!(dead_letter(&l).attributes.len(), 1);
    }

    #[test]
    fn an_oversized_letter_is_sent_without_its_data() {
        let mut l = letter(1_400_000);
        l.reason = "x".repeat(100_000);
        let m = dead_letter(&l);
        assert!(m.size() <= MAX_BATCH_BYTES);
        let sent: DeadLetter = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            (sent.data_base64.as_str(), sent.sequence_number.as_str()),
            ("", l.sequence_number.as_str())
        );
        assert!(
            m.attributes
                .contains(&("data_omitted_base64_chars", "1400000".into()))
        );
    }

    #[test]
    fn a_letter_exactly_at_the_limit_keeps_its_data() {
        let overhead = dead_letter(&letter(0)).size();
        let m = dead_letter(&letter(MAX_BATCH_BYTES - overhead));
        assert_eq!(m.size(), MAX_BATCH_BYTES);
        assert_eq!(m.attributes.len(), 2);
    }

    #[test]
    fn characters_sqs_refuses_are_escaped_and_read_back_the_same() {
        let mut l = letter(4);
        l.reason = "bad \u{ffff} and \u{fffe}".into();
        let m = dead_letter(&l);
        assert!(!m.body.contains('\u{ffff}') && !m.body.contains('\u{fffe}'));
        assert_eq!(serde_json::from_str::<DeadLetter>(&m.body).unwrap(), l);
    }

    #[test]
    fn batches_split_on_count_and_bytes() {
        assert_eq!(batches(&[]), Vec::<Range<usize>>::new());
        assert_eq!(batches(&[1; 25]), vec![0..10, 10..20, 20..25]);
        let half = MAX_BATCH_BYTES / 2;
        assert_eq!(batches(&[half, half, 1, half]), vec![0..2, 2..4]);
        assert_eq!(batches(&[MAX_BATCH_BYTES + 1, 1]), vec![0..1, 1..2]);
    }

    proptest! {
        #[test]
        fn batches_cover_everything_in_order_within_limits(sizes in prop::collection::vec(1usize..=MAX_BATCH_BYTES, 0..60)) {
            let out = batches(&sizes);
            let mut next = 0;
            for range in &out {
                prop_assert_eq!(range.start, next);
                prop_assert!(!range.is_empty());
                prop_assert!(range.len() <= MAX_BATCH_ENTRIES);
                prop_assert!(sizes[range.clone()].iter().sum::<usize>() <= MAX_BATCH_BYTES);
                next = range.end;
            }
            prop_assert_eq!(next, sizes.len());
            // Greedy: a batch ends only because the next message would not fit.
            for pair in out.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let full = a.len() == MAX_BATCH_ENTRIES
                    || sizes[a.clone()].iter().sum::<usize>() + sizes[b.start] > MAX_BATCH_BYTES;
                prop_assert!(full);
            }
        }
    }
}
