//! `flyhigh dashboard`: the live dashboard (`flyhigh-dashboard`) over stores that no
//! local service runs beside: the DynamoDB tables of an AWS deployment, or the
//! SQLite files a stopped `flyhigh serve` or a demo left in a data directory (read
//! only). Parses arguments and prints; the page and its hub are the library's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use flyhigh_aws::demand::{DynamoAlertStore, DynamoDemandStore};
use flyhigh_aws::dynamodb::DynamoInventoryStore;
use flyhigh_dashboard::{Hub, HubConfig, Source, StoreSource, WindowClock};
use flyhigh_embedded::{SqliteDemandStore, SqliteInventoryStore};

#[derive(Args)]
pub struct DashboardArgs {
    /// A data directory of `flyhigh serve` or `flyhigh demo` (its demand.sqlite and
    /// inventory.sqlite), or a demand.sqlite file; opened read-only.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "table",
        required_unless_present = "table"
    )]
    sqlite: Option<PathBuf>,
    /// The DynamoDB demand table.
    #[arg(long)]
    table: Option<String>,
    /// The DynamoDB alerts table (alerts, and the evaluator's baselines and surge state).
    #[arg(long, requires = "table")]
    alerts_table: Option<String>,
    /// The DynamoDB inventory table (the flight search).
    #[arg(long, requires = "table")]
    inventory_table: Option<String>,
    /// Where the page is served.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
}

pub async fn run(args: DashboardArgs) -> anyhow::Result<bool> {
    match (&args.sqlite, &args.table) {
        (Some(path), _) => {
            let (demand_file, inventory_file) = sqlite_files(path)?;
            let demand = SqliteDemandStore::open_read_only(&demand_file)
                .with_context(|| format!("opening {}", demand_file.display()))?;
            let alerts = SqliteDemandStore::open_read_only(&demand_file)
                .with_context(|| format!("opening {}", demand_file.display()))?;
            let inventory = match &inventory_file {
                Some(f) => Some(
                    SqliteInventoryStore::open_read_only(f)
                        .with_context(|| format!("opening {}", f.display()))?,
                ),
                None => None,
            };
            let label = format!("SQLite files in {}", path.display());
            // A stopped service's or a demo's day: the window ends where its
            // consumers stopped, as `routes top` reads the file.
            let source = StoreSource::new(label, demand, Some(alerts), inventory)
                .with_clock(WindowClock::Pipeline);
            serve(Arc::new(source), args.listen).await
        }
        (None, Some(table)) => {
            let client = aws_sdk_dynamodb::Client::new(&crate::pipeline::aws_config().await);
            let alerts = args
                .alerts_table
                .as_deref()
                .map(|t| DynamoAlertStore::new(client.clone(), t));
            let inventory = args
                .inventory_table
                .as_deref()
                .map(|t| DynamoInventoryStore::new(client.clone(), t));
            let mut label = format!("DynamoDB table {table}");
            for (name, t) in [
                ("alerts", &args.alerts_table),
                ("inventory", &args.inventory_table),
            ] {
                if let Some(t) = t {
                    label.push_str(&format!(", {name} {t}"));
                }
            }
            let source = StoreSource::new(
                label,
                DynamoDemandStore::new(client, table.as_str()),
                alerts,
                inventory,
            );
            serve(Arc::new(source), args.listen).await
        }
        (None, None) => anyhow::bail!("name the stores with --sqlite DIR or --table NAME"),
    }
}

/// The demand file and, when there is one, the inventory file beside it.
fn sqlite_files(path: &Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let (demand, dir) = if path.is_dir() {
        (path.join("demand.sqlite"), path.to_path_buf())
    } else {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (path.to_path_buf(), dir)
    };
    anyhow::ensure!(
        demand.is_file(),
        "{} does not exist: name the data directory of `flyhigh serve` (out/serve) or of `flyhigh demo` (out/demo)",
        demand.display()
    );
    let inventory = dir.join("inventory.sqlite");
    Ok((demand, inventory.is_file().then_some(inventory)))
}

async fn serve<S: Source>(source: Arc<S>, listen: SocketAddr) -> anyhow::Result<bool> {
    // Read once before listening, so a wrong table or missing credentials is an
    // error here rather than a page full of them.
    let first = source.snapshot().await;
    if let Some(e) = first.errors.first() {
        anyhow::bail!(
            "cannot read {}: {e}\n(check the table names, the region and the credentials in the environment)",
            first.source
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (in use? choose another with --listen)")
        })?;
    let addr = listener.local_addr()?;
    let hub = Hub::new(HubConfig::default());
    hub.publish(first);
    hub.spawn_sampler(source.clone());
    let router = flyhigh_dashboard::router(hub.clone(), source);
    println!("FlyHigh dashboard on http://{addr}/ ; Ctrl-C (or SIGTERM) stops");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            if let Err(e) = crate::serve_cmd::wait_for_signal().await {
                tracing::warn!(error = %e, "cannot listen for signals; stopping");
            }
            hub.close();
        })
        .await
        .context("serving the dashboard")?;
    Ok(true)
}
