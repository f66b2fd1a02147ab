//! Bounded protobuf decoding: the size check happens before prost sees a single byte, so a
//! peer cannot make us allocate or parse more than the limit of the message kind.

use prost::Message;

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the limit for its message kind.
    #[error("message of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    TooLarge {
        /// Size of the refused input.
        bytes: u64,
        /// The limit it exceeded.
        bytes_max: u64,
    },
    /// The input is not a valid protobuf encoding of the expected message.
    #[error("malformed protobuf message: {0}")]
    Malformed(prost::DecodeError),
}

/// Decodes `bytes` as a `T`, refusing input longer than `bytes_max`.
///
/// Every decode in the workspace goes through this function (fuzz targets too).
///
/// # Errors
/// [`DecodeError::TooLarge`] before any parsing if `bytes` is too long;
/// [`DecodeError::Malformed`] if prost rejects the encoding.
pub fn decode_bounded<T: Message + Default>(
    bytes: &[u8],
    bytes_max: usize,
) -> Result<T, DecodeError> {
    check_size(bytes.len(), bytes_max)?;
    T::decode(bytes).map_err(DecodeError::Malformed)
}

/// [`decode_bounded`] from a shared buffer: the message's `bytes` fields point into
/// `bytes` instead of being copied out of it (shard payloads are megabytes).
///
/// # Errors
/// As [`decode_bounded`].
pub fn decode_bounded_shared<T: Message + Default>(
    bytes: prost::bytes::Bytes,
    bytes_max: usize,
) -> Result<T, DecodeError> {
    check_size(bytes.len(), bytes_max)?;
    T::decode(bytes).map_err(DecodeError::Malformed)
}

fn check_size(bytes: usize, bytes_max: usize) -> Result<(), DecodeError> {
    if bytes > bytes_max {
        return Err(DecodeError::TooLarge {
            bytes: bytes as u64,
            bytes_max: bytes_max as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn refuses_oversize_input_before_parsing() {
        let bytes = vec![0u8; 100];
        let err = decode_bounded::<pb::GetShard>(&bytes, 99).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::TooLarge {
                bytes: 100,
                bytes_max: 99
            }
        ));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        // Field 1, wire type 2 (length-delimited), declared length 200 but nothing follows.
        let err = decode_bounded::<pb::GetShard>(&[0x0a, 0xc8, 0x01], 1024).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
        // A varint that never terminates.
        let err = decode_bounded::<pb::Manifest>(&[0x08, 0xff, 0xff, 0xff], 1024).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
    }

    #[test]
    fn round_trips_a_request() {
        let request = pb::ShardRequest {
            request: Some(pb::shard_request::Request::Get(pb::GetShard {
                id: vec![7u8; 32].into(),
            })),
        };
        let bytes = request.encode_to_vec();
        let back: pb::ShardRequest = decode_bounded(&bytes, bytes.len()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn shared_decode_points_into_the_buffer_and_keeps_the_limit() {
        let request = pb::PutShard {
            id: vec![7u8; 32].into(),
            data: vec![9u8; 4096].into(),
        };
        let wire = prost::bytes::Bytes::from(request.encode_to_vec());
        let range = wire.as_ptr_range();
        let back: pb::PutShard = decode_bounded_shared(wire.clone(), wire.len()).unwrap();
        assert_eq!(back, request);
        assert!(
            range.contains(&back.data.as_ptr()),
            "the payload was copied out of the frame"
        );
        let err = decode_bounded_shared::<pb::PutShard>(wire.clone(), wire.len() - 1).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
    }
}
