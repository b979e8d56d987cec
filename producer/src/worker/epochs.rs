//! Flush epochs: which records a `flush` waits for.
//!
//! Every accepted record is counted in the epoch current when the worker received
//! it; a flush closes the current epoch and waits until it and every earlier one
//! have no unresolved record. Pure bookkeeping, generic over what a waiter holds
//! (the worker's are reply channels).

use std::collections::VecDeque;

/// Unresolved records per epoch, oldest first, and the flushes waiting on them.
#[derive(Debug)]
pub(crate) struct Epochs<W> {
    /// Unresolved records of epochs `base..`, the last being the current one.
    counts: VecDeque<u64>,
    base: u64,
    waiters: Vec<(u64, W)>,
}

impl<W> Default for Epochs<W> {
    fn default() -> Self {
        Epochs {
            counts: VecDeque::from([0]),
            base: 0,
            waiters: Vec::new(),
        }
    }
}

impl<W> Epochs<W> {
    /// The epoch new records join.
    pub fn current(&self) -> u64 {
        self.base + self.counts.len() as u64 - 1
    }

    /// A record was accepted: counts it in the current epoch, which it returns.
    pub fn admit(&mut self) -> u64 {
        if let Some(count) = self.counts.back_mut() {
            *count += 1;
        }
        self.current()
    }

    /// A record of `epoch` was resolved (written or dead-lettered).
    pub fn resolved(&mut self, epoch: u64) {
        let slot = epoch.checked_sub(self.base).map(|s| s as usize);
        if let Some(count) = slot.and_then(|s| self.counts.get_mut(s)) {
            *count = count.saturating_sub(1);
        }
    }

    /// A flush: it waits for the current epoch and every earlier one; a new epoch
    /// opens for the records after it.
    pub fn flush(&mut self, waiter: W) {
        self.waiters.push((self.current(), waiter));
        self.counts.push_back(0);
    }

    /// Retires fully resolved epochs (always keeping the current one) and returns
    /// the waiters whose epochs are all resolved, in the order they flushed.
    pub fn ready(&mut self) -> Vec<W> {
        while self.counts.len() > 1 && self.counts.front() == Some(&0) {
            self.counts.pop_front();
            self.base += 1;
        }
        let base = self.base;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(epoch, _)| *epoch < base);
        self.waiters = waiting;
        ready.into_iter().map(|(_, w)| w).collect()
    }

    /// Every waiter, resolved or not (the worker is stopping).
    pub fn drain(&mut self) -> Vec<W> {
        self.waiters.drain(..).map(|(_, w)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_waits_for_its_records_and_the_earlier_ones_not_the_later_ones() {
        let mut e = Epochs::default();
        let a = e.admit();
        let b = e.admit();
        e.flush("first");
        let c = e.admit(); // after the flush: not waited for
        assert_eq!((a, b, c), (0, 0, 1));
        assert!(e.ready().is_empty());
        e.resolved(a);
        assert!(e.ready().is_empty());
        e.resolved(b);
        assert_eq!(e.ready(), vec!["first"]);
        e.flush("second");
        assert!(e.ready().is_empty(), "c is unresolved");
        e.resolved(c);
        assert_eq!(e.ready(), vec!["second"]);
        assert!(e.drain().is_empty());
    }

    #[test]
    fn a_later_flush_also_waits_for_an_earlier_epoch() {
        let mut e = Epochs::default();
        let a = e.admit();
        e.flush(1);
        let b = e.admit();
        e.flush(2);
        e.resolved(b);
        // Epoch 1 is resolved, but epoch 0 (a) is not: neither flush is done.
        assert!(e.ready().is_empty());
        e.resolved(a);
        assert_eq!(e.ready(), vec![1, 2]);
    }

    #[test]
    fn flushes_with_nothing_pending_are_ready_at_once_and_drain_answers_the_rest() {
        let mut e = Epochs::default();
        e.flush('a');
        e.flush('b');
        assert_eq!(e.ready(), vec!['a', 'b']);
        let x = e.admit();
        e.flush('c');
        assert_eq!(e.drain(), vec!['c']);
        e.resolved(x);
        assert!(e.ready().is_empty());
    }
}
