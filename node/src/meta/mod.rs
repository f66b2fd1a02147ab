//! Metadata replicas (DESIGN.md, "Metadata"): buckets, object index entries and manifests
//! as last-writer-wins records, durable in an embedded store behind the [`MetaStore`]
//! trait, so that the engine (sled today) can be replaced without touching the rest.

pub mod replica;

pub use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{Record, Version};
use bytes::Bytes;

use crate::error::MetaError;

/// One row of a scan: the sort key and its record.
pub type ScanRow = (Vec<u8>, Record<Bytes>);

/// A durable, mergeable record store: the metadata engine seen by the rest of the node.
pub trait MetaStore: Send + Sync + std::fmt::Debug {
    /// Merges each record into what is held (last writer wins) and makes the result
    /// durable before returning; says, per record, whether it replaced what was held.
    ///
    /// # Errors
    /// [`MetaError`] on engine failure or a stored record that does not decode; records
    /// before the failure may already be applied (each is idempotent).
    fn apply(&self, records: &[(RecordKey, Record<Bytes>)]) -> Result<Vec<bool>, MetaError>;

    /// Removes each record of `records` still held at exactly that version (a newer
    /// write that arrived meanwhile stays), with its holder-index entries; returns how
    /// many went. For a node that is no longer a replica of their partition, once every
    /// replica holds them: unlike a tombstone, nothing is left behind.
    ///
    /// # Errors
    /// [`MetaError`] on engine failure or an undecodable stored record; records before
    /// the failure may already be removed.
    fn remove_handed_off(&self, records: &[(RecordKey, Version)]) -> Result<u64, MetaError>;

    /// The record held for `key`, tombstones included.
    ///
    /// # Errors
    /// [`MetaError`] on engine failure or an undecodable stored record.
    fn get(&self, key: &RecordKey) -> Result<Option<Record<Bytes>>, MetaError>;

    /// Up to `limit` records of one partition whose sort keys start with `prefix` and
    /// come after `start_after`, in sort-key order, tombstones included.
    ///
    /// # Errors
    /// [`MetaError`] on engine failure or an undecodable stored record.
    fn scan(
        &self,
        table: Table,
        partition: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ScanRow>, MetaError>;

    /// Records of `table` in every partition after `start_after` (a key of the same
    /// table), one partition's records together and in sort-key order: what the background
    /// workers walk. Stops after `limit` records or once their values pass `bytes_max`
    /// (at least one record is returned when any is left).
    ///
    /// # Errors
    /// [`MetaError`] on engine failure or an undecodable stored record.
    fn scan_table(
        &self,
        table: Table,
        start_after: Option<&RecordKey>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<(RecordKey, Record<Bytes>)>, MetaError>;

    /// Keys of the live manifests (table `Manifest`) with a shard on `holder` (peer id
    /// bytes), after `start_after`, at most `limit`, in key order: the repair list when
    /// that peer is lost.
    ///
    /// # Errors
    /// [`MetaError`] on engine failure or a malformed index entry.
    fn versions_held_by(
        &self,
        holder: &[u8],
        start_after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<Vec<RecordKey>, MetaError>;
}
