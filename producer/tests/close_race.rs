//! Regression for "records can be lost at close": `send` checked `is_closed` before
//! waiting for budget and never again, and the worker's last look at the command
//! channel was non-blocking, so a record accepted in that window was dropped with
//! the channel and its receipt resolved `WorkerStopped`: neither written nor
//! dead-lettered.
//!
//! Many tasks send while `close` races them, over many rounds and a small budget
//! (so that sends wait for budget across the close). Every record `send` accepted
//! must end written (in the stream, once) or dead-lettered; a refused one must have
//! been refused with `SendError::Closed`.
//!
//! The window was microseconds wide: 800 rounds of this test did not hit it before
//! the fix either. The fix holds by construction (the worker closes the channel,
//! then receives until it is empty), and this test guards the invariant around it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flyhigh_producer::{
    DeliveryError, LocalStream, MemoryDeadLetters, Producer, ProducerConfig, SendError,
};
use flyhigh_schemas::{Cabin, Envelope, Payload, Search};

fn search(n: u64) -> Envelope {
    Envelope::new(
        "web-app",
        "2026-11-22T10:15:00.250Z".parse().unwrap(),
        Payload::Search(Search {
            session_id: format!("s-{n:012}"),
            origin: "LHR".into(),
            destination: "JFK".into(),
            departure_date: "2026-12-20".parse().unwrap(),
            return_date: None,
            passengers: 1,
            cabin: Cabin::Economy,
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_accepted_while_close_races_are_never_lost() {
    const ROUNDS: usize = 100;
    const SENDERS: u64 = 16;
    for round in 0..ROUNDS {
        let stream = LocalStream::new("close-race", 4);
        let letters = MemoryDeadLetters::new();
        let producer = Producer::new(
            stream.clone(),
            ProducerConfig {
                dead_letters: Arc::new(letters.clone()),
                // A few records' worth, so that senders wait for budget while the
                // close begins.
                buffer_budget_bytes: 2 * 1024,
                ..ProducerConfig::default()
            },
        );
        let accepted = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let (producer, accepted) = (producer.clone(), accepted.clone());
            senders.push(tokio::spawn(async move {
                let mut receipts = Vec::new();
                for i in 0.. {
                    match producer.send(&search(s * 1_000_000 + i)).await {
                        Ok(receipt) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            receipts.push(receipt);
                        }
                        Err(SendError::Closed) => break,
                        Err(e) => panic!("unexpected send error: {e}"),
                    }
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                let mut written = 0u64;
                let mut dead = 0u64;
                for receipt in receipts {
                    match receipt.await {
                        Ok(_) => written += 1,
                        Err(DeliveryError::DeadLettered { .. }) => dead += 1,
                        Err(e) => panic!("an accepted record was lost: {e}"),
                    }
                }
                (written, dead)
            }));
        }
        // Let the senders get going, then close under them.
        tokio::time::sleep(std::time::Duration::from_micros(200 + 37 * round as u64)).await;
        let report = producer.close().await;
        let (mut written, mut dead) = (0, 0);
        for sender in senders {
            let (w, d) = sender.await.expect("sender");
            written += w;
            dead += d;
        }
        let accepted = accepted.load(Ordering::SeqCst);
        assert_eq!(
            written + dead,
            accepted,
            "round {round}: every accepted record resolved"
        );
        assert_eq!(dead as usize, letters.letters().len(), "round {round}");
        assert_eq!(report.dead_lettered, dead, "round {round}");
        let metrics = producer.metrics();
        assert_eq!(
            metrics.user_records_written, written,
            "round {round}: written once"
        );
    }
}
