//! `flyhigh archive compact | ddl | summary`: the archive's operator and analyst
//! commands, on a local archive directory (the demo's `OUT/archive`) or an S3 bucket.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};
use flyhigh_aws::s3::S3ObjectStore;
use flyhigh_core::archive::{DataFile, FileKind, Partition, files::row_count};
use flyhigh_core::ports::ObjectStore;
use flyhigh_embedded::LocalObjectStore;
use flyhigh_handlers::Compactor;
use flyhigh_handlers::archive::{CompactionReport, DEFAULT_TARGET_BYTES};
use flyhigh_schemas::archive::{ArchiveTable, athena_ddl};
use serde::Serialize;

#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// Merge closed hours into files of the target size, one row per event_id.
    Compact(CompactArgs),
    /// Files, rows and bytes per table (and which hours are not compacted yet).
    Summary(SummaryArgs),
    /// Print the Athena DDL of the three tables (partition projection included).
    Ddl(DdlArgs),
}

/// Where the archive is.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct ArchiveStoreArgs {
    /// A local archive directory, e.g. out/demo/archive.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// An S3 bucket (with --prefix).
    #[arg(long)]
    bucket: Option<String>,
}

#[derive(Args)]
pub struct CompactArgs {
    #[command(flatten)]
    store: ArchiveStoreArgs,
    /// The prefix the tables live under in the bucket.
    #[arg(long, default_value = "archive")]
    prefix: String,
    /// SSE-KMS key for the files written to S3 (default: the bucket's encryption).
    #[arg(long)]
    kms_key: Option<String>,
    /// Target size of compacted files, bytes.
    #[arg(long, default_value_t = DEFAULT_TARGET_BYTES)]
    target_bytes: u64,
    /// An hour is closed this long after its end, e.g. 15m.
    #[arg(long, default_value = "15m", value_parser = crate::demand_cmd::parse_duration)]
    grace: Duration,
    /// Compact as of this instant (RFC 3339) instead of now: hours of simulated
    /// traffic close by the simulated clock.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    store: ArchiveStoreArgs,
    /// The prefix the tables live under in the bucket.
    #[arg(long, default_value = "archive")]
    prefix: String,
    /// Target size that counts as a full file.
    #[arg(long, default_value_t = DEFAULT_TARGET_BYTES)]
    target_bytes: u64,
    /// Also count rows in a bucket (reads every file; always done for --dir).
    #[arg(long)]
    rows: bool,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DdlArgs {
    /// The Glue/Athena database.
    #[arg(long, default_value = "flyhigh")]
    database: String,
    /// The archive's root: s3://BUCKET/PREFIX (no trailing slash).
    #[arg(long, default_value = "s3://YOUR-BUCKET/archive")]
    location: String,
}

/// `"archive"` in the demo's summary, and `flyhigh archive summary --json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveSummary {
    /// Data files visible to queries.
    pub files: usize,
    /// Rows in them (0 when not counted: `archive summary --bucket` without `--rows`).
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The same per event type (`search`, `booking`, `cancellation`).
    pub by_event_type: BTreeMap<String, TableSummary>,
    /// Partitions that hold a batch file or more than one file below the target:
    /// not compacted yet (open hours, or late events since the last compaction).
    pub partitions_not_compact: Vec<String>,
}

/// One table's part of an [`ArchiveSummary`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableSummary {
    /// Data files.
    pub files: usize,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Partitions (hours) with data.
    pub partitions: usize,
}

/// Files, bytes and (with `count_rows`, which reads every file) rows of the archive
/// in `store`.
pub async fn summarize(
    store: &impl ObjectStore,
    target_bytes: u64,
    count_rows: bool,
) -> anyhow::Result<ArchiveSummary> {
    let mut summary = ArchiveSummary::default();
    for table in ArchiveTable::ALL {
        summary.by_event_type.insert(
            table.event_type().as_str().to_string(),
            TableSummary::default(),
        );
    }
    let mut per_partition: BTreeMap<Partition, (usize, usize)> = BTreeMap::new();
    for object in store.list("event_type=").await? {
        let Some(file) = DataFile::parse(&object.key) else {
            continue;
        };
        let rows = if count_rows {
            let bytes = store
                .get(&object.key)
                .await?
                .with_context(|| format!("{} was listed but is gone", object.key))?;
            row_count(bytes).with_context(|| format!("reading {}", object.key))?
        } else {
            0
        };
        let entry = summary
            .by_event_type
            .entry(file.partition.table.event_type().as_str().to_string())
            .or_default();
        entry.files += 1;
        entry.rows += rows;
        entry.bytes += object.size;
        summary.files += 1;
        summary.rows += rows;
        summary.bytes += object.size;
        let (batch_files, small) = per_partition.entry(file.partition).or_default();
        if file.kind == FileKind::Batch {
            *batch_files += 1;
        } else if object.size < target_bytes {
            *small += 1;
        }
    }
    for (partition, (batch_files, small)) in &per_partition {
        if let Some(t) = summary
            .by_event_type
            .get_mut(partition.table.event_type().as_str())
        {
            t.partitions += 1;
        }
        if *batch_files > 0 || *small > 1 {
            summary.partitions_not_compact.push(partition.path());
        }
    }
    Ok(summary)
}

enum Store {
    Local(LocalObjectStore),
    S3(S3ObjectStore),
}

async fn open(
    store: &ArchiveStoreArgs,
    prefix: &str,
    kms_key: Option<String>,
) -> anyhow::Result<Store> {
    match (&store.dir, &store.bucket) {
        (Some(dir), _) => {
            anyhow::ensure!(
                dir.is_dir(),
                "{} is not a directory (the demo writes its archive to OUT/archive)",
                dir.display()
            );
            Ok(Store::Local(LocalObjectStore::open(dir)?))
        }
        (None, Some(bucket)) => {
            let client = aws_sdk_s3::Client::new(&crate::pipeline::aws_config().await);
            Ok(Store::S3(
                S3ObjectStore::new(client, bucket.clone(), prefix).with_kms_key(kms_key),
            ))
        }
        (None, None) => anyhow::bail!("name the archive: --dir DIR or --bucket BUCKET"),
    }
}

pub async fn run(command: ArchiveCommand) -> anyhow::Result<bool> {
    match command {
        ArchiveCommand::Ddl(args) => {
            for table in ArchiveTable::ALL {
                println!("{}", athena_ddl(table, &args.database, &args.location));
            }
            Ok(true)
        }
        ArchiveCommand::Summary(args) => {
            let summary = match open(&args.store, &args.prefix, None).await? {
                Store::Local(s) => summarize(&s, args.target_bytes, true).await?,
                Store::S3(s) => summarize(&s, args.target_bytes, args.rows).await?,
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_summary(&summary);
            }
            Ok(true)
        }
        ArchiveCommand::Compact(args) => {
            let now = args.now.unwrap_or_else(Utc::now);
            let report = match open(&args.store, &args.prefix, args.kms_key.clone()).await? {
                Store::Local(s) => compact(s, &args, now).await?,
                Store::S3(s) => compact(s, &args, now).await?,
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            for (partition, error) in &report.failed {
                eprintln!("error: {partition} not compacted: {error}");
            }
            if !report.failed.is_empty() {
                eprintln!(
                    "hint: every row there is still readable; fix the cause and run it again"
                );
            }
            Ok(report.failed.is_empty())
        }
    }
}

async fn compact(
    store: impl ObjectStore,
    args: &CompactArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<CompactionReport> {
    Compactor::new(store)
        .with_target_bytes(args.target_bytes)
        .with_grace(args.grace)
        .compact_closed(now)
        .await
        .context("compaction stopped (every row is still readable; run it again to finish)")
}

pub fn print_report(report: &CompactionReport) {
    let merged: usize = report.compacted.iter().map(|p| p.files_merged).sum();
    let written: usize = report.compacted.iter().map(|p| p.files_written).sum();
    let rows: u64 = report.compacted.iter().map(|p| p.rows_written).sum();
    println!(
        "{} partitions ({} closed): {} compacted, {merged} files merged into {written}, {rows} rows, {} duplicates dropped",
        report.partitions,
        report.closed,
        report.compacted.len(),
        report.duplicates_dropped()
    );
}

fn print_summary(s: &ArchiveSummary) {
    println!("{} files, {} rows, {} bytes", s.files, s.rows, s.bytes);
    for (event_type, t) in &s.by_event_type {
        println!(
            "  {event_type:<13} {:>6} files {:>10} rows {:>12} bytes in {} hours",
            t.files, t.rows, t.bytes, t.partitions
        );
    }
    if !s.partitions_not_compact.is_empty() {
        println!(
            "  not compacted yet: {}",
            s.partitions_not_compact.join(", ")
        );
    }
}
