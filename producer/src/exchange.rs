//! What the handle ([`crate::Producer`]) and its worker exchange: the commands on
//! the channel between them, the bookkeeping each accepted record carries, and
//! what comes back ([`Delivery`], [`DeliveryError`], [`FlushReport`]).
//!
//! Its own module so that neither side imports the other: the handle only sends
//! [`Command`]s, the worker only answers through the channels inside them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flyhigh_schemas::HashKey;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::aggregate::UserRecord;
use crate::budget::Charge;
use crate::dead_letter::DeadLetterReason;

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The shard.
    pub shard_id: Arc<str>,
    /// The Kinesis record's sequence number (shared by an aggregate's user records).
    pub sequence_number: Arc<str>,
    /// The user record's index within its aggregate; `None` when it was sent as a
    /// plain record. Consumers see it as the sub-sequence number.
    pub sub_sequence_number: Option<u32>,
}

/// Why a record was not written. In every case but `WorkerStopped` the record is
/// in the dead-letter sink (or the error says the sink failed too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// Given up and stored in the dead-letter sink.
    #[error("dead-lettered ({}) after {attempts} attempts: {error}", reason.as_str())]
    DeadLettered {
        /// Why.
        reason: DeadLetterReason,
        /// The last error.
        error: String,
        /// Put attempts made.
        attempts: u32,
    },
    /// Given up, and the dead-letter sink failed to store it: this receipt is the
    /// only trace left, so the application must keep or resend the record itself.
    #[error("dead-letter sink failed ({sink_error}) for a record given up ({}): {error}", reason.as_str())]
    DeadLetterFailed {
        /// Why it was given up.
        reason: DeadLetterReason,
        /// The last error.
        error: String,
        /// The sink's error.
        sink_error: String,
    },
    /// The worker stopped before deciding (a bug: it panicked); the record's fate is
    /// unknown.
    #[error("the producer worker stopped before the record was resolved")]
    WorkerStopped,
}

/// What a flush or close achieved since the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// User records written.
    pub records_written: u64,
    /// User records dead-lettered.
    pub dead_lettered: u64,
    /// The last reason a record was dead-lettered, if any.
    pub last_error: Option<String>,
}

/// A record's outcome, sent once through its receipt's channel.
pub(crate) type Outcome = Result<Delivery, DeliveryError>;

/// The handle's requests to the worker.
pub(crate) enum Command {
    /// An accepted record.
    Record(Pending),
    /// Seal everything and answer once every record accepted so far is resolved.
    Flush(oneshot::Sender<FlushReport>),
    /// Stop accepting, drain (dead-lettering what is left at `deadline`), answer.
    Close {
        deadline: Option<Instant>,
        ack: oneshot::Sender<FlushReport>,
    },
}

/// An accepted record on its way to the worker.
pub(crate) struct Pending {
    pub record: UserRecord,
    pub member: Member,
}

/// One accepted user record's bookkeeping, travelling with its bytes.
pub(crate) struct Member {
    pub reply: oneshot::Sender<Outcome>,
    /// Its budget charge until its aggregate is sealed; then the batch holds the
    /// charges of all its records as one ([`Charge::merge`]) and gives them back
    /// once it is resolved (written, or its dead letters stored).
    pub charge: Option<Charge>,
    pub hash_key: HashKey,
    pub deadline: Instant,
    pub accepted_at: DateTime<Utc>,
    /// The flush epoch it was accepted in (set by the worker).
    pub epoch: u64,
}

impl Member {
    pub fn new(
        reply: oneshot::Sender<Outcome>,
        charge: Charge,
        hash_key: HashKey,
        deadline: Instant,
        accepted_at: DateTime<Utc>,
    ) -> Member {
        Member {
            reply,
            charge: Some(charge),
            hash_key,
            deadline,
            accepted_at,
            epoch: 0,
        }
    }

    /// Bytes of the budget it holds itself (0 once its batch holds them).
    pub fn charged(&self) -> usize {
        self.charge.as_ref().map_or(0, Charge::bytes)
    }
}
