//! Known bytes, every error path, and properties of the aggregate codec.

use proptest::prelude::*;

use super::*;

/// Wraps protobuf bytes as a Kinesis record's data: magic, body, MD5 of the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&Md5::digest(body));
    out
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn records(data: &[u8]) -> Vec<UserRecordRef<'_>> {
    match deaggregate(data) {
        Ok(Deaggregated::Aggregated(records)) => records,
        other => panic!("not an aggregate: {other:?}"),
    }
}

fn error(data: &[u8]) -> AggregateError {
    match deaggregate(data) {
        Err(e) => e,
        Ok(d) => panic!("read as {d:?}"),
    }
}

/// Partition key "a", explicit hash key "1"; record 0 (key 0, hash key 0, "x"),
/// record 1 (key 0, "yz"). Written out field by field.
const HAND_BUILT: &str = "
    0a 01 61
    12 01 31
    1a 07  08 00  10 00  1a 01 78
    1a 06  08 00  1a 02 79 7a";

#[test]
fn the_builder_writes_the_hand_built_bytes() {
    let mut builder = AggregateBuilder::new();
    assert_eq!(builder.push("a", Some("1"), b"x"), 0);
    assert_eq!(builder.push("a", None, b"yz"), 1);
    let mut expected = MAGIC.to_vec();
    expected.extend(hex(HAND_BUILT));
    // md5 of the protobuf bytes, computed independently (Python hashlib).
    expected.extend(hex("36e538ce742dd0cbb19a92ed44e3e56d"));
    assert_eq!(builder.encoded_len(), expected.len());
    assert_eq!(builder.finish(), expected);
}

#[test]
fn hand_built_bytes_read_back() {
    let data = frame(&hex(HAND_BUILT));
    assert!(is_aggregated(&data));
    assert_eq!(
        records(&data),
        [
            UserRecordRef {
                sub_sequence_number: 0,
                partition_key: "a",
                explicit_hash_key: Some("1"),
                data: b"x",
            },
            UserRecordRef {
                sub_sequence_number: 1,
                partition_key: "a",
                explicit_hash_key: None,
                data: b"yz",
            },
        ]
    );
}

#[test]
fn keys_are_deduplicated_in_first_seen_order() {
    let mut builder = AggregateBuilder::new();
    builder.push("b", None, b"1");
    builder.push("a", Some("7"), b"2");
    builder.push("b", Some("9"), b"3");
    builder.push("a", Some("7"), b"4");
    let data = builder.finish();
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    assert!(body.starts_with(&hex("0a 01 62  0a 01 61  12 01 37  12 01 39")));
    let got: Vec<(&str, Option<&str>)> = records(&data)
        .iter()
        .map(|r| (r.partition_key, r.explicit_hash_key))
        .collect();
    assert_eq!(
        got,
        [
            ("b", None),
            ("a", Some("7")),
            ("b", Some("9")),
            ("a", Some("7"))
        ]
    );
}

#[test]
fn an_empty_builder_gives_the_empty_aggregate() {
    let mut builder = AggregateBuilder::new();
    assert!(builder.is_empty());
    assert_eq!(builder.encoded_len(), EMPTY_AGGREGATE_LEN);
    let data = builder.finish();
    let mut expected = MAGIC.to_vec();
    expected.extend(hex("d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(data, expected);
    assert_eq!(deaggregate(&data), Ok(Deaggregated::Aggregated(vec![])));
}

#[test]
fn the_builder_is_empty_and_reusable_after_finish() {
    let mut builder = AggregateBuilder::new();
    builder.push("a", Some("1"), b"first aggregate");
    builder.finish();
    assert_eq!(
        (builder.len(), builder.encoded_len()),
        (0, EMPTY_AGGREGATE_LEN)
    );
    builder.push("z", None, b"x");
    let mut fresh = AggregateBuilder::new();
    fresh.push("z", None, b"x");
    assert_eq!(builder.finish(), fresh.finish());
}

#[test]
fn data_without_the_magic_is_one_plain_record() {
    for data in [
        &b""[..],
        b"{\"event_type\":\"booking\"}",
        &MAGIC[..3],
        b"\xf3\x89\x9a",
    ] {
        assert_eq!(deaggregate(data), Ok(Deaggregated::Single(data)));
        assert!(!is_aggregated(data));
    }
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped_and_fields_may_come_in_any_order() {
    let body = hex("
        1a 20                      -- record 0, before the tables it names
           28 96 01                --   field 5 varint
           1a 01 78                --   data
           31 01 02 03 04 05 06 07 08  -- field 6 fixed64
           22 04 0a 01 6b 6b       --   a tag (field 4), skipped unread
           3d 01 02 03 04          --   field 7 fixed32
           08 01                   --   partition_key_index 1
           43 48 01 44             --   group 8 holding field 9 varint, end group 8
        0a 01 61                   -- partition key 0: a
        f8 ff ff ff 0f 2a          -- field 2^29-1 varint
        0a 01 62                   -- partition key 1: b
        62 00                      -- field 12, empty
        08 07                      -- field 1 as varint: wrong wire type, unknown
        1a 04 08 00 1a 00          -- record 1: key a, empty data
        "
    .lines()
    .map(|l| l.split("--").next().unwrap())
    .collect::<String>()
    .as_str());
    assert_eq!(
        records(&frame(&body)),
        [
            UserRecordRef {
                sub_sequence_number: 0,
                partition_key: "b",
                explicit_hash_key: None,
                data: b"x",
            },
            UserRecordRef {
                sub_sequence_number: 1,
                partition_key: "a",
                explicit_hash_key: None,
                data: b"",
            },
        ]
    );
}

#[test]
fn a_repeated_scalar_field_keeps_its_last_value() {
    let body = hex("0a 01 61  0a 01 62  1a 09 08 00 1a 01 78 08 01 1a 00");
    let data = frame(&body);
    let got = records(&data);
    assert_eq!((got[0].partition_key, got[0].data), ("b", &b""[..]));
}

#[test]
fn a_bad_digest_is_a_checksum_mismatch() {
    let mut builder = AggregateBuilder::new();
    builder.push("a", None, b"{}");
    let good = builder.finish();
    let mut bad_digest = good.clone();
    *bad_digest.last_mut().unwrap() ^= 1;
    let mut bad_body = good.clone();
    bad_body[MAGIC.len() + 2] ^= 0x20;
    for data in [bad_digest, bad_body] {
        let e = error(&data);
        assert_eq!(e, AggregateError::ChecksumMismatch);
        assert_eq!(e.kind(), "aggregate_checksum_mismatch");
    }
}

/// Each malformed body, framed with a correct digest, and the error it must give.
#[test]
fn malformed_protobuf_is_reported_with_offset_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        // Offsets count from the magic: the body starts at 4.
        ("0a", 5, "truncated varint"),
        ("0a 05 61", 5, "length exceeds the bytes left"),
        (
            "0a ff ff ff ff ff ff ff ff ff 7f",
            5,
            "varint overflows 64 bits",
        ),
        (
            "0a 80 80 80 80 80 80 80 80 80 80 01",
            5,
            "varint overflows 64 bits",
        ),
        ("0a 01 ff", 6, "partition key is not UTF-8"),
        ("0a 02 61 ff", 7, "partition key is not UTF-8"),
        ("12 01 c3", 6, "explicit hash key is not UTF-8"),
        ("1a 04 08 00 1a 00", 6, "partition_key_index out of range"),
        (
            "0a 01 61 1a 06 08 00 10 00 1a 00",
            9,
            "explicit_hash_key_index out of range",
        ),
        (
            "0a 01 61 1a 04 08 01 1a 00",
            9,
            "partition_key_index out of range",
        ),
        (
            "0a 01 61 1a 0d 08 ff ff ff ff ff ff ff ff ff 01 1a 00",
            9,
            "partition_key_index out of range",
        ),
        (
            "0a 01 61 1a 02 1a 00",
            9,
            "record has no partition_key_index",
        ),
        ("0a 01 61 1a 02 08 00", 9, "record has no data"),
        ("0a 01 61 1a 03 08 00 1a", 12, "truncated varint"),
        (
            "0a 01 61 1a 04 08 00 1a 05",
            12,
            "length exceeds the bytes left",
        ),
        ("00", 4, "field number 0"),
        ("0f", 5, "invalid wire type"),
        ("0e", 5, "invalid wire type"),
        ("0c", 5, "end-group without start-group"),
        ("0b", 5, "truncated group"),
        ("0b 14", 5, "end-group does not match start-group"),
        ("0b 13 14 0c 0c", 9, "end-group without start-group"),
        ("09 01 02 03", 5, "truncated fixed64"),
        ("0d 01 02 03", 5, "truncated fixed32"),
        ("80 80 80 80 80 01", 4, "field number too large"),
        ("30", 5, "truncated varint"),
    ];
    for (body, offset, reason) in cases {
        let got = error(&frame(&hex(body)));
        assert_eq!(
            got,
            AggregateError::Malformed {
                offset: *offset,
                reason
            },
            "body {body}"
        );
        assert_eq!(got.kind(), "aggregate_malformed");
    }
}

#[test]
fn groups_nested_too_deeply_are_refused_without_recursion() {
    let body: Vec<u8> = std::iter::repeat_n(0x0b, 10_000).collect();
    assert_eq!(
        error(&frame(&body)),
        AggregateError::Malformed {
            offset: 4 + MAX_GROUP_DEPTH,
            reason: "groups nested too deeply"
        }
    );
    // Just within the limit, properly closed, is fine.
    let mut ok = vec![0x0b; MAX_GROUP_DEPTH];
    ok.extend(std::iter::repeat_n(0x0c, MAX_GROUP_DEPTH));
    assert_eq!(records(&frame(&ok)), []);
}

#[test]
fn the_magic_without_room_for_a_digest_is_malformed_not_plain() {
    for len in 4..EMPTY_AGGREGATE_LEN {
        let mut data = MAGIC.to_vec();
        data.resize(len, 0);
        assert!(!is_aggregated(&data));
        assert_eq!(
            error(&data),
            AggregateError::Malformed {
                offset: len,
                reason: "too short for magic and digest"
            }
        );
    }
}

#[test]
fn errors_display_their_reason() {
    assert_eq!(
        malformed(9, "record has no data").to_string(),
        "malformed aggregated record at byte 9: record has no data"
    );
    assert_eq!(
        AggregateError::ChecksumMismatch.to_string(),
        "aggregated record fails its MD5 check"
    );
}

#[test]
fn varint_lengths_match_the_encoding() {
    for v in [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        u32::MAX as u64,
        u64::MAX >> 1,
        u64::MAX,
    ] {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        assert_eq!(buf.len(), varint_len(v), "{v}");
        let mut reader = Reader::new(&buf, 0);
        assert_eq!(reader.varint(), Ok(v));
        assert!(reader.is_empty());
    }
}

/// A user record as pushed: partition key, explicit hash key, data.
type Input = (String, Option<String>, Vec<u8>);

fn inputs() -> impl Strategy<Value = Vec<Input>> {
    // Keys from a small pool, so that deduplication is exercised, or anything at all
    // (unicode, empty); hash keys as the 128-bit decimals KPL writes, or any string.
    let key = prop_oneof![
        prop::sample::select(vec!["FH0123-20261201", "FH0999-20261201", "é✈️", ""])
            .prop_map(String::from),
        any::<String>(),
    ];
    let hash_key = prop::option::of(prop_oneof![
        any::<u128>().prop_map(|k| k.to_string()),
        prop::sample::select(vec!["0", "340282366920938463463374607431768211455"])
            .prop_map(String::from),
        any::<String>(),
    ]);
    let data = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..400),
        // A length needing a three-byte varint.
        Just(vec![b'x'; 20_000]),
    ];
    prop::collection::vec((key, hash_key, data), 0..40)
}

fn build(builder: &mut AggregateBuilder, inputs: &[Input]) -> Vec<u8> {
    for (i, (key, hash_key, data)) in inputs.iter().enumerate() {
        let predicted = builder.encoded_len_with(key, hash_key.as_deref(), data.len());
        assert_eq!(builder.push(key, hash_key.as_deref(), data), i as u32);
        assert_eq!(builder.encoded_len(), predicted);
        assert_eq!(builder.len(), i + 1);
    }
    let len = builder.encoded_len();
    let out = builder.finish();
    assert_eq!(out.len(), len);
    out
}

/// Every slice the decoder returns lies inside its input.
fn assert_borrowed_from(data: &[u8], records: &[UserRecordRef<'_>]) {
    let range = data.as_ptr_range();
    let inside = |s: &[u8]| {
        let r = s.as_ptr_range();
        range.start <= r.start && r.end <= range.end
    };
    for r in records {
        assert!(inside(r.data) && inside(r.partition_key.as_bytes()));
        assert!(r.explicit_hash_key.is_none_or(|k| inside(k.as_bytes())));
    }
}

proptest! {
    #[test]
    fn aggregates_round_trip(inputs in inputs()) {
        let mut builder = AggregateBuilder::new();
        let data = build(&mut builder, &inputs);
        prop_assert!(is_aggregated(&data));
        let got = records(&data);
        assert_borrowed_from(&data, &got);
        let got: Vec<Input> = got
            .iter()
            .enumerate()
            .map(|(i, r)| {
                assert_eq!(r.sub_sequence_number, i as u32);
                (r.partition_key.to_string(), r.explicit_hash_key.map(String::from), r.data.to_vec())
            })
            .collect();
        prop_assert_eq!(&got, &inputs);
        // Reused, the builder writes what a fresh one writes.
        let again = build(&mut builder, &inputs);
        prop_assert_eq!(again, data);
    }

    #[test]
    fn deaggregate_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        with_magic in any::<bool>(),
        framed in any::<bool>(),
    ) {
        let data = match (with_magic, framed) {
            (_, true) => frame(&bytes),
            (true, false) => [&MAGIC[..], &bytes].concat(),
            (false, false) => bytes,
        };
        if let Ok(Deaggregated::Aggregated(records)) = deaggregate(&data) {
            assert_borrowed_from(&data, &records);
        }
    }

    #[test]
    fn deaggregate_never_panics_on_mutated_aggregates(
        inputs in inputs(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 1..8),
        reframe in any::<bool>(),
    ) {
        let data = build(&mut AggregateBuilder::new(), &inputs);
        let mut body = data[MAGIC.len()..data.len() - DIGEST_LEN].to_vec();
        for (at, byte, op) in edits {
            if body.is_empty() {
                body.push(byte);
                continue;
            }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => body[i] ^= 1 << (byte % 8),
                2 => body.insert(i, byte),
                _ => body.truncate(i),
            }
        }
        // With a recomputed digest the parser sees the damage; without, the checksum
        // must catch it (or the edits cancelled out).
        let damaged = if reframe {
            frame(&body)
        } else {
            [&MAGIC[..], &body, &data[data.len() - DIGEST_LEN..]].concat()
        };
        match deaggregate(&damaged) {
            Ok(Deaggregated::Aggregated(records)) => assert_borrowed_from(&damaged, &records),
            Ok(Deaggregated::Single(_)) => prop_assert!(false, "lost the magic"),
            Err(AggregateError::ChecksumMismatch) => prop_assert!(!reframe),
            Err(AggregateError::Malformed { offset, .. }) => {
                prop_assert!(reframe);
                prop_assert!(offset <= damaged.len());
            }
        }
    }
}
