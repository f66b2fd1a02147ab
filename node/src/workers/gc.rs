//! Garbage collection of replaced and deleted versions (DESIGN.md, "Metadata": shards of
//! replaced or deleted versions go after a grace period).
//!
//! A PUT that replaces a version, and a DELETE, commit a garbage record (table 4: bucket,
//! version id → due time) in the same quorum write as the new index entry. Every
//! `interval`, each node walks the garbage records it holds; for those that are due, in
//! buckets whose first live replica is this node (so that one node works on a bucket at
//! a time), it reads the version's manifest from a read quorum, deletes the shards from
//! their holders, then writes tombstones over the manifest and the garbage record on a
//! write quorum. A holder that does not answer leaves the record in place, and the next
//! pass tries again; deleting is idempotent, so a pass cut short is simply resumed.
//!
//! Collection is driven only by garbage records, never by the absence of a record, so a
//! replica that lost its metadata cannot cause live data to be collected. A version named
//! by a garbage record cannot become current again: the record is written with an index
//! entry whose version sorts after it, and the index is last-writer-wins.
//!
//! A garbage record is still only a claim (any admitted client can write one), so before
//! it deletes anything the collector reads, at quorum, the index entry of the key the
//! record names, and that version's manifest: a record for the version the index still
//! calls current, or for one of the parts that version is assembled from, is refused and
//! left in place (a warning says so), as is one that names no key.
//!
//! A version whose shards a copy shares (it is a copy, or was copied: a shared-seal
//! record says so) loses its manifest only; its shards go with the collection of
//! unreferenced shards, which proves no live manifest names them first.
//!
//! An assembled (multipart) version is collected with its parts, each a manifest of its
//! own. A garbage record may also name a multipart upload (written when it starts, due
//! at its expiry; brought forward by an abort or a completion): the collector then
//! collects each of its part versions that the key's current version does not use, and
//! removes the part records and the upload record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{KeyedRecord, Record, Version};
use andromede_cluster::meta::values::{GarbageEntry, ObjectEntry, PartEntry};
use andromede_cluster::net::PeerId;
use andromede_cluster::{Membership, MetaQuorum};
use andromede_proto::ShardId;
use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::runner::{StatusHandle, WorkerContext};
use super::shard_calls::ShardCalls;
use super::{MaintenanceLock, every, now_ms, shards_may_be_shared, table_page};
use crate::error::WorkerError;
use crate::meta::MetaStore;

/// Garbage records walked per page.
const PAGE_RECORDS: usize = 256;
/// Bytes of garbage records per page at most (they are a few bytes each).
const PAGE_BYTES: usize = 1 << 20;
/// Part records read per page when an upload is collected.
const PART_PAGE_RECORDS: u32 = 256;
/// Versions collected per pass at most, so that a pass ends and the next one resumes.
const VERSIONS_PER_PASS_MAX: u64 = 10_000;

/// Settings of the garbage collector.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// Pause between the end of a pass and the start of the next.
    pub interval: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Versions whose shards and manifest were removed.
    pub collected: u64,
    /// Shard files deleted on their holders.
    pub shards_deleted: u64,
    /// Due versions left for a later pass (a holder or replica did not answer).
    pub deferred: u64,
    /// Garbage records refused: they name a version that is still current, or no key.
    pub refused: u64,
}

/// Collects the garbage of the buckets this node is the first replica of.
#[derive(Debug)]
pub struct GcWorker {
    meta: Arc<dyn MetaStore>,
    quorum: MetaQuorum,
    membership: Membership,
    shards: ShardCalls,
    lock: MaintenanceLock,
    config: GcConfig,
}

impl GcWorker {
    /// A collector working through this node's metadata and shard calls; the context's
    /// maintenance lock keeps it from rewriting a manifest while repair does.
    pub fn new(ctx: &WorkerContext, config: GcConfig) -> Self {
        Self {
            meta: Arc::clone(&ctx.meta),
            quorum: ctx.quorum.clone(),
            membership: ctx.membership.clone(),
            shards: ctx.calls.clone(),
            lock: Arc::clone(&ctx.lock),
            config,
        }
    }

    /// Runs passes until `cancel`.
    pub async fn run(self, cancel: CancellationToken, status: StatusHandle) {
        every(self.config.interval, &cancel, || async {
            let started = Instant::now();
            let result = self.pass(&cancel).instrument(info_span!("gc")).await;
            status.pass_done(
                started,
                result.as_ref().map_or(0, |r| r.collected),
                result.as_ref().err().map(ToString::to_string),
            );
            match result {
                Ok(report) if report == GcReport::default() => {}
                Ok(report) => info!(?report, "garbage collection pass done"),
                Err(error) => warn!(%error, "garbage collection pass stopped"),
            }
        })
        .await;
    }

    /// One pass over the garbage records held here.
    ///
    /// # Errors
    /// A description of a local metadata store failure.
    pub async fn pass(&self, cancel: &CancellationToken) -> Result<GcReport, WorkerError> {
        super::majority_reached(&self.membership)?;
        let mut report = GcReport::default();
        let local = self.shards.local();
        let mut after: Option<RecordKey> = None;
        loop {
            let page = table_page(
                &self.meta,
                Table::Garbage,
                after.as_ref(),
                PAGE_RECORDS,
                PAGE_BYTES,
            )
            .await?;
            let Some((last, _)) = page.last() else {
                return Ok(report);
            };
            after = Some(last.clone());
            for (key, record) in page {
                if cancel.is_cancelled() || report.collected >= VERSIONS_PER_PASS_MAX {
                    return Ok(report);
                }
                let Some(value) = &record.value else { continue };
                let entry = match GarbageEntry::decode(value) {
                    Ok(entry) => entry,
                    Err(error) => {
                        warn!(partition = %key.partition, %error, "unreadable garbage record left alone");
                        continue;
                    }
                };
                if entry.due_ms > now_ms() || !self.quorum.leads(&key.partition, local) {
                    continue;
                }
                match self.still_current(&key, &entry).await {
                    Ok(false) => {}
                    Ok(true) => {
                        report.refused += 1;
                        continue;
                    }
                    Err(error) => {
                        debug!(bucket = %key.partition, %error, "version collection deferred");
                        report.deferred += 1;
                        continue;
                    }
                }
                match self.collect(&key, &entry, &record).await {
                    Ok(deleted) => {
                        report.collected += 1;
                        report.shards_deleted += deleted;
                    }
                    Err(error) => {
                        debug!(bucket = %key.partition, %error, "version collection deferred");
                        report.deferred += 1;
                    }
                }
            }
        }
    }

    /// The version the key's index entry names now, and the parts that version is
    /// assembled from (read at quorum): what no garbage record may take.
    async fn current(&self, bucket: &str, key: &str) -> Result<Vec<[u8; 16]>, WorkerError> {
        let index_key = RecordKey {
            table: Table::ObjectIndex,
            partition: bucket.to_owned(),
            sort: key.as_bytes().to_vec(),
        };
        let Some(object) = self
            .quorum
            .get(&index_key)
            .await?
            .and_then(|record| record.value)
            .and_then(|value| ObjectEntry::decode(&value).ok())
        else {
            return Ok(Vec::new());
        };
        let mut kept = vec![*object.version_id.as_bytes()];
        let manifest_key = RecordKey {
            table: Table::Manifest,
            partition: bucket.to_owned(),
            sort: object.version_id.as_bytes().to_vec(),
        };
        if let Some(bytes) = self.quorum.get(&manifest_key).await?.and_then(|r| r.value) {
            match Manifest::decode(&bytes) {
                Ok(manifest) => {
                    kept.extend(manifest.parts().iter().map(|p| *p.version_id.as_bytes()))
                }
                // Its parts cannot be told: keep every version of the key for now.
                Err(error) => return Err(WorkerError::Manifest(error)),
            }
        }
        Ok(kept)
    }

    /// Whether the garbage record `key` (`entry`) must be refused: its object's index
    /// entry, read at quorum, still names the version or a version assembled from it, or
    /// the record names no object.
    async fn still_current(
        &self,
        key: &RecordKey,
        entry: &GarbageEntry,
    ) -> Result<bool, WorkerError> {
        if entry.key.is_empty() {
            warn!(bucket = %key.partition, "garbage record naming no object key refused");
            return Ok(true);
        }
        if entry.upload {
            // Upload records name no version: each part is checked as it is collected.
            return Ok(false);
        }
        let kept = self.current(&key.partition, &entry.key).await?;
        let names_it = kept.iter().any(|v| v.as_slice() == key.sort.as_slice());
        if names_it {
            warn!(
                bucket = %key.partition,
                key = entry.key,
                "garbage record names the current version of its object (or one of its parts): refused, nothing deleted"
            );
        }
        Ok(names_it)
    }

    /// Removes what a garbage record names, then the record: a version (and the parts
    /// it was assembled from), or a multipart upload.
    async fn collect(
        &self,
        garbage: &RecordKey,
        entry: &GarbageEntry,
        record: &Record<Bytes>,
    ) -> Result<u64, WorkerError> {
        let _repair_waits = self.lock.lock().await;
        // The client-signed garbage record justifies every tombstone this writes
        // (DESIGN.md, "Metadata": nodes sign only what their jobs need).
        let cause: KeyedRecord = (garbage.clone(), record.clone());
        let deleted = if entry.upload {
            self.collect_upload(&cause, entry).await?
        } else {
            self.collect_version(&garbage.partition, &garbage.sort, vec![cause.clone()])
                .await?
        };
        self.tombstone(garbage, &record.version, vec![cause])
            .await?;
        Ok(deleted)
    }

    /// Writes a tombstone over `key` (held at `version`), signed by this node with
    /// `causes`, the client-signed records that justify it.
    async fn tombstone(
        &self,
        key: &RecordKey,
        version: &Version,
        causes: Vec<KeyedRecord>,
    ) -> Result<(), WorkerError> {
        let record = self.quorum.sign(
            key,
            Record::tombstone(self.quorum.version_after(Some(version))),
            causes,
        )?;
        self.quorum
            .apply(&key.partition, vec![(key.clone(), record)])
            .await?;
        Ok(())
    }

    /// Deletes one version's shards, then its manifest; an assembled version's parts
    /// first. Idempotent: a version already gone costs one read. `causes`: the
    /// client-signed garbage record that names it (with, for a part version, the
    /// client-signed record that lists it as a part).
    async fn collect_version(
        &self,
        bucket: &str,
        version: &[u8],
        causes: Vec<KeyedRecord>,
    ) -> Result<u64, WorkerError> {
        let manifest_key = RecordKey {
            table: Table::Manifest,
            partition: bucket.to_owned(),
            sort: version.to_vec(),
        };
        let Some(manifest) = self.quorum.get(&manifest_key).await? else {
            return Ok(0);
        };
        let Some(bytes) = &manifest.value else {
            return Ok(0);
        };
        let mut deleted = 0;
        // A manifest that does not decode names no shards we could trust: it is removed
        // with its record (nothing can read it either).
        match Manifest::decode(bytes) {
            Ok(decoded) => {
                if let Some(garbage) = causes.first().filter(|_| !decoded.parts().is_empty()) {
                    let listed_in = vec![garbage.clone(), manifest.origin(&manifest_key)];
                    for part in decoded.parts() {
                        deleted += Box::pin(self.collect_version(
                            bucket,
                            part.version_id.as_bytes(),
                            listed_in.clone(),
                        ))
                        .await?;
                    }
                }
                if shards_may_be_shared(&self.quorum, bucket, &decoded).await? {
                    debug!(bucket, version = %decoded.version_id.short(), "a copy shares these shards: left to the collection of unreferenced shards");
                } else {
                    for (holder, ids) in shards_by_holder(&decoded)? {
                        deleted += self.shards.delete(holder, &ids).await?;
                    }
                }
            }
            Err(error) => {
                warn!(bucket, %error, "undecodable manifest collected without its shards")
            }
        }
        self.tombstone(&manifest_key, &manifest.version, causes)
            .await?;
        Ok(deleted)
    }

    /// Ends a multipart upload (aborted, expired, or completed): every part version the
    /// key's current version does not use is collected, then the part records and the
    /// upload record go.
    async fn collect_upload(
        &self,
        cause: &KeyedRecord,
        entry: &GarbageEntry,
    ) -> Result<u64, WorkerError> {
        let garbage = &cause.0;
        let bucket = &garbage.partition;
        let upload_id = &garbage.sort;
        let kept = self.current(bucket, &entry.key).await?;
        let mut deleted = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .quorum
                .scan(
                    Table::Part,
                    bucket,
                    upload_id,
                    after.as_deref(),
                    PART_PAGE_RECORDS,
                )
                .await?;
            let mut tombstones = Vec::new();
            for (key, record) in &page.records {
                after = Some(key.sort.clone());
                let Some(value) = &record.value else { continue };
                match PartEntry::decode(value) {
                    Ok(part) if !kept.contains(part.version_id.as_bytes()) => {
                        let listed_in = vec![cause.clone(), (key.clone(), record.clone())];
                        deleted += self
                            .collect_version(bucket, part.version_id.as_bytes(), listed_in)
                            .await?;
                    }
                    Ok(_) => {}
                    Err(error) => warn!(bucket, %error, "undecodable part record removed"),
                }
                let tombstone = self.quorum.sign(
                    key,
                    Record::tombstone(self.quorum.version_after(Some(&record.version))),
                    vec![cause.clone()],
                )?;
                tombstones.push((key.clone(), tombstone));
            }
            if !tombstones.is_empty() {
                self.quorum.apply(bucket, tombstones).await?;
            }
            if !page.more {
                break;
            }
        }
        let mut sort = entry.key.as_bytes().to_vec();
        sort.push(0);
        sort.extend_from_slice(upload_id);
        let upload_key = RecordKey {
            table: Table::Upload,
            partition: bucket.clone(),
            sort,
        };
        if let Some(upload) = self.quorum.get(&upload_key).await?
            && !upload.is_tombstone()
        {
            self.tombstone(&upload_key, &upload.version, vec![cause.clone()])
                .await?;
        }
        Ok(deleted)
    }
}

/// The shard ids of a manifest, grouped by the peer holding them.
fn shards_by_holder(manifest: &Manifest) -> Result<BTreeMap<PeerId, Vec<ShardId>>, WorkerError> {
    let mut out: BTreeMap<PeerId, Vec<ShardId>> = BTreeMap::new();
    let Body::Segments(segments) = &manifest.body else {
        return Ok(out);
    };
    for (segment, entry) in (0u64..).zip(segments) {
        for (index, id) in (0u8..).zip(&entry.shard_ids) {
            let no_holder = || WorkerError::NoHolder {
                segment,
                shard: index,
            };
            let holder = manifest.holder(segment, index).ok_or_else(no_holder)?;
            let peer = PeerId::from_bytes(holder).map_err(|_| no_holder())?;
            out.entry(peer).or_default().push(*id);
        }
    }
    Ok(out)
}
