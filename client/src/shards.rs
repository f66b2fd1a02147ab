//! Shards over the network: a [`ShardSink`] that stores shard `j` of every segment on
//! holder `j` of a placement, and a [`ShardSource`] that fetches it back from there. Both
//! talk `/andromede/shard/1` through a [`NetHandle`]; the codec verifies every byte it gets
//! back, so a lying or rotten holder only costs a parity fetch.
//!
//! When a holder fails during an upload, its shard of that segment and of every later one
//! goes to the next spare peer in placement order, and the change is recorded as a
//! [`HolderMove`] for the manifest; earlier segments stay where they were stored (durably).

use std::sync::Mutex;

use andromede_proto::ShardId;
use bytes::Bytes;
use futures::future::try_join_all;
use libp2p::PeerId;
use tracing::{debug, warn};

use crate::codec::{EncodedShard, ShardSink, ShardSource};
use crate::error::BoxError;
use andromede_cluster::manifest::{HolderMove, Manifest};
use andromede_cluster::net::call::CALL_TIMEOUT_DEFAULT;
use andromede_cluster::net::message::{ShardRequest, ShardResponse};
use andromede_cluster::net::{CallError, NetHandle, call_shard};

/// Why a holder did not store or return a shard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HolderError {
    /// The placement has no holder for this shard index.
    #[error("no holder for shard {shard_index}")]
    NoHolder {
        /// The shard index.
        shard_index: usize,
    },
    /// The holder answered with an error or an unexpected answer.
    #[error("holder {peer} refused shard {shard_index}: {detail}")]
    Refused {
        /// The holder.
        peer: PeerId,
        /// The shard index.
        shard_index: usize,
        /// What it said.
        detail: String,
    },
    /// Every holder tried for a shard failed and no spare peer is left.
    #[error(
        "shard {shard_index} of segment {segment} could not be stored: every candidate peer failed (last: {last})"
    )]
    NoSpare {
        /// The shard index.
        shard_index: usize,
        /// The segment.
        segment: u64,
        /// The last failure.
        last: String,
    },
}

#[derive(Debug, Default)]
struct Holders {
    /// Holder `j` of the placement (`None`: a manifest named a peer that does not parse).
    primary: Vec<Option<PeerId>>,
    /// Moves, in the order they happened.
    moves: Vec<(u64, u8, Option<PeerId>)>,
    /// Peers to fail over to, next first.
    spares: Vec<PeerId>,
    /// Peers that failed during this upload: never chosen again.
    failed: Vec<PeerId>,
}

impl Holders {
    /// The placement a manifest names.
    fn of(manifest: &Manifest) -> Self {
        let parse = |bytes: &Bytes| PeerId::from_bytes(bytes).ok();
        Self {
            primary: manifest.holders.iter().map(parse).collect(),
            moves: manifest
                .moves
                .iter()
                .map(|m| (m.from_segment, m.shard_index, parse(&m.holder)))
                .collect(),
            spares: Vec::new(),
            failed: Vec::new(),
        }
    }

    fn holder(&self, segment: u64, shard_index: u8) -> Option<PeerId> {
        self.moves
            .iter()
            .rev()
            .find(|(from, j, _)| *j == shard_index && *from <= segment)
            .map(|(_, _, peer)| *peer)
            .unwrap_or_else(|| {
                self.primary
                    .get(usize::from(shard_index))
                    .copied()
                    .flatten()
            })
    }
}

/// The holders of one object version: holder `j` keeps shard `j` of every segment, except
/// where a move says otherwise.
#[derive(Debug)]
pub struct NetShards {
    net: NetHandle,
    holders: Mutex<Holders>,
    /// Where the version's writer placed its shards, when a node has rewritten the
    /// holders since (repair, rebalance — or a rogue node pointing them elsewhere): a
    /// fetch that fails at the current holder is tried there too.
    written_to: Option<Holders>,
}

impl NetShards {
    /// Shards of a version placed on `holders` (in shard order), failing over to `spares`
    /// (next first) when a holder fails during an upload. Spares may include holders
    /// (after the peers that hold nothing): in a cluster with no peer to spare, a shard
    /// then doubles up on a live holder rather than failing the upload.
    pub fn for_upload(net: NetHandle, holders: Vec<PeerId>, spares: Vec<PeerId>) -> Self {
        Self {
            net,
            holders: Mutex::new(Holders {
                primary: holders.into_iter().map(Some).collect(),
                moves: Vec::new(),
                spares,
                failed: Vec::new(),
            }),
            written_to: None,
        }
    }

    /// Shards of a version placed on `holders`, without spares.
    pub fn new(net: NetHandle, holders: Vec<PeerId>) -> Self {
        Self::for_upload(net, holders, Vec::new())
    }

    /// The shards of a committed version, where its manifest says they are, and where
    /// its writer put them (`written`, the client-signed manifest, when a node has
    /// rewritten the holders since).
    pub fn for_manifest(net: NetHandle, manifest: &Manifest, written: Option<&Manifest>) -> Self {
        Self {
            net,
            holders: Mutex::new(Holders::of(manifest)),
            written_to: written.map(Holders::of),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Holders> {
        // Holders are plain data updated in single statements: a panic cannot tear them.
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The placement to write into the manifest: holders, and the moves made meanwhile.
    pub fn placement(&self) -> (Vec<Bytes>, Vec<HolderMove>) {
        let holders = self.lock();
        let bytes = |peer: &Option<PeerId>| peer.map(|p| Bytes::from(p.to_bytes()));
        (
            holders.primary.iter().filter_map(bytes).collect(),
            holders
                .moves
                .iter()
                .filter_map(|(from, j, peer)| {
                    Some(HolderMove {
                        from_segment: *from,
                        shard_index: *j,
                        holder: bytes(peer)?,
                    })
                })
                .collect(),
        )
    }

    /// Peers that failed during this upload (holders replaced by a move).
    pub fn replaced_holders(&self) -> usize {
        self.lock().moves.len()
    }

    fn holder(&self, segment: u64, shard_index: u8) -> Result<PeerId, HolderError> {
        self.lock()
            .holder(segment, shard_index)
            .ok_or(HolderError::NoHolder {
                shard_index: usize::from(shard_index),
            })
    }

    async fn call(
        &self,
        peer: PeerId,
        shard_index: u8,
        request: ShardRequest,
    ) -> Result<ShardResponse, BoxError> {
        match call_shard(&self.net, peer, &request, CALL_TIMEOUT_DEFAULT).await {
            Err(CallError::Remote { code, detail, .. }) => Err(Box::new(HolderError::Refused {
                peer,
                shard_index: usize::from(shard_index),
                detail: format!("{code:?}: {detail}"),
            })),
            other => Ok(other?),
        }
    }

    /// Stores one shard on its holder, failing over to spares.
    async fn put_one(
        &self,
        segment: u64,
        shard_index: u8,
        shard: &EncodedShard,
    ) -> Result<(), BoxError> {
        let mut peer = self.holder(segment, shard_index)?;
        loop {
            let request = ShardRequest::Put {
                id: shard.id,
                data: shard.bytes.clone(),
            };
            let error = match self.call(peer, shard_index, request).await {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            // Segments are stored one after another and each index once per segment, so
            // nothing else moves this index meanwhile.
            let mut holders = self.lock();
            if !holders.failed.contains(&peer) {
                holders.failed.push(peer);
            }
            let failed = holders.failed.clone();
            holders.spares.retain(|p| !failed.contains(p));
            let Some(spare) = holders.spares.first().copied() else {
                return Err(Box::new(HolderError::NoSpare {
                    shard_index: usize::from(shard_index),
                    segment,
                    last: error.to_string(),
                }));
            };
            // A spare that is not yet a holder takes this index alone; holders stay
            // spares for others (a peer may hold several shards in a small cluster).
            if !holders.primary.contains(&Some(spare)) {
                holders.spares.remove(0);
            }
            warn!(%peer, %spare, shard_index, segment, %error, "holder failed; shard goes to the next peer");
            holders.moves.push((segment, shard_index, Some(spare)));
            peer = spare;
        }
    }
}

impl ShardSink for NetShards {
    async fn put_segment(&self, segment: u64, shards: &[EncodedShard]) -> Result<(), BoxError> {
        // All shards of the segment go out in parallel; each holder fsyncs before it answers.
        try_join_all(shards.iter().enumerate().map(|(j, shard)| {
            let j = u8::try_from(j).unwrap_or(u8::MAX);
            self.put_one(segment, j, shard)
        }))
        .await?;
        Ok(())
    }
}

impl ShardSource for NetShards {
    async fn fetch(&self, segment: u64, shard_index: u8, id: ShardId) -> Result<Bytes, BoxError> {
        let peer = self.holder(segment, shard_index)?;
        let error = match self.fetch_from(peer, shard_index, id).await {
            Ok(data) => return Ok(data),
            Err(error) => error,
        };
        // The shard's first holder, if a node has named another since: the bytes are
        // checked against the shard id, wherever they come from.
        match self
            .written_to
            .as_ref()
            .and_then(|written| written.holder(segment, shard_index))
        {
            Some(first) if first != peer => {
                debug!(%peer, %first, shard_index, segment, %error, "shard not at its holder; trying where it was written");
                self.fetch_from(first, shard_index, id).await
            }
            _ => Err(error),
        }
    }
}

impl NetShards {
    async fn fetch_from(
        &self,
        peer: PeerId,
        shard_index: u8,
        id: ShardId,
    ) -> Result<Bytes, BoxError> {
        match self
            .call(peer, shard_index, ShardRequest::Get { id })
            .await?
        {
            ShardResponse::Get { data } => Ok(data),
            other => Err(Box::new(HolderError::Refused {
                peer,
                shard_index: usize::from(shard_index),
                detail: format!("unexpected answer {other:?}"),
            })),
        }
    }
}
