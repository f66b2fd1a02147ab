//! Anti-entropy (DESIGN.md, "Metadata"): replicas that missed writes (down, partitioned,
//! or new in a partition's replica set after a closer node joined) catch up without a
//! client reading the records.
//!
//! Every `interval`, the node walks the records it holds, table by table, in pages bounded
//! by count and bytes. For each partition in a page it works out the replica set as its
//! membership sees it now and offers every other replica the page's keys and versions
//! only; a replica answers which records it lacks or holds older, and is sent exactly
//! those. Every node does the same, so pushes alone converge, and a node that has left a
//! partition's replica set still hands its records to the new set. A pass costs one
//! compare message per partition page and replica; a replica that does not answer is
//! skipped until the next pass.
//!
//! A node that is not a replica of a partition (a closer node joined, or it drains)
//! drops each page of its records once every replica has answered that it holds them
//! at that version or newer — only while its view of the cluster is settled, every
//! member in it answers, and no replica set is changing: records kept on a former
//! replica would otherwise come back stale the day it is a replica again.

use std::sync::Arc;
use std::time::Duration;

use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{Record, Version};
use andromede_cluster::net::PeerId;
use andromede_cluster::net::meta_message::{KeyedRecord, MetaRequest, MetaResponse};
use andromede_cluster::{Membership, MetaQuorum};
use andromede_proto::limits::{META_BATCH_RECORDS_MAX, META_MESSAGE_BYTES_MAX};
use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::runner::{StatusHandle, WorkerContext};
use super::{now_ms, table_page};
use crate::drain::Drain;
use crate::error::WorkerError;
use crate::meta::MetaStore;

/// Longest pause between passes while the node drains.
const DRAINING_INTERVAL: Duration = Duration::from_secs(5);
/// Records walked per page (and offered per compare message) at most.
const PAGE_RECORDS: usize = 256;
/// Bytes of records per page (and per apply message) at most.
const PAGE_BYTES: usize = (META_MESSAGE_BYTES_MAX / 4) as usize;

const _: () = assert!(PAGE_RECORDS as u64 <= META_BATCH_RECORDS_MAX);

/// Settings of the anti-entropy worker.
#[derive(Debug, Clone)]
pub struct AntiEntropyConfig {
    /// Pause between the end of a pass and the start of the next.
    pub interval: Duration,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AntiEntropyReport {
    /// Records walked.
    pub records: u64,
    /// Records sent to a replica that lacked them or held them older.
    pub pushed: u64,
    /// Offers that a replica did not answer.
    pub failed: u64,
    /// Records dropped after their replicas (this node not among them) all held them.
    pub dropped: u64,
}

/// Keeps this node's partitions in step with their other replicas.
#[derive(Debug)]
pub struct AntiEntropyWorker {
    store: Arc<dyn MetaStore>,
    quorum: MetaQuorum,
    membership: Membership,
    local: PeerId,
    drain: Drain,
    config: AntiEntropyConfig,
}

impl AntiEntropyWorker {
    /// A worker over this node's metadata replica, reaching the others by quorum.
    pub fn new(ctx: &WorkerContext, config: AntiEntropyConfig) -> Self {
        Self {
            store: Arc::clone(&ctx.meta),
            quorum: ctx.quorum.clone(),
            membership: ctx.membership.clone(),
            local: ctx.local,
            drain: ctx.drain.clone(),
            config,
        }
    }

    /// Runs passes until `cancel`, the first after one interval (membership has formed
    /// by then). While the node drains, passes run every `DRAINING_INTERVAL` at most, the
    /// first as soon as the drain starts: they hand its records to their new replicas,
    /// and a pass that reached every replica is recorded for the drain's safety check.
    pub async fn run(self, cancel: CancellationToken, status: StatusHandle) {
        loop {
            let draining = self.drain.is_draining();
            let wait = if draining {
                self.config.interval.min(DRAINING_INTERVAL)
            } else {
                self.config.interval
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = self.drain.started(), if !draining => {}
            }
            let started_ms = now_ms();
            let started = Instant::now();
            let pass = self.pass(&cancel).instrument(info_span!("anti_entropy"));
            let result = pass.await;
            status.pass_done(
                started,
                result.as_ref().map_or(0, |r| r.pushed),
                result.as_ref().err().map(ToString::to_string),
            );
            match result {
                Ok(report) => {
                    if report.failed == 0 && !cancel.is_cancelled() {
                        self.drain.record_clean_handoff(started_ms);
                    }
                    if report.pushed > 0 || report.failed > 0 || report.dropped > 0 {
                        info!(?report, "anti-entropy pass done");
                    } else {
                        debug!(?report, "anti-entropy pass done");
                    }
                }
                Err(error) => info!(%error, "anti-entropy pass stopped"),
            }
        }
    }

    /// One pass over every record held.
    ///
    /// # Errors
    /// A description of a local store failure (peers that fail are counted, not errors).
    pub async fn pass(&self, cancel: &CancellationToken) -> Result<AntiEntropyReport, WorkerError> {
        let mut report = AntiEntropyReport::default();
        for table in [
            Table::Bucket,
            Table::ObjectIndex,
            Table::Manifest,
            Table::Garbage,
            Table::Private,
            Table::Upload,
            Table::Part,
            Table::Shared,
        ] {
            let mut after: Option<RecordKey> = None;
            loop {
                if cancel.is_cancelled() {
                    return Ok(report);
                }
                let page = table_page(&self.store, table, after.as_ref(), PAGE_RECORDS, PAGE_BYTES)
                    .await?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                report.records += page.len() as u64;
                for partition in page.chunk_by(|(a, _), (b, _)| a.partition == b.partition) {
                    self.offer_partition(table, partition, &mut report).await;
                }
            }
        }
        Ok(report)
    }

    /// Offers one partition's records to each of its other replicas; drops them here
    /// when this node is not one of those and every one holds them now.
    async fn offer_partition(
        &self,
        table: Table,
        records: &[KeyedRecord],
        report: &mut AntiEntropyReport,
    ) {
        let Some((first, _)) = records.first() else {
            return;
        };
        let partition = first.partition.clone();
        let targets = self.quorum.write_targets(&partition);
        let mut all_hold = !targets.is_empty();
        for &peer in &targets {
            if peer == self.local {
                continue;
            }
            match self.offer(peer, table, &partition, records).await {
                Ok(pushed) => report.pushed += pushed,
                Err(error) => {
                    debug!(%peer, %partition, %error, "anti-entropy offer failed");
                    report.failed += 1;
                    all_hold = false;
                }
            }
        }
        if all_hold && !targets.contains(&self.local) && self.view_is_stable() {
            match self.drop_handed_off(records).await {
                Ok(dropped) => report.dropped += dropped,
                Err(error) => warn!(%partition, %error, "handed-off records not dropped"),
            }
        }
    }

    /// Whether this node's view is one to drop records by: settled (it knows as many
    /// live nodes as anyone says), every member in it live, and no member catching up
    /// or handing off (replica sets are not changing). A member this node cannot reach
    /// may be a replica in other views.
    fn view_is_stable(&self) -> bool {
        let members = self.membership.all();
        !members.is_empty()
            && self.membership.is_settled(1)
            && members
                .iter()
                .all(|m| m.live && !m.handing_off && !m.info.catching_up)
    }

    /// Removes `records` from the local store, each only at the version offered.
    async fn drop_handed_off(&self, records: &[KeyedRecord]) -> Result<u64, WorkerError> {
        let store = Arc::clone(&self.store);
        let versions: Vec<(RecordKey, Version)> = records
            .iter()
            .map(|(key, record)| (key.clone(), record.version.clone()))
            .collect();
        tokio::task::spawn_blocking(move || store.remove_handed_off(&versions))
            .await?
            .map_err(WorkerError::from)
    }

    /// Sends `peer` the versions of `records`, then the records it wants.
    async fn offer(
        &self,
        peer: PeerId,
        table: Table,
        partition: &str,
        records: &[KeyedRecord],
    ) -> Result<u64, WorkerError> {
        let compare = MetaRequest::Compare {
            table,
            partition: partition.to_owned(),
            entries: records
                .iter()
                .map(|(key, record)| (key.sort.clone(), record.version.clone()))
                .collect(),
        };
        let MetaResponse::Wanted(wanted) = self.quorum.ask_one(peer, compare).await? else {
            return Err(WorkerError::UnexpectedAnswer {
                peer,
                request: "compare",
            });
        };
        let wanted: Vec<&KeyedRecord> = records
            .iter()
            .zip(wanted)
            .filter_map(|(record, wanted)| wanted.then_some(record))
            .collect();
        let mut pushed = 0;
        for batch in batches(&wanted) {
            let count = batch.len() as u64;
            match self.quorum.ask_one(peer, MetaRequest::Apply(batch)).await? {
                MetaResponse::Apply { .. } => pushed += count,
                _ => {
                    return Err(WorkerError::UnexpectedAnswer {
                        peer,
                        request: "apply",
                    });
                }
            }
        }
        Ok(pushed)
    }
}

/// Splits records into apply messages that stay under the byte limit.
fn batches(records: &[&KeyedRecord]) -> Vec<Vec<KeyedRecord>> {
    let mut out: Vec<Vec<KeyedRecord>> = Vec::new();
    let mut bytes = 0usize;
    for &(key, record) in records {
        let size = record_bytes(key, record);
        match out.last_mut() {
            Some(batch) if bytes + size <= PAGE_BYTES => batch.push((key.clone(), record.clone())),
            _ => {
                out.push(vec![(key.clone(), record.clone())]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    out
}

fn record_bytes(key: &RecordKey, record: &Record<Bytes>) -> usize {
    key.partition.len() + key.sort.len() + record.value.as_ref().map_or(0, Bytes::len) + 64
}

#[cfg(test)]
mod tests {
    use andromede_cluster::meta::hlc::Timestamp;
    use andromede_cluster::meta::record::{Version, WriterId};

    use super::*;

    #[test]
    fn batches_stay_under_the_byte_limit_and_keep_every_record() {
        let version = Version {
            timestamp: Timestamp::default(),
            writer: WriterId::new(Bytes::from_static(b"w")).unwrap(),
        };
        let records: Vec<KeyedRecord> = (0..10)
            .map(|i| {
                (
                    RecordKey {
                        table: Table::Manifest,
                        partition: "b".into(),
                        sort: vec![i],
                    },
                    Record::live(version.clone(), Bytes::from(vec![0; PAGE_BYTES / 3])),
                )
            })
            .collect();
        let refs: Vec<&KeyedRecord> = records.iter().collect();
        let out = batches(&refs);
        assert_eq!(out.iter().map(Vec::len).sum::<usize>(), 10);
        assert_eq!(
            out.len(),
            5,
            "two records of a third of the limit fit per batch"
        );
        for batch in &out {
            let bytes: usize = batch.iter().map(|(k, r)| record_bytes(k, r)).sum();
            assert!(bytes <= PAGE_BYTES);
        }
    }
}
