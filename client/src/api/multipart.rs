//! Multipart uploads, as S3's: create, upload parts (each encoded and stored as it
//! arrives, as a version of its own), list parts and uploads, complete, abort.
//!
//! Where things live (table, partition = bucket):
//! - the upload record (`Upload`; sort key: object key, 0x00, upload id): content type and
//!   metadata (sealed) of the object to be;
//! - one part record per part number (`Part`; sort key: upload id, part number): the part's
//!   version, size and sealed ETag; the part itself is a manifest like any version's;
//! - a garbage record for the upload (sort key: the upload id), due at its expiry: if the
//!   upload is never completed, the collector takes its parts then.
//!
//! Complete checks the list (ascending, every part uploaded with that ETag, all but the
//! last at least [`PART_BYTES_MIN`]) and commits, in one quorum write, an assembled
//! manifest naming the parts' versions (no byte is re-encoded), the index entry, the
//! replaced version's garbage record, the upload record's tombstone, and the upload's
//! garbage record brought forward to now + grace: parts uploaded but left out of the
//! object are collected then; the collector never takes a part the current version uses.
//! An upload within [`EXPIRY_MARGIN`] of its expiry is refused, so completion and
//! collection never race.

use std::time::Duration;

use andromede_proto::VersionId;
use andromede_proto::limits::LIST_KEYS_MAX;
use bytes::Bytes;
use md5::Digest as _;
use tokio::io::AsyncRead;

use super::names::validate_key;
use super::object::{index_key, manifest_key, open_etag, seal_etag};
use super::{Client, ClientError, ObjectInfo, PutObjectOptions, now_ms};
use crate::codec::seal::{self, Purpose};
use crate::codec::{ObjectName, PutOptions, assemble_manifest, new_version_id};
use andromede_cluster::manifest::PartRef;
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::Record;
use andromede_cluster::meta::values::{GarbageEntry, ObjectEntry, PartEntry, UploadEntry};
use andromede_cluster::net::meta_message::KeyedRecord;

/// Incomplete uploads are collected after this long, unless configured otherwise.
pub const MULTIPART_EXPIRY_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Part numbers run from 1 to this (as S3).
pub const PART_NUMBER_MAX: u32 = 10_000;
/// Every part but the last is at least this large (as S3).
pub const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// No part is larger (as S3).
pub const PART_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// An upload this close to its expiry takes no part and no completion.
const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Its number.
    pub part_number: u32,
    /// Its ETag (what the finish hook gave: an S3 gateway's MD5).
    pub etag: String,
    /// Plaintext bytes.
    pub size: u64,
    /// When it was uploaded (ms since the Unix epoch).
    pub modified_ms: u64,
}

/// A part as a completion names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number.
    pub part_number: u32,
    /// The ETag its upload returned.
    pub etag: String,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    /// The object key.
    pub key: String,
    /// The upload id.
    pub upload_id: String,
    /// When it was created (ms since the Unix epoch).
    pub initiated_ms: u64,
}

fn parse_upload_id(bucket: &str, key: &str, upload_id: &str) -> Result<[u8; 16], ClientError> {
    hex::decode(upload_id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| ClientError::NoSuchUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload: upload_id.to_owned(),
        })
}

fn upload_key(bucket: &str, key: &str, id: &[u8; 16]) -> RecordKey {
    let mut sort = key.as_bytes().to_vec();
    sort.push(0);
    sort.extend_from_slice(id);
    RecordKey {
        table: Table::Upload,
        partition: bucket.to_owned(),
        sort,
    }
}

fn part_key(bucket: &str, id: &[u8; 16], part_number: u32) -> RecordKey {
    let mut sort = id.to_vec();
    sort.extend_from_slice(&part_number.to_be_bytes());
    RecordKey {
        table: Table::Part,
        partition: bucket.to_owned(),
        sort,
    }
}

fn upload_garbage(
    bucket: &str,
    key: &str,
    id: &[u8; 16],
    version: RecordKeyVersion,
    due_ms: u64,
) -> KeyedRecord {
    (
        RecordKey {
            table: Table::Garbage,
            partition: bucket.to_owned(),
            sort: id.to_vec(),
        },
        Record::live(
            version,
            GarbageEntry {
                due_ms,
                key: key.to_owned(),
                upload: true,
            }
            .encode(),
        ),
    )
}

type RecordKeyVersion = andromede_cluster::meta::record::Version;

/// The upload's own name in seals (its id stands where a version id would).
fn upload_version(id: &[u8; 16]) -> VersionId {
    VersionId(*id)
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// Starts a multipart upload of `bucket/key`; returns its id.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], [`ClientError::InvalidKey`], metadata over its limit,
    /// or a metadata failure.
    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        options: &PutObjectOptions,
    ) -> Result<String, ClientError> {
        validate_key(key)?;
        self.head_bucket(bucket).await?;
        let id = new_version_id().0;
        let metadata = andromede_proto::pb::UserMetadata {
            entries: options.user_metadata.clone(),
        };
        let plain = prost::Message::encode_to_vec(&metadata);
        if plain.len() as u64 > andromede_proto::limits::USER_METADATA_BYTES_MAX {
            return Err(crate::error::CodecError::TooLarge {
                field: "user metadata",
                bytes: plain.len() as u64,
                bytes_max: andromede_proto::limits::USER_METADATA_BYTES_MAX,
            }
            .into());
        }
        let aad = seal::object_aad(
            Purpose::UploadMetadata,
            bucket,
            key,
            &upload_version(&id),
            &[],
        );
        let sealed = seal::seal(&self.master.listing_key(), &aad, &plain)?;
        let now = now_ms();
        let entry = UploadEntry {
            initiated_ms: now,
            content_type: options.content_type.clone(),
            sealed_metadata: Bytes::from(sealed),
        };
        let records = vec![
            (
                upload_key(bucket, key, &id),
                Record::live(self.meta.version_after(None), entry.encode()),
            ),
            upload_garbage(
                bucket,
                key,
                &id,
                self.meta.version_after(None),
                now.saturating_add(ms(self.multipart_expiry)),
            ),
        ];
        self.meta.apply(bucket, records).await?;
        Ok(hex::encode(id))
    }

    /// The upload record, if the upload exists and is not about to expire.
    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<([u8; 16], Record<Bytes>, UploadEntry), ClientError> {
        let id = parse_upload_id(bucket, key, upload_id)?;
        let missing = || ClientError::NoSuchUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload: upload_id.to_owned(),
        };
        let record = self
            .meta
            .get(&upload_key(bucket, key, &id))
            .await?
            .filter(|r| !r.is_tombstone())
            .ok_or_else(missing)?;
        let entry = record
            .value
            .as_ref()
            .map(|v| UploadEntry::decode(v))
            .transpose()
            .map_err(|source| ClientError::CorruptRecord {
                what: "multipart upload",
                source,
            })?
            .ok_or_else(missing)?;
        let usable_until = entry
            .initiated_ms
            .saturating_add(ms(self.multipart_expiry))
            .saturating_sub(ms(EXPIRY_MARGIN));
        if now_ms() > usable_until {
            return Err(missing());
        }
        Ok((id, record, entry))
    }

    /// Stores part `part_number` of an upload (replacing an earlier upload of that part).
    ///
    /// # Errors
    /// [`ClientError::NoSuchUpload`], [`ClientError::InvalidArgument`] for a part number
    /// out of range or a part over [`PART_BYTES_MAX`], and what
    /// [`Client::put_object`] can fail with.
    pub async fn upload_part<R>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        reader: R,
        options: PutObjectOptions,
    ) -> Result<PartInfo, ClientError>
    where
        R: AsyncRead + Unpin + Send,
    {
        if !(1..=PART_NUMBER_MAX).contains(&part_number) {
            return Err(ClientError::InvalidArgument(format!(
                "part number must be 1 to {PART_NUMBER_MAX}, not {part_number}"
            )));
        }
        if options.size_hint.is_some_and(|s| s > PART_BYTES_MAX) {
            return Err(ClientError::InvalidArgument(format!(
                "a part is at most {PART_BYTES_MAX} bytes"
            )));
        }
        let id = parse_upload_id(bucket, key, upload_id)?;
        let part = part_key(bucket, &id, part_number);
        // Independent quorum reads: one round trip.
        let (bucket_info, _, previous) = tokio::try_join!(
            self.head_bucket(bucket),
            self.upload(bucket, key, upload_id),
            async { Ok(self.meta.get(&part).await?) }
        )?;
        let version_id = new_version_id();
        let (manifest, end, _) = self
            .store_version(&bucket_info, bucket, key, version_id, reader, options)
            .await?;
        if manifest.size > PART_BYTES_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "a part is at most {PART_BYTES_MAX} bytes"
            )));
        }
        let etag = end.etag.unwrap_or_else(|| hex::encode(manifest.etag));
        let now = now_ms();
        let entry = PartEntry {
            version_id,
            size: manifest.size,
            modified_ms: now,
            sealed_etag: seal_etag(&self.master, bucket, key, &version_id, &etag)?,
        };
        let mut records: Vec<KeyedRecord> = vec![
            (
                manifest_key(bucket, &version_id),
                Record::live(
                    self.meta.version_after(None),
                    Bytes::from(manifest.encode()),
                ),
            ),
            (
                part,
                Record::live(
                    self.meta
                        .version_after(previous.as_ref().map(|r| &r.version)),
                    entry.encode(),
                ),
            ),
        ];
        if let Some(old) = previous
            .and_then(|r| r.value)
            .and_then(|v| PartEntry::decode(&v).ok())
        {
            records.push(self.garbage(bucket, key, &old.version_id)?);
        }
        self.meta.apply(bucket, records).await?;
        Ok(PartInfo {
            part_number,
            etag,
            size: entry.size,
            modified_ms: now,
        })
    }

    /// Every part of an upload, by number (at most [`PART_NUMBER_MAX`]).
    async fn all_parts(
        &self,
        bucket: &str,
        key: &str,
        id: &[u8; 16],
    ) -> Result<Vec<(u32, PartEntry)>, ClientError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .meta
                .scan(
                    Table::Part,
                    bucket,
                    id,
                    after.as_deref(),
                    u32::try_from(LIST_KEYS_MAX).unwrap_or(1000),
                )
                .await?;
            for (record_key, record) in &page.records {
                after = Some(record_key.sort.clone());
                let Some(value) = &record.value else { continue };
                let Some(number) = record_key
                    .sort
                    .get(16..20)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                else {
                    continue;
                };
                let entry =
                    PartEntry::decode(value).map_err(|source| ClientError::CorruptRecord {
                        what: "multipart part",
                        source,
                    })?;
                out.push((number, entry));
                if out.len() as u64 > u64::from(PART_NUMBER_MAX) {
                    return Err(ClientError::InvalidArgument(format!(
                        "{bucket}/{key}: an upload has more than {PART_NUMBER_MAX} part records"
                    )));
                }
            }
            if !page.more || page.records.is_empty() {
                return Ok(out);
            }
        }
    }

    fn part_info(&self, bucket: &str, key: &str, number: u32, entry: &PartEntry) -> PartInfo {
        PartInfo {
            part_number: number,
            etag: open_etag(
                &self.master,
                bucket,
                key,
                &entry.version_id,
                &entry.sealed_etag,
            )
            .unwrap_or_default(),
            size: entry.size,
            modified_ms: entry.modified_ms,
        }
    }

    /// The parts of an upload after `after` (a part number), at most `max`; whether more
    /// follow.
    ///
    /// # Errors
    /// [`ClientError::NoSuchUpload`], or a metadata failure.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(Vec<PartInfo>, bool), ClientError> {
        let (id, _, _) = self.upload(bucket, key, upload_id).await?;
        let parts = self.all_parts(bucket, key, &id).await?;
        let mut listed: Vec<PartInfo> = parts
            .iter()
            .filter(|(n, _)| *n > after)
            .map(|(n, e)| self.part_info(bucket, key, *n, e))
            .collect();
        let truncated = listed.len() > max;
        listed.truncate(max);
        Ok((listed, truncated))
    }

    /// Assembles the object from `parts` and commits it as the new version of
    /// `bucket/key`; `extra_metadata` is added to the upload's. No part byte is read.
    ///
    /// # Errors
    /// [`ClientError::NoSuchUpload`], [`ClientError::InvalidPart`],
    /// [`ClientError::InvalidPartOrder`], [`ClientError::EntityTooSmall`],
    /// [`ClientError::InvalidArgument`] for an empty list, or a metadata failure.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        extra_metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<ObjectInfo, ClientError> {
        if parts.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a completion names at least one part".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(ClientError::InvalidPartOrder);
        }
        let index = index_key(bucket, key);
        let (bucket_info, upload, current) = tokio::try_join!(
            self.head_bucket(bucket),
            self.upload(bucket, key, upload_id),
            async { Ok(self.meta.get(&index).await?) }
        )?;
        let (id, upload_record, upload_entry) = upload;
        let stored: std::collections::BTreeMap<u32, PartEntry> = self
            .all_parts(bucket, key, &id)
            .await?
            .into_iter()
            .collect();
        let mut refs = Vec::with_capacity(parts.len());
        let mut md5s = md5::Md5::new();
        for (i, part) in parts.iter().enumerate() {
            let Some(entry) = stored.get(&part.part_number) else {
                return Err(ClientError::InvalidPart {
                    part_number: part.part_number,
                    reason: "it was not uploaded".into(),
                });
            };
            let info = self.part_info(bucket, key, part.part_number, entry);
            if info.etag != part.etag.trim_matches('"') {
                return Err(ClientError::InvalidPart {
                    part_number: part.part_number,
                    reason: format!("its ETag is {}, not {}", info.etag, part.etag),
                });
            }
            if i + 1 < parts.len() && entry.size < PART_BYTES_MIN {
                return Err(ClientError::EntityTooSmall {
                    part_number: part.part_number,
                    size: entry.size,
                    min: PART_BYTES_MIN,
                });
            }
            match hex::decode(&info.etag) {
                Ok(bytes) => md5s.update(&bytes),
                Err(_) => md5s.update(info.etag.as_bytes()),
            }
            refs.push(PartRef {
                version_id: entry.version_id,
                size: entry.size,
            });
        }
        let etag = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());
        let aad = seal::object_aad(
            Purpose::UploadMetadata,
            bucket,
            key,
            &upload_version(&id),
            &[],
        );
        let plain = seal::open(
            &self.master.listing_key(),
            &aad,
            &upload_entry.sealed_metadata,
        )
        .ok_or_else(|| ClientError::CorruptRecord {
            what: "multipart upload",
            source: andromede_cluster::meta::values::ValueError::Invalid(
                "its metadata does not open with this master key".into(),
            ),
        })?;
        let metadata: andromede_proto::pb::UserMetadata = andromede_proto::decode_bounded(
            &plain,
            usize::try_from(andromede_proto::limits::USER_METADATA_BYTES_MAX).unwrap_or(usize::MAX),
        )
        .map_err(|e| ClientError::InvalidArgument(format!("upload metadata: {e}")))?;
        let mut user_metadata = metadata.entries;
        user_metadata.extend(extra_metadata);
        let version_id = new_version_id();
        let options = PutOptions {
            content_type: upload_entry.content_type.clone(),
            user_metadata: user_metadata.clone(),
            params: bucket_info.params,
            version_id: Some(version_id),
            finish: None,
            size_hint: None,
        };
        let manifest = assemble_manifest(
            &self.master,
            &ObjectName::new(bucket, key),
            version_id,
            &options,
            self.codec.segment_bytes,
            refs,
        )?;
        let now = now_ms();
        let entry = ObjectEntry {
            version_id,
            size: manifest.size,
            etag: manifest.etag,
            modified_ms: now,
            content_type: manifest.content_type.clone(),
            sealed_etag: seal_etag(&self.master, bucket, key, &version_id, &etag)?,
        };
        let mut records = self.commit_records(bucket, key, &manifest, &entry, current.as_ref())?;
        records.extend([
            (
                upload_key(bucket, key, &id),
                Record::tombstone(self.meta.version_after(Some(&upload_record.version))),
            ),
            // Parts left out of the object go after the grace period.
            upload_garbage(
                bucket,
                key,
                &id,
                self.meta.version_after(None),
                now.saturating_add(ms(self.gc_grace)),
            ),
        ]);
        self.meta.apply(bucket, records).await?;
        Ok(ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id,
            size: entry.size,
            etag,
            modified_ms: now,
            content_type: entry.content_type,
            user_metadata,
            holders: 0,
            node_failures_survived: None,
            author: self.meta.author().to_owned(),
        })
    }

    /// Aborts an upload: it is gone at once, its parts are collected at the collector's
    /// next pass.
    ///
    /// # Errors
    /// [`ClientError::NoSuchUpload`], or a metadata failure.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ClientError> {
        let (id, record, _) = self.upload(bucket, key, upload_id).await?;
        let records = vec![
            (
                upload_key(bucket, key, &id),
                Record::tombstone(self.meta.version_after(Some(&record.version))),
            ),
            upload_garbage(bucket, key, &id, self.meta.version_after(None), now_ms()),
        ];
        self.meta.apply(bucket, records).await?;
        Ok(())
    }

    /// Uploads in progress in `bucket` whose keys start with `prefix`, in key order, after
    /// (`key_marker`, `upload_marker`), at most `max`; whether more follow.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], or a metadata failure.
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_marker: Option<&str>,
        max: usize,
    ) -> Result<(Vec<UploadSummary>, bool), ClientError> {
        self.head_bucket(bucket).await?;
        let mut after: Option<Vec<u8>> = key_marker.map(|k| {
            let mut sort = k.as_bytes().to_vec();
            sort.push(0);
            match upload_marker.and_then(|u| hex::decode(u).ok()) {
                Some(id) => sort.extend_from_slice(&id),
                None => sort.extend_from_slice(&[0xFF; 16]),
            }
            sort
        });
        let mut out = Vec::new();
        loop {
            let page = self
                .meta
                .scan(
                    Table::Upload,
                    bucket,
                    prefix.as_bytes(),
                    after.as_deref(),
                    u32::try_from(LIST_KEYS_MAX).unwrap_or(1000),
                )
                .await?;
            for (record_key, record) in &page.records {
                after = Some(record_key.sort.clone());
                let Some(value) = &record.value else { continue };
                let sort = &record_key.sort;
                if sort.len() < 17 {
                    continue;
                }
                let (name, id) = sort.split_at(sort.len() - 16);
                let Ok(name) = std::str::from_utf8(&name[..name.len() - 1]) else {
                    continue;
                };
                let Ok(entry) = UploadEntry::decode(value) else {
                    continue;
                };
                if out.len() == max {
                    return Ok((out, true));
                }
                out.push(UploadSummary {
                    key: name.to_owned(),
                    upload_id: hex::encode(id),
                    initiated_ms: entry.initiated_ms,
                });
            }
            if !page.more || page.records.is_empty() {
                return Ok((out, false));
            }
        }
    }
}
