//! `SnsTopic` against moto, through the real SDK clients: alerts published to a topic
//! reach the SQS queues whose filter policies select them, and only those, as the
//! contract's JSON with the contract's attributes.
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own topic and
//! queues.

#![cfg(all(feature = "sns", feature = "sqs"))]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flyhigh_aws::sns::{SnsTopic, create_topic, subscribe_queue};
use flyhigh_aws::sqs::create_queue;
use flyhigh_core::{AlertPublisher, StoreError};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn alert(
    rule: AlertRule,
    severity: Severity,
    route: &str,
    flight: Option<&str>,
    minute: u32,
) -> Alert {
    let (origin, destination) = route.split_once('-').unwrap();
    let window_start = at(&format!("2026-12-01T09:{minute:02}:00Z"));
    let (alert_id, cabin) = match flight {
        Some(f) => (
            Alert::flight_id_for(rule, f, Cabin::Economy, 1),
            Some(Cabin::Economy),
        ),
        None => (Alert::surge_id(route, window_start), None),
    };
    let surge = flight.is_none();
    Alert {
        alert_id,
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule,
        severity,
        route: route.into(),
        origin: origin.into(),
        destination: destination.into(),
        flight_id: flight.map(str::to_string),
        cabin,
        window_start: surge.then_some(window_start),
        window_end: surge.then(|| window_start + chrono::Duration::minutes(3)),
        observed: surge.then_some(61),
        baseline: surge.then_some(10.0 / 3.0),
        capacity: (!surge).then_some(180),
        sold: (!surge).then_some(181),
        detected_at: window_start + chrono::Duration::minutes(3),
        raised_at: at("2026-12-01T09:50:00.125Z"),
        summary: format!("{rule} on {route}"),
    }
}

#[tokio::test]
async fn each_queue_receives_exactly_the_alerts_its_filter_policy_selects() {
    let config = common::sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = common::unique_name("alerts");
    let topic_arn = create_topic(&sns, &name).await.expect("create topic");
    assert_eq!(
        create_topic(&sns, &name).await.expect("create again"),
        topic_arn
    );
    let critical_url = create_queue(&sqs, &common::unique_name("critical"))
        .await
        .unwrap();
    let route_url = create_queue(&sqs, &common::unique_name("ord-sfo"))
        .await
        .unwrap();
    subscribe_queue(
        &sns,
        &sqs,
        &topic_arn,
        &critical_url,
        Some(r#"{"severity": ["critical"]}"#),
    )
    .await
    .expect("subscribe critical");
    subscribe_queue(
        &sns,
        &sqs,
        &topic_arn,
        &route_url,
        Some(r#"{"route": ["ORD-SFO"]}"#),
    )
    .await
    .expect("subscribe route");
    // The queue policies allow the topic.
    for url in [&critical_url, &route_url] {
        let policy = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
            .send()
            .await
            .unwrap()
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy))
            .cloned()
            .unwrap_or_default();
        assert!(policy.contains(&topic_arn), "{policy}");
    }

    use AlertRule::*;
    use Severity::*;
    let alerts = [
        alert(RouteSurge, Critical, "ORD-SFO", None, 34),
        alert(RouteSurge, Warning, "LHR-JFK", None, 35),
        alert(Oversold, Critical, "LHR-JFK", Some("FH0310-20261201"), 0),
        alert(NearSoldOut, Warning, "ORD-SFO", Some("FH0311-20261201"), 0),
        alert(RouteSurge, Warning, "ORD-SFO", None, 44),
        alert(SoldOut, Critical, "JFK-LAX", Some("FH0420-20261202"), 0),
    ];
    let topic = SnsTopic::new(sns.clone(), &topic_arn);
    for a in &alerts {
        topic.publish(a).await.expect("publish");
    }
    let by_id: BTreeMap<&str, &Alert> = alerts.iter().map(|a| (a.alert_id.as_str(), a)).collect();
    let selected = |keep: &dyn Fn(&Alert) -> bool| -> BTreeSet<String> {
        alerts
            .iter()
            .filter(|a| keep(a))
            .map(|a| a.alert_id.clone())
            .collect()
    };
    for (url, expected) in [
        (&critical_url, selected(&|a| a.severity == Critical)),
        (&route_url, selected(&|a| a.route == "ORD-SFO")),
    ] {
        assert_eq!(expected.len(), 3);
        let received = common::receive(&sqs, url, expected.len(), 2).await;
        let mut ids = BTreeSet::new();
        for m in &received {
            // Raw delivery: the body is the alert's JSON as published.
            let back: Alert = serde_json::from_str(&m.body).expect("an alert body");
            let sent = by_id[back.alert_id.as_str()];
            assert_eq!(&back, sent);
            let attributes: HashMap<String, String> = sent
                .message_attributes()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(m.attributes, attributes, "{}", back.alert_id);
            assert!(ids.insert(back.alert_id), "delivered once");
        }
        assert_eq!(ids, expected, "queue {url}");
    }
}

#[tokio::test]
async fn publishing_to_a_missing_topic_is_permanent_and_said_in_one_line() {
    let config = common::sdk_config().await;
    let topic = SnsTopic::new(
        aws_sdk_sns::Client::new(&config),
        format!(
            "arn:aws:sns:us-east-1:123456789012:{}",
            common::unique_name("missing")
        ),
    );
    let err = topic
        .publish(&alert(
            AlertRule::RouteSurge,
            Severity::Critical,
            "ORD-SFO",
            None,
            34,
        ))
        .await
        .unwrap_err();
    let StoreError::Permanent(message) = err else {
        panic!("not permanent: {err:?}")
    };
    assert!(message.starts_with("SNS Publish: "), "{message}");
    assert!(message.contains("NotFound"), "{message}");
    assert!(
        !message.contains('\n') && !message.contains("HttpResponse") && !message.contains("{"),
        "{message}"
    );
}

/// An SNS client through a fault proxy in front of moto, with the SDK's own retries
/// off, so that the outbox's retry is what is tested.
fn faulty_sns(
    config: &aws_config::SdkConfig,
    proxy: &flyhigh_testkit::FaultProxy,
) -> aws_sdk_sns::Client {
    let conf = aws_sdk_sns::config::Builder::from(config)
        .endpoint_url(proxy.url())
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sns::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_publish_failure_is_retried_by_the_outbox_and_delivered_once() {
    use flyhigh_core::AlertStore;
    use flyhigh_core::memory::MemoryAlertStore;
    use flyhigh_handlers::demand::Outbox;
    use flyhigh_testkit::{FaultConfig, FaultProxy};

    let config = common::sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic_arn = create_topic(&sns, &common::unique_name("outbox"))
        .await
        .unwrap();
    let queue_url = create_queue(&sqs, &common::unique_name("outbox-all"))
        .await
        .unwrap();
    subscribe_queue(&sns, &sqs, &topic_arn, &queue_url, None)
        .await
        .unwrap();

    // Every request's connection is closed before it reaches moto.
    let proxy = FaultProxy::start(
        &common::moto_url(),
        FaultConfig {
            drop_before_rate: 1.0,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let store = MemoryAlertStore::new();
    let outbox = Outbox::new(
        &store,
        SnsTopic::new(faulty_sns(&config, &proxy), &topic_arn),
    )
    .with_attempts(2, Duration::from_millis(10))
    .with_claim(chrono::Duration::seconds(30));
    let lost = alert(
        AlertRule::Oversold,
        Severity::Critical,
        "ORD-SFO",
        Some("FH0310-20261202"),
        1,
    );
    assert!(store.record(&lost).await.unwrap());
    let t0 = Utc::now();
    let first = outbox.publish_pending(&|| t0).await;
    assert_eq!(
        (first.published, first.left_pending, first.failed_attempts),
        (0, 1, 2),
        "{first:?}"
    );
    assert_eq!(proxy.stats().dropped_before, 2);
    assert_eq!(
        store.pending(10).await.unwrap().len(),
        1,
        "still in the outbox"
    );

    // SNS is back: the next pass after the claim publishes it, once.
    proxy.set_faults(FaultConfig::default()).unwrap();
    let second = outbox
        .publish_pending(&|| t0 + chrono::Duration::seconds(31))
        .await;
    assert_eq!(second.published, 1, "{second:?}");
    let third = outbox
        .publish_pending(&|| t0 + chrono::Duration::seconds(62))
        .await;
    assert_eq!(third.published, 0);
    let received = common::receive(&sqs, &queue_url, 1, 2).await;
    let ids: Vec<String> = received
        .iter()
        .map(|m| serde_json::from_str::<Alert>(&m.body).unwrap().alert_id)
        .collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&lost.alert_id),
        "one message, not zero or two"
    );

    // An answer lost after SNS took the message: the outbox cannot know, publishes
    // again, and the repeat carries the same alert_id for subscribers to drop.
    let repeated = alert(
        AlertRule::SoldOut,
        Severity::Warning,
        "ORD-SFO",
        Some("FH0310-20261202"),
        2,
    );
    store.record(&repeated).await.unwrap();
    proxy
        .set_faults(FaultConfig {
            drop_after_rate: 1.0,
            fault_all_operations: true,
            ..FaultConfig::default()
        })
        .unwrap();
    let lost_answer = outbox
        .publish_pending(&|| t0 + chrono::Duration::seconds(100))
        .await;
    assert_eq!(lost_answer.published, 0);
    proxy.set_faults(FaultConfig::default()).unwrap();
    outbox
        .publish_pending(&|| t0 + chrono::Duration::seconds(131))
        .await;
    let received = common::receive(&sqs, &queue_url, 3, 2).await;
    let ids: Vec<String> = received
        .iter()
        .map(|m| serde_json::from_str::<Alert>(&m.body).unwrap().alert_id)
        .collect();
    // Each lost answer costs one repeat: two attempts whose answers were lost, then
    // the one that was answered, three copies, every one with the same id.
    assert!(
        !ids.is_empty() && ids.iter().all(|id| *id == repeated.alert_id),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(store.pending(10).await.unwrap().is_empty());
    proxy.shutdown().await;
}
