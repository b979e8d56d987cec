//! The archive's objects in an S3 bucket: [`S3ObjectStore`] implements
//! [`ObjectStore`] under a key prefix.
//!
//! - `keys`: the prefix, full keys and copy sources (pure).
//! - `parts`: when an object goes up in parts and how it is cut (pure).
//! - `errors`: SDK errors classified by what the caller must do (pure).
//! - this module: the only code that calls S3.
//!
//! The port's keys are relative to the store's prefix: with prefix `archive` (or
//! `/archive/`), key `event_type=booking/dt=2026-12-01/hour=09/b_….parquet` is the object
//! `archive/event_type=booking/dt=2026-12-01/hour=09/b_….parquet`, and listing gives back the
//! relative key. The prefix is normalized (no leading, trailing or doubled slashes,
//! then one `/`); keys are used as they are.
//!
//! | port method | calls |
//! |---|---|
//! | `put` | below the multipart threshold (default 16 MiB) one `PutObject` with a CRC32 checksum the SDK computes and S3 checks; at or above it `CreateMultipartUpload`, one `UploadPart` per part (default 8 MiB) with its own CRC32, `CompleteMultipartUpload` with the parts' checksums; a failure after the create aborts the upload (best effort) and returns the error |
//! | `get` | one `GetObject` with checksum mode on (the SDK checks a full-object checksum it gets back); `NoSuchKey` → `None` |
//! | `list` | `ListObjectsV2` of the prefix, page after page (continuation tokens), sorted by key |
//! | `promote` | `CopyObject` to the new key (CRC32 and encryption set again, as a copy does not keep them), then `DeleteObject` of the old; `NoSuchKey` on the copy → `Ok(false)` |
//! | `delete` | `DeleteObjects` in quiet mode, [`DELETE_MAX_KEYS`] keys per request; a key the response reports as not deleted fails the call |
//!
//! A put replaces the object atomically (S3 shows a new object only once it is
//! complete, multipart ones included), as the port promises. A promotion is a copy
//! and a delete, not a rename: a crash between them leaves both copies, and the next
//! promotion of the same key (the archive retries pending files) copies again and
//! deletes. Two consumers promoting the same file may both answer `true`; the
//! result is the same object. `CopyObject` copies up to 5 GiB, far above the
//! archive's files (compaction aims at 128 MiB).
//!
//! # Encryption
//!
//! With [`S3ObjectStore::with_kms_key`], every `PutObject`, `CopyObject` and
//! `CreateMultipartUpload` asks for `aws:kms` with that key; without, objects get the
//! bucket's default encryption (SSE-S3 unless the bucket says otherwise).
//!
//! # What the role needs
//!
//! `s3:PutObject`, `s3:GetObject`, `s3:DeleteObject`, `s3:ListBucket` (without it S3
//! answers a missing key with `AccessDenied`, which is permanent, not `None`),
//! `s3:AbortMultipartUpload`, and with a KMS key `kms:GenerateDataKey` and
//! `kms:Decrypt` on it. The bucket should have a lifecycle rule that aborts
//! incomplete multipart uploads after a day: an upload whose abort failed (or whose
//! Lambda died mid-way) otherwise keeps its parts, billed.

mod errors;
mod keys;
mod parts;

use std::ops::Range;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, CreateBucketConfiguration, Delete, ObjectIdentifier, ServerSideEncryption,
};
use flyhigh_core::ports::{ObjectInfo, ObjectStore, StoreError};

use self::errors::{delete_errors, is_no_such_key, store_error};
use self::keys::{copy_source, full_key, normalize_prefix, relative_key};
use self::parts::Multipart;
pub use self::parts::{
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_BYTES, MAX_PART_BYTES, MAX_PARTS, MAX_PUT_BYTES,
    MIN_PART_BYTES, S3ConfigError,
};

/// Most keys one `DeleteObjects` request may carry.
pub const DELETE_MAX_KEYS: usize = 1000;

/// Most keys one `ListObjectsV2` page holds.
pub const LIST_MAX_KEYS: i32 = 1000;

/// Archive objects in an S3 bucket, under a key prefix (see the module docs).
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    prefix: String,
    kms_key: Option<String>,
    multipart: Multipart,
    list_page_size: Option<i32>,
}

impl S3ObjectStore {
    /// A store of the objects under `prefix` (`""` for the whole bucket) in
    /// `bucket`, which must exist (see [`create_bucket`]). Bucket default
    /// encryption, parts of [`DEFAULT_PART_BYTES`] from
    /// [`DEFAULT_MULTIPART_THRESHOLD`] on.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: &str) -> S3ObjectStore {
        S3ObjectStore {
            client,
            bucket: bucket.into(),
            prefix: normalize_prefix(prefix),
            kms_key: None,
            multipart: Multipart::default(),
            list_page_size: None,
        }
    }

    /// Encrypts every object written with the KMS key `key_id` (an id, ARN or alias
    /// ARN); `None`, or an empty id (an unset environment variable), leaves it to the
    /// bucket's default encryption.
    pub fn with_kms_key(mut self, key_id: Option<String>) -> S3ObjectStore {
        self.kms_key = key_id.filter(|k| !k.is_empty());
        self
    }

    /// Objects of `threshold_bytes` and more go up in parts of `part_bytes` (the
    /// last smaller; bigger parts when an object would need more than
    /// [`MAX_PARTS`]).
    ///
    /// # Errors
    ///
    /// [`S3ConfigError`] naming the setting when `part_bytes` is outside
    /// [`MIN_PART_BYTES`]..=[`MAX_PART_BYTES`] or `threshold_bytes` outside
    /// [`MIN_PART_BYTES`]..=[`MAX_PUT_BYTES`].
    pub fn with_multipart(
        mut self,
        threshold_bytes: u64,
        part_bytes: u64,
    ) -> Result<S3ObjectStore, S3ConfigError> {
        self.multipart = Multipart::new(threshold_bytes, part_bytes)?;
        Ok(self)
    }

    /// Caps the keys of each `ListObjectsV2` page (S3's `MaxKeys`, 1 to
    /// [`LIST_MAX_KEYS`], which is also the default), for tests of pagination.
    pub fn with_list_page_size(mut self, keys: i32) -> S3ObjectStore {
        self.list_page_size = Some(keys.clamp(1, LIST_MAX_KEYS));
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The normalized prefix: empty, or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full_key(&self, key: &str) -> String {
        full_key(&self.prefix, key)
    }

    /// An object as errors name it.
    fn target(&self, full_key: &str) -> String {
        format!("s3://{}/{full_key}", self.bucket)
    }

    /// The encryption of every write: `aws:kms` and the key, or nothing (the
    /// bucket's default).
    fn encryption(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.kms_key {
            Some(key) => (Some(ServerSideEncryption::AwsKms), Some(key.clone())),
            None => (None, None),
        }
    }

    async fn put_whole(&self, full: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let (sse, kms_key) = self.encryption();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| store_error("PutObject", &self.target(full), &e))?;
        Ok(())
    }

    async fn put_in_parts(&self, full: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let target = self.target(full);
        let Some(ranges) = self.multipart.parts(bytes.len()) else {
            return Err(StoreError::Permanent(format!(
                "S3 {target}: {} bytes do not fit in one multipart upload ({MAX_PARTS} parts of at most {MAX_PART_BYTES} bytes)",
                bytes.len()
            )));
        };
        let (sse, kms_key) = self.encryption();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
            .map_err(|e| store_error("CreateMultipartUpload", &target, &e))?;
        let upload_id = created.upload_id().map(str::to_string).ok_or_else(|| {
            StoreError::Transient(format!(
                "S3 CreateMultipartUpload {target}: no upload id in the answer"
            ))
        })?;
        let parts = ranges.len();
        match self
            .upload_and_complete(full, &upload_id, &bytes, ranges)
            .await
        {
            Ok(()) => {
                tracing::debug!(bucket = %self.bucket, key = full, bytes = bytes.len(), parts, "object put in parts");
                Ok(())
            }
            Err(e) => {
                self.abort(full, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn upload_and_complete(
        &self,
        full: &str,
        upload_id: &str,
        bytes: &[u8],
        ranges: Vec<Range<usize>>,
    ) -> Result<(), StoreError> {
        let target = self.target(full);
        let mut completed = Vec::with_capacity(ranges.len());
        // One part at a time: memory stays at the object plus one part's copy, and a
        // Lambda's network is saturated by one 8 MiB stream anyway.
        for (index, range) in ranges.into_iter().enumerate() {
            let number = i32::try_from(index + 1).map_err(|_| {
                StoreError::Permanent(format!("S3 UploadPart {target}: part {index} of too many"))
            })?;
            let part = bytes
                .get(range)
                .ok_or_else(|| {
                    StoreError::Permanent(format!(
                        "S3 UploadPart {target}: part {number} is outside the object"
                    ))
                })?
                .to_vec();
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| store_error("UploadPart", &format!("{target} part {number}"), &e))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| store_error("CompleteMultipartUpload", &target, &e))?;
        Ok(())
    }

    /// Aborts an upload, so that its parts are not kept (and billed). Best effort:
    /// the caller returns the error that made it give up, and the bucket's
    /// lifecycle rule cleans up what an abort could not.
    async fn abort(&self, full: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(
                bucket = %self.bucket,
                key = full,
                upload_id,
                error = %crate::error_text(&e),
                "multipart upload not aborted; its parts stay until the bucket's lifecycle rule removes them"
            );
        }
    }

    async fn exists(&self, full: &str) -> Result<bool, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                Ok(false)
            }
            Err(e) => Err(store_error("HeadObject", &self.target(full), &e)),
        }
    }
}

impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let full = self.full_key(key);
        if self.multipart.is_multipart(bytes.len()) {
            self.put_in_parts(&full, bytes).await
        } else {
            self.put_whole(&full, bytes).await
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let full = self.full_key(key);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if is_no_such_key(&e) => return Ok(None),
            Err(e) => return Err(store_error("GetObject", &self.target(&full), &e)),
        };
        // A body cut short or failing its checksum: the same read may succeed again.
        let body = out.body.collect().await.map_err(|e| {
            StoreError::Transient(format!(
                "S3 GetObject {}: reading the body: {}",
                self.target(&full),
                crate::error_text(&e)
            ))
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full_prefix = self.full_key(prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .set_max_keys(self.list_page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| store_error("ListObjectsV2", &self.target(&full_prefix), &e))?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| relative_key(&self.prefix, k)) {
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: object
                            .size()
                            .and_then(|s| u64::try_from(s).ok())
                            .unwrap_or(0),
                    });
                }
            }
        }
        // S3 lists in UTF-8 byte order already, which is `String`'s; sorting keeps
        // the port's promise whatever an S3-compatible store does.
        out.sort();
        Ok(out)
    }

    async fn promote(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let (full_from, full_to) = (self.full_key(from), self.full_key(to));
        if full_from == full_to {
            // S3 refuses to copy an object onto itself; deleting it would lose it.
            return self.exists(&full_from).await;
        }
        let target = format!("{} to {full_to}", self.target(&full_from));
        let (sse, kms_key) = self.encryption();
        match self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(&full_to)
            .copy_source(copy_source(&self.bucket, &full_from))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_no_such_key(&e) => return Ok(false),
            Err(e) => return Err(store_error("CopyObject", &target, &e)),
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full_from)
            .send()
            .await
            .map_err(|e| store_error("DeleteObject", &self.target(&full_from), &e))?;
        tracing::debug!(bucket = %self.bucket, from = %full_from, to = %full_to, "object promoted");
        Ok(true)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        let target = format!("s3://{}/{}", self.bucket, self.prefix);
        for chunk in keys.chunks(DELETE_MAX_KEYS) {
            let objects = chunk
                .iter()
                .map(|key| {
                    ObjectIdentifier::builder()
                        .key(self.full_key(key))
                        .build()
                        .map_err(|e| {
                            StoreError::Permanent(format!("S3 DeleteObjects {target}: {e}"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Permanent(format!("S3 DeleteObjects {target}: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .delete(delete)
                .send()
                .await
                .map_err(|e| store_error("DeleteObjects", &target, &e))?;
            if let Some(err) = delete_errors(&target, out.errors(), chunk.len()) {
                return Err(err);
            }
        }
        Ok(())
    }
}

/// Creates the bucket `bucket` in the client's region, or finds it when this
/// account owns it already (`BucketAlreadyOwnedByYou`, or the 200 that `us-east-1`
/// answers). A bucket of that name owned by someone else is a permanent error.
/// Meant for tests and the local setup; production buckets come from `infra/`.
pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), StoreError> {
    let mut request = client.create_bucket().bucket(bucket);
    // us-east-1 is the one region that takes no location constraint.
    if let Some(region) = client.config().region().map(|r| r.as_ref())
        && region != "us-east-1"
    {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => tracing::info!(bucket, "bucket created"),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateBucketError::BucketAlreadyOwnedByYou(_))
            ) =>
        {
            tracing::debug!(bucket, "bucket already exists");
        }
        Err(e) => return Err(store_error("CreateBucket", &format!("s3://{bucket}"), &e)),
    }
    Ok(())
}
