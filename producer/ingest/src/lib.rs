//! The ingest API: the producer's HTTP face, for the mobile and web apps that cannot
//! link the producer crate or hold AWS credentials.
//!
//! One axum [`Router`](axum::Router) ([`Ingest::router`]) serves `POST /v1/events`,
//! `GET /healthz`, `GET /readyz` and `GET /openapi.json`. `flyhigh serve` serves it
//! over the durable local stream; `ingest-lambda` serves the same router through
//! `lambda_http` behind API Gateway (HTTP API, JWT authorizer) or a function URL,
//! over Kinesis. The contract, every status and the limits: `docs/ingest.md`.
//!
//! Its promises:
//! - **A 2xx means durable.** Every event of a 200 is in the stream (Kinesis
//!   acknowledged it; locally, the stream has it on disk). An event that was not
//!   written is never answered 2xx: its result says `retry`, and the request 429 or
//!   503 with `Retry-After`.
//! - **Per-event results.** One result per event in request order (`accepted`,
//!   `duplicate`, `rejected` with every field error as the producer and consumers
//!   report them, `retry` with its reason).
//! - **Back-pressure, not a queue.** Events are handed to the producer with
//!   [`try_send`](flyhigh_producer::Producer::try_send): a spent byte budget is a
//!   429 at once, so memory stays within the budget whatever the clients send.
//! - **Retries are harmless.** Events carry a client `event_id` (or get a UUIDv7,
//!   returned in the answer); the [`Ledger`] answers an id already durable
//!   `duplicate` and sends it no second time.
//! - **An app sends only as itself.** A caller ([`Caller`]) may send events under
//!   its own `source` values only ([`Auth`]).
//!
//! Layout (pure first): [`limits`] (the named limits), [`response`] (results and the
//! status they add up to), [`body`] (the body into events, decoded as consumers
//! decode them), [`auth`] (callers, API keys), [`claims`] (callers from a verified
//! token's claims), [`ledger`] (the port and its memory adapter; `dynamodb`, the
//! DynamoDB adapter, with feature `dynamodb`), [`openapi`] (the generated
//! document), [`router`] (the HTTP layer and the request's steps).

pub mod auth;
pub mod body;
pub mod claims;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod ledger;
pub mod limits;
pub mod openapi;
pub mod response;
pub mod router;

pub use auth::{ApiKeys, Auth, Caller, KeysError};
pub use claims::{CallerSources, ClaimsError};
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoLedger;
pub use ledger::{CLAIM_LEASE, Claim, Ledger, LedgerError, MemoryLedger};
pub use response::{
    ErrorResponse, EventResult, EventStatus, FieldProblem, IngestResponse, RetryReason,
};
pub use router::{DurableObserver, Ingest, IngestStats, Readiness, StatsHandle};
