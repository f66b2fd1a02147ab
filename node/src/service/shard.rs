//! `/andromede/shard/1` on the node: put, get, have and delete against the shard store.
//!
//! Every request is decoded and validated first ([`decode_shard_request`]); anything
//! malformed or oversized is answered with an error and changes nothing. Store errors map
//! to protocol error codes that stay distinguishable for the requester (`NotFound`,
//! `Corrupt`, `QuotaExceeded`, `TooLarge`, `Invalid`, `Internal`).

use andromede_cluster::net::PeerRole;
use andromede_cluster::net::message::{
    MessageError, RemoteErrorCode, ShardRequest, ShardResponse, decode_shard_request,
};
use andromede_proto::DecodeError;
use bytes::Bytes;
use tracing::{debug, error, warn};

use super::grants;
use super::meta::Requester;
use crate::error::StoreError;
use crate::store::{PutOutcome, ShardStore};

/// Answers one raw request from `requester`. Blocking (disk I/O): run it on a blocking
/// thread.
pub fn handle_shard_request(
    store: &ShardStore,
    request: Bytes,
    requester: Requester<'_>,
) -> ShardResponse {
    let role = requester.role;
    let request = match decode_shard_request(request) {
        Ok(request) => request,
        Err(e) => {
            debug!(error = %e, "malformed shard request refused");
            return error_response(message_error_code(&e), e.to_string());
        }
    };
    if let (PeerRole::Client, Some(what)) = (role, request.node_only()) {
        warn!(what, "node-only shard request from a client refused");
        return error_response(
            RemoteErrorCode::Forbidden,
            format!(
                "refused: {what} is for nodes only, and the requester is certified as a client"
            ),
        );
    }
    if role == PeerRole::Client
        && let Some(detail) = grants::shard_refusal(&request, requester.grants)
    {
        debug!(%detail, "client shard request beyond its grants refused");
        return error_response(RemoteErrorCode::Forbidden, detail);
    }
    let result = match request {
        ShardRequest::Put { id, data } => store.put(&id, &data).map(|outcome| ShardResponse::Put {
            stored: outcome == PutOutcome::Stored,
        }),
        ShardRequest::Get { id } => store.get(&id).map(|data| ShardResponse::Get { data }),
        ShardRequest::Have { ids } => store
            .have(&ids)
            .map(|present| ShardResponse::Have { present }),
        ShardRequest::Delete { ids } => store
            .delete(&ids)
            .map(|deleted| ShardResponse::Delete { deleted }),
    };
    result.unwrap_or_else(|e| {
        let code = store_error_code(&e);
        if code == RemoteErrorCode::Internal {
            error!(error = %e, "shard request failed");
        }
        error_response(code, e.to_string())
    })
}

fn error_response(code: RemoteErrorCode, detail: String) -> ShardResponse {
    ShardResponse::Error { code, detail }
}

fn message_error_code(e: &MessageError) -> RemoteErrorCode {
    match e {
        MessageError::Decode(DecodeError::TooLarge { .. } | DecodeError::TooMany { .. })
        | MessageError::BatchTooLarge { .. }
        | MessageError::ShardTooLarge { .. } => RemoteErrorCode::TooLarge,
        _ => RemoteErrorCode::Invalid,
    }
}

fn store_error_code(e: &StoreError) -> RemoteErrorCode {
    match e {
        StoreError::NotFound { .. } => RemoteErrorCode::NotFound,
        StoreError::Corrupt { .. } => RemoteErrorCode::Corrupt,
        StoreError::QuotaExceeded { .. } => RemoteErrorCode::QuotaExceeded,
        StoreError::TooLarge { .. } | StoreError::BatchTooLarge { .. } => RemoteErrorCode::TooLarge,
        StoreError::IdMismatch { .. } => RemoteErrorCode::Invalid,
        _ => RemoteErrorCode::Internal,
    }
}
