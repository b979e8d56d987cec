//! [`Deadline`]: when the invocation handling a batch must have answered.
//!
//! Lambda gives every invocation a deadline (`Context::deadline`, milliseconds since
//! the epoch); the local runner gives its batch timeout. A handler that can stop at a
//! boundary (the archive, between the parts of a batch) checks it before starting
//! work that might not finish, and reports the first record it did not finish, so a
//! heavy batch makes progress instead of timing out whole. Tests and the CLI use
//! [`Deadline::none`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When the current invocation ends; `none` for "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: work until done (tests, the CLI).
    pub fn none() -> Deadline {
        Deadline(None)
    }

    /// The deadline `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline(Some(at))
    }

    /// The deadline `after` from now (the local runner's batch timeout).
    pub fn after(after: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(after))
    }

    /// Lambda's deadline: `epoch_millis` milliseconds since the Unix epoch (the
    /// `Lambda-Runtime-Deadline-Ms` header), read against the wall clock `now`. A
    /// deadline already past is one that has passed.
    pub fn from_epoch_millis(epoch_millis: u64, now: SystemTime) -> Deadline {
        let now_millis = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let left = u128::from(epoch_millis).saturating_sub(now_millis);
        let left = Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX));
        Deadline::after(left)
    }

    /// Time left, `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether `needed` still fits before the deadline (always, without one).
    pub fn allows(&self, needed: Duration) -> bool {
        self.remaining().is_none_or(|left| left >= needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_deadline_allows_anything_and_a_past_one_nothing() {
        assert!(Deadline::none().allows(Duration::MAX));
        assert_eq!(Deadline::none().remaining(), None);
        let past = Deadline::at(Instant::now());
        assert!(!past.allows(Duration::from_millis(1)));
        assert!(Deadline::after(Duration::from_secs(3600)).allows(Duration::from_secs(60)));
    }

    #[test]
    fn lambda_deadlines_are_read_against_the_wall_clock() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let later = Deadline::from_epoch_millis(1_000_000 + 300_000, now);
        assert!(later.allows(Duration::from_secs(200)));
        assert!(!later.allows(Duration::from_secs(400)));
        let gone = Deadline::from_epoch_millis(999_000, now);
        assert_eq!(gone.remaining(), Some(Duration::ZERO));
    }
}
