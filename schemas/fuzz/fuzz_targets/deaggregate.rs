//! Fuzz target: `deaggregate` on arbitrary bytes never panics, never allocates out of
//! proportion to its input, and returns only slices of its input.
//!
//! The MD5 trailer would stop almost every mutation at the checksum, so each input is
//! also decoded a second time with its digest repaired: the input's protobuf body
//! (between magic and digest when it has the shape of an aggregate, else the whole
//! input) framed with the magic and its correct MD5. That second pass is what reaches
//! the protobuf parser.

#![no_main]

use flyhigh_schemas::aggregation::{
    AggregateBuilder, DIGEST_LEN, Deaggregated, MAGIC, UserRecordRef, deaggregate, is_aggregated,
};
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};

/// The smallest encoded record (`1a 04 08 00 1a 00`): no input can hold more records
/// than its length over this.
const MIN_RECORD_BYTES: usize = 6;

fuzz_target!(|data: &[u8]| {
    check(data);
    let body = if is_aggregated(data) {
        &data[MAGIC.len()..data.len() - DIGEST_LEN]
    } else {
        data
    };
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(body);
    framed.extend_from_slice(&Md5::digest(body));
    check(&framed);
});

fn check(input: &[u8]) {
    match deaggregate(input) {
        Ok(Deaggregated::Single(single)) => {
            assert!(!input.starts_with(&MAGIC));
            assert_eq!(single.as_ptr_range(), input.as_ptr_range());
        }
        Ok(Deaggregated::Aggregated(records)) => {
            assert!(records.len() * MIN_RECORD_BYTES <= input.len());
            for (i, r) in records.iter().enumerate() {
                assert_eq!(r.sub_sequence_number as usize, i);
                assert!(inside(input, r.data));
                assert!(inside(input, r.partition_key.as_bytes()));
                if let Some(key) = r.explicit_hash_key {
                    assert!(inside(input, key.as_bytes()));
                }
            }
            round_trip(&records);
        }
        Err(e) => {
            // Every error has a stable label.
            assert!(e.kind().starts_with("aggregate_"));
        }
    }
}

/// Whatever was read, written again by the builder, reads back the same.
fn round_trip(records: &[UserRecordRef<'_>]) {
    let mut builder = AggregateBuilder::new();
    for r in records {
        let expected = builder.encoded_len_with(r.partition_key, r.explicit_hash_key, r.data.len());
        builder.push(r.partition_key, r.explicit_hash_key, r.data);
        assert_eq!(builder.encoded_len(), expected);
    }
    let bytes = builder.finish();
    match deaggregate(&bytes) {
        Ok(Deaggregated::Aggregated(again)) => assert_eq!(again, records),
        other => panic!("re-encoded aggregate reads back as {other:?}"),
    }
}

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr_range(), inner.as_ptr_range());
    o.start <= i.start && i.end <= o.end
}
