//! Shards over the network: a [`ShardSink`] that stores shard `j` of every segment on
//! holder `j` of a placement, and a [`ShardSource`] that fetches it back from there. Both
//! talk `/andromede/shard/1` through a [`NetHandle`]; the codec verifies every byte it gets
//! back, so a lying or rotten holder only costs a parity fetch.

use andromede_proto::ShardId;
use bytes::Bytes;
use futures::future::try_join_all;
use libp2p::PeerId;

use super::message::{ShardRequest, ShardResponse, decode_shard_response};
use super::{NetHandle, Protocol};
use crate::codec::{EncodedShard, ShardSink, ShardSource};
use crate::error::BoxError;

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
}

/// The holders of one object version: holder `j` keeps shard `j` of every segment.
#[derive(Debug, Clone)]
pub struct NetShards {
    net: NetHandle,
    holders: Vec<PeerId>,
}

impl NetShards {
    /// Shards of a version placed on `holders` (in shard order).
    pub fn new(net: NetHandle, holders: Vec<PeerId>) -> Self {
        Self { net, holders }
    }

    fn holder(&self, shard_index: usize) -> Result<PeerId, HolderError> {
        self.holders
            .get(shard_index)
            .copied()
            .ok_or(HolderError::NoHolder { shard_index })
    }

    async fn call(
        &self,
        shard_index: usize,
        request: ShardRequest,
    ) -> Result<ShardResponse, BoxError> {
        let peer = self.holder(shard_index)?;
        let bytes = self
            .net
            .request(peer, Protocol::Shard, request.encode())
            .await?;
        let response = decode_shard_response(&request, &bytes)?;
        if let ShardResponse::Error { code, detail } = &response {
            return Err(Box::new(HolderError::Refused {
                peer,
                shard_index,
                detail: format!("{code:?}: {detail}"),
            }));
        }
        Ok(response)
    }
}

impl ShardSink for NetShards {
    async fn put_segment(&self, _segment: u64, shards: &[EncodedShard]) -> Result<(), BoxError> {
        // All shards of the segment go out in parallel; each holder fsyncs before it answers.
        try_join_all(shards.iter().enumerate().map(|(shard_index, shard)| {
            self.call(
                shard_index,
                ShardRequest::Put {
                    id: shard.id,
                    data: shard.bytes.clone(),
                },
            )
        }))
        .await?;
        Ok(())
    }
}

impl ShardSource for NetShards {
    async fn fetch(&self, _segment: u64, shard_index: u8, id: ShardId) -> Result<Bytes, BoxError> {
        match self
            .call(usize::from(shard_index), ShardRequest::Get { id })
            .await?
        {
            ShardResponse::Get { data } => Ok(data),
            other => Err(Box::new(HolderError::Refused {
                peer: self.holder(usize::from(shard_index))?,
                shard_index: usize::from(shard_index),
                detail: format!("unexpected answer {other:?}"),
            })),
        }
    }
}
