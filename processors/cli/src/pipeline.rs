//! Pieces shared by `demo` and the AWS commands: stores, clients, and the produce loop.

use std::collections::BTreeMap;
use std::collections::HashMap;

use anyhow::Context;
use flyhigh_aws::dynamodb::DynamoInventoryStore;
use flyhigh_core::inventory::Transaction;
use flyhigh_core::{
    BookingRecord, CabinInventory, CabinKey, CommitError, InventoryFilter, InventoryStore,
    Schedule, StoreError,
};
use flyhigh_embedded::SqliteInventoryStore;
use flyhigh_producer::Producer;
use flyhigh_schemas::{EventType, Payload};
use flyhigh_simulator::{ExpectedInventory, SimStats, Simulator};
use serde::Serialize;

use crate::StoreArgs;

/// Either store, chosen on the command line.
pub enum AnyStore {
    Sqlite(SqliteInventoryStore),
    Dynamo(DynamoInventoryStore),
}

/// Opens the store named by `--sqlite` or `--table`.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<AnyStore> {
    match (&args.sqlite, &args.table) {
        (Some(path), _) => Ok(AnyStore::Sqlite(
            SqliteInventoryStore::open(path)
                .with_context(|| format!("opening SQLite file {}", path.display()))?,
        )),
        (None, Some(table)) => {
            let config = aws_config().await;
            Ok(AnyStore::Dynamo(DynamoInventoryStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                table,
            )))
        }
        (None, None) => anyhow::bail!("name a store with --sqlite FILE or --table NAME"),
    }
}

/// The store named on the command line, for a command that only reads: an SQLite
/// file is opened read-only (never migrated, purged or created).
pub async fn open_store_read_only(args: &StoreArgs) -> anyhow::Result<AnyStore> {
    match &args.sqlite {
        Some(path) => {
            anyhow::ensure!(
                path.exists(),
                "SQLite file {} does not exist (the demo writes out/demo/inventory.sqlite)",
                path.display()
            );
            Ok(AnyStore::Sqlite(
                SqliteInventoryStore::open_read_only(path)
                    .with_context(|| format!("opening SQLite file {}", path.display()))?,
            ))
        }
        None => open_store(args).await,
    }
}

impl InventoryStore for AnyStore {
    async fn bookings(&self, ids: &[String]) -> Result<HashMap<String, BookingRecord>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.bookings(ids).await,
            AnyStore::Dynamo(s) => s.bookings(ids).await,
        }
    }
    async fn commit(&self, tx: &Transaction) -> Result<(), CommitError> {
        match self {
            AnyStore::Sqlite(s) => s.commit(tx).await,
            AnyStore::Dynamo(s) => s.commit(tx).await,
        }
    }
    async fn load_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.load_schedule(schedule).await,
            AnyStore::Dynamo(s) => s.load_schedule(schedule).await,
        }
    }
    async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.inventory().await,
            AnyStore::Dynamo(s) => s.inventory().await,
        }
    }
    async fn flight(&self, flight_id: &str) -> Result<Vec<CabinInventory>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.flight(flight_id).await,
            AnyStore::Dynamo(s) => s.flight(flight_id).await,
        }
    }
    async fn list(&self, filter: &InventoryFilter) -> Result<Vec<CabinInventory>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.list(filter).await,
            AnyStore::Dynamo(s) => s.list(filter).await,
        }
    }
}

/// The SDK configuration from the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// credentials...).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Events produced, per type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Produced {
    pub search: u64,
    pub booking: u64,
    pub cancellation: u64,
    pub total: u64,
    /// Distinct `event_id`s among them (what the archive keeps once compacted: an
    /// events file may repeat an event of the day).
    pub distinct: u64,
}

/// What the produce loop did.
pub struct ProduceOutcome {
    pub produced: Produced,
    /// Records that are not valid events, sent as raw records (which the producer does
    /// not validate) to exercise the consumers' dead-letter path.
    pub poison_injected: u64,
    /// Seats sold per flight and cabin, recomputed independently from the events.
    pub expected: BTreeMap<CabinKey, i64>,
    /// What the simulator generated (duplicates, early cancellations, surge...).
    pub simulation: SimStats,
}

/// The valid events of an NDJSON file (`--events-file`), and its lines that are not.
#[derive(Debug, Default)]
pub struct EventsFile {
    pub path: std::path::PathBuf,
    /// Valid events, in the file's order.
    pub events: Vec<flyhigh_schemas::Envelope>,
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines rejected, with the line number (from 1) and the field and reason.
    pub rejected: Vec<Rejection>,
}

/// A line of an events file that is not a valid event.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub line: u64,
    /// `not_json`, `invalid`, ... (as a consumer's dead letter would say).
    pub kind: &'static str,
    /// The field and what is wrong with it.
    pub reason: String,
}

impl EventsFile {
    /// Reads `path`: one JSON envelope a line, blank lines ignored. A line that is not
    /// a valid event is rejected (kept in [`EventsFile::rejected`]), never dropped
    /// silently; the events are validated exactly as a consumer decodes them.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn read(path: &std::path::Path) -> anyhow::Result<EventsFile> {
        use std::io::BufRead;
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening the events file {}", path.display()))?;
        let mut out = EventsFile {
            path: path.to_path_buf(),
            ..EventsFile::default()
        };
        for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.lines += 1;
            match flyhigh_schemas::decode(text) {
                Ok(event) => out.events.push(event),
                Err(e) => out.rejected.push(Rejection {
                    line: i as u64 + 1,
                    kind: e.kind(),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(out)
    }
}

/// Sends every simulated event through the producer, the events of `extra` spread
/// evenly among them (in their own order; all of them first when the day is empty),
/// and every `poison_every` events one poison record as a raw record.
pub async fn produce(
    mut sim: Simulator,
    extra: &[flyhigh_schemas::Envelope],
    producer: &Producer,
    poison_every: u64,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<ProduceOutcome> {
    let mut produced = Produced::default();
    let mut expected = ExpectedInventory::new();
    let mut poison_injected = 0;
    let mut ids = std::collections::HashSet::new();
    // File event j goes after simulated event j * day / len; what is left when the day
    // ends goes last.
    let (day, len) = (sim.config().events as u64, extra.len() as u64);
    let mut extra = extra.iter().enumerate().peekable();
    let mut simulated = 0u64;
    loop {
        let due = extra
            .peek()
            .is_some_and(|(j, _)| (*j as u64).saturating_mul(day) / len.max(1) <= simulated);
        let event = match (due, extra.peek().is_some()) {
            (true, _) => extra.next().map(|(_, e)| e.clone()),
            (false, more) => match sim.next() {
                Some(e) => {
                    simulated += 1;
                    Some(e)
                }
                None if more => extra.next().map(|(_, e)| e.clone()),
                None => None,
            },
        };
        let Some(event) = event else { break };
        expected.add(&event);
        producer
            .send(&event)
            .await
            .with_context(|| format!("sending event {}", event.event_id))?;
        ids.insert(event.event_id);
        match event.event_type() {
            EventType::Search => produced.search += 1,
            EventType::Booking => produced.booking += 1,
            EventType::Cancellation => produced.cancellation += 1,
        }
        produced.total += 1;
        if poison_every > 0 && produced.total % poison_every == 0 {
            let (key, data) = poison(poison_injected, &event);
            producer
                .send_record(&key, data)
                .await
                .context("sending a poison record")?;
            poison_injected += 1;
        }
        if produced.total % 1024 == 0 {
            progress(produced.total);
        }
    }
    produced.distinct = ids.len() as u64;
    progress(produced.total);
    Ok(ProduceOutcome {
        produced,
        poison_injected,
        expected: expected.finish(),
        simulation: sim.stats().clone(),
    })
}

/// The `n`th poison record (partition key and bytes), cycling through the kinds a
/// consumer must quarantine.
pub fn poison(n: u64, template: &flyhigh_schemas::Envelope) -> (String, Vec<u8>) {
    let mut json = serde_json::to_value(template).unwrap_or_default();
    let data = match n % 5 {
        0 => b"\x00\x01\x02 not an event \xff".to_vec(),
        1 => b"{\"event_type\": \"booking\", \"payload\": {".to_vec(),
        2 => {
            json["event_type"] = "refund".into();
            serde_json::to_vec(&json).unwrap_or_default()
        }
        3 => {
            json["schema_version"] = 99.into();
            serde_json::to_vec(&json).unwrap_or_default()
        }
        _ => {
            // Well-formed, but with two invalid fields: the source and one payload field.
            let mut invalid = template.clone();
            invalid.source = "Not A Valid Source!".into();
            match &mut invalid.payload {
                Payload::Search(s) => s.passengers = 0,
                Payload::Booking(b) => b.seats = 0,
                Payload::Cancellation(c) => c.refund.currency = "euro".into(),
            }
            invalid.to_json()
        }
    };
    (format!("poison-{n}"), data)
}
