//! The archive's ports: where its objects go, and where each shard's archive
//! checkpoint is kept.

use std::future::Future;
use std::sync::Arc;

use super::StoreError;
use crate::archive::ArchiveCheckpoint;

/// One object listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectInfo {
    /// Its key, relative to the store's root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Where archive objects live: an S3 bucket and prefix, or a local directory, with
/// the same keys. Every write replaces the whole object atomically: a reader sees
/// the old bytes or the new, never part.
pub trait ObjectStore: Send + Sync {
    /// Writes `bytes` at `key`, replacing what is there.
    fn put(&self, key: &str, bytes: Vec<u8>)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The bytes at `key`, `None` if there is no such object.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Every object whose key starts with `prefix`, in key order.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send;

    /// Moves the object at `from` to `to` (replacing `to`). `Ok(false)` if there is
    /// no object at `from` (moved already, by this caller or another).
    fn promote(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes these objects; a missing one is not an error.
    fn delete(&self, keys: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where each shard's [`ArchiveCheckpoint`] is kept.
pub trait ArchiveCheckpoints: Send + Sync {
    /// The shard's checkpoint, `None` before its first batch.
    fn load(
        &self,
        shard_id: &str,
    ) -> impl Future<Output = Result<Option<ArchiveCheckpoint>, StoreError>> + Send;

    /// Saves `next` if the stored checkpoint has version `next.version - 1` (or there
    /// is none and `next.version == 1`). `Ok(false)`: another consumer saved first;
    /// nothing changed.
    fn save(
        &self,
        shard_id: &str,
        next: &ArchiveCheckpoint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

macro_rules! forward_object_store {
    ($($t:tt)*) => {
        impl<T: ObjectStore> ObjectStore for $($t)* {
            fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send {
                (**self).put(key, bytes)
            }
            fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send {
                (**self).get(key)
            }
            fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send {
                (**self).list(prefix)
            }
            fn promote(&self, from: &str, to: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
                (**self).promote(from, to)
            }
            fn delete(&self, keys: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send {
                (**self).delete(keys)
            }
        }
    };
}

macro_rules! forward_checkpoints {
    ($($t:tt)*) => {
        impl<T: ArchiveCheckpoints> ArchiveCheckpoints for $($t)* {
            fn load(&self, shard_id: &str) -> impl Future<Output = Result<Option<ArchiveCheckpoint>, StoreError>> + Send {
                (**self).load(shard_id)
            }
            fn save(&self, shard_id: &str, next: &ArchiveCheckpoint) -> impl Future<Output = Result<bool, StoreError>> + Send {
                (**self).save(shard_id, next)
            }
        }
    };
}

forward_object_store!(&T);
forward_object_store!(Arc<T>);
forward_checkpoints!(&T);
forward_checkpoints!(Arc<T>);
