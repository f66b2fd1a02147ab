//! Listing a bucket, as S3's ListObjectsV2: prefix, delimiter (common prefixes),
//! start-after, continuation token and max-keys, over merged quorum scans of the object
//! index.
//!
//! The continuation token is the hex of the position to resume after: the last key
//! returned, or a common prefix followed by 0xFF (a byte UTF-8 never contains, so every
//! key under that prefix sorts before it and is skipped).

use andromede_proto::limits::LIST_KEYS_MAX;

use super::{Client, ClientError};
use andromede_cluster::meta::key::Table;
use andromede_cluster::meta::values::ObjectEntry;

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Keys containing this after the prefix are rolled up into common prefixes.
    pub delimiter: Option<String>,
    /// Only keys after this one.
    pub start_after: Option<String>,
    /// Resume a previous listing (its `next_continuation_token`); wins over `start_after`.
    pub continuation_token: Option<String>,
    /// Keys and common prefixes returned at most (1 to 1000).
    pub max_keys: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            delimiter: None,
            start_after: None,
            continuation_token: None,
            max_keys: 1000,
        }
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Its key.
    pub key: String,
    /// Plaintext bytes.
    pub size: u64,
    /// The ETag its writer gave, else the content fingerprint (hex).
    pub etag: String,
    /// When it was written (ms since the Unix epoch).
    pub modified_ms: u64,
}

/// A page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<ObjectSummary>,
    /// Common prefixes (with a delimiter), in order.
    pub common_prefixes: Vec<String>,
    /// Whether more follows.
    pub is_truncated: bool,
    /// Pass as `continuation_token` to get the next page.
    pub next_continuation_token: Option<String>,
}

impl Client {
    /// Lists a page of `bucket`.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], [`ClientError::InvalidArgument`] (max-keys, a bad
    /// continuation token), or a metadata failure.
    pub async fn list_objects(
        &self,
        bucket: &str,
        options: &ListOptions,
    ) -> Result<ListPage, ClientError> {
        let max_keys = options.max_keys;
        if max_keys == 0 || max_keys as u64 > LIST_KEYS_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "max-keys must be 1 to {LIST_KEYS_MAX}, not {max_keys}"
            )));
        }
        self.head_bucket(bucket).await?;
        let mut cursor: Option<Vec<u8>> = match &options.continuation_token {
            Some(token) => Some(hex::decode(token).map_err(|_| {
                ClientError::InvalidArgument(
                    "continuation token is not one this client gave".into(),
                )
            })?),
            None => options.start_after.as_ref().map(|s| s.as_bytes().to_vec()),
        };
        if let Some(c) = &cursor {
            andromede_cluster::meta::key::validate_sort_key(c)
                .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        }
        let prefix = options.prefix.as_bytes();
        let delimiter = options.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut page = ListPage::default();
        loop {
            let scan = self
                .meta
                .scan(
                    Table::ObjectIndex,
                    bucket,
                    prefix,
                    cursor.as_deref(),
                    u32::try_from(LIST_KEYS_MAX).unwrap_or(u32::MAX),
                )
                .await?;
            if scan.records.is_empty() {
                page.next_continuation_token = None;
                return Ok(page);
            }
            let mut rolled_up = false;
            for (key, record) in &scan.records {
                let Some(value) = &record.value else {
                    cursor = Some(key.sort.clone());
                    continue;
                };
                if page.objects.len() + page.common_prefixes.len() == max_keys {
                    page.is_truncated = true;
                    return Ok(page);
                }
                let name = String::from_utf8_lossy(&key.sort).into_owned();
                if let Some(delimiter) = delimiter
                    && let Some(at) = name[options.prefix.len().min(name.len())..].find(delimiter)
                {
                    let end = options.prefix.len() + at + delimiter.len();
                    let common = name[..end].to_owned();
                    let mut skip = common.as_bytes().to_vec();
                    skip.push(0xFF);
                    page.common_prefixes.push(common);
                    page.next_continuation_token = Some(hex::encode(&skip));
                    cursor = Some(skip);
                    rolled_up = true;
                    break;
                }
                let entry =
                    ObjectEntry::decode(value).map_err(|source| ClientError::CorruptRecord {
                        what: "object index",
                        source,
                    })?;
                page.objects.push(ObjectSummary {
                    etag: super::object::listed_etag(&self.master, bucket, &name, &entry),
                    key: name,
                    size: entry.size,
                    modified_ms: entry.modified_ms,
                });
                page.next_continuation_token = Some(hex::encode(&key.sort));
                cursor = Some(key.sort.clone());
            }
            if !rolled_up && !scan.more {
                page.next_continuation_token = None;
                return Ok(page);
            }
        }
    }
}
