//! Catching up (DESIGN.md, "Metadata": the replica set of a bucket changes whenever a
//! closer peer joins). A node whose metadata store is new — it joined the cluster, or its
//! disk was wiped — holds none of the records of the partitions it now replicates. Until
//! it has copied them it announces `catching_up` in its node info: every view then leaves
//! it out of read quorums (reads count only replicas known to be complete) while writes
//! reach both the set with it and the set without it (see `MetaQuorum`).
//!
//! The copy reads each partition it now replicates page by page through quorum scans of
//! the complete replicas (the bucket directory and the client-private values beside it,
//! then every bucket's object index, multipart uploads and parts,
//! manifests and garbage list) and applies the merged records locally. A marker file,
//! written durably before the new store is used and removed once the copy is done, keeps
//! a node that crashes half-way catching up after its restart. When every peer is
//! catching up too (a cluster forming), the scans read all of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::net::PeerId;
use andromede_cluster::{Membership, MetaQuorum};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::runner::{StatusHandle, WorkerContext};
use crate::error::WorkerError;
use tracing::{Instrument, info, info_span, warn};

use crate::data_dir::write_file_durably;
use crate::meta::MetaStore;

/// Records asked for per scan page.
const PAGE_RECORDS: u32 = 256;
/// Pause between attempts (and before the first: membership forms meanwhile).
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Longest wait for a view of the whole cluster before copying from what is seen.
const SETTLE_WAIT_MAX: Duration = Duration::from_secs(60);

/// Whether this node is still catching up. Cloning shares the state.
#[derive(Debug, Clone)]
pub struct CatchUp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    marker: PathBuf,
    pending: AtomicBool,
}

impl CatchUp {
    /// The state kept in `marker`; `fresh_store` says the metadata store was created at
    /// this start (the marker is then written, durably, first).
    ///
    /// # Errors
    /// [`WorkerError::File`] when the marker cannot be written or checked.
    pub fn load(marker: PathBuf, fresh_store: bool) -> Result<Self, WorkerError> {
        if fresh_store {
            write_file_durably(&marker, b"").map_err(|error| WorkerError::File {
                what: "writing",
                path: marker.clone(),
                error,
            })?;
        }
        let pending = marker.try_exists().map_err(|error| WorkerError::File {
            what: "checking",
            path: marker.clone(),
            error,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                marker,
                pending: AtomicBool::new(pending),
            }),
        })
    }

    /// Whether the node still copies its partitions.
    pub fn is_pending(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire)
    }

    fn finish(&self) -> Result<(), WorkerError> {
        match std::fs::remove_file(&self.inner.marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(WorkerError::File {
                    what: "removing",
                    path: self.inner.marker.clone(),
                    error,
                });
            }
        }
        if let Some(dir) = self.inner.marker.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|error| WorkerError::File {
                    what: "fsync",
                    path: dir.to_owned(),
                    error,
                })?;
        }
        self.inner.pending.store(false, Ordering::Release);
        Ok(())
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Partitions this node replicates and copied.
    pub partitions: u64,
    /// Records copied.
    pub records: u64,
}

/// Copies this node's partitions while it is catching up, then stops.
#[derive(Debug)]
pub struct CatchUpWorker {
    catch_up: CatchUp,
    store: Arc<dyn MetaStore>,
    quorum: MetaQuorum,
    membership: Membership,
    local: PeerId,
    /// Whether the node was given peers to join (then an empty view is not the cluster).
    has_bootstrap: bool,
}

impl CatchUpWorker {
    /// A worker filling this node's metadata replica by quorum reads; `has_bootstrap`:
    /// the node was told of members to join (so an empty view means "not yet").
    pub fn new(ctx: &WorkerContext, has_bootstrap: bool) -> Self {
        let local = ctx.local;
        Self {
            catch_up: ctx.catch_up.clone(),
            store: Arc::clone(&ctx.meta),
            quorum: ctx.quorum.clone(),
            membership: ctx.membership.clone(),
            local,
            has_bootstrap,
        }
    }

    /// Copies until done or `cancel` when the store is new; then, each time members have
    /// left the roster, copies again and records the hand-off (their partitions move to
    /// the next closest members; the departed keep their place in the replica sets known
    /// to be complete until every member has said so in its node info: DESIGN.md,
    /// "Metadata").
    pub async fn run(self, cancel: CancellationToken, status: StatusHandle) {
        if self.catch_up.is_pending() {
            info!("metadata store is new: catching up before counting towards read quorums");
            self.copy_until_done(&cancel, &status).await;
        }
        let mut seen = 0;
        loop {
            let pending = self.membership.handoffs_pending();
            if !pending.is_empty() {
                info!(
                    departed = pending.len(),
                    "members left the roster: copying the partitions that move here"
                );
                if !self.copy_until_done(&cancel, &status).await {
                    return;
                }
                self.membership.mark_handed_off(&pending).await;
                info!(
                    departed = pending.len(),
                    "hand-off done: this node holds every partition that moved to it"
                );
            }
            seen = tokio::select! {
                () = cancel.cancelled() => return,
                count = self.membership.departed_since(seen) => count,
            };
        }
    }

    /// Copies every partition this node replicates until a copy succeeds (true) or
    /// `cancel` (false).
    async fn copy_until_done(&self, cancel: &CancellationToken, status: &StatusHandle) -> bool {
        let started = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(RETRY_EVERY) => {}
            }
            let waited_enough = started.elapsed() >= SETTLE_WAIT_MAX;
            let live = self.membership.live();
            if !waited_enough
                && (!self.membership.is_settled(1) || (self.has_bootstrap && live.is_empty()))
            {
                continue;
            }
            // Always copy, even from peers that say they are catching up too (a cluster
            // forming): their flags are as old as the last refresh, and a peer that
            // took writes meanwhile must be read.
            let sources = live.len();
            let pass_started = Instant::now();
            let copied = self.copy(cancel).instrument(info_span!("catch_up")).await;
            if cancel.is_cancelled() {
                return false;
            }
            let copied = copied.and_then(|report| self.catch_up.finish().map(|()| report));
            status.pass_done(
                pass_started,
                copied.as_ref().map_or(0, |r| r.records),
                copied.as_ref().err().map(ToString::to_string),
            );
            match copied {
                Ok(report) => {
                    info!(
                        partitions = report.partitions,
                        records = report.records,
                        sources,
                        took = ?started.elapsed(),
                        "caught up: this node now counts towards read quorums"
                    );
                    return true;
                }
                Err(error) => warn!(%error, "catching up failed; trying again"),
            }
        }
    }

    /// One copy of every partition this node replicates: the bucket directory page by
    /// page, and after each page the buckets it names.
    ///
    /// # Errors
    /// A description of a quorum or store failure.
    async fn copy(&self, cancel: &CancellationToken) -> Result<CatchUpReport, WorkerError> {
        let mut report = CatchUpReport::default();
        let directory = self.replicates("");
        report.partitions += u64::from(directory);
        // Client-private values live with the directory (partition "").
        if directory {
            self.copy_partition(Table::Private, "", &mut report).await?;
        }
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (buckets, more) = self
                .copy_page(Table::Bucket, "", after.as_deref(), directory, &mut report)
                .await?;
            after = buckets.last().cloned();
            for bucket in buckets {
                if cancel.is_cancelled() {
                    return Ok(report);
                }
                let Ok(bucket) = String::from_utf8(bucket) else {
                    continue;
                };
                if self.replicates(&bucket) {
                    for table in [
                        Table::ObjectIndex,
                        Table::Manifest,
                        Table::Garbage,
                        Table::Upload,
                        Table::Part,
                        Table::Shared,
                    ] {
                        self.copy_partition(table, &bucket, &mut report).await?;
                    }
                    report.partitions += 1;
                }
            }
            if !more || after.is_none() {
                return Ok(report);
            }
        }
    }

    /// Whether writes to `partition` reach this node.
    fn replicates(&self, partition: &str) -> bool {
        self.quorum.write_targets(partition).contains(&self.local)
    }

    /// Copies `partition` of `table` here.
    ///
    /// # Errors
    /// As [`CatchUpWorker::copy_page`].
    async fn copy_partition(
        &self,
        table: Table,
        partition: &str,
        report: &mut CatchUpReport,
    ) -> Result<(), WorkerError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (keys, more) = self
                .copy_page(table, partition, after.as_deref(), true, report)
                .await?;
            after = keys.last().cloned();
            if !more || after.is_none() {
                return Ok(());
            }
        }
    }

    /// Reads one page of `partition` of `table` from a quorum of its complete replicas,
    /// storing its records here when `keep`; returns the page's sort keys and whether
    /// more follow.
    ///
    /// # Errors
    /// A description of a quorum or store failure.
    async fn copy_page(
        &self,
        table: Table,
        partition: &str,
        after: Option<&[u8]>,
        keep: bool,
        report: &mut CatchUpReport,
    ) -> Result<(Vec<Vec<u8>>, bool), WorkerError> {
        let page = self
            .quorum
            .scan(table, partition, b"", after, PAGE_RECORDS)
            .await?;
        let keys = page
            .records
            .iter()
            .map(|(key, _)| key.sort.clone())
            .collect();
        if keep && !page.records.is_empty() {
            report.records += page.records.len() as u64;
            let store = Arc::clone(&self.store);
            let records: Vec<(RecordKey, _)> = page.records;
            tokio::task::spawn_blocking(move || store.apply(&records)).await??;
        }
        Ok((keys, page.more))
    }
}
