//! The handler on the fixture `KinesisEvent` shared with the Lambda runtime test.
//!
//! The fixture holds three bookings on FH0777-20261201 (economy 2 and 3 seats,
//! business 1), a search, a cancellation of the first booking and one garbage record.

use aws_lambda_events::event::kinesis::KinesisEvent;
use flyhigh_core::CabinKey;
use flyhigh_core::memory::{MemoryDeadLetters, MemoryStore};
use flyhigh_handlers::InventoryHandler;
use flyhigh_schemas::Cabin;

const FIXTURE: &str = include_str!("fixtures/kinesis-event.json");

#[tokio::test]
async fn the_fixture_event_updates_inventory_and_dead_letters_the_garbage() {
    let event: KinesisEvent = serde_json::from_str(FIXTURE).unwrap();
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let response = handler.handle(event.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        handler
            .store()
            .sold(&CabinKey::new("FH0777-20261201", Cabin::Economy)),
        3
    );
    assert_eq!(
        handler
            .store()
            .sold(&CabinKey::new("FH0777-20261201", Cabin::Business)),
        1
    );
    let letters = dead.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].shard_id, "shardId-000000000001");
    assert_eq!(letters[0].reason_kind, "not_utf8");
    // Delivered again (a Lambda retry), nothing changes.
    handler.handle(event).await;
    assert_eq!(
        handler
            .store()
            .sold(&CabinKey::new("FH0777-20261201", Cabin::Economy)),
        3
    );
}
