//! Fixtures shared by the crate's unit tests.

use std::sync::{Arc, Mutex};

use crate::dead_letter::{DeadLetter, DeadLetterReason};

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// An expired letter of a booking's flight key holding `data`.
pub(crate) fn letter(data: &[u8]) -> DeadLetter {
    DeadLetter {
        partition_key: "FH0001-20261201".into(),
        data: data.to_vec(),
        reason: DeadLetterReason::Expired,
        error: "ProvisionedThroughputExceededException: Rate exceeded".into(),
        attempts: 7,
        accepted_at: "2026-11-22T10:15:00.250Z".parse().unwrap(),
        dead_lettered_at: "2026-11-22T10:17:00.250Z".parse().unwrap(),
    }
}
