//! Client-private values: small values a client program shares among its instances
//! through the cluster (the S3 gateway's access keys), sealed under a key derived from
//! the master key so that nodes store them and cannot read them (table `Private`, beside
//! the bucket directory). Not a bucket: never listed, never reachable as an object.
//!
//! A value is bound to its namespace and name (its seal's associated data), so a replica
//! cannot serve one key's record as another's. Last writer wins, as every record.

use andromede_proto::VersionId;
use andromede_proto::limits::LIST_KEYS_MAX;
use bytes::Bytes;

use super::{Client, ClientError};
use crate::codec::seal::{self, Purpose};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::Record;

/// Largest private value (they are records kept beside the bucket directory).
pub const PRIVATE_VALUE_BYTES_MAX: usize = 16 * 1024;

fn private_key(namespace: &str, name: &str) -> Result<RecordKey, ClientError> {
    if namespace.is_empty() || namespace.contains('/') || name.is_empty() {
        return Err(ClientError::InvalidArgument(format!(
            "private value {namespace:?}/{name:?}: the namespace must be non-empty without '/', the name non-empty"
        )));
    }
    let key = RecordKey {
        table: Table::Private,
        partition: String::new(),
        sort: format!("{namespace}/{name}").into_bytes(),
    };
    key.validate()
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    Ok(key)
}

fn aad(namespace: &str, name: &str) -> Vec<u8> {
    seal::object_aad(Purpose::Private, namespace, name, &VersionId([0; 16]), &[])
}

impl Client {
    /// Stores (or replaces) `namespace/name`, acknowledged once on a write quorum.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for a bad name or a value over
    /// [`PRIVATE_VALUE_BYTES_MAX`], or a metadata failure.
    pub async fn put_private(
        &self,
        namespace: &str,
        name: &str,
        value: &[u8],
    ) -> Result<(), ClientError> {
        let key = private_key(namespace, name)?;
        if value.len() > PRIVATE_VALUE_BYTES_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "a private value is at most {PRIVATE_VALUE_BYTES_MAX} bytes, not {}",
                value.len()
            )));
        }
        let sealed = seal::seal(&self.master.private_key(), &aad(namespace, name), value)?;
        let current = self.meta.get(&key).await?;
        let version = self
            .meta
            .version_after(current.as_ref().map(|r| &r.version));
        self.meta
            .apply("", vec![(key, Record::live(version, Bytes::from(sealed)))])
            .await?;
        Ok(())
    }

    /// Reads `namespace/name`; `None` when absent or deleted.
    ///
    /// # Errors
    /// A value that does not open (another master key, or tampered with:
    /// [`ClientError::CorruptRecord`]), or a metadata failure.
    pub async fn get_private(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let key = private_key(namespace, name)?;
        let Some(sealed) = self.meta.get(&key).await?.and_then(|r| r.value) else {
            return Ok(None);
        };
        open(&self.master, namespace, name, &sealed).map(Some)
    }

    /// Every value of `namespace`, by name.
    ///
    /// # Errors
    /// As [`Client::get_private`].
    pub async fn list_private(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
        let prefix = private_key(namespace, "-")?.sort;
        let prefix = &prefix[..prefix.len() - 1];
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .meta
                .scan(
                    Table::Private,
                    "",
                    prefix,
                    after.as_deref(),
                    u32::try_from(LIST_KEYS_MAX).unwrap_or(u32::MAX),
                )
                .await?;
            for (key, record) in &page.records {
                let Some(sealed) = &record.value else {
                    continue;
                };
                let name = String::from_utf8_lossy(&key.sort[prefix.len()..]).into_owned();
                let value = open(&self.master, namespace, &name, sealed)?;
                out.push((name, value));
            }
            match (page.more, page.records.last()) {
                (true, Some((key, _))) => after = Some(key.sort.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes `namespace/name` (a tombstone); deleting a missing value succeeds.
    ///
    /// # Errors
    /// As [`Client::put_private`].
    pub async fn delete_private(&self, namespace: &str, name: &str) -> Result<(), ClientError> {
        let key = private_key(namespace, name)?;
        let current = self.meta.get(&key).await?;
        if current.as_ref().is_none_or(Record::is_tombstone) {
            return Ok(());
        }
        let version = self
            .meta
            .version_after(current.as_ref().map(|r| &r.version));
        self.meta
            .apply("", vec![(key, Record::tombstone(version))])
            .await?;
        Ok(())
    }
}

fn open(
    master: &crate::keys::MasterKey,
    namespace: &str,
    name: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, ClientError> {
    seal::open(&master.private_key(), &aad(namespace, name), sealed).ok_or_else(|| {
        ClientError::CorruptRecord {
            what: "private value",
            source: andromede_cluster::meta::values::ValueError::Invalid(format!(
                "{namespace}/{name} does not open with this master key"
            )),
        }
    })
}
