//! Where archive objects go: the location generator. Every key is a pure function of
//! what the object holds, so a retry writes the same key again.
//!
//! ```text
//! event_type=booking/dt=2026-12-01/hour=09/b_1a2b3c4d-shardId-000000000001_4965...-0_4965...-3.parquet
//! event_type=booking/dt=2026-12-01/hour=09/c_5f0e9a1b2c3d4e5f_0000.parquet
//! _staging/event_type=booking/dt=2026-12-01/hour=09/b_....parquet
//! ```
//!
//! - A **batch file** (`b_`) holds one batch's events of one partition, named by the
//!   shard (after a short hash of its stream, [`source_name`]) and the first and last
//!   stream positions of the records it covers.
//! - A **compacted file** (`c_`) is one of the files compaction made of a partition,
//!   named by the generation (a hash of the files it replaced) and its index.
//! - A **staged** copy waits under [`STAGING`], outside every table's location, until
//!   the shard's archive checkpoint commits it; Athena and the DuckDB views never see
//!   it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use flyhigh_schemas::archive::ArchiveTable;
use flyhigh_schemas::{Envelope, EventType};

use crate::records::Position;

/// The prefix of staged objects.
pub const STAGING: &str = "_staging/";
/// The extension of every data file.
pub const EXTENSION: &str = ".parquet";

/// One Hive partition: a table, a day and an hour of event time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The table.
    pub table: ArchiveTable,
    /// The day of `occurred_at`.
    pub date: NaiveDate,
    /// The hour of `occurred_at`, 0 to 23.
    pub hour: u32,
}

impl Partition {
    /// The partition of an event.
    pub fn of(event: &Envelope) -> Partition {
        Partition::at(ArchiveTable::of(event.event_type()), event.occurred_at)
    }

    /// The partition of `table` holding instant `t`.
    pub fn at(table: ArchiveTable, t: DateTime<Utc>) -> Partition {
        Partition {
            table,
            date: t.date_naive(),
            hour: t.hour(),
        }
    }

    /// `event_type=booking/dt=2026-12-01/hour=09` (no trailing slash).
    pub fn path(&self) -> String {
        format!(
            "{}/dt={:04}-{:02}-{:02}/hour={:02}",
            self.table.directory(),
            self.date.year(),
            self.date.month(),
            self.date.day(),
            self.hour
        )
    }

    /// The first instant of the hour.
    pub fn start(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &self
                .date
                .and_hms_opt(self.hour, 0, 0)
                .expect("hour is 0 to 23"),
        )
    }

    /// The first instant after the hour.
    pub fn end(&self) -> DateTime<Utc> {
        self.start() + Duration::hours(1)
    }

    /// Parses the partition a key is in (`event_type=.../dt=.../hour=.../anything`).
    pub fn of_key(key: &str) -> Option<Partition> {
        let mut parts = key.split('/');
        let event_type = parts.next()?.strip_prefix("event_type=")?;
        let table = EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == event_type)
            .map(ArchiveTable::of)?;
        let date =
            NaiveDate::parse_from_str(parts.next()?.strip_prefix("dt=")?, "%Y-%m-%d").ok()?;
        let hour_text = parts.next()?.strip_prefix("hour=")?;
        if hour_text.len() != 2 {
            return None;
        }
        let hour: u32 = hour_text.parse().ok().filter(|h| *h < 24)?;
        Some(Partition { table, date, hour })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// What a data file is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Written by the archive handler for one batch.
    Batch,
    /// Written by compaction.
    Compacted,
}

/// A data file of a partition, parsed from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Its partition.
    pub partition: Partition,
    /// Who wrote it.
    pub kind: FileKind,
}

impl DataFile {
    /// Parses a key; `None` for anything that is not a data file of a partition
    /// (staged copies included).
    pub fn parse(key: &str) -> Option<DataFile> {
        let partition = Partition::of_key(key)?;
        let name = key.rsplit('/').next()?.strip_suffix(EXTENSION)?;
        let kind = if name.starts_with("b_") {
            FileKind::Batch
        } else if name.starts_with("c_") {
            FileKind::Compacted
        } else {
            return None;
        };
        (key.matches('/').count() == 3).then_some(DataFile { partition, kind })
    }
}

/// A position as it appears in a file name: `SEQUENCE-SUB`.
pub(crate) fn position_text(p: &Position) -> String {
    format!("{}-{}", p.sequence, p.sub)
}

/// The key of a batch file: the events of `partition` among the records of
/// `source` (a shard, see [`source_name`]) from `first` to `last` (both included).
pub fn batch_file_key(
    partition: &Partition,
    source: &str,
    first: &Position,
    last: &Position,
) -> String {
    format!(
        "{}/b_{}_{}_{}{EXTENSION}",
        partition.path(),
        sanitize(source),
        position_text(first),
        position_text(last)
    )
}

/// The key of compacted file `index` of generation `generation` of `partition`.
pub fn compacted_file_key(partition: &Partition, generation: &str, index: usize) -> String {
    format!("{}/c_{generation}_{index:04}{EXTENSION}", partition.path())
}

/// Where `key` is staged before it is committed.
pub fn staged_key(key: &str) -> String {
    format!("{STAGING}{key}")
}

/// What names a shard's batch files: its id, after a short hash of its stream's ARN
/// when there is one (`1a2b3c4d-shardId-000000000001`), since two streams' shards have
/// the same ids and may reach the same positions.
pub fn source_name(stream: &str, shard_id: &str) -> String {
    if stream.is_empty() {
        return shard_id.to_string();
    }
    use md5::{Digest, Md5};
    let digest = Md5::digest(stream.as_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{tag}-{shard_id}")
}

/// A shard id as a file-name part: only `[A-Za-z0-9-]` kept (Kinesis shard ids are
/// `shardId-` and digits already), anything else as `-`.
fn sanitize(shard_id: &str) -> String {
    shard_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking_hour() -> Partition {
        Partition {
            table: ArchiveTable::Bookings,
            date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            hour: 9,
        }
    }

    #[test]
    fn partition_paths_are_hive_style_and_parse_back() {
        let p = booking_hour();
        assert_eq!(p.path(), "event_type=booking/dt=2026-12-01/hour=09");
        assert_eq!(
            Partition::of_key(&format!("{}/x.parquet", p.path())),
            Some(p)
        );
        assert_eq!(p.end() - p.start(), Duration::hours(1));
        assert_eq!(
            Partition::of_key("event_type=booking/dt=2026-12-01/hour=9/x"),
            None
        );
        assert_eq!(
            Partition::of_key("event_type=refund/dt=2026-12-01/hour=09/x"),
            None
        );
    }

    #[test]
    fn two_streams_shards_name_their_files_apart() {
        let a = source_name(
            "arn:aws:kinesis:eu-west-1:1:stream/a",
            "shardId-000000000000",
        );
        let b = source_name(
            "arn:aws:kinesis:eu-west-1:1:stream/b",
            "shardId-000000000000",
        );
        assert_ne!(a, b);
        assert!(
            a.ends_with("-shardId-000000000000") && a.len() == 9 + 20,
            "{a}"
        );
        assert_eq!(
            source_name("", "shardId-000000000000"),
            "shardId-000000000000"
        );
    }

    #[test]
    fn batch_keys_name_the_shard_and_the_range() {
        let key = batch_file_key(
            &booking_hour(),
            "shardId-000000000001",
            &Position::new("49650", Some(0)),
            &Position::new("49700", Some(3)),
        );
        assert_eq!(
            key,
            "event_type=booking/dt=2026-12-01/hour=09/b_shardId-000000000001_49650-0_49700-3.parquet"
        );
        assert_eq!(DataFile::parse(&key).unwrap().kind, FileKind::Batch);
        assert_eq!(DataFile::parse(&staged_key(&key)), None);
        let compacted = compacted_file_key(&booking_hour(), "abc", 2);
        assert!(compacted.ends_with("/c_abc_0002.parquet"));
        assert_eq!(
            DataFile::parse(&compacted).unwrap().kind,
            FileKind::Compacted
        );
        assert_eq!(
            DataFile::parse("event_type=booking/dt=2026-12-01/hour=09/_x.parquet"),
            None
        );
    }
}
