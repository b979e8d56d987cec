//! What lands in Parquet, pinned: every valid fixture event of the contract
//! (`schemas/fixtures/valid/`) archived, and the file described by the parquet
//! crate's own low-level reader (footer, column chunks, record API, not Arrow): the
//! schema, the properties the writer factory promises, and every row's values.
//!
//! The description is compared with `tests/snapshots/archive_files.snap`; after a
//! deliberate change, regenerate it with `UPDATE_SNAPSHOTS=1 cargo test -p
//! flyhigh-core --features archive --test archive_files` and review the diff.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use flyhigh_core::archive::files::CREATED_BY;
use flyhigh_core::archive::{
    ArchivedEvent, ParquetOptions, read_file, row_order, write_file, writer_properties,
};
use flyhigh_schemas::archive::ArchiveTable;
use flyhigh_schemas::{Envelope, decode};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};

fn fixtures() -> Vec<(String, Envelope)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/fixtures/valid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let event = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, event)
        })
        .collect()
}

fn archived(events: &[(String, Envelope)]) -> Vec<ArchivedEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, (_, e))| ArchivedEvent {
            event: e.clone(),
            shard_id: "shardId-000000000001".into(),
            sequence_number: format!(
                "4959033827149025660855969253836157109592157598913659{:04}",
                i + 1
            ),
            sub_sequence_number: (i % 3) as u32,
            // One record without an arrival time: the column is nullable.
            arrived_at: (i != 0).then(|| {
                Utc.timestamp_millis_opt(1_764_000_000_000 + i as i64)
                    .unwrap()
            }),
        })
        .collect()
}

fn file_of(table: ArchiveTable, rows: &[ArchivedEvent]) -> Vec<u8> {
    let mut refs: Vec<&ArchivedEvent> = rows.iter().filter(|r| r.table() == table).collect();
    refs.sort_by(|a, b| row_order(a, b));
    write_file(table, &refs, &ParquetOptions::default(), Vec::new()).unwrap()
}

/// The file as the parquet crate's own reader sees it.
fn describe(table: ArchiveTable, bytes: Vec<u8>) -> String {
    let reader = SerializedFileReader::new(Bytes::from(bytes)).unwrap();
    let meta = reader.metadata();
    let file = meta.file_metadata();
    let mut out = String::new();
    writeln!(
        out,
        "== {table}: {} rows, {} row group(s)",
        file.num_rows(),
        meta.num_row_groups()
    )
    .unwrap();
    let mut schema = Vec::new();
    parquet::schema::printer::print_schema(&mut schema, file.schema());
    out.push_str(&String::from_utf8(schema).unwrap());
    let kv: Vec<String> = file
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|kv| kv.key != "ARROW:schema")
        .map(|kv| format!("{}={}", kv.key, kv.value.as_deref().unwrap_or("")))
        .collect();
    writeln!(out, "key_value: {}", kv.join(", ")).unwrap();
    let group = meta.row_group(0);
    let sorting: Vec<String> = group
        .sorting_columns()
        .into_iter()
        .flatten()
        .map(|s| {
            file.schema_descr()
                .column(s.column_idx as usize)
                .name()
                .to_string()
        })
        .collect();
    writeln!(out, "sorting_columns: {}", sorting.join(", ")).unwrap();
    for (i, column) in group.columns().iter().enumerate() {
        let has_bloom = column.bloom_filter_offset().is_some();
        // Column index (min/max per page) and offset index, written in the footer.
        let has_index =
            column.column_index_offset().is_some() && column.offset_index_offset().is_some();
        writeln!(
            out,
            "column {i} {}: {:?}, bloom filter {}, page index {}, statistics {}",
            column.column_path(),
            column.compression(),
            if has_bloom { "yes" } else { "no" },
            if has_index { "yes" } else { "no" },
            if column.statistics().is_some() {
                "yes"
            } else {
                "no"
            },
        )
        .unwrap();
    }
    for row in reader.get_row_iter(None).unwrap() {
        writeln!(out, "{}", row.unwrap()).unwrap();
    }
    out
}

#[test]
fn what_lands_in_parquet_for_each_event_type_matches_the_snapshot() {
    let fixtures = fixtures();
    let rows = archived(&fixtures);
    let mut snapshot = String::new();
    for table in ArchiveTable::ALL {
        snapshot.push_str(&describe(table, file_of(table, &rows)));
        snapshot.push('\n');
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/archive_files.snap");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &snapshot).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run with UPDATE_SNAPSHOTS=1 and review it",
            path.display()
        )
    });
    assert!(
        snapshot == expected,
        "what lands in Parquet changed; if on purpose, rerun with UPDATE_SNAPSHOTS=1 and review the diff.\n--- now:\n{snapshot}"
    );
}

#[test]
fn every_fixture_event_reads_back_as_it_was_archived() {
    let fixtures = fixtures();
    let rows = archived(&fixtures);
    for table in ArchiveTable::ALL {
        let mut expected: Vec<ArchivedEvent> = rows
            .iter()
            .filter(|r| r.table() == table)
            .cloned()
            .collect();
        expected.sort_by(row_order);
        assert!(!expected.is_empty(), "fixtures of {table}");
        assert_eq!(
            read_file(table, file_of(table, &rows)).unwrap(),
            expected,
            "{table}"
        );
    }
}

#[test]
fn the_writer_factory_sets_compression_statistics_bloom_filters_and_created_by() {
    let props = writer_properties(
        ArchiveTable::Bookings,
        &ParquetOptions::default(),
        10_000,
        Vec::new(),
    )
    .unwrap();
    let id = parquet::schema::types::ColumnPath::from("event_id");
    let booking = parquet::schema::types::ColumnPath::from("booking_id");
    let cabin = parquet::schema::types::ColumnPath::from("cabin");
    assert!(matches!(props.compression(&cabin), Compression::ZSTD(_)));
    assert_eq!(
        props.statistics_enabled(&cabin),
        parquet::file::properties::EnabledStatistics::Page
    );
    assert!(props.bloom_filter_properties(&id).is_some());
    assert!(props.bloom_filter_properties(&booking).is_some());
    assert!(props.bloom_filter_properties(&cabin).is_none());
    assert!(props.dictionary_enabled(&cabin));
    assert!(
        !props.dictionary_enabled(&id),
        "ids are unique: no dictionary"
    );
    assert_eq!(props.created_by(), CREATED_BY);
    assert!(CREATED_BY.starts_with("flyhigh-archive version "));
    // Bad options are refused, naming the setting.
    let bad = ParquetOptions {
        zstd_level: 99,
        ..ParquetOptions::default()
    };
    let err = writer_properties(ArchiveTable::Searches, &bad, 1, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("zstd_level"), "{err}");
    let bad = ParquetOptions {
        bloom_fpp: 1.5,
        ..ParquetOptions::default()
    };
    assert!(
        writer_properties(ArchiveTable::Searches, &bad, 1, Vec::new())
            .unwrap_err()
            .to_string()
            .contains("bloom_fpp")
    );
}

#[test]
fn a_file_is_the_same_bytes_for_the_same_rows() {
    let rows = archived(&fixtures());
    for table in ArchiveTable::ALL {
        assert_eq!(file_of(table, &rows), file_of(table, &rows), "{table}");
    }
}
