//! What `soak` and `partial` share: the events sent, the process's memory, and
//! accounting for where every accepted record ended up.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flyhigh_producer::DeadLetter;
use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
use flyhigh_testkit::unique_name;

/// What the command takes, printed on a wrong argument.
pub(crate) const USAGE: &str = "usage: producer-load units [--events N] [--shards S] \
    | soak [--seconds S] [--budget-mib M] [--ttl-secs T] \
    | partial [--seconds S] [--rate R] [--events-per-sec N] [--budget-mib M] [--baseline-seconds B] \
      [--mode random|allowance] [--allowed-share A] [--drain-seconds D]";

/// Shards of the `soak` and `partial` streams.
pub(crate) const SHARDS: i32 = 4;
/// Sending tasks of `soak` and `partial`, as a web backend's request handlers.
pub(crate) const SENDERS: u64 = 4;
/// A `send` that took longer than this was held by the spent budget: an unheld send
/// of a ~330-byte event costs tens of microseconds, even in a debug build.
pub(crate) const HELD_AFTER: Duration = Duration::from_millis(1);
pub(crate) const MIB: usize = 1024 * 1024;

/// Peak and current resident set size of this process, in bytes.
pub(crate) fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

pub(crate) fn booking(n: u64) -> Envelope {
    Envelope::new(
        "soak-app",
        "2026-11-22T10:15:00.250Z".parse().expect("timestamp"),
        Payload::Booking(Booking {
            booking_id: format!("BK{n:09}"),
            customer_id: format!("c-{:06x}", n % 100_000),
            flight_id: format!("FH{:04}-20261201", n % 500),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats: 1,
            fare: Money::new("412.80".parse().expect("decimal"), "GBP"),
        }),
    )
}

/// The booking number `n` of [`booking`]`(n)` carried in a record's data, if the data
/// is such a booking.
pub(crate) fn booking_number(data: &[u8]) -> Option<u64> {
    match flyhigh_schemas::decode(data).ok()?.payload {
        Payload::Booking(b) => b.booking_id.strip_prefix("BK")?.parse().ok(),
        _ => None,
    }
}

/// A temporary directory of its own for one run's dead-letter file.
pub(crate) fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `a / b`, or `None` (JSON `null`) when there is nothing to divide by.
pub(crate) fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Sends that waited for the budget ([`HELD_AFTER`]), and how long they waited.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) sends: u64,
    pub(crate) seconds: f64,
}

impl Held {
    pub(crate) fn record(&mut self, took: Duration) {
        if took > HELD_AFTER {
            self.sends += 1;
            self.seconds += took.as_secs_f64();
        }
    }

    pub(crate) fn merge(&mut self, other: Held) {
        self.sends += other.sends;
        self.seconds += other.seconds;
    }
}

/// A set of small numbers, one bit each: the soak tracks every accepted record
/// without adding to the RSS it measures.
#[derive(Debug, Default)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub(crate) fn insert(&mut self, i: u64) {
        let word = (i / 64) as usize;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (i % 64);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w as u64 * 64 + b)
        })
    }
}

/// What the dead-letter file holds.
#[derive(Debug, Default)]
pub(crate) struct DeadLetterFile {
    pub(crate) lines: u64,
    pub(crate) by_reason: BTreeMap<String, u64>,
    /// Booking numbers, one per line that carried a booking.
    pub(crate) bookings: Vec<u64>,
    /// Lines that are not JSON or whose data is not one of our bookings.
    pub(crate) unreadable: u64,
}

/// Reads a [`FileDeadLetters`] file (absent: nothing was dead-lettered) with the
/// producer's own reader of its lines ([`DeadLetter::from_json_line`]).
pub(crate) fn read_dead_letters(path: &Path) -> DeadLetterFile {
    let mut out = DeadLetterFile::default();
    let Ok(file) = std::fs::File::open(path) else {
        return out;
    };
    for line in std::io::BufReader::new(file).lines() {
        let line = line.expect("read the dead-letter file");
        out.lines += 1;
        let Ok(letter) = DeadLetter::from_json_line(&line) else {
            out.unreadable += 1;
            continue;
        };
        *out.by_reason
            .entry(letter.reason.as_str().to_owned())
            .or_default() += 1;
        match booking_number(&letter.data) {
            Some(n) => out.bookings.push(n),
            None => out.unreadable += 1,
        }
    }
    out
}

/// Where the accepted records ended up.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Accounting {
    /// Accepted, and neither read from the stream nor in the dead-letter file.
    pub(crate) lost: u64,
    /// Reads of a booking beyond its first (a retry of a request that was written).
    pub(crate) duplicates_read: u64,
    /// Dead letters of a booking beyond its first.
    pub(crate) duplicates_dead_lettered: u64,
    /// Read from the stream and in the dead-letter file too.
    pub(crate) written_and_dead_lettered: u64,
    /// Read or dead-lettered, but never accepted.
    pub(crate) foreign: u64,
}

/// Matches the accepted booking numbers against those read from the stream and
/// those in the dead-letter file.
pub(crate) fn account(accepted: &[u64], read: &[u64], dead: &[u64]) -> Accounting {
    let accepted: HashSet<u64> = accepted.iter().copied().collect();
    let read_set: HashSet<u64> = read.iter().copied().collect();
    let dead_set: HashSet<u64> = dead.iter().copied().collect();
    let lost = accepted
        .iter()
        .filter(|n| !read_set.contains(n) && !dead_set.contains(n))
        .count();
    let both = read_set.intersection(&dead_set).count();
    let foreign = read_set
        .union(&dead_set)
        .filter(|n| !accepted.contains(n))
        .count();
    Accounting {
        lost: lost as u64,
        duplicates_read: (read.len() - read_set.len()) as u64,
        duplicates_dead_lettered: (dead.len() - dead_set.len()) as u64,
        written_and_dead_lettered: both as u64,
        foreign: foreign as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bits_list_what_was_inserted_in_order() {
        let mut bits = Bits::default();
        for i in [130, 0, 63, 64, 130] {
            bits.insert(i);
        }
        assert_eq!(bits.iter().collect::<Vec<_>>(), [0, 63, 64, 130]);
    }

    #[test]
    fn an_accepted_record_in_neither_place_is_lost() {
        let got = account(&[1, 2, 3, 4], &[1, 1, 5], &[2, 4, 4]);
        assert_eq!(
            got,
            Accounting {
                lost: 1,
                duplicates_read: 1,
                duplicates_dead_lettered: 1,
                written_and_dead_lettered: 0,
                foreign: 1,
            }
        );
    }

    #[test]
    fn a_booking_number_comes_back_from_its_json() {
        assert_eq!(booking_number(&booking(42).to_json()), Some(42));
        assert_eq!(booking_number(b"{}"), None);
    }

    #[test]
    fn the_dead_letter_file_is_read_as_the_producer_writes_it() {
        let dir = scratch_dir("flyhigh-load-letters");
        let path = dir.join("dead.jsonl");
        let at = "2026-11-22T10:15:00.250Z".parse().unwrap();
        let letter = DeadLetter {
            partition_key: "FH0001-20261201".into(),
            data: booking(42).to_json(),
            reason: flyhigh_producer::DeadLetterReason::Expired,
            error: "ttl".into(),
            attempts: 2,
            accepted_at: at,
            dead_lettered_at: at,
        };
        std::fs::write(&path, format!("{}\nnot json\n", letter.to_json_line())).unwrap();
        let file = read_dead_letters(&path);
        assert_eq!(file.lines, 2);
        assert_eq!(file.bookings, vec![42]);
        assert_eq!(file.unreadable, 1);
        assert_eq!(file.by_reason.get("expired"), Some(&1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
