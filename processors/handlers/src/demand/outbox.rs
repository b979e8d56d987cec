//! [`Outbox`]: publishes recorded alerts, so that none is lost and none repeats
//! more than once per crash.
//!
//! For each pending alert, oldest first: **claim** it (a conditional write with an
//! expiry, so two publishers never publish it at the same time), **publish** it
//! (retried a few times with a pause on a transient error), then **mark** it
//! published. A publish that keeps failing leaves it pending; its claim expires and
//! the next run (the alerts Lambda runs every minute) tries again. A crash after
//! the publish and before the mark (or a mark that fails three times) leaves it
//! pending too, so it is published once more, with the same `alert_id`, for
//! subscribers to drop: delivery is at least once, with one repeat per such failure.
//! A publish slower than the claim (60 s) could also be repeated by a second
//! publisher; the SDK's own timeouts keep a publish far below that.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::{AlertPublisher, AlertStore};
use flyhigh_schemas::Alert;

/// Pending alerts taken per run.
const BATCH: usize = 100;
/// Attempts to mark a published alert before leaving it to be published again.
const MARK_ATTEMPTS: u32 = 3;

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

impl PublishReport {
    /// Adds another pass's counts.
    pub fn add(&mut self, other: &PublishReport) {
        self.published += other.published;
        self.failed_attempts += other.failed_attempts;
        self.left_pending += other.left_pending;
        self.claimed_elsewhere += other.claimed_elsewhere;
    }
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
    pub async fn publish_pending(
        &self,
        now: &(impl Fn() -> DateTime<Utc> + ?Sized),
    ) -> PublishReport {
        match self.store.pending(BATCH).await {
            Ok(pending) => self.publish(&pending, self.attempts, now).await,
            Err(e) => {
                tracing::warn!(error = %e, "outbox not read; the next pass retries");
                PublishReport::default()
            }
        }
    }

    /// Publishes these recorded alerts now, one attempt each (where a caller must not
    /// wait: the inventory path); what fails stays pending for the next pass.
    pub async fn publish_now(
        &self,
        alerts: &[Alert],
        now: &(impl Fn() -> DateTime<Utc> + ?Sized),
    ) -> PublishReport {
        self.publish(alerts, 1, now).await
    }

    async fn publish(
        &self,
        alerts: &[Alert],
        attempts: u32,
        now: &(impl Fn() -> DateTime<Utc> + ?Sized),
    ) -> PublishReport {
        let mut report = PublishReport::default();
        'alerts: for alert in alerts {
            let t = now();
            match self
                .store
                .claim(&alert.alert_id, t, t + self.claim_for)
                .await
            {
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
            for attempt in 1..=attempts {
                match self.publisher.publish(alert).await {
                    Ok(()) => {
                        if self.mark(&alert.alert_id, now).await {
                            report.published += 1;
                        } else {
                            report.left_pending += 1;
                        }
                        continue 'alerts;
                    }
                    Err(e) => {
                        report.failed_attempts += 1;
                        tracing::warn!(alert_id = %alert.alert_id, attempt, error = %e, "alert not published");
                        if attempt < attempts {
                            tokio::time::sleep(self.pause).await;
                        }
                    }
                }
            }
            report.left_pending += 1;
        }
        report
    }

    /// Marks a published alert, retrying a few times: every mark that fails for good
    /// costs one more publish of the alert when its claim expires.
    async fn mark(&self, alert_id: &str, now: &(impl Fn() -> DateTime<Utc> + ?Sized)) -> bool {
        for attempt in 1..=MARK_ATTEMPTS {
            match self.store.mark_published(alert_id, now()).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(alert_id, attempt, error = %e, "alert published but not marked");
                    if attempt < MARK_ATTEMPTS {
                        tokio::time::sleep(self.pause * attempt).await;
                    }
                }
            }
        }
        // Published but not marked: it goes out once more when the claim expires,
        // with the same id.
        false
    }
}
