//! The hot-route processor's state in an embedded SQLite file, and its alerts in a
//! JSON lines file: the [`DemandStore`], [`AlertStore`] and [`AlertPublisher`] of the
//! embedded default.
//!
//! [`SqliteDemandStore`] keeps everything the processor remembers in one database
//! ([`DEMAND_FILE`](crate::DEMAND_FILE)), so that the counting consumer, the
//! evaluator and the outbox of one process, or of several processes, share it; it
//! behaves exactly like the reference in-memory stores
//! ([`flyhigh_core::memory::MemoryDemandStore`] and
//! [`flyhigh_core::memory::MemoryAlertStore`]): same conditions, same orderings.
//! [`AlertLog`] publishes each alert as one line of
//! [`ALERTS_FILE`](crate::ALERTS_FILE), and to the console if asked.
//!
//! # Tables
//!
//! Times are stored as RFC 3339 in UTC with nine fractional digits
//! (`2026-12-01T09:36:00.000000000Z`): exact, readable with the `sqlite3` shell, and
//! ordered as text as they are in time (years 0000 to 9999; other times are
//! refused).
//!
//! | table | key | columns |
//! |---|---|---|
//! | `counters` | `(route, bucket, shard_id)` | `searches`, `passengers`, `bookings`, `seats`, `cancellations`, `late` (the [`Counts`]), `mark` ([`Position::to_key`] of the highest position counted: its text order is the position order), `arrived_at` (the latest arrival counted, seconds since the epoch; 0 for counters written before schema version 2) |
//! | `routes` | `route` | `last_seen` (the registry of [`DemandStore::note_routes`]) |
//! | `watermarks` | `shard_id` | `event_time` (the shard's progress: an arrival time; the column kept its name), `updated_at` |
//! | `alerts` | `alert_id` | `alert` (exactly [`Alert::to_json`]), `raised_at`, `rule`, `published_at` (`NULL` while pending) |
//! | `outbox` | `alert_id` | `claim_until` (`NULL` while unclaimed) |
//! | `route_states` | `route` | `version`, `state` (the [`RouteState`] as JSON) |
//! | `cabin_states` | `(flight_id, cabin)` | `version`, `state` (the [`CabinAlertState`] as JSON) |
//! | `evaluator` | `id` (always 0) | `cursor` (the last route the surge evaluator judged) |
//!
//! `bucket` is seconds since the epoch, as in [`CounterKey`]. The `raised_at`
//! column, which orders the outbox and orders and filters listings, holds the
//! alert's time exactly as given, as the memory store compares it; the alert read
//! back is its stored JSON, as published, whose times have milliseconds. So an alert
//! raised at a time with a fraction of a millisecond reads back without it (the
//! memory store keeps it), and orders as it was raised. The schema version is
//! kept in SQLite's `user_version` and the file is tagged with an `application_id`,
//! so that a file of a newer build, or the inventory database given by mistake, is
//! refused instead of misread.
//!
//! # Exactly once
//!
//! Every conditional write is atomic for every connection to the file: either one
//! statement with its condition in its `WHERE` (a claim, a watermark), or one
//! transaction begun with `BEGIN IMMEDIATE` (a counter change, a recording, a state
//! save), which takes the database's write lock before it reads, so the read, the
//! decision and the write are one step. Two handles (two
//! threads, two processes) adding the same [`CounterUpdate`] get one
//! [`Added::Applied`] between them, and recording the same alert one `true`. A
//! handle waiting for the other's lock waits up to the busy timeout (5 s), then
//! fails with [`StoreError::Transient`].
//!
//! # Retention
//!
//! Nothing here deletes by itself. Counters grow by routes × shards per bucket;
//! [`SqliteDemandStore::purge_before`] deletes old ones (by bucket *and* last
//! arrival, so the counter of an event dated long ago lives as long as a fresh one),
//! and [`COUNTER_RETENTION_DAYS`] is the suggested horizon. Alerts are few and kept.
//!
//! Schema version 2 added `counters.arrived_at`, `routes.last_seen` and the
//! `evaluator` table; a writer opening a version 1 file adds them (its counters read
//! as arrived at 0: purged by bucket, as before; its routes as last noted in 1970:
//! the evaluator forgets them unless a consumer notes them again, as it does within
//! an hour of seeing one).
//!
//! # Example
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use flyhigh_core::demand::{CounterKey, CounterUpdate, Counts, Position};
//! use flyhigh_core::{Added, DemandStore};
//! use flyhigh_embedded::{DEMAND_FILE, SqliteDemandStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteDemandStore::open(&dir.path().join(DEMAND_FILE))?;
//!
//! let bucket = Utc.with_ymd_and_hms(2026, 12, 1, 9, 36, 0).unwrap().timestamp();
//! let key = CounterKey { route: "LHR-JFK".into(), bucket, shard_id: "shardId-000000000000".into() };
//! let update = CounterUpdate {
//!     key: key.clone(),
//!     counts: Counts { searches: 3, passengers: 5, ..Counts::default() },
//!     first: Position::new("101", None),
//!     last: Position::new("107", None),
//!     arrived: Utc.with_ymd_and_hms(2026, 12, 1, 9, 36, 2).unwrap(),
//! };
//! assert_eq!(store.add(&update).await?, Added::Applied);
//! // The same change delivered again is refused, with the mark to build the rest from.
//! assert_eq!(store.add(&update).await?, Added::Stale { mark: Position::new("107", None) });
//!
//! let counters = store.counters("LHR-JFK", bucket, bucket + 60).await?;
//! assert_eq!(counters, vec![(key, update.counts)]);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use flyhigh_core::demand::{
    CabinAlertState, CounterKey, CounterUpdate, Counts, Position, RouteState,
};
use flyhigh_core::{
    Added, AlertFilter, AlertStore, CabinKey, DemandStore, NotedRoute, ShardWatermark, StoreError,
    StoredAlert,
};
use flyhigh_schemas::Alert;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sqlite::{Context, Stamp, create_or_check, lock, open_read_only, open_wal, stamp};

/// The layout this build reads and writes, stored in SQLite's `user_version`.
///
/// 2: `counters.arrived_at`, the route registry's `last_seen` and the `evaluator`
/// cursor (a writer opening a version 1 file migrates it, see the module docs).
pub const SCHEMA_VERSION: i32 = 2;

/// Tags the file as a demand database (`PRAGMA application_id`, the bytes `FHDM`).
pub const APPLICATION_ID: i32 = 0x4648_444D;

/// How many days of counters to keep, suggested: well beyond what the evaluator
/// reads (the window and the buckets not judged yet, minutes), enough for a month of
/// history with a weekday to compare, and above the stream's retention (24 hours by
/// default, 7 days extended). The last matters: a counter's mark is what makes a
/// replay count nothing twice, so a replay of events older than the purge would
/// count them again, in fresh counters.
pub const COUNTER_RETENTION_DAYS: i64 = 35;

/// Prepared statements kept per connection (every statement text here is fixed).
const STATEMENT_CACHE_CAPACITY: usize = 32;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counters (
    route         TEXT    NOT NULL,
    bucket        INTEGER NOT NULL,
    shard_id      TEXT    NOT NULL,
    searches      INTEGER NOT NULL CHECK (searches >= 0),
    passengers    INTEGER NOT NULL CHECK (passengers >= 0),
    bookings      INTEGER NOT NULL CHECK (bookings >= 0),
    seats         INTEGER NOT NULL CHECK (seats >= 0),
    cancellations INTEGER NOT NULL CHECK (cancellations >= 0),
    late          INTEGER NOT NULL CHECK (late >= 0),
    mark          TEXT    NOT NULL,
    arrived_at    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (route, bucket, shard_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_bucket ON counters (bucket);
CREATE TABLE IF NOT EXISTS routes (
    route     TEXT NOT NULL PRIMARY KEY,
    last_seen TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evaluator (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    cursor TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS watermarks (
    shard_id   TEXT NOT NULL PRIMARY KEY,
    event_time TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    alert_id     TEXT NOT NULL PRIMARY KEY,
    alert        TEXT NOT NULL,
    raised_at    TEXT NOT NULL,
    rule         TEXT NOT NULL,
    published_at TEXT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_raised_at ON alerts (raised_at, alert_id);
CREATE TABLE IF NOT EXISTS outbox (
    alert_id    TEXT NOT NULL PRIMARY KEY,
    claim_until TEXT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS route_states (
    route   TEXT    NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    state   TEXT    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cabin_states (
    flight_id TEXT    NOT NULL,
    cabin     TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    state     TEXT    NOT NULL,
    PRIMARY KEY (flight_id, cabin)
) WITHOUT ROWID;
";

/// A counter's change in one statement: inserted, or added to the stored counter when
/// its mark is below the change's first position (`?12`; marks are
/// [`Position::to_key`] strings, whose byte order is the position order). No row
/// changed means stale.
const ADD_COUNTER: &str = "
INSERT INTO counters
    (route, bucket, shard_id, searches, passengers, bookings, seats, cancellations, late, mark,
     arrived_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (route, bucket, shard_id) DO UPDATE SET
    searches = counters.searches + excluded.searches,
    passengers = counters.passengers + excluded.passengers,
    bookings = counters.bookings + excluded.bookings,
    seats = counters.seats + excluded.seats,
    cancellations = counters.cancellations + excluded.cancellations,
    late = counters.late + excluded.late,
    mark = excluded.mark,
    arrived_at = MAX(counters.arrived_at, excluded.arrived_at)
WHERE counters.mark < ?12";

const SELECT_MARK: &str = "
SELECT mark FROM counters WHERE route = ?1 AND bucket = ?2 AND shard_id = ?3";

const SELECT_COUNTERS: &str = "
SELECT bucket, shard_id, searches, passengers, bookings, seats, cancellations, late
FROM counters WHERE route = ?1 AND bucket >= ?2 AND bucket < ?3
ORDER BY bucket, shard_id";

/// Expiry counts from the later of the bucket and the last arrival.
const PURGE_COUNTERS: &str = "DELETE FROM counters WHERE bucket < ?1 AND arrived_at < ?1";

/// Schema version 1 to 2.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE counters ADD COLUMN arrived_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE routes ADD COLUMN last_seen TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000000000Z';
CREATE TABLE IF NOT EXISTS evaluator (
    id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    cursor TEXT    NOT NULL
);
PRAGMA user_version = 2;";

const SELECT_ARRIVED: &str =
    "SELECT arrived_at FROM counters WHERE route = ?1 AND bucket = ?2 AND shard_id = ?3";

const INSERT_ROUTE: &str = "\
INSERT INTO routes (route, last_seen) VALUES (?1, ?2)
ON CONFLICT (route) DO UPDATE SET last_seen = excluded.last_seen
WHERE excluded.last_seen > routes.last_seen";

const SELECT_ROUTES: &str = "SELECT route, last_seen FROM routes ORDER BY route";

const FORGET_ROUTE: &str = "DELETE FROM routes WHERE route = ?1 AND last_seen = ?2";

const SELECT_CURSOR: &str = "SELECT cursor FROM evaluator WHERE id = 0";

const UPSERT_CURSOR: &str = "\
INSERT INTO evaluator (id, cursor) VALUES (0, ?1)
ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor";

const SELECT_WATERMARK: &str = "SELECT event_time FROM watermarks WHERE shard_id = ?1";

/// Never back: an existing row changes only for a later progress, or when what it
/// holds is later than the writer's clock (no arrival stamped it; see the port).
const ADVANCE_WATERMARK: &str = "
INSERT INTO watermarks (shard_id, event_time, updated_at) VALUES (?1, ?2, ?3)
ON CONFLICT (shard_id) DO UPDATE SET
    event_time = excluded.event_time,
    updated_at = excluded.updated_at
WHERE excluded.event_time > watermarks.event_time
   OR watermarks.event_time > excluded.updated_at";

const SELECT_WATERMARKS: &str =
    "SELECT shard_id, event_time, updated_at FROM watermarks ORDER BY shard_id";

const INSERT_ALERT: &str = "
INSERT INTO alerts (alert_id, alert, raised_at, rule) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (alert_id) DO NOTHING";

const INSERT_OUTBOX: &str = "INSERT INTO outbox (alert_id) VALUES (?1)";

const SELECT_PENDING: &str = "
SELECT a.alert FROM outbox o JOIN alerts a ON a.alert_id = o.alert_id
ORDER BY a.raised_at, a.alert_id LIMIT ?1";

const CLAIM: &str = "
UPDATE outbox SET claim_until = ?3
WHERE alert_id = ?1 AND (claim_until IS NULL OR claim_until < ?2)";

const DELETE_OUTBOX: &str = "DELETE FROM outbox WHERE alert_id = ?1";

/// Only the first mark stamps the time.
const SET_PUBLISHED: &str =
    "UPDATE alerts SET published_at = ?2 WHERE alert_id = ?1 AND published_at IS NULL";

/// [`AlertFilter::select`] in SQL: filter, keep the latest `limit` (`-1`: all), and
/// order them oldest first.
const SELECT_ALERTS: &str = "
SELECT alert, published_at FROM (
    SELECT alert, published_at, raised_at, alert_id FROM alerts
    WHERE (?1 IS NULL OR raised_at >= ?1) AND (?2 IS NULL OR rule = ?2)
    ORDER BY raised_at DESC, alert_id DESC
    LIMIT ?3
) ORDER BY raised_at, alert_id";

const SELECT_ROUTE_STATE: &str = "SELECT version, state FROM route_states WHERE route = ?1";

const UPSERT_ROUTE_STATE: &str = "
INSERT INTO route_states (route, version, state) VALUES (?1, ?2, ?3)
ON CONFLICT (route) DO UPDATE SET version = excluded.version, state = excluded.state";

const SELECT_CABIN_STATE: &str =
    "SELECT version, state FROM cabin_states WHERE flight_id = ?1 AND cabin = ?2";

const UPSERT_CABIN_STATE: &str = "
INSERT INTO cabin_states (flight_id, cabin, version, state) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (flight_id, cabin) DO UPDATE SET version = excluded.version, state = excluded.state";

/// Demand counters, alerts, their outbox and the rules' state in one SQLite database
/// (a file, or memory for tests): both the [`DemandStore`] and the [`AlertStore`].
///
/// Like [`SqliteInventoryStore`](crate::SqliteInventoryStore), every call runs inline
/// on the caller's task under a `std::sync::Mutex` held for one short transaction and
/// never across an `.await` (see there why not `spawn_blocking`). Open one handle per
/// process and share it; several handles on one file are correct too (see
/// [Exactly once](self#exactly-once)), they just wait for each other's lock.
#[derive(Debug)]
pub struct SqliteDemandStore {
    conn: Mutex<Connection>,
    /// Opened with [`open_read_only`](Self::open_read_only): writes are refused.
    read_only: bool,
}

impl SqliteDemandStore {
    /// Opens (or creates) the demand database at `path`, creating its parent
    /// directory and the schema if missing.
    ///
    /// WAL mode with `synchronous=NORMAL`, as for the inventory: a commit survives a
    /// crash of the process; the last ones before a power loss may be lost, and a
    /// replay from the stream restores them (a lost counter change is re-applied, its
    /// mark being lost with it; a lost alert is raised again with the same id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] when the file cannot be opened, is not a demand
    /// database, or was written by a newer schema version; [`StoreError::Transient`]
    /// when another connection holds the database locked past the busy timeout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(open_wal(path)?)
    }

    /// Opens an existing demand database for reading only: no schema change, nothing
    /// written (for the CLI's readers, so a look at the file never changes it under a
    /// running pipeline). Every write returns [`StoreError::Permanent`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] when the file does not exist, cannot be opened, is
    /// not a demand database or holds another schema version than this build's.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = open_read_only(path)?;
        let (version, application_id) = stamp(&conn)?;
        if application_id != APPLICATION_ID || version == 0 {
            return Err(StoreError::Permanent(format!(
                "{}: not a demand database (application_id {application_id:#x}, schema version {version})",
                path.display()
            )));
        }
        if version != SCHEMA_VERSION {
            return Err(StoreError::Permanent(format!(
                "{}: demand database has schema version {version}; this build reads version \
                 {SCHEMA_VERSION} (a writer of this build migrates an older file when it opens it)",
                path.display()
            )));
        }
        Ok(SqliteDemandStore {
            conn: Mutex::new(conn),
            read_only: true,
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
        if stamp(&conn)? == (1, APPLICATION_ID) {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("begin migration")?;
            // Another writer may have migrated it between the look and the lock.
            if stamp(&tx)? == (1, APPLICATION_ID) {
                tx.execute_batch(MIGRATE_1_TO_2)
                    .context("migrate to schema version 2")?;
            }
            tx.commit().context("commit migration")?;
        }
        create_or_check(
            &mut conn,
            &Stamp {
                schema: SCHEMA,
                application_id: APPLICATION_ID,
                version: SCHEMA_VERSION,
                name: "demand database",
                a_name: "a demand database",
                hint: "; is it the inventory database?",
            },
        )?;
        Ok(SqliteDemandStore {
            conn: Mutex::new(conn),
            read_only: false,
        })
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// The connection, for a write: refused up front on a read-only handle, so the
    /// error says why rather than SQLite's "attempt to write a readonly database".
    fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        if self.read_only {
            return Err(StoreError::Permanent(
                "the demand database was opened read-only; writes need SqliteDemandStore::open"
                    .into(),
            ));
        }
        Ok(lock(&self.conn))
    }

    /// Deletes the counters whose bucket *and* last arrival are both before `bucket`
    /// (seconds since the epoch, as in [`CounterKey`]); returns how many. Expiry
    /// counts from arrival: the counter of an event dated 40 days back, written today,
    /// is kept as long as today's. Routes, watermarks, alerts and states are kept. See
    /// [`COUNTER_RETENTION_DAYS`] for how far back to keep: never less than the
    /// stream's retention, or a replay counts the purged events again.
    ///
    /// # Errors
    ///
    /// As for any write.
    pub fn purge_before(&self, bucket: i64) -> Result<usize, StoreError> {
        self.writer()?
            .execute(PURGE_COUNTERS, params![bucket])
            .context("purge counters")
    }

    /// The latest arrival a counter has counted (seconds since the epoch), `None`
    /// when there is no such counter.
    ///
    /// # Errors
    ///
    /// As for any read.
    pub fn arrived_at(&self, key: &CounterKey) -> Result<Option<i64>, StoreError> {
        self.reader()
            .prepare_cached(SELECT_ARRIVED)
            .context("prepare")?
            .query_row(params![key.route, key.bucket, key.shard_id], |row| {
                row.get(0)
            })
            .optional()
            .context("select counter")
    }

    /// Everything every counter holds, summed over routes, buckets and shards, whether
    /// the route is in the registry or not (an unknown route's counters stay when the
    /// evaluator forgets it): what a check against the events produced compares.
    ///
    /// # Errors
    ///
    /// As for any read.
    pub fn total_counts(&self) -> Result<Counts, StoreError> {
        self.reader()
            .query_row(
                "SELECT COALESCE(SUM(searches), 0), COALESCE(SUM(passengers), 0), \
                 COALESCE(SUM(bookings), 0), COALESCE(SUM(seats), 0), \
                 COALESCE(SUM(cancellations), 0), COALESCE(SUM(late), 0) FROM counters",
                [],
                |row| {
                    Ok(Counts {
                        searches: row.get::<_, i64>(0)? as u64,
                        passengers: row.get::<_, i64>(1)? as u64,
                        bookings: row.get::<_, i64>(2)? as u64,
                        seats: row.get::<_, i64>(3)? as u64,
                        cancellations: row.get::<_, i64>(4)? as u64,
                        late: row.get::<_, i64>(5)? as u64,
                    })
                },
            )
            .context("sum counters")
    }

    /// The schema version stored in the file (for `flyhigh` diagnostics).
    ///
    /// # Errors
    ///
    /// As for any read.
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        Ok(stamp(&self.reader())?.0)
    }

    fn add_now(&self, update: &CounterUpdate) -> Result<Added, StoreError> {
        let mut conn = self.writer()?;
        // IMMEDIATE: the write lock is taken before the mark is read, so no other
        // connection can move the mark between the check and the write.
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        let added = add_in(&db, update)?;
        if added == Added::Applied {
            db.commit().context("commit")?;
        }
        // Else dropping `db` rolls back; nothing was written.
        Ok(added)
    }

    /// The counters of one batch in one transaction: one commit (one WAL append)
    /// for the batch instead of one per counter. All or nothing: on an error nothing
    /// is written and every update reports it.
    fn add_all_now(&self, updates: &[CounterUpdate]) -> Vec<Result<Added, StoreError>> {
        let all = || -> Result<Vec<Added>, StoreError> {
            let mut conn = self.writer()?;
            let db = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("begin")?;
            let added = updates
                .iter()
                .map(|u| add_in(&db, u))
                .collect::<Result<Vec<_>, _>>()?;
            db.commit().context("commit")?;
            Ok(added)
        };
        match all() {
            Ok(added) => added.into_iter().map(Ok).collect(),
            Err(e) => updates.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn counters_now(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(CounterKey, Counts)>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(SELECT_COUNTERS).context("prepare")?;
        let mut rows = stmt
            .query(params![route, from, to])
            .context("select counters")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select counters")? {
            let key = CounterKey {
                route: route.to_string(),
                bucket: row.get(0).context("read counter")?,
                shard_id: row.get(1).context("read counter")?,
            };
            out.push((key, counts_from_row(row, 2)?));
        }
        Ok(out)
    }

    fn note_routes_now(&self, routes: &[String], seen_at: DateTime<Utc>) -> Result<(), StoreError> {
        if routes.is_empty() {
            return Ok(());
        }
        let seen_at = time_text(seen_at)?;
        let mut conn = self.writer()?;
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        {
            let mut insert = db.prepare_cached(INSERT_ROUTE).context("prepare")?;
            for route in routes {
                insert
                    .execute(params![route, seen_at])
                    .context("note route")?;
            }
        }
        db.commit().context("commit")
    }

    fn noted_routes_now(&self) -> Result<Vec<NotedRoute>, StoreError> {
        let rows: Vec<(String, String)> = {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(SELECT_ROUTES).context("prepare")?;
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .context("select routes")?
                .collect::<Result<_, _>>()
                .context("read route")?
        };
        rows.into_iter()
            .map(|(route, seen)| {
                Ok(NotedRoute {
                    last_seen: parse_time(&seen, "route last_seen")?,
                    route,
                })
            })
            .collect()
    }

    fn forget_route_now(&self, route: &NotedRoute) -> Result<bool, StoreError> {
        let seen = time_text(route.last_seen)?;
        let conn = self.writer()?;
        let deleted = conn
            .prepare_cached(FORGET_ROUTE)
            .context("prepare")?
            .execute(params![route.route, seen])
            .context("forget route")?;
        Ok(deleted == 1)
    }

    fn evaluator_cursor_now(&self) -> Result<Option<String>, StoreError> {
        let conn = self.reader();
        conn.prepare_cached(SELECT_CURSOR)
            .context("prepare")?
            .query_row([], |row| row.get(0))
            .optional()
            .context("select evaluator cursor")
    }

    fn save_evaluator_cursor_now(&self, route: &str) -> Result<(), StoreError> {
        let conn = self.writer()?;
        conn.prepare_cached(UPSERT_CURSOR)
            .context("prepare")?
            .execute([route])
            .context("save evaluator cursor")?;
        Ok(())
    }

    fn watermark_now(&self, shard_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let conn = self.reader();
        let text: Option<String> = conn
            .prepare_cached(SELECT_WATERMARK)
            .context("prepare")?
            .query_row([shard_id], |row| row.get(0))
            .optional()
            .context("select watermark")?;
        text.map(|t| parse_time(&t, "watermark")).transpose()
    }

    fn advance_watermark_now(
        &self,
        shard_id: &str,
        progress: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (progress, updated_at) = (time_text(progress)?, time_text(updated_at)?);
        self.writer()?
            .prepare_cached(ADVANCE_WATERMARK)
            .context("prepare")?
            .execute(params![shard_id, progress, updated_at])
            .context("advance watermark")?;
        Ok(())
    }

    fn watermarks_now(&self) -> Result<Vec<ShardWatermark>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(SELECT_WATERMARKS).context("prepare")?;
        let mut rows = stmt.query([]).context("select watermarks")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select watermarks")? {
            let progress: String = row.get(1).context("read watermark")?;
            let updated_at: String = row.get(2).context("read watermark")?;
            out.push(ShardWatermark {
                shard_id: row.get(0).context("read watermark")?,
                progress: parse_time(&progress, "watermark")?,
                updated_at: parse_time(&updated_at, "watermark")?,
            });
        }
        Ok(out)
    }

    fn record_now(&self, alert: &Alert) -> Result<bool, StoreError> {
        let mut conn = self.writer()?;
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        if !insert_alert(&db, alert)? {
            return Ok(false);
        }
        db.commit().context("commit")?;
        Ok(true)
    }

    fn pending_now(&self, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(SELECT_PENDING).context("prepare")?;
        let mut rows = stmt.query([sql_limit(limit)]).context("select pending")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select pending")? {
            let json: String = row.get(0).context("read alert")?;
            out.push(parse_json(&json, "alert")?);
        }
        Ok(out)
    }

    fn claim_now(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (now, until) = (time_text(now)?, time_text(until)?);
        let claimed = self
            .writer()?
            .prepare_cached(CLAIM)
            .context("prepare")?
            .execute(params![alert_id, now, until])
            .context("claim alert")?;
        Ok(claimed == 1)
    }

    fn mark_published_now(&self, alert_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let at = time_text(at)?;
        let mut conn = self.writer()?;
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        db.prepare_cached(DELETE_OUTBOX)
            .context("prepare")?
            .execute([alert_id])
            .context("dequeue alert")?;
        db.prepare_cached(SET_PUBLISHED)
            .context("prepare")?
            .execute(params![alert_id, at])
            .context("mark alert published")?;
        db.commit().context("commit")
    }

    fn alerts_now(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        let since = filter.since.map(time_text).transpose()?;
        let rule = filter.rule.map(|r| r.as_str());
        let limit = filter.limit.map_or(-1, sql_limit);
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(SELECT_ALERTS).context("prepare")?;
        let mut rows = stmt
            .query(params![since, rule, limit])
            .context("select alerts")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("select alerts")? {
            let json: String = row.get(0).context("read alert")?;
            let published_at: Option<String> = row.get(1).context("read alert")?;
            out.push(StoredAlert {
                alert: parse_json(&json, "alert")?,
                published_at: published_at
                    .map(|t| parse_time(&t, "published_at"))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    fn route_state_now(&self, route: &str) -> Result<Option<RouteState>, StoreError> {
        let conn = self.reader();
        let row: Option<(i64, String)> = conn
            .prepare_cached(SELECT_ROUTE_STATE)
            .context("prepare")?
            .query_row([route], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .context("select route state")?;
        row.map(|(_, json)| parse_json(&json, "route state"))
            .transpose()
    }

    fn save_route_state_now(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let json = to_json(state, "route state")?;
        let version = version_to_sql(state.version)?;
        let mut conn = self.writer()?;
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        let stored: Option<i64> = db
            .prepare_cached(SELECT_ROUTE_STATE)
            .context("prepare")?
            .query_row([route], |row| row.get(0))
            .optional()
            .context("select route state")?;
        if !follows(stored, state.version) {
            return Ok(false);
        }
        db.prepare_cached(UPSERT_ROUTE_STATE)
            .context("prepare")?
            .execute(params![route, version, json])
            .context("save route state")?;
        for alert in alerts {
            insert_alert(&db, alert)?;
        }
        db.commit().context("commit")?;
        Ok(true)
    }

    fn cabin_states_now(
        &self,
        keys: &[CabinKey],
    ) -> Result<HashMap<CabinKey, CabinAlertState>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(SELECT_CABIN_STATE).context("prepare")?;
        let mut out = HashMap::new();
        for key in keys {
            let row: Option<(i64, String)> = stmt
                .query_row(params![key.flight_id, key.cabin.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .context("select cabin state")?;
            if let Some((_, json)) = row {
                out.insert(key.clone(), parse_json(&json, "cabin state")?);
            }
        }
        Ok(out)
    }

    fn save_cabin_state_now(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let json = to_json(state, "cabin state")?;
        let version = version_to_sql(state.version)?;
        let cabin = key.cabin.as_str();
        let mut conn = self.writer()?;
        let db = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        let stored: Option<i64> = db
            .prepare_cached(SELECT_CABIN_STATE)
            .context("prepare")?
            .query_row(params![key.flight_id, cabin], |row| row.get(0))
            .optional()
            .context("select cabin state")?;
        if !follows(stored, state.version) {
            return Ok(false);
        }
        db.prepare_cached(UPSERT_CABIN_STATE)
            .context("prepare")?
            .execute(params![key.flight_id, cabin, version, json])
            .context("save cabin state")?;
        for alert in alerts {
            insert_alert(&db, alert)?;
        }
        db.commit().context("commit")?;
        Ok(true)
    }
}

/// Inserts an alert and its outbox entry inside `db`'s transaction, unless an alert
/// with its id is there; whether it was inserted.
fn insert_alert(db: &rusqlite::Transaction<'_>, alert: &Alert) -> Result<bool, StoreError> {
    let json = alert.to_json();
    if json.is_empty() {
        return Err(StoreError::Permanent(format!(
            "alert {:?} cannot be serialized",
            alert.alert_id
        )));
    }
    let raised_at = time_text(alert.raised_at)?;
    let inserted = db
        .prepare_cached(INSERT_ALERT)
        .context("prepare")?
        .execute(params![
            alert.alert_id,
            json,
            raised_at,
            alert.rule.as_str()
        ])
        .context("insert alert")?;
    if inserted == 0 {
        return Ok(false);
    }
    db.prepare_cached(INSERT_OUTBOX)
        .context("prepare")?
        .execute([&alert.alert_id])
        .context("queue alert")?;
    Ok(true)
}

/// `add`'s decision and write inside an open transaction: applies the update if the
/// stored mark is below its first position, else writes nothing and returns the mark.
fn add_in(db: &rusqlite::Transaction<'_>, update: &CounterUpdate) -> Result<Added, StoreError> {
    let key = &update.key;
    let [searches, passengers, bookings, seats, cancellations, late] =
        counts_to_sql(&update.counts)?;
    let changed = db
        .prepare_cached(ADD_COUNTER)
        .context("prepare")?
        .execute(params![
            key.route,
            key.bucket,
            key.shard_id,
            searches,
            passengers,
            bookings,
            seats,
            cancellations,
            late,
            update.last.to_key(),
            update.arrived.timestamp(),
            update.first.to_key(),
        ])
        .context("write counter")?;
    if changed > 0 {
        return Ok(Added::Applied);
    }
    let mark: String = db
        .prepare_cached(SELECT_MARK)
        .context("prepare")?
        .query_row(params![key.route, key.bucket, key.shard_id], |row| {
            row.get(0)
        })
        .context("select counter mark")?;
    let mark = Position::from_key(&mark).ok_or_else(|| {
        StoreError::Permanent(format!("counter {key:?} holds an invalid mark {mark:?}"))
    })?;
    Ok(Added::Stale { mark })
}

impl DemandStore for SqliteDemandStore {
    async fn add(&self, update: &CounterUpdate) -> Result<Added, StoreError> {
        self.add_now(update)
    }

    async fn add_all(&self, updates: &[CounterUpdate]) -> Vec<Result<Added, StoreError>> {
        self.add_all_now(updates)
    }

    async fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(CounterKey, Counts)>, StoreError> {
        self.counters_now(route, from, to)
    }

    async fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.note_routes_now(routes, seen_at)
    }

    async fn routes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .noted_routes_now()?
            .into_iter()
            .map(|r| r.route)
            .collect())
    }

    async fn noted_routes(&self) -> Result<Vec<NotedRoute>, StoreError> {
        self.noted_routes_now()
    }

    async fn forget_route(&self, route: &NotedRoute) -> Result<bool, StoreError> {
        self.forget_route_now(route)
    }

    async fn watermark(&self, shard_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.watermark_now(shard_id)
    }

    async fn advance_watermark(
        &self,
        shard_id: &str,
        event_time: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.advance_watermark_now(shard_id, event_time, updated_at)
    }

    async fn watermarks(&self) -> Result<Vec<ShardWatermark>, StoreError> {
        self.watermarks_now()
    }
}

impl AlertStore for SqliteDemandStore {
    async fn record(&self, alert: &Alert) -> Result<bool, StoreError> {
        self.record_now(alert)
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Alert>, StoreError> {
        self.pending_now(limit)
    }

    async fn claim(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.claim_now(alert_id, now, until)
    }

    async fn mark_published(&self, alert_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.mark_published_now(alert_id, at)
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        self.alerts_now(filter)
    }

    async fn route_state(&self, route: &str) -> Result<Option<RouteState>, StoreError> {
        self.route_state_now(route)
    }

    async fn save_route_state(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        self.save_route_state_now(route, state, alerts)
    }

    async fn evaluator_cursor(&self) -> Result<Option<String>, StoreError> {
        self.evaluator_cursor_now()
    }

    async fn save_evaluator_cursor(&self, route: &str) -> Result<(), StoreError> {
        self.save_evaluator_cursor_now(route)
    }

    async fn cabin_states(
        &self,
        keys: &[CabinKey],
    ) -> Result<HashMap<CabinKey, CabinAlertState>, StoreError> {
        self.cabin_states_now(keys)
    }

    async fn save_cabin_state(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        self.save_cabin_state_now(key, state, alerts)
    }
}

/// Whether a state of version `new` may replace the stored one (absent: version 0),
/// as in the memory store: exactly one version later.
fn follows(stored: Option<i64>, new: u64) -> bool {
    let stored = stored.map_or(Some(0), |v| u64::try_from(v).ok());
    stored.and_then(|v| v.checked_add(1)) == Some(new)
}

/// A time as stored (see the [module docs](self#tables)).
fn time_text(t: DateTime<Utc>) -> Result<String, StoreError> {
    if !(0..=9999).contains(&t.year()) {
        return Err(StoreError::Permanent(format!(
            "time {t} is outside the years 0000 to 9999 the store can order"
        )));
    }
    Ok(t.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

fn parse_time(text: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Permanent(format!("stored {what} {text:?} is not a time: {e}")))
}

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Permanent(format!("serializing a {what}: {e}")))
}

fn parse_json<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Permanent(format!("stored {what} does not parse: {e}")))
}

/// SQLite's `LIMIT` takes a signed integer; anything above is "all".
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| {
        StoreError::Permanent(format!("state version {version} exceeds SQLite's integers"))
    })
}

/// The six counts as SQLite integers, in column order.
fn counts_to_sql(c: &Counts) -> Result<[i64; 6], StoreError> {
    let values = [
        c.searches,
        c.passengers,
        c.bookings,
        c.seats,
        c.cancellations,
        c.late,
    ];
    let mut out = [0; 6];
    for (o, v) in out.iter_mut().zip(values) {
        *o = i64::try_from(v)
            .map_err(|_| StoreError::Permanent(format!("count {v} exceeds SQLite's integers")))?;
    }
    Ok(out)
}

/// The six counts from columns `first..first + 6`.
fn counts_from_row(row: &Row<'_>, first: usize) -> Result<Counts, StoreError> {
    let mut values = [0u64; 6];
    for (i, v) in values.iter_mut().enumerate() {
        let n: i64 = row.get(first + i).context("read counter")?;
        *v = u64::try_from(n)
            .map_err(|_| StoreError::Permanent(format!("counter holds a negative count {n}")))?;
    }
    let [searches, passengers, bookings, seats, cancellations, late] = values;
    Ok(Counts {
        searches,
        passengers,
        bookings,
        seats,
        cancellations,
        late,
    })
}

mod alert_log;
#[cfg(test)]
mod tests;

pub use alert_log::AlertLog;
