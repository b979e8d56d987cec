//! `S3ObjectStore` and `DynamoArchiveCheckpoints` against moto, through the real
//! SDK clients, held to the in-memory stores: each scenario runs against both and
//! must give the same transcript, and checks what S3 itself shows on the way
//! (multipart objects, CRC32 checksums, SSE-KMS headers, paging).
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own bucket
//! or table.

#![cfg(all(feature = "s3", feature = "dynamodb"))]

mod common;

use std::sync::Arc;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::types::{ChecksumMode, ServerSideEncryption};
use flyhigh_aws::archive::{DynamoArchiveCheckpoints, create_archive_checkpoints_table};
use flyhigh_aws::s3::{S3ObjectStore, create_bucket};
use flyhigh_core::archive::ArchiveCheckpoint;
use flyhigh_core::memory::{MemoryArchiveCheckpoints, MemoryObjectStore};
use flyhigh_core::ports::{ArchiveCheckpoints, ObjectInfo, ObjectStore, StoreError};
use flyhigh_core::records::Position;
use futures::{StreamExt, TryStreamExt};

const MIB: u64 = 1024 * 1024;

/// A real Kinesis sequence number (56 digits).
const KINESIS_SEQ: &str = "49590338271490256608559692538361571095921575989136588898";

/// A new bucket and a store on it under `prefix`.
async fn s3_store(prefix: &str) -> (aws_sdk_s3::Client, S3ObjectStore) {
    let client = common::s3_client().await;
    let bucket = common::unique_bucket("archive");
    create_bucket(&client, &bucket)
        .await
        .expect("create bucket");
    // Twice: creating is idempotent.
    create_bucket(&client, &bucket)
        .await
        .expect("create bucket again");
    let store = S3ObjectStore::new(client.clone(), bucket, prefix);
    (client, store)
}

async fn checkpoints() -> DynamoArchiveCheckpoints {
    let client = aws_sdk_dynamodb::Client::new(&common::sdk_config().await);
    let table = common::unique_name("archive-checkpoints");
    create_archive_checkpoints_table(&client, &table)
        .await
        .expect("create table");
    create_archive_checkpoints_table(&client, &table)
        .await
        .expect("create table again");
    DynamoArchiveCheckpoints::new(client, table)
}

/// Deterministic bytes that no run of parts repeats (so a part out of place shows).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What a store answers to the archive's sequence of calls: stage, promote (twice),
/// read, list, delete (missing keys included).
async fn object_transcript<S: ObjectStore>(store: &S) -> Vec<String> {
    let staged = "_staging/bookings/dt=2026-12-01/hour=09/b_shardId-000000000000_1-0_9-2.parquet";
    let key = "bookings/dt=2026-12-01/hour=09/b_shardId-000000000000_1-0_9-2.parquet";
    let other = "searches/dt=2026-12-01/hour=09/b_shardId-000000000000_1-0_9-2.parquet";
    let mut out = Vec::new();
    out.push(format!("get missing: {:?}", store.get(key).await));
    out.push(format!(
        "put staged: {:?}",
        store.put(staged, b"v1".to_vec()).await
    ));
    out.push(format!(
        "put other: {:?}",
        store.put(other, b"other".to_vec()).await
    ));
    out.push(format!(
        "replace staged: {:?}",
        store.put(staged, b"v2!".to_vec()).await
    ));
    out.push(format!("get staged: {:?}", store.get(staged).await));
    out.push(format!("list all: {:?}", store.list("").await));
    out.push(format!("list staging: {:?}", store.list("_staging/").await));
    out.push(format!(
        "list bookings: {:?}",
        store.list("bookings/").await
    ));
    out.push(format!("promote: {:?}", store.promote(staged, key).await));
    out.push(format!(
        "promote again: {:?}",
        store.promote(staged, key).await
    ));
    out.push(format!(
        "promote onto itself: {:?}",
        store.promote(key, key).await
    ));
    out.push(format!("get staged after: {:?}", store.get(staged).await));
    out.push(format!("get promoted: {:?}", store.get(key).await));
    out.push(format!("list after promote: {:?}", store.list("").await));
    out.push(format!(
        "delete with missing: {:?}",
        store
            .delete(&[key.to_string(), "never/there.parquet".to_string()])
            .await
    ));
    out.push(format!("delete nothing: {:?}", store.delete(&[]).await));
    out.push(format!("list after delete: {:?}", store.list("").await));
    out.push(format!(
        "empty object: {:?}",
        store.put("empty", Vec::new()).await
    ));
    out.push(format!("get empty: {:?}", store.get("empty").await));
    out
}

#[tokio::test]
async fn objects_behave_as_the_in_memory_store_under_the_prefix() {
    let (client, s3) = s3_store("/archive//").await;
    assert_eq!(s3.prefix(), "archive/");
    let memory = object_transcript(&MemoryObjectStore::new()).await;
    let real = object_transcript(&s3).await;
    for (m, r) in memory.iter().zip(&real) {
        assert_eq!(m, r);
    }
    assert_eq!(memory.len(), real.len());

    // The objects are under the prefix in the bucket; a store on another prefix
    // of the same bucket sees none of them.
    let listed = client
        .list_objects_v2()
        .bucket(s3.bucket())
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            "archive/empty",
            "archive/searches/dt=2026-12-01/hour=09/b_shardId-000000000000_1-0_9-2.parquet"
        ]
    );
    let elsewhere = S3ObjectStore::new(client.clone(), s3.bucket(), "archive-v2");
    assert_eq!(elsewhere.list("").await, Ok(Vec::new()));
    let root = S3ObjectStore::new(client, s3.bucket(), "");
    assert_eq!(root.get("archive/empty").await, Ok(Some(Vec::new())));
}

#[tokio::test]
async fn listing_and_deleting_more_than_a_thousand_objects_pages_and_chunks() {
    let (_client, store) = s3_store("archive").await;
    let keys: Vec<String> = (0..1205)
        .map(|i| format!("bookings/dt=2026-12-01/hour=09/b_{i:05}.parquet"))
        .collect();
    futures::stream::iter(keys.iter())
        .map(|key| store.put(key, key.as_bytes().to_vec()))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("put");
    store
        .put("searches/dt=2026-12-01/hour=09/x.parquet", b"x".to_vec())
        .await
        .unwrap();
    let expected: Vec<ObjectInfo> = keys
        .iter()
        .map(|k| ObjectInfo {
            key: k.clone(),
            size: k.len() as u64,
        })
        .collect();
    // S3's pages of 1,000 (moto's too), and pages of 100.
    assert_eq!(store.list("bookings/").await.unwrap(), expected);
    let small_pages = store.clone().with_list_page_size(100);
    assert_eq!(small_pages.list("bookings/").await.unwrap(), expected);
    assert_eq!(small_pages.list("").await.unwrap().len(), 1206);

    let mut doomed = keys.clone();
    doomed.push("bookings/never/there.parquet".into());
    store.delete(&doomed).await.expect("delete 1,206 keys");
    assert_eq!(store.list("bookings/").await, Ok(Vec::new()));
    assert_eq!(
        store.list("").await.unwrap(),
        [ObjectInfo {
            key: "searches/dt=2026-12-01/hour=09/x.parquet".into(),
            size: 1
        }]
    );
}

#[tokio::test]
async fn a_large_object_goes_up_in_parts_and_reads_back_byte_identical() {
    let (client, store) = s3_store("archive").await;
    let store = store
        .with_multipart(6 * MIB, 5 * MIB)
        .expect("multipart settings");
    let bytes = pattern(11 * MIB as usize + 12_345);
    store
        .put("compacted/c_1_0000.parquet", bytes.clone())
        .await
        .expect("multipart put");
    assert_eq!(
        store
            .get("compacted/c_1_0000.parquet")
            .await
            .unwrap()
            .as_deref(),
        Some(bytes.as_slice())
    );
    let head = client
        .head_object()
        .bucket(store.bucket())
        .key("archive/compacted/c_1_0000.parquet")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.parts_count(), Some(3), "{head:?}");
    let whole = client
        .head_object()
        .bucket(store.bucket())
        .key("archive/compacted/c_1_0000.parquet")
        .send()
        .await
        .unwrap();
    assert!(
        whole
            .e_tag()
            .is_some_and(|t| t.trim_matches('"').ends_with("-3")),
        "{whole:?}"
    );
    assert_eq!(whole.content_length(), Some(bytes.len() as i64));
    // Nothing left behind.
    let uploads = client
        .list_multipart_uploads()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");

    // Below the threshold: one PutObject.
    store
        .put("small.parquet", pattern(6 * MIB as usize - 1))
        .await
        .unwrap();
    let small = client
        .head_object()
        .bucket(store.bucket())
        .key("archive/small.parquet")
        .send()
        .await
        .unwrap();
    assert!(small.e_tag().is_some_and(|t| !t.contains('-')), "{small:?}");
}

/// Fails every `UploadPart` of part 2 before it is sent, as a network fault would.
#[derive(Debug)]
struct FailSecondPart;

impl Intercept for FailSecondPart {
    fn name(&self) -> &'static str {
        "FailSecondPart"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let uri = context.request().uri();
        if uri.contains("x-id=UploadPart") && uri.contains("partNumber=2") {
            return Err("injected: part 2 lost".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_part_aborts_the_upload_and_leaves_no_object() {
    let (client, store) = s3_store("archive").await;
    let failing = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&common::sdk_config().await)
            .force_path_style(true)
            .interceptor(FailSecondPart)
            .build(),
    );
    let failing = S3ObjectStore::new(failing, store.bucket(), "archive")
        .with_multipart(5 * MIB, 5 * MIB)
        .unwrap();
    let put = failing.put("big.parquet", pattern(11 * MIB as usize)).await;
    assert!(put.is_err(), "{put:?}");
    assert_eq!(store.get("big.parquet").await, Ok(None));
    let uploads = client
        .list_multipart_uploads()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "not aborted: {uploads:?}");
}

#[tokio::test]
async fn bad_multipart_settings_are_refused_naming_the_setting() {
    // No request is sent: the settings are checked as they are made.
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build(),
    );
    let store = || S3ObjectStore::new(client.clone(), "b", "");
    let err = store().with_multipart(16 * MIB, MIB).unwrap_err();
    assert!(err.to_string().contains("part_bytes"), "{err}");
    let err = store().with_multipart(MIB, 5 * MIB).unwrap_err();
    assert!(err.to_string().contains("threshold_bytes"), "{err}");
}

#[tokio::test]
async fn a_single_put_carries_a_crc32_checksum() {
    let (client, store) = s3_store("").await;
    store.put("hello", b"hello".to_vec()).await.unwrap();
    let head = client
        .head_object()
        .bucket(store.bucket())
        .key("hello")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    // CRC32 of "hello" is 0x3610A686.
    assert_eq!(head.checksum_crc32(), Some("NhCmhg=="), "{head:?}");
    let got = client
        .get_object()
        .bucket(store.bucket())
        .key("hello")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.checksum_crc32(), Some("NhCmhg=="));
}

#[tokio::test]
async fn with_a_kms_key_every_write_is_encrypted_with_it() {
    let (client, store) = s3_store("archive").await;
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/0b6a2e4c-7d2f-4f5e-9c1a-3e8f2d6b7a90";
    let store = store
        .with_kms_key(Some(key_id.to_string()))
        .with_multipart(5 * MIB, 5 * MIB)
        .unwrap();
    store
        .put("_staging/a.parquet", b"a".to_vec())
        .await
        .unwrap();
    store
        .put("big.parquet", pattern(5 * MIB as usize + 1))
        .await
        .unwrap();
    assert_eq!(
        store.promote("_staging/a.parquet", "a.parquet").await,
        Ok(true)
    );
    for key in ["archive/a.parquet", "archive/big.parquet"] {
        let head = client
            .head_object()
            .bucket(store.bucket())
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{key}: {head:?}"
        );
        assert_eq!(head.ssekms_key_id(), Some(key_id), "{key}: {head:?}");
    }
    assert_eq!(store.get("a.parquet").await, Ok(Some(b"a".to_vec())));
}

#[tokio::test]
async fn a_missing_bucket_is_a_permanent_error_naming_it() {
    let client = common::s3_client().await;
    let bucket = common::unique_bucket("missing");
    let store = S3ObjectStore::new(client, bucket.clone(), "archive");
    let put = store.put("k", b"x".to_vec()).await;
    let get = store.get("k").await.map(|_| ());
    let list = store.list("").await.map(|_| ());
    let promote = store.promote("a", "b").await.map(|_| ());
    let delete = store.delete(&["k".to_string()]).await;
    for (op, result) in [
        ("put", put),
        ("get", get),
        ("list", list),
        ("promote", promote),
        ("delete", delete),
    ] {
        match result {
            Err(StoreError::Permanent(message)) => {
                assert!(message.contains(&bucket), "{op}: {message}");
                assert!(message.contains("NoSuchBucket"), "{op}: {message}");
                assert!(!message.contains('\n'), "{op}: {message}");
            }
            other => panic!("{op}: {other:?}"),
        }
    }
}

/// What a checkpoint store answers to a shard's sequence of saves.
async fn checkpoint_transcript<C: ArchiveCheckpoints>(store: &C) -> Vec<String> {
    let shard = "shardId-000000000003";
    let first = ArchiveCheckpoint::default().commit(
        Position::new(KINESIS_SEQ, Some(7)),
        vec![
            "bookings/dt=2026-12-01/hour=09/b_x.parquet".into(),
            "searches/dt=2026-12-01/hour=09/b_x.parquet".into(),
        ],
    );
    let promoted = first.promoted();
    let mut out = Vec::new();
    out.push(format!("load none: {:?}", store.load(shard).await));
    out.push(format!(
        "save version 0: {:?}",
        store.save(shard, &ArchiveCheckpoint::default()).await
    ));
    out.push(format!(
        "save version 2 first: {:?}",
        store.save(shard, &promoted).await
    ));
    out.push(format!("save 1: {:?}", store.save(shard, &first).await));
    out.push(format!(
        "save 1 again: {:?}",
        store.save(shard, &first).await
    ));
    out.push(format!("load 1: {:?}", store.load(shard).await));
    out.push(format!("save 2: {:?}", store.save(shard, &promoted).await));
    out.push(format!(
        "save 2 again: {:?}",
        store.save(shard, &promoted).await
    ));
    out.push(format!(
        "save 4: {:?}",
        store
            .save(
                shard,
                &ArchiveCheckpoint {
                    version: 4,
                    ..promoted.clone()
                }
            )
            .await
    ));
    out.push(format!("load 2: {:?}", store.load(shard).await));
    out.push(format!(
        "other shard: {:?}",
        store.load("shardId-000000000004").await
    ));
    out
}

#[tokio::test]
async fn checkpoints_behave_as_the_in_memory_store() {
    let dynamo = checkpoints().await;
    let memory = checkpoint_transcript(&MemoryArchiveCheckpoints::new()).await;
    let real = checkpoint_transcript(&dynamo).await;
    for (m, r) in memory.iter().zip(&real) {
        assert_eq!(m, r);
    }
    assert_eq!(memory.len(), real.len());

    // Exactly what was saved, the 56-digit sequence number included.
    let loaded = dynamo.load("shardId-000000000003").await.unwrap().unwrap();
    assert_eq!(loaded.version, 2);
    assert_eq!(
        loaded.archived_through,
        Some(Position::new(KINESIS_SEQ, Some(7)))
    );
    assert!(loaded.pending.is_empty());
}

#[tokio::test]
async fn a_checkpoint_loads_back_exactly_with_its_pending_list() {
    let store = checkpoints().await;
    let saved = ArchiveCheckpoint::default().commit(
        Position::new(KINESIS_SEQ, Some(4_000_000_000)),
        vec!["a/b=1/c.parquet".into(), "a/b=1/d.parquet".into()],
    );
    assert_eq!(store.save("shardId-000000000000", &saved).await, Ok(true));
    assert_eq!(
        store.load("shardId-000000000000").await,
        Ok(Some(saved.clone()))
    );
    assert_eq!(
        store
            .load("shardId-000000000000")
            .await
            .unwrap()
            .unwrap()
            .archived_through
            .unwrap()
            .sequence,
        KINESIS_SEQ
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_saves_of_one_version_have_exactly_one_winner() {
    let store = Arc::new(checkpoints().await);
    let shard = "shardId-000000000001";
    let mut stored = ArchiveCheckpoint::default();
    for round in 0..3 {
        let candidates: Vec<ArchiveCheckpoint> = (0..8)
            .map(|i| {
                stored.commit(
                    Position::new(&format!("{KINESIS_SEQ}{round}"), Some(i)),
                    vec![format!("file-{round}-{i}")],
                )
            })
            .collect();
        let tasks: Vec<_> = candidates
            .iter()
            .cloned()
            .map(|next| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.save(shard, &next).await })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            if task.await.expect("task").expect("save") {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let loaded = store.load(shard).await.unwrap().unwrap();
        assert_eq!(loaded, candidates[winners[0]], "round {round}");
        stored = loaded;
    }
}

/// The DynamoDB checkpoints, recording the largest item each save writes.
struct Sized {
    inner: DynamoArchiveCheckpoints,
    largest: std::sync::atomic::AtomicUsize,
    saves: std::sync::atomic::AtomicUsize,
}

impl ArchiveCheckpoints for Sized {
    async fn load(&self, shard_id: &str) -> Result<Option<ArchiveCheckpoint>, StoreError> {
        self.inner.load(shard_id).await
    }

    async fn save(&self, shard_id: &str, next: &ArchiveCheckpoint) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let bytes = flyhigh_aws::archive::checkpoint_item_bytes(shard_id, next).unwrap_or(0);
        self.largest.fetch_max(bytes, Relaxed);
        self.saves.fetch_add(1, Relaxed);
        self.inner.save(shard_id, next).await
    }
}

/// `n` records of one shard whose events are dated an hour apart (back from the
/// simulated day): `n` partitions, with sequence numbers of Kinesis's length.
fn records_over_hours(n: usize) -> Vec<flyhigh_core::KinesisRecord> {
    use flyhigh_simulator::{SimConfig, Simulator};
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 30, 0, 0, 0).unwrap();
    Simulator::new(SimConfig::new(41, n))
        .unwrap()
        .take(n)
        .enumerate()
        .map(|(i, mut e)| {
            e.occurred_at = start - chrono::Duration::hours(i as i64);
            flyhigh_core::KinesisRecord {
                shard_id: "shardId-000000000000".into(),
                sequence_number: format!("{}{:08}", &KINESIS_SEQ[..48], i + 1),
                partition_key: e.partition_key(),
                approximate_arrival: Some(e.occurred_at),
                data: e.to_json(),
            }
        })
        .collect()
}

/// Every row of the visible data files, by event id and how many times.
async fn rows_by_id(store: &S3ObjectStore) -> std::collections::BTreeMap<String, usize> {
    let listed = store.list("event_type=").await.unwrap();
    let rows: Vec<Vec<String>> = futures::stream::iter(listed)
        .map(|info| async move {
            let file = flyhigh_core::archive::DataFile::parse(&info.key).expect("a data file");
            let bytes = store.get(&info.key).await.unwrap().unwrap();
            flyhigh_core::archive::read_file(file.partition.table, bytes)
                .unwrap()
                .into_iter()
                .map(|r| r.event.event_id.to_string())
                .collect::<Vec<_>>()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut out = std::collections::BTreeMap::new();
    for id in rows.into_iter().flatten() {
        *out.entry(id).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archive_batch_over_three_thousand_partitions_commits_under_the_item_limit() {
    // The bug: the commit put every pending key of the batch in one item; past
    // ~2,000 partitions DynamoDB refused it, and the mapping retried for ever.
    use std::sync::atomic::Ordering::Relaxed;
    let (_, objects) = s3_store("archive").await;
    let checkpoints = Sized {
        inner: checkpoints().await,
        largest: Default::default(),
        saves: Default::default(),
    };
    let letters = flyhigh_core::memory::MemoryDeadLetters::new();
    let handler = flyhigh_handlers::ArchiveHandler::new(&objects, &checkpoints, &letters);
    let records = records_over_hours(3_100);
    let stream = "arn:aws:kinesis:us-east-1:123456789012:stream/events";

    let outcome = handler.process_stream(stream, &records).await;
    assert_eq!(outcome.first_failed, None, "{:?}", outcome.error);
    let largest = checkpoints.largest.load(Relaxed);
    assert!(largest > 0 && largest <= 400 * 1024, "{largest} bytes");
    assert!(handler.stats().parts >= 2);
    let rows = rows_by_id(&objects).await;
    assert_eq!(rows.len(), records.len());
    assert!(rows.values().all(|n| *n == 1));

    // Redelivered whole: no row more, and no save at all but none needed.
    let saves = checkpoints.saves.load(Relaxed);
    assert_eq!(
        handler.process_stream(stream, &records).await.first_failed,
        None
    );
    assert_eq!(checkpoints.saves.load(Relaxed), saves);
    // A retry from a record in the middle (a reported failure): none more either.
    assert_eq!(
        handler
            .process_stream(stream, &records[1_777..])
            .await
            .first_failed,
        None
    );
    assert_eq!(rows_by_id(&objects).await, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_stopped_by_its_deadline_is_finished_by_the_retry_from_the_reported_record() {
    let (_, objects) = s3_store("archive").await;
    let checkpoints = checkpoints().await;
    let letters = flyhigh_core::memory::MemoryDeadLetters::new();
    let handler = flyhigh_handlers::ArchiveHandler::new(&objects, &checkpoints, &letters)
        .with_part_limits(flyhigh_core::archive::PartLimits {
            max_files: 100,
            ..Default::default()
        });
    let records = records_over_hours(350);
    let stream = "arn:aws:kinesis:us-east-1:123456789012:stream/events";
    let past = flyhigh_handlers::Deadline::at(std::time::Instant::now());
    let cut = handler.process_stream_by(stream, &records, past).await;
    assert_eq!(cut.first_failed, Some(100));
    assert_eq!(rows_by_id(&objects).await.len(), 100);
    // The retry from the reported record loses none and adds none.
    let retry = handler
        .process_stream_by(stream, &records[100..], flyhigh_handlers::Deadline::none())
        .await;
    assert_eq!(retry.first_failed, None);
    let rows = rows_by_id(&objects).await;
    assert_eq!(rows.len(), records.len());
    assert!(rows.values().all(|n| *n == 1));
}
