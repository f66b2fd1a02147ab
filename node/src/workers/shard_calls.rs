//! Shard requests from this node's workers to any holder: the peer over
//! `/andromede/shard/1`, or this node's own store in-process when the holder is this node.
//! Every call has a deadline, every batch respects `SHARD_BATCH_IDS_MAX`, and fetched
//! bytes are checked against their id before anyone uses them.

use andromede_cluster::net::message::{ShardRequest, ShardResponse, decode_shard_response};
use andromede_cluster::net::{NetHandle, PeerId, Protocol};
use andromede_cluster::shard::hash::verify_shard;
use andromede_proto::ShardId;
use andromede_proto::limits::SHARD_BATCH_IDS_MAX;
use bytes::Bytes;
use std::time::Duration;

use crate::store::ShardStore;

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
        op: impl FnOnce(&ShardStore) -> Result<T, crate::error::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn remote_call(
        &self,
        peer: PeerId,
        request: ShardRequest,
    ) -> Result<ShardResponse, String> {
        let call = self.net.request(peer, Protocol::Shard, request.encode());
        let bytes = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("{peer} did not answer in {:?}", self.timeout))?
            .map_err(|e| format!("{peer}: {e}"))?;
        match decode_shard_response(&request, Bytes::from(bytes)) {
            Ok(ShardResponse::Error { code, detail }) => {
                Err(format!("{peer} refused: {code:?}: {detail}"))
            }
            Ok(response) => Ok(response),
            Err(e) => Err(format!("{peer} answered badly: {e}")),
        }
    }

    /// Which of `ids` `peer` holds.
    ///
    /// # Errors
    /// A description of the failure (no answer, a refusal, a malformed answer).
    pub async fn have(&self, peer: PeerId, ids: &[ShardId]) -> Result<Vec<bool>, String> {
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
                other => return Err(format!("{peer} answered a have with {other:?}")),
            }
        }
        Ok(out)
    }

    /// Shard `id` from `peer`, verified against its id.
    ///
    /// # Errors
    /// A description of the failure, including bytes that do not hash to `id`.
    pub async fn get(&self, peer: PeerId, id: ShardId) -> Result<Bytes, String> {
        let data = if peer == self.local() {
            self.local_call(move |s| s.get(&id)).await?
        } else {
            match self.remote_call(peer, ShardRequest::Get { id }).await? {
                ShardResponse::Get { data } => data,
                other => return Err(format!("{peer} answered a get with {other:?}")),
            }
        };
        if !verify_shard(&id, &data) {
            return Err(format!(
                "{peer} returned bytes that are not shard {}",
                id.short()
            ));
        }
        Ok(data)
    }

    /// Stores shard `id` on `peer` (durable when this returns).
    ///
    /// # Errors
    /// A description of the failure.
    pub async fn put(&self, peer: PeerId, id: ShardId, data: Bytes) -> Result<(), String> {
        if peer == self.local() {
            return self.local_call(move |s| s.put(&id, &data).map(drop)).await;
        }
        match self
            .remote_call(peer, ShardRequest::Put { id, data })
            .await?
        {
            ShardResponse::Put { .. } => Ok(()),
            other => Err(format!("{peer} answered a put with {other:?}")),
        }
    }

    /// Deletes `ids` from `peer`; returns how many it held.
    ///
    /// # Errors
    /// A description of the failure.
    pub async fn delete(&self, peer: PeerId, ids: &[ShardId]) -> Result<u64, String> {
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
                other => return Err(format!("{peer} answered a delete with {other:?}")),
            }
        }
        Ok(deleted)
    }
}
