//! [`SqliteArchiveCheckpoints`]: each shard's archive checkpoint as one row of a
//! SQLite file (the type's docs tell the table and why a save has exactly one winner).

use std::path::Path;
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use flyhigh_core::StoreError;
use flyhigh_core::archive::ArchiveCheckpoint;
use flyhigh_core::ports::ArchiveCheckpoints;
use flyhigh_core::records::Position;
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::{Context, Stamp, create_or_check, lock, open_wal};

/// The layout this build reads and writes, stored in SQLite's `user_version`.
pub const SCHEMA_VERSION: i32 = 1;

/// Tags the file as an archive checkpoint database (`PRAGMA application_id`, the bytes
/// `FHAC`).
pub const APPLICATION_ID: i32 = 0x4648_4143;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS archive_checkpoints (
    shard_id         TEXT    NOT NULL PRIMARY KEY,
    version          INTEGER NOT NULL CHECK (version >= 1),
    archived_through TEXT    NULL,
    pending          TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
) WITHOUT ROWID;
";

const SELECT: &str =
    "SELECT version, archived_through, pending FROM archive_checkpoints WHERE shard_id = ?1";

/// The first save of a shard: applies only if it has no row.
const INSERT_FIRST: &str = "
INSERT INTO archive_checkpoints (shard_id, version, archived_through, pending, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (shard_id) DO NOTHING";

/// Every later save: applies only on top of the version before it.
const UPDATE_NEXT: &str = "
UPDATE archive_checkpoints
SET version = ?2, archived_through = ?3, pending = ?4, updated_at = ?5
WHERE shard_id = ?1 AND version = ?2 - 1";

/// Each shard's [`ArchiveCheckpoint`] in one SQLite database (a file, or memory for
/// tests): the [`ArchiveCheckpoints`] of the embedded default.
///
/// Like the other SQLite stores of this crate, a call runs inline under a
/// `std::sync::Mutex` held for one statement and never across an `.await` (a load is
/// one primary-key read, a save one write and its `fsync`). Several handles on one
/// file, in one process or several, are correct; they wait for each other's lock up
/// to the busy timeout, then fail with [`StoreError::Transient`].
///
/// # Table
///
/// ```sql
/// archive_checkpoints(
///     shard_id         TEXT PRIMARY KEY,
///     version          INTEGER NOT NULL,  -- ArchiveCheckpoint::version, 1 and up
///     archived_through TEXT,              -- Position::to_key, NULL before the first record
///     pending          TEXT NOT NULL,     -- JSON array of keys
///     updated_at       TEXT NOT NULL      -- RFC 3339, UTC, milliseconds: when it was saved
/// )
/// ```
///
/// `archived_through` is [`Position::to_key`], whose text order is the position
/// order, so `sqlite3` shows (and sorts) checkpoints as they stand in their shards.
/// The schema version is kept in SQLite's `user_version` and the file is tagged with
/// an `application_id`, so another database given by mistake is refused.
///
/// # Exactly one winner
///
/// A save is one statement whose condition is in its `WHERE`: version 1 is an
/// `INSERT ... ON CONFLICT DO NOTHING` (there is no row yet), any later version an
/// `UPDATE ... WHERE version = next - 1`; the rows it changed say whether it won.
/// SQLite takes the write lock at the start of a writing statement in autocommit
/// mode, waiting for it up to the busy timeout, and reads the row after it has the
/// lock, so the check and the write are one step for every connection to the file:
/// two consumers (threads, processes) saving the same version get one `true` and
/// one `false`, and the loser no error.
///
/// # Durability
///
/// Unlike the inventory and demand databases (`synchronous=NORMAL`), this file runs
/// with `synchronous=FULL`: every save is on disk when it returns. A commit names
/// files that are promoted (made visible) right after it; losing it to a power loss
/// would have the shard archive those records again in a batch of another range,
/// under another key, while the promoted file stays: duplicate rows. One `fsync`
/// per save is cheap next to the `fsync`s of the files the batch wrote.
///
/// # Differences from the in-memory store
///
/// - A position reads back normalized, as [`Position::new`] makes it (leading zeros
///   of the sequence number dropped): exact for every position built with
///   [`Position::new`], which is how the core builds them.
/// - A version above `i64::MAX` cannot be stored: saving it is
///   [`StoreError::Permanent`] (the memory store would take it).
#[derive(Debug)]
pub struct SqliteArchiveCheckpoints {
    conn: Mutex<Connection>,
}

impl SqliteArchiveCheckpoints {
    /// Opens (or creates) the checkpoint database at `path`, creating its parent
    /// directory and the schema if missing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Permanent`] when the file cannot be opened, is not an archive
    /// checkpoint database, or was written by a newer schema version;
    /// [`StoreError::Transient`] when another connection holds the database locked
    /// past the busy timeout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(open_wal(path)?).map_err(|e| match e {
            StoreError::Permanent(m) => StoreError::Permanent(format!("{}: {m}", path.display())),
            StoreError::Transient(m) => StoreError::Transient(format!("{}: {m}", path.display())),
            other => other,
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
        conn.pragma_update(None, "synchronous", "FULL")
            .context("synchronous")?;
        create_or_check(
            &mut conn,
            &Stamp {
                schema: SCHEMA,
                application_id: APPLICATION_ID,
                version: SCHEMA_VERSION,
                name: "archive checkpoint database",
                a_name: "an archive checkpoint database",
                hint: "",
            },
        )?;
        Ok(SqliteArchiveCheckpoints {
            conn: Mutex::new(conn),
        })
    }

    fn load_now(&self, shard_id: &str) -> Result<Option<ArchiveCheckpoint>, StoreError> {
        let conn = lock(&self.conn);
        let row: Option<(i64, Option<String>, String)> = conn
            .prepare_cached(SELECT)
            .context("prepare")?
            .query_row([shard_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .context("select checkpoint")?;
        let Some((version, through, pending)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| {
            StoreError::Permanent(format!(
                "archive checkpoint of {shard_id:?} holds an invalid {what}"
            ))
        };
        Ok(Some(ArchiveCheckpoint {
            version: u64::try_from(version).map_err(|_| corrupt("version"))?,
            archived_through: match through {
                None => None,
                Some(key) => Some(Position::from_key(&key).ok_or_else(|| corrupt("position"))?),
            },
            pending: serde_json::from_str(&pending).map_err(|_| corrupt("pending list"))?,
        }))
    }

    fn save_now(&self, shard_id: &str, next: &ArchiveCheckpoint) -> Result<bool, StoreError> {
        // Version 0 never follows anything (a stored checkpoint is 1 or more, none is 0).
        if next.version == 0 {
            return Ok(false);
        }
        let version = i64::try_from(next.version).map_err(|_| {
            StoreError::Permanent(format!(
                "archive checkpoint version {} exceeds SQLite's integers",
                next.version
            ))
        })?;
        let through = next.archived_through.as_ref().map(Position::to_key);
        let pending = serde_json::to_string(&next.pending).map_err(|e| {
            StoreError::Permanent(format!("serializing the pending list of {shard_id:?}: {e}"))
        })?;
        let updated_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let sql = if next.version == 1 {
            INSERT_FIRST
        } else {
            UPDATE_NEXT
        };
        let changed = lock(&self.conn)
            .prepare_cached(sql)
            .context("prepare")?
            .execute(params![shard_id, version, through, pending, updated_at])
            .context("save checkpoint")?;
        Ok(changed == 1)
    }
}

impl ArchiveCheckpoints for SqliteArchiveCheckpoints {
    async fn load(&self, shard_id: &str) -> Result<Option<ArchiveCheckpoint>, StoreError> {
        self.load_now(shard_id)
    }

    async fn save(&self, shard_id: &str, next: &ArchiveCheckpoint) -> Result<bool, StoreError> {
        self.save_now(shard_id, next)
    }
}
