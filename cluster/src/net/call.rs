//! Typed calls: the one way to ask a peer something. A typed request goes out, and a typed
//! answer or a typed [`CallError`] comes back, with the deadline applied here.
//!
//! Callers branch on the kind of failure, not on a message: a peer that answered at all
//! (even `Busy`, a refusal or a malformed answer) is alive and must not be replaced as if
//! it were down; only [`CallError::is_unreachable`] says that a peer may be gone. A
//! `Busy` answer is retried here a few times with a capped backoff before it is returned.

use std::time::Duration;

use bytes::Bytes;
use libp2p::PeerId;

use super::message::{MessageError, RemoteErrorCode, ShardRequest, ShardResponse};
use super::meta_message::{MetaRequest, MetaResponse, decode_meta_response};
use super::{NetError, NetHandle, Protocol};

/// Deadline of a call whose caller has no setting of its own (the client's shard
/// transfers, the testnet's checks): as long as the network's own request timeout.
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Attempts of a call whose peer answers `Busy` (the first one included).
pub const BUSY_ATTEMPTS_MAX: u32 = 3;
/// Pause before the first retry of a `Busy` call; it doubles, up to [`BUSY_BACKOFF_MAX`].
const BUSY_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between retries of a `Busy` call.
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(400);

/// Why a call to a peer got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request did not reach the peer, or its answer did not come back (no connection,
    /// not admitted, disconnected, stream failure), or this process is shutting down.
    #[error("{peer}: {error}")]
    Net {
        /// The peer asked.
        peer: PeerId,
        /// What the network layer said.
        error: NetError,
    },
    /// No answer before the deadline.
    #[error("{peer} did not answer within {timeout:?}")]
    Timeout {
        /// The peer asked.
        peer: PeerId,
        /// The deadline.
        timeout: Duration,
    },
    /// The peer answered with an error.
    #[error("{peer} refused: {code:?}: {detail}")]
    Remote {
        /// The peer asked.
        peer: PeerId,
        /// Its error code.
        code: RemoteErrorCode,
        /// Its short explanation.
        detail: String,
    },
    /// The answer does not decode, or is not an answer to this request.
    #[error("{peer} answered badly: {error}")]
    BadAnswer {
        /// The peer asked.
        peer: PeerId,
        /// What was wrong with it.
        error: MessageError,
    },
}

impl CallError {
    /// Whether the peer may be down: it gave no answer at all. A peer that answered, even
    /// with an error, is alive.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            // Our own queue being full, or our shutdown, says nothing about the peer.
            Self::Net { error, .. } => !matches!(error, NetError::Busy | NetError::Shutdown),
            Self::Remote { .. } | Self::BadAnswer { .. } => false,
        }
    }

    /// Whether the peer (or this process's network task) was too busy to serve the call:
    /// try again later, the peer is alive.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Remote {
                code: RemoteErrorCode::Busy,
                ..
            } | Self::Net {
                error: NetError::Busy,
                ..
            }
        )
    }

    /// The remote error code, when the peer answered with one.
    pub fn remote_code(&self) -> Option<RemoteErrorCode> {
        match self {
            Self::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Which protocol's messages a call carries, and how its answers are decoded.
trait Exchange {
    type Response;
    const PROTOCOL: Protocol;
    fn encode(&self) -> Vec<u8>;
    fn decode(&self, bytes: Vec<u8>) -> Result<Self::Response, MessageError>;
    /// The error an answer carries, if it is one.
    fn remote_error(response: &Self::Response) -> Option<(RemoteErrorCode, String)>;
}

impl Exchange for ShardRequest {
    type Response = ShardResponse;
    const PROTOCOL: Protocol = Protocol::Shard;
    fn encode(&self) -> Vec<u8> {
        ShardRequest::encode(self)
    }
    fn decode(&self, bytes: Vec<u8>) -> Result<ShardResponse, MessageError> {
        super::message::decode_shard_response(self, Bytes::from(bytes))
    }
    fn remote_error(response: &ShardResponse) -> Option<(RemoteErrorCode, String)> {
        match response {
            ShardResponse::Error { code, detail } => Some((*code, detail.clone())),
            _ => None,
        }
    }
}

impl Exchange for MetaRequest {
    type Response = MetaResponse;
    const PROTOCOL: Protocol = Protocol::Meta;
    fn encode(&self) -> Vec<u8> {
        MetaRequest::encode(self)
    }
    fn decode(&self, bytes: Vec<u8>) -> Result<MetaResponse, MessageError> {
        decode_meta_response(self, &bytes)
    }
    fn remote_error(response: &MetaResponse) -> Option<(RemoteErrorCode, String)> {
        match response {
            MetaResponse::Error { code, detail } => Some((*code, detail.clone())),
            _ => None,
        }
    }
}

async fn call<R: Exchange>(
    net: &NetHandle,
    peer: PeerId,
    request: &R,
    timeout: Duration,
) -> Result<R::Response, CallError> {
    let mut backoff = BUSY_BACKOFF;
    let mut attempt = 1;
    loop {
        let outcome = call_once(net, peer, request, timeout).await;
        match outcome {
            Err(error) if error.is_busy() && attempt < BUSY_ATTEMPTS_MAX => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn call_once<R: Exchange>(
    net: &NetHandle,
    peer: PeerId,
    request: &R,
    timeout: Duration,
) -> Result<R::Response, CallError> {
    let bytes = tokio::time::timeout(timeout, net.request(peer, R::PROTOCOL, request.encode()))
        .await
        .map_err(|_| CallError::Timeout { peer, timeout })?
        .map_err(|error| CallError::Net { peer, error })?;
    let response = request
        .decode(bytes)
        .map_err(|error| CallError::BadAnswer { peer, error })?;
    match R::remote_error(&response) {
        Some((code, detail)) => Err(CallError::Remote { peer, code, detail }),
        None => Ok(response),
    }
}

/// Sends a shard-protocol `request` to `peer` and waits at most `timeout` for each
/// attempt. An error answer comes back as [`CallError::Remote`], never as
/// `ShardResponse::Error`.
///
/// # Errors
/// [`CallError`]; a peer answering `Busy` is retried up to [`BUSY_ATTEMPTS_MAX`] times.
///
/// # Cancel safety
/// Cancel-safe: dropping the future abandons the call (the peer may still act on it).
pub async fn call_shard(
    net: &NetHandle,
    peer: PeerId,
    request: &ShardRequest,
    timeout: Duration,
) -> Result<ShardResponse, CallError> {
    call(net, peer, request, timeout).await
}

/// Sends a metadata-protocol `request` to `peer`, as [`call_shard`].
///
/// # Errors
/// [`CallError`], as [`call_shard`].
///
/// # Cancel safety
/// Cancel-safe, as [`call_shard`].
pub async fn call_meta(
    net: &NetHandle,
    peer: PeerId,
    request: &MetaRequest,
    timeout: Duration,
) -> Result<MetaResponse, CallError> {
    call(net, peer, request, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(code: RemoteErrorCode) -> CallError {
        CallError::Remote {
            peer: PeerId::random(),
            code,
            detail: String::new(),
        }
    }

    #[test]
    fn only_a_peer_that_gave_no_answer_may_be_down() {
        let peer = PeerId::random();
        let no_answer = [
            CallError::Timeout {
                peer,
                timeout: Duration::from_secs(1),
            },
            CallError::Net {
                peer,
                error: NetError::NotConnected { peer },
            },
            CallError::Net {
                peer,
                error: NetError::Disconnected { peer },
            },
        ];
        for error in &no_answer {
            assert!(error.is_unreachable(), "{error}");
        }
        let answered = [
            remote(RemoteErrorCode::Busy),
            remote(RemoteErrorCode::NotFound),
            remote(RemoteErrorCode::Internal),
            CallError::BadAnswer {
                peer,
                error: MessageError::Mismatch("test"),
            },
            // Our own queue being full says nothing about the peer.
            CallError::Net {
                peer,
                error: NetError::Busy,
            },
        ];
        for error in &answered {
            assert!(!error.is_unreachable(), "{error}");
        }
        assert!(remote(RemoteErrorCode::Busy).is_busy());
        assert!(!remote(RemoteErrorCode::NotFound).is_busy());
        assert_eq!(
            remote(RemoteErrorCode::NotFound).remote_code(),
            Some(RemoteErrorCode::NotFound)
        );
    }
}
