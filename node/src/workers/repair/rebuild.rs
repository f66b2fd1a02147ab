//! Rebuilding one segment: fetch `k` healthy shards (data shards first, the next healthy
//! one when a fetch fails or returns other bytes), reconstruct every missing shard, check
//! that each rebuilt shard hashes to the id in the manifest (Reed-Solomon is
//! deterministic, so anything else means the manifest or a holder lies), and store each on
//! its destination, durably. A misplaced shard (healthy, but on the wrong node) is copied
//! from its holder instead, one read checked against its id, and rebuilt only when that
//! copy fails.

use std::collections::BTreeMap;

use andromede_cluster::net::PeerId;
use andromede_cluster::shard::erasure::Erasure;
use andromede_cluster::shard::hash::verify_shard;
use andromede_proto::ShardId;
use bytes::Bytes;
use futures::future::join_all;

use super::super::shard_calls::ShardCalls;
use super::plan::Plan;
use crate::error::WorkerError;

/// What rebuilding a segment did.
#[derive(Debug, Default)]
pub(super) struct Rebuilt {
    /// `(index, new holder)` of every shard stored.
    pub(super) stored: Vec<(u8, PeerId)>,
    /// Bytes of rebuilt shards stored.
    pub(super) bytes: u64,
}

/// Rebuilds the missing shards of `segment` of `plan` and stores them where
/// `destinations` says.
///
/// # Errors
/// A description when fewer than `k` healthy shards could be fetched, a rebuilt shard
/// does not match its id, or a destination refused a shard (shards stored before the
/// failure are reported by the next pass as present).
pub(super) async fn rebuild_segment(
    plan: &Plan,
    segment: usize,
    destinations: &BTreeMap<(usize, u8), PeerId>,
    calls: &ShardCalls,
) -> Result<Rebuilt, WorkerError> {
    let params = plan.manifest.params;
    let segment_entry = match &plan.manifest.body {
        andromede_cluster::manifest::Body::Segments(segments) => {
            segments.get(segment).ok_or(WorkerError::PlanIncomplete {
                segment: segment as u64,
                shard: 0,
                what: "its segment is not in the manifest",
            })?
        }
        andromede_cluster::manifest::Body::Inline(_)
        | andromede_cluster::manifest::Body::Parts(_) => return Ok(Rebuilt::default()),
    };
    // A shard is at most `SHARD_BYTES_MAX` (64 MiB + 40): it fits in a usize.
    let shard_bytes =
        usize::try_from(params.shard_bytes(segment_entry.sealed_bytes())).unwrap_or(usize::MAX);
    let copied: Vec<(u8, ShardId, Bytes)> = copy_misplaced(plan, segment, calls)
        .await
        .into_iter()
        .filter_map(|(j, copy)| copy.map(|(id, bytes)| (j, id, bytes)))
        .collect();
    let mut missing = plan.missing[segment].clone();
    missing.retain(|j| !copied.iter().any(|(c, _, _)| c == j));
    let mut to_store = Vec::with_capacity(missing.len() + copied.len());
    for (j, id, bytes) in copied {
        to_store.push((j, destination(plan, destinations, segment, j)?, id, bytes));
    }
    if !missing.is_empty() {
        to_store.extend(
            reconstruct(plan, segment, &missing, shard_bytes, calls)
                .await?
                .into_iter()
                .map(|(j, id, bytes)| {
                    destination(plan, destinations, segment, j).map(|peer| (j, peer, id, bytes))
                })
                .collect::<Result<Vec<_>, WorkerError>>()?,
        );
    }
    let results = join_all(
        to_store
            .iter()
            .map(|(_, peer, id, bytes)| calls.put(*peer, *id, bytes.clone())),
    )
    .await;
    let mut rebuilt = Rebuilt::default();
    let mut failures = Vec::new();
    for ((j, peer, _, bytes), result) in to_store.into_iter().zip(results) {
        match result {
            Ok(()) => {
                rebuilt.stored.push((j, peer));
                rebuilt.bytes += bytes.len() as u64;
            }
            Err(error) => failures.push(format!("shard {j} to {peer}: {error}")),
        }
    }
    if rebuilt.stored.is_empty() && !failures.is_empty() {
        return Err(WorkerError::NothingStored {
            segment: segment as u64,
            failures: failures.join("; "),
        });
    }
    Ok(rebuilt)
}

/// Where shard `j` of `segment` goes: its destination, or (a shard found missing while
/// fetching) back to its own holder.
fn destination(
    plan: &Plan,
    destinations: &BTreeMap<(usize, u8), PeerId>,
    segment: usize,
    j: u8,
) -> Result<PeerId, WorkerError> {
    match destinations.get(&(segment, j)) {
        Some(peer) => Ok(*peer),
        None => plan.holders[segment][usize::from(j)].ok_or(WorkerError::NoDestination {
            segment: segment as u64,
            shard: j,
        }),
    }
}

/// Misplaced shards (doubled up, on a draining node, or moved by rebalancing) are healthy
/// where they are: each is read from its holder once and checked against its id, rather
/// than rebuilt from `k` others. `None` for those that could not be copied (rebuilt then).
async fn copy_misplaced(
    plan: &Plan,
    segment: usize,
    calls: &ShardCalls,
) -> Vec<(u8, Option<(ShardId, Bytes)>)> {
    let moves = plan.misplaced[segment].clone();
    let copies = join_all(moves.iter().map(|&j| async move {
        let holder = plan.holders[segment][usize::from(j)]?;
        let id = plan.shard_id(segment, j)?;
        match calls.get(holder, id).await {
            Ok(bytes) if verify_shard(&id, &bytes) => Some((id, bytes)),
            Ok(_) => {
                tracing::debug!(segment, shard = j, "misplaced copy does not match its id; rebuilt instead");
                None
            }
            Err(error) => {
                tracing::debug!(segment, shard = j, %error, "misplaced copy unreadable; rebuilt instead");
                None
            }
        }
    }))
    .await;
    moves.into_iter().zip(copies).collect()
}

/// Fetches `k` healthy shards of `segment` and reconstructs the `missing` ones, each
/// checked against its id. Returns `(index, id, bytes)`; `missing` may grow by shards
/// that failed to fetch.
async fn reconstruct(
    plan: &Plan,
    segment: usize,
    missing: &[u8],
    shard_bytes: usize,
    calls: &ShardCalls,
) -> Result<Vec<(u8, ShardId, Bytes)>, WorkerError> {
    let params = plan.manifest.params;
    let k = usize::from(params.k());
    let shard_count = params.shard_count();
    let mut missing = missing.to_vec();
    // Healthy shards, data shards first (indices ascend): no decoding needed for them.
    // Misplaced ones are healthy too.
    let mut healthy: Vec<u8> = (0u8..)
        .take(shard_count)
        .filter(|j| !plan.missing[segment].contains(j) || plan.misplaced[segment].contains(j))
        .filter(|j| !missing.contains(j))
        .collect();
    let mut shards: Vec<Option<Vec<u8>>> = vec![None; shard_count];
    let mut fetched = 0;
    while fetched < k {
        let want = k - fetched;
        if healthy.len() < want {
            return Err(WorkerError::Unrecoverable {
                segment: segment as u64,
                fetched,
                needed: k,
            });
        }
        let batch: Vec<u8> = healthy.drain(..want).collect();
        let results = join_all(batch.iter().map(|&j| async move {
            let holder = plan.holders[segment][usize::from(j)].ok_or(WorkerError::NoHolder {
                segment: segment as u64,
                shard: j,
            })?;
            let id = plan.shard_id(segment, j).ok_or_else(|| no_id(segment, j))?;
            Ok::<_, WorkerError>(calls.get(holder, id).await?)
        }))
        .await;
        for (j, result) in batch.into_iter().zip(results) {
            match result {
                Ok(bytes) => {
                    shards[usize::from(j)] = Some(Vec::from(bytes));
                    fetched += 1;
                }
                Err(error) => {
                    tracing::debug!(segment, shard = j, %error, "healthy-looking shard failed; rebuilt too");
                    missing.push(j);
                }
            }
        }
    }
    let erasure = Erasure::new(params)?;
    let mut shards = tokio::task::spawn_blocking(move || {
        erasure
            .reconstruct(&mut shards, shard_bytes)
            .map(|()| shards)
    })
    .await??;

    let mut out = Vec::with_capacity(missing.len());
    for &j in &missing {
        let id = plan.shard_id(segment, j).ok_or_else(|| no_id(segment, j))?;
        let bytes = shards[usize::from(j)]
            .take()
            .ok_or(WorkerError::PlanIncomplete {
                segment: segment as u64,
                shard: j,
                what: "it was not rebuilt",
            })?;
        if !verify_shard(&id, &bytes) {
            return Err(WorkerError::RebuiltMismatch {
                segment: segment as u64,
                shard: j,
            });
        }
        out.push((j, id, Bytes::from(bytes)));
    }
    Ok(out)
}

/// A plan that names shard `j` of `segment` without its id.
fn no_id(segment: usize, j: u8) -> WorkerError {
    WorkerError::PlanIncomplete {
        segment: segment as u64,
        shard: j,
        what: "it has no id",
    }
}
