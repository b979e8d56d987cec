//! `flyhigh schedule load`: a schedule file, CSV or JSON, into either store.
//!
//! # CSV
//!
//! A header line, then one flight per line:
//!
//! ```text
//! flight_id,origin,destination,departure,economy,premium_economy,business,first
//! FH0123-20261201,LHR,JFK,2026-12-01T09:30:00Z,180,40,24,8
//! FH0456-20261201,LHR,CDG,2026-12-01T07:05:00Z,150,,12,
//! ```
//!
//! `flight_id`, `origin`, `destination` (IATA codes) and `departure` (RFC 3339, e.g.
//! `2026-12-01T09:30:00Z`) are required; each cabin column is optional, and an empty
//! cell means the aircraft has no such cabin. Columns may come in any order; blank
//! lines and lines starting with `#` are skipped. Fields are plain (no commas inside
//! them); surrounding double quotes are removed. Every error names the line, the
//! column and the reason.
//!
//! # JSON
//!
//! `{"flights": [{"flight_id", "origin", "destination", "departure", "capacity":
//! {"economy": 180, ...}}]}`, as `flyhigh schedule generate` writes it.
//!
//! The format is chosen by the extension (`.csv`, `.json`), else by the content (a
//! file whose first character is `{` is JSON).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use flyhigh_core::listing::is_iata;
use flyhigh_core::{InventoryStore, Schedule, ScheduledFlight};
use flyhigh_schemas::Cabin;

use crate::StoreArgs;
use crate::pipeline;

/// Why a schedule file cannot be loaded. Nothing was loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleFileError {
    /// A CSV line is wrong.
    #[error("line {line}, column `{column}`: {reason}")]
    Csv {
        line: usize,
        column: String,
        reason: String,
    },
    /// The CSV header is wrong.
    #[error("line {line} (header): {reason}")]
    Header { line: usize, reason: String },
    /// The JSON does not parse.
    #[error("line {line}, column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    /// A flight of a JSON schedule is wrong.
    #[error("flight {index} ({flight_id}), field `{field}`: {reason}")]
    Flight {
        index: usize,
        flight_id: String,
        field: String,
        reason: String,
    },
    /// The file has no flight.
    #[error("no flights in the file")]
    Empty,
}

const REQUIRED: [&str; 4] = ["flight_id", "origin", "destination", "departure"];

/// Parses a schedule file's text; `csv` chooses the format (see [`is_csv`]).
pub fn parse(text: &str, csv: bool) -> Result<Schedule, ScheduleFileError> {
    let schedule = if csv {
        parse_csv(text)?
    } else {
        parse_json(text)?
    };
    if schedule.flights.is_empty() {
        return Err(ScheduleFileError::Empty);
    }
    Ok(schedule)
}

/// Whether a file is CSV: by its extension, else by its content.
pub fn is_csv(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => true,
        Some(e) if e.eq_ignore_ascii_case("json") => false,
        _ => !text.trim_start().starts_with('{'),
    }
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(f)
        .trim()
}

pub fn parse_csv(text: &str) -> Result<Schedule, ScheduleFileError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(ScheduleFileError::Empty);
    };
    let columns: Vec<String> = header.split(',').map(|c| unquote(c).to_string()).collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut cabins: Vec<(usize, Cabin)> = Vec::new();
    for (i, name) in columns.iter().enumerate() {
        if index.insert(name.as_str(), i).is_some() {
            return Err(ScheduleFileError::Header {
                line: header_line,
                reason: format!("column `{name}` appears twice"),
            });
        }
        if let Some(cabin) = Cabin::parse(name) {
            cabins.push((i, cabin));
        } else if !REQUIRED.contains(&name.as_str()) {
            return Err(ScheduleFileError::Header {
                line: header_line,
                reason: format!(
                    "unknown column `{name}`; expected {} and cabin columns {}",
                    REQUIRED.join(", "),
                    Cabin::ALL.map(Cabin::as_str).join(", ")
                ),
            });
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|c| !index.contains_key(**c)) {
        return Err(ScheduleFileError::Header {
            line: header_line,
            reason: format!("missing column `{missing}`"),
        });
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut flights = Vec::new();
    for (line, text) in lines {
        let fields: Vec<&str> = text.split(',').map(unquote).collect();
        let err = |column: &str, reason: String| ScheduleFileError::Csv {
            line,
            column: column.into(),
            reason,
        };
        if fields.len() != columns.len() {
            return Err(err(
                columns.last().map_or("", |c| c.as_str()),
                format!(
                    "{} fields, the header has {} columns",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        let get = |c: &str| fields[index[c]];
        let flight_id = get("flight_id");
        if flight_id.is_empty() {
            return Err(err("flight_id", "empty".into()));
        }
        if let Some(first) = seen.insert(flight_id.to_string(), line) {
            return Err(err(
                "flight_id",
                format!("{flight_id} is already on line {first}"),
            ));
        }
        let airport = |c: &str| {
            let code = get(c);
            if is_iata(code) {
                Ok(code.to_string())
            } else {
                Err(err(
                    c,
                    format!("{code:?} is not an IATA airport code (three capital letters)"),
                ))
            }
        };
        let origin = airport("origin")?;
        let destination = airport("destination")?;
        let departure = parse_departure(get("departure")).map_err(|r| err("departure", r))?;
        let mut capacity = BTreeMap::new();
        for &(i, cabin) in &cabins {
            let cell = fields[i];
            if cell.is_empty() {
                continue;
            }
            let seats: u32 = cell.parse().map_err(|_| {
                err(
                    cabin.as_str(),
                    format!("{cell:?} is not a seat count (a whole number, 0 or more)"),
                )
            })?;
            capacity.insert(cabin, seats);
        }
        if capacity.is_empty() {
            return Err(err(
                "economy",
                "no cabin has a capacity; give at least one".into(),
            ));
        }
        flights.push(ScheduledFlight {
            flight_id: flight_id.to_string(),
            origin,
            destination,
            departure,
            capacity,
        });
    }
    Ok(Schedule { flights })
}

fn parse_departure(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-12-01T09:30:00Z ({e})"))
}

pub fn parse_json(text: &str) -> Result<Schedule, ScheduleFileError> {
    let schedule: Schedule = serde_json::from_str(text).map_err(|e| ScheduleFileError::Json {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    for (index, f) in schedule.flights.iter().enumerate() {
        let err = |field: &str, reason: String| ScheduleFileError::Flight {
            index,
            flight_id: f.flight_id.clone(),
            field: field.into(),
            reason,
        };
        if f.flight_id.is_empty() {
            return Err(err("flight_id", "empty".into()));
        }
        for (field, code) in [("origin", &f.origin), ("destination", &f.destination)] {
            if !is_iata(code) {
                return Err(err(field, format!("{code:?} is not an IATA airport code")));
            }
        }
    }
    Ok(schedule)
}

pub async fn load(file: &Path, store: &StoreArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading schedule file {}", file.display()))?;
    let schedule = parse(&text, is_csv(file, &text)).with_context(|| {
        format!(
            "schedule file {} is invalid; nothing loaded",
            file.display()
        )
    })?;
    pipeline::open_store(store)
        .await?
        .load_schedule(&schedule)
        .await
        .with_context(|| format!("loading the schedule into {}", store.describe()))?;
    println!(
        "loaded {} flights from {} into {}",
        schedule.flights.len(),
        file.display(),
        store.describe()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "flight_id,origin,destination,departure,economy,premium_economy,business,first";

    fn csv_err(body: &str) -> String {
        parse_csv(&format!("{HEADER}\n{body}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_csv_schedule_parses_with_optional_cabins() {
        let s = parse_csv(&format!(
            "{HEADER}\n# comment\nFH1-20261201,LHR,JFK,2026-12-01T09:30:00Z,180,40,24,8\n\n\"FH2-20261201\",LHR,CDG,2026-12-01T08:00:00+01:00,150,,12,\n"
        ))
        .unwrap();
        assert_eq!(s.flights.len(), 2);
        assert_eq!(s.flights[0].capacity.len(), 4);
        let f = &s.flights[1];
        assert_eq!(f.flight_id, "FH2-20261201");
        assert_eq!(
            f.capacity,
            BTreeMap::from([(Cabin::Economy, 150), (Cabin::Business, 12)])
        );
        assert_eq!(f.departure.to_rfc3339(), "2026-12-01T07:00:00+00:00");
    }

    #[test]
    fn columns_may_come_in_any_order_and_cabins_may_be_left_out() {
        let s = parse_csv("departure,first,flight_id,destination,origin\n2026-12-01T09:30:00Z,8,FH1-20261201,JFK,LHR\n").unwrap();
        assert_eq!(s.flights[0].capacity, BTreeMap::from([(Cabin::First, 8)]));
        assert_eq!(s.flights[0].origin, "LHR");
    }

    #[test]
    fn csv_errors_name_the_line_the_column_and_the_reason() {
        let ok = "FH1-20261201,LHR,JFK,2026-12-01T09:30:00Z,180,,,";
        let cases = [
            (
                format!("{ok}\nFH2-20261201,LHR,JFK,tomorrow,1,,,"),
                "line 3, column `departure`",
            ),
            (
                format!("{ok}\nFH2-20261201,LH,JFK,2026-12-01T09:30:00Z,1,,,"),
                "line 3, column `origin`",
            ),
            (
                "FH2-20261201,LHR,jfk,2026-12-01T09:30:00Z,1,,,".to_string(),
                "line 2, column `destination`",
            ),
            (
                format!("{ok}\n{ok}"),
                "line 3, column `flight_id`: FH1-20261201 is already on line 2",
            ),
            (
                "FH2-20261201,LHR,JFK,2026-12-01T09:30:00Z,-5,,,".to_string(),
                "line 2, column `economy`: \"-5\" is not a seat count",
            ),
            (
                "FH2-20261201,LHR,JFK,2026-12-01T09:30:00Z,1,,x,".to_string(),
                "line 2, column `business`",
            ),
            (
                "FH2-20261201,LHR,JFK,2026-12-01T09:30:00Z,1,,".to_string(),
                "line 2, column `first`: 7 fields, the header has 8",
            ),
            (
                "FH2-20261201,LHR,JFK,2026-12-01T09:30:00Z,,,,".to_string(),
                "line 2, column `economy`: no cabin",
            ),
            (
                ",LHR,JFK,2026-12-01T09:30:00Z,1,,,".to_string(),
                "line 2, column `flight_id`: empty",
            ),
        ];
        for (body, expected) in cases {
            let got = csv_err(&body);
            assert!(got.starts_with(expected), "{body:?}: {got}");
        }
    }

    #[test]
    fn header_errors_name_the_column() {
        let e = parse_csv("flight_id,origin,destination,departure,steerage\n").unwrap_err();
        assert!(e.to_string().contains("unknown column `steerage`"), "{e}");
        let e = parse_csv("# schedule\nflight_id,origin,departure,economy\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2 (header): missing column `destination`"
        );
        let e = parse_csv("flight_id,origin,destination,departure,economy,economy\n").unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        assert_eq!(parse("", true), Err(ScheduleFileError::Empty));
        assert_eq!(
            parse(&format!("{HEADER}\n"), true),
            Err(ScheduleFileError::Empty)
        );
    }

    #[test]
    fn json_schedules_parse_and_errors_have_positions() {
        let json = r#"{"flights": [{"flight_id": "FH1-20261201", "origin": "LHR", "destination": "JFK",
            "departure": "2026-12-01T09:30:00Z", "capacity": {"economy": 180}}]}"#;
        assert_eq!(
            parse(json, false).unwrap().flights[0].capacity[&Cabin::Economy],
            180
        );
        let bad = json.replace("180", "\"many\"");
        let e = parse(&bad, false).unwrap_err().to_string();
        assert!(e.starts_with("line 2, column"), "{e}");
        let bad = json.replace("\"LHR\"", "\"London\"");
        let e = parse(&bad, false).unwrap_err().to_string();
        assert!(e.contains("flight 0 (FH1-20261201), field `origin`"), "{e}");
    }

    #[test]
    fn the_format_is_chosen_by_extension_then_content() {
        assert!(is_csv(Path::new("s.CSV"), "{"));
        assert!(!is_csv(Path::new("s.json"), "flight_id"));
        assert!(!is_csv(Path::new("schedule"), "  {\"flights\": []}"));
        assert!(is_csv(Path::new("schedule"), "flight_id,origin"));
    }
}
