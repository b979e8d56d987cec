//! Summaries: the JSON written by `--summary-json` and the human text on stdout.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use flyhigh_core::{CabinInventory, CabinKey};
use serde::Serialize;

/// Writes a value as pretty JSON, creating parent directories.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// One flight and cabin whose stored seats sold differ from the recomputation.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub flight_id: String,
    pub cabin: String,
    pub expected_sold: i64,
    pub stored_sold: i64,
}

/// The stored inventory compared with an independent recomputation from the events.
/// Serializes as `"ok"`, or as `{"status": "mismatch", "differences": [...]}`.
#[derive(Debug, Clone)]
pub struct InventoryCheck {
    pub differences: Vec<Mismatch>,
}

impl InventoryCheck {
    /// Compares.
    pub fn new(expected: &BTreeMap<CabinKey, i64>, stored: &[CabinInventory]) -> InventoryCheck {
        let differences = flyhigh_simulator::compare(expected, stored)
            .into_iter()
            .map(|d| Mismatch {
                flight_id: d.key.flight_id.clone(),
                cabin: d.key.cabin.to_string(),
                expected_sold: d.expected,
                stored_sold: d.stored,
            })
            .collect();
        InventoryCheck { differences }
    }

    pub fn is_ok(&self) -> bool {
        self.differences.is_empty()
    }

    pub fn describe(&self) -> String {
        match self.differences.first() {
            None => "ok".into(),
            Some(d) => format!(
                "MISMATCH in {} flight cabins (first: {} {} expected {} sold, stored {})",
                self.differences.len(),
                d.flight_id,
                d.cabin,
                d.expected_sold,
                d.stored_sold
            ),
        }
    }
}

impl Serialize for InventoryCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_ok() {
            s.serialize_str("ok")
        } else {
            #[derive(Serialize)]
            struct Mismatched<'a> {
                status: &'static str,
                differences: &'a [Mismatch],
            }
            Mismatched {
                status: "mismatch",
                differences: &self.differences,
            }
            .serialize(s)
        }
    }
}

/// Inventory at a glance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InventorySummary {
    /// Flight cabins with a capacity or a sale.
    pub cabins: usize,
    /// Distinct flights.
    pub flights: usize,
    /// Seats sold over all flights.
    pub seats_sold: i64,
    /// Seats still for sale over scheduled flights.
    pub seats_available: i64,
    /// Cabins with every seat sold (oversold ones included).
    pub sold_out_cabins: usize,
    /// Cabins sold beyond capacity, and by how many seats in total.
    pub oversold_cabins: usize,
    pub oversold_seats: i64,
    /// Cabins of flights missing from the schedule (counted, flagged).
    pub unscheduled_cabins: usize,
    /// The most oversold cabins, worst first (at most 5).
    pub most_oversold: Vec<String>,
    /// Every oversold cabin, by flight and cabin (what `flyhigh inventory show`
    /// must agree with).
    pub oversold: Vec<OversoldCabin>,
}

/// One oversold cabin in a summary.
#[derive(Debug, Clone, Serialize)]
pub struct OversoldCabin {
    pub flight_id: String,
    pub cabin: String,
    pub capacity: u32,
    pub sold: i64,
    pub oversold: i64,
}

impl InventorySummary {
    pub fn new(inventory: &[CabinInventory]) -> InventorySummary {
        let flights: std::collections::BTreeSet<&str> =
            inventory.iter().map(|c| c.flight_id.as_str()).collect();
        let mut oversold: Vec<&CabinInventory> =
            inventory.iter().filter(|c| c.oversold() > 0).collect();
        oversold.sort_by_key(|c| std::cmp::Reverse(c.oversold()));
        InventorySummary {
            cabins: inventory.len(),
            flights: flights.len(),
            seats_sold: inventory.iter().map(|c| c.sold).sum(),
            seats_available: inventory.iter().map(CabinInventory::available).sum(),
            sold_out_cabins: inventory
                .iter()
                .filter(|c| c.scheduled() && c.available() == 0)
                .count(),
            oversold_cabins: oversold.len(),
            oversold_seats: oversold.iter().map(|c| c.oversold()).sum(),
            unscheduled_cabins: inventory.iter().filter(|c| !c.scheduled()).count(),
            most_oversold: oversold
                .iter()
                .take(5)
                .map(|c| {
                    format!(
                        "{} {}: {} sold / {} seats",
                        c.flight_id,
                        c.cabin,
                        c.sold,
                        c.capacity.unwrap_or(0)
                    )
                })
                .collect(),
            oversold: inventory
                .iter()
                .filter(|c| c.oversold() > 0)
                .map(|c| OversoldCabin {
                    flight_id: c.flight_id.clone(),
                    cabin: c.cabin.to_string(),
                    capacity: c.capacity.unwrap_or(0),
                    sold: c.sold,
                    oversold: c.oversold(),
                })
                .collect(),
        }
    }
}

/// CPU time this process has used so far (user and system, every thread), for cost
/// per event: `getrusage(RUSAGE_SELF)`.
pub fn cpu_time() -> std::time::Duration {
    // SAFETY: getrusage writes one rusage struct into the zeroed one it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return std::time::Duration::ZERO;
        }
        usage
    };
    let of = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
            + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    of(usage.ru_utime) + of(usage.ru_stime)
}
