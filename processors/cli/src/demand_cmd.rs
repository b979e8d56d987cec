//! `flyhigh routes top` and `flyhigh alerts list`: the hot-route processor's
//! real-time view, from either store (the demo's `demand.sqlite`, or the DynamoDB
//! demand and alerts tables).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use flyhigh_aws::demand::{DynamoAlertStore, DynamoDemandStore};
use flyhigh_core::{AlertFilter, AlertStore, DemandStore, StoredAlert};
use flyhigh_embedded::SqliteDemandStore;
use flyhigh_schemas::AlertRule;

use crate::table::Table;

#[derive(Subcommand)]
pub enum RoutesCommand {
    /// The routes with the highest demand against their baseline right now.
    Top(TopArgs),
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Alerts raised, latest last.
    List(ListArgs),
}

/// Where the hot-route processor's state lives.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct DemandStoreArgs {
    /// The demo's SQLite file (counters and alerts), e.g. out/demo/demand.sqlite.
    #[arg(long)]
    sqlite: Option<PathBuf>,
    /// The DynamoDB demand table (with --alerts-table for alerts and baselines).
    #[arg(long)]
    table: Option<String>,
}

#[derive(Args)]
pub struct TopArgs {
    #[command(flatten)]
    store: DemandStoreArgs,
    /// The DynamoDB alerts table, for the evaluator's baselines and surge state.
    #[arg(long)]
    alerts_table: Option<String>,
    /// Length of the window, e.g. 15m, 1h, 90s.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    window: Duration,
    /// End of the window (RFC 3339); default: now. Now is the wall clock for
    /// DynamoDB, and for a local SQLite file the pipeline's clock (the latest time
    /// its consumers stamped their progress with, never later than the wall clock:
    /// the demo's simulated day), never an event time, which a client's clock can
    /// put anywhere. A window in the past is judged against the two hours before
    /// it, and shows no surge state (`-`).
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// Routes to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// The demo's SQLite file, e.g. out/demo/demand.sqlite.
    #[arg(long, conflicts_with = "table")]
    sqlite: Option<PathBuf>,
    /// The DynamoDB alerts table.
    #[arg(long)]
    table: Option<String>,
    /// Only alerts raised at or after this time (RFC 3339), or this long ago (24h).
    #[arg(long, value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// Only this rule: route_surge, near_sold_out, sold_out or oversold.
    #[arg(long, value_parser = parse_rule)]
    rule: Option<AlertRule>,
    /// At most this many, the latest.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print JSON (one array of stored alerts) instead of a table.
    #[arg(long)]
    json: bool,
}

use flyhigh_handlers::demand::top::RouteRow;

enum Stores {
    Sqlite(SqliteDemandStore),
    Dynamo(DynamoDemandStore, Option<DynamoAlertStore>),
}

async fn open(store: &DemandStoreArgs, alerts_table: Option<&str>) -> anyhow::Result<Stores> {
    match (&store.sqlite, &store.table) {
        (Some(path), _) => {
            anyhow::ensure!(
                path.exists(),
                "SQLite file {} does not exist (the demo writes out/demo/demand.sqlite)",
                path.display()
            );
            Ok(Stores::Sqlite(
                SqliteDemandStore::open_read_only(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ))
        }
        (None, Some(table)) => {
            let client = aws_sdk_dynamodb::Client::new(&crate::pipeline::aws_config().await);
            let alerts = alerts_table.map(|t| DynamoAlertStore::new(client.clone(), t));
            Ok(Stores::Dynamo(
                DynamoDemandStore::new(client, table),
                alerts,
            ))
        }
        (None, None) => anyhow::bail!("name a store with --sqlite FILE or --table NAME"),
    }
}

pub async fn routes(command: RoutesCommand) -> anyhow::Result<bool> {
    let RoutesCommand::Top(args) = command;
    let rows = match open(&args.store, args.alerts_table.as_deref()).await? {
        Stores::Sqlite(s) => {
            let now = pipeline_clock(&s, Utc::now()).await?;
            top(&s, Some(&s), &args, now).await?
        }
        Stores::Dynamo(d, a) => top(&d, a.as_ref(), &args, Utc::now()).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(true);
    }
    let Some(first) = rows.first() else {
        println!("no demand counted yet");
        return Ok(true);
    };
    println!(
        "demand from {} to {} (searches + bookings), against each route's baseline",
        first
            .window_start
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        first.window_end.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let mut table = Table::new(&[
        "route",
        ">searches",
        ">passengers",
        ">bookings",
        ">seats",
        ">cancels",
        ">demand",
        ">baseline",
        ">ratio",
        ">late",
        "surging",
    ]);
    for r in &rows {
        table.row(vec![
            r.route.clone(),
            r.counts.searches.to_string(),
            r.counts.passengers.to_string(),
            r.counts.bookings.to_string(),
            r.counts.seats.to_string(),
            r.counts.cancellations.to_string(),
            r.demand.to_string(),
            format!("{:.1}", r.baseline),
            format!("{:.1}x", r.ratio),
            r.counts.late.to_string(),
            match r.surging {
                Some(true) => "SURGE".into(),
                Some(false) => String::new(),
                None => "-".into(),
            },
        ]);
    }
    print!("{}", table.render());
    Ok(true)
}

/// The local pipeline's clock ([`flyhigh_handlers::demand::top::pipeline_clock`]).
async fn pipeline_clock<D: DemandStore>(
    demand: &D,
    wall: DateTime<Utc>,
) -> anyhow::Result<DateTime<Utc>> {
    Ok(flyhigh_handlers::demand::top::pipeline_clock(demand, wall).await?)
}

/// The rows of `routes top` for the window ending at `--at`, or at `now` (a clock,
/// never an event time); the view itself is [`flyhigh_handlers::demand::top::top`],
/// which the dashboard shows too.
async fn top<D: DemandStore, A: AlertStore>(
    demand: &D,
    alerts: Option<&A>,
    args: &TopArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<RouteRow>> {
    anyhow::ensure!(
        args.window >= Duration::minutes(1),
        "--window must be at least 1m"
    );
    let query = flyhigh_handlers::demand::top::TopQuery {
        window: args.window,
        at: args.at,
        limit: args.limit,
    };
    Ok(flyhigh_handlers::demand::top::top(demand, alerts, &query, now).await?)
}

pub async fn alerts(command: AlertsCommand) -> anyhow::Result<bool> {
    let AlertsCommand::List(args) = command;
    let filter = AlertFilter {
        since: args.since,
        rule: args.rule,
        limit: Some(args.limit),
    };
    let listed: Vec<StoredAlert> = match (&args.sqlite, &args.table) {
        (Some(path), _) => {
            anyhow::ensure!(
                path.exists(),
                "SQLite file {} does not exist (the demo writes out/demo/demand.sqlite)",
                path.display()
            );
            SqliteDemandStore::open_read_only(path)
                .with_context(|| format!("opening {}", path.display()))?
                .alerts(&filter)
                .await?
        }
        (None, Some(table)) => {
            let client = aws_sdk_dynamodb::Client::new(&crate::pipeline::aws_config().await);
            DynamoAlertStore::new(client, table).alerts(&filter).await?
        }
        (None, None) => anyhow::bail!("name a store with --sqlite FILE or --table NAME"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(true);
    }
    if listed.is_empty() {
        println!("no alerts");
        return Ok(true);
    }
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    let mut table = Table::new(&[
        "detected_at",
        "severity",
        "rule",
        "status",
        "route",
        "flight",
        "published",
        "summary",
    ]);
    for s in &listed {
        let a = &s.alert;
        *by_rule.entry(a.rule.as_str()).or_default() += 1;
        table.row(vec![
            a.detected_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            a.severity.as_str().into(),
            a.rule.as_str().into(),
            a.status.as_str().into(),
            a.route.clone(),
            a.flight_id.clone().unwrap_or_default(),
            if s.published_at.is_some() {
                "yes".into()
            } else {
                "PENDING".into()
            },
            a.summary.clone(),
        ]);
    }
    print!("{}", table.render());
    let rules: Vec<String> = by_rule.iter().map(|(r, n)| format!("{n} {r}")).collect();
    println!("{} alerts: {}", listed.len(), rules.join(", "));
    Ok(true)
}

/// `15m`, `1h`, `90s`, `2d`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15m, 1h or 90s"))?;
    match unit {
        "s" => Ok(Duration::seconds(n)),
        "m" | "" => Ok(Duration::minutes(n)),
        "h" => Ok(Duration::hours(n)),
        "d" => Ok(Duration::days(n)),
        _ => Err(format!("{s:?}: the unit must be s, m, h or d")),
    }
}

/// An RFC 3339 time, or a duration ago.
fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    parse_duration(s)
        .map(|d| Utc::now() - d)
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor a duration like 24h"))
}

fn parse_rule(s: &str) -> Result<AlertRule, String> {
    AlertRule::parse(s).ok_or_else(|| {
        format!("{s:?} is not a rule: route_surge, near_sold_out, sold_out or oversold")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_seconds(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    #[test]
    fn durations_and_times_parse_as_an_operator_writes_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::minutes(15)));
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::hours(2)));
        assert!(parse_duration("fifteen").is_err());
        assert!(parse_duration("15w").unwrap_err().contains("unit"));
        assert_eq!(
            parse_since("2026-12-01T09:00:00Z").unwrap(),
            "2026-12-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_since("yesterday").is_err());
        assert_eq!(parse_rule("oversold"), Ok(AlertRule::Oversold));
        assert!(parse_rule("surge").unwrap_err().contains("route_surge"));
    }

    fn top_args(at: Option<DateTime<Utc>>) -> TopArgs {
        TopArgs {
            store: DemandStoreArgs {
                sqlite: None,
                table: None,
            },
            alerts_table: None,
            window: Duration::minutes(15),
            at,
            limit: 10,
            json: false,
        }
    }

    #[tokio::test]
    async fn regression_routes_top_without_at_uses_the_clock_not_the_latest_event_time() {
        // Issue 15: without --at, the window ended at the latest event time any shard
        // had shown, so one search dated in 2099 moved it to an empty future.
        use flyhigh_core::demand::counting::{Timing, flag_timing, tally};
        use flyhigh_core::demand::{DemandEvent, DemandKind, Position};
        use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore};
        let now: DateTime<Utc> = "2026-12-01T09:10:30Z".parse().unwrap();
        let store = MemoryDemandStore::new();
        let mut events: Vec<DemandEvent> = ["2026-12-01T09:09:00Z", "2099-01-01T00:00:00Z"]
            .iter()
            .enumerate()
            .map(|(i, t)| DemandEvent {
                route: "LHR-JFK".into(),
                occurred_at: t.parse().unwrap(),
                arrived_at: now - Duration::seconds(20),
                position: Position::new(&(i + 1).to_string(), None),
                kind: DemandKind::Search { passengers: 1 },
                timing: Timing::OnTime,
            })
            .collect();
        // What the counting handler stores: counters, routes, the shard's progress.
        let scan = flag_timing(
            &mut events,
            flyhigh_core::demand::counting::DEFAULT_ALLOWANCE,
            flyhigh_core::demand::counting::DEFAULT_SKEW,
            now,
        );
        for t in tally("shard-0", &events, 60) {
            store
                .add(&t.update_above(&events, None).unwrap())
                .await
                .unwrap();
        }
        store
            .note_routes(&["LHR-JFK".into()], Utc::now())
            .await
            .unwrap();
        store
            .advance_watermark("shard-0", scan.progress.unwrap(), now)
            .await
            .unwrap();

        let wall: DateTime<Utc> = "2026-12-07T19:00:00Z".parse().unwrap();
        let clock = pipeline_clock(&store, wall).await.unwrap();
        assert_eq!(clock, now, "the pipeline's clock, not the wall's nor 2099");
        let rows = top(&store, None::<&MemoryAlertStore>, &top_args(None), clock)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].window_end,
            at_seconds(now.timestamp() / 60 * 60 + 60)
        );
        assert_eq!(rows[0].counts.searches, 1, "{:?}", rows[0]);
        // The wall clock when nothing was counted; never later than the wall clock.
        let empty = MemoryDemandStore::new();
        assert_eq!(pipeline_clock(&empty, wall).await.unwrap(), wall);
        let earlier = now - Duration::hours(1);
        assert_eq!(pipeline_clock(&store, earlier).await.unwrap(), earlier);
        // --at still wins.
        let at: DateTime<Utc> = "2099-01-01T00:05:00Z".parse().unwrap();
        let rows = top(
            &store,
            None::<&MemoryAlertStore>,
            &top_args(Some(at)),
            clock,
        )
        .await
        .unwrap();
        assert_eq!(rows[0].counts.searches, 1);
        assert_eq!(rows[0].window_end, at_seconds(at.timestamp() + 60));
    }
}
