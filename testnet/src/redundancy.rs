//! Invariant 3 from outside: for every object of a bucket, each segment's shards are
//! asked of the holders its manifest names, and counted healthy only when a running node
//! holds them — by `Have` (the holder's index: cheap), or with [`Depth::Read`] by fetching
//! each shard and checking it against its id (finds rotten shards no scrub has seen yet). A segment is fully redundant with `k + m` healthy shards on
//! distinct nodes (or on as many nodes as exist, when there are fewer).

use std::collections::{BTreeMap, BTreeSet};

use andromede_client::{Client, ListOptions};
use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::net::call::CALL_TIMEOUT_DEFAULT;
use andromede_cluster::net::message::{ShardRequest, ShardResponse};
use andromede_cluster::net::{PeerId, call_shard};
use andromede_cluster::shard::hash::verify_shard;
use andromede_proto::ShardId;
use andromede_proto::limits::SHARD_BATCH_IDS_MAX;
use serde::{Deserialize, Serialize};

/// Redundancy of a bucket's segments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redundancy {
    /// Objects looked at.
    pub objects: u64,
    /// Segments looked at (inline objects have none).
    pub segments: u64,
    /// Segments with `k + m` healthy shards, spread as widely as the nodes allow.
    pub full: u64,
    /// Segments missing shards (or doubled up) but readable.
    pub degraded: u64,
    /// Segments with fewer than `k` healthy shards.
    pub lost: u64,
    /// Objects whose manifest could not be read.
    pub unreadable: u64,
}

impl Redundancy {
    /// Whether every segment is fully redundant and every manifest readable.
    pub fn is_full(&self) -> bool {
        self.full == self.segments && self.unreadable == 0
    }
}

/// How hard to look at each shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Ask whether the holder has it.
    Have,
    /// Fetch it and check its bytes against its id.
    Read,
}

/// Whether `peer` returns the bytes of each of `ids`.
async fn read(client: &Client, peer: PeerId, ids: &[ShardId]) -> Vec<bool> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let request = ShardRequest::Get { id: *id };
        let answer = call_shard(client.net(), peer, &request, CALL_TIMEOUT_DEFAULT).await;
        out.push(matches!(
            answer,
            Ok(ShardResponse::Get { data }) if verify_shard(id, &data)
        ));
    }
    out
}

/// Which of `ids` `peer` holds (none when it does not answer).
async fn have(client: &Client, peer: PeerId, ids: &[ShardId]) -> Vec<bool> {
    let mut out = Vec::with_capacity(ids.len());
    let batch = usize::try_from(SHARD_BATCH_IDS_MAX).unwrap_or(usize::MAX);
    for chunk in ids.chunks(batch) {
        let request = ShardRequest::Have {
            ids: chunk.to_vec(),
        };
        let answer = call_shard(client.net(), peer, &request, CALL_TIMEOUT_DEFAULT).await;
        match answer {
            Ok(ShardResponse::Have { present }) if present.len() == chunk.len() => {
                out.extend(present);
            }
            _ => out.extend(std::iter::repeat_n(false, chunk.len())),
        }
    }
    out
}

/// Adds the segments of `manifest` to `into`, given the peers that run (`running`).
pub async fn check_manifest(
    client: &Client,
    manifest: &Manifest,
    running: &BTreeSet<PeerId>,
    depth: Depth,
    into: &mut Redundancy,
) {
    let Body::Segments(segments) = &manifest.body else {
        return;
    };
    let k = usize::from(manifest.params.k());
    let shard_count = manifest.params.shard_count();
    // Per segment and index: the holder, if it parses and runs.
    let mut cells: BTreeMap<PeerId, Vec<(usize, usize, ShardId)>> = BTreeMap::new();
    for (s, segment) in (0u64..).zip(segments) {
        for (j, id) in (0u8..).zip(&segment.shard_ids) {
            let holder = manifest
                .holder(s, j)
                .and_then(|h| PeerId::from_bytes(h).ok())
                .filter(|p| running.contains(p));
            if let Some(peer) = holder {
                let s = usize::try_from(s).unwrap_or(usize::MAX);
                cells
                    .entry(peer)
                    .or_default()
                    .push((s, usize::from(j), *id));
            }
        }
    }
    let mut healthy: Vec<BTreeSet<PeerId>> = vec![BTreeSet::new(); segments.len()];
    let mut count: Vec<usize> = vec![0; segments.len()];
    for (peer, list) in cells {
        let ids: Vec<ShardId> = list.iter().map(|c| c.2).collect();
        let present = match depth {
            Depth::Have => have(client, peer, &ids).await,
            Depth::Read => read(client, peer, &ids).await,
        };
        for ((s, _, _), present) in list.into_iter().zip(present) {
            if present {
                count[s] += 1;
                healthy[s].insert(peer);
            }
        }
    }
    let spread = shard_count.min(running.len());
    for s in 0..segments.len() {
        into.segments += 1;
        if count[s] == shard_count && healthy[s].len() >= spread {
            into.full += 1;
        } else if count[s] >= k {
            into.degraded += 1;
        } else {
            into.lost += 1;
        }
    }
}

/// The redundancy of every object of `bucket`.
///
/// # Errors
/// When the bucket cannot be listed.
pub async fn check_bucket(
    client: &Client,
    bucket: &str,
    running: &BTreeSet<PeerId>,
    depth: Depth,
) -> anyhow::Result<Redundancy> {
    let mut out = Redundancy::default();
    let mut options = ListOptions {
        max_keys: 1000,
        ..ListOptions::default()
    };
    loop {
        let page = client.list_objects(bucket, &options).await?;
        for object in &page.objects {
            out.objects += 1;
            match client.object_manifest(bucket, &object.key).await {
                Ok(manifest) => {
                    check_manifest(client, &manifest, running, depth, &mut out).await;
                }
                Err(_) => out.unreadable += 1,
            }
        }
        if !page.is_truncated {
            return Ok(out);
        }
        options.continuation_token = page.next_continuation_token;
    }
}
