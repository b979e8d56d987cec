//! What to inject ([`FaultConfig`]), what was injected ([`FaultStats`]), and the
//! pure per-request decision, drawn from a seeded RNG.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::allowance::ShardAllowance;
use crate::wire::InjectedError;

/// Which faults a [`FaultProxy`](crate::FaultProxy) injects, and how often.
///
/// Rates are probabilities in `[0, 1]`, drawn independently per request (per
/// record for `record_failure_rate`), in the order of the fields: a request
/// dropped before forwarding draws no error, one answered with an error is not
/// dropped after. So with `throttle_rate: 0.2, server_error_rate: 0.05`, 20% of
/// the requests are throttled and 4% (5% of the other 80%) get a 5xx. The records
/// of a PutRecords that is forwarded then get `record_failure_rate`, and those that
/// survive it are charged to the `shard_allowance`. The default injects nothing;
/// build the rest with `..FaultConfig::default()` so that new fields do not break
/// callers.
///
/// Decisions are deterministic per seed: request number `n` (counted from the
/// start, or from the last [`set_faults`](crate::FaultProxy::set_faults)) draws
/// from its own RNG stream `(seed, n)`. With concurrent clients, which request
/// gets number `n` depends on arrival order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Seeds the decisions.
    pub seed: u64,
    /// Per record of a PutRecords: answer it with `ErrorCode:
    /// ProvisionedThroughputExceededException` without writing it upstream.
    pub record_failure_rate: f64,
    /// Per request: answer it without forwarding with HTTP 500 `InternalFailure`,
    /// HTTP 400 `ProvisionedThroughputExceededException` or HTTP 400
    /// `ThrottlingException` (equally likely).
    pub request_error_rate: f64,
    /// Per request: answer it without forwarding with HTTP 400
    /// `ProvisionedThroughputExceededException` or `ThrottlingException`
    /// (equally likely).
    pub throttle_rate: f64,
    /// Per request: answer it without forwarding with HTTP 500 (`InternalFailure`
    /// for Kinesis, `InternalServerError` for DynamoDB).
    pub server_error_rate: f64,
    /// Per request: close the connection without answering or forwarding.
    pub drop_before_rate: f64,
    /// Per request: forward it, let the upstream write, then close the connection
    /// without answering. The client sees an error although the records were
    /// written, which is how duplicates happen in real life.
    pub drop_after_rate: f64,
    /// Answer every PutRecords with HTTP 400 `ProvisionedThroughputExceededException`
    /// without forwarding or parsing it (cheap enough for long soaks).
    pub throttle_all: bool,
    /// Apply the request-level faults (all but `record_failure_rate`) to every
    /// operation, not only PutRecords.
    pub fault_all_operations: bool,
    /// Throttle like Kinesis: per shard, the records of each PutRecords that do
    /// not fit the shard's allowance (token buckets of one second's worth, see
    /// [`ShardAllowance`]) are answered `ErrorCode:
    /// ProvisionedThroughputExceededException` without being written upstream.
    /// Unlike `record_failure_rate`, it depends on how fast the client sends.
    /// Records are charged in request order, once forwarded (a request answered
    /// with an error or dropped before costs nothing; one dropped after does), and
    /// only if they survived `record_failure_rate`. The buckets start full at
    /// [`FaultProxy::start`](crate::FaultProxy::start) and again at each
    /// [`set_faults`](crate::FaultProxy::set_faults).
    pub shard_allowance: Option<ShardAllowance>,
}

/// A [`FaultConfig`] field out of its range: a rate outside `[0, 1]` (or NaN), a
/// [`ShardAllowance`] rate that is not positive and finite, or no shards.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("FaultConfig::{field} must be {expected}, got {value}")]
#[non_exhaustive]
pub struct InvalidFaultConfig {
    /// The offending field, e.g. `drop_after_rate` or
    /// `shard_allowance.bytes_per_sec`.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// What it must be, e.g. `a probability in [0, 1]`.
    pub expected: &'static str,
}

impl FaultConfig {
    /// Every PutRecords throttled (see [`FaultConfig::throttle_all`]).
    pub fn throttle_all() -> Self {
        FaultConfig {
            throttle_all: true,
            ..FaultConfig::default()
        }
    }

    /// Checks that every rate is a probability and that a shard allowance has
    /// shards and positive, finite rates.
    pub fn validate(&self) -> Result<(), InvalidFaultConfig> {
        for (field, value) in [
            ("record_failure_rate", self.record_failure_rate),
            ("request_error_rate", self.request_error_rate),
            ("throttle_rate", self.throttle_rate),
            ("server_error_rate", self.server_error_rate),
            ("drop_before_rate", self.drop_before_rate),
            ("drop_after_rate", self.drop_after_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(InvalidFaultConfig {
                    field,
                    value,
                    expected: "a probability in [0, 1]",
                });
            }
        }
        if let Some(allowance) = &self.shard_allowance {
            if allowance.shards == 0 {
                return Err(InvalidFaultConfig {
                    field: "shard_allowance.shards",
                    value: 0.0,
                    expected: "at least 1",
                });
            }
            for (field, value) in [
                ("shard_allowance.records_per_sec", allowance.records_per_sec),
                ("shard_allowance.bytes_per_sec", allowance.bytes_per_sec),
            ] {
                if !(value.is_finite() && value > 0.0) {
                    return Err(InvalidFaultConfig {
                        field,
                        value,
                        expected: "positive and finite",
                    });
                }
            }
        }
        Ok(())
    }
}

/// Counts of what a [`FaultProxy`](crate::FaultProxy) saw and did, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Requests received (every operation).
    pub requests: u64,
    /// PutRecords requests received.
    pub put_records_requests: u64,
    /// Requests sent upstream (every operation).
    pub forwarded_requests: u64,
    /// Records sent upstream in PutRecords requests.
    pub forwarded_records: u64,
    /// Records the upstream reported as written, including those whose answer was
    /// then dropped (`drop_after`): what a reader of the stream finds.
    pub written_records: u64,
    /// Records answered with an injected `ProvisionedThroughputExceededException`
    /// drawn by `record_failure_rate`.
    pub failed_records: u64,
    /// Records answered with `ProvisionedThroughputExceededException` because they
    /// did not fit their shard's allowance (`shard_allowance`); not in
    /// `failed_records`.
    pub allowance_throttled_records: u64,
    /// Requests answered with an injected HTTP 500 (`InternalFailure`, or
    /// `InternalServerError` for DynamoDB).
    pub internal_failures: u64,
    /// Requests answered with an injected HTTP 400
    /// `ProvisionedThroughputExceededException` (`throttle_all` included).
    pub throughput_exceeded: u64,
    /// Requests answered with an injected HTTP 400 `ThrottlingException`.
    pub throttling_errors: u64,
    /// Connections closed before forwarding.
    pub dropped_before: u64,
    /// Connections closed after the upstream answered.
    pub dropped_after: u64,
    /// PutRecords bodies that were not awsJson1.1, forwarded without record faults.
    pub unparsed_put_records: u64,
    /// Upstream calls that failed (connection, or an answer the proxy could not
    /// merge); the client got HTTP 502 or 500.
    pub upstream_errors: u64,
}

/// The live counters behind [`FaultStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) put_records_requests: AtomicU64,
    pub(crate) forwarded_requests: AtomicU64,
    pub(crate) forwarded_records: AtomicU64,
    pub(crate) written_records: AtomicU64,
    pub(crate) failed_records: AtomicU64,
    pub(crate) allowance_throttled_records: AtomicU64,
    pub(crate) internal_failures: AtomicU64,
    pub(crate) throughput_exceeded: AtomicU64,
    pub(crate) throttling_errors: AtomicU64,
    pub(crate) dropped_before: AtomicU64,
    pub(crate) dropped_after: AtomicU64,
    pub(crate) unparsed_put_records: AtomicU64,
    pub(crate) upstream_errors: AtomicU64,
}

/// Adds `n` to a counter. Counters are independent tallies; no ordering needed.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn injected(&self, error: InjectedError) {
        add(
            match error {
                InjectedError::InternalFailure => &self.internal_failures,
                InjectedError::ProvisionedThroughputExceeded => &self.throughput_exceeded,
                InjectedError::Throttling => &self.throttling_errors,
            },
            1,
        );
    }

    pub(crate) fn snapshot(&self) -> FaultStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultStats {
            requests: get(&self.requests),
            put_records_requests: get(&self.put_records_requests),
            forwarded_requests: get(&self.forwarded_requests),
            forwarded_records: get(&self.forwarded_records),
            written_records: get(&self.written_records),
            failed_records: get(&self.failed_records),
            allowance_throttled_records: get(&self.allowance_throttled_records),
            internal_failures: get(&self.internal_failures),
            throughput_exceeded: get(&self.throughput_exceeded),
            throttling_errors: get(&self.throttling_errors),
            dropped_before: get(&self.dropped_before),
            dropped_after: get(&self.dropped_after),
            unparsed_put_records: get(&self.unparsed_put_records),
            upstream_errors: get(&self.upstream_errors),
        }
    }
}

/// What happens to a request before it would be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Before {
    Forward,
    DropConnection,
    Answer(InjectedError),
}

/// The request-level decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) before: Before,
    /// Close the connection once the upstream answered (only when forwarded).
    pub(crate) drop_after: bool,
}

/// The RNG of request number `index` under `seed`.
pub(crate) fn request_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// True with probability `rate`. Unlike `Rng::gen_bool` it never panics: a rate
/// of 0 (or NaN) is never, 1 is always.
fn chance(rng: &mut ChaCha8Rng, rate: f64) -> bool {
    rng.r#gen::<f64>() < rate
}

/// Decides the request-level faults of one request.
pub(crate) fn plan(config: &FaultConfig, rng: &mut ChaCha8Rng, is_put_records: bool) -> Plan {
    let forward = Plan {
        before: Before::Forward,
        drop_after: false,
    };
    if !is_put_records && !config.fault_all_operations {
        return forward;
    }
    if config.throttle_all {
        return Plan {
            before: Before::Answer(InjectedError::ProvisionedThroughputExceeded),
            drop_after: false,
        };
    }
    if chance(rng, config.drop_before_rate) {
        return Plan {
            before: Before::DropConnection,
            drop_after: false,
        };
    }
    if chance(rng, config.request_error_rate) {
        let kind = InjectedError::ALL[rng.gen_range(0..InjectedError::ALL.len())];
        return Plan {
            before: Before::Answer(kind),
            drop_after: false,
        };
    }
    // Drawn only when asked for, so that configs without them see the same
    // decisions as before these rates existed.
    if config.throttle_rate > 0.0 && chance(rng, config.throttle_rate) {
        let kind = InjectedError::THROTTLING[rng.gen_range(0..InjectedError::THROTTLING.len())];
        return Plan {
            before: Before::Answer(kind),
            drop_after: false,
        };
    }
    if config.server_error_rate > 0.0 && chance(rng, config.server_error_rate) {
        return Plan {
            before: Before::Answer(InjectedError::InternalFailure),
            drop_after: false,
        };
    }
    Plan {
        drop_after: chance(rng, config.drop_after_rate),
        ..forward
    }
}

/// Which of `count` records fail, each with probability `rate`.
pub(crate) fn choose_failures(rng: &mut ChaCha8Rng, rate: f64, count: usize) -> Vec<bool> {
    if rate <= 0.0 {
        return vec![false; count];
    }
    (0..count).map(|_| chance(rng, rate)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_outside_zero_to_one_are_rejected() {
        let bad = FaultConfig {
            drop_after_rate: 1.5,
            ..FaultConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err(),
            InvalidFaultConfig {
                field: "drop_after_rate",
                value: 1.5,
                expected: "a probability in [0, 1]",
            }
        );
        let nan = FaultConfig {
            record_failure_rate: f64::NAN,
            ..FaultConfig::default()
        };
        assert_eq!(nan.validate().unwrap_err().field, "record_failure_rate");
        assert!(FaultConfig::throttle_all().validate().is_ok());
    }

    #[test]
    fn a_shard_allowance_needs_shards_and_positive_finite_rates() {
        let with = |shards, records_per_sec, bytes_per_sec| FaultConfig {
            shard_allowance: Some(ShardAllowance {
                shards,
                records_per_sec,
                bytes_per_sec,
            }),
            ..FaultConfig::default()
        };
        assert!(with(4, 1_000.0, 1_048_576.0).validate().is_ok());
        assert!(with(1, 0.5, 1.0).validate().is_ok());
        assert_eq!(
            with(0, 1.0, 1.0).validate().unwrap_err().field,
            "shard_allowance.shards"
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let error = with(1, bad, 1.0).validate().unwrap_err();
            assert_eq!(error.field, "shard_allowance.records_per_sec", "{bad}");
            assert!(error.to_string().contains("positive and finite"), "{error}");
            let error = with(1, 1.0, bad).validate().unwrap_err();
            assert_eq!(error.field, "shard_allowance.bytes_per_sec", "{bad}");
        }
        assert_eq!(FaultConfig::default().shard_allowance, None);
    }

    #[test]
    fn other_operations_pass_unless_all_operations_are_faulted() {
        let config = FaultConfig {
            request_error_rate: 1.0,
            ..FaultConfig::default()
        };
        let mut rng = request_rng(1, 0);
        assert_eq!(plan(&config, &mut rng, false).before, Before::Forward);
        let all = FaultConfig {
            fault_all_operations: true,
            ..config
        };
        assert!(matches!(
            plan(&all, &mut rng, false).before,
            Before::Answer(_)
        ));
    }

    #[test]
    fn throttle_and_server_error_rates_pick_their_kinds() {
        let throttled = FaultConfig {
            throttle_rate: 1.0,
            ..FaultConfig::default()
        };
        let mut kinds = std::collections::BTreeSet::new();
        for index in 0..64 {
            match plan(&throttled, &mut request_rng(3, index), true).before {
                Before::Answer(kind) => kinds.insert(format!("{kind:?}")),
                other => panic!("request {index}: {other:?}"),
            };
        }
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["ProvisionedThroughputExceeded", "Throttling"]
        );
        let failing = FaultConfig {
            server_error_rate: 1.0,
            ..FaultConfig::default()
        };
        assert_eq!(
            plan(&failing, &mut request_rng(3, 0), true).before,
            Before::Answer(InjectedError::InternalFailure)
        );
        let bad = FaultConfig {
            throttle_rate: 2.0,
            ..FaultConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "throttle_rate");
    }

    #[test]
    fn rates_add_up_as_documented() {
        let config = FaultConfig {
            throttle_rate: 0.2,
            server_error_rate: 0.05,
            drop_after_rate: 0.03,
            fault_all_operations: true,
            ..FaultConfig::default()
        };
        let n = 20_000;
        let (mut throttled, mut failed, mut dropped) = (0, 0, 0);
        for index in 0..n {
            let p = plan(&config, &mut request_rng(11, index), false);
            match p.before {
                Before::Answer(InjectedError::InternalFailure) => failed += 1,
                Before::Answer(_) => throttled += 1,
                _ if p.drop_after => dropped += 1,
                _ => {}
            }
        }
        let share = |k: u64| k as f64 / n as f64;
        assert!((share(throttled) - 0.2).abs() < 0.01, "{throttled}");
        assert!((share(failed) - 0.8 * 0.05).abs() < 0.005, "{failed}");
        assert!(
            (share(dropped) - 0.8 * 0.95 * 0.03).abs() < 0.005,
            "{dropped}"
        );
    }

    #[test]
    fn throttle_all_wins_over_every_rate() {
        let config = FaultConfig {
            drop_before_rate: 1.0,
            ..FaultConfig::throttle_all()
        };
        let got = plan(&config, &mut request_rng(0, 0), true);
        assert_eq!(
            got.before,
            Before::Answer(InjectedError::ProvisionedThroughputExceeded)
        );
    }

    #[test]
    fn decisions_depend_only_on_seed_and_request_number() {
        let draw = |seed, index| choose_failures(&mut request_rng(seed, index), 0.5, 64);
        assert_eq!(draw(7, 3), draw(7, 3));
        assert_ne!(draw(7, 3), draw(7, 4));
        assert_ne!(draw(7, 3), draw(8, 3));
    }

    #[test]
    fn rate_one_fails_every_record_and_zero_none() {
        let mut rng = request_rng(0, 0);
        assert!(choose_failures(&mut rng, 1.0, 100).iter().all(|&f| f));
        assert!(!choose_failures(&mut rng, 0.0, 100).iter().any(|&f| f));
    }
}
