//! The request limits of `POST /v1/events`, as named constants. Beyond any of them
//! the whole request is answered 413 and nothing is sent.
//!
//! Chosen against what clients send and what one request may cost the server: a
//! mobile app flushes tens of events at a time (Segment caps a batch at 500 KB,
//! Mixpanel at 2,000 events), and the producer's byte budget must hold several
//! requests at once for back-pressure to be a 429 rather than a stall.

/// Events in one request.
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;

/// Bytes of one request body (4 MiB): 1,000 events of 4 KiB, far above what the
/// contract's events weigh (300 to 600 bytes).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of one event as sent: the contract's own limit, which every consumer
/// enforces too ([`flyhigh_schemas::MAX_EVENT_BYTES`], 16 KiB).
pub const MAX_EVENT_BYTES: usize = flyhigh_schemas::MAX_EVENT_BYTES;

/// How long a request may wait for its events to be durable before the events not
/// yet written are answered `retry` (503). Well under API Gateway's 30-second
/// integration timeout and an app's usual 15 to 30 seconds.
pub const DEFAULT_REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Requests read and handled at once; beyond them a request is answered 429 before
/// its body is read, so that a flood of clients costs neither memory nor parsing.
/// At 50 events per request and 30 ms per request, 256 at once is 400,000 events/s.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// `Retry-After` of a 429 (back-pressure), in seconds.
pub const RETRY_AFTER_BUSY_SECONDS: u32 = 1;

/// `Retry-After` of a 503 (the stream did not take the events in time), in seconds.
pub const RETRY_AFTER_UNAVAILABLE_SECONDS: u32 = 5;
