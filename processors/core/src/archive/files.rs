//! Parquet files of archived events: the one factory of writer properties, writing a
//! file (or a run of files of a target size) from rows, reading one back.

use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use flyhigh_schemas::archive::ArchiveTable;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::ArchiveError;
use super::rows::{ArchivedEvent, from_record_batch, to_record_batch};

/// What the files say wrote them (`created_by` in the footer).
pub const CREATED_BY: &str = concat!("flyhigh-archive version ", env!("CARGO_PKG_VERSION"));

/// The footer key naming the archive table a file belongs to.
pub const TABLE_KEY: &str = "flyhigh.table";

/// Settings of the files the archive writes. The defaults are what the handler and
/// compaction use; tests and benches change them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetOptions {
    /// zstd level: 1. On these files it is faster than zstd's default 3 (its "fast"
    /// strategy) and, measured on 400,000 simulated events, even smaller (39.8 against
    /// 41.8 bytes per event): the columns are short runs that level 3's longer search
    /// does not help.
    pub zstd_level: i32,
    /// Rows per row group at most: ~1 M rows is 40 to 60 MB of encoded events here,
    /// in the range Athena reads well, and bounds the writer's buffer.
    pub max_row_group_rows: usize,
    /// Rows handed to the writer at a time, and the granularity at which a run of
    /// files is cut at the target size.
    pub write_batch_rows: usize,
    /// Bytes per data page before it is cut (the page index prunes by page).
    pub data_page_bytes: usize,
    /// False-positive probability of the bloom filters.
    pub bloom_fpp: f64,
}

impl Default for ParquetOptions {
    fn default() -> ParquetOptions {
        ParquetOptions {
            zstd_level: 1,
            max_row_group_rows: 1024 * 1024,
            write_batch_rows: 8192,
            data_page_bytes: 1024 * 1024,
            bloom_fpp: 0.01,
        }
    }
}

/// The writer properties of a file of `table` that will hold about `rows` rows:
///
/// - zstd, set explicitly (arrow-rs writes UNCOMPRESSED unless told);
/// - statistics per page, which also writes the page index (column and offset
///   indexes), so readers prune pages as well as row groups;
/// - bloom filters on [`ArchiveTable::lookup_columns`], sized for `rows` distinct
///   values per row group (the default, a million, would make a batch file's
///   filters larger than its data);
/// - no dictionary for the columns that are unique per row (ids, sequence numbers):
///   it would be abandoned after its first page anyway;
/// - the rows' order recorded as `sorting_columns` (the prefix of
///   [`ArchiveTable::sort_key`] that byte-wise comparison of values also orders);
/// - `created_by` [`CREATED_BY`], and the table's name under [`TABLE_KEY`] plus
///   `metadata` in the footer's key-value metadata.
pub fn writer_properties(
    table: ArchiveTable,
    options: &ParquetOptions,
    rows: usize,
    metadata: Vec<KeyValue>,
) -> Result<WriterProperties, ArchiveError> {
    let level = ZstdLevel::try_new(options.zstd_level)
        .map_err(|e| ArchiveError::Options(format!("zstd_level {}: {e}", options.zstd_level)))?;
    if options.max_row_group_rows == 0 || options.write_batch_rows == 0 {
        return Err(ArchiveError::Options(
            "row counts must be at least 1".into(),
        ));
    }
    if !(options.bloom_fpp > 0.0 && options.bloom_fpp < 1.0) {
        return Err(ArchiveError::Options(format!(
            "bloom_fpp {} is not within (0, 1)",
            options.bloom_fpp
        )));
    }
    let ndv = rows.clamp(1, options.max_row_group_rows) as u64;
    let mut key_value = vec![KeyValue::new(
        TABLE_KEY.to_string(),
        table.name().to_string(),
    )];
    key_value.extend(metadata);
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(options.max_row_group_rows))
        .set_data_page_size_limit(options.data_page_bytes)
        .set_created_by(CREATED_BY.to_string())
        .set_sorting_columns(Some(sorting_columns(table)))
        .set_key_value_metadata(Some(key_value));
    for name in table.lookup_columns() {
        let path = ColumnPath::from(*name);
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path.clone(), options.bloom_fpp)
            .set_column_bloom_filter_max_ndv(path, ndv);
    }
    for name in unique_columns(table) {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    Ok(builder.build())
}

/// Columns whose values are (nearly) unique per row.
fn unique_columns(table: ArchiveTable) -> &'static [&'static str] {
    match table {
        ArchiveTable::Searches => &["event_id", "session_id", "sequence_number"],
        ArchiveTable::Bookings | ArchiveTable::Cancellations => {
            &["event_id", "booking_id", "customer_id", "sequence_number"]
        }
    }
}

/// The declared sort order: the sort key up to `event_id` (the stream position after
/// it orders numerically, which byte order of its text does not).
fn sorting_columns(table: ArchiveTable) -> Vec<SortingColumn> {
    let columns = table.columns();
    table
        .sort_key()
        .iter()
        .take_while(|name| **name != "shard_id")
        .map(|name| SortingColumn {
            column_idx: columns
                .iter()
                .position(|c| c.name == *name)
                .expect("sort key columns exist") as i32,
            descending: false,
            nulls_first: false,
        })
        .collect()
}

/// Writes `rows` (all of `table`, already in [`row_order`](super::row_order)) as one
/// Parquet file.
pub fn write_file(
    table: ArchiveTable,
    rows: &[&ArchivedEvent],
    options: &ParquetOptions,
    metadata: Vec<KeyValue>,
) -> Result<Vec<u8>, ArchiveError> {
    let props = writer_properties(table, options, rows.len(), metadata)?;
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, table.arrow_schema(), Some(props)).map_err(parquet_error)?;
    for chunk in rows.chunks(options.write_batch_rows) {
        let batch = to_record_batch(table, chunk)?;
        writer.write(&batch).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(out)
}

/// `rows` (all of `table`, in order) as a run of files of at least `target_bytes`
/// each but the last: a file is closed at the first
/// [`ParquetOptions::write_batch_rows`] boundary at which its row groups written
/// reach the target.
/// An iterator, so that a caller holds one file's bytes at a time. Deterministic:
/// the same rows, options and target give the same files.
pub struct FileRun<'a> {
    table: ArchiveTable,
    rest: &'a [&'a ArchivedEvent],
    options: &'a ParquetOptions,
    target_bytes: u64,
    metadata: &'a [KeyValue],
}

impl<'a> FileRun<'a> {
    /// The run of files of `rows`.
    pub fn new(
        table: ArchiveTable,
        rows: &'a [&'a ArchivedEvent],
        options: &'a ParquetOptions,
        target_bytes: u64,
        metadata: &'a [KeyValue],
    ) -> FileRun<'a> {
        FileRun {
            table,
            rest: rows,
            options,
            target_bytes,
            metadata,
        }
    }

    fn next_file(&mut self) -> Result<Vec<u8>, ArchiveError> {
        let props = writer_properties(
            self.table,
            self.options,
            self.rest.len().min(self.options.max_row_group_rows),
            self.metadata.to_vec(),
        )?;
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, self.table.arrow_schema(), Some(props))
            .map_err(parquet_error)?;
        let mut taken = 0;
        // The writer knows the size of what it buffers only before compression, so
        // the run learns the compression ratio from each row group it closes, and
        // closes a file only once the bytes really written reach the target.
        let mut ratio = 1.0f64;
        for chunk in self.rest.chunks(self.options.write_batch_rows) {
            let batch = to_record_batch(self.table, chunk)?;
            writer.write(&batch).map_err(parquet_error)?;
            taken += chunk.len();
            let buffered = writer.in_progress_size();
            let estimate = writer.bytes_written() as f64 + buffered as f64 * ratio;
            if estimate >= self.target_bytes as f64 {
                let written = writer.bytes_written();
                writer.flush().map_err(parquet_error)?;
                if buffered > 0 {
                    ratio = (writer.bytes_written() - written) as f64 / buffered as f64;
                }
                if writer.bytes_written() as u64 >= self.target_bytes {
                    break;
                }
            }
        }
        writer.close().map_err(parquet_error)?;
        self.rest = &self.rest[taken..];
        Ok(out)
    }
}

impl Iterator for FileRun<'_> {
    type Item = Result<Vec<u8>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let file = self.next_file();
        if file.is_err() {
            // One error ends the run.
            self.rest = &[];
        }
        Some(file)
    }
}

/// Reads a Parquet file of `table` back into rows.
pub fn read_file(table: ArchiveTable, bytes: Vec<u8>) -> Result<Vec<ArchivedEvent>, ArchiveError> {
    let mut out = Vec::new();
    for batch in batches(bytes, None)? {
        out.extend(from_record_batch(table, &batch)?);
    }
    Ok(out)
}

/// The `event_id`s of a Parquet file of the archive, reading only that column.
pub fn read_event_ids(bytes: Vec<u8>) -> Result<Vec<uuid::Uuid>, ArchiveError> {
    let mut out = Vec::new();
    for batch in batches(bytes, Some("event_id"))? {
        let column = batch
            .column_by_name("event_id")
            .ok_or(ArchiveError::Column {
                column: "event_id",
                reason: "missing".into(),
            })?;
        let ids = arrow_array::cast::AsArray::as_string_opt::<i32>(column.as_ref()).ok_or(
            ArchiveError::Column {
                column: "event_id",
                reason: "not a string column".into(),
            },
        )?;
        for id in ids.iter().flatten() {
            out.push(uuid::Uuid::try_parse(id).map_err(|_| ArchiveError::Column {
                column: "event_id",
                reason: format!("{id:?} is not a UUID"),
            })?);
        }
    }
    Ok(out)
}

/// The number of rows of a Parquet file, from its footer alone.
pub fn row_count(bytes: Vec<u8>) -> Result<u64, ArchiveError> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).map_err(parquet_error)?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

fn batches(bytes: Vec<u8>, only: Option<&str>) -> Result<Vec<RecordBatch>, ArchiveError> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).map_err(parquet_error)?;
    let builder = match only {
        Some(name) => {
            let schema = Arc::clone(builder.schema());
            let index = schema.index_of(name).map_err(|_| ArchiveError::Column {
                column: "event_id",
                reason: "missing".into(),
            })?;
            let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [index]);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(parquet_error)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ArchiveError::Parquet(e.to_string()))
}

fn parquet_error(e: parquet::errors::ParquetError) -> ArchiveError {
    ArchiveError::Parquet(e.to_string())
}
