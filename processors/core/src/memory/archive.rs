//! In-memory archive ports, with the failures real stores have.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::archive::{ArchiveCheckpoint, MAX_PENDING_BYTES, pending_list_bytes};
use crate::ports::{ArchiveCheckpoints, ObjectInfo, ObjectStore, StoreError};

#[derive(Debug, Default)]
struct Objects {
    objects: BTreeMap<String, Vec<u8>>,
    fail_puts: u32,
    fail_promotes: u32,
    fail_deletes: u32,
    puts: u64,
}

/// An in-memory [`ObjectStore`].
#[derive(Debug, Default)]
pub struct MemoryObjectStore {
    state: Mutex<Objects>,
}

impl MemoryObjectStore {
    /// An empty store.
    pub fn new() -> MemoryObjectStore {
        MemoryObjectStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` puts fail with a transient error, writing nothing.
    pub fn fail_next_puts(&self, n: u32) {
        self.lock().fail_puts = n;
    }

    /// The next `n` promotions fail with a transient error, moving nothing.
    pub fn fail_next_promotes(&self, n: u32) {
        self.lock().fail_promotes = n;
    }

    /// The next `n` deletes fail with a transient error, deleting nothing.
    pub fn fail_next_deletes(&self, n: u32) {
        self.lock().fail_deletes = n;
    }

    /// Every object, by key.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock().objects.clone()
    }

    /// Puts so far (failed ones excluded).
    pub fn puts(&self) -> u64 {
        self.lock().puts
    }
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

impl ObjectStore for MemoryObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let mut s = self.lock();
        if take(&mut s.fail_puts) {
            return Err(StoreError::Transient(format!(
                "injected put failure at {key}"
            )));
        }
        s.puts += 1;
        s.objects.insert(key.to_string(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().objects.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        Ok(self
            .lock()
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    async fn promote(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if take(&mut s.fail_promotes) {
            return Err(StoreError::Transient(format!(
                "injected promote failure at {from}"
            )));
        }
        match s.objects.remove(from) {
            Some(bytes) => {
                s.objects.insert(to.to_string(), bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut s = self.lock();
        if take(&mut s.fail_deletes) {
            return Err(StoreError::Transient("injected delete failure".into()));
        }
        for key in keys {
            s.objects.remove(key);
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Checkpoints {
    by_shard: HashMap<String, ArchiveCheckpoint>,
    fail_loads: u32,
    fail_saves: u32,
    largest_pending_bytes: usize,
}

/// In-memory [`ArchiveCheckpoints`].
#[derive(Debug, Default)]
pub struct MemoryArchiveCheckpoints {
    state: Mutex<Checkpoints>,
}

impl MemoryArchiveCheckpoints {
    /// No checkpoints.
    pub fn new() -> MemoryArchiveCheckpoints {
        MemoryArchiveCheckpoints::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Checkpoints> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` loads fail with a transient error.
    pub fn fail_next_loads(&self, n: u32) {
        self.lock().fail_loads = n;
    }

    /// The next `n` saves fail with a transient error, saving nothing.
    pub fn fail_next_saves(&self, n: u32) {
        self.lock().fail_saves = n;
    }

    /// The largest pending list saved so far, in DynamoDB bytes
    /// ([`pending_list_bytes`]).
    pub fn largest_pending_bytes(&self) -> usize {
        self.lock().largest_pending_bytes
    }

    /// The stored checkpoint of a shard.
    pub fn get(&self, shard_id: &str) -> Option<ArchiveCheckpoint> {
        self.lock().by_shard.get(shard_id).cloned()
    }
}

impl ArchiveCheckpoints for MemoryArchiveCheckpoints {
    async fn load(&self, shard_id: &str) -> Result<Option<ArchiveCheckpoint>, StoreError> {
        let mut s = self.lock();
        if take(&mut s.fail_loads) {
            return Err(StoreError::Transient(
                "injected checkpoint load failure".into(),
            ));
        }
        Ok(s.by_shard.get(shard_id).cloned())
    }

    async fn save(&self, shard_id: &str, next: &ArchiveCheckpoint) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if take(&mut s.fail_saves) {
            return Err(StoreError::Transient(
                "injected checkpoint save failure".into(),
            ));
        }
        // As DynamoDB refuses an item past 400 KB (a ValidationException).
        let bytes = pending_list_bytes(&next.pending);
        if bytes > MAX_PENDING_BYTES {
            return Err(StoreError::Permanent(format!(
                "checkpoint of {shard_id}: {} pending keys ({bytes} bytes) pass the item size limit",
                next.pending.len()
            )));
        }
        s.largest_pending_bytes = s.largest_pending_bytes.max(bytes);
        let stored = s.by_shard.get(shard_id).map_or(0, |c| c.version);
        if stored + 1 != next.version {
            return Ok(false);
        }
        s.by_shard.insert(shard_id.to_string(), next.clone());
        Ok(true)
    }
}
