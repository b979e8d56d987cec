//! What every handler does first and last with a batch: expand its Kinesis records
//! into events (poison set aside with the reason), and write the dead letters of the
//! records before the reported failure.

use flyhigh_core::{DeadLetter, DeadLetterSink, EventRecord, KinesisRecord};
use flyhigh_schemas::{AggregateError, DecodeError, Envelope};

/// One decoded event and where it came from.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Index of its Kinesis record in the batch (failures are reported by it).
    pub index: usize,
    /// Its position inside a KPL aggregate; `None` for a plain record.
    pub sub_sequence_number: Option<u32>,
    /// The event.
    pub event: Envelope,
}

/// A batch taken apart.
#[derive(Debug, Default)]
pub struct Expanded {
    /// Valid events, in shard order.
    pub events: Vec<Decoded>,
    /// Letters for poison, with the index of their Kinesis record, in order.
    pub poison: Vec<(usize, DeadLetter)>,
    /// User records found (one per plain record, all of an aggregate's).
    pub user_records: usize,
}

/// Expands and decodes `records` for `processor`. `reject` may set aside a valid
/// event as poison (the inventory's retention horizon); it gets the user record to
/// build its letter from [`letter_for`].
pub fn expand(
    processor: &str,
    records: &[KinesisRecord],
    mut reject: impl FnMut(&EventRecord<'_>, &Envelope) -> Option<DeadLetter>,
) -> Expanded {
    let mut out = Expanded {
        events: Vec::with_capacity(records.len()),
        ..Expanded::default()
    };
    for (index, record) in records.iter().enumerate() {
        match record.event_records() {
            Ok(user_records) => {
                out.user_records += user_records.len();
                for user_record in user_records {
                    match user_record.decode() {
                        Ok(event) => match reject(&user_record, &event) {
                            Some(letter) => out.poison.push((index, letter)),
                            None => out.events.push(Decoded {
                                index,
                                sub_sequence_number: user_record.sub_sequence_number,
                                event,
                            }),
                        },
                        Err(e) => out
                            .poison
                            .push((index, poison_event(processor, &user_record, &e))),
                    }
                }
            }
            Err(e) => out
                .poison
                .push((index, damaged_aggregate(processor, record, &e))),
        }
    }
    out
}

/// A letter for `record` with an empty reason, for the caller to fill in: its own
/// bytes, so that a replay sends exactly it, and its place in its Kinesis record.
pub fn letter_for(processor: &str, record: &EventRecord<'_>) -> DeadLetter {
    let kinesis = record.kinesis;
    DeadLetter {
        processor: processor.to_string(),
        shard_id: kinesis.shard_id.clone(),
        sequence_number: kinesis.sequence_number.clone(),
        sub_sequence_number: record.sub_sequence_number,
        partition_key: record.partition_key.to_string(),
        approximate_arrival: kinesis.approximate_arrival,
        reason_kind: String::new(),
        reason: String::new(),
        data_base64: record.data_base64(),
    }
}

/// The letter for a user record that is not a valid event.
fn poison_event(processor: &str, record: &EventRecord<'_>, error: &DecodeError) -> DeadLetter {
    let mut letter = letter_for(processor, record);
    letter.reason_kind = error.kind().to_string();
    letter.reason = error.to_string();
    letter
}

/// The letter for a Kinesis record whose aggregate cannot be read: none of its user
/// records can be trusted, so the whole record goes, bytes and all.
fn damaged_aggregate(
    processor: &str,
    record: &KinesisRecord,
    error: &AggregateError,
) -> DeadLetter {
    DeadLetter {
        processor: processor.to_string(),
        shard_id: record.shard_id.clone(),
        sequence_number: record.sequence_number.clone(),
        sub_sequence_number: None,
        partition_key: record.partition_key.clone(),
        approximate_arrival: record.approximate_arrival,
        reason_kind: error.kind().to_string(),
        reason: error.to_string(),
        data_base64: record.data_base64(),
    }
}

/// Writes the letters of the records before `first_failed` (all of them when the
/// batch did not fail): a letter at or after the reported failure would be written
/// again by the retry. Returns how many were written, or the index of the first
/// letter's record and the sink's error.
pub async fn send_final_letters<D: DeadLetterSink>(
    sink: &D,
    poison: &[(usize, DeadLetter)],
    first_failed: Option<usize>,
) -> Result<usize, (usize, String)> {
    let final_letters: Vec<&(usize, DeadLetter)> = poison
        .iter()
        .filter(|(index, _)| first_failed.is_none_or(|f| *index < f))
        .collect();
    let Some((first, _)) = final_letters.first() else {
        return Ok(0);
    };
    let letters: Vec<DeadLetter> = final_letters.iter().map(|(_, l)| l.clone()).collect();
    sink.send(&letters)
        .await
        .map_err(|e| (*first, format!("dead-letter sink: {e}")))?;
    for letter in &letters {
        tracing::warn!(processor = %letter.processor, shard_id = %letter.shard_id, sequence_number = %letter.sequence_number,
            sub_sequence_number = ?letter.sub_sequence_number,
            reason_kind = %letter.reason_kind, reason = %letter.reason, "record dead-lettered");
    }
    Ok(letters.len())
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Index of the first Kinesis record to retry, if any.
    pub first_failed: Option<usize>,
    /// Why, when there is a failure.
    pub error: Option<String>,
}

impl BatchOutcome {
    /// Records a failure at `index`; the earliest one wins.
    pub fn fail(&mut self, index: usize, error: String) {
        if self.first_failed.is_none_or(|f| index < f) {
            self.first_failed = Some(index);
            self.error = Some(error);
        }
    }
}
