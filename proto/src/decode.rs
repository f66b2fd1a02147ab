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
    /// The wire form is broken where the repeated-field count looked.
    #[error("malformed protobuf message: {0}")]
    Wire(&'static str),
    /// A repeated field occurs more often than its limit allows (counted on the wire,
    /// before anything is built: empty elements cost 2 bytes there and far more in
    /// memory).
    #[error("{what}: more than {count_max} elements")]
    TooMany {
        /// Which field.
        what: &'static str,
        /// Its limit.
        count_max: u64,
    },
}

/// How often a repeated field of a message may occur: the field is found by its `path`
/// of field numbers from the top-level message (through embedded messages and oneof
/// members), and occurrences are counted across every enclosing element.
#[derive(Debug, Clone, Copy)]
pub struct RepeatedLimit {
    /// Field numbers from the outer message down to the repeated field.
    pub path: &'static [u32],
    /// Occurrences allowed at most.
    pub count_max: u64,
    /// What the field holds, for the error.
    pub what: &'static str,
}

/// Checks every limit in `limits` against the wire form `bytes`, without building
/// anything.
///
/// # Errors
/// [`DecodeError::TooMany`], or [`DecodeError::Wire`] / [`DecodeError::Malformed`] for
/// bytes that are not a protobuf encoding.
pub fn check_repeated(bytes: &[u8], limits: &[RepeatedLimit]) -> Result<(), DecodeError> {
    for limit in limits {
        let mut count = 0;
        count_occurrences(bytes, limit.path, limit.count_max, &mut count)?;
        if count > limit.count_max {
            return Err(DecodeError::TooMany {
                what: limit.what,
                count_max: limit.count_max,
            });
        }
    }
    Ok(())
}

/// Adds to `count` the occurrences of `path` in `bytes`, stopping once past `stop_above`.
fn count_occurrences(
    mut bytes: &[u8],
    path: &[u32],
    stop_above: u64,
    count: &mut u64,
) -> Result<(), DecodeError> {
    use prost::encoding::decode_varint;
    let Some((&field, rest)) = path.split_first() else {
        return Ok(());
    };
    let malformed = DecodeError::Wire;
    while !bytes.is_empty() && *count <= stop_above {
        let key = decode_varint(&mut bytes).map_err(DecodeError::Malformed)?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number too large"))?;
        match key & 7 {
            0 => {
                decode_varint(&mut bytes).map_err(DecodeError::Malformed)?;
            }
            1 => {
                bytes = bytes
                    .get(8..)
                    .ok_or_else(|| malformed("truncated fixed64"))?
            }
            5 => {
                bytes = bytes
                    .get(4..)
                    .ok_or_else(|| malformed("truncated fixed32"))?
            }
            2 => {
                let len = decode_varint(&mut bytes).map_err(DecodeError::Malformed)?;
                let len = usize::try_from(len).map_err(|_| malformed("length too large"))?;
                let value = bytes
                    .get(..len)
                    .ok_or_else(|| malformed("truncated field"))?;
                bytes = &bytes[len..];
                if number == field {
                    if rest.is_empty() {
                        *count += 1;
                    } else {
                        count_occurrences(value, rest, stop_above, count)?;
                    }
                }
            }
            _ => return Err(malformed("unsupported wire type")),
        }
    }
    Ok(())
}

/// [`decode_bounded`], with the occurrences of repeated fields checked against `limits`
/// before the message is built.
///
/// # Errors
/// As [`decode_bounded`] and [`check_repeated`].
pub fn decode_bounded_counted<T: Message + Default>(
    bytes: &[u8],
    bytes_max: usize,
    limits: &[RepeatedLimit],
) -> Result<T, DecodeError> {
    check_size(bytes.len(), bytes_max)?;
    check_repeated(bytes, limits)?;
    T::decode(bytes).map_err(DecodeError::Malformed)
}

/// [`decode_bounded_shared`] with [`check_repeated`] first.
///
/// # Errors
/// As [`decode_bounded_shared`] and [`check_repeated`].
pub fn decode_bounded_shared_counted<T: Message + Default>(
    bytes: prost::bytes::Bytes,
    bytes_max: usize,
    limits: &[RepeatedLimit],
) -> Result<T, DecodeError> {
    check_size(bytes.len(), bytes_max)?;
    check_repeated(&bytes, limits)?;
    T::decode(bytes).map_err(DecodeError::Malformed)
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

    const HAVE_IDS: RepeatedLimit = RepeatedLimit {
        path: &[3, 1],
        count_max: 4,
        what: "shard ids",
    };

    #[test]
    fn repeated_fields_are_counted_on_the_wire_before_decoding() {
        let have = |n: usize| {
            pb::ShardRequest {
                request: Some(pb::shard_request::Request::Have(pb::HaveShards {
                    ids: vec![prost::bytes::Bytes::new(); n],
                })),
            }
            .encode_to_vec()
        };
        assert!(decode_bounded_counted::<pb::ShardRequest>(&have(4), 1 << 20, &[HAVE_IDS]).is_ok());
        assert!(matches!(
            decode_bounded_counted::<pb::ShardRequest>(&have(5), 1 << 20, &[HAVE_IDS]),
            Err(DecodeError::TooMany { count_max: 4, .. })
        ));
        // Nested: shard ids of every segment of a manifest count together.
        let manifest = pb::Manifest {
            body: Some(pb::manifest::Body::Segments(pb::SegmentList {
                segments: vec![
                    pb::Segment {
                        plain_bytes: 1,
                        shard_ids: vec![prost::bytes::Bytes::new(); 3],
                    };
                    2
                ],
            })),
            ..pb::Manifest::default()
        }
        .encode_to_vec();
        let ids = |count_max| RepeatedLimit {
            path: &[13, 1, 2],
            count_max,
            what: "shard ids",
        };
        assert!(check_repeated(&manifest, &[ids(6)]).is_ok());
        assert!(check_repeated(&manifest, &[ids(5)]).is_err());
        // A message of 8 MiB of empty elements is refused without being built.
        let flood = have(4 << 20);
        assert!(matches!(
            decode_bounded_counted::<pb::ShardRequest>(&flood, 64 << 20, &[HAVE_IDS]),
            Err(DecodeError::TooMany { .. })
        ));
        assert!(matches!(
            check_repeated(&[0x1a, 0x05, 0x0a], &[HAVE_IDS]),
            Err(DecodeError::Wire(_))
        ));
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
