//! [`SledMetaStore`]: the sled implementation of [`MetaStore`], the only place metadata
//! touches sled. Keys are `table (1 byte) || partition length (2 bytes, big-endian) ||
//! partition || sort key`, so one partition's records are contiguous and ordered by sort
//! key. Values are encoded `MetaRecord`s, decoded and validated on every read.
//!
//! A second tree is the holder index (DESIGN.md, "Metadata"): one empty entry per (peer,
//! manifest) for every peer that holds a shard of a live manifest, keyed `holder length (1
//! byte) || holder || record key`, so the loss of a peer becomes a list of versions to
//! repair instead of a scan. It is derived from the records, updated with them, and
//! rebuilt from them when missing (a store from before the index, or a crash between
//! the two writes leaves at worst a stale entry, which repair checks against the manifest).

use std::path::Path;
use std::sync::Mutex;

use andromede_cluster::manifest::Manifest;
use andromede_cluster::meta::record::{Record, Version, merge_into};
use bytes::Bytes;

use super::{MetaStore, RecordKey, ScanRow, Table};
use crate::error::MetaError;
use crate::store::IndexOptions;
use crate::store::index::open_sled;

/// Metadata records in sled.
#[derive(Debug)]
pub struct SledMetaStore {
    db: sled::Db,
    records: sled::Tree,
    /// Holder index: (peer, manifest key) → nothing.
    holders: sled::Tree,
    /// Serialises read-merge-write so that two merges of one key cannot lose a record.
    writes: Mutex<()>,
}

fn partition_prefix(table: Table, partition: &str) -> Result<Vec<u8>, MetaError> {
    let len = u16::try_from(partition.len()).map_err(|_| MetaError::KeyTooLong {
        bytes: partition.len() as u64,
    })?;
    let mut out = Vec::with_capacity(3 + partition.len());
    out.push(table as u8);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(partition.as_bytes());
    Ok(out)
}

/// The key a raw sled key of `table` stands for, if it is well formed.
fn decode_key(table: Table, raw: &[u8]) -> Option<RecordKey> {
    let (&[_, hi, lo], rest) = raw.split_first_chunk::<3>()?;
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let partition = std::str::from_utf8(rest.get(..len)?).ok()?.to_owned();
    Some(RecordKey {
        table,
        partition,
        sort: rest.get(len..)?.to_vec(),
    })
}

/// Key of the holder-index tree entry that marks the index as built from the records.
const HOLDER_INDEX_BUILT: &[u8] = &[0];

/// The peers holding a shard of the manifest in `record`; none for a tombstone or a value
/// that does not decode (nothing can be read or repaired through it either).
fn manifest_holders(record: &Record<Bytes>) -> Vec<Bytes> {
    record
        .value
        .as_deref()
        .and_then(|bytes| Manifest::decode(bytes).ok())
        .map(|m| m.distinct_holders())
        .unwrap_or_default()
}

fn holder_prefix(holder: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(holder.len()).ok().filter(|&l| l > 0)?;
    let mut out = Vec::with_capacity(1 + holder.len());
    out.push(len);
    out.extend_from_slice(holder);
    Some(out)
}

fn encode_key(key: &RecordKey) -> Result<Vec<u8>, MetaError> {
    let mut out = partition_prefix(key.table, &key.partition)?;
    out.extend_from_slice(&key.sort);
    Ok(out)
}

impl SledMetaStore {
    /// Opens (or creates) the store in `dir`, with explicit sled settings.
    ///
    /// # Errors
    /// [`MetaError::Engine`] if sled cannot open it (for instance another process holds it).
    pub fn open(dir: &Path, options: IndexOptions) -> Result<Self, MetaError> {
        let db = open_sled(dir, options)?;
        let records = db.open_tree("records")?;
        let holders = db.open_tree("holders")?;
        let store = Self {
            db,
            records,
            holders,
            writes: Mutex::new(()),
        };
        if !store.holders.contains_key(HOLDER_INDEX_BUILT)? {
            store.rebuild_holder_index()?;
        }
        Ok(store)
    }

    /// Derives the holder index from every manifest record held.
    fn rebuild_holder_index(&self) -> Result<(), MetaError> {
        self.holders.clear()?;
        let prefix = [Table::Manifest as u8];
        for entry in self.records.scan_prefix(prefix) {
            let (raw_key, value) = entry?;
            let record = Self::decode(&raw_key, &value)?;
            self.index_holders(&raw_key, &[], &manifest_holders(&record))?;
        }
        self.holders.insert(HOLDER_INDEX_BUILT, &[])?;
        self.db.flush()?;
        Ok(())
    }

    /// Moves a manifest's holder entries from `before` to `after`.
    fn index_holders(
        &self,
        raw_key: &[u8],
        before: &[Bytes],
        after: &[Bytes],
    ) -> Result<(), MetaError> {
        let entry = |holder: &Bytes| {
            holder_prefix(holder).map(|mut key| {
                key.extend_from_slice(raw_key);
                key
            })
        };
        for gone in before.iter().filter(|h| !after.contains(h)) {
            if let Some(key) = entry(gone) {
                self.holders.remove(key)?;
            }
        }
        for new in after.iter().filter(|h| !before.contains(h)) {
            if let Some(key) = entry(new) {
                self.holders.insert(key, &[])?;
            }
        }
        Ok(())
    }

    fn decode(key: &[u8], value: &[u8]) -> Result<Record<Bytes>, MetaError> {
        Record::decode(value).map_err(|e| MetaError::CorruptRecord {
            key: hex::encode(key),
            reason: e.to_string(),
        })
    }
}

impl MetaStore for SledMetaStore {
    fn apply(&self, records: &[(RecordKey, Record<Bytes>)]) -> Result<Vec<bool>, MetaError> {
        let mut replaced = Vec::with_capacity(records.len());
        {
            // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
            let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            for (key, incoming) in records {
                let raw_key = encode_key(key)?;
                let held = match self.records.get(&raw_key)? {
                    Some(value) => Some(Self::decode(&raw_key, &value)?),
                    None => None,
                };
                let held_holders = match (&held, key.table) {
                    (Some(held), Table::Manifest) => manifest_holders(held),
                    _ => Vec::new(),
                };
                let (winner, changed) = merge_into(held, incoming.clone());
                if changed {
                    self.records.insert(&raw_key, winner.encode())?;
                    if key.table == Table::Manifest {
                        self.index_holders(&raw_key, &held_holders, &manifest_holders(&winner))?;
                    }
                }
                replaced.push(changed);
            }
        }
        // Durable before anyone is told (one flush for the whole batch: group commit).
        if replaced.iter().any(|r| *r) {
            self.db.flush()?;
        }
        Ok(replaced)
    }

    fn remove_handed_off(&self, records: &[(RecordKey, Version)]) -> Result<u64, MetaError> {
        let mut removed = 0;
        let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        for (key, version) in records {
            let raw_key = encode_key(key)?;
            let Some(value) = self.records.get(&raw_key)? else {
                continue;
            };
            let held = Self::decode(&raw_key, &value)?;
            if held.version != *version {
                continue;
            }
            self.records.remove(&raw_key)?;
            if key.table == Table::Manifest {
                self.index_holders(&raw_key, &manifest_holders(&held), &[])?;
            }
            removed += 1;
        }
        // Not flushed: a removal lost to a crash is made again by the next pass.
        Ok(removed)
    }

    fn get(&self, key: &RecordKey) -> Result<Option<Record<Bytes>>, MetaError> {
        let raw_key = encode_key(key)?;
        self.records
            .get(&raw_key)?
            .map(|value| Self::decode(&raw_key, &value))
            .transpose()
    }

    fn scan(
        &self,
        table: Table,
        partition: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ScanRow>, MetaError> {
        let base = partition_prefix(table, partition)?;
        let mut scan_prefix = base.clone();
        scan_prefix.extend_from_slice(prefix);
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in self.records.scan_prefix(&scan_prefix) {
            if out.len() >= limit {
                break;
            }
            let (raw_key, value) = entry?;
            let sort = raw_key.get(base.len()..).unwrap_or_default();
            if start_after.is_some_and(|after| sort <= after) {
                continue;
            }
            out.push((sort.to_vec(), Self::decode(&raw_key, &value)?));
        }
        Ok(out)
    }

    fn scan_table(
        &self,
        table: Table,
        start_after: Option<&RecordKey>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<(RecordKey, Record<Bytes>)>, MetaError> {
        let table_prefix = [table as u8];
        let start = match start_after {
            Some(after) => {
                // The smallest key after `after`: its bytes followed by a zero byte.
                let mut start = encode_key(after)?;
                start.push(0);
                std::ops::Bound::Included(start)
            }
            None => std::ops::Bound::Included(table_prefix.to_vec()),
        };
        let end = std::ops::Bound::Excluded(vec![table as u8 + 1]);
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut bytes = 0usize;
        for entry in self.records.range::<Vec<u8>, _>((start, end)) {
            if out.len() >= limit || bytes >= bytes_max {
                break;
            }
            let (raw_key, value) = entry?;
            let key = decode_key(table, &raw_key).ok_or_else(|| MetaError::CorruptRecord {
                key: hex::encode(&raw_key),
                reason: "malformed record key".into(),
            })?;
            bytes = bytes.saturating_add(raw_key.len() + value.len());
            out.push((key, Self::decode(&raw_key, &value)?));
        }
        Ok(out)
    }

    fn versions_held_by(
        &self,
        holder: &[u8],
        start_after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<RecordKey>, MetaError> {
        let Some(prefix) = holder_prefix(holder) else {
            return Ok(Vec::new());
        };
        let start = match start_after {
            Some(after) => {
                let mut start = prefix.clone();
                start.extend_from_slice(&encode_key(after)?);
                start.push(0);
                start
            }
            None => prefix.clone(),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in self.holders.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (raw, _) = entry?;
            let Some(raw_key) = raw.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let key =
                decode_key(Table::Manifest, raw_key).ok_or_else(|| MetaError::CorruptRecord {
                    key: hex::encode(&raw),
                    reason: "malformed holder index key".into(),
                })?;
            out.push(key);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use andromede_cluster::meta::hlc::Timestamp;
    use andromede_cluster::meta::record::{Version, WriterId};

    use super::*;

    fn version(wall_ms: u64) -> Version {
        Version {
            timestamp: Timestamp {
                wall_ms,
                logical: 0,
            },
            writer: WriterId::new(Bytes::from_static(b"writer")).unwrap(),
        }
    }

    fn object(bucket: &str, key: &str) -> RecordKey {
        RecordKey {
            table: Table::ObjectIndex,
            partition: bucket.into(),
            sort: key.as_bytes().to_vec(),
        }
    }

    fn open(dir: &Path) -> SledMetaStore {
        SledMetaStore::open(
            dir,
            IndexOptions {
                cache_bytes: 1 << 20,
                flush_every_ms: 100,
            },
        )
        .unwrap()
    }

    #[test]
    fn last_writer_wins_and_tombstones_stick() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let key = object("b", "k");
        let v2 = Record::live(version(2), Bytes::from_static(b"two"));
        let v1 = Record::live(version(1), Bytes::from_static(b"one"));
        let v3 = Record::tombstone(version(3));
        assert_eq!(store.apply(&[(key.clone(), v2.clone())]).unwrap(), [true]);
        assert_eq!(
            store.apply(&[(key.clone(), v1)]).unwrap(),
            [false],
            "an older write is ignored"
        );
        assert_eq!(store.get(&key).unwrap(), Some(v2.clone()));
        assert_eq!(
            store
                .apply(&[(key.clone(), v3.clone()), (key.clone(), v2)])
                .unwrap(),
            [true, false]
        );
        assert_eq!(
            store.get(&key).unwrap(),
            Some(v3),
            "the delete is not resurrected"
        );
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = object("b", "k");
        let record = Record::live(version(7), Bytes::from_static(b"durable"));
        {
            let store = open(dir.path());
            store.apply(&[(key.clone(), record.clone())]).unwrap();
        }
        assert_eq!(open(dir.path()).get(&key).unwrap(), Some(record));
    }

    #[test]
    fn scans_stay_in_their_partition_and_page_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut batch = Vec::new();
        for key in ["a/1", "a/2", "a/3", "b/1", "c"] {
            batch.push((
                object("bucket", key),
                Record::live(version(1), Bytes::from(key.to_owned())),
            ));
        }
        // Same keys in a bucket whose name extends this one's, and in another table.
        batch.push((
            object("bucket2", "a/9"),
            Record::live(version(1), Bytes::new()),
        ));
        batch.push((
            RecordKey {
                table: Table::Manifest,
                partition: "bucket".into(),
                sort: b"a/7".to_vec(),
            },
            Record::live(version(1), Bytes::new()),
        ));
        store.apply(&batch).unwrap();
        let keys = |rows: Vec<ScanRow>| -> Vec<String> {
            rows.into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        assert_eq!(
            keys(
                store
                    .scan(Table::ObjectIndex, "bucket", b"", None, 100)
                    .unwrap()
            ),
            ["a/1", "a/2", "a/3", "b/1", "c"]
        );
        assert_eq!(
            keys(
                store
                    .scan(Table::ObjectIndex, "bucket", b"a/", None, 100)
                    .unwrap()
            ),
            ["a/1", "a/2", "a/3"]
        );
        assert_eq!(
            keys(
                store
                    .scan(Table::ObjectIndex, "bucket", b"a/", Some(b"a/1"), 1)
                    .unwrap()
            ),
            ["a/2"]
        );
        assert_eq!(
            keys(
                store
                    .scan(Table::ObjectIndex, "bucket", b"", Some(b"b/1"), 100)
                    .unwrap()
            ),
            ["c"]
        );

        // Across partitions, in order, resuming after a key, never into another table.
        let all = |after: Option<&RecordKey>, limit| -> Vec<(String, String)> {
            store
                .scan_table(Table::ObjectIndex, after, limit, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(k, _)| (k.partition, String::from_utf8(k.sort).unwrap()))
                .collect()
        };
        let first = all(None, 4);
        assert_eq!(
            first,
            [
                ("bucket".into(), "a/1".into()),
                ("bucket".into(), "a/2".into()),
                ("bucket".into(), "a/3".into()),
                ("bucket".into(), "b/1".into())
            ]
        );
        assert_eq!(
            all(Some(&object("bucket", "b/1")), 10),
            [
                ("bucket".to_owned(), "c".to_owned()),
                ("bucket2".into(), "a/9".into())
            ]
        );
        assert!(all(Some(&object("bucket2", "a/9")), 10).is_empty());
        let one = store.scan_table(Table::ObjectIndex, None, 10, 1).unwrap();
        assert_eq!(
            one.len(),
            1,
            "the byte budget cuts the page, after one record"
        );
    }

    #[test]
    fn a_handed_off_record_goes_only_at_the_version_handed_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (a, b) = (object("b", "a"), object("b", "b"));
        store
            .apply(&[
                (
                    a.clone(),
                    Record::live(version(1), Bytes::from_static(b"a")),
                ),
                (b.clone(), Record::tombstone(version(1))),
            ])
            .unwrap();
        // `b` was overwritten after it was handed off: the newer record stays.
        store
            .apply(&[(
                b.clone(),
                Record::live(version(2), Bytes::from_static(b"b")),
            )])
            .unwrap();
        let missing = object("b", "never-held");
        let removed = store
            .remove_handed_off(&[
                (a.clone(), version(1)),
                (b.clone(), version(1)),
                (missing, version(1)),
            ])
            .unwrap();
        assert_eq!(removed, 1);
        assert!(
            store.get(&a).unwrap().is_none(),
            "no tombstone is left behind"
        );
        assert_eq!(store.get(&b).unwrap().unwrap().version, version(2));
    }
}
