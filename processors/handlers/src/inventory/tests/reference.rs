//! The plain sequential reference of what inventory must be after a log of events,
//! written from the promises, not from the fold's transition table:
//!
//! - a booking id counts the seats of its first booking event, on that event's flight
//!   and cabin (later booking events with the same id, changed or not, are the same
//!   booking);
//! - a booking id with any cancellation in the log, before or after its booking,
//!   counts nothing: it is cancelled once, or nets out when the booking comes late;
//! - a cancellation with no booking leaves a pending cancellation.

use std::collections::{BTreeMap, BTreeSet};

use flyhigh_core::memory::MemoryStore;
use flyhigh_core::{BookingStatus, CabinKey, InventoryStore};
use flyhigh_schemas::{Envelope, Payload};

/// The booking an event is about, if it is a booking or a cancellation.
pub(super) fn booking_id(event: &Envelope) -> Option<&str> {
    match &event.payload {
        Payload::Booking(b) => Some(&b.booking_id),
        Payload::Cancellation(c) => Some(&c.booking_id),
        Payload::Search(_) => None,
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reference {
    /// Seats sold per flight and cabin, zeros left out.
    pub(super) sold: BTreeMap<CabinKey, i64>,
    /// Each booking's final status.
    pub(super) status: BTreeMap<String, BookingStatus>,
}

impl Reference {
    pub(super) fn of(events: &[Envelope]) -> Reference {
        let mut first_booking: BTreeMap<&str, (CabinKey, i64)> = BTreeMap::new();
        let mut cancelled: BTreeSet<&str> = BTreeSet::new();
        for event in events {
            match &event.payload {
                Payload::Booking(b) => {
                    first_booking
                        .entry(&b.booking_id)
                        .or_insert((CabinKey::new(&b.flight_id, b.cabin), i64::from(b.seats)));
                }
                Payload::Cancellation(c) => {
                    cancelled.insert(&c.booking_id);
                }
                Payload::Search(_) => {}
            }
        }
        let mut reference = Reference::default();
        for (id, (key, seats)) in &first_booking {
            if cancelled.contains(id) {
                reference
                    .status
                    .insert(id.to_string(), BookingStatus::Cancelled);
            } else {
                reference
                    .status
                    .insert(id.to_string(), BookingStatus::Booked);
                *reference.sold.entry(key.clone()).or_insert(0) += seats;
            }
        }
        for id in cancelled {
            reference
                .status
                .entry(id.to_string())
                .or_insert(BookingStatus::CancelPending);
        }
        reference
    }

    /// Asserts that the store holds exactly this inventory and these bookings.
    pub(super) async fn assert_matches(&self, store: &MemoryStore, context: &str) {
        let stored: BTreeMap<CabinKey, i64> = store
            .inventory()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.sold != 0)
            .map(|c| (CabinKey::new(c.flight_id, c.cabin), c.sold))
            .collect();
        assert_eq!(stored, self.sold, "{context}: seats sold");
        for (id, status) in &self.status {
            assert_eq!(
                store.booking(id).map(|r| r.status),
                Some(*status),
                "{context}: booking {id}"
            );
        }
        assert_eq!(
            store.booking_count(),
            self.status.len(),
            "{context}: bookings stored"
        );
    }
}
