//! Put-outcome classification: what a PutRecords answer means for each of its
//! records and, once per response, for each shard's rate.
//!
//! Pure: the answer in, [`Fate`]s and per-shard [`Signal`]s out. The worker then
//! resolves, requeues or dead-letters each batch and feeds each signal once to its
//! shard's [`ShardRate`](crate::rate::ShardRate).

use crate::rate::Signal;
use crate::transport::{EntryFailure, EntryResult, TransportError, classify_entry_failure};

/// What becomes of one record of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    Written {
        shard_id: String,
        sequence_number: String,
    },
    /// Retried after backing off.
    Retry { throttled: bool, error: String },
    /// Dead-lettered: retrying cannot help.
    Reject { error: String },
}

/// A whole answer, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    /// One per record, in request order.
    pub fates: Vec<Fate>,
    /// The request failed as a whole (counted as a request error), with why.
    pub request_error: Option<String>,
}

/// Classifies the answer to a request of `n` records.
pub(crate) fn classify(result: Result<Vec<EntryResult>, TransportError>, n: usize) -> Classified {
    let whole = |fate: Fate, error: String| Classified {
        fates: vec![fate; n],
        request_error: Some(error),
    };
    match result {
        Ok(results) if results.len() == n => Classified {
            fates: results
                .into_iter()
                .map(|r| match r {
                    EntryResult::Ok {
                        shard_id,
                        sequence_number,
                    } => Fate::Written {
                        shard_id,
                        sequence_number,
                    },
                    EntryResult::Failed { code, message } => {
                        let error = format!("{code}: {message}");
                        match classify_entry_failure(&code) {
                            EntryFailure::Permanent => Fate::Reject { error },
                            EntryFailure::Throttled => Fate::Retry {
                                throttled: true,
                                error,
                            },
                            EntryFailure::Transient => Fate::Retry {
                                throttled: false,
                                error,
                            },
                        }
                    }
                })
                .collect(),
            request_error: None,
        },
        Ok(results) => {
            // Never guess which records a short answer covers: retry them all.
            let error = format!(
                "PutRecords answered {} results for {n} records",
                results.len()
            );
            whole(
                Fate::Retry {
                    throttled: false,
                    error: error.clone(),
                },
                error,
            )
        }
        Err(TransportError::Permanent(error)) => whole(
            Fate::Reject {
                error: error.clone(),
            },
            error,
        ),
        Err(e) => {
            let throttled = matches!(e, TransportError::Throttled(_));
            let error = e.to_string();
            whole(
                Fate::Retry {
                    throttled,
                    error: error.clone(),
                },
                error,
            )
        }
    }
}

/// One signal per shard of the request (`shards[k]` is the shard of record k):
/// throttled if any of its records was, else failed if any was retried, else
/// clean. Rejected records say nothing about the rate. In order of first
/// appearance.
pub(crate) fn signals(shards: &[usize], fates: &[Fate]) -> Vec<(usize, Signal)> {
    let mut out: Vec<(usize, Signal)> = Vec::new();
    for (&shard, fate) in shards.iter().zip(fates) {
        let signal = match fate {
            Fate::Written { .. } | Fate::Reject { .. } => Signal::Clean,
            Fate::Retry {
                throttled: true, ..
            } => Signal::Throttled,
            Fate::Retry {
                throttled: false, ..
            } => Signal::Failed,
        };
        match out.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, seen)) => *seen = worse(*seen, signal),
            None => out.push((shard, signal)),
        }
    }
    out
}

fn worse(a: Signal, b: Signal) -> Signal {
    use Signal::*;
    match (a, b) {
        (Throttled, _) | (_, Throttled) => Throttled,
        (Failed, _) | (_, Failed) => Failed,
        _ => Clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(seq: &str) -> EntryResult {
        EntryResult::Ok {
            shard_id: "s0".into(),
            sequence_number: seq.into(),
        }
    }

    fn failed(code: &str) -> EntryResult {
        EntryResult::Failed {
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn each_record_is_written_retried_or_rejected_by_its_code() {
        let c = classify(
            Ok(vec![
                ok("1"),
                failed("ProvisionedThroughputExceededException"),
                failed("InternalFailure"),
                failed("KMSDisabledException"),
            ]),
            4,
        );
        assert_eq!(c.request_error, None);
        assert!(
            matches!(c.fates[0], Fate::Written { ref sequence_number, .. } if sequence_number == "1")
        );
        assert!(matches!(
            c.fates[1],
            Fate::Retry {
                throttled: true,
                ..
            }
        ));
        assert!(matches!(
            c.fates[2],
            Fate::Retry {
                throttled: false,
                ..
            }
        ));
        assert!(matches!(c.fates[3], Fate::Reject { .. }));
    }

    #[test]
    fn a_failed_or_short_answer_decides_for_every_record() {
        let c = classify(Err(TransportError::Throttled("slow down".into())), 3);
        assert_eq!(c.fates.len(), 3);
        assert!(c.fates.iter().all(|f| matches!(
            f,
            Fate::Retry {
                throttled: true,
                ..
            }
        )));
        assert!(c.request_error.is_some());
        let c = classify(Err(TransportError::Permanent("no stream".into())), 2);
        assert!(c.fates.iter().all(|f| matches!(f, Fate::Reject { .. })));
        let c = classify(Ok(vec![ok("1")]), 2);
        assert!(c.fates.iter().all(|f| matches!(
            f,
            Fate::Retry {
                throttled: false,
                ..
            }
        )));
        assert!(c.request_error.unwrap().contains("1 results for 2 records"));
    }

    #[test]
    fn regression_one_signal_per_shard_per_response_however_many_records_it_had() {
        // Shard 0: 9 written and 1 throttled is ONE throttled signal (the old rule
        // let the 9 successes undo the decrease). Shard 1: all written: clean.
        // Shard 2: a 5xx: failed, not throttled.
        let mut shards = vec![0; 10];
        let mut results: Vec<EntryResult> = (0..9).map(|k| ok(&k.to_string())).collect();
        results.push(failed("ProvisionedThroughputExceededException"));
        shards.extend([1, 1, 2]);
        results.extend([ok("a"), ok("b"), failed("InternalFailure")]);
        let c = classify(Ok(results), shards.len());
        assert_eq!(
            signals(&shards, &c.fates),
            vec![
                (0, Signal::Throttled),
                (1, Signal::Clean),
                (2, Signal::Failed)
            ]
        );
    }
}
