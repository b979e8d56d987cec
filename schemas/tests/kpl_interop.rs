//! Interoperability of [`flyhigh_schemas::aggregation`] with the Python
//! `aws-kinesis-agg` library (pinned in `requirements-test.txt`), both ways.
//!
//! The Python side is `tests/interop/kpl_agg.py`, run with the interpreter in
//! `FLYHIGH_PYTHON`, which `scripts/test.sh` exports after installing the pins into
//! `.venv`. Without it these tests fail rather than skip: a silent skip would let
//! the wire format drift unnoticed.
//!
//! What `aws-kinesis-agg` 1.2.3 does differently from us, found while writing these
//! tests (each pinned below, so an upgrade that changes it is noticed):
//! - Its deaggregator treats a record whose MD5 does not match as a plain,
//!   non-aggregated record and passes the whole aggregate on as one user record; so
//!   does it for a protobuf it cannot parse, and for the empty aggregate (magic and
//!   digest only). We return `ChecksumMismatch` / `Malformed` / zero records.
//! - Its deaggregator gives a record without an explicit hash key the first key of
//!   the aggregate's explicit-hash-key table when that table is not empty (it reads
//!   the unset index as 0). The bytes we write say "no key"; ours reads them so.
//! - Its aggregator treats an empty explicit hash key as none. We keep "" (Kinesis
//!   rejects an empty explicit hash key anyway, so producers never send one).

use std::io::Write;
use std::process::{Command, Stdio};

use flyhigh_schemas::aggregation::{
    AggregateBuilder, AggregateError, DIGEST_LEN, Deaggregated, deaggregate,
};
use serde_json::{Value, json};

/// A user record: partition key, explicit hash key, data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Input {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
}

fn input(partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) -> Input {
    Input {
        partition_key: partition_key.into(),
        explicit_hash_key: explicit_hash_key.map(String::from),
        data: data.to_vec(),
    }
}

/// A mix the way our producer and other KPL producers write it: flight ids repeated,
/// search ids unique (more than 127 keys, so table indexes take two-byte varints),
/// unicode keys, explicit hash keys at both ends of the 128-bit space on some
/// records, UTF-8 JSON, binary and empty data, and data long enough for two- and
/// three-byte length varints.
fn mixed_inputs() -> Vec<Input> {
    let mut inputs = vec![
        input(
            "FH0123-20261201",
            None,
            br#"{"event_type":"booking","seats":2}"#,
        ),
        input("é✈️ 東京", Some("0"), "UTF-8 data: ✈️ 東京".as_bytes()),
        input(
            "FH0123-20261201",
            Some("340282366920938463463374607431768211455"),
            b"\x00\xff\xf3\x89\x9a\xc2 binary",
        ),
        input("FH0999-20261201", None, b""),
        input("FH0999-20261201", Some("0"), &[0x5a; 200]),
        input("big", None, &vec![b'x'; 20_000]),
    ];
    for i in 0..150u32 {
        let data = format!(r#"{{"event_type":"search","n":{i}}}"#);
        let explicit_hash_key = (i % 7 == 0).then(|| (u128::MAX / 150 * u128::from(i)).to_string());
        inputs.push(input(
            &format!("{i:032x}"),
            explicit_hash_key.as_deref(),
            data.as_bytes(),
        ));
    }
    inputs
}

fn ours(inputs: &[Input]) -> Vec<u8> {
    let mut builder = AggregateBuilder::new();
    for r in inputs {
        builder.push(&r.partition_key, r.explicit_hash_key.as_deref(), &r.data);
    }
    builder.finish()
}

/// Runs the Python helper on one request.
fn python(request: Value) -> Value {
    let interpreter = std::env::var("FLYHIGH_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FLYHIGH_PYTHON is not set: run these tests through scripts/test.sh, which \
             installs aws-kinesis-agg into .venv and exports FLYHIGH_PYTHON (or set it to \
             a python with requirements-test.txt installed)"
        )
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/kpl_agg.py");
    let mut child = Command::new(&interpreter)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {interpreter}: {e}"));
    let body = serde_json::to_vec(&request).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed: {stderr}");
    // The deaggregator reports some failures only on stderr; none is expected here.
    assert!(
        stderr.trim().is_empty(),
        "{script} wrote to stderr: {stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The aggregates Python's `RecordAggregator` writes for these records.
fn python_aggregates(inputs: &[Input]) -> Vec<Value> {
    let records: Vec<Value> = inputs
        .iter()
        .map(|r| {
            json!({
                "partition_key": r.partition_key,
                "explicit_hash_key": r.explicit_hash_key,
                "data": to_hex(&r.data),
            })
        })
        .collect();
    let answer = python(json!({"op": "aggregate", "records": records}));
    answer["aggregates"].as_array().unwrap().clone()
}

/// A user record as Python's `deaggregate_records` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PythonRecord {
    sequence_number: String,
    sub_sequence_number: Option<u64>,
    aggregated: bool,
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
}

/// Python's `deaggregate_records` over Kinesis records (sequence number, partition
/// key, data) delivered as Lambda delivers them.
fn python_deaggregate(records: &[(&str, &str, &[u8])]) -> Vec<PythonRecord> {
    let records: Vec<Value> = records
        .iter()
        .map(|(seq, pk, data)| {
            json!({"sequence_number": seq, "partition_key": pk, "data": to_hex(data)})
        })
        .collect();
    let answer = python(json!({"op": "deaggregate", "records": records}));
    answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| PythonRecord {
            sequence_number: r["sequence_number"].as_str().unwrap().into(),
            sub_sequence_number: r["sub_sequence_number"].as_u64(),
            aggregated: r["aggregated"].as_bool().unwrap(),
            partition_key: r["partition_key"].as_str().unwrap().into(),
            explicit_hash_key: r["explicit_hash_key"].as_str().map(String::from),
            data: from_hex(r["data"].as_str().unwrap()),
        })
        .collect()
}

#[test]
fn python_aggregates_read_back_in_rust() {
    let inputs = mixed_inputs();
    let aggregates = python_aggregates(&inputs);
    assert_eq!(aggregates.len(), 1, "all fit in one aggregate");
    let aggregate = &aggregates[0];
    // Python gives the aggregate the first user record's keys.
    assert_eq!(aggregate["partition_key"], "FH0123-20261201");
    assert_eq!(aggregate["explicit_hash_key"], Value::Null);
    let data = from_hex(aggregate["data"].as_str().unwrap());
    let Ok(Deaggregated::Aggregated(records)) = deaggregate(&data) else {
        panic!("not read as an aggregate: {:?}", deaggregate(&data));
    };
    let got: Vec<Input> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r.sub_sequence_number as usize, i);
            input(r.partition_key, r.explicit_hash_key, r.data)
        })
        .collect();
    assert_eq!(got, inputs);
}

#[test]
fn our_aggregates_read_back_in_python() {
    let inputs = mixed_inputs();
    let seq = "49590338271490256608559692538361571095921575989136588898";
    let plain = br#"{"event_type":"search"}"#;
    let got = python_deaggregate(&[
        (seq, "FH0123-20261201", &ours(&inputs)),
        (
            "49590338271490256608559692538361571095921575989136588899",
            "k",
            plain,
        ),
    ]);
    assert_eq!(got.len(), inputs.len() + 1);
    // Python's deaggregator misreads an absent explicit hash key as the table's first
    // (see the module docs); every other field must come back exactly.
    let first_table_key = inputs.iter().find_map(|r| r.explicit_hash_key.clone());
    for (i, (r, want)) in got.iter().zip(&inputs).enumerate() {
        assert_eq!(r.sequence_number, seq);
        assert_eq!(r.sub_sequence_number, Some(i as u64));
        assert!(r.aggregated);
        assert_eq!(r.partition_key, want.partition_key);
        assert_eq!(r.data, want.data);
        let python_reads = want
            .explicit_hash_key
            .clone()
            .or_else(|| first_table_key.clone());
        assert_eq!(r.explicit_hash_key, python_reads, "record {i}");
    }
    let last = got.last().unwrap();
    assert!(!last.aggregated);
    assert_eq!(
        (last.partition_key.as_str(), &last.data[..]),
        ("k", &plain[..])
    );
}

#[test]
fn an_aggregate_without_explicit_hash_keys_reads_back_exactly_in_python() {
    let inputs: Vec<Input> = mixed_inputs()
        .into_iter()
        .map(|r| Input {
            explicit_hash_key: None,
            ..r
        })
        .collect();
    let got = python_deaggregate(&[("7", "FH0123-20261201", &ours(&inputs))]);
    let got: Vec<Input> = got
        .iter()
        .map(|r| input(&r.partition_key, r.explicit_hash_key.as_deref(), &r.data))
        .collect();
    assert_eq!(got, inputs);
}

#[test]
fn python_and_rust_write_byte_identical_aggregates() {
    for inputs in [
        mixed_inputs(),
        vec![input("a", Some("1"), b"x"), input("a", None, b"yz")],
        vec![input("only", None, b"{}")],
    ] {
        let python = python_aggregates(&inputs);
        assert_eq!(python.len(), 1);
        assert_eq!(
            python[0]["data"].as_str().unwrap(),
            to_hex(&ours(&inputs)),
            "{inputs:?}"
        );
    }
}

#[test]
fn python_passes_a_checksum_mismatch_on_as_a_plain_record_where_we_refuse_it() {
    let mut data = ours(&[input("a", None, b"{}"), input("b", None, b"{}")]);
    let last = data.len() - 1;
    data[last] ^= 0xff;
    assert_eq!(deaggregate(&data), Err(AggregateError::ChecksumMismatch));
    let got = python_deaggregate(&[("9", "a", &data)]);
    assert_eq!(got.len(), 1);
    assert!(!got[0].aggregated);
    assert_eq!(got[0].data, data);
}

#[test]
fn python_passes_the_empty_aggregate_on_as_a_plain_record_where_we_read_no_records() {
    let empty = AggregateBuilder::new().finish();
    assert_eq!(empty.len(), 4 + DIGEST_LEN);
    assert_eq!(deaggregate(&empty), Ok(Deaggregated::Aggregated(vec![])));
    let got = python_deaggregate(&[("9", "a", &empty)]);
    assert_eq!(got.len(), 1);
    assert!(!got[0].aggregated);
    assert_eq!(got[0].data, empty);
}
