//! `flyhigh serve`: the pipeline as a local service until SIGINT or SIGTERM. Parses
//! arguments and prints; the service is `flyhigh_local::Service`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::Args;
use flyhigh_ingest::ApiKeys;
use flyhigh_local::{ServeConfig, Service};

#[derive(Args)]
pub struct ServeArgs {
    /// Where the ingest API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The data directory: the stream, checkpoints, stores and archive (kept across
    /// restarts).
    #[arg(long, default_value = "out/serve")]
    data: PathBuf,
    /// Shards of the stream (an existing data directory must be opened with the
    /// number it was made with).
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Records per handler invocation (Lambda's batch size).
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Hours the stream keeps records (Kinesis's retention).
    #[arg(long, default_value_t = 24)]
    retention_hours: u64,
    /// API keys, one `KEY SOURCES` a line (sources comma-separated, or *); without it
    /// anyone who reaches the address may send any source.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// A browser origin allowed to post (e.g. https://app.example); repeat it, or `*`.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Seconds between surge-evaluator runs.
    #[arg(long, default_value_t = 15)]
    evaluate_every_seconds: u64,
    /// Seconds after its event time an event may arrive and still count in its
    /// bucket's judgement (later ones are counted, flagged late, and miss it): the
    /// evaluator judges a minute this long after it ends, so a surge is alerted within
    /// allowance + 1 minute + the evaluator's period of its start.
    #[arg(long, default_value_t = 30)]
    late_allowance_seconds: u64,
    /// Seconds between compactions of the archive's closed hours.
    #[arg(long, default_value_t = 300)]
    compact_every_seconds: u64,
    /// The producer's buffer, in MiB: beyond it requests are answered 429. It bounds
    /// how long an event may wait for the disk (8 MiB: about 24,000 events, under a
    /// second at the stream's pace here), and so the ack latency under overload.
    #[arg(long, default_value_t = 8)]
    buffer_mib: usize,
    /// Milliseconds the producer waits to fill an aggregate (adds to each ack).
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Where to write the JSON summary on stop (default: DATA/summary.json).
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.shards > 0, "--shards must be at least 1");
    anyhow::ensure!(
        (1..=10_000).contains(&args.batch_size),
        "--batch-size must be between 1 and 10000"
    );
    anyhow::ensure!(
        args.retention_hours > 0,
        "--retention-hours must be at least 1"
    );
    let api_keys = match &args.api_keys {
        Some(path) => Some(ApiKeys::load(path)?),
        None => None,
    };
    let mut config = ServeConfig::new(&args.data, args.listen, todays_schedule()?);
    config.shards = args.shards;
    config.batch_size = args.batch_size;
    config.retention = Duration::from_secs(args.retention_hours * 3600);
    config.api_keys = api_keys;
    config.cors_origins = args.cors_origins.clone();
    config.evaluate_every = Duration::from_secs(args.evaluate_every_seconds.max(1));
    config.late_allowance =
        chrono::Duration::seconds(i64::try_from(args.late_allowance_seconds).unwrap_or(i64::MAX));
    config.compact_every = Duration::from_secs(args.compact_every_seconds.max(1));
    config.buffer_budget_bytes = args.buffer_mib.max(1) << 20;
    config.linger = Duration::from_millis(args.linger_ms);
    let keys = config.api_keys.as_ref().map(ApiKeys::len);
    let service = Service::start(config).await?;
    let addr = service.local_addr();
    println!(
        "FlyHigh serve: ingest API on http://{addr}/v1/events ({}); data in {}",
        match keys {
            Some(n) => format!("{n} API keys"),
            None => "no API keys: open to anyone who reaches the address".into(),
        },
        args.data.display()
    );
    println!(
        "  dashboard on http://{addr}/ ; also GET /healthz /readyz /openapi.json /v1/stats; Ctrl-C (or SIGTERM) drains and stops"
    );
    wait_for_signal().await?;
    println!("draining: answering requests in flight, writing what is buffered, catching up...");
    let stats = service.stop().await?;
    let path = args
        .summary_json
        .unwrap_or_else(|| args.data.join("summary.json"));
    crate::report::write_json(&path, &stats)?;
    let i = &stats.ingest;
    println!(
        "stopped: {} requests; {} events accepted, {} duplicate, {} rejected, {} to retry; summary in {}",
        i.requests,
        i.accepted,
        i.duplicate,
        i.rejected,
        i.retry,
        path.display()
    );
    Ok(true)
}

/// The simulator's network from today (UTC) on, so that `flyhigh load`'s bookings,
/// dated today, name scheduled flights. Loading it again keeps the seats sold.
fn todays_schedule() -> anyhow::Result<flyhigh_core::Schedule> {
    let today = Utc::now().date_naive();
    let mut config = flyhigh_simulator::SimConfig::new(flyhigh_simulator::DEFAULT_SEED, 1);
    config.start = Utc.from_utc_datetime(&today.and_hms_opt(0, 0, 0).unwrap_or_default());
    Ok(flyhigh_simulator::Simulator::new(config)
        .context("building the schedule")?
        .schedule())
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}
