//! The local deployment: what `infra/` deploys on AWS (a stream, three event source
//! mappings, the evaluator and compaction schedules, the stores), built in one place
//! from a data directory, so that `flyhigh demo` and `flyhigh serve` run the same
//! pipeline. The CLI parses arguments and prints; the wiring is here.
//!
//! - `flyhigh demo` starts a [`Deployment`] over an in-memory stream, drives it with
//!   the simulator for a bounded day, and [`Deployment::finish`]es it.
//! - `flyhigh serve` starts a [`Service`](serve::Service): a deployment over the durable
//!   stream in the data directory, the ingest API (`flyhigh-ingest`) in front of it,
//!   until SIGINT or SIGTERM; a restart goes on from the checkpoints on disk.
//!
//! Layout: [`files`] (the data directory), [`stream`] (the stream either way),
//! [`deployment`] (the processors and schedules), [`processors`] (which of them run),
//! [`status`] (what a running deployment reports: counts, lag, latency), [`serve`]
//! (the service), `live` (the service's dashboard, `flyhigh-dashboard` over the data
//! directory's stores).

pub mod deployment;
pub mod files;
mod live;
pub mod processors;
pub mod serve;
pub mod status;
pub mod stream;

pub use deployment::{Clock, Deployment, DeploymentConfig, EvaluatorSchedule, Horizon, StreamKind};
pub use files::Files;
pub use processors::{Processors, UnknownProcessor};
pub use serve::{ServeConfig, ServeStats, Service};
pub use status::{
    DeploymentStats, Lag, Latencies, ProcessorLag, ProcessorStats, ShardLag, StatusHandle,
};
pub use stream::Stream;

use anyhow::Context;
use chrono::{DateTime, Utc};
use flyhigh_handlers::archive::{CompactionReport, Compactor, DEFAULT_GRACE};

/// Compacts every closed hour of the archive directory `dir` as of `now` (the
/// scheduled compaction, and the demo's once its day is over).
///
/// # Errors
///
/// The directory cannot be read, or an hour failed to compact (the first is named).
pub async fn compact_closed(
    dir: &std::path::Path,
    now: DateTime<Utc>,
) -> anyhow::Result<CompactionReport> {
    let report = Compactor::new(flyhigh_embedded::LocalObjectStore::open(dir)?)
        .with_grace(DEFAULT_GRACE)
        .compact_closed(now)
        .await
        .with_context(|| format!("compacting the archive in {}", dir.display()))?;
    if let Some((partition, error)) = report.failed.first() {
        anyhow::bail!(
            "compacting the archive in {}: {partition}: {error}",
            dir.display()
        );
    }
    Ok(report)
}
