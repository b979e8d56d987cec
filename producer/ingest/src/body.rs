//! Reading a `POST /v1/events` body into events: a JSON array of envelopes, one
//! envelope, or NDJSON (one envelope a line). Pure.
//!
//! Each event is decoded by [`flyhigh_schemas::decode`], exactly as every consumer
//! decodes it, so an event is rejected here for the same fields and reasons it would
//! be dead-lettered for downstream. An event without `event_id` is given a UUIDv7.
//! What makes the whole body unusable is a [`BodyError`]: 400 when it cannot be
//! read, 413 when it is over a limit ([`crate::limits`]).

use flyhigh_schemas::{DecodeError, Envelope};
use serde_json::value::RawValue;

use crate::limits::{MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES};
use crate::response::FieldProblem;

/// How the body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/json` (or `+json`): an array of envelopes, or one envelope.
    Json,
    /// `application/x-ndjson`, `application/ndjson` or `application/jsonl`.
    Ndjson,
}

impl Framing {
    /// The framing a `Content-Type` names; `None` for any other type. A missing
    /// header is read as JSON.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Framing> {
        let Some(value) = content_type else {
            return Some(Framing::Json);
        };
        let mime = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "" => Some(Framing::Json),
            m if m.starts_with("application/") && m.ends_with("+json") => Some(Framing::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Framing::Ndjson),
            _ => None,
        }
    }
}

/// Why the body as a whole cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// 400: not JSON or NDJSON at all, or a content type this API does not read.
    Unreadable {
        /// What is wrong.
        error: String,
        /// What to do.
        hint: String,
    },
    /// 413: over a limit.
    TooLarge {
        /// `events_per_request`, `request_bytes` or `event_bytes`.
        limit: &'static str,
        /// The limit.
        max: usize,
        /// `event_bytes`: the first event over it.
        index: Option<usize>,
        /// What was found.
        found: usize,
    },
}

/// One event of the body, decoded or not.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A valid event.
    Valid {
        /// The event (its `event_id` assigned if the client sent none).
        event: Envelope,
        /// Whether the ingest assigned the `event_id`.
        assigned: bool,
    },
    /// Not a valid event.
    Invalid {
        /// The client's `event_id` if it sent one as a string, to match the answer.
        event_id: Option<String>,
        /// Every problem, as a consumer would report it.
        errors: Vec<FieldProblem>,
    },
}

/// Reads a body into its events, in order.
///
/// # Errors
///
/// [`BodyError`] when the body is over a limit or cannot be read as the framing says.
pub fn parse(framing: Framing, body: &[u8]) -> Result<Vec<Item>, BodyError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(BodyError::TooLarge {
            limit: "request_bytes",
            max: MAX_REQUEST_BYTES,
            index: None,
            found: body.len(),
        });
    }
    let raw: Vec<&[u8]> = match framing {
        Framing::Json => json_events(body)?,
        Framing::Ndjson => body
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .collect(),
    };
    if raw.len() > MAX_EVENTS_PER_REQUEST {
        return Err(BodyError::TooLarge {
            limit: "events_per_request",
            max: MAX_EVENTS_PER_REQUEST,
            index: None,
            found: raw.len(),
        });
    }
    if let Some((index, bytes)) = raw
        .iter()
        .enumerate()
        .find(|(_, b)| b.len() > MAX_EVENT_BYTES)
    {
        return Err(BodyError::TooLarge {
            limit: "event_bytes",
            max: MAX_EVENT_BYTES,
            index: Some(index),
            found: bytes.len(),
        });
    }
    Ok(raw.into_iter().map(item).collect())
}

/// The events of a JSON body: the elements of an array, or the one object.
fn json_events(body: &[u8]) -> Result<Vec<&[u8]>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError::Unreadable {
        error: format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ),
        hint: "send UTF-8 JSON".into(),
    })?;
    let unreadable = |e: serde_json::Error| BodyError::Unreadable {
        error: format!("the body is not JSON: {e}"),
        hint: "send a JSON array of events, one JSON event, or NDJSON with \
               Content-Type: application/x-ndjson"
            .into(),
    };
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(unreadable)?;
            Ok(items.into_iter().map(|r| r.get().as_bytes()).collect())
        }
        Some(b'{') => {
            let item: &RawValue = serde_json::from_str(text).map_err(|e| {
                let mut error = unreadable(e);
                if let BodyError::Unreadable { hint, .. } = &mut error {
                    *hint = "several events must be a JSON array, or NDJSON with \
                             Content-Type: application/x-ndjson"
                        .into();
                }
                error
            })?;
            Ok(vec![item.get().as_bytes()])
        }
        _ => Err(BodyError::Unreadable {
            error: "the body is neither a JSON array nor a JSON object".into(),
            hint: "send a JSON array of events, one JSON event, or NDJSON with \
                   Content-Type: application/x-ndjson"
                .into(),
        }),
    }
}

/// Decodes one event, assigning an `event_id` when it has none.
fn item(bytes: &[u8]) -> Item {
    match flyhigh_schemas::decode(bytes) {
        Ok(event) => Item::Valid {
            event,
            assigned: false,
        },
        Err(DecodeError::Malformed { field, .. }) if field == "event_id" => {
            match with_assigned_id(bytes) {
                Some(assigned) => match flyhigh_schemas::decode(&assigned) {
                    Ok(event) => Item::Valid {
                        event,
                        assigned: true,
                    },
                    Err(e) => invalid(&assigned, &e),
                },
                // It has an event_id, and the id is wrong: say so.
                None => invalid(
                    bytes,
                    &flyhigh_schemas::decode(bytes)
                        .err()
                        .unwrap_or(DecodeError::MissingEventType),
                ),
            }
        }
        Err(e) => invalid(bytes, &e),
    }
}

/// The event with a fresh UUIDv7 as its `event_id`, if it is an object without one.
fn with_assigned_id(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).ok()?;
    if value.contains_key("event_id") {
        return None;
    }
    value.insert(
        "event_id".into(),
        serde_json::Value::String(uuid::Uuid::now_v7().hyphenated().to_string()),
    );
    serde_json::to_vec(&value).ok()
}

fn invalid(bytes: &[u8], error: &DecodeError) -> Item {
    let event_id = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("event_id")
                .and_then(|id| id.as_str())
                .map(String::from)
        });
    let errors = match error {
        DecodeError::Invalid(errors) => errors
            .0
            .iter()
            .map(|e| FieldProblem {
                field: e.field.clone(),
                reason: e.reason.clone(),
            })
            .collect(),
        DecodeError::Malformed { field, reason } => vec![FieldProblem {
            field: field.clone(),
            reason: reason.clone(),
        }],
        DecodeError::MissingEventType => vec![FieldProblem {
            field: "event_type".into(),
            reason: "missing".into(),
        }],
        DecodeError::UnknownEventType { .. } => vec![FieldProblem {
            field: "event_type".into(),
            reason: error
                .to_string()
                .trim_start_matches("event_type: ")
                .to_string(),
        }],
        DecodeError::FutureSchemaVersion { .. } => vec![FieldProblem {
            field: "schema_version".into(),
            reason: error
                .to_string()
                .trim_start_matches("schema_version: ")
                .to_string(),
        }],
        other => vec![FieldProblem {
            field: "(event)".into(),
            reason: other.to_string(),
        }],
    };
    Item::Invalid { event_id, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKING: &str = r#"{"event_id":"0193f3a4-5b6c-7d8e-9f00-112233445566","schema_version":1,"occurred_at":"2026-11-22T10:15:00.250Z","source":"web-app","event_type":"booking","payload":{"booking_id":"BK7Q2M9X4","customer_id":"c-5f1e0a","flight_id":"FH0123-20261201","origin":"LHR","destination":"JFK","cabin":"economy","seats":2,"fare":{"amount":"412.80","currency":"GBP"}}}"#;

    fn without_id() -> String {
        BOOKING.replace(r#""event_id":"0193f3a4-5b6c-7d8e-9f00-112233445566","#, "")
    }

    #[test]
    fn an_array_an_object_and_ndjson_give_the_same_event() {
        let array = parse(Framing::Json, format!("[{BOOKING}]").as_bytes()).unwrap();
        let object = parse(Framing::Json, BOOKING.as_bytes()).unwrap();
        let lines = parse(Framing::Ndjson, format!("\n{BOOKING}\r\n\n").as_bytes()).unwrap();
        assert_eq!(array, object);
        assert_eq!(array, lines);
        assert!(matches!(
            &array[0],
            Item::Valid {
                assigned: false,
                ..
            }
        ));
    }

    #[test]
    fn an_event_without_an_id_is_given_a_uuid_v7() {
        let items = parse(Framing::Json, format!("[{}]", without_id()).as_bytes()).unwrap();
        let Item::Valid { event, assigned } = &items[0] else {
            panic!("{items:?}")
        };
        assert!(assigned);
        assert_eq!(event.event_id.get_version_num(), 7);
    }

    #[test]
    fn a_wrong_id_is_rejected_not_replaced() {
        let bad = BOOKING.replace("0193f3a4-5b6c-7d8e-9f00-112233445566", "not-a-uuid");
        let items = parse(Framing::Json, bad.as_bytes()).unwrap();
        let Item::Invalid { event_id, errors } = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(event_id.as_deref(), Some("not-a-uuid"));
        assert_eq!(errors[0].field, "event_id");
    }

    #[test]
    fn invalid_events_are_rejected_with_every_field() {
        let bad = BOOKING
            .replace(r#""seats":2"#, r#""seats":0"#)
            .replace(r#""source":"web-app""#, r#""source":"Web App""#);
        let items = parse(Framing::Ndjson, format!("{bad}\nnot json\n[1]").as_bytes()).unwrap();
        let fields = |i: usize| match &items[i] {
            Item::Invalid { errors, .. } => {
                errors.iter().map(|e| e.field.clone()).collect::<Vec<_>>()
            }
            Item::Valid { .. } => Vec::new(),
        };
        assert_eq!(fields(0), ["source", "payload.seats"]);
        assert_eq!(fields(1), ["(event)"]);
        assert_eq!(fields(2), ["(event)"]);
    }

    #[test]
    fn unreadable_bodies_and_limits() {
        assert!(matches!(
            parse(Framing::Json, b"nope"),
            Err(BodyError::Unreadable { .. })
        ));
        assert!(matches!(
            parse(Framing::Json, b"[{]"),
            Err(BodyError::Unreadable { .. })
        ));
        assert!(matches!(
            parse(Framing::Json, format!("{BOOKING}{BOOKING}").as_bytes()),
            Err(BodyError::Unreadable { hint, .. }) if hint.contains("array")
        ));
        let many = format!("[{}]", vec!["{}"; MAX_EVENTS_PER_REQUEST + 1].join(","));
        assert!(matches!(
            parse(Framing::Json, many.as_bytes()),
            Err(BodyError::TooLarge {
                limit: "events_per_request",
                ..
            })
        ));
        let big = format!(
            r#"[{BOOKING}, {{"pad": "{}"}}]"#,
            "x".repeat(MAX_EVENT_BYTES)
        );
        assert!(matches!(
            parse(Framing::Json, big.as_bytes()),
            Err(BodyError::TooLarge {
                limit: "event_bytes",
                index: Some(1),
                ..
            })
        ));
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            parse(Framing::Json, &huge),
            Err(BodyError::TooLarge {
                limit: "request_bytes",
                ..
            })
        ));
        assert_eq!(parse(Framing::Json, b"[]").unwrap(), Vec::new());
    }

    #[test]
    fn content_types() {
        assert_eq!(Framing::from_content_type(None), Some(Framing::Json));
        assert_eq!(
            Framing::from_content_type(Some("application/json; charset=utf-8")),
            Some(Framing::Json)
        );
        assert_eq!(
            Framing::from_content_type(Some("application/x-ndjson")),
            Some(Framing::Ndjson)
        );
        assert_eq!(Framing::from_content_type(Some("text/csv")), None);
    }
}
