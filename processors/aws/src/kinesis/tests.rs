use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::types::error::{
    AccessDeniedException, ExpiredIteratorException, InternalFailureException,
    KmsThrottlingException, ProvisionedThroughputExceededException, ResourceNotFoundException,
};
use aws_smithy_types::Blob;

use super::*;
use crate::test_sdk::{meta, response};

fn failure(err: GetRecordsError, status: u16) -> GetRecordsFailure {
    get_records_error(&SdkError::service_error(err, response(status)))
}

#[test]
fn an_expired_iterator_is_renewed_not_reported() {
    let err = GetRecordsError::ExpiredIteratorException(
        ExpiredIteratorException::builder()
            .meta(meta("ExpiredIteratorException"))
            .build(),
    );
    assert_eq!(failure(err, 400), GetRecordsFailure::ExpiredIterator);
}

#[test]
fn throttling_and_internal_failures_are_transient() {
    let cases = [
        (
            GetRecordsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .meta(meta("ProvisionedThroughputExceededException"))
                    .build(),
            ),
            400,
        ),
        (
            GetRecordsError::KmsThrottlingException(
                KmsThrottlingException::builder()
                    .meta(meta("KMSThrottlingException"))
                    .build(),
            ),
            400,
        ),
        (
            GetRecordsError::InternalFailureException(
                InternalFailureException::builder()
                    .meta(meta("InternalFailureException"))
                    .build(),
            ),
            500,
        ),
        (GetRecordsError::generic(meta("ServiceUnavailable")), 503),
    ];
    for (err, status) in cases {
        let name = format!("{err:?}");
        assert!(
            matches!(
                failure(err, status),
                GetRecordsFailure::Source(SourceError::Transient(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn missing_stream_and_denied_access_are_permanent() {
    let cases = [
        GetRecordsError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(meta("ResourceNotFoundException"))
                .build(),
        ),
        GetRecordsError::AccessDeniedException(
            AccessDeniedException::builder()
                .meta(meta("AccessDeniedException"))
                .build(),
        ),
    ];
    for err in cases {
        let name = format!("{err:?}");
        assert!(
            matches!(
                failure(err, 400),
                GetRecordsFailure::Source(SourceError::Permanent(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn other_operations_are_classified_by_code() {
    let throttled = GetShardIteratorError::ProvisionedThroughputExceededException(
        ProvisionedThroughputExceededException::builder()
            .meta(meta("ProvisionedThroughputExceededException"))
            .build(),
    );
    let err = source_error(
        "GetShardIterator",
        &SdkError::service_error(throttled, response(400)),
    );
    assert!(matches!(err, SourceError::Transient(_)), "{err:?}");
    let missing = GetShardIteratorError::ResourceNotFoundException(
        ResourceNotFoundException::builder()
            .meta(meta("ResourceNotFoundException"))
            .build(),
    );
    let err = source_error(
        "GetShardIterator",
        &SdkError::service_error(missing, response(400)),
    );
    assert!(
        matches!(err, SourceError::Permanent(ref m) if m.contains("GetShardIterator")),
        "{err:?}"
    );
    let timeout: SdkError<GetShardIteratorError> = SdkError::timeout_error("deadline");
    assert!(matches!(
        source_error("GetShardIterator", &timeout),
        SourceError::Transient(_)
    ));
}

#[test]
fn regression_list_shards_never_sends_the_stream_with_a_next_token() {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .build();
    let client = Client::from_conf(config);
    let first = list_shards_page(&client, "bookings", None);
    assert_eq!(first.get_stream_name().as_deref(), Some("bookings"));
    assert_eq!(
        (first.get_stream_arn(), first.get_next_token()),
        (&None, &None)
    );
    let next = list_shards_page(&client, "bookings", Some("token".into()));
    assert_eq!(next.get_next_token().as_deref(), Some("token"));
    assert_eq!(
        (next.get_stream_arn(), next.get_stream_name()),
        (&None, &None)
    );
}

#[test]
fn regression_list_shards_names_the_stream_by_name_for_kinesalite() {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .build();
    let first = list_shards_page(&Client::from_conf(config), "flyhigh-events", None);
    assert_eq!(
        first.get_stream_arn(),
        &None,
        "kinesalite rejects StreamARN"
    );
}

#[test]
fn listed_shards_keep_their_parents() {
    let range = |start: &str, end: &str| {
        aws_sdk_kinesis::types::HashKeyRange::builder()
            .starting_hash_key(start)
            .ending_hash_key(end)
            .build()
            .unwrap()
    };
    let sequence_range = aws_sdk_kinesis::types::SequenceNumberRange::builder()
        .starting_sequence_number("1")
        .build()
        .unwrap();
    let shard = |id: &str, parent: Option<&str>, adjacent: Option<&str>| {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parent.map(str::to_string))
            .set_adjacent_parent_shard_id(adjacent.map(str::to_string))
            .hash_key_range(range("0", "9"))
            .sequence_number_range(sequence_range.clone())
            .build()
            .unwrap()
    };
    assert_eq!(
        source_shard(&shard("shardId-000000000000", None, None)),
        SourceShard::root("shardId-000000000000")
    );
    let merged = source_shard(&shard(
        "shardId-000000000003",
        Some("shardId-000000000001"),
        Some("shardId-000000000002"),
    ));
    assert_eq!(
        merged.parents().collect::<Vec<_>>(),
        ["shardId-000000000001", "shardId-000000000002"]
    );
    // An empty id is no parent.
    assert_eq!(
        source_shard(&shard("shardId-000000000004", Some(""), None))
            .parents()
            .count(),
        0
    );
}

fn record(seq: &str) -> Record {
    Record::builder()
        .sequence_number(seq)
        .partition_key("k")
        .data(Blob::new(seq.as_bytes()))
        .build()
        .unwrap()
}

fn output(seqs: &[&str], next: Option<&str>) -> GetRecordsOutput {
    GetRecordsOutput::builder()
        .set_records(Some(seqs.iter().map(|s| record(s)).collect()))
        .set_next_shard_iterator(next.map(str::to_string))
        .build()
        .unwrap()
}

#[test]
fn the_cursor_follows_the_iterator_chain_and_keeps_the_last_sequence_number() {
    let now = Utc::now();
    let mut cursor = Cursor {
        iterator: Some("i0".into()),
        last_sequence_number: None,
    };
    let ReadOutcome::Records(records) = cursor.advance(&output(&["1", "2"], Some("i1")), now)
    else {
        panic!()
    };
    assert_eq!(records.len(), 2);
    assert_eq!(
        cursor,
        Cursor {
            iterator: Some("i1".into()),
            last_sequence_number: Some("2".into())
        }
    );
    // Nothing new yet: the position is kept, the iterator moves on.
    assert_eq!(
        cursor.advance(&output(&[], Some("i2")), now),
        ReadOutcome::Records(vec![])
    );
    assert_eq!(
        cursor,
        Cursor {
            iterator: Some("i2".into()),
            last_sequence_number: Some("2".into())
        }
    );
}

#[test]
fn a_closed_shard_returns_its_last_records_and_then_ends() {
    let now = Utc::now();
    let mut cursor = Cursor {
        iterator: Some("i0".into()),
        last_sequence_number: None,
    };
    let ReadOutcome::Records(records) = cursor.advance(&output(&["9"], None), now) else {
        panic!()
    };
    assert_eq!(records[0].sequence_number, "9");
    assert_eq!(
        cursor,
        Cursor {
            iterator: None,
            last_sequence_number: Some("9".into())
        }
    );
    let mut empty_end = Cursor {
        iterator: Some("i0".into()),
        last_sequence_number: Some("9".into()),
    };
    assert_eq!(
        empty_end.advance(&output(&[], None), now),
        ReadOutcome::Ended
    );
}

#[test]
fn a_new_iterator_resumes_after_the_last_record_returned() {
    let after = |s: &str| StartPosition::AfterSequenceNumber(s.into());
    assert_eq!(
        resume_position(&StartPosition::TrimHorizon, None),
        StartPosition::TrimHorizon
    );
    assert_eq!(
        resume_position(&StartPosition::Latest, None),
        StartPosition::Latest
    );
    assert_eq!(resume_position(&after("5"), None), after("5"));
    assert_eq!(
        resume_position(&StartPosition::TrimHorizon, Some("7")),
        after("7")
    );
    assert_eq!(
        resume_position(&StartPosition::Latest, Some("7")),
        after("7")
    );
    assert_eq!(resume_position(&after("5"), Some("9")), after("9"));
}

#[test]
fn start_positions_map_to_iterator_types() {
    assert_eq!(
        iterator_type(&StartPosition::TrimHorizon),
        (ShardIteratorType::TrimHorizon, None)
    );
    assert_eq!(
        iterator_type(&StartPosition::Latest),
        (ShardIteratorType::Latest, None)
    );
    let seq = "49590338271490256608559692538361571095921575989136588898";
    assert_eq!(
        iterator_type(&StartPosition::AfterSequenceNumber(seq.into())),
        (
            ShardIteratorType::AfterSequenceNumber,
            Some(seq.to_string())
        )
    );
}

#[test]
fn records_keep_sequence_key_arrival_and_bytes() {
    let record = Record::builder()
        .sequence_number("1")
        .partition_key("FH1-20261201")
        .approximate_arrival_timestamp(aws_smithy_types::DateTime::from_millis(1_795_000_000_123))
        .data(Blob::new(vec![0xf3, 0x89, 0x9a, 0xc2]))
        .build()
        .unwrap();
    let fallback = DateTime::from_timestamp(0, 0).unwrap();
    let r = source_record(&record, fallback);
    assert_eq!(r.sequence_number, "1");
    assert_eq!(r.partition_key, "FH1-20261201");
    assert_eq!(r.approximate_arrival.timestamp_millis(), 1_795_000_000_123);
    assert_eq!(r.data, vec![0xf3, 0x89, 0x9a, 0xc2]);
    let without_arrival = Record::builder()
        .sequence_number("2")
        .partition_key("k")
        .data(Blob::new(vec![]))
        .build()
        .unwrap();
    assert_eq!(
        source_record(&without_arrival, fallback).approximate_arrival,
        fallback
    );
}
