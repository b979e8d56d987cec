//! The awsJson wire bits the proxy needs, as pure functions: which service and
//! operation a request is, the error bodies it answers with, what each PutRecords
//! record costs against a shard allowance and which shard it goes to, and the
//! Kinesis PutRecords surgery (drop the records chosen to fail from the request,
//! then put injected failures back into the upstream's answer at their original
//! positions).
//!
//! `aws-sdk-kinesis` speaks awsJson1.1 (`Content-Type: application/x-amz-json-1.1`,
//! `X-Amz-Target: Kinesis_20131202.<Operation>`, blobs as base64 strings); it never
//! sends CBOR, which only other SDKs (Java) use for Kinesis. `aws-sdk-dynamodb`
//! speaks awsJson1.0 (`application/x-amz-json-1.0`,
//! `X-Amz-Target: DynamoDB_20120810.<Operation>`); the proxy only answers whole
//! DynamoDB requests with errors, it never rewrites their bodies.

use serde_json::{Map, Value};

use crate::allowance::Charge;
use crate::md5;

/// `X-Amz-Target` of a PutRecords request.
pub(crate) const PUT_RECORDS_TARGET: &str = "Kinesis_20131202.PutRecords";
/// The awsJson1.1 content type of Kinesis, of requests, answers and error answers alike.
pub(crate) const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// What an injected per-record failure says. Real Kinesis names the shard; the
/// proxy does not know the stream's shard map, and clients key on `ErrorCode`.
const RECORD_FAILURE_MESSAGE: &str =
    "Rate exceeded for shard in stream under account 123456789012. (injected by FaultProxy)";

/// The service a request is for, by its `X-Amz-Target`: it decides the shape of
/// an injected error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// `Kinesis_20131202.*`, and anything the proxy does not recognise (it was
    /// written for Kinesis first).
    Kinesis,
    /// `DynamoDB_20120810.*`.
    DynamoDb,
}

impl Service {
    pub(crate) fn of_target(target: Option<&[u8]>) -> Service {
        match target {
            Some(t) if t.starts_with(b"DynamoDB_20120810.") => Service::DynamoDb,
            _ => Service::Kinesis,
        }
    }

    /// The content type of the service's answers.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Service::Kinesis => AMZ_JSON,
            Service::DynamoDb => "application/x-amz-json-1.0",
        }
    }
}

/// A whole-request error the proxy answers with instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InjectedError {
    /// HTTP 500 `InternalFailure` (Kinesis) or `InternalServerError` (DynamoDB):
    /// the service failed; retryable.
    InternalFailure,
    /// HTTP 400 `ProvisionedThroughputExceededException`: the shard's or the
    /// table's throughput.
    ProvisionedThroughputExceeded,
    /// HTTP 400 `ThrottlingException`: the account's API rate limit.
    Throttling,
}

impl InjectedError {
    /// The kinds `request_error_rate` picks from, each equally likely.
    pub(crate) const ALL: [InjectedError; 3] = [
        InjectedError::InternalFailure,
        InjectedError::ProvisionedThroughputExceeded,
        InjectedError::Throttling,
    ];

    /// The kinds `throttle_rate` picks from, each equally likely.
    pub(crate) const THROTTLING: [InjectedError; 2] = [
        InjectedError::ProvisionedThroughputExceeded,
        InjectedError::Throttling,
    ];

    pub(crate) fn status(self) -> u16 {
        match self {
            InjectedError::InternalFailure => 500,
            InjectedError::ProvisionedThroughputExceeded | InjectedError::Throttling => 400,
        }
    }

    /// The error code, as the `x-amzn-ErrorType` header and (with a namespace
    /// for DynamoDB) the body's `__type` carry it.
    pub(crate) fn code(self, service: Service) -> &'static str {
        match (self, service) {
            (InjectedError::InternalFailure, Service::Kinesis) => "InternalFailure",
            (InjectedError::InternalFailure, Service::DynamoDb) => "InternalServerError",
            (InjectedError::ProvisionedThroughputExceeded, _) => {
                "ProvisionedThroughputExceededException"
            }
            (InjectedError::Throttling, _) => "ThrottlingException",
        }
    }

    fn message(self, service: Service) -> &'static str {
        match (self, service) {
            (InjectedError::InternalFailure, Service::Kinesis) => {
                "The request processing has failed because of an unknown error, exception or failure. (injected by FaultProxy)"
            }
            (InjectedError::InternalFailure, Service::DynamoDb) => {
                "Internal server error (injected by FaultProxy)"
            }
            (InjectedError::ProvisionedThroughputExceeded, Service::Kinesis) => {
                "Rate exceeded for stream under account 123456789012. (injected by FaultProxy)"
            }
            (InjectedError::ProvisionedThroughputExceeded, Service::DynamoDb) => {
                "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API. (injected by FaultProxy)"
            }
            (InjectedError::Throttling, _) => "Rate exceeded (injected by FaultProxy)",
        }
    }

    /// The error body: `{"__type":"<code>","message":"..."}` for Kinesis,
    /// `{"__type":"com.amazonaws.dynamodb.v20120810#<code>","message":"..."}` for
    /// DynamoDB.
    pub(crate) fn body(self, service: Service) -> Vec<u8> {
        let code = self.code(service);
        let kind = match service {
            Service::Kinesis => code.to_owned(),
            Service::DynamoDb => format!("com.amazonaws.dynamodb.v20120810#{code}"),
        };
        let body = serde_json::json!({"__type": kind, "message": self.message(service)});
        body.to_string().into_bytes()
    }
}

/// Why a PutRecords body could not be handled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BodyError {
    #[error("not a JSON object")]
    NotJsonObject,
    #[error("no `Records` array")]
    NoRecords,
    #[error("upstream answered {got} results for {sent} records")]
    CountMismatch { sent: usize, got: usize },
}

/// A parsed PutRecords request body.
#[derive(Debug)]
pub(crate) struct PutRecordsRequest {
    body: Map<String, Value>,
}

impl PutRecordsRequest {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        let body = match serde_json::from_slice(bytes) {
            Ok(Value::Object(body)) => body,
            _ => return Err(BodyError::NotJsonObject),
        };
        if !matches!(body.get("Records"), Some(Value::Array(_))) {
            return Err(BodyError::NoRecords);
        }
        Ok(PutRecordsRequest { body })
    }

    fn records(&self) -> &[Value] {
        match self.body.get("Records") {
            Some(Value::Array(records)) => records,
            _ => &[],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records().len()
    }

    /// What each record costs against a shard allowance, in request order: its
    /// hash key (`ExplicitHashKey`, a decimal string, or else the MD5 of
    /// `PartitionKey`) and its data's decoded length plus its partition key's
    /// bytes. `None` for a record without a string `PartitionKey` and `Data`, or
    /// with an `ExplicitHashKey` that is not a 128-bit decimal: Kinesis would
    /// refuse the request, which is the upstream's to say.
    pub(crate) fn charges(&self) -> Vec<Option<Charge>> {
        self.records().iter().map(charge).collect()
    }

    /// The body to forward: this request without the records marked in `failed`
    /// (same length as the records), every other field kept.
    pub(crate) fn without(&self, failed: &[bool]) -> Vec<u8> {
        let kept: Vec<Value> = self
            .records()
            .iter()
            .zip(failed)
            .filter(|&(_, &failed)| !failed)
            .map(|(record, _)| record.clone())
            .collect();
        let mut body = self.body.clone();
        body.insert("Records".into(), Value::Array(kept));
        Value::Object(body).to_string().into_bytes()
    }
}

fn charge(record: &Value) -> Option<Charge> {
    let partition_key = record.get("PartitionKey")?.as_str()?;
    let data = record.get("Data")?.as_str()?;
    let hash_key = match record.get("ExplicitHashKey") {
        None | Some(Value::Null) => md5::hash_key(partition_key),
        Some(key) => key.as_str()?.parse().ok()?,
    };
    Some(Charge {
        hash_key,
        bytes: (base64_decoded_len(data) + partition_key.len()) as u64,
    })
}

/// How many bytes standard base64 `text` decodes to (padded or not), from its
/// length alone: every 4 characters carry 3 bytes, and 2 or 3 trailing ones 1 or 2.
fn base64_decoded_len(text: &str) -> usize {
    text.trim_end_matches('=').len() * 3 / 4
}

fn injected_record_failure() -> Value {
    serde_json::json!({
        "ErrorCode": "ProvisionedThroughputExceededException",
        "ErrorMessage": RECORD_FAILURE_MESSAGE,
    })
}

fn is_failure(result: &Value) -> bool {
    result.get("ErrorCode").is_some_and(|code| !code.is_null())
}

/// The answer when every record of a request was chosen to fail.
pub(crate) fn all_failed(count: usize) -> Vec<u8> {
    serde_json::json!({
        "FailedRecordCount": count,
        "Records": vec![injected_record_failure(); count],
    })
    .to_string()
    .into_bytes()
}

/// An upstream PutRecords answer merged with the injected failures.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Merged {
    pub(crate) body: Vec<u8>,
    /// Records the upstream reports as written (results without `ErrorCode`).
    pub(crate) written: u64,
}

/// Puts the injected failures (`failed[i]`) back among the upstream's results for
/// the forwarded records, in the original order, and recounts
/// `FailedRecordCount` (the upstream's own failures included). Other fields of the
/// upstream's answer are kept.
pub(crate) fn merge(upstream: &[u8], failed: &[bool]) -> Result<Merged, BodyError> {
    let mut answer = match serde_json::from_slice(upstream) {
        Ok(Value::Object(answer)) => answer,
        _ => return Err(BodyError::NotJsonObject),
    };
    let Some(Value::Array(results)) = answer.remove("Records") else {
        return Err(BodyError::NoRecords);
    };
    let sent = failed.iter().filter(|&&f| !f).count();
    if results.len() != sent {
        return Err(BodyError::CountMismatch {
            sent,
            got: results.len(),
        });
    }
    let written = results.iter().filter(|r| !is_failure(r)).count() as u64;
    let mut upstream_results = results.into_iter();
    // Lengths match (checked above), so `next()` never runs dry here.
    let merged: Vec<Value> = failed
        .iter()
        .filter_map(|&failed| {
            if failed {
                Some(injected_record_failure())
            } else {
                upstream_results.next()
            }
        })
        .collect();
    let failed_count = merged.iter().filter(|r| is_failure(r)).count();
    answer.insert("FailedRecordCount".into(), failed_count.into());
    answer.insert("Records".into(), Value::Array(merged));
    Ok(Merged {
        body: Value::Object(answer).to_string().into_bytes(),
        written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn request(keys: &[&str]) -> Vec<u8> {
        let records: Vec<Value> = keys
            .iter()
            .map(|k| serde_json::json!({"Data": "ZGF0YQ==", "PartitionKey": k}))
            .collect();
        serde_json::json!({"StreamName": "s", "Records": records})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn without_drops_the_chosen_records_and_keeps_the_rest_in_order() {
        let req = PutRecordsRequest::parse(&request(&["a", "b", "c", "d"])).unwrap();
        assert_eq!(req.len(), 4);
        let forwarded = json(&req.without(&[false, true, false, true]));
        assert_eq!(forwarded["StreamName"], "s");
        let keys: Vec<&str> = forwarded["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["PartitionKey"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["a", "c"]);
    }

    #[test]
    fn base64_lengths_decode_without_decoding() {
        for (text, len) in [
            ("", 0),
            ("YQ==", 1),
            ("YWI=", 2),
            ("YWJj", 3),
            ("ZGF0YQ==", 4),
            ("ZGF0YQ", 4),
            ("YWJjZA", 4),
            ("YWJjZGU", 5),
        ] {
            assert_eq!(base64_decoded_len(text), len, "{text:?}");
        }
    }

    #[test]
    fn a_record_costs_its_data_and_key_and_goes_by_its_hash_key() {
        let body = serde_json::json!({"StreamName": "s", "Records": [
            {"Data": "ZGF0YQ==", "PartitionKey": "abc"},
            {"Data": "YWI=", "PartitionKey": "k", "ExplicitHashKey": "340282366920938463463374607431768211455"},
            {"Data": "", "PartitionKey": "k", "ExplicitHashKey": "2e3"},
            {"Data": "ZGF0YQ==", "PartitionKey": "k", "ExplicitHashKey": "340282366920938463463374607431768211456"},
            {"PartitionKey": "no data"},
        ]});
        let req = PutRecordsRequest::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            req.charges(),
            [
                Some(Charge {
                    hash_key: 0x900150983cd24fb0d6963f7d28e17f72, // MD5("abc")
                    bytes: 4 + 3,
                }),
                Some(Charge {
                    hash_key: u128::MAX,
                    bytes: 2 + 1,
                }),
                None,
                None,
                None,
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_a_put_records_object_is_rejected() {
        assert_eq!(
            PutRecordsRequest::parse(b"\xd9\xd9\xf7").unwrap_err(),
            BodyError::NotJsonObject
        );
        assert_eq!(
            PutRecordsRequest::parse(br#"{"StreamName":"s"}"#).unwrap_err(),
            BodyError::NoRecords
        );
    }

    #[test]
    fn merge_puts_injected_failures_back_in_place_and_recounts() {
        let upstream = serde_json::json!({
            "FailedRecordCount": 1,
            "EncryptionType": "NONE",
            "Records": [
                {"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
                {"ErrorCode": "InternalFailure", "ErrorMessage": "boom"},
            ],
        });
        let merged = merge(upstream.to_string().as_bytes(), &[true, false, true, false]).unwrap();
        assert_eq!(merged.written, 1);
        let answer = json(&merged.body);
        assert_eq!(answer["FailedRecordCount"], 3);
        assert_eq!(answer["EncryptionType"], "NONE");
        let records = answer["Records"].as_array().unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(
            records[0]["ErrorCode"],
            "ProvisionedThroughputExceededException"
        );
        assert_eq!(records[1]["SequenceNumber"], "1");
        assert_eq!(
            records[2]["ErrorCode"],
            "ProvisionedThroughputExceededException"
        );
        assert_eq!(records[3]["ErrorCode"], "InternalFailure");
    }

    #[test]
    fn merge_rejects_an_answer_with_the_wrong_number_of_results() {
        let upstream =
            br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"x"}]}"#;
        assert_eq!(
            merge(upstream, &[false, false]).unwrap_err(),
            BodyError::CountMismatch { sent: 2, got: 1 }
        );
    }

    #[test]
    fn all_failed_counts_every_record() {
        let answer = json(&all_failed(3));
        assert_eq!(answer["FailedRecordCount"], 3);
        assert_eq!(answer["Records"].as_array().unwrap().len(), 3);
        assert!(answer["Records"].as_array().unwrap().iter().all(is_failure));
    }

    #[test]
    fn error_bodies_name_their_type() {
        for kind in InjectedError::ALL {
            let body = json(&kind.body(Service::Kinesis));
            assert_eq!(body["__type"], kind.code(Service::Kinesis));
            assert!(body["message"].as_str().unwrap().contains("FaultProxy"));
        }
        assert_eq!(InjectedError::InternalFailure.status(), 500);
        assert_eq!(InjectedError::Throttling.status(), 400);
    }

    #[test]
    fn dynamodb_error_bodies_carry_the_service_namespace() {
        let body = json(&InjectedError::ProvisionedThroughputExceeded.body(Service::DynamoDb));
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        );
        let body = json(&InjectedError::InternalFailure.body(Service::DynamoDb));
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#InternalServerError"
        );
        assert_eq!(
            InjectedError::Throttling.code(Service::DynamoDb),
            "ThrottlingException"
        );
    }

    #[test]
    fn the_service_comes_from_the_target_prefix() {
        let of = |t: &str| Service::of_target(Some(t.as_bytes()));
        assert_eq!(
            of("DynamoDB_20120810.TransactWriteItems"),
            Service::DynamoDb
        );
        assert_eq!(of(PUT_RECORDS_TARGET), Service::Kinesis);
        assert_eq!(Service::of_target(None), Service::Kinesis);
        assert_eq!(
            Service::DynamoDb.content_type(),
            "application/x-amz-json-1.0"
        );
    }
}
