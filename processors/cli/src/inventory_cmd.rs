//! `flyhigh inventory show` and `flyhigh inventory list`: what an operator on call
//! reads, from either store, as an aligned table or `--json`.

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use flyhigh_core::{CabinInventory, InventoryFilter, InventoryStore, Route};
use serde::Serialize;

use crate::StoreArgs;
use crate::pipeline;
use crate::table::Table;

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// One flight, per cabin: capacity, sold, available, oversold, load factor, and
    /// whether the flight is in the schedule. Exits 1 when the store does not know
    /// the flight. Reads the flight's key only (a DynamoDB Query).
    Show {
        /// The flight, e.g. FH0123-20261201.
        flight_id: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Cabins matching every filter given, ordered by flight and cabin. In DynamoDB
    /// this scans the whole table (billed for every item): an operator command, not
    /// something to run in a loop.
    List(ListArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Only this route, ORIGIN-DESTINATION (e.g. LHR-JFK). Unscheduled flights have
    /// no route and are never shown.
    #[arg(long)]
    route: Option<Route>,
    /// Only flights departing on this UTC date, YYYY-MM-DD (the schedule's departure;
    /// for an unscheduled flight, the date in its id).
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Only cabins sold beyond capacity.
    #[arg(long)]
    oversold: bool,
    /// Only cabins with no seat left (oversold ones included).
    #[arg(long)]
    sold_out: bool,
    /// At most N cabins.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One cabin as the commands print it (`--json`).
#[derive(Debug, Serialize)]
pub struct CabinView {
    pub flight_id: String,
    pub cabin: String,
    pub scheduled: bool,
    pub route: Option<String>,
    pub departure: Option<String>,
    pub capacity: Option<u32>,
    pub sold: i64,
    pub available: i64,
    pub oversold: i64,
    /// Sold over capacity, rounded to 3 places; absent when unscheduled.
    pub load_factor: Option<f64>,
}

impl CabinView {
    /// The cells both tables end with: capacity, sold, available, oversold, load,
    /// status.
    fn count_cells(&self) -> Vec<String> {
        vec![
            self.capacity.map_or("-".into(), |c| c.to_string()),
            self.sold.to_string(),
            self.available.to_string(),
            self.oversold.to_string(),
            load(self.load_factor),
            status(self).into(),
        ]
    }

    pub fn new(c: &CabinInventory) -> CabinView {
        CabinView {
            flight_id: c.flight_id.clone(),
            cabin: c.cabin.to_string(),
            scheduled: c.scheduled(),
            route: c.route(),
            departure: c.schedule.as_ref().map(|s| {
                s.departure
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
            capacity: c.capacity,
            sold: c.sold,
            available: c.available(),
            oversold: c.oversold(),
            load_factor: c.load_factor().map(|f| (f * 1000.0).round() / 1000.0),
        }
    }
}

/// The `--json` document of `inventory show`.
#[derive(Serialize)]
struct FlightView {
    flight_id: String,
    scheduled: bool,
    route: Option<String>,
    departure: Option<String>,
    cabins: Vec<CabinView>,
}

pub async fn run(command: InventoryCommand) -> anyhow::Result<bool> {
    match command {
        InventoryCommand::Show {
            flight_id,
            store,
            json,
        } => show(&flight_id, &store, json).await,
        InventoryCommand::List(args) => list(args).await,
    }
}

/// Opens a store to read it: unlike loading a schedule, a read never creates a
/// SQLite file (a mistyped path would otherwise read as an empty inventory).
async fn show(flight_id: &str, store: &StoreArgs, json: bool) -> anyhow::Result<bool> {
    let cabins = pipeline::open_store_read_only(store)
        .await?
        .flight(flight_id)
        .await
        .with_context(|| format!("reading flight {flight_id} from {}", store.describe()))?;
    if cabins.is_empty() {
        eprintln!(
            "error: flight {flight_id} is not in {} (no schedule and no sale)\n\
             hint: check the id (designator and date, e.g. FH0123-20261201) or list flights \
             with `flyhigh inventory list`",
            store.describe()
        );
        return Ok(false);
    }
    let views: Vec<CabinView> = cabins.iter().map(CabinView::new).collect();
    // A cabin sold but missing from the schedule has no route: take one that has.
    let first = views
        .iter()
        .find(|v| v.route.is_some())
        .unwrap_or(&views[0]);
    let (route, departure) = (first.route.clone(), first.departure.clone());
    if json {
        let flight = FlightView {
            flight_id: flight_id.to_string(),
            scheduled: views.iter().any(|v| v.scheduled),
            route,
            departure,
            cabins: views,
        };
        println!("{}", serde_json::to_string_pretty(&flight)?);
        return Ok(true);
    }
    match (&route, &departure) {
        (Some(route), Some(departure)) => {
            println!("flight {flight_id}  {route}  departs {departure}")
        }
        _ => println!(
            "flight {flight_id}  NOT IN THE SCHEDULE (sales counted, no capacity to compare with)"
        ),
    }
    let mut table = Table::new(&[
        "cabin",
        ">capacity",
        ">sold",
        ">available",
        ">oversold",
        ">load",
        "status",
    ]);
    for v in &views {
        let mut row = vec![v.cabin.clone()];
        row.extend(v.count_cells());
        table.row(row);
    }
    print!("{}", table.render());
    Ok(true)
}

async fn list(args: ListArgs) -> anyhow::Result<bool> {
    let filter = InventoryFilter {
        route: args.route,
        date: args.date,
        oversold_only: args.oversold,
        sold_out_only: args.sold_out,
        limit: args.limit,
    };
    let cabins = pipeline::open_store_read_only(&args.store)
        .await?
        .list(&filter)
        .await
        .with_context(|| format!("listing inventory in {}", args.store.describe()))?;
    let views: Vec<CabinView> = cabins.iter().map(CabinView::new).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(true);
    }
    let mut table = Table::new(&[
        "flight",
        "cabin",
        "route",
        "departure",
        ">capacity",
        ">sold",
        ">available",
        ">oversold",
        ">load",
        "status",
    ]);
    for v in &views {
        let mut row = vec![
            v.flight_id.clone(),
            v.cabin.clone(),
            v.route.clone().unwrap_or_else(|| "-".into()),
            v.departure.clone().unwrap_or_else(|| "-".into()),
        ];
        row.extend(v.count_cells());
        table.row(row);
    }
    if table.is_empty() {
        println!("no cabin matches");
    } else {
        print!("{}", table.render());
        println!("{} cabins", views.len());
    }
    Ok(true)
}

fn load(factor: Option<f64>) -> String {
    factor.map_or("-".into(), |f| format!("{:.0}%", f * 100.0))
}

fn status(v: &CabinView) -> &'static str {
    if !v.scheduled {
        "unscheduled"
    } else if v.oversold > 0 {
        "OVERSOLD"
    } else if v.available == 0 {
        "sold out"
    } else {
        "scheduled"
    }
}
