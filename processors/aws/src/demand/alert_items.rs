//! The alerts table's items and requests: alerts, the outbox, the rules' states.
//! Pure; the store alone sends them. The layout is in the parent module's docs.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use flyhigh_core::demand::{CabinAlertState, RouteState};
use flyhigh_core::inventory::CabinKey;
use flyhigh_core::ports::{AlertFilter, StoredAlert};
use flyhigh_schemas::{Alert, Cabin};

use super::items::Write;
use super::keys::{parse_time, time_key};
use crate::dynamodb::items::{Item, PK, SK, get_n, get_s, n, s};

/// The index that lists alerts by time (a GSI on `time_pk`, `time_sk`).
pub const BY_TIME_INDEX: &str = "by_time";
/// The index that orders the outbox (an LSI on `pk`, `order`).
pub const OUTBOX_INDEX: &str = "outbox_order";

const ALERT_PREFIX: &str = "ALERT#";
const ALERT_SK: &str = "ALERT";
/// The outbox's partition: one item per pending alert.
pub(crate) const OUTBOX_PK: &str = "#outbox";
/// Every alert item's [`TIME_PK`]: one partition of the by-time index.
pub(crate) const ALL_ALERTS: &str = "ALERTS";
const ROUTE_PREFIX: &str = "ROUTE#";
const FLIGHT_PREFIX: &str = "FLIGHT#";
const CABIN_PREFIX: &str = "CABIN#";
const STATE_SK: &str = "STATE";
/// Partition of one save's staged alerts: `STAGE#<save id>`.
const STAGE_PREFIX: &str = "STAGE#";
/// The evaluator's cursor item: `pk = #evaluator`, `sk = CURSOR`.
const EVALUATOR_PK: &str = "#evaluator";
const CURSOR_SK: &str = "CURSOR";
const CURSOR: &str = "cursor";
/// On a state item: the save id whose staged alerts are not all recorded yet.
pub(crate) const STAGED: &str = "staged";

/// The alert as [`Alert::to_json`] wrote it.
pub(crate) const ALERT: &str = "alert";
const ALERT_ID: &str = "alert_id";
const RULE: &str = "rule";
const RAISED_AT: &str = "raised_at";
const PUBLISHED_AT: &str = "published_at";
/// Partition key of the by-time index.
pub(crate) const TIME_PK: &str = "time_pk";
/// Sort key of the by-time index: `raised_at#alert_id`.
pub(crate) const TIME_SK: &str = "time_sk";
/// Sort key of the outbox index: `raised_at#alert_id`.
pub(crate) const ORDER: &str = "order";
const CLAIM_UNTIL: &str = "claim_until";
const STATE: &str = "state";
const VERSION: &str = "version";
const ROUTE: &str = "route";
const FLIGHT_ID: &str = "flight_id";
const CABIN: &str = "cabin";

fn names(attrs: &[&str]) -> HashMap<String, String> {
    attrs
        .iter()
        .map(|a| (format!("#{a}"), a.to_string()))
        .collect()
}

/// The key of an alert item.
pub(crate) fn alert_key(alert_id: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{ALERT_PREFIX}{alert_id}"))),
        (SK.into(), s(ALERT_SK)),
    ])
}

/// The key of an alert's outbox item.
pub(crate) fn outbox_key(alert_id: &str) -> Item {
    HashMap::from([(PK.into(), s(OUTBOX_PK)), (SK.into(), s(alert_id))])
}

/// `raised_at#alert_id`: sorts as `(raised_at, alert_id)`, the order of
/// [`AlertFilter::select`] and of the outbox.
fn order_key(alert: &Alert) -> Result<String, String> {
    Ok(format!(
        "{}#{}",
        time_key(alert.raised_at).map_err(|e| e.to_string())?,
        alert.alert_id
    ))
}

fn alert_json(alert: &Alert) -> Result<String, String> {
    // `to_json` gives "" for what serde_json cannot write; store nothing rather
    // than an alert that no subscriber can read.
    let json = alert.to_json();
    if json.is_empty() {
        return Err(format!(
            "alert {} cannot be written as JSON",
            alert.alert_id
        ));
    }
    Ok(json)
}

/// The alert item: its JSON and what the listing's index and filter need.
pub(crate) fn alert_item(alert: &Alert) -> Result<Item, String> {
    let order = order_key(alert)?;
    let mut item = alert_key(&alert.alert_id);
    item.extend([
        (ALERT.into(), s(alert_json(alert)?)),
        (ALERT_ID.into(), s(&alert.alert_id)),
        (RULE.into(), s(alert.rule.as_str())),
        (
            RAISED_AT.into(),
            s(time_key(alert.raised_at).map_err(|e| e.to_string())?),
        ),
        (TIME_PK.into(), s(ALL_ALERTS)),
        (TIME_SK.into(), s(order)),
    ]);
    Ok(item)
}

/// The outbox item of a pending alert: its order key and the alert's JSON, so that
/// listing the outbox reads nothing else.
pub(crate) fn outbox_item(alert: &Alert) -> Result<Item, String> {
    let mut item = outbox_key(&alert.alert_id);
    item.extend([
        (ORDER.into(), s(order_key(alert)?)),
        (ALERT.into(), s(alert_json(alert)?)),
    ]);
    Ok(item)
}

/// The transaction of [`AlertStore::record`](flyhigh_core::AlertStore::record): the
/// alert item, if none has its id (action 0, the one whose failed condition means
/// "raised already"), and its outbox item.
pub(crate) fn record_items(table: &str, alert: &Alert) -> Result<Vec<TransactWriteItem>, String> {
    let alert_put = Put::builder()
        .table_name(table)
        .set_item(Some(alert_item(alert)?))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PK)
        .build()
        .map_err(|e| e.to_string())?;
    let outbox_put = Put::builder()
        .table_name(table)
        .set_item(Some(outbox_item(alert)?))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(vec![
        TransactWriteItem::builder().put(alert_put).build(),
        TransactWriteItem::builder().put(outbox_put).build(),
    ])
}

/// Claims an outbox item until `until`, if it is there and unclaimed or its claim
/// expired before `now`.
pub(crate) fn claim_write(
    alert_id: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Write, String> {
    Ok(Write {
        key: outbox_key(alert_id),
        update: "SET #claim_until = :until".into(),
        condition:
            "attribute_exists(#pk) AND (attribute_not_exists(#claim_until) OR #claim_until < :now)"
                .into(),
        names: names(&[PK, CLAIM_UNTIL]),
        values: HashMap::from([
            (
                ":until".into(),
                s(time_key(until).map_err(|e| e.to_string())?),
            ),
            (":now".into(), s(time_key(now).map_err(|e| e.to_string())?)),
        ]),
    })
}

/// The transaction of `mark_published`: `published_at` set on the alert item unless
/// set already (action 0, conditional on the alert existing), and its outbox item
/// deleted. Running it again changes nothing.
pub(crate) fn mark_items(
    table: &str,
    alert_id: &str,
    at: DateTime<Utc>,
) -> Result<Vec<TransactWriteItem>, String> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(alert_key(alert_id)))
        .update_expression("SET #published_at = if_not_exists(#published_at, :at)")
        .condition_expression("attribute_exists(#pk)")
        .set_expression_attribute_names(Some(names(&[PK, PUBLISHED_AT])))
        .expression_attribute_values(":at", s(time_key(at).map_err(|e| e.to_string())?))
        .build()
        .map_err(|e| e.to_string())?;
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(outbox_key(alert_id)))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(vec![
        TransactWriteItem::builder().update(update).build(),
        TransactWriteItem::builder().delete(delete).build(),
    ])
}

fn parse_alert(item: &Item) -> Result<Alert, String> {
    serde_json::from_str(get_s(item, ALERT)?)
        .map_err(|e| format!("attribute `{ALERT}` is not an alert: {e}"))
}

/// Decodes an alert item.
pub(crate) fn parse_stored(item: &Item) -> Result<StoredAlert, String> {
    let published_at = match item.get(PUBLISHED_AT) {
        None => None,
        Some(_) => Some(parse_time(get_s(item, PUBLISHED_AT)?)?),
    };
    Ok(StoredAlert {
        alert: parse_alert(item)?,
        published_at,
    })
}

/// Decodes an outbox item (or its entry in the outbox index).
pub(crate) fn parse_outbox(item: &Item) -> Result<Alert, String> {
    parse_alert(item)
}

/// The key condition of the outbox index's one partition.
pub(crate) fn pending_query() -> crate::dynamodb::reads::Expression {
    super::items::partition_query(OUTBOX_PK)
}

/// A `Query` of the by-time index: the key condition, a filter, their placeholders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listing {
    pub(crate) key: String,
    pub(crate) filter: Option<String>,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: Item,
}

/// The listing's query: the index's one partition, from `since` on (a key condition
/// on `raised_at#alert_id`: the bare time sorts before every key at that time), and a
/// filter on the rule. Read newest first, so that a `limit` stops the reading.
pub(crate) fn listing(filter: &AlertFilter) -> Result<Listing, String> {
    let mut key = "#time_pk = :time_pk".to_string();
    let mut names = names(&[TIME_PK]);
    let mut values = HashMap::from([(":time_pk".to_string(), s(ALL_ALERTS))]);
    if let Some(since) = filter.since {
        key.push_str(" AND #time_sk >= :since");
        names.insert("#time_sk".into(), TIME_SK.into());
        values.insert(
            ":since".into(),
            s(time_key(since).map_err(|e| e.to_string())?),
        );
    }
    let rule = filter.rule.map(|rule| {
        names.insert("#rule".into(), RULE.into());
        values.insert(":rule".into(), s(rule.as_str()));
        "#rule = :rule".to_string()
    });
    Ok(Listing {
        key,
        filter: rule,
        names,
        values,
    })
}

/// The key of a route's surge state.
pub(crate) fn route_state_key(route: &str) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{ROUTE_PREFIX}{route}"))),
        (SK.into(), s(STATE_SK)),
    ])
}

/// The key of a cabin's latches.
pub(crate) fn cabin_state_key(key: &CabinKey) -> Item {
    HashMap::from([
        (PK.into(), s(format!("{FLIGHT_PREFIX}{}", key.flight_id))),
        (
            SK.into(),
            s(format!("{CABIN_PREFIX}{}", key.cabin.as_str())),
        ),
    ])
}

/// A conditional `PutItem` of a state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatePut {
    pub(crate) item: Item,
    pub(crate) condition: String,
    pub(crate) names: HashMap<String, String>,
    /// Empty for a first save (DynamoDB refuses an empty map: send none).
    pub(crate) values: Item,
}

/// Saves a state of `version` over the stored `version - 1`, or as the first one
/// (`version == 1`, nothing stored); `None` for version 0, which no stored state can
/// precede.
fn state_put(
    mut item: Item,
    json: Result<String, serde_json::Error>,
    version: u64,
) -> Result<Option<StatePut>, String> {
    if version == 0 {
        return Ok(None);
    }
    let json = json.map_err(|e| format!("state cannot be written as JSON: {e}"))?;
    item.insert(STATE.into(), s(json));
    item.insert(VERSION.into(), n(version));
    let put = if version == 1 {
        StatePut {
            item,
            condition: "attribute_not_exists(#pk)".into(),
            names: names(&[PK]),
            values: Item::new(),
        }
    } else {
        StatePut {
            item,
            condition: "#version = :expected".into(),
            names: names(&[VERSION]),
            values: HashMap::from([(":expected".into(), n(version - 1))]),
        }
    };
    Ok(Some(put))
}

/// The save of a route's state (see [`state_put`]).
pub(crate) fn route_state_put(route: &str, state: &RouteState) -> Result<Option<StatePut>, String> {
    let mut item = route_state_key(route);
    item.insert(ROUTE.into(), s(route));
    state_put(item, serde_json::to_string(state), state.version)
}

/// The save of a cabin's latches (see [`state_put`]).
pub(crate) fn cabin_state_put(
    key: &CabinKey,
    state: &CabinAlertState,
) -> Result<Option<StatePut>, String> {
    let mut item = cabin_state_key(key);
    item.insert(FLIGHT_ID.into(), s(&key.flight_id));
    item.insert(CABIN.into(), s(key.cabin.as_str()));
    state_put(item, serde_json::to_string(state), state.version)
}

fn parse_state<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, String> {
    serde_json::from_str(get_s(item, STATE)?)
        .map_err(|e| format!("attribute `{STATE}` is not a state: {e}"))
}

/// The key of the surge evaluator's cursor.
pub(crate) fn cursor_key() -> Item {
    HashMap::from([(PK.into(), s(EVALUATOR_PK)), (SK.into(), s(CURSOR_SK))])
}

/// The cursor item: the last route judged.
pub(crate) fn cursor_item(route: &str) -> Item {
    let mut item = cursor_key();
    item.insert(CURSOR.into(), s(route));
    item
}

/// Decodes the cursor item.
pub(crate) fn parse_cursor(item: &Item) -> Result<String, String> {
    Ok(get_s(item, CURSOR)?.to_string())
}

/// The id of a save of a state with more alerts than a transaction holds: the MD5 of
/// what it writes (state item and alerts), so that two different saves of one version
/// never share their staged alerts, and the same save sent twice stages the same.
pub(crate) fn save_id(state: &Item, alerts: &[Alert]) -> Result<String, String> {
    use md5::{Digest, Md5};
    let mut hash = Md5::new();
    let mut keys: Vec<&String> = state.keys().collect();
    keys.sort();
    for k in keys {
        hash.update(k.as_bytes());
        hash.update(format!("{:?}", state[k]).as_bytes());
    }
    for alert in alerts {
        hash.update(alert_json(alert)?.as_bytes());
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The staging partition of a save.
pub(crate) fn stage_pk(save_id: &str) -> String {
    format!("{STAGE_PREFIX}{save_id}")
}

/// Alert `index` of a save, staged: in its own partition, out of the outbox and the
/// listing (it has neither `order` nor `time_pk`).
pub(crate) fn staged_item(save_id: &str, index: usize, alert: &Alert) -> Result<Item, String> {
    let mut item = staged_key(save_id, index);
    item.insert(ALERT.into(), s(alert_json(alert)?));
    Ok(item)
}

/// The key of alert `index` of a save, staged (sorted by index).
pub(crate) fn staged_key(save_id: &str, index: usize) -> Item {
    HashMap::from([
        (PK.into(), s(stage_pk(save_id))),
        (SK.into(), s(format!("{index:010}"))),
    ])
}

/// Decodes a staged alert.
pub(crate) fn parse_staged(item: &Item) -> Result<Alert, String> {
    parse_alert(item)
}

/// The save id of a state item whose staged alerts are not all recorded, if any.
pub(crate) fn staged_of(item: &Item) -> Option<&str> {
    item.get(STAGED)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Takes the staged mark off a state item, if it is still this save's.
pub(crate) fn unstage_write(key: Item, save_id: &str) -> Write {
    Write {
        key,
        update: "REMOVE #staged".into(),
        condition: "#staged = :id".into(),
        names: names(&[STAGED]),
        values: HashMap::from([(":id".into(), s(save_id))]),
    }
}

/// Decodes a route's state.
pub(crate) fn parse_route_state(item: &Item) -> Result<RouteState, String> {
    let state: RouteState = parse_state(item)?;
    check_version(item, state.version)?;
    Ok(state)
}

/// Decodes a cabin's latches with their key.
pub(crate) fn parse_cabin_state(item: &Item) -> Result<(CabinKey, CabinAlertState), String> {
    let state: CabinAlertState = parse_state(item)?;
    check_version(item, state.version)?;
    let cabin = get_s(item, CABIN)?;
    let cabin = Cabin::parse(cabin).ok_or_else(|| format!("unknown cabin `{cabin}`"))?;
    Ok((CabinKey::new(get_s(item, FLIGHT_ID)?, cabin), state))
}

/// The conditions read `version`, the evaluators the state's own: they must agree.
fn check_version(item: &Item, version: u64) -> Result<(), String> {
    match get_n::<u64>(item, VERSION)? {
        Some(v) if v == version => Ok(()),
        other => Err(format!(
            "attribute `{VERSION}` is {other:?} but the state says {version}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use flyhigh_core::demand::RouteState;
    use flyhigh_core::demand::SurgeConfig;
    use flyhigh_schemas::{ALERT_VERSION, AlertRule, Severity};

    use super::*;
    use crate::dynamodb::reads::Expression;

    fn alert(id: &str, raised_at: &str) -> Alert {
        Alert {
            alert_id: id.into(),
            alert_version: ALERT_VERSION,
            status: Default::default(),
            clears: None,
            rule: AlertRule::Oversold,
            severity: Severity::Critical,
            route: "ORD-SFO".into(),
            origin: "ORD".into(),
            destination: "SFO".into(),
            flight_id: Some("FH0310-20261201".into()),
            cabin: Some(Cabin::Business),
            window_start: None,
            window_end: None,
            observed: None,
            baseline: Some(0.1 + 0.2),
            capacity: Some(8),
            sold: Some(9),
            detected_at: "2026-12-01T09:37:00Z".parse().unwrap(),
            raised_at: raised_at.parse().unwrap(),
            summary: "FH0310 business oversold by 1".into(),
        }
    }

    fn put_of(item: &TransactWriteItem) -> &Put {
        item.put().expect("a put")
    }

    #[test]
    fn recording_puts_the_alert_once_and_queues_it() {
        let a = alert(
            "oversold:FH0310-20261201:business:1",
            "2026-12-01T09:37:02.125Z",
        );
        let tx = record_items("alerts", &a).unwrap();
        assert_eq!(tx.len(), 2);
        let first = put_of(&tx[0]);
        assert_eq!(
            first.condition_expression(),
            Some("attribute_not_exists(#pk)")
        );
        assert_eq!(
            first.item()[PK],
            s("ALERT#oversold:FH0310-20261201:business:1")
        );
        assert_eq!(first.item()[ALERT], s(a.to_json()));
        assert_eq!(first.item()[RULE], s("oversold"));
        assert_eq!(
            first.item()[TIME_SK],
            s("2026-12-01T09:37:02.125000000Z#oversold:FH0310-20261201:business:1")
        );
        let queued = put_of(&tx[1]);
        assert_eq!(queued.condition_expression(), None);
        assert_eq!(queued.item()[PK], s(OUTBOX_PK));
        assert_eq!(queued.item()[SK], s(&a.alert_id));
        // Both read back as what was recorded.
        let stored = parse_stored(first.item()).unwrap();
        assert_eq!(
            stored,
            StoredAlert {
                alert: a.clone(),
                published_at: None
            }
        );
        assert_eq!(parse_outbox(queued.item()).unwrap(), a);
    }

    #[test]
    fn order_keys_sort_as_raised_at_then_alert_id() {
        let keys: Vec<String> = [
            alert("b", "2026-12-01T09:00:00Z"),
            alert("ab", "2026-12-01T09:00:00.001Z"),
            alert("b", "2026-12-01T09:00:00.001Z"),
            alert("a", "2026-12-01T10:00:00Z"),
        ]
        .iter()
        .map(|a| order_key(a).unwrap())
        .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn a_claim_needs_a_pending_unclaimed_or_expired_item() {
        let now: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let w = claim_write("a1", now, now + chrono::Duration::seconds(30)).unwrap();
        w.expression().assert_consistent();
        assert_eq!(w.key, outbox_key("a1"));
        assert_eq!(
            w.condition,
            "attribute_exists(#pk) AND (attribute_not_exists(#claim_until) OR #claim_until < :now)"
        );
        assert_eq!(w.values[":until"], s("2026-12-01T09:00:30.000000000Z"));
    }

    #[test]
    fn marking_sets_published_at_once_and_empties_the_outbox() {
        let at: DateTime<Utc> = "2026-12-01T09:00:05Z".parse().unwrap();
        let tx = mark_items("alerts", "a1", at).unwrap();
        let update = tx[0].update().unwrap();
        assert_eq!(
            update.update_expression(),
            "SET #published_at = if_not_exists(#published_at, :at)"
        );
        assert_eq!(update.condition_expression(), Some("attribute_exists(#pk)"));
        assert_eq!(update.key(), &alert_key("a1"));
        assert_eq!(tx[1].delete().unwrap().key(), &outbox_key("a1"));
        // What it sets reads back as the publication time.
        let a = alert("a1", "2026-12-01T09:00:00Z");
        let mut item = alert_item(&a).unwrap();
        item.insert(
            PUBLISHED_AT.into(),
            update.expression_attribute_values().unwrap()[":at"].clone(),
        );
        assert_eq!(parse_stored(&item).unwrap().published_at, Some(at));
    }

    #[test]
    fn listings_narrow_by_key_and_filter() {
        let all = listing(&AlertFilter::default()).unwrap();
        assert_eq!(
            (all.key.as_str(), all.filter.as_deref()),
            ("#time_pk = :time_pk", None)
        );
        let since: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let narrow = listing(&AlertFilter {
            since: Some(since),
            rule: Some(AlertRule::RouteSurge),
            limit: Some(3),
        })
        .unwrap();
        Expression {
            text: format!("{} {}", narrow.key, narrow.filter.clone().unwrap()),
            names: narrow.names.clone(),
            values: narrow.values.clone(),
        }
        .assert_consistent();
        assert_eq!(narrow.values[":since"], s("2026-12-01T09:00:00.000000000Z"));
        assert_eq!(narrow.values[":rule"], s("route_surge"));
        // An alert raised exactly at `since` passes the key condition.
        let at_since = alert("a", "2026-12-01T09:00:00Z");
        let AttributeValue::S(sk) = &alert_item(&at_since).unwrap()[TIME_SK] else {
            panic!()
        };
        assert!(sk.as_str() >= "2026-12-01T09:00:00.000000000Z");
    }

    #[test]
    fn states_save_first_without_and_then_over_their_previous_version() {
        let config = SurgeConfig::default();
        let mut state = RouteState::new(&config, 1_796_115_600);
        assert_eq!(
            route_state_put("ORD-SFO", &state),
            Ok(None),
            "version 0 never saves"
        );
        state.version = 1;
        state.baseline = Some(0.1 + 0.2);
        let first = route_state_put("ORD-SFO", &state).unwrap().unwrap();
        assert_eq!(first.condition, "attribute_not_exists(#pk)");
        assert!(first.values.is_empty());
        assert_eq!(parse_route_state(&first.item), Ok(state.clone()));
        state.version = 7;
        let later = route_state_put("ORD-SFO", &state).unwrap().unwrap();
        assert_eq!(later.condition, "#version = :expected");
        assert_eq!(later.values[":expected"], n(6));
        assert_eq!(later.item[VERSION], n(7));

        let key = CabinKey::new("FH0310-20261201", Cabin::PremiumEconomy);
        let mut latches = CabinAlertState {
            version: 2,
            ..Default::default()
        };
        latches.sold_out.fired = true;
        latches.sold_out.crossings = 1;
        let put = cabin_state_put(&key, &latches).unwrap().unwrap();
        assert_eq!(put.item[SK], s("CABIN#premium_economy"));
        assert_eq!(parse_cabin_state(&put.item), Ok((key, latches)));
    }

    #[test]
    fn a_state_whose_version_disagrees_is_refused() {
        let state = CabinAlertState {
            version: 3,
            ..Default::default()
        };
        let key = CabinKey::new("FH1-20261201", Cabin::Economy);
        let mut put = cabin_state_put(&key, &state).unwrap().unwrap();
        put.item.insert(VERSION.into(), n(4));
        assert!(
            parse_cabin_state(&put.item)
                .unwrap_err()
                .contains("version")
        );
        put.item.insert(STATE.into(), s("{"));
        assert!(parse_cabin_state(&put.item).unwrap_err().contains("state"));
    }
}
