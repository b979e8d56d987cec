//! Two `flyhigh consume` processes over one stream at once, their DynamoDB traffic
//! through the project's fault proxy (20% throttled, 5% 5xx, 3% of the connections
//! dropped after the write), against moto: the final inventory must equal the
//! independent recomputation of `flyhigh check`.
//!
//! Each consumer reads every shard from the trim horizon, so every event is
//! applied twice, concurrently, by two processes whose writes also fail and are
//! retried: what is left must still count each booking once. Kinesis and SQS go
//! straight to moto (`AWS_ENDPOINT_URL`); only DynamoDB goes through the proxy
//! (`AWS_ENDPOINT_URL_DYNAMODB`, which the SDK prefers for that one service).
//!
//! Needs `FLYHIGH_MOTO_URL` (set by `scripts/test.sh`) and moto started by
//! `scripts/moto_server.py` (as `start_moto` does): plain moto 5.2 cannot take
//! this run (see that file). It prints moto's peak RSS when it can find moto's pid
//! (`FLYHIGH_MOTO_PID`, or `target/moto.pid` from `scripts/moto.sh start`).
//! `FLYHIGH_FAULT_SEED` picks another seed for the proxy's decisions.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flyhigh_testkit::{FaultConfig, FaultProxy, FaultStats, moto_url};
use serde_json::Value;

const EVENTS: u32 = 20_000;
const SIM_SEED: u64 = 23;
const DEFAULT_FAULT_SEED: u64 = 7;
/// Longest a consumer may run before the test gives up on it.
const CONSUMER_DEADLINE: Duration = Duration::from_secs(600);
/// moto's peak RSS above which the launcher's fix has surely regressed: plain
/// moto 5.2.5 grew past 7 GiB on this run; through the launcher it peaks at
/// 200-300 MiB (a fresh server, then a second run in it).
const MOTO_PEAK_RSS_LIMIT_KIB: u64 = 1024 * 1024;

/// `flyhigh` with the AWS test environment, pointed at moto.
fn flyhigh(moto: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flyhigh"));
    command
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs a command to its end, its output into `log`; panics unless it exits 0.
fn run(mut command: Command, log: &Path) {
    let status = spawn_logged(&mut command, log)
        .wait()
        .expect("waiting for flyhigh");
    assert!(status.success(), "{command:?}: {status}\n{}", tail(log));
}

fn spawn_logged(command: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("creating a log file");
    command
        .stdout(out.try_clone().expect("cloning a file handle"))
        .stderr(out)
        .spawn()
        .expect("starting flyhigh")
}

/// The last lines of a log, for failure messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    format!(
        "--- {} (last lines)\n{}",
        log.display(),
        lines[from..].join("\n")
    )
}

/// Waits for every child, killing all of them once `deadline` has passed.
fn wait_all(children: &mut [Child], deadline: Duration) -> Vec<Option<ExitStatus>> {
    let started = Instant::now();
    let mut statuses = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) && started.elapsed() < deadline {
        for (child, status) in children.iter_mut().zip(&mut statuses) {
            if status.is_none() {
                *status = child.try_wait().expect("polling a consumer");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (child, status) in children.iter_mut().zip(&statuses) {
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    statuses
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// moto's pid: `FLYHIGH_MOTO_PID` (start_moto), else `target/moto.pid`
/// (scripts/moto.sh start).
fn moto_pid() -> Option<u32> {
    if let Some(pid) = std::env::var("FLYHIGH_MOTO_PID")
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        return Some(pid);
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto.pid");
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`: peak resident set size).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn report_faults(stats: &FaultStats) {
    eprintln!(
        "fault proxy: {} DynamoDB requests, {} forwarded; injected {} ProvisionedThroughputExceeded + {} Throttling, {} InternalServerError, {} dropped after the write; {} upstream errors",
        stats.requests,
        stats.forwarded_requests,
        stats.throughput_exceeded,
        stats.throttling_errors,
        stats.internal_failures,
        stats.dropped_after,
        stats.upstream_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_through_dynamodb_faults_leave_the_recomputed_inventory() {
    let moto = moto_url();
    let fault_seed = std::env::var("FLYHIGH_FAULT_SEED")
        .ok()
        .map(|s| s.parse().expect("FLYHIGH_FAULT_SEED must be an integer"))
        .unwrap_or(DEFAULT_FAULT_SEED);
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("two-consumers-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let table = format!("two-consumers-inventory-{suffix}");
    let names = [
        "--stream".to_string(),
        format!("two-consumers-events-{suffix}"),
        "--table".into(),
        table.clone(),
        "--dead-letter-queue".into(),
        format!("two-consumers-dlq-{suffix}"),
        "--failure-queue".into(),
        format!("two-consumers-failures-{suffix}"),
    ];
    let moto_pid = moto_pid();
    let started = Instant::now();
    eprintln!(
        "two consumers: {EVENTS} events (simulator seed {SIM_SEED}), fault seed {fault_seed}, logs in {}",
        dir.display()
    );

    let mut setup = flyhigh(&moto);
    setup.arg("setup").args(&names).args(["--shards", "4"]);
    run(setup, &dir.join("setup.log"));
    let mut produce = flyhigh(&moto);
    produce
        .arg("produce")
        .args(&names)
        .args([
            "--events",
            &EVENTS.to_string(),
            "--seed",
            &SIM_SEED.to_string(),
        ])
        // moto loses records under concurrent puts to one stream.
        .args(["--requests-in-flight", "1"])
        .arg("--dead-letters")
        .arg(dir.join("producer-dead-letters.jsonl"))
        .arg("--summary-json")
        .arg(dir.join("produce.json"));
    run(produce, &dir.join("produce.log"));
    let produced = read_json(&dir.join("produce.json"));
    assert_eq!(produced["events_produced"]["total"], EVENTS, "{produced}");
    let produced_at = started.elapsed();

    let proxy = FaultProxy::start(
        &moto,
        FaultConfig {
            seed: fault_seed,
            throttle_rate: 0.20,
            server_error_rate: 0.05,
            drop_after_rate: 0.03,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .expect("starting the fault proxy");
    let consumers: Vec<(Command, PathBuf, PathBuf)> = (1..=2)
        .map(|n| {
            let summary = dir.join(format!("consume-{n}.json"));
            let mut consume = flyhigh(&moto);
            consume
                .env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())
                .arg("consume")
                .args(&names)
                // Many batches per shard (a Kinesis record holds ~143 events), so that
                // failures are retried from inside the shard and the two consumers
                // meet on the same bookings often.
                .args(["--batch-size", "2", "--idle-seconds", "3"])
                // Two consumers, two mappings: each keeps its own checkpoints.
                .arg("--checkpoints")
                .arg(dir.join(format!("checkpoints-{n}.json")))
                .arg("--summary-json")
                .arg(&summary);
            (consume, dir.join(format!("consume-{n}.log")), summary)
        })
        .collect();
    // Both started before either is waited for: they run at once.
    let mut children: Vec<Child> = Vec::new();
    let mut logs = Vec::new();
    let mut summaries = Vec::new();
    for (mut command, log, summary) in consumers {
        children.push(spawn_logged(&mut command, &log));
        logs.push(log);
        summaries.push(summary);
    }
    let statuses = tokio::task::spawn_blocking(move || wait_all(&mut children, CONSUMER_DEADLINE))
        .await
        .unwrap();
    let consumed_at = started.elapsed();
    let stats = proxy.stats();
    proxy.shutdown().await;
    report_faults(&stats);
    for ((status, log), n) in statuses.iter().zip(&logs).zip(1..) {
        match status {
            Some(status) => assert!(status.success(), "consumer {n}: {status}\n{}", tail(log)),
            None => panic!(
                "consumer {n} still running after {CONSUMER_DEADLINE:?}; killed\n{}",
                tail(log)
            ),
        }
    }

    let mut check = flyhigh(&moto);
    check
        .arg("check")
        .args([
            "--events",
            &EVENTS.to_string(),
            "--seed",
            &SIM_SEED.to_string(),
        ])
        .args(["--table", &table])
        .arg("--summary-json")
        .arg(dir.join("check.json"));
    let check_log = dir.join("check.log");
    let check_status = spawn_logged(&mut check, &check_log).wait().unwrap();
    // No summary when the check could not run at all; the log says why.
    let checked = std::fs::read_to_string(dir.join("check.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let moto_peak = moto_pid.and_then(|pid| proc_status_kib(pid, "VmHWM"));
    eprintln!(
        "two consumers: produced in {:.1} s, consumed in {:.1} s, {:.1} s in all; moto peak RSS {}",
        produced_at.as_secs_f64(),
        (consumed_at - produced_at).as_secs_f64(),
        started.elapsed().as_secs_f64(),
        moto_peak.map_or_else(|| "unknown (no moto pid)".into(), mib),
    );
    for (summary, n) in summaries.iter().zip(1..) {
        let summary = read_json(summary);
        eprintln!(
            "consumer {n}: runner {}, handler conflicts {}, failed batches {}",
            summary["runner"],
            summary["handler"]["conflicts"],
            summary["handler"]["failed_batches"]
        );
        // Each consumer read the whole stream and handed nothing to the
        // on-failure destination (that would be a booking given up on).
        // (`events_consumed` counts retried batches again, so it is not checked.)
        let runner = &summary["runner"];
        assert_eq!(
            runner["records_read"], produced["kinesis_records"],
            "consumer {n}: {summary}"
        );
        assert_eq!(
            runner["records_done"], runner["records_read"],
            "consumer {n}: {summary}"
        );
        assert_eq!(
            summary["runner"]["batches_to_failure_destination"], 0,
            "consumer {n}: {summary}"
        );
    }

    assert!(
        check_status.success() && checked["inventory_check"] == "ok",
        "the inventory differs from the recomputation: {checked}\n{}",
        tail(&check_log)
    );
    // The run met every kind of fault it was meant to.
    assert!(
        stats.throughput_exceeded > 0 && stats.throttling_errors > 0,
        "{stats:?}"
    );
    assert!(stats.internal_failures > 0, "{stats:?}");
    assert!(stats.dropped_after > 0, "{stats:?}");
    assert_eq!(stats.upstream_errors, 0, "{stats:?}");
    if let Some(peak) = moto_peak {
        assert!(
            peak < MOTO_PEAK_RSS_LIMIT_KIB,
            "moto peaked at {}: is it started by scripts/moto_server.py?",
            mib(peak)
        );
    }
}
