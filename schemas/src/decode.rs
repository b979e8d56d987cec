//! Bytes → [`Envelope`], for consumers.
//!
//! A record that cannot be used is classified, so that the dead-letter entry says
//! exactly what is wrong: not UTF-8, not JSON, an unknown `event_type`, a
//! `schema_version` newer than this build, a field of the wrong type, or fields that
//! fail validation.

use std::fmt;

use crate::MAX_EVENT_BYTES;
use crate::event::{Envelope, SCHEMA_VERSION};
use crate::validate::ValidationErrors;

/// Why a record is not a usable event. Every variant means "quarantine as poison":
/// retrying the same bytes can never succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_EVENT_BYTES`].
    TooLarge { bytes: usize },
    /// Not valid UTF-8.
    NotUtf8 { valid_up_to: usize },
    /// Not a JSON object.
    NotJson { reason: String },
    /// `event_type` is missing.
    MissingEventType,
    /// `event_type` names no kind this build knows.
    UnknownEventType { event_type: String },
    /// `schema_version` is newer than this build understands.
    FutureSchemaVersion { found: u64, supported: u32 },
    /// A field is missing or has the wrong JSON type.
    Malformed { field: String, reason: String },
    /// Well-formed, but fields fail validation.
    Invalid(ValidationErrors),
}

impl DecodeError {
    /// A short, stable label for counting dead letters by cause.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::NotUtf8 { .. } => "not_utf8",
            DecodeError::NotJson { .. } => "not_json",
            DecodeError::MissingEventType => "missing_event_type",
            DecodeError::UnknownEventType { .. } => "unknown_event_type",
            DecodeError::FutureSchemaVersion { .. } => "future_schema_version",
            DecodeError::Malformed { .. } => "malformed",
            DecodeError::Invalid(_) => "invalid",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { bytes } => write!(
                f,
                "event is {bytes} bytes, above the limit of {MAX_EVENT_BYTES}"
            ),
            DecodeError::NotUtf8 { valid_up_to } => {
                write!(f, "not UTF-8 (invalid byte at offset {valid_up_to})")
            }
            DecodeError::NotJson { reason } => write!(f, "not a JSON object: {reason}"),
            DecodeError::MissingEventType => f.write_str("event_type: missing"),
            DecodeError::UnknownEventType { event_type } => {
                write!(
                    f,
                    "event_type: unknown event type {event_type:?} (known: search, booking, cancellation)"
                )
            }
            DecodeError::FutureSchemaVersion { found, supported } => {
                write!(
                    f,
                    "schema_version: future schema_version {found}, this consumer reads up to {supported}"
                )
            }
            DecodeError::Malformed { field, reason } => write!(f, "{field}: {reason}"),
            DecodeError::Invalid(errors) => write!(f, "{errors}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes and validates one user record.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::TooLarge { bytes: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(_) => return Err(diagnose(text)),
    };
    if envelope.schema_version > SCHEMA_VERSION {
        return Err(DecodeError::FutureSchemaVersion {
            found: envelope.schema_version.into(),
            supported: SCHEMA_VERSION,
        });
    }
    envelope
        .validate_encoded(bytes.len())
        .map_err(DecodeError::Invalid)?;
    Ok(envelope)
}

/// Explains why `text` did not deserialize. Off the hot path: only failed records
/// come here.
fn diagnose(text: &str) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return DecodeError::NotJson {
                reason: e.to_string(),
            };
        }
    };
    let Some(object) = value.as_object() else {
        return DecodeError::NotJson {
            reason: format!("top level is {}", json_kind(&value)),
        };
    };
    if let Some(version) = object.get("schema_version").and_then(|v| v.as_u64())
        && version > u64::from(SCHEMA_VERSION)
    {
        return DecodeError::FutureSchemaVersion {
            found: version,
            supported: SCHEMA_VERSION,
        };
    }
    match object.get("event_type") {
        None => return DecodeError::MissingEventType,
        Some(serde_json::Value::String(t))
            if !["search", "booking", "cancellation"].contains(&t.as_str()) =>
        {
            return DecodeError::UnknownEventType {
                event_type: t.clone(),
            };
        }
        Some(serde_json::Value::String(_)) => {}
        Some(other) => {
            return DecodeError::Malformed {
                field: "event_type".into(),
                reason: format!("must be a string, got {}", json_kind(other)),
            };
        }
    }
    // The envelope's payload is flattened, which hides paths from serde; deserialize
    // the parts separately to name the field.
    let mut head = object.clone();
    let payload = head.remove("payload");
    let event_type = head.remove("event_type");
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Head {
        #[serde(with = "crate::event::hyphenated")]
        event_id: uuid::Uuid,
        schema_version: u32,
        #[serde(with = "crate::event::millis")]
        occurred_at: chrono::DateTime<chrono::Utc>,
        source: String,
    }
    if let Err(e) = serde_path_to_error::deserialize::<_, Head>(serde_json::Value::Object(head)) {
        return malformed("", e);
    }
    let Some(payload) = payload else {
        return DecodeError::Malformed {
            field: "payload".into(),
            reason: "missing".into(),
        };
    };
    let result = match event_type.as_ref().and_then(|t| t.as_str()) {
        Some("search") => serde_path_to_error::deserialize::<_, crate::Search>(payload).map(drop),
        Some("booking") => serde_path_to_error::deserialize::<_, crate::Booking>(payload).map(drop),
        _ => serde_path_to_error::deserialize::<_, crate::Cancellation>(payload).map(drop),
    };
    match result {
        Err(e) => malformed("payload", e),
        Ok(()) => DecodeError::Malformed {
            field: "(event)".into(),
            reason: "does not match the envelope".into(),
        },
    }
}

fn malformed(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    let path = e.path().to_string();
    let field = match (prefix.is_empty(), path.as_str()) {
        (true, p) => p.to_string(),
        (false, ".") => prefix.to_string(),
        (false, p) => format!("{prefix}.{p}"),
    };
    // serde says "missing field `x`" at the parent's path; name the field itself.
    let inner = e.into_inner().to_string();
    if let Some(name) = inner
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        let field = if field == "." || field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
        return DecodeError::Malformed {
            field,
            reason: "missing".into(),
        };
    }
    DecodeError::Malformed {
        field,
        reason: inner,
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_json() {
        assert_eq!(decode(b"\x00\x01garbage").unwrap_err().kind(), "not_json");
        assert_eq!(decode(&[0xff, 0xfe, 0x00]).unwrap_err().kind(), "not_utf8");
        assert_eq!(decode(b"[1,2]").unwrap_err().kind(), "not_json");
    }

    #[test]
    fn unknown_event_type_and_future_version_are_named() {
        let e = decode(br#"{"event_type":"refund","schema_version":1}"#).unwrap_err();
        assert_eq!(
            e,
            DecodeError::UnknownEventType {
                event_type: "refund".into()
            }
        );
        let e = decode(br#"{"event_type":"booking","schema_version":7}"#).unwrap_err();
        assert_eq!(
            e,
            DecodeError::FutureSchemaVersion {
                found: 7,
                supported: SCHEMA_VERSION
            }
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let json = br#"{"event_id":"01935b7e-8c1a-7c2e-9a3b-4d5e6f708192","schema_version":1,
            "occurred_at":"2026-11-22T10:15:00.250Z","source":"web-app","event_type":"booking",
            "payload":{"booking_id":"BK7Q2M9X4","customer_id":"c-5f1e0a","flight_id":"FH0123-20261201",
            "origin":"LHR","destination":"JFK","cabin":"economy","seats":"two",
            "fare":{"amount":"412.80","currency":"GBP"}}}"#;
        match decode(json).unwrap_err() {
            DecodeError::Malformed { field, .. } => assert_eq!(field, "payload.seats"),
            other => panic!("expected malformed, got {other:?}"),
        }
        let missing = String::from_utf8_lossy(json)
            .replace(r#""customer_id":"c-5f1e0a","#, "")
            .replace(r#""two""#, "2");
        match decode(missing.as_bytes()).unwrap_err() {
            DecodeError::Malformed { field, reason } => assert_eq!(
                (field.as_str(), reason.as_str()),
                ("payload.customer_id", "missing")
            ),
            other => panic!("expected malformed, got {other:?}"),
        }
    }
}
