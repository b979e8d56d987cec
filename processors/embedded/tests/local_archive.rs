//! `LocalObjectStore` and `SqliteArchiveCheckpoints` against the archive ports: the
//! files the keys spell, atomic replacement under a concurrent reader, listings by
//! any key prefix, promotion and deletion with their directories, invalid keys
//! refused, the same answers as the in-memory reference store; and checkpoints saved
//! exactly once by racing handles, read back exactly, kept across a reopen.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use flyhigh_core::StoreError;
use flyhigh_core::archive::ArchiveCheckpoint;
use flyhigh_core::memory::MemoryObjectStore;
use flyhigh_core::ports::{ArchiveCheckpoints, ObjectInfo, ObjectStore};
use flyhigh_core::records::Position;
use flyhigh_embedded::{
    ARCHIVE_CHECKPOINTS_FILE, ARCHIVE_DIR, DEMAND_FILE, LocalObjectStore, SqliteArchiveCheckpoints,
    SqliteDemandStore,
};
use proptest::prelude::*;

const KEY: &str = "event_type=booking/dt=2026-12-01/hour=09/b_x.parquet";
const SHARD: &str = "shardId-000000000001";
/// A realistic Kinesis sequence number: 56 digits.
const SEQUENCE: &str = "49590338271490256608559692538361571095921575989136588898";

fn store() -> (tempfile::TempDir, LocalObjectStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = LocalObjectStore::open(dir.path().join(ARCHIVE_DIR)).expect("open the store");
    (dir, store)
}

fn keys(listed: &[ObjectInfo]) -> Vec<&str> {
    listed.iter().map(|o| o.key.as_str()).collect()
}

/// Every file and directory under `root`, relative, sorted (temporary files too).
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if path.is_dir() {
                out.push(format!("{relative}/"));
                walk(root, &path, out);
            } else {
                out.push(relative);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn put_then_get_round_trips_at_the_path_the_key_spells() {
    let (_dir, store) = store();
    assert_eq!(store.get(KEY).await.unwrap(), None);
    store.put(KEY, b"PAR1 bytes".to_vec()).await.unwrap();
    assert_eq!(
        store.get(KEY).await.unwrap().as_deref(),
        Some(&b"PAR1 bytes"[..])
    );
    let file = store
        .root()
        .join("event_type=booking")
        .join("dt=2026-12-01")
        .join("hour=09")
        .join("b_x.parquet");
    assert_eq!(store.path_of(KEY).unwrap(), file);
    assert_eq!(std::fs::read(&file).unwrap(), b"PAR1 bytes");
    // Nothing else is left in the directory: the temporary file was renamed.
    assert_eq!(
        tree(store.root()),
        [
            "event_type=booking/",
            "event_type=booking/dt=2026-12-01/",
            "event_type=booking/dt=2026-12-01/hour=09/",
            KEY,
        ]
    );
    // A directory is no object.
    assert_eq!(store.get("event_type=booking").await.unwrap(), None);
    // Nor is anything below a file.
    assert_eq!(store.get(&format!("{KEY}/x")).await.unwrap(), None);
}

#[tokio::test]
async fn an_overwrite_replaces_the_whole_content() {
    let (_dir, store) = store();
    store.put(KEY, vec![b'A'; 10_000]).await.unwrap();
    store.put(KEY, b"short".to_vec()).await.unwrap();
    assert_eq!(store.get(KEY).await.unwrap().unwrap(), b"short");
    assert_eq!(
        store.list("").await.unwrap(),
        [ObjectInfo {
            key: KEY.into(),
            size: 5
        }]
    );
    store.put(KEY, Vec::new()).await.unwrap();
    assert_eq!(store.get(KEY).await.unwrap().unwrap(), b"");
}

#[tokio::test]
async fn a_listing_takes_any_key_prefix_and_descends_into_directories() {
    let (_dir, store) = store();
    let all = [
        "event_type=booking/dt=2026-12-01/hour=09/b_1.parquet",
        "event_type=booking/dt=2026-12-01/hour=10/b_2.parquet",
        "event_type=booking/dt=2026-12-02/hour=00/c_3.parquet",
        "event_type=bookingx/dt=2026-12-01/hour=09/b_4.parquet",
        "event_type=search/dt=2026-12-01/hour=09/b_5.parquet",
        "_staging/event_type=booking/dt=2026-12-01/hour=09/b_6.parquet",
        "top.parquet",
    ];
    for (i, key) in all.iter().enumerate() {
        store.put(key, vec![0; i]).await.unwrap();
    }
    // A partial directory name.
    assert_eq!(
        keys(&store.list("event_type=book").await.unwrap()),
        [all[0], all[1], all[2], all[3]]
    );
    // A whole directory: the neighbour whose name merely starts alike is out.
    assert_eq!(
        keys(&store.list("event_type=booking/").await.unwrap()),
        [all[0], all[1], all[2]]
    );
    // A partial file name.
    assert_eq!(
        keys(
            &store
                .list("event_type=booking/dt=2026-12-01/hour=09/b_")
                .await
                .unwrap()
        ),
        [all[0]]
    );
    // A partial name inside a partition.
    assert_eq!(
        keys(&store.list("event_type=booking/dt=2026-12-0").await.unwrap()),
        [all[0], all[1], all[2]]
    );
    assert_eq!(keys(&store.list("_staging/").await.unwrap()), [all[5]]);
    assert_eq!(keys(&store.list("top").await.unwrap()), [all[6]]);
    // An exact key lists that object.
    assert_eq!(keys(&store.list(all[4]).await.unwrap()), [all[4]]);
    assert_eq!(store.list("event_type=refund/").await.unwrap(), []);
    assert_eq!(store.list("nothing/at/all/").await.unwrap(), []);
    // Below a file there is nothing.
    assert_eq!(store.list("top.parquet/").await.unwrap(), []);
    // Everything, with sizes.
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), all.len());
    for info in &listed {
        let i = all.iter().position(|k| *k == info.key).unwrap();
        assert_eq!(info.size, i as u64);
    }
}

#[tokio::test]
async fn a_listing_skips_temporary_files_and_is_in_key_order() {
    let (_dir, store) = store();
    // Key order is byte order: `-` (0x2D) < `/` (0x2F) < `0` < `_` < `a`, which is
    // not the order a directory walk meets them in.
    let puts = ["a/b", "a-b", "a0", "a_b", "a/a/z", "ab", "a/c"];
    for key in puts {
        store.put(key, b"x".to_vec()).await.unwrap();
    }
    let dir = store.root().join("a");
    std::fs::write(dir.join(".b.tmp-1-0"), b"half").unwrap();
    std::fs::write(dir.join(".c.parquet.tmp-99-7"), b"half").unwrap();
    std::fs::create_dir(dir.join(".hidden")).unwrap();
    std::fs::write(dir.join(".hidden").join("x"), b"?").unwrap();
    let listed = keys(&store.list("").await.unwrap()).join(" ");
    assert_eq!(listed, "a-b a/a/z a/b a/c a0 a_b ab");
    assert_eq!(
        keys(&store.list("a/").await.unwrap()),
        ["a/a/z", "a/b", "a/c"]
    );
    // A prefix that only a temporary file starts with lists nothing.
    assert_eq!(store.list("a/.b").await.unwrap(), []);
}

#[tokio::test]
async fn a_second_promotion_of_the_same_object_finds_nothing() {
    let (_dir, store) = store();
    let staged = format!("_staging/{KEY}");
    store.put(&staged, b"data".to_vec()).await.unwrap();
    assert!(store.promote(&staged, KEY).await.unwrap());
    assert!(!store.promote(&staged, KEY).await.unwrap());
    assert_eq!(store.get(&staged).await.unwrap(), None);
    assert_eq!(store.get(KEY).await.unwrap().unwrap(), b"data");
    // Promoting over an existing object replaces it.
    store.put(&staged, b"newer".to_vec()).await.unwrap();
    assert!(store.promote(&staged, KEY).await.unwrap());
    assert_eq!(store.get(KEY).await.unwrap().unwrap(), b"newer");
    // Nothing at all there.
    assert!(!store.promote("_staging/none", "none").await.unwrap());
}

#[tokio::test]
async fn a_promotion_creates_the_target_directory_and_prunes_the_staged_one() {
    let (_dir, store) = store();
    let staged = format!("_staging/{KEY}");
    store.put(&staged, b"data".to_vec()).await.unwrap();
    store
        .put("_staging/other/keep", b"k".to_vec())
        .await
        .unwrap();
    assert!(!store.root().join("event_type=booking").exists());
    assert!(store.promote(&staged, KEY).await.unwrap());
    assert_eq!(store.get(KEY).await.unwrap().unwrap(), b"data");
    // The staged partition's directories went with the file; `_staging/` still holds
    // another object.
    assert_eq!(
        tree(store.root()),
        [
            "_staging/",
            "_staging/other/",
            "_staging/other/keep",
            "event_type=booking/",
            "event_type=booking/dt=2026-12-01/",
            "event_type=booking/dt=2026-12-01/hour=09/",
            KEY,
        ]
    );
}

#[tokio::test]
async fn a_delete_ignores_missing_objects_and_removes_emptied_directories() {
    let (_dir, store) = store();
    let other = "event_type=booking/dt=2026-12-01/hour=10/b_y.parquet";
    store.put(KEY, b"1".to_vec()).await.unwrap();
    store.put(other, b"2".to_vec()).await.unwrap();
    store
        .delete(&[KEY.to_string(), "never/was/there".into(), KEY.to_string()])
        .await
        .unwrap();
    assert_eq!(store.get(KEY).await.unwrap(), None);
    assert_eq!(
        tree(store.root()),
        [
            "event_type=booking/",
            "event_type=booking/dt=2026-12-01/",
            "event_type=booking/dt=2026-12-01/hour=10/",
            other,
        ]
    );
    store.delete(&[other.to_string()]).await.unwrap();
    // Every directory went, the root stayed.
    assert!(store.root().is_dir());
    assert_eq!(tree(store.root()), Vec::<String>::new());
    store.delete(&[]).await.unwrap();
    store.delete(&[other.to_string()]).await.unwrap();
    // A directory that still holds something (here a temporary file) stays.
    store.put(KEY, b"1".to_vec()).await.unwrap();
    let partition = store.path_of(KEY).unwrap().parent().unwrap().to_path_buf();
    std::fs::write(partition.join(".b_z.parquet.tmp-1-1"), b"").unwrap();
    store.delete(&[KEY.to_string()]).await.unwrap();
    assert!(partition.is_dir());
}

#[tokio::test]
async fn invalid_keys_are_refused_naming_the_key() {
    let (dir, store) = store();
    store.put("inside", b"x".to_vec()).await.unwrap();
    // Quoted as Rust does, so that a NUL or a backslash shows.
    let permanent_naming = |result: Result<(), StoreError>, key: &str| match result {
        Err(StoreError::Permanent(message)) => {
            let quoted = format!("{key:?}");
            assert!(message.contains(&quoted), "{message:?} names {quoted}")
        }
        other => panic!("{key:?}: expected a permanent error, got {other:?}"),
    };
    for key in [
        "../x", "/abs", "a//b", "", "a/", "./x", "a/../b", ".x", "a\\b", "a\0b",
    ] {
        permanent_naming(store.put(key, b"x".to_vec()).await, key);
        permanent_naming(store.get(key).await.map(drop), key);
        permanent_naming(store.promote("inside", key).await.map(drop), key);
        permanent_naming(store.promote(key, "inside").await.map(drop), key);
        permanent_naming(store.delete(&["inside".into(), key.into()]).await, key);
        permanent_naming(store.path_of(key).map(drop), key);
    }
    // No object can be listed by them, and nothing was written or deleted outside or
    // inside the root.
    for prefix in ["../", "/abs", "a//", "./"] {
        assert_eq!(store.list(prefix).await.unwrap(), [], "{prefix:?}");
    }
    assert_eq!(store.get("inside").await.unwrap().unwrap(), b"x");
    let mut outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside.sort();
    assert_eq!(outside, [ARCHIVE_DIR]);
}

#[tokio::test]
async fn a_key_under_an_object_is_a_permanent_error_naming_the_path() {
    let (_dir, store) = store();
    store.put("a/b", b"x".to_vec()).await.unwrap();
    match store.put("a/b/c", b"y".to_vec()).await {
        Err(StoreError::Permanent(message)) => assert!(message.contains("a/b"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    store.put("d/e/f", b"x".to_vec()).await.unwrap();
    match store.put("d/e", b"y".to_vec()).await {
        Err(StoreError::Permanent(message)) => assert!(message.contains("d/e"), "{message}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    // The failed put left no temporary file.
    assert_eq!(keys(&store.list("").await.unwrap()), ["a/b", "d/e/f"]);
    assert_eq!(tree(store.root()).len(), 5, "{:?}", tree(store.root()));
}

/// The regression the temporary file and the rename exist for: a reader of a key
/// being overwritten sees one whole version or the other, never a mix or a prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_sees_a_partial_put() {
    const SIZE: usize = 1 << 20;
    const PUTS: usize = 40;
    let (_dir, store) = store();
    store.put(KEY, vec![b'A'; SIZE]).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (store, done) = (store.clone(), done.clone());
        async move {
            for i in 0..PUTS {
                let byte = if i % 2 == 0 { b'B' } else { b'A' };
                store.put(KEY, vec![byte; SIZE]).await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
        }
    });
    let reader = tokio::spawn({
        let store = store.clone();
        async move {
            let (mut reads, mut seen) = (0u32, [false; 2]);
            while !done.load(Ordering::SeqCst) || reads == 0 {
                let bytes = store
                    .get(KEY)
                    .await
                    .unwrap()
                    .expect("the key always exists");
                assert_eq!(bytes.len(), SIZE, "a partial file after {reads} reads");
                let first = bytes[0];
                assert!(first == b'A' || first == b'B');
                assert!(bytes.iter().all(|b| *b == first), "a mixed file");
                seen[usize::from(first == b'B')] = true;
                reads += 1;
            }
            (reads, seen)
        }
    });
    writer.await.unwrap();
    let (reads, seen) = reader.await.unwrap();
    assert!(reads > 0 && seen.iter().any(|s| *s), "{reads} reads");
    assert_eq!(store.get(KEY).await.unwrap().unwrap(), vec![b'A'; SIZE]);
    assert_eq!(keys(&store.list("").await.unwrap()), [KEY]);
}

#[test]
fn outside_a_runtime_the_store_works_inline() {
    let (_dir, store) = store();
    let got = block_on_without_runtime(async {
        store.put(KEY, b"x".to_vec()).await?;
        store.get(KEY).await
    });
    assert_eq!(got.unwrap().unwrap(), b"x");
}

/// The smallest executor: polls on this thread, no runtime anywhere.
fn block_on_without_runtime<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Put(&'static str, u8),
    Get(&'static str),
    List(&'static str),
    Promote(&'static str, &'static str),
    Delete(Vec<&'static str>),
}

/// Keys where none is another's directory (which only the memory store could hold).
const MODEL_KEYS: [&str; 6] = [
    "a/x.parquet",
    "a/b/x.parquet",
    "a/b/y",
    "ab/y",
    "_staging/a/x.parquet",
    "_staging/a/b/x.parquet",
];
const MODEL_PREFIXES: [&str; 8] = ["", "a", "a/", "a/b", "a/b/", "ab", "_", "_staging/a/b/x"];

fn op() -> impl Strategy<Value = Op> {
    let key = proptest::sample::select(&MODEL_KEYS[..]);
    prop_oneof![
        3 => (key.clone(), any::<u8>()).prop_map(|(k, b)| Op::Put(k, b)),
        1 => key.clone().prop_map(Op::Get),
        1 => proptest::sample::select(&MODEL_PREFIXES[..]).prop_map(Op::List),
        2 => (key.clone(), key.clone()).prop_map(|(f, t)| Op::Promote(f, t)),
        1 => proptest::collection::vec(key, 0..3).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of operations answers as the in-memory reference store does.
    #[test]
    fn the_local_store_answers_as_the_memory_store(ops in proptest::collection::vec(op(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let (_dir, local) = store();
            let memory = MemoryObjectStore::new();
            for op in &ops {
                match op {
                    Op::Put(key, byte) => {
                        let bytes = vec![*byte; usize::from(*byte)];
                        local.put(key, bytes.clone()).await.unwrap();
                        memory.put(key, bytes).await.unwrap();
                    }
                    Op::Get(key) => {
                        prop_assert_eq!(local.get(key).await.unwrap(), memory.get(key).await.unwrap());
                    }
                    Op::List(prefix) => {
                        prop_assert_eq!(local.list(prefix).await.unwrap(), memory.list(prefix).await.unwrap());
                    }
                    Op::Promote(from, to) => {
                        prop_assert_eq!(
                            local.promote(from, to).await.unwrap(),
                            memory.promote(from, to).await.unwrap()
                        );
                    }
                    Op::Delete(keys) => {
                        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                        local.delete(&keys).await.unwrap();
                        memory.delete(&keys).await.unwrap();
                    }
                }
            }
            prop_assert_eq!(local.list("").await.unwrap(), memory.list("").await.unwrap());
            Ok(())
        })?;
    }
}

fn committed(through: &str, sub: u32, pending: &[&str], version: u64) -> ArchiveCheckpoint {
    ArchiveCheckpoint {
        archived_through: Some(Position::new(through, Some(sub))),
        version,
        pending: pending.iter().map(|k| k.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_checkpoint_is_saved_once_per_version_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints =
        SqliteArchiveCheckpoints::open(&dir.path().join(ARCHIVE_CHECKPOINTS_FILE)).unwrap();
    assert_eq!(checkpoints.load(SHARD).await.unwrap(), None);

    let first = committed(
        SEQUENCE,
        7,
        &[KEY, "event_type=search/dt=2026-12-01/hour=09/b_x.parquet"],
        1,
    );
    assert!(checkpoints.save(SHARD, &first).await.unwrap());
    assert!(!checkpoints.save(SHARD, &first).await.unwrap());
    assert_eq!(checkpoints.load(SHARD).await.unwrap(), Some(first.clone()));
    // Another shard is another row.
    assert_eq!(
        checkpoints.load("shardId-000000000002").await.unwrap(),
        None
    );

    // Only the next version follows.
    let skipped = committed(SEQUENCE, 9, &[], 3);
    assert!(!checkpoints.save(SHARD, &skipped).await.unwrap());
    assert!(
        !checkpoints
            .save(SHARD, &ArchiveCheckpoint::default())
            .await
            .unwrap()
    );
    let promoted = first.promoted();
    assert!(checkpoints.save(SHARD, &promoted).await.unwrap());
    assert_eq!(
        checkpoints.load(SHARD).await.unwrap(),
        Some(promoted.clone())
    );
    // A later version refused leaves the stored one as it was.
    assert!(
        !checkpoints
            .save(SHARD, &committed("1", 0, &["k"], 2))
            .await
            .unwrap()
    );
    assert_eq!(checkpoints.load(SHARD).await.unwrap(), Some(promoted));

    // A checkpoint of nothing yet (every record of a batch dead-lettered has a
    // position; this one has none) reads back as such.
    let empty = ArchiveCheckpoint {
        archived_through: None,
        version: 1,
        pending: Vec::new(),
    };
    assert!(
        checkpoints
            .save("shardId-000000000003", &empty)
            .await
            .unwrap()
    );
    assert_eq!(
        checkpoints.load("shardId-000000000003").await.unwrap(),
        Some(empty)
    );

    // What it stores is readable with the sqlite3 shell: the position as its
    // ordered key, the pending keys as a JSON array.
    let conn = rusqlite::Connection::open(dir.path().join(ARCHIVE_CHECKPOINTS_FILE)).unwrap();
    let (through, pending, updated_at): (String, String, String) = conn
        .query_row(
            "SELECT archived_through, pending, updated_at FROM archive_checkpoints \
             WHERE shard_id = ?1",
            [SHARD],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(through, Position::new(SEQUENCE, Some(7)).to_key());
    assert_eq!(pending, "[]");
    assert!(updated_at.ends_with('Z'), "{updated_at}");
}

#[tokio::test]
async fn checkpoints_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ARCHIVE_CHECKPOINTS_FILE);
    let saved = committed(SEQUENCE, 0, &[KEY], 1);
    {
        let checkpoints = SqliteArchiveCheckpoints::open(&path).unwrap();
        assert!(checkpoints.save(SHARD, &saved).await.unwrap());
    }
    let reopened = SqliteArchiveCheckpoints::open(&path).unwrap();
    assert_eq!(reopened.load(SHARD).await.unwrap(), Some(saved.clone()));
    assert!(!reopened.save(SHARD, &saved).await.unwrap());
    assert!(reopened.save(SHARD, &saved.promoted()).await.unwrap());
}

#[test]
fn another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    drop(SqliteDemandStore::open(&path).unwrap());
    match SqliteArchiveCheckpoints::open(&path) {
        Err(StoreError::Permanent(message)) => {
            assert!(
                message.contains("not an archive checkpoint database"),
                "{message}"
            );
            assert!(message.contains(DEMAND_FILE), "{message}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// Two handles on one fresh file (two consumers of one shard after a rebalance),
/// each on its own thread, save the same version at once, 100 times: exactly one wins
/// each round, and the loser gets `false`, never an error.
#[test]
fn racing_handles_get_exactly_one_winner_per_version() {
    const ROUNDS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ARCHIVE_CHECKPOINTS_FILE);
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2u32)
        .map(|racer| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                // Both open the fresh file at once too.
                barrier.wait();
                let checkpoints = SqliteArchiveCheckpoints::open(&path).unwrap();
                let mut wins = Vec::new();
                for version in 1..=ROUNDS {
                    let next = committed(
                        &format!("{SEQUENCE}{version}"),
                        racer,
                        &[&format!("racer-{racer}")],
                        version,
                    );
                    barrier.wait();
                    let won = runtime
                        .block_on(checkpoints.save(SHARD, &next))
                        .unwrap_or_else(|e| panic!("racer {racer}, version {version}: {e}"));
                    wins.push(won);
                    // Both have tried before the next round starts.
                    barrier.wait();
                }
                wins
            })
        })
        .collect();
    let wins: Vec<Vec<bool>> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(wins[0].len(), ROUNDS as usize);
    for (round, (a, b)) in wins[0].iter().zip(&wins[1]).enumerate() {
        assert!(a != b, "round {}: {a} and {b}", round + 1);
    }
    let last_winner = u32::from(wins[1][ROUNDS as usize - 1]);
    let checkpoints = SqliteArchiveCheckpoints::open(&path).unwrap();
    let stored = block_on_without_runtime(checkpoints.load(SHARD))
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        committed(
            &format!("{SEQUENCE}{ROUNDS}"),
            last_winner,
            &[&format!("racer-{last_winner}")],
            ROUNDS
        )
    );
}

/// Regression: promotions out of one staging directory, at once, made the last one
/// out prune the directory while another was syncing it, which failed that
/// promotion with "No such file or directory" (the demo's shards do exactly this).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_promotions_out_of_one_staging_directory_all_succeed() {
    let (_dir, store) = store();
    for round in 0..40 {
        for i in 0..8 {
            let key = format!("event_type=search/dt=2026-12-01/hour=06/b_{round}_{i}.parquet");
            store
                .put(&format!("_staging/{key}"), vec![i as u8; 64])
                .await
                .unwrap();
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key =
                        format!("event_type=search/dt=2026-12-01/hour=06/b_{round}_{i}.parquet");
                    store.promote(&format!("_staging/{key}"), &key).await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(true), "round {round}");
        }
    }
    assert_eq!(store.list("event_type=search/").await.unwrap().len(), 320);
}
