//! The axum [`Router`] of the ingest API, and [`Ingest`], the logic behind
//! `POST /v1/events` (usable without HTTP).
//!
//! A request goes: authenticate ([`Auth`]) → read the body ([`crate::body`]) →
//! refuse events of a source the caller may not send → claim the ids in the
//! [`Ledger`] (a written id is a `duplicate`, one being written is `retry`) →
//! [`Producer::try_send`] each new event (a full byte budget is a `retry`, never a
//! wait: memory stays bounded and the client hears 429) → wait, until the request's
//! budget, for each receipt (the stream has the event: `accepted`) → settle the
//! ledger → answer ([`IngestResponse::http_status`]). A receipt still pending at the
//! deadline is answered `retry`; a background task settles it when it resolves.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flyhigh_producer::{Producer, Receipt, SendError};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{Auth, Caller};
use crate::body::{self, BodyError, Framing, Item};
use crate::ledger::{Claim, Ledger};
use crate::limits::{DEFAULT_REQUEST_BUDGET, MAX_REQUEST_BYTES};
use crate::response::{
    ErrorResponse, EventResult, EventStatus, FieldProblem, IngestResponse, RetryReason,
};

/// Whether the stream can be reached, for `GET /readyz`.
pub type Readiness =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The ingest API over a producer and a ledger. Build it, then take its
/// [`Ingest::router`].
pub struct Ingest<L> {
    producer: Producer,
    ledger: Arc<L>,
    auth: Auth,
    request_budget: Duration,
    cors_origins: Vec<String>,
    readiness: Option<Readiness>,
    stats: Arc<Counters>,
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    on_durable: Option<DurableObserver>,
}

/// Told the `occurred_at` of the events of each request once they are durable, just
/// before the answer (for the latency from an event to its acknowledgement).
pub type DurableObserver = Arc<dyn Fn(&[chrono::DateTime<chrono::Utc>]) + Send + Sync>;

/// What the ingest has answered since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// `POST /v1/events` requests answered.
    pub requests: u64,
    /// Of them, by HTTP status.
    pub by_status: std::collections::BTreeMap<u16, u64>,
    /// Events answered `accepted`.
    pub accepted: u64,
    /// Events answered `duplicate`.
    pub duplicate: u64,
    /// Events answered `rejected`.
    pub rejected: u64,
    /// Events answered `retry`.
    pub retry: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
    retry: AtomicU64,
    by_status: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
}

/// A handle on an [`Ingest`]'s counters that outlives the router.
#[derive(Debug, Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// A snapshot.
    pub fn snapshot(&self) -> IngestStats {
        let by_status = self
            .0
            .by_status
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        IngestStats {
            requests: by_status.values().sum(),
            by_status,
            accepted: self.0.accepted.load(Ordering::Relaxed),
            duplicate: self.0.duplicate.load(Ordering::Relaxed),
            rejected: self.0.rejected.load(Ordering::Relaxed),
            retry: self.0.retry.load(Ordering::Relaxed),
        }
    }
}

impl<L: Ledger> Ingest<L> {
    /// The ingest sending through `producer`, remembering ids in `ledger`; open
    /// (no authentication), no CORS, the default request budget.
    pub fn new(producer: Producer, ledger: L) -> Ingest<L> {
        Ingest {
            producer,
            ledger: Arc::new(ledger),
            auth: Auth::Open,
            request_budget: DEFAULT_REQUEST_BUDGET,
            cors_origins: Vec::new(),
            readiness: None,
            stats: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(
                crate::limits::DEFAULT_MAX_REQUESTS_IN_FLIGHT,
            )),
            max_in_flight: crate::limits::DEFAULT_MAX_REQUESTS_IN_FLIGHT,
            on_durable: None,
        }
    }

    /// Tells `observer` the `occurred_at` of each request's events once they are
    /// durable (the service's event → acknowledged latency).
    pub fn with_durable_observer(mut self, observer: DurableObserver) -> Self {
        self.on_durable = Some(observer);
        self
    }

    /// At most `n` requests read and handled at once (at least 1); the others are
    /// answered 429 before their body is read.
    pub fn with_max_requests_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(self.max_in_flight));
        self
    }

    /// How callers are authenticated.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// How long a request waits for its events to be durable.
    pub fn with_request_budget(mut self, budget: Duration) -> Self {
        self.request_budget = budget;
        self
    }

    /// Web origins (`https://app.example`, or `*`) allowed to post from a browser.
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// How `GET /readyz` learns that the stream is reachable (default: the producer
    /// is open).
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// The counters, readable while the router serves.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.stats.clone())
    }

    /// The producer it sends with.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Takes a request's events for `caller`: the per-event results, in order.
    pub async fn ingest(&self, caller: &Caller, items: Vec<Item>) -> IngestResponse {
        let mut results: Vec<EventResult> = Vec::with_capacity(items.len());
        // The events to send, by index; an id repeated in the request is sent once and
        // its later copies answered like the first.
        let mut to_send: Vec<(usize, flyhigh_schemas::Envelope)> = Vec::new();
        let mut assigned_at: Vec<usize> = Vec::new();
        let mut first_of: HashMap<Uuid, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Item::Invalid { event_id, errors } => {
                    results.push(rejected(index, event_id, errors, false));
                }
                Item::Valid { event, assigned } => {
                    if assigned {
                        assigned_at.push(index);
                    }
                    if !caller.may_send(&event.source) {
                        let errors = vec![FieldProblem {
                            field: "source".into(),
                            reason: caller.refusal(&event.source),
                        }];
                        results.push(rejected(index, Some(id(&event)), errors, assigned));
                    } else if let Some(&first) = first_of.get(&event.event_id) {
                        copies.push((index, first));
                    } else {
                        first_of.insert(event.event_id, index);
                        to_send.push((index, event));
                    }
                }
            }
        }
        results.extend(self.send(to_send).await);
        for r in &mut results {
            if assigned_at.binary_search(&r.index).is_ok() {
                r.assigned_event_id = true;
            }
        }
        // Later copies of an id: a duplicate of a durable first, else the first's answer.
        for (index, first) in copies {
            if let Some(first) = results.iter().find(|r| r.index == first) {
                let mut copy = first.clone();
                copy.index = index;
                if matches!(first.status, EventStatus::Accepted | EventStatus::Duplicate) {
                    copy.status = EventStatus::Duplicate;
                }
                results.push(copy);
            }
        }
        let response = IngestResponse::new(results);
        let count = |counter: &AtomicU64, n: usize| {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        };
        count(&self.stats.accepted, response.accepted);
        count(&self.stats.duplicate, response.duplicate);
        count(&self.stats.rejected, response.rejected);
        count(&self.stats.retry, response.retry);
        response
    }

    /// Claims, sends and waits for the valid events of a request.
    async fn send(&self, events: Vec<(usize, flyhigh_schemas::Envelope)>) -> Vec<EventResult> {
        if events.is_empty() {
            return Vec::new();
        }
        let ids: Vec<Uuid> = events.iter().map(|(_, e)| e.event_id).collect();
        let claims = match self.ledger.claim(&ids).await {
            Ok(claims) if claims.len() == ids.len() => claims,
            Ok(_) | Err(_) => {
                tracing::warn!("event ledger unavailable: answering the request's events retry");
                return events
                    .iter()
                    .map(|(index, e)| retry(*index, e, RetryReason::Unavailable))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(events.len());
        let mut pending: Vec<(usize, &flyhigh_schemas::Envelope, Receipt)> = Vec::new();
        let mut released: Vec<Uuid> = Vec::new();
        for ((index, event), claim) in events.iter().zip(claims) {
            match claim {
                Claim::Written => results.push(result(*index, event, EventStatus::Duplicate)),
                Claim::InFlight => results.push(retry(*index, event, RetryReason::InFlight)),
                Claim::New => match self.producer.try_send(event) {
                    Ok(receipt) => pending.push((*index, event, receipt)),
                    Err(SendError::BufferFull { .. }) => {
                        released.push(event.event_id);
                        results.push(retry(*index, event, RetryReason::BufferFull));
                    }
                    Err(SendError::Invalid(errors)) => {
                        released.push(event.event_id);
                        let errors = errors
                            .0
                            .into_iter()
                            .map(|e| FieldProblem {
                                field: e.field,
                                reason: e.reason,
                            })
                            .collect();
                        results.push(rejected(*index, Some(id(event)), errors, false));
                    }
                    Err(_) => {
                        released.push(event.event_id);
                        results.push(retry(*index, event, RetryReason::Unavailable));
                    }
                },
            }
        }
        let throttles_before = self.producer.throttles();
        let deadline = tokio::time::Instant::now() + self.request_budget;
        let outcomes = futures::future::join_all(
            pending
                .iter_mut()
                .map(|(_, _, receipt)| tokio::time::timeout_at(deadline, receipt)),
        )
        .await;
        let mut written = Vec::new();
        let mut durable_at = Vec::new();
        let mut late: Vec<(Uuid, Receipt)> = Vec::new();
        let mut throttled = None;
        for ((index, event, receipt), outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                Ok(Ok(_delivery)) => {
                    written.push(event.event_id);
                    durable_at.push(event.occurred_at);
                    results.push(result(index, event, EventStatus::Accepted));
                }
                Ok(Err(e)) => {
                    tracing::warn!(event_id = %event.event_id, error = %e, "event not written");
                    released.push(event.event_id);
                    results.push(retry(index, event, RetryReason::Unavailable));
                }
                Err(_elapsed) => {
                    let throttled = *throttled
                        .get_or_insert_with(|| self.producer.throttles() > throttles_before);
                    let reason = if throttled {
                        RetryReason::Throttled
                    } else {
                        RetryReason::Timeout
                    };
                    results.push(retry(index, event, reason));
                    late.push((event.event_id, receipt));
                }
            }
        }
        if let Some(observe) = &self.on_durable
            && !durable_at.is_empty()
        {
            observe(&durable_at);
        }
        if let Err(e) = self.ledger.settle(&written, &released).await {
            // The written events are durable and answered so; only a retry's
            // `duplicate` depends on the ledger, and the claims lapse.
            tracing::warn!(error = %e, "event ledger not settled");
        }
        if !late.is_empty() {
            self.settle_later(late);
        }
        results
    }

    /// Settles the ledger for receipts that resolve after their request was answered.
    fn settle_later(&self, late: Vec<(Uuid, Receipt)>) {
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            let (mut written, mut released) = (Vec::new(), Vec::new());
            for (id, receipt) in late {
                match receipt.await {
                    Ok(_) => written.push(id),
                    Err(_) => released.push(id),
                }
            }
            if let Err(e) = ledger.settle(&written, &released).await {
                tracing::warn!(error = %e, "event ledger not settled for late receipts");
            }
        });
    }
}

fn id(event: &flyhigh_schemas::Envelope) -> String {
    event.event_id.hyphenated().to_string()
}

fn result(index: usize, event: &flyhigh_schemas::Envelope, status: EventStatus) -> EventResult {
    EventResult {
        index,
        event_id: Some(id(event)),
        status,
        reason: None,
        errors: Vec::new(),
        assigned_event_id: false,
    }
}

fn retry(index: usize, event: &flyhigh_schemas::Envelope, reason: RetryReason) -> EventResult {
    EventResult {
        reason: Some(reason),
        ..result(index, event, EventStatus::Retry)
    }
}

fn rejected(
    index: usize,
    event_id: Option<String>,
    errors: Vec<FieldProblem>,
    assigned: bool,
) -> EventResult {
    EventResult {
        index,
        event_id,
        status: EventStatus::Rejected,
        reason: None,
        errors,
        assigned_event_id: assigned,
    }
}

impl<L: Ledger> Ingest<L> {
    /// The API: `POST /v1/events`, `GET /healthz`, `GET /readyz`, `GET /openapi.json`,
    /// with CORS for the configured origins. Merge it into a host's router or serve it
    /// as it is.
    pub fn router(self) -> Router {
        let cors = cors_layer(&self.cors_origins);
        let state = Arc::new(self);
        let router = Router::new()
            .route("/v1/events", post(post_events::<L>))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz::<L>))
            .route("/openapi.json", get(openapi))
            .with_state(state);
        match cors {
            Some(cors) => router.layer(cors),
            None => router,
        }
    }
}

/// CORS for browser apps: the listed origins (or any, for `*`) may `POST` JSON with an
/// `Authorization` header and read `Retry-After`; other origins get no CORS headers,
/// so the browser refuses them.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

async fn post_events<L: Ledger>(
    State(ingest): State<Arc<Ingest<L>>>,
    request: Request,
) -> Response {
    let response = events(&ingest, request).await;
    if let Ok(mut by_status) = ingest.stats.by_status.lock() {
        *by_status.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    response
}

async fn events<L: Ledger>(ingest: &Ingest<L>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let caller = match &ingest.auth {
        Auth::Open => Caller::anyone("anyone"),
        Auth::ApiKeys(keys) => {
            let authorization = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match keys.caller(authorization) {
                Some(caller) => caller.clone(),
                None => return unauthorized(authorization.is_some()),
            }
        }
        Auth::FromHost => match parts.extensions.get::<Caller>() {
            Some(caller) => caller.clone(),
            None => return unauthorized(false),
        },
    };
    let Some(framing) =
        Framing::from_content_type(header_str(&parts.headers, header::CONTENT_TYPE))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorResponse::new(
                format!(
                    "unsupported Content-Type {:?}",
                    header_str(&parts.headers, header::CONTENT_TYPE).unwrap_or("")
                ),
                "send application/json (an array of events, or one) or application/x-ndjson",
            ),
        );
    };
    // Saturated: answer before reading the body, so that memory and parsing stay
    // bounded however many clients post.
    let Ok(_permit) = ingest.in_flight.clone().try_acquire_owned() else {
        return json(
            StatusCode::TOO_MANY_REQUESTS,
            &ErrorResponse::new(
                format!(
                    "busy: {} requests are being handled; nothing of this one was read",
                    ingest.max_in_flight
                ),
                "send the whole request again after Retry-After",
            ),
            Some(crate::limits::RETRY_AFTER_BUSY_SECONDS),
        );
    };
    let declared = header_str(&parts.headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
    if let Some(length) = declared.filter(|l: &usize| *l > MAX_REQUEST_BYTES) {
        return too_large("request_bytes", MAX_REQUEST_BYTES, None, length);
    }
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let items = match body::parse(framing, &bytes) {
        Ok(items) => items,
        Err(BodyError::Unreadable { error: e, hint }) => {
            return error(StatusCode::BAD_REQUEST, ErrorResponse::new(e, hint));
        }
        Err(BodyError::TooLarge {
            limit,
            max,
            index,
            found,
        }) => return too_large(limit, max, index, found),
    };
    let response = ingest.ingest(&caller, items).await;
    let (status, retry_after) = response.http_status();
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &response,
        retry_after,
    )
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(
                "request_bytes",
                MAX_REQUEST_BYTES,
                None,
                MAX_REQUEST_BYTES + 1,
            ))
        }
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            ErrorResponse::new(
                format!("the body could not be read: {e}"),
                "send the request again",
            ),
        )),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(presented: bool) -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        ErrorResponse::new(
            if presented {
                "the API key is not valid"
            } else {
                "an API key is required"
            },
            "send Authorization: Bearer <your app's key>",
        ),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn too_large(limit: &'static str, max: usize, index: Option<usize>, found: usize) -> Response {
    let what = match limit {
        "events_per_request" => format!("{found} events in one request; at most {max}"),
        "event_bytes" => format!(
            "event {} is {found} bytes; at most {max}",
            index.unwrap_or_default()
        ),
        _ => format!("a body of {found} bytes or more; at most {max}"),
    };
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorResponse {
            error: format!("request too large: {what}"),
            hint: Some("split the events over several requests".into()),
            limit: Some(limit.into()),
            max: Some(max),
            index,
        },
    )
}

fn error(status: StatusCode, body: ErrorResponse) -> Response {
    json(status, &body, None)
}

fn json<T: Serialize>(status: StatusCode, body: &T, retry_after: Option<u32>) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}), None)
}

async fn readyz<L: Ledger>(State(ingest): State<Arc<Ingest<L>>>) -> Response {
    let ready = match &ingest.readiness {
        Some(check) => check().await,
        None if ingest.producer.is_closed() => Err("the producer is closed".into()),
        None => Ok(()),
    };
    match ready {
        Ok(()) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready"}),
            None,
        ),
        Err(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "reason": reason}),
            Some(crate::limits::RETRY_AFTER_UNAVAILABLE_SECONDS),
        ),
    }
}

async fn openapi() -> Response {
    json(StatusCode::OK, &crate::openapi::document(), None)
}
