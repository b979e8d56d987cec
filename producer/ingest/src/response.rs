//! What `POST /v1/events` answers: one [`EventResult`] per event in request order,
//! and the HTTP status those results add up to ([`IngestResponse::http_status`]).
//!
//! Pure: no I/O, so every status rule is tested without a server.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::{RETRY_AFTER_BUSY_SECONDS, RETRY_AFTER_UNAVAILABLE_SECONDS};

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Durable in the stream now: Kinesis acknowledged it (locally, the stream has it
    /// on disk). Every processor will see it.
    Accepted,
    /// An event with this `event_id` is already durable: nothing changed. A retry of an
    /// accepted event is answered so.
    Duplicate,
    /// Invalid (see `errors`): it was not sent, and sending it again as it is will
    /// fail again.
    Rejected,
    /// Not written (see `reason`): send it again, with the same `event_id`, after
    /// `Retry-After`. Harmless if it was written after all.
    Retry,
}

/// Why an event is to be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryReason {
    /// The producer's buffer is full: the stream is slower than the clients (429).
    BufferFull,
    /// The stream throttled the event's shard until the request's budget ran out (429).
    Throttled,
    /// An earlier request with this `event_id` is still being written (429).
    InFlight,
    /// The stream did not take the event within the request's budget (503).
    Timeout,
    /// The stream refused it, or the ingest is shutting down (503).
    Unavailable,
}

impl RetryReason {
    /// Whether this is back-pressure (429) rather than unavailability (503).
    pub fn is_back_pressure(self) -> bool {
        matches!(
            self,
            RetryReason::BufferFull | RetryReason::Throttled | RetryReason::InFlight
        )
    }
}

/// One offending field of a rejected event, as the producer and every consumer
/// report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldProblem {
    /// JSON path of the field (`payload.seats`), or `(event)` for the event as a whole.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The outcome of one event of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventResult {
    /// The event's position in the request, from 0.
    pub index: usize,
    /// Its `event_id`: the client's, or the one the ingest assigned (a UUIDv7) when the
    /// client sent none. `null` only for an event too malformed to carry one.
    pub event_id: Option<String>,
    /// What happened to it.
    pub status: EventStatus,
    /// `retry` only: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RetryReason>,
    /// `rejected` only: every offending field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// True when the ingest assigned `event_id` (the client sent none): keep it to
    /// retry the event harmlessly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assigned_event_id: bool,
}

/// The body of a `POST /v1/events` answer with results (200, 422, 429, 503).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngestResponse {
    /// Events with status `accepted`.
    pub accepted: usize,
    /// Events with status `duplicate`.
    pub duplicate: usize,
    /// Events with status `rejected`.
    pub rejected: usize,
    /// Events with status `retry`.
    pub retry: usize,
    /// One entry per event, in request order.
    pub results: Vec<EventResult>,
}

/// The body of an answer without results (400, 401, 413).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorResponse {
    /// What is wrong, for a person.
    pub error: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// 413 only: the limit exceeded (`events_per_request`, `request_bytes` or
    /// `event_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// 413 only: the limit's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
    /// 413 with `event_bytes` only: the index of the first event over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl ErrorResponse {
    /// An error with a hint.
    pub fn new(error: impl Into<String>, hint: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            error: error.into(),
            hint: Some(hint.into()),
            limit: None,
            max: None,
            index: None,
        }
    }
}

impl IngestResponse {
    /// The response for these results (sorted by index), with the counts.
    pub fn new(mut results: Vec<EventResult>) -> IngestResponse {
        results.sort_by_key(|r| r.index);
        let count = |s: EventStatus| results.iter().filter(|r| r.status == s).count();
        IngestResponse {
            accepted: count(EventStatus::Accepted),
            duplicate: count(EventStatus::Duplicate),
            rejected: count(EventStatus::Rejected),
            retry: count(EventStatus::Retry),
            results,
        }
    }

    /// The HTTP status and `Retry-After` (seconds) the results add up to. Never a 2xx
    /// unless every event is durable (accepted or duplicate):
    /// - 429 when some event is to be retried for back-pressure, else 503 when some is
    ///   to be retried because the stream did not take it (a retryable answer wins
    ///   over 422, so a client that retries the whole request loses nothing);
    /// - 422 when some event was rejected and none is to be retried;
    /// - 200 otherwise (an empty request included).
    pub fn http_status(&self) -> (u16, Option<u32>) {
        let retry: Vec<RetryReason> = self.results.iter().filter_map(|r| r.reason).collect();
        if retry.iter().any(|r| r.is_back_pressure()) {
            (429, Some(RETRY_AFTER_BUSY_SECONDS))
        } else if !retry.is_empty() || self.retry > 0 {
            (503, Some(RETRY_AFTER_UNAVAILABLE_SECONDS))
        } else if self.rejected > 0 {
            (422, None)
        } else {
            (200, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(index: usize, status: EventStatus, reason: Option<RetryReason>) -> EventResult {
        EventResult {
            index,
            event_id: Some(format!("id-{index}")),
            status,
            reason,
            errors: Vec::new(),
            assigned_event_id: false,
        }
    }

    #[test]
    fn only_durable_events_make_a_200() {
        let ok = IngestResponse::new(vec![
            result(1, EventStatus::Duplicate, None),
            result(0, EventStatus::Accepted, None),
        ]);
        assert_eq!(ok.http_status(), (200, None));
        assert_eq!((ok.accepted, ok.duplicate), (1, 1));
        assert_eq!(ok.results[0].index, 0, "sorted by index");
        assert_eq!(IngestResponse::new(Vec::new()).http_status(), (200, None));
    }

    #[test]
    fn a_rejected_event_makes_a_422_and_a_retry_outranks_it() {
        let rejected = IngestResponse::new(vec![
            result(0, EventStatus::Accepted, None),
            result(1, EventStatus::Rejected, None),
        ]);
        assert_eq!(rejected.http_status(), (422, None));
        let mut both = rejected.results.clone();
        both.push(result(2, EventStatus::Retry, Some(RetryReason::Timeout)));
        assert_eq!(
            IngestResponse::new(both.clone()).http_status(),
            (503, Some(RETRY_AFTER_UNAVAILABLE_SECONDS))
        );
        both.push(result(3, EventStatus::Retry, Some(RetryReason::BufferFull)));
        assert_eq!(
            IngestResponse::new(both).http_status(),
            (429, Some(RETRY_AFTER_BUSY_SECONDS))
        );
    }

    #[test]
    fn results_serialize_as_the_contract_says() {
        let mut r = result(3, EventStatus::Retry, Some(RetryReason::BufferFull));
        r.assigned_event_id = true;
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "retry");
        assert_eq!(json["reason"], "buffer_full");
        assert_eq!(json["assigned_event_id"], true);
        assert!(json.get("errors").is_none());
        let plain = serde_json::to_value(result(0, EventStatus::Accepted, None)).unwrap();
        assert!(plain.get("reason").is_none() && plain.get("assigned_event_id").is_none());
    }
}
