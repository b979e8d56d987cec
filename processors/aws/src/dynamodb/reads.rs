//! The operator reads' requests: the `Query` of one flight and the filtered `Scan`
//! of a listing. Pure; the store module alone sends them.
//!
//! A flight's cabins share its partition key (`FLIGHT#<flight_id>`), so reading a
//! flight is one `Query` on that key: it costs the flight's few items, whatever the
//! size of the table.
//!
//! A listing by route, date or state has no key to go by (the table has no secondary
//! index), so it is a `Scan` with a filter expression: DynamoDB still reads, and
//! bills, every item of the table, and only the response shrinks. That is fine for an
//! operator command run by hand; nothing on the record path lists. Should listings
//! become frequent, a GSI on `route` + `departure` would make `--route`/`--date` a
//! `Query` (see `docs/runbooks.md`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use flyhigh_core::InventoryFilter;

use super::items::{
    CABIN_PREFIX, CAPACITY, DEPARTURE, DESTINATION, FLIGHT_PREFIX, ORIGIN, PK, SK, SOLD,
};

/// A key condition or filter expression with its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expression {
    pub(crate) text: String,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: HashMap<String, AttributeValue>,
}

#[cfg(test)]
impl Expression {
    /// Every `#name` and `:value` the text uses is defined, and every definition used.
    ///
    /// # Panics
    ///
    /// When one is not: a test helper.
    pub(crate) fn assert_consistent(&self) {
        let tokens: Vec<&str> = self
            .text
            .split(|c: char| !(c.is_alphanumeric() || c == '#' || c == ':' || c == '_'))
            .filter(|t| t.starts_with('#') || t.starts_with(':'))
            .collect();
        for t in &tokens {
            if t.starts_with('#') {
                assert!(
                    self.names.contains_key(*t),
                    "{t} undefined in {}",
                    self.text
                );
            } else {
                assert!(
                    self.values.contains_key(*t),
                    "{t} undefined in {}",
                    self.text
                );
            }
        }
        for k in self.names.keys().chain(self.values.keys()) {
            assert!(tokens.contains(&k.as_str()), "{k} unused in {}", self.text);
        }
    }
}

/// The `KeyConditionExpression` of one flight's cabins.
pub(crate) fn flight_key_condition(flight_id: &str) -> Expression {
    Expression {
        text: "#pk = :pk AND begins_with(#sk, :cabin)".into(),
        names: HashMap::from([("#pk".into(), PK.into()), ("#sk".into(), SK.into())]),
        values: HashMap::from([
            (
                ":pk".into(),
                AttributeValue::S(format!("{FLIGHT_PREFIX}{flight_id}")),
            ),
            (":cabin".into(), AttributeValue::S(CABIN_PREFIX.into())),
        ]),
    }
}

/// The `FilterExpression` of a listing's `Scan`: flight-cabin items only, narrowed by
/// every filter. Each condition is necessary, none sufficient:
/// [`InventoryFilter::select`] has the last word, as in every store.
///
/// - route: `origin` and `destination`, which only the schedule writes;
/// - date: a `departure` starting with the date, or, for an unscheduled flight (no
///   `departure`), a key containing `-YYYYMMDD`;
/// - oversold: `sold > capacity` (an item without `sold` has sold nothing);
/// - sold out: `sold >= capacity`, or a capacity of 0.
pub(crate) fn list_filter(filter: &InventoryFilter) -> Expression {
    let mut names = HashMap::from([("#pk".to_string(), PK.to_string())]);
    let mut values = HashMap::from([(
        ":flight".to_string(),
        AttributeValue::S(FLIGHT_PREFIX.into()),
    )]);
    let mut conditions = vec!["begins_with(#pk, :flight)".to_string()];
    let mut name = |n: &str| {
        names.insert(format!("#{n}"), n.to_string());
    };
    if let Some(route) = &filter.route {
        name(ORIGIN);
        name(DESTINATION);
        values.insert(":origin".into(), AttributeValue::S(route.origin.clone()));
        values.insert(
            ":destination".into(),
            AttributeValue::S(route.destination.clone()),
        );
        conditions.push("#origin = :origin AND #destination = :destination".into());
    }
    if let Some(date) = filter.date {
        name(DEPARTURE);
        values.insert(
            ":date".into(),
            AttributeValue::S(date.format("%Y-%m-%d").to_string()),
        );
        values.insert(
            ":id_date".into(),
            AttributeValue::S(date.format("-%Y%m%d").to_string()),
        );
        conditions.push(
            "(begins_with(#departure, :date) OR \
             (attribute_not_exists(#departure) AND contains(#pk, :id_date)))"
                .into(),
        );
    }
    if filter.oversold_only || filter.sold_out_only {
        name(SOLD);
        name(CAPACITY);
    }
    if filter.oversold_only {
        conditions.push("#sold > #capacity".into());
    }
    if filter.sold_out_only {
        values.insert(":zero".into(), AttributeValue::N("0".into()));
        conditions.push("(#sold >= #capacity OR #capacity = :zero)".into());
    }
    Expression {
        text: conditions.join(" AND "),
        names,
        values,
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn a_flight_is_a_query_on_its_partition_key() {
        let e = flight_key_condition("FH1-20261201");
        assert_eq!(
            e.values[":pk"],
            AttributeValue::S("FLIGHT#FH1-20261201".into())
        );
        assert!(e.text.starts_with("#pk = :pk"));
        e.assert_consistent();
    }

    #[test]
    fn the_default_listing_keeps_flight_items_only() {
        let e = list_filter(&InventoryFilter::default());
        assert_eq!(e.text, "begins_with(#pk, :flight)");
        e.assert_consistent();
    }

    #[test]
    fn every_filter_narrows_the_scan() {
        let e = list_filter(&InventoryFilter {
            route: Some("LHR-JFK".parse().unwrap()),
            date: NaiveDate::from_ymd_opt(2026, 12, 1),
            oversold_only: true,
            sold_out_only: true,
            limit: Some(3),
        });
        e.assert_consistent();
        assert_eq!(e.values[":origin"], AttributeValue::S("LHR".into()));
        assert_eq!(e.values[":date"], AttributeValue::S("2026-12-01".into()));
        assert_eq!(e.values[":id_date"], AttributeValue::S("-20261201".into()));
        assert!(e.text.contains("#sold > #capacity"), "{}", e.text);
    }
}
