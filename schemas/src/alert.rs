//! The alert contract: what the hot-route processor publishes to SNS (and, locally,
//! to `alerts.jsonl`) for the revenue team.
//!
//! One [`Alert`] is one JSON object, the SNS message body. The same fields that a
//! subscriber filters on are also set as SNS message attributes
//! ([`Alert::message_attributes`]): `rule`, `severity`, `route`, `origin`,
//! `destination`, and `flight_id` for flight alerts.
//!
//! `alert_id` is derived from what the alert is about, never random, so an alert
//! that is published twice (a crash between publish and mark, see the outbox in
//! `flyhigh-handlers`) carries the same id both times and a subscriber can drop the
//! repeat:
//! - `route_surge:ORIG-DEST:<start of the surge's first window, RFC 3339>`;
//! - `near_sold_out|sold_out|oversold:FLIGHT_ID:CABIN:<crossing number from 1>`;
//! - `<the id of the alert it clears>:cleared` for a [`AlertStatus::Cleared`] notice.
//!
//! # Raised and cleared
//!
//! Every alert has a `status` (also a message attribute): `raised` when a condition
//! starts, `cleared` when a flight alert's condition has ended (the cabin is back below
//! the level, see `docs/hot-routes.md`). A cleared notice carries the rule, severity,
//! route, flight and cabin of the alert it clears and names it in `clears`, so a filter
//! policy that selects an alert also selects its clearance; `{"status": ["raised"]}`
//! keeps only new conditions.
//!
//! The JSON Schema is generated from these types ([`alert_schema`]), checked in as
//! `json/alert.schema.json` and kept equal by `tests/json_schema.rs`.
//!
//! # Evolution
//!
//! `alert_version` is [`ALERT_VERSION`]. Within a version fields are only added, and
//! only as optional ones; subscribers must ignore fields they do not know.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Cabin;
use crate::event::{FLIGHT_ID_PATTERN, TIMESTAMP_PATTERN, millis};

/// The version of the alert contract this crate writes. Version 2 added `status` and
/// `clears` (cleared notices): a version-1 reader that ignored them would take a
/// cleared notice for a new alert, hence the bump.
pub const ALERT_VERSION: u32 = 2;

/// Where the checked-in alert schema lives, relative to the `schemas/` crate root.
pub const ALERT_SCHEMA_FILE: &str = "json/alert.schema.json";

/// Which rule raised an alert.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// Demand on a route (searches and bookings, summed over every shard) is far
    /// above the route's own baseline.
    RouteSurge,
    /// A flight's cabin reached the near-sold-out load factor (0.9 by default).
    NearSoldOut,
    /// A flight's cabin has every seat sold (oversold included).
    SoldOut,
    /// A flight's cabin has more seats sold than it has.
    Oversold,
}

impl AlertRule {
    /// Every rule, in order.
    pub const ALL: [AlertRule; 4] = [
        AlertRule::RouteSurge,
        AlertRule::NearSoldOut,
        AlertRule::SoldOut,
        AlertRule::Oversold,
    ];

    /// The name on the wire, e.g. `route_surge`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::RouteSurge => "route_surge",
            AlertRule::NearSoldOut => "near_sold_out",
            AlertRule::SoldOut => "sold_out",
            AlertRule::Oversold => "oversold",
        }
    }

    /// The rule named `s` on the wire.
    pub fn parse(s: &str) -> Option<AlertRule> {
        AlertRule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for AlertRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look within the hour.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert starts a condition or ends one.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// A new condition: a surge, a cabin crossing a level.
    #[default]
    Raised,
    /// The condition of the alert named in `clears` has ended.
    Cleared,
}

impl AlertStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Raised => "raised",
            AlertStatus::Cleared => "cleared",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<AlertStatus> {
        [AlertStatus::Raised, AlertStatus::Cleared]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "FlyHigh revenue alert",
    extend("$id" = "https://flyhigh.example/schemas/alert.schema.json")
)]
pub struct Alert {
    /// Stable id derived from what the alert is about (see the module docs); a
    /// repeated delivery carries the same id.
    #[schemars(length(min = 1, max = 200))]
    pub alert_id: String,
    /// Contract version ([`ALERT_VERSION`]).
    #[schemars(range(min = 1))]
    pub alert_version: u32,
    /// The rule that fired.
    pub rule: AlertRule,
    /// `raised`, or `cleared` when this notice ends the condition of the alert named
    /// in `clears` (absent in version 1: raised).
    #[serde(default)]
    pub status: AlertStatus,
    /// For a cleared notice: the id of the alert whose condition ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub clears: Option<String>,
    /// How urgent it is.
    pub severity: Severity,
    /// `ORIGIN-DESTINATION`, e.g. `LHR-JFK`.
    #[schemars(regex(pattern = "^[A-Z]{3}-[A-Z]{3}$"))]
    pub route: String,
    /// IATA code of the origin.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub origin: String,
    /// IATA code of the destination.
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub destination: String,
    /// The flight (flight alerts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = FLIGHT_ID_PATTERN))]
    pub flight_id: Option<String>,
    /// The cabin (flight alerts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cabin: Option<Cabin>,
    /// Start of the window of event time the surge was judged on (surges only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    #[schemars(with = "Option<String>", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub window_start: Option<DateTime<Utc>>,
    /// End of that window, exclusive (surges only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    #[schemars(with = "Option<String>", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub window_end: Option<DateTime<Utc>>,
    /// Demand observed in the window: searches plus bookings (surges only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<u64>,
    /// Demand the route's baseline expects in a window of that length (surges only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub baseline: Option<f64>,
    /// Seats in the cabin (flight alerts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Seats sold in the cabin when the rule fired (flight alerts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<i64>,
    /// Event time at which the rule fired: the end of the judged window for a surge,
    /// the latest event of the batch that made the crossing for a flight alert.
    #[serde(with = "millis")]
    #[schemars(with = "String", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub detected_at: DateTime<Utc>,
    /// Wall-clock time at which the alert was recorded for publishing.
    #[serde(with = "millis")]
    #[schemars(with = "String", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub raised_at: DateTime<Utc>,
    /// One sentence for people (an e-mail subject, a chat line).
    #[schemars(length(min = 1, max = 500))]
    pub summary: String,
}

/// The message attributes of an alert, for SNS filter policies: `(name, value)`, all
/// of data type `String`.
pub type MessageAttributes = Vec<(&'static str, String)>;

impl Alert {
    /// The id of a route surge whose first window started at `window_start`.
    pub fn surge_id(route: &str, window_start: DateTime<Utc>) -> String {
        format!(
            "route_surge:{route}:{}",
            window_start.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    /// The id of the `crossing`-th crossing (from 1) of a flight rule by a cabin.
    pub fn flight_id_for(rule: AlertRule, flight_id: &str, cabin: Cabin, crossing: u32) -> String {
        format!(
            "{}:{flight_id}:{}:{crossing}",
            rule.as_str(),
            cabin.as_str()
        )
    }

    /// The id of the notice that clears the alert `alert_id`.
    pub fn cleared_id(alert_id: &str) -> String {
        format!("{alert_id}:cleared")
    }

    /// The SNS message attributes: `rule`, `severity`, `status`, `route`, `origin`,
    /// `destination`, and `flight_id` and `cabin` when present.
    pub fn message_attributes(&self) -> MessageAttributes {
        let mut out = vec![
            ("rule", self.rule.as_str().to_string()),
            ("severity", self.severity.as_str().to_string()),
            ("status", self.status.as_str().to_string()),
            ("route", self.route.clone()),
            ("origin", self.origin.clone()),
            ("destination", self.destination.clone()),
        ];
        if let Some(flight) = &self.flight_id {
            out.push(("flight_id", flight.clone()));
        }
        if let Some(cabin) = self.cabin {
            out.push(("cabin", cabin.as_str().to_string()));
        }
        out
    }

    /// The message body: this alert as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One line for a console: time, severity, rule, route and the summary.
    pub fn console_line(&self) -> String {
        format!(
            "ALERT {} {:<8} {:<13} {:<7} {} {}",
            self.detected_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.severity.as_str(),
            self.rule.as_str(),
            self.status.as_str(),
            self.route,
            self.summary
        )
    }
}

/// The JSON Schema (draft 2020-12) of one alert.
pub fn alert_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Alert>().to_value();
    schema.sort_all_objects();
    schema
}

/// [`alert_schema`] exactly as checked in: pretty-printed, with a trailing newline.
pub fn alert_schema_file() -> String {
    let mut text = serde_json::to_string_pretty(&alert_schema()).unwrap_or_default();
    text.push('\n');
    text
}

mod opt_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::millis::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::millis")] DateTime<Utc>);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surge() -> Alert {
        let start: DateTime<Utc> = "2026-12-01T09:34:00Z".parse().unwrap();
        Alert {
            alert_id: Alert::surge_id("ORD-SFO", start),
            alert_version: ALERT_VERSION,
            status: Default::default(),
            clears: None,
            rule: AlertRule::RouteSurge,
            severity: Severity::Critical,
            route: "ORD-SFO".into(),
            origin: "ORD".into(),
            destination: "SFO".into(),
            flight_id: None,
            cabin: None,
            window_start: Some(start),
            window_end: Some("2026-12-01T09:37:00Z".parse().unwrap()),
            observed: Some(61),
            baseline: Some(10.5),
            capacity: None,
            sold: None,
            detected_at: "2026-12-01T09:37:00Z".parse().unwrap(),
            raised_at: "2026-12-01T09:37:02.125Z".parse().unwrap(),
            summary: "demand 5.8x baseline".into(),
        }
    }

    #[test]
    fn an_alert_round_trips_through_json_with_millisecond_timestamps() {
        let alert = surge();
        let json = alert.to_json();
        assert!(
            json.contains(r#""window_start":"2026-12-01T09:34:00.000Z""#),
            "{json}"
        );
        assert!(
            !json.contains("flight_id"),
            "absent fields are left out: {json}"
        );
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn ids_are_derived_from_what_the_alert_is_about() {
        assert_eq!(surge().alert_id, "route_surge:ORD-SFO:2026-12-01T09:34:00Z");
        assert_eq!(
            Alert::flight_id_for(AlertRule::Oversold, "FH0310-20261201", Cabin::Business, 2),
            "oversold:FH0310-20261201:business:2"
        );
    }

    #[test]
    fn message_attributes_name_the_filterable_fields() {
        let mut alert = surge();
        let names: Vec<_> = alert
            .message_attributes()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "rule",
                "severity",
                "status",
                "route",
                "origin",
                "destination"
            ]
        );
        alert.flight_id = Some("FH0310-20261201".into());
        alert.cabin = Some(Cabin::Economy);
        let attrs = alert.message_attributes();
        assert!(attrs.contains(&("flight_id", "FH0310-20261201".into())));
        assert!(attrs.contains(&("cabin", "economy".into())));
    }

    #[test]
    fn rules_parse_their_wire_names() {
        for rule in AlertRule::ALL {
            assert_eq!(AlertRule::parse(rule.as_str()), Some(rule));
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.as_str());
        }
        assert_eq!(AlertRule::parse("surge"), None);
    }
}
