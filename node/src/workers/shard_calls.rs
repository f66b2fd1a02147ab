//! Shard requests from this node's workers to any holder: the peer over
//! `/andromede/shard/1`, or this node's own store in-process when the holder is this node.
//! Every call has a deadline, every batch respects `SHARD_BATCH_IDS_MAX`, and fetched
//! bytes are checked against their id before anyone uses them.

use andromede_cluster::net::message::{RemoteErrorCode, ShardRequest, ShardResponse};
use andromede_cluster::net::{CallError, NetHandle, PeerId, call_shard};
use andromede_cluster::shard::hash::verify_shard;
use andromede_proto::ShardId;
use andromede_proto::limits::SHARD_BATCH_IDS_MAX;
use bytes::Bytes;
use std::time::Duration;

use crate::error::StoreError;
use crate::store::ShardStore;

/// Why a shard call failed. Repair and the collectors branch on it: a shard the holder
/// does not have is not a holder that cannot be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardCallError {
    /// The peer was asked and did not give the answer (see [`CallError`]).
    #[error(transparent)]
    Call(#[from] CallError),
    /// This node's own shard store failed.
    #[error("this node's shard store: {0}")]
    Local(#[from] StoreError),
    /// This node's blocking store task failed.
    #[error("this node's shard store task failed: {0}")]
    Task(String),
    /// The peer sent bytes that do not hash to the shard asked for.
    #[error("{peer} returned bytes that are not shard {id}")]
    WrongBytes {
        /// Who sent them.
        peer: PeerId,
        /// The shard asked for, shortened.
        id: String,
    },
}

impl ShardCallError {
    /// Whether the holder answered that it does not hold the shard.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Call(error) => error.remote_code() == Some(RemoteErrorCode::NotFound),
            Self::Local(StoreError::NotFound { .. }) => true,
            _ => false,
        }
    }

    /// Whether the holder gave no answer at all (it may be down).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Call(error) if error.is_unreachable())
    }
}

/// Shard calls with a deadline each.
#[derive(Debug, Clone)]
pub struct ShardCalls {
    net: NetHandle,
    store: ShardStore,
    timeout: Duration,
}

fn batch_len() -> usize {
    usize::try_from(SHARD_BATCH_IDS_MAX).unwrap_or(usize::MAX)
}

impl ShardCalls {
    /// Calls through `net`, this node's own shards served from `store`.
    pub fn new(net: NetHandle, store: ShardStore, timeout: Duration) -> Self {
        Self {
            net,
            store,
            timeout,
        }
    }

    /// The network these calls go through.
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    /// This node's peer id.
    pub fn local(&self) -> PeerId {
        self.net.local_peer_id()
    }

    async fn local_call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&ShardStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ShardCallError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| ShardCallError::Task(e.to_string()))??)
    }

    async fn remote_call(
        &self,
        peer: PeerId,
        request: ShardRequest,
    ) -> Result<ShardResponse, ShardCallError> {
        Ok(call_shard(&self.net, peer, &request, self.timeout).await?)
    }

    /// Which of `ids` `peer` holds.
    ///
    /// # Errors
    /// [`ShardCallError`]: no answer, a refusal, a malformed answer.
    pub async fn have(&self, peer: PeerId, ids: &[ShardId]) -> Result<Vec<bool>, ShardCallError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(batch_len()) {
            if peer == self.local() {
                let chunk = chunk.to_vec();
                out.extend(self.local_call(move |s| s.have(&chunk)).await?);
                continue;
            }
            let request = ShardRequest::Have {
                ids: chunk.to_vec(),
            };
            match self.remote_call(peer, request).await? {
                ShardResponse::Have { present } => out.extend(present),
                other => return Err(mismatch(peer, other)),
            }
        }
        Ok(out)
    }

    /// Shard `id` from `peer`, verified against its id.
    ///
    /// # Errors
    /// [`ShardCallError`], [`ShardCallError::WrongBytes`] for bytes that do not hash to `id`.
    pub async fn get(&self, peer: PeerId, id: ShardId) -> Result<Bytes, ShardCallError> {
        let data = if peer == self.local() {
            self.local_call(move |s| s.get(&id)).await?
        } else {
            match self.remote_call(peer, ShardRequest::Get { id }).await? {
                ShardResponse::Get { data } => data,
                other => return Err(mismatch(peer, other)),
            }
        };
        if !verify_shard(&id, &data) {
            return Err(ShardCallError::WrongBytes {
                peer,
                id: id.short(),
            });
        }
        Ok(data)
    }

    /// Stores shard `id` on `peer` (durable when this returns).
    ///
    /// # Errors
    /// [`ShardCallError`].
    pub async fn put(&self, peer: PeerId, id: ShardId, data: Bytes) -> Result<(), ShardCallError> {
        if peer == self.local() {
            return self.local_call(move |s| s.put(&id, &data).map(drop)).await;
        }
        match self
            .remote_call(peer, ShardRequest::Put { id, data })
            .await?
        {
            ShardResponse::Put { .. } => Ok(()),
            other => Err(mismatch(peer, other)),
        }
    }

    /// Deletes `ids` from `peer`; returns how many it held.
    ///
    /// # Errors
    /// [`ShardCallError`].
    pub async fn delete(&self, peer: PeerId, ids: &[ShardId]) -> Result<u64, ShardCallError> {
        let mut deleted = 0u64;
        for chunk in ids.chunks(batch_len()) {
            if peer == self.local() {
                let chunk = chunk.to_vec();
                deleted += u64::from(self.local_call(move |s| s.delete(&chunk)).await?);
                continue;
            }
            let request = ShardRequest::Delete {
                ids: chunk.to_vec(),
            };
            match self.remote_call(peer, request).await? {
                ShardResponse::Delete { deleted: count } => deleted += u64::from(count),
                other => return Err(mismatch(peer, other)),
            }
        }
        Ok(deleted)
    }
}

/// An answer of another kind than the request's (the decoder refuses those; kept as an
/// error rather than a panic).
fn mismatch(peer: PeerId, _answer: ShardResponse) -> ShardCallError {
    ShardCallError::Call(CallError::BadAnswer {
        peer,
        error: andromede_cluster::net::message::MessageError::Mismatch(
            "an answer of another kind than the request",
        ),
    })
}
