//! Background workers: bounded, rate-limited, stoppable. The scrubber checks shards; the
//! anti-entropy worker keeps metadata replicas in step; the collector removes replaced and
//! deleted versions; liveness says which peers are down, and repair rebuilds the shards
//! they (or rotten disks) lost; the orphan collector deletes shards no manifest names; a
//! node with a new metadata store catches up before reads count it. All of them start
//! and stop through [`runner::Workers`], built from one [`runner::WorkerContext`].

pub mod anti_entropy;
pub mod catch_up;
pub mod gc;
pub mod liveness;
pub mod orphans;
pub mod rate;
pub mod repair;
pub mod runner;
pub mod scrub;
pub mod shard_calls;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::WorkerError;
use crate::meta::{MetaStore, RecordKey, Table};
use andromede_cluster::meta::record::Record;
use bytes::Bytes;

/// Held by a worker while it reads, then rewrites, a manifest (repair, garbage
/// collection), so that the two never overwrite each other's change on this node.
pub type MaintenanceLock = Arc<tokio::sync::Mutex<()>>;

/// No node acts alone (DESIGN.md, "Metadata"): destructive work (collection of versions
/// and of unreferenced shards, repair's manifest rewrites) runs only while this node
/// reaches a majority of the roster. Cut off from the others, or on the minority side of
/// a partition, it waits and its status says why; the quorums its writes need would
/// refuse them anyway.
///
/// # Errors
/// [`WorkerError::Minority`] with the reason.
pub(crate) fn majority_reached(
    membership: &andromede_cluster::Membership,
) -> Result<(), WorkerError> {
    match membership.reach().minority_reason() {
        Some(reason) => Err(WorkerError::Minority(reason)),
        None => Ok(()),
    }
}

/// Now, in ms since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `pass` every `interval` (the first after one interval) until `cancel`.
pub(crate) async fn every<F, Fut>(interval: Duration, cancel: &CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        pass().await;
    }
}

/// One page of `table` across partitions after `after`, read on a blocking thread.
///
/// # Errors
/// A description of the store failure.
pub(crate) async fn table_page(
    store: &Arc<dyn MetaStore>,
    table: Table,
    after: Option<&RecordKey>,
    limit: usize,
    bytes_max: usize,
) -> Result<Vec<(RecordKey, Record<Bytes>)>, WorkerError> {
    let store = Arc::clone(store);
    let after = after.cloned();
    tokio::task::spawn_blocking(move || store.scan_table(table, after.as_ref(), limit, bytes_max))
        .await?
        .map_err(WorkerError::from)
}

/// Whether other versions may reference `manifest`'s shards: it is a copy reusing another
/// version's shards, or a copy reuses its own (a shared-seal record in its bucket, read at
/// quorum). Such shards are never deleted with one version; the collection of
/// unreferenced shards takes them once no live manifest names them.
pub(crate) async fn shards_may_be_shared(
    quorum: &andromede_cluster::MetaQuorum,
    bucket: &str,
    manifest: &andromede_cluster::manifest::Manifest,
) -> Result<bool, WorkerError> {
    if manifest.sealed_as.is_some() {
        return Ok(true);
    }
    let marker = RecordKey {
        table: Table::Shared,
        partition: bucket.to_owned(),
        sort: manifest.version_id.as_bytes().to_vec(),
    };
    Ok(quorum
        .get(&marker)
        .await?
        .is_some_and(|record| !record.is_tombstone()))
}
