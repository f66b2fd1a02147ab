//! Buckets: create (with an erasure code and a jurisdiction policy), list, head, delete
//! (only when empty). Bucket records live in the bucket directory.

use bytes::Bytes;

use super::names::validate_bucket_name;
use super::{Client, ClientError, ListOptions, now_ms};
use crate::codec::ErasureParams;
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::Record;
use andromede_cluster::meta::values::BucketInfo;

/// How a new bucket stores its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketOptions {
    /// Erasure code.
    pub params: ErasureParams,
    /// Jurisdictions its shards may be placed in; empty means any.
    pub jurisdictions: Vec<String>,
}

impl Default for BucketOptions {
    fn default() -> Self {
        Self {
            params: ErasureParams::DEFAULT,
            jurisdictions: Vec::new(),
        }
    }
}

fn bucket_key(name: &str) -> RecordKey {
    RecordKey {
        table: Table::Bucket,
        partition: String::new(),
        sort: name.as_bytes().to_vec(),
    }
}

fn decode_bucket(record: Option<Record<Bytes>>) -> Result<Option<BucketInfo>, ClientError> {
    match record.and_then(|r| r.value) {
        Some(value) => {
            BucketInfo::decode(&value)
                .map(Some)
                .map_err(|source| ClientError::CorruptRecord {
                    what: "bucket",
                    source,
                })
        }
        None => Ok(None),
    }
}

impl Client {
    /// Creates a bucket.
    ///
    /// # Errors
    /// [`ClientError::InvalidBucketName`], [`ClientError::BucketExists`],
    /// [`ClientError::InvalidArgument`] for a bad policy, or a metadata failure.
    pub async fn create_bucket(
        &self,
        name: &str,
        options: BucketOptions,
    ) -> Result<BucketInfo, ClientError> {
        validate_bucket_name(name)?;
        let info = BucketInfo {
            params: options.params,
            jurisdictions: options.jurisdictions,
            created_ms: now_ms(),
        };
        info.validate()
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let key = bucket_key(name);
        let current = self.meta.get(&key).await?;
        if current.as_ref().is_some_and(|r| !r.is_tombstone()) {
            return Err(ClientError::BucketExists {
                bucket: name.to_owned(),
            });
        }
        let version = self
            .meta
            .version_after(current.as_ref().map(|r| &r.version));
        self.meta
            .apply("", vec![(key, Record::live(version, info.encode()))])
            .await?;
        Ok(info)
    }

    /// A bucket's settings.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], or a metadata failure.
    pub async fn head_bucket(&self, name: &str) -> Result<BucketInfo, ClientError> {
        validate_bucket_name(name)?;
        decode_bucket(self.meta.get(&bucket_key(name)).await?)?.ok_or_else(|| {
            ClientError::NoSuchBucket {
                bucket: name.to_owned(),
            }
        })
    }

    /// Every bucket, by name.
    ///
    /// # Errors
    /// A metadata failure.
    pub async fn list_buckets(&self) -> Result<Vec<(String, BucketInfo)>, ClientError> {
        let mut buckets = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .meta
                .scan(Table::Bucket, "", b"", after.as_deref(), 1000)
                .await?;
            for (key, record) in &page.records {
                if let Some(info) = decode_bucket(Some(record.clone()))? {
                    buckets.push((String::from_utf8_lossy(&key.sort).into_owned(), info));
                }
            }
            match (page.more, page.records.last()) {
                (true, Some((key, _))) => after = Some(key.sort.clone()),
                _ => return Ok(buckets),
            }
        }
    }

    /// Deletes an empty bucket.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], [`ClientError::BucketNotEmpty`], or a metadata
    /// failure.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), ClientError> {
        validate_bucket_name(name)?;
        let key = bucket_key(name);
        let current = self.meta.get(&key).await?;
        let Some(current) = current.filter(|r| !r.is_tombstone()) else {
            return Err(ClientError::NoSuchBucket {
                bucket: name.to_owned(),
            });
        };
        let one = ListOptions {
            max_keys: 1,
            ..ListOptions::default()
        };
        if !self.list_objects(name, &one).await?.objects.is_empty() {
            return Err(ClientError::BucketNotEmpty {
                bucket: name.to_owned(),
            });
        }
        let version = self.meta.version_after(Some(&current.version));
        self.meta
            .apply("", vec![(key, Record::tombstone(version))])
            .await?;
        Ok(())
    }
}
