//! [`Outbox`]: publishes recorded alerts, so that none is lost and none repeats
//! more than once per crash.
//!
//! For each pending alert, oldest first: **claim** it (a conditional write with an
//! expiry, so two publishers never publish it at the same time), **publish** it
//! (retried a few times with a pause on a transient error), then **mark** it
//! published. A publish that keeps failing leaves it pending; its claim expires and
//! the next run (the alerts Lambda runs every minute) tries again. A crash after
//! the publish and before the mark leaves it pending too, so it is published once
//! more, with the same `alert_id`, for subscribers to drop.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::{AlertPublisher, AlertStore};

/// Pending alerts taken per run.
const BATCH: usize = 100;

/// What one pass over the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublishReport {
    /// Alerts published and marked.
    pub published: u64,
    /// Publish attempts that failed (each retried or left pending).
    pub failed_attempts: u64,
    /// Alerts left pending for the next pass.
    pub left_pending: u64,
    /// Alerts another publisher held.
    pub claimed_elsewhere: u64,
}

/// The outbox over an alert store and a publisher.
pub struct Outbox<A, P> {
    store: A,
    publisher: P,
    claim_for: Duration,
    attempts: u32,
    pause: StdDuration,
}

impl<A: AlertStore, P: AlertPublisher> Outbox<A, P> {
    /// An outbox with 60-second claims and three attempts per alert, 200 ms apart.
    pub fn new(store: A, publisher: P) -> Self {
        Outbox {
            store,
            publisher,
            claim_for: Duration::seconds(60),
            attempts: 3,
            pause: StdDuration::from_millis(200),
        }
    }

    /// How long a claim holds off other publishers: longer than one publish takes.
    pub fn with_claim(mut self, claim_for: Duration) -> Self {
        self.claim_for = claim_for;
        self
    }

    /// Attempts per alert and pass (at least 1) and the pause between them.
    pub fn with_attempts(mut self, attempts: u32, pause: StdDuration) -> Self {
        self.attempts = attempts.max(1);
        self.pause = pause;
        self
    }

    /// The alert store.
    pub fn store(&self) -> &A {
        &self.store
    }

    /// The publisher.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    /// Publishes every pending alert it can claim. Store errors end the pass (what is
    /// left stays pending); the report says what happened.
    pub async fn publish_pending(&self, now: &(impl Fn() -> DateTime<Utc> + ?Sized)) -> PublishReport {
        let mut report = PublishReport::default();
        let pending = match self.store.pending(BATCH).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "outbox not read; the next pass retries");
                return report;
            }
        };
        'alerts: for alert in pending {
            let t = now();
            match self.store.claim(&alert.alert_id, t, t + self.claim_for).await {
                Ok(true) => {}
                Ok(false) => {
                    report.claimed_elsewhere += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(alert_id = %alert.alert_id, error = %e, "alert not claimed");
                    report.left_pending += 1;
                    continue;
                }
            }
            for attempt in 1..=self.attempts {
                match self.publisher.publish(&alert).await {
                    Ok(()) => {
                        if let Err(e) = self.store.mark_published(&alert.alert_id, now()).await {
                            // Published but not marked: it goes out once more when the
                            // claim expires, with the same id.
                            tracing::warn!(alert_id = %alert.alert_id, error = %e, "alert published but not marked");
                            report.left_pending += 1;
                        } else {
                            report.published += 1;
                        }
                        continue 'alerts;
                    }
                    Err(e) => {
                        report.failed_attempts += 1;
                        tracing::warn!(alert_id = %alert.alert_id, attempt, error = %e, "alert not published");
                        if attempt < self.attempts {
                            tokio::time::sleep(self.pause).await;
                        }
                    }
                }
            }
            report.left_pending += 1;
        }
        report
    }
}
