//! What one alert becomes on SNS: the body, a subject, the message attributes. Pure.

use flyhigh_schemas::Alert;

/// SNS takes subjects of fewer than 100 characters, printable ASCII on one line.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// The data type of every attribute we set.
pub(crate) const STRING: &str = "String";

/// One `Publish` of an alert, as the wire sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publication {
    /// Exactly [`Alert::to_json`].
    pub(crate) message: String,
    pub(crate) subject: String,
    /// `(name, value)`, all of type [`STRING`].
    pub(crate) attributes: Vec<(&'static str, String)>,
}

/// The publication of `alert`.
///
/// Every [`Alert::message_attributes`] pair is set, except one whose value is empty
/// (SNS refuses an empty String attribute; the contract's fields are never empty for
/// a valid alert).
pub(crate) fn publication(alert: &Alert) -> Publication {
    Publication {
        message: alert.to_json(),
        subject: subject(alert),
        attributes: alert
            .message_attributes()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect(),
    }
}

/// `FlyHigh <severity> <rule> <route>[ <flight_id>]`, for e-mail subscribers: anything
/// but printable ASCII becomes `?`, and it is cut to [`MAX_SUBJECT_CHARS`].
pub(crate) fn subject(alert: &Alert) -> String {
    let mut text = format!(
        "FlyHigh {} {} {}",
        alert.severity.as_str(),
        alert.rule.as_str(),
        alert.route
    );
    if let Some(flight) = &alert.flight_id {
        text.push(' ');
        text.push_str(flight);
    }
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use flyhigh_schemas::{ALERT_VERSION, AlertRule, Cabin, Severity};

    use super::*;

    fn alert() -> Alert {
        let at: DateTime<Utc> = "2026-12-01T09:37:00Z".parse().unwrap();
        Alert {
            alert_id: "oversold:FH0310-20261201:business:1".into(),
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
            baseline: None,
            capacity: Some(8),
            sold: Some(9),
            detected_at: at,
            raised_at: at,
            summary: "FH0310 business oversold by 1".into(),
        }
    }

    #[test]
    fn the_body_is_the_contracts_json_and_the_attributes_its_filterable_fields() {
        let a = alert();
        let p = publication(&a);
        assert_eq!(p.message, a.to_json());
        assert_eq!(p.attributes, a.message_attributes());
        let names: Vec<&str> = p.attributes.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "rule",
                "severity",
                "status",
                "route",
                "origin",
                "destination",
                "flight_id",
                "cabin"
            ]
        );
    }

    #[test]
    fn empty_attribute_values_are_left_out() {
        let mut a = alert();
        a.destination = String::new();
        let p = publication(&a);
        assert!(p.attributes.iter().all(|(n, _)| *n != "destination"));
        assert_eq!(p.attributes.len(), a.message_attributes().len() - 1);
    }

    #[test]
    fn subjects_name_severity_rule_route_and_flight() {
        assert_eq!(
            subject(&alert()),
            "FlyHigh critical oversold ORD-SFO FH0310-20261201"
        );
        let mut surge = alert();
        surge.rule = AlertRule::RouteSurge;
        surge.severity = Severity::Warning;
        surge.flight_id = None;
        assert_eq!(subject(&surge), "FlyHigh warning route_surge ORD-SFO");
    }

    #[test]
    fn subjects_are_short_printable_ascii_on_one_line() {
        let mut a = alert();
        a.route = format!("ZÜR-\n{}", "X".repeat(200));
        let s = subject(&a);
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.starts_with("FlyHigh critical oversold Z?R-?XX"), "{s}");
        assert!(s.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{s}");
    }
}
