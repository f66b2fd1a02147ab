//! Last-writer-wins records. Every metadata write (bucket, object index entry, manifest
//! pointer) carries a [`Version`]: its hybrid-logical timestamp, then the writer's id to
//! break ties. Replicas keep, for each key, the record with the greatest version; merging
//! is commutative, associative and idempotent, so replicas converge whatever order writes
//! and anti-entropy arrive in. A deletion is a record too (a tombstone), so a replica that
//! missed the delete cannot resurrect the value.
//!
//! Every record also carries a [`Seal`]: its author's certificate and signature (see
//! [`super::seal`]), so that a replica can withhold a record but never forge one or roll
//! one back.

use std::sync::Arc;

use andromede_proto::limits::{META_RECORD_BYTES_MAX, META_VALUE_BYTES_MAX, RECORD_CAUSES_MAX};
use andromede_proto::{DecodeError, Message, decode_bounded, pb};
use bytes::Bytes;

use super::hlc::Timestamp;
use super::key::{RecordKey, RecordKeyError};

/// A record with its key: what replicas exchange, and what a seal's causes are.
pub type KeyedRecord = (RecordKey, Record<Bytes>);

/// Who wrote a record, as they signed it (DESIGN.md, "Metadata").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The author's certificate as the authority signed it (checked by the verifier).
    pub author: pb::Certificate,
    /// The author's ed25519 signature (see [`super::seal::signed_message`]).
    pub signature: Bytes,
    /// For a record a node writes for itself: the client-signed records that justify it
    /// (at most [`RECORD_CAUSES_MAX`], without causes of their own).
    pub causes: Vec<KeyedRecord>,
}

impl Seal {
    fn to_pb(&self) -> pb::RecordSeal {
        pb::RecordSeal {
            author: Some(self.author.clone()),
            signature: self.signature.clone(),
            causes: self.causes.iter().map(keyed_to_pb).collect(),
        }
    }

    fn from_pb(pb: pb::RecordSeal, nested: bool) -> Result<Self, RecordError> {
        let author = pb
            .author
            .ok_or(RecordError::Seal("no author certificate"))?;
        if pb.causes.len() as u64 > RECORD_CAUSES_MAX || (nested && !pb.causes.is_empty()) {
            return Err(RecordError::Seal(
                "too many causes (at most 2, and a cause has none)",
            ));
        }
        let causes = pb
            .causes
            .into_iter()
            .map(|keyed| {
                let key = RecordKey::from_parts(keyed.table, keyed.partition, &keyed.sort)?;
                let record = keyed
                    .record
                    .ok_or(RecordError::Seal("a cause without record"))?;
                Ok((key, Record::from_pb_nested(record, true)?))
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        let cause_bytes: u64 = causes
            .iter()
            .map(|(_, r): &KeyedRecord| r.value.as_ref().map_or(0, |v| v.len() as u64))
            .sum();
        if cause_bytes > META_VALUE_BYTES_MAX {
            return Err(RecordError::Seal("causes larger than one record value"));
        }
        Ok(Self {
            author,
            signature: pb.signature,
            causes,
        })
    }
}

/// The protobuf form of a keyed record.
pub fn keyed_to_pb((key, record): &KeyedRecord) -> pb::KeyedRecord {
    pb::KeyedRecord {
        table: key.table as u32,
        partition: key.partition.clone(),
        sort: Bytes::copy_from_slice(&key.sort),
        record: Some(record.to_pb()),
    }
}

/// Longest writer id (a libp2p peer id is at most 42 bytes).
pub const WRITER_ID_BYTES_MAX: usize = 64;

/// Who wrote a version, to break ties between equal timestamps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriterId(Bytes);

/// A writer id was empty or longer than [`WRITER_ID_BYTES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("writer id of {bytes} bytes is invalid (1 to {WRITER_ID_BYTES_MAX} bytes)")]
pub struct WriterIdError {
    /// Its length.
    pub bytes: usize,
}

impl WriterId {
    /// Validates a writer id.
    ///
    /// # Errors
    /// [`WriterIdError`] if empty or too long.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, WriterIdError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > WRITER_ID_BYTES_MAX {
            return Err(WriterIdError { bytes: bytes.len() });
        }
        Ok(Self(bytes))
    }

    /// The raw id.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The version of a record: compared by timestamp, then by writer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// When (in hybrid logical time).
    pub timestamp: Timestamp,
    /// By whom.
    pub writer: WriterId,
}

impl Version {
    /// The protobuf form.
    pub fn to_pb(&self) -> pb::RecordVersion {
        pb::RecordVersion {
            wall_ms: self.timestamp.wall_ms,
            logical: self.timestamp.logical,
            writer: self.writer.0.clone(),
        }
    }

    /// Validates a version in protobuf form.
    ///
    /// # Errors
    /// [`RecordError::Writer`] for a bad writer id.
    pub fn from_pb(pb: pb::RecordVersion) -> Result<Self, RecordError> {
        Ok(Self {
            timestamp: Timestamp {
                wall_ms: pb.wall_ms,
                logical: pb.logical,
            },
            writer: WriterId::new(pb.writer)?,
        })
    }
}

/// A value or a tombstone, at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T> {
    /// The version of this write.
    pub version: Version,
    /// The value; `None` records a deletion.
    pub value: Option<T>,
    /// Its author and signature; `None` only before the writer signs it.
    pub seal: Option<Arc<Seal>>,
}

impl<T> Record<T> {
    /// A live value (unsigned).
    pub fn live(version: Version, value: T) -> Self {
        Self {
            version,
            value: Some(value),
            seal: None,
        }
    }

    /// A deletion (unsigned).
    pub fn tombstone(version: Version) -> Self {
        Self {
            version,
            value: None,
            seal: None,
        }
    }

    /// Whether this records a deletion.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// The record that wins: the one with the greater version (`a` on equal versions, which
/// carry the same write).
pub fn merge<T>(a: Record<T>, b: Record<T>) -> Record<T> {
    if b.version > a.version { b } else { a }
}

/// Merges an optional current record with an incoming one; returns the winner and whether
/// the incoming record replaced what was held (so a replica knows to persist it).
pub fn merge_into<T>(current: Option<Record<T>>, incoming: Record<T>) -> (Record<T>, bool) {
    match current {
        Some(current) if current.version >= incoming.version => (current, false),
        _ => (incoming, true),
    }
}

/// Why a stored or received record was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Oversize or malformed protobuf.
    #[error("metadata record: {0}")]
    Decode(DecodeError),
    /// No version.
    #[error("metadata record has no version")]
    NoVersion,
    /// A bad writer id.
    #[error(transparent)]
    Writer(#[from] WriterIdError),
    /// A malformed seal.
    #[error("metadata record seal: {0}")]
    Seal(&'static str),
    /// A cause's key breaks a rule.
    #[error("metadata record cause: {0}")]
    CauseKey(#[from] RecordKeyError),
    /// A tombstone that carries a value, or a value over the limit.
    #[error(
        "metadata record value of {bytes} bytes is invalid (tombstones carry none; limit {bytes_max})"
    )]
    Value {
        /// Its size.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
}

impl Record<Bytes> {
    /// The client-signed record at `key` that this one is, or keeps the content of: a
    /// node's holder update carries the manifest it updates as its cause. What a node
    /// that rewrites the record again carries as its cause.
    pub fn origin(&self, key: &RecordKey) -> KeyedRecord {
        self.seal
            .as_deref()
            .and_then(|seal| seal.causes.iter().find(|(cause_key, _)| cause_key == key))
            .cloned()
            .unwrap_or_else(|| (key.clone(), self.clone()))
    }

    /// The protobuf form (for embedding in protocol messages).
    pub fn to_pb(&self) -> pb::MetaRecord {
        pb::MetaRecord {
            version: Some(self.version.to_pb()),
            tombstone: self.value.is_none(),
            value: self.value.clone().unwrap_or_default(),
            seal: self.seal.as_deref().map(Seal::to_pb),
        }
    }

    /// Validates a record in protobuf form (its shape; [`super::seal::RecordVerifier`]
    /// checks its seal).
    ///
    /// # Errors
    /// [`RecordError`] for a missing version, a bad writer, a bad value or seal.
    pub fn from_pb(pb: pb::MetaRecord) -> Result<Self, RecordError> {
        Self::from_pb_nested(pb, false)
    }

    fn from_pb_nested(pb: pb::MetaRecord, nested: bool) -> Result<Self, RecordError> {
        let version = pb.version.ok_or(RecordError::NoVersion)?;
        let bad_value =
            (pb.tombstone && !pb.value.is_empty()) || pb.value.len() as u64 > META_VALUE_BYTES_MAX;
        if bad_value {
            return Err(RecordError::Value {
                bytes: pb.value.len() as u64,
                bytes_max: META_VALUE_BYTES_MAX,
            });
        }
        let seal = match pb.seal {
            Some(seal) => Some(Arc::new(Seal::from_pb(seal, nested)?)),
            None => None,
        };
        Ok(Self {
            version: Version::from_pb(version)?,
            value: (!pb.tombstone).then_some(pb.value),
            seal,
        })
    }

    /// The persisted form.
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    /// Decodes and validates a record read from disk or received from a peer.
    ///
    /// # Errors
    /// [`RecordError`] for anything malformed or oversized.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let limit = usize::try_from(META_RECORD_BYTES_MAX).unwrap_or(usize::MAX);
        Self::from_pb(decode_bounded(bytes, limit).map_err(RecordError::Decode)?)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn version(wall_ms: u64, logical: u32, writer: u8) -> Version {
        Version {
            timestamp: Timestamp { wall_ms, logical },
            writer: WriterId::new(vec![writer]).unwrap(),
        }
    }

    #[test]
    fn later_version_wins_and_writer_breaks_ties() {
        let a = Record::live(version(10, 0, 1), "a");
        let b = Record::tombstone(version(10, 1, 0));
        assert!(merge(a.clone(), b.clone()).is_tombstone());
        let c = Record::live(version(10, 1, 2), "c");
        assert_eq!(merge(b.clone(), c.clone()).value, Some("c"));
        let (winner, replaced) = merge_into(Some(c.clone()), b);
        assert_eq!(winner, c);
        assert!(!replaced);
        let (_, replaced) = merge_into(None, a);
        assert!(replaced);
    }

    #[test]
    fn records_round_trip_and_malformed_ones_are_refused() {
        let live = Record::live(version(5, 1, 3), Bytes::from_static(b"value"));
        assert_eq!(Record::decode(&live.encode()).unwrap(), live);
        let dead: Record<Bytes> = Record::tombstone(version(6, 0, 3));
        assert_eq!(Record::decode(&dead.encode()).unwrap(), dead);
        let no_version = pb::MetaRecord {
            version: None,
            tombstone: true,
            value: Bytes::new(),
            seal: None,
        };
        assert!(matches!(
            Record::decode(&no_version.encode_to_vec()),
            Err(RecordError::NoVersion)
        ));
        let zombie = pb::MetaRecord {
            version: Some(pb::RecordVersion {
                wall_ms: 1,
                logical: 0,
                writer: Bytes::from_static(b"w"),
            }),
            tombstone: true,
            value: Bytes::from_static(b"x"),
            seal: None,
        };
        assert!(matches!(
            Record::decode(&zombie.encode_to_vec()),
            Err(RecordError::Value { .. })
        ));
        let anonymous = pb::MetaRecord {
            version: Some(pb::RecordVersion {
                wall_ms: 1,
                logical: 0,
                writer: Bytes::new(),
            }),
            tombstone: false,
            value: Bytes::new(),
            seal: None,
        };
        assert!(matches!(
            Record::decode(&anonymous.encode_to_vec()),
            Err(RecordError::Writer(_))
        ));
        assert!(matches!(
            Record::decode(&[0xff; 3]),
            Err(RecordError::Decode(_))
        ));
    }

    #[test]
    fn writer_ids_are_bounded() {
        assert!(WriterId::new(Vec::new()).is_err());
        assert!(WriterId::new(vec![0u8; 65]).is_err());
        assert!(WriterId::new(vec![0u8; 64]).is_ok());
    }

    fn record() -> impl Strategy<Value = Record<u8>> {
        (0u8..4, 0u8..3, 0u8..3).prop_map(|(wall, logical, writer)| {
            // One writer never writes two things at one version: derive the record from
            // the version so that equal versions carry equal records.
            let v = version(u64::from(wall), u32::from(logical), writer);
            if (wall + logical + writer) % 3 == 0 {
                Record::tombstone(v)
            } else {
                Record::live(v, wall ^ (logical << 2) ^ (writer << 4))
            }
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_and_idempotent(a in record(), b in record(), c in record()) {
            prop_assert_eq!(merge(a.clone(), b.clone()), merge(b.clone(), a.clone()));
            prop_assert_eq!(
                merge(merge(a.clone(), b.clone()), c.clone()),
                merge(a.clone(), merge(b.clone(), c.clone()))
            );
            prop_assert_eq!(merge(a.clone(), a.clone()), a);
        }

        #[test]
        fn replicas_converge_whatever_the_arrival_order(mut writes in proptest::collection::vec(record(), 1..12)) {
            let forward = writes.iter().cloned().fold(None, |held, w| Some(merge_into(held, w).0));
            writes.reverse();
            let backward = writes.iter().cloned().fold(None, |held, w| Some(merge_into(held, w).0));
            prop_assert_eq!(forward, backward);
        }
    }
}
