//! Seat inventory in an embedded SQLite file: the [`InventoryStore`] of the embedded
//! default.
//!
//! Two tables mirror the two kinds of DynamoDB items the AWS adapter writes:
//!
//! - `bookings(booking_id PRIMARY KEY, status, flight_id, cabin, seats, expires_at,
//!   booked_at, released_at)`: one row per booking, the state of its small state
//!   machine (see [`flyhigh_core::inventory`]) with the stream positions of the events
//!   that moved its seats ([`flyhigh_core::inventory::seat_effect`]), kept until
//!   `expires_at` (epoch seconds, from
//!   [`flyhigh_core::inventory::booking_expiry`]; [`SqliteInventoryStore::open`]
//!   deletes the rows past it, as DynamoDB's TTL does);
//! - `cabins(flight_id, cabin, capacity, sold, origin, destination, departure)`, keyed
//!   by `(flight_id, cabin)`: the counter, plus what the schedule says. `capacity` is
//!   `NULL` for a flight that is not in the schedule.
//!
//! The schema version is kept in SQLite's `user_version`, so a file written by a newer
//! build is refused instead of misread.
//!
//! A [`Transaction`] is one SQLite transaction: every booking write is conditional on
//! the status the plan expected, and the first one that finds something else rolls the
//! whole transaction back ([`CommitError::Conflict`]), exactly like a DynamoDB
//! `TransactWriteItems` with condition expressions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use flyhigh_core::inventory::{Transaction, booking_expiry};
use flyhigh_core::{
    BookingRecord, BookingStatus, CabinInventory, CommitError, InventoryStore, Schedule, StoreError,
};
use flyhigh_core::{FlightSchedule, InventoryFilter, Position};
use flyhigh_schemas::Cabin;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params,
};

/// The layout this build reads and writes, stored in SQLite's `user_version`.
pub const SCHEMA_VERSION: i32 = 3;

/// Version 1 had no `expires_at`: its rows get one computed from their flight id.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE bookings ADD COLUMN expires_at INTEGER NULL;
CREATE INDEX IF NOT EXISTS bookings_expires_at ON bookings (expires_at);
";

/// Version 2 had no positions of the events that moved seats: its rows keep none (the
/// flight alerts judge their cabins from the counters, as before, until new events).
const MIGRATE_2_TO_3: &str = "
ALTER TABLE bookings ADD COLUMN booked_at TEXT NULL;
ALTER TABLE bookings ADD COLUMN released_at TEXT NULL;
";

/// How long a statement waits for another connection's lock before failing with
/// `SQLITE_BUSY` (reported as [`StoreError::Transient`]). For the inventory only
/// another process (an operator's `flyhigh inventory` while the demo runs) can hold
/// the lock: within this process every access goes through one connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most booking ids bound in one `IN (...)` list; far below SQLite's limit of 32,766
/// host parameters, and large enough that a batch of 10,000 records costs a few
/// dozen statements.
const MAX_IN_LIST: usize = 256;

/// Prepared statements kept per connection: the fixed statements plus one `IN` list
/// per power of two up to [`MAX_IN_LIST`].
const STATEMENT_CACHE_CAPACITY: usize = 32;

/// The layout. The status check is spelled with `OR`, not `IN (...)`: SQLite builds
/// an ephemeral table for an `IN` list on every statement that checks it, which made
/// booking writes twice as slow.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bookings (
    booking_id TEXT    NOT NULL PRIMARY KEY,
    status     TEXT    NOT NULL
               CHECK (status = 'booked' OR status = 'cancelled' OR status = 'cancel_pending'),
    flight_id  TEXT    NOT NULL,
    cabin      TEXT    NULL,
    seats      INTEGER NOT NULL CHECK (seats BETWEEN 0 AND 255),
    expires_at INTEGER NULL,
    booked_at  TEXT    NULL,
    released_at TEXT   NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bookings_expires_at ON bookings (expires_at);
CREATE TABLE IF NOT EXISTS cabins (
    flight_id   TEXT    NOT NULL,
    cabin       TEXT    NOT NULL,
    capacity    INTEGER NULL CHECK (capacity >= 0),
    sold        INTEGER NOT NULL DEFAULT 0,
    origin      TEXT    NULL,
    destination TEXT    NULL,
    departure   TEXT    NULL,
    PRIMARY KEY (flight_id, cabin)
) WITHOUT ROWID;
";

/// A booking seen for the first time: applies only if no row exists.
const INSERT_BOOKING: &str = "
INSERT INTO bookings (booking_id, status, flight_id, cabin, seats, expires_at, booked_at, released_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (booking_id) DO NOTHING";

/// A booking moving on: applies only if it still holds the expected status.
const UPDATE_BOOKING: &str = "
UPDATE bookings SET status = ?2, flight_id = ?3, cabin = ?4, seats = ?5, expires_at = ?7,
    booked_at = ?8, released_at = ?9
WHERE booking_id = ?1 AND status = ?6";

/// Rows past their expiry (what DynamoDB's TTL deletes).
const PURGE_EXPIRED: &str = "DELETE FROM bookings WHERE expires_at <= ?1";

const ADD_SOLD: &str = "
INSERT INTO cabins (flight_id, cabin, sold) VALUES (?1, ?2, ?3)
ON CONFLICT (flight_id, cabin) DO UPDATE SET sold = sold + excluded.sold";

const UPSERT_SCHEDULE: &str = "
INSERT INTO cabins (flight_id, cabin, capacity, sold, origin, destination, departure)
VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)
ON CONFLICT (flight_id, cabin) DO UPDATE SET
    capacity = excluded.capacity,
    origin = excluded.origin,
    destination = excluded.destination,
    departure = excluded.departure";

/// The columns [`cabin_from_row`] reads, in its order.
const CABIN_COLUMNS: &str = "flight_id, cabin, capacity, sold, origin, destination, departure";

const SELECT_INVENTORY: &str =
    "SELECT flight_id, cabin, capacity, sold, origin, destination, departure FROM cabins";

/// One flight's cabins: a range of the `(flight_id, cabin)` primary key.
const SELECT_FLIGHT: &str = "SELECT flight_id, cabin, capacity, sold, origin, destination, departure \
     FROM cabins WHERE flight_id = ?1";

/// Seat inventory in one SQLite database (a file, or memory for tests).
///
/// # Why a `std::sync::Mutex` and no `spawn_blocking`
///
/// Every call is a handful of statements on B-trees that sit in SQLite's page cache,
/// and in WAL mode with `synchronous=NORMAL` a commit appends to the WAL without an
/// `fsync`: a full transaction of 100 items takes about 0.1–0.3 ms (measured in
/// release; see the `commit_throughput` test), a `bookings` read of 100 ids 30–50
/// µs. So the work runs inline on the caller's task:
///
/// - `spawn_blocking` would add a thread hand-off and force a `'static` copy of
///   every transaction (or an `Arc` around the store) for no gain in capacity: one
///   connection, like SQLite itself, admits one writer at a time, and the demo is
///   CPU-bound on the same cores either way;
/// - the lock is never held across an `.await`, so it cannot deadlock on any runtime,
///   and waiting for it costs at most one transaction's time.
///
/// The cost is that a runtime worker is busy for that fraction of a millisecond (a
/// few milliseconds during a WAL checkpoint). Should that ever delay other tasks
/// visibly, moving the three `*_now` calls into `spawn_blocking` is a local change.
#[derive(Debug)]
pub struct SqliteInventoryStore {
    conn: Mutex<Connection>,
}

impl SqliteInventoryStore {
    /// Opens (or creates) the inventory database at `path`, creating its parent
    /// directory and the schema if missing.
    ///
    /// The database runs in WAL mode (readers such as `flyhigh inventory` never block
    /// the pipeline) with `synchronous=NORMAL`: a commit survives a crash of the
    /// process, and the last commits before a power loss may be lost, which replay
    /// from the stream repairs since every write is idempotent.
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] when the file cannot be opened or was written by a
    /// newer schema version; [`StoreError::Transient`] when another process holds
    /// the database locked for longer than the busy timeout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self::init(open_wal(path)?)?;
        let purged = store.purge_expired(Utc::now())?;
        if purged > 0 {
            tracing::info!(path = %path.display(), bookings = purged, "expired booking records deleted");
        }
        Ok(store)
    }

    /// Opens an existing inventory database for reading only: no schema change, no
    /// purge, nothing written (what `flyhigh inventory` and `flyhigh check` use, so a
    /// look at the file never changes it under a running pipeline).
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] when the file does not exist, cannot be opened, or
    /// holds another schema version than this build's (an older file is migrated by
    /// the first writer that opens it: the demo, `consume` with `--sqlite`, or
    /// `flyhigh schedule load`).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = open_read_only(path)?;
        let version: i32 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .context("user_version")?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Permanent(format!(
                "{}: inventory database has schema version {version}; this build reads version \
                 {SCHEMA_VERSION} (a writer of this build migrates an older file when it opens it)",
                path.display()
            )));
        }
        Ok(SqliteInventoryStore {
            conn: Mutex::new(conn),
        })
    }

    /// An empty in-memory database, for tests and dry runs.
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] if SQLite cannot allocate the database.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().context("open")?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "synchronous", "NORMAL")
            .context("synchronous")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        // IMMEDIATE: two processes opening a fresh file at once must not both create.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin schema")?;
        let version: i32 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .context("user_version")?;
        match version {
            0 => {
                tx.execute_batch(SCHEMA).context("create schema")?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .context("user_version")?;
            }
            1 | 2 => {
                if version == 1 {
                    tx.execute_batch(MIGRATE_1_TO_2)
                        .context("migrate schema 1 to 2")?;
                    let rows: Vec<(String, String)> = {
                        let mut stmt = tx
                            .prepare("SELECT booking_id, flight_id FROM bookings")
                            .context("migrate schema 1 to 2")?;
                        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                            .context("migrate schema 1 to 2")?
                            .collect::<Result<_, _>>()
                            .context("migrate schema 1 to 2")?
                    };
                    {
                        let mut set = tx
                            .prepare("UPDATE bookings SET expires_at = ?2 WHERE booking_id = ?1")
                            .context("migrate schema 1 to 2")?;
                        for (booking_id, flight_id) in rows {
                            let expires_at = booking_expiry(&flight_id).map(|e| e.timestamp());
                            set.execute(params![booking_id, expires_at])
                                .context("migrate schema 1 to 2")?;
                        }
                    }
                }
                tx.execute_batch(MIGRATE_2_TO_3)
                    .context("migrate schema 2 to 3")?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .context("user_version")?;
            }
            SCHEMA_VERSION => {}
            newer => {
                return Err(StoreError::Permanent(format!(
                    "inventory database has schema version {newer}; this build reads version \
                     {SCHEMA_VERSION}"
                )));
            }
        }
        tx.commit().context("commit schema")?;
        Ok(SqliteInventoryStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    fn commit_now(&self, tx: &Transaction) -> Result<(), CommitError> {
        if tx.changes.is_empty() && tx.counters.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock up front: a DEFERRED transaction that reads
        // and then writes can fail with SQLITE_BUSY that no busy timeout resolves.
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        {
            let mut insert = db.prepare_cached(INSERT_BOOKING).context("prepare")?;
            let mut update = db.prepare_cached(UPDATE_BOOKING).context("prepare")?;
            for change in &tx.changes {
                let r = &change.record;
                let cabin = r.cabin.map(Cabin::as_str);
                let expires_at = booking_expiry(&r.flight_id).map(|e| e.timestamp());
                let booked_at = r.booked_at.as_ref().map(Position::to_key);
                let released_at = r.released_at.as_ref().map(Position::to_key);
                let written = match change.expected {
                    None => insert
                        .execute(params![
                            r.booking_id,
                            r.status.as_str(),
                            r.flight_id,
                            cabin,
                            r.seats,
                            expires_at,
                            booked_at,
                            released_at
                        ])
                        .context("insert booking")?,
                    Some(expected) => update
                        .execute(params![
                            r.booking_id,
                            r.status.as_str(),
                            r.flight_id,
                            cabin,
                            r.seats,
                            expected.as_str(),
                            expires_at,
                            booked_at,
                            released_at
                        ])
                        .context("update booking")?,
                };
                if written != 1 {
                    // Dropping `db` rolls back whatever this transaction wrote.
                    return Err(CommitError::Conflict);
                }
            }
            let mut add = db.prepare_cached(ADD_SOLD).context("prepare")?;
            for (key, seats) in &tx.counters {
                add.execute(params![key.flight_id, key.cabin.as_str(), seats])
                    .context("add sold")?;
            }
        }
        db.commit().context("commit")?;
        Ok(())
    }

    fn bookings_now(&self, ids: &[String]) -> Result<HashMap<String, BookingRecord>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        let conn = self.lock();
        for chunk in ids.chunks(MAX_IN_LIST) {
            // Pad each chunk to a power of two by repeating its last id (harmless in
            // an IN list), so that at most nine statement texts exist and all of them
            // stay in the prepared-statement cache.
            let width = chunk.len().next_power_of_two();
            let mut stmt = conn
                .prepare_cached(select_bookings_sql(width))
                .context("prepare")?;
            let last = chunk.len() - 1;
            let args = (0..width).map(|i| &chunk[i.min(last)]);
            let mut rows = stmt
                .query(rusqlite::params_from_iter(args))
                .context("select bookings")?;
            while let Some(row) = rows.next().context("select bookings")? {
                let record = booking_from_row(row)?;
                out.insert(record.booking_id.clone(), record);
            }
        }
        Ok(out)
    }

    fn load_schedule_now(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        {
            let mut upsert = db.prepare_cached(UPSERT_SCHEDULE).context("prepare")?;
            for flight in &schedule.flights {
                let departure = flight
                    .departure
                    .to_rfc3339_opts(SecondsFormat::Millis, true);
                for (cabin, capacity) in &flight.capacity {
                    upsert
                        .execute(params![
                            flight.flight_id,
                            cabin.as_str(),
                            capacity,
                            flight.origin,
                            flight.destination,
                            departure
                        ])
                        .context("upsert schedule")?;
                }
            }
        }
        db.commit().context("commit")
    }

    fn inventory_now(&self) -> Result<Vec<CabinInventory>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(SELECT_INVENTORY).context("prepare")?;
        let mut rows = stmt.query([]).context("select inventory")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select inventory")? {
            out.push(cabin_from_row(row)?);
        }
        out.sort_by(|a, b| (&a.flight_id, a.cabin).cmp(&(&b.flight_id, b.cabin)));
        Ok(out)
    }

    fn flight_now(&self, flight_id: &str) -> Result<Vec<CabinInventory>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(SELECT_FLIGHT).context("prepare")?;
        let mut rows = stmt.query([flight_id]).context("select flight")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select flight")? {
            out.push(cabin_from_row(row)?);
        }
        out.sort_by_key(|c| c.cabin);
        Ok(out)
    }

    /// The listing: SQL narrows by route, departure date and counters (the date of an
    /// unscheduled flight is in its id, so those rows are kept for the pure filter),
    /// and [`InventoryFilter::select`] decides, orders and limits, as in every store.
    fn list_now(&self, filter: &InventoryFilter) -> Result<Vec<CabinInventory>, StoreError> {
        let (sql, args) = list_sql(filter);
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql).context("prepare")?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .context("select listing")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select listing")? {
            out.push(cabin_from_row(row)?);
        }
        Ok(filter.select(out))
    }

    /// The schema version stored in the file (for `flyhigh` diagnostics).
    ///
    /// Deletes the booking records whose expiry is at or before `now`, as DynamoDB's
    /// TTL does; returns how many. [`open`](Self::open) runs it. Safe at any time:
    /// the handler applies no event whose records may have expired
    /// ([`flyhigh_core::inventory::within_horizon`]).
    ///
    /// # Errors
    ///
    /// As for any write.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.lock()
            .execute(PURGE_EXPIRED, params![now.timestamp()])
            .context("purge expired bookings")
    }

    /// # Errors
    ///
    /// As for any read.
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        self.lock()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .context("user_version")
    }

    /// The stored record of one booking, if any (for `flyhigh` diagnostics and tests).
    ///
    /// # Errors
    ///
    /// As for any read.
    pub fn booking(&self, booking_id: &str) -> Result<Option<BookingRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(select_bookings_sql(1))
            .context("prepare")?;
        let row = stmt
            .query_row([booking_id], |row| Ok(booking_from_row(row)))
            .optional()
            .context("select booking")?;
        row.transpose()
    }
}

impl InventoryStore for SqliteInventoryStore {
    async fn bookings(&self, ids: &[String]) -> Result<HashMap<String, BookingRecord>, StoreError> {
        self.bookings_now(ids)
    }

    async fn commit(&self, tx: &Transaction) -> Result<(), CommitError> {
        self.commit_now(tx)
    }

    async fn load_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.load_schedule_now(schedule)
    }

    async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
        self.inventory_now()
    }

    async fn flight(&self, flight_id: &str) -> Result<Vec<CabinInventory>, StoreError> {
        self.flight_now(flight_id)
    }

    async fn list(&self, filter: &InventoryFilter) -> Result<Vec<CabinInventory>, StoreError> {
        self.list_now(filter)
    }
}

/// The `SELECT` of a listing and its arguments. Every condition is necessary for a
/// match, none sufficient: the pure filter has the last word.
fn list_sql(filter: &InventoryFilter) -> (String, Vec<String>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    if let Some(route) = &filter.route {
        args.push(route.origin.clone());
        args.push(route.destination.clone());
        conditions.push(format!(
            "origin = ?{} AND destination = ?{}",
            args.len() - 1,
            args.len()
        ));
    }
    if let Some(date) = filter.date {
        // Departures are stored as RFC 3339 in UTC, so the date is their first 10
        // characters.
        args.push(date.format("%Y-%m-%d").to_string());
        conditions.push(format!(
            "(departure IS NULL OR substr(departure, 1, 10) = ?{})",
            args.len()
        ));
    }
    if filter.oversold_only {
        conditions.push("capacity IS NOT NULL AND sold > capacity".into());
    }
    if filter.sold_out_only {
        conditions.push("capacity IS NOT NULL AND sold >= capacity".into());
    }
    let mut sql = format!("SELECT {CABIN_COLUMNS} FROM cabins");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    (sql, args)
}

/// `SELECT ... WHERE booking_id IN (?1, ..., ?width)`, built once per width.
fn select_bookings_sql(width: usize) -> &'static str {
    const WIDTHS: usize = MAX_IN_LIST.trailing_zeros() as usize + 1;
    static SQL: OnceLock<[String; WIDTHS]> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        std::array::from_fn(|log2| {
            let placeholders = vec!["?"; 1 << log2].join(", ");
            format!(
                "SELECT booking_id, status, flight_id, cabin, seats, booked_at, released_at FROM bookings \
                 WHERE booking_id IN ({placeholders})"
            )
        })
    });
    let log2 = width.next_power_of_two().trailing_zeros() as usize;
    &all[log2.min(WIDTHS - 1)]
}

fn booking_from_row(row: &Row<'_>) -> Result<BookingRecord, StoreError> {
    let booking_id: String = row.get(0).context("read booking")?;
    let status: String = row.get(1).context("read booking")?;
    let cabin: Option<String> = row.get(3).context("read booking")?;
    let seats: i64 = row.get(4).context("read booking")?;
    let corrupt = |what: &str| {
        StoreError::Permanent(format!(
            "bookings row {booking_id:?} holds an invalid {what}"
        ))
    };
    Ok(BookingRecord {
        status: BookingStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        flight_id: row.get(2).context("read booking")?,
        cabin: match cabin {
            None => None,
            Some(c) => Some(Cabin::parse(&c).ok_or_else(|| corrupt("cabin"))?),
        },
        seats: u8::try_from(seats).map_err(|_| corrupt("seat count"))?,
        booked_at: position_column(row, 5, &corrupt)?,
        released_at: position_column(row, 6, &corrupt)?,
        booking_id,
    })
}

/// A nullable column holding a [`Position::to_key`].
fn position_column(
    row: &Row<'_>,
    index: usize,
    corrupt: &dyn Fn(&str) -> StoreError,
) -> Result<Option<Position>, StoreError> {
    let key: Option<String> = row.get(index).context("read booking")?;
    key.map(|k| Position::from_key(&k).ok_or_else(|| corrupt("event position")))
        .transpose()
}

fn cabin_from_row(row: &Row<'_>) -> Result<CabinInventory, StoreError> {
    let flight_id: String = row.get(0).context("read cabin")?;
    let cabin: String = row.get(1).context("read cabin")?;
    let capacity: Option<i64> = row.get(2).context("read cabin")?;
    let corrupt = |what: &str| {
        StoreError::Permanent(format!(
            "cabins row {flight_id:?}/{cabin:?} holds an invalid {what}"
        ))
    };
    let origin: Option<String> = row.get(4).context("read cabin")?;
    let destination: Option<String> = row.get(5).context("read cabin")?;
    let departure: Option<String> = row.get(6).context("read cabin")?;
    let schedule = match (origin, destination, departure) {
        (Some(origin), Some(destination), Some(departure)) => Some(FlightSchedule {
            origin,
            destination,
            departure: DateTime::parse_from_rfc3339(&departure)
                .map_err(|_| corrupt("departure"))?
                .with_timezone(&Utc),
        }),
        _ => None,
    };
    Ok(CabinInventory {
        cabin: Cabin::parse(&cabin).ok_or_else(|| corrupt("cabin"))?,
        capacity: capacity
            .map(u32::try_from)
            .transpose()
            .map_err(|_| corrupt("capacity"))?,
        sold: row.get(3).context("read cabin")?,
        schedule,
        flight_id,
    })
}

/// Opens (or creates) a database file for writing, creating its parent directory, in
/// WAL mode with the busy timeout: what every writing store of this crate starts from.
pub(crate) fn open_wal(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Permanent(format!("creating directory {}: {e}", dir.display()))
        })?;
    }
    let conn = Connection::open(path).context("open")?;
    conn.busy_timeout(BUSY_TIMEOUT).context("busy_timeout")?;
    let mode = switch_to_wal(&conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Permanent(format!(
            "{}: SQLite refused WAL mode (journal_mode={mode}); is it on a network file system?",
            path.display()
        )));
    }
    Ok(conn)
}

/// Sets WAL mode (outside a transaction; it is persistent in the file) and returns
/// the journal mode now in force.
///
/// On a fresh file, two connections switching at once (two processes starting
/// together) make SQLite answer `SQLITE_BUSY` to one of them at once, without the
/// busy timeout: the switch needs the exclusive lock, and SQLite refuses to wait for
/// it while holding a shared one. So a busy answer is retried here, up to the busy
/// timeout. Once the file is in WAL mode the switch takes no lock.
fn switch_to_wal(conn: &Connection) -> Result<String, StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other.context("journal_mode"),
        }
    }
}

/// Opens an existing database file for reading only (never creating it), with the
/// busy timeout.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context("open read-only")?;
    conn.busy_timeout(BUSY_TIMEOUT).context("busy_timeout")?;
    Ok(conn)
}

/// How a database of the embedded stores is stamped: SQLite's `application_id` says
/// which store's file it is, `user_version` its schema version.
pub(crate) struct Stamp {
    /// The schema a fresh file gets.
    pub schema: &'static str,
    /// The store's `application_id`.
    pub application_id: i32,
    /// The schema version this build reads and writes.
    pub version: i32,
    /// The file as errors name it, e.g. `demand database`.
    pub name: &'static str,
    /// The same with its article, e.g. `a demand database`.
    pub a_name: &'static str,
    /// Said after "not {a_name} (...)", e.g. `; is it the inventory database?`.
    pub hint: &'static str,
}

/// The file's `(user_version, application_id)`.
pub(crate) fn stamp(conn: &Connection) -> Result<(i32, i32), StoreError> {
    let version = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context("user_version")?;
    let application_id = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .context("application_id")?;
    Ok((version, application_id))
}

/// Creates `expected`'s schema in a fresh file and stamps it, or checks the stamp of
/// an existing one: a newer schema version, or another store's file, is a
/// [`StoreError::Permanent`] naming it. In one IMMEDIATE transaction, so that two
/// processes opening a fresh file at once do not both create it.
pub(crate) fn create_or_check(conn: &mut Connection, expected: &Stamp) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("begin schema")?;
    match stamp(&tx)? {
        (0, 0) => {
            tx.execute_batch(expected.schema).context("create schema")?;
            tx.pragma_update(None, "application_id", expected.application_id)
                .context("application_id")?;
            tx.pragma_update(None, "user_version", expected.version)
                .context("user_version")?;
        }
        (version, id) if version == expected.version && id == expected.application_id => {}
        (newer, id) if id == expected.application_id => {
            return Err(StoreError::Permanent(format!(
                "{} has schema version {newer}; this build reads version {}",
                expected.name, expected.version
            )));
        }
        (version, application_id) => {
            return Err(StoreError::Permanent(format!(
                "not {} (application_id {application_id:#x}, schema version {version}){}",
                expected.a_name, expected.hint
            )));
        }
    }
    tx.commit().context("commit schema")
}

/// A store's connection. A panic while it was held cannot leave it mid-transaction
/// in a way that matters (rusqlite rolls back on drop, and we roll back anything
/// still open), so a poisoned lock is recovered instead of poisoning the whole
/// pipeline.
pub(crate) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    match conn.lock() {
        Ok(conn) => conn,
        Err(poisoned) => {
            let conn = poisoned.into_inner();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            conn
        }
    }
}

/// Classifies a SQLite error by what the caller must do: another connection holding
/// a lock is worth a retry; anything else (a full disk, a corrupt or read-only file,
/// a constraint) needs an operator.
pub(crate) fn classify(what: &str, e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Transient(format!("sqlite {what}: {e}"))
        }
        _ => StoreError::Permanent(format!("sqlite {what}: {e}")),
    }
}

/// Maps a rusqlite result to a [`StoreError`] naming the step that failed.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| classify(what, &e))
    }
}

#[cfg(test)]
mod tests;
