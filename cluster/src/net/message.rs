//! `/andromede/shard/1` messages as validated domain types. Bytes from a peer become a
//! [`ShardRequest`] or [`ShardResponse`] only through the `decode_*` functions here, which
//! bound the size before parsing and check every id length and batch limit; generated
//! prost types never leave this module.

use andromede_proto::limits::{SHARD_BATCH_IDS_MAX, SHARD_BYTES_MAX, SHARD_MESSAGE_BYTES_MAX};
use andromede_proto::pb::{self, shard_request, shard_response};
use andromede_proto::{
    DecodeError, IdLengthError, Message, RepeatedLimit, ShardId, decode_bounded_shared,
    decode_bounded_shared_counted,
};
use bytes::Bytes;

/// Why a shard message was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Oversize or malformed protobuf.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A shard id of the wrong length.
    #[error(transparent)]
    IdLength(#[from] IdLengthError),
    /// The message carries no request or response.
    #[error("shard message has no body")]
    Empty,
    /// More ids than one batch may carry.
    #[error("batch of {count} ids exceeds the limit of {count_max}")]
    BatchTooLarge {
        /// Ids in the batch.
        count: u64,
        /// The limit.
        count_max: u64,
    },
    /// A shard larger than any segment geometry allows.
    #[error("shard of {bytes} bytes exceeds the limit of {bytes_max}")]
    ShardTooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// A node tag (zone, jurisdiction) over its limit.
    #[error("node {field} of {bytes} bytes exceeds the limit of {bytes_max}")]
    TagTooLong {
        /// Which tag.
        field: &'static str,
        /// Its length.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// A metadata record key that breaks a rule.
    #[error(transparent)]
    Key(#[from] crate::meta::key::RecordKeyError),
    /// A metadata record that breaks a rule.
    #[error(transparent)]
    Record(#[from] crate::meta::record::RecordError),
    /// An answer that does not match its request (count of flags, kind of answer).
    #[error("answer does not match the request: {0}")]
    Mismatch(&'static str),
    /// A `have` answer whose bitmap does not match the request.
    #[error("have answer covers {bits} ids, {expected} were asked")]
    HaveLength {
        /// Ids the bitmap can cover.
        bits: u64,
        /// Ids requested.
        expected: u64,
    },
}

/// A request of the shard protocol.
#[derive(Clone, PartialEq, Eq)]
pub enum ShardRequest {
    /// Store a shard durably; idempotent.
    Put {
        /// The claimed id; the receiver verifies it.
        id: ShardId,
        /// The shard.
        data: Bytes,
    },
    /// Fetch a shard.
    Get {
        /// Which one.
        id: ShardId,
    },
    /// Which of these are held?
    Have {
        /// At most `SHARD_BATCH_IDS_MAX`.
        ids: Vec<ShardId>,
    },
    /// Delete these if held.
    Delete {
        /// At most `SHARD_BATCH_IDS_MAX`.
        ids: Vec<ShardId>,
    },
}

impl std::fmt::Debug for ShardRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Put { id, data } => write!(f, "Put({}, {} bytes)", id.short(), data.len()),
            Self::Get { id } => write!(f, "Get({})", id.short()),
            Self::Have { ids } => write!(f, "Have({} ids)", ids.len()),
            Self::Delete { ids } => write!(f, "Delete({} ids)", ids.len()),
        }
    }
}

/// Error codes a node answers with; unknown codes are kept, not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteErrorCode {
    /// Not held.
    NotFound,
    /// Held but failed verification, now quarantined.
    Corrupt,
    /// Overloaded.
    Busy,
    /// No room.
    QuotaExceeded,
    /// Over a limit.
    TooLarge,
    /// Malformed request.
    Invalid,
    /// The node's own failure.
    Internal,
    /// Not allowed to the requester's role.
    Forbidden,
    /// A code this build does not know.
    Unknown(i32),
}

impl From<i32> for RemoteErrorCode {
    fn from(code: i32) -> Self {
        match pb::ErrorCode::try_from(code) {
            Ok(pb::ErrorCode::NotFound) => Self::NotFound,
            Ok(pb::ErrorCode::Corrupt) => Self::Corrupt,
            Ok(pb::ErrorCode::Busy) => Self::Busy,
            Ok(pb::ErrorCode::QuotaExceeded) => Self::QuotaExceeded,
            Ok(pb::ErrorCode::TooLarge) => Self::TooLarge,
            Ok(pb::ErrorCode::Invalid) => Self::Invalid,
            Ok(pb::ErrorCode::Internal) => Self::Internal,
            Ok(pb::ErrorCode::Forbidden) => Self::Forbidden,
            Ok(pb::ErrorCode::Unspecified) | Err(_) => Self::Unknown(code),
        }
    }
}

impl From<RemoteErrorCode> for i32 {
    fn from(code: RemoteErrorCode) -> Self {
        let pb_code = match code {
            RemoteErrorCode::NotFound => pb::ErrorCode::NotFound,
            RemoteErrorCode::Corrupt => pb::ErrorCode::Corrupt,
            RemoteErrorCode::Busy => pb::ErrorCode::Busy,
            RemoteErrorCode::QuotaExceeded => pb::ErrorCode::QuotaExceeded,
            RemoteErrorCode::TooLarge => pb::ErrorCode::TooLarge,
            RemoteErrorCode::Invalid => pb::ErrorCode::Invalid,
            RemoteErrorCode::Internal => pb::ErrorCode::Internal,
            RemoteErrorCode::Forbidden => pb::ErrorCode::Forbidden,
            RemoteErrorCode::Unknown(code) => return code,
        };
        pb_code.into()
    }
}

/// An answer of the shard protocol.
#[derive(Clone, PartialEq, Eq)]
pub enum ShardResponse {
    /// The put is durable; `stored` is false when the shard was already held.
    Put {
        /// Whether this put wrote the shard.
        stored: bool,
    },
    /// The shard's bytes (the requester verifies them).
    Get {
        /// The shard.
        data: Bytes,
    },
    /// One flag per requested id, in order.
    Have {
        /// Presence flags.
        present: Vec<bool>,
    },
    /// How many of the ids were deleted.
    Delete {
        /// Count deleted.
        deleted: u32,
    },
    /// The request failed.
    Error {
        /// Why, as a code to branch on.
        code: RemoteErrorCode,
        /// Human-readable detail.
        detail: String,
    },
}

impl std::fmt::Debug for ShardResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Put { stored } => write!(f, "Put(stored: {stored})"),
            Self::Get { data } => write!(f, "Get({} bytes)", data.len()),
            Self::Have { present } => write!(f, "Have({} flags)", present.len()),
            Self::Delete { deleted } => write!(f, "Delete({deleted})"),
            Self::Error { code, detail } => write!(f, "Error({code:?}, {detail})"),
        }
    }
}

fn parse_ids(ids: &[Bytes]) -> Result<Vec<ShardId>, MessageError> {
    if ids.len() as u64 > SHARD_BATCH_IDS_MAX {
        return Err(MessageError::BatchTooLarge {
            count: ids.len() as u64,
            count_max: SHARD_BATCH_IDS_MAX,
        });
    }
    Ok(ids
        .iter()
        .map(|id| ShardId::try_from(id.as_ref()))
        .collect::<Result<_, _>>()?)
}

fn id_bytes(ids: &[ShardId]) -> Vec<Bytes> {
    ids.iter()
        .map(|id| Bytes::copy_from_slice(id.as_bytes()))
        .collect()
}

fn check_shard_bytes(data: &Bytes) -> Result<(), MessageError> {
    if data.len() as u64 > SHARD_BYTES_MAX {
        return Err(MessageError::ShardTooLarge {
            bytes: data.len() as u64,
            bytes_max: SHARD_BYTES_MAX,
        });
    }
    Ok(())
}

fn message_limit() -> usize {
    usize::try_from(SHARD_MESSAGE_BYTES_MAX).unwrap_or(usize::MAX)
}

/// Decodes and validates a request received from a peer.
///
/// # Errors
/// Any [`MessageError`]; nothing is partially accepted.
pub fn decode_shard_request(bytes: Bytes) -> Result<ShardRequest, MessageError> {
    // Id lists are counted on the wire first: 64 MiB of empty ids would cost gigabytes.
    const LIMITS: &[RepeatedLimit] = &[
        RepeatedLimit {
            path: &[3, 1],
            count_max: SHARD_BATCH_IDS_MAX,
            what: "shard ids in a have request",
        },
        RepeatedLimit {
            path: &[4, 1],
            count_max: SHARD_BATCH_IDS_MAX,
            what: "shard ids in a delete request",
        },
    ];
    let pb: pb::ShardRequest = decode_bounded_shared_counted(bytes, message_limit(), LIMITS)?;
    match pb.request.ok_or(MessageError::Empty)? {
        shard_request::Request::Put(put) => {
            check_shard_bytes(&put.data)?;
            Ok(ShardRequest::Put {
                id: ShardId::try_from(put.id.as_ref())?,
                data: put.data,
            })
        }
        shard_request::Request::Get(get) => Ok(ShardRequest::Get {
            id: ShardId::try_from(get.id.as_ref())?,
        }),
        shard_request::Request::Have(have) => Ok(ShardRequest::Have {
            ids: parse_ids(&have.ids)?,
        }),
        shard_request::Request::Delete(delete) => Ok(ShardRequest::Delete {
            ids: parse_ids(&delete.ids)?,
        }),
    }
}

impl ShardRequest {
    /// The node-only request this is, if it is one: clients store and fetch shards, and
    /// may ask whether a holder still has shards they could fetch (`andromede audit`);
    /// deleting shards is the cluster's maintenance, refused from a client certificate
    /// (DESIGN.md, "Trust model").
    pub fn node_only(&self) -> Option<&'static str> {
        match self {
            Self::Put { .. } | Self::Get { .. } | Self::Have { .. } => None,
            Self::Delete { .. } => Some("deleting shards"),
        }
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let request = match self {
            Self::Put { id, data } => shard_request::Request::Put(pb::PutShard {
                id: Bytes::copy_from_slice(id.as_bytes()),
                data: data.clone(),
            }),
            Self::Get { id } => shard_request::Request::Get(pb::GetShard {
                id: Bytes::copy_from_slice(id.as_bytes()),
            }),
            Self::Have { ids } => {
                shard_request::Request::Have(pb::HaveShards { ids: id_bytes(ids) })
            }
            Self::Delete { ids } => {
                shard_request::Request::Delete(pb::DeleteShards { ids: id_bytes(ids) })
            }
        };
        pb::ShardRequest {
            request: Some(request),
        }
        .encode_to_vec()
    }
}

/// Decodes and validates the answer to `request`.
///
/// # Errors
/// Any [`MessageError`], including a `have` bitmap of the wrong length.
pub fn decode_shard_response(
    request: &ShardRequest,
    bytes: Bytes,
) -> Result<ShardResponse, MessageError> {
    let pb: pb::ShardResponse = decode_bounded_shared(bytes, message_limit())?;
    match pb.response.ok_or(MessageError::Empty)? {
        shard_response::Response::Error(e) => Ok(ShardResponse::Error {
            code: RemoteErrorCode::from(e.code),
            detail: e.detail,
        }),
        shard_response::Response::Put(put) => Ok(ShardResponse::Put { stored: put.stored }),
        shard_response::Response::Get(get) => {
            check_shard_bytes(&get.data)?;
            Ok(ShardResponse::Get { data: get.data })
        }
        shard_response::Response::Have(have) => {
            let expected = match request {
                ShardRequest::Have { ids } => ids.len(),
                _ => 0,
            };
            if have.present.len() != expected.div_ceil(8) {
                return Err(MessageError::HaveLength {
                    bits: have.present.len() as u64 * 8,
                    expected: expected as u64,
                });
            }
            let present = (0..expected)
                .map(|i| {
                    have.present
                        .get(i / 8)
                        .is_some_and(|byte| byte >> (i % 8) & 1 == 1)
                })
                .collect();
            Ok(ShardResponse::Have { present })
        }
        shard_response::Response::Delete(delete) => Ok(ShardResponse::Delete {
            deleted: delete.deleted,
        }),
    }
}

impl ShardResponse {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let response = match self {
            Self::Put { stored } => {
                shard_response::Response::Put(pb::PutShardDone { stored: *stored })
            }
            Self::Get { data } => {
                shard_response::Response::Get(pb::ShardData { data: data.clone() })
            }
            Self::Have { present } => {
                let mut bitmap = vec![0u8; present.len().div_ceil(8)];
                for (i, _) in present.iter().enumerate().filter(|(_, p)| **p) {
                    bitmap[i / 8] |= 1 << (i % 8);
                }
                shard_response::Response::Have(pb::HaveResult {
                    present: bitmap.into(),
                })
            }
            Self::Delete { deleted } => {
                shard_response::Response::Delete(pb::DeleteResult { deleted: *deleted })
            }
            Self::Error { code, detail } => shard_response::Response::Error(pb::Error {
                code: (*code).into(),
                detail: detail.clone(),
            }),
        };
        pb::ShardResponse {
            response: Some(response),
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let id = ShardId([3; 32]);
        for request in [
            ShardRequest::Put {
                id,
                data: Bytes::from_static(b"abc"),
            },
            ShardRequest::Get { id },
            ShardRequest::Have { ids: vec![id; 10] },
            ShardRequest::Delete { ids: vec![] },
        ] {
            assert_eq!(
                decode_shard_request(Bytes::from(request.encode())).unwrap(),
                request
            );
        }
    }

    #[test]
    fn have_bitmap_round_trips_and_is_length_checked() {
        let request = ShardRequest::Have {
            ids: vec![ShardId([1; 32]); 11],
        };
        let present: Vec<bool> = (0..11).map(|i| i % 3 == 0).collect();
        let response = ShardResponse::Have {
            present: present.clone(),
        };
        assert_eq!(
            decode_shard_response(&request, Bytes::from(response.encode())).unwrap(),
            response
        );
        let short = ShardResponse::Have {
            present: vec![true; 3],
        };
        assert!(matches!(
            decode_shard_response(&request, Bytes::from(short.encode())),
            Err(MessageError::HaveLength { .. })
        ));
    }

    #[test]
    fn unknown_error_codes_are_kept() {
        let bytes = pb::ShardResponse {
            response: Some(shard_response::Response::Error(pb::Error {
                code: 99,
                detail: "x".into(),
            })),
        }
        .encode_to_vec();
        let request = ShardRequest::Get {
            id: ShardId([0; 32]),
        };
        assert!(matches!(
            decode_shard_response(&request, Bytes::from(bytes)).unwrap(),
            ShardResponse::Error {
                code: RemoteErrorCode::Unknown(99),
                ..
            }
        ));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let short_id = pb::ShardRequest {
            request: Some(shard_request::Request::Get(pb::GetShard {
                id: vec![1u8; 31].into(),
            })),
        };
        assert!(matches!(
            decode_shard_request(Bytes::from(short_id.encode_to_vec())),
            Err(MessageError::IdLength(_))
        ));
        assert!(matches!(
            decode_shard_request(Bytes::new()),
            Err(MessageError::Empty)
        ));
        let too_many = pb::ShardRequest {
            request: Some(shard_request::Request::Have(pb::HaveShards {
                ids: vec![Bytes::from(vec![0u8; 32]); 1025],
            })),
        };
        assert!(matches!(
            decode_shard_request(Bytes::from(too_many.encode_to_vec())),
            Err(MessageError::Decode(DecodeError::TooMany {
                count_max: 1024,
                ..
            }))
        ));
        assert!(matches!(
            decode_shard_request(Bytes::from_static(&[0xff, 0xff, 0xff])),
            Err(MessageError::Decode(_))
        ));
    }
}
