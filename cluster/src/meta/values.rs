//! The values of metadata records, as validated domain types: what a bucket record, an
//! object index entry and a garbage record hold. Replicas store them as opaque bytes;
//! every reader decodes and checks them here, because replicas are not trusted.

use andromede_proto::limits::{CONTENT_TYPE_BYTES_MAX, SEALED_ETAG_BYTES_MAX, TAG_BYTES_MAX};
use andromede_proto::{DecodeError, Message, VersionId, decode_bounded, pb};
use bytes::Bytes;

use crate::shard::ErasureParams;

/// Most jurisdictions a bucket policy lists.
pub const BUCKET_JURISDICTIONS_MAX: usize = 32;

/// Largest encoded value of a bucket, index or garbage record.
const VALUE_BYTES_MAX: usize = 8 * 1024;

/// A record value that does not decode or breaks a rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Oversize or malformed protobuf.
    #[error("metadata value: {0}")]
    Decode(#[from] DecodeError),
    /// A field out of its allowed range.
    #[error("metadata value: {0}")]
    Invalid(String),
}

/// A bucket's settings, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// The erasure code of its objects.
    pub params: ErasureParams,
    /// Jurisdictions its shards may be placed in; empty means any.
    pub jurisdictions: Vec<String>,
    /// When it was created (ms since the Unix epoch).
    pub created_ms: u64,
}

impl BucketInfo {
    /// Checks the policy's limits.
    ///
    /// # Errors
    /// [`ValueError::Invalid`] naming the rule broken.
    pub fn validate(&self) -> Result<(), ValueError> {
        if self.jurisdictions.len() > BUCKET_JURISDICTIONS_MAX {
            return Err(ValueError::Invalid(format!(
                "{} jurisdictions listed, at most {BUCKET_JURISDICTIONS_MAX}",
                self.jurisdictions.len()
            )));
        }
        if self
            .jurisdictions
            .iter()
            .any(|j| j.is_empty() || j.len() as u64 > TAG_BYTES_MAX)
        {
            return Err(ValueError::Invalid(format!(
                "a jurisdiction must be 1 to {TAG_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    /// The stored form.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::BucketInfo {
                k: u32::from(self.params.k()),
                m: u32::from(self.params.m()),
                jurisdictions: self.jurisdictions.clone(),
                created_ms: self.created_ms,
            }
            .encode_to_vec(),
        )
    }

    /// Decodes and validates a stored bucket record.
    ///
    /// # Errors
    /// [`ValueError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ValueError> {
        let pb: pb::BucketInfo = decode_bounded(bytes, VALUE_BYTES_MAX)?;
        let info = Self {
            params: ErasureParams::new(pb.k, pb.m)
                .map_err(|e| ValueError::Invalid(e.to_string()))?,
            jurisdictions: pb.jurisdictions,
            created_ms: pb.created_ms,
        };
        info.validate()?;
        Ok(info)
    }
}

/// The latest version of an object key, with what listings show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The version's id (its manifest's key).
    pub version_id: VersionId,
    /// Plaintext bytes.
    pub size: u64,
    /// The manifest's etag.
    pub etag: [u8; 32],
    /// When it was written (ms since the Unix epoch).
    pub modified_ms: u64,
    /// MIME type.
    pub content_type: String,
    /// The listing ETag, sealed by the writer (empty when none); opaque to nodes.
    pub sealed_etag: Bytes,
}

impl ObjectEntry {
    /// The stored form.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::ObjectEntry {
                version_id: Bytes::copy_from_slice(self.version_id.as_bytes()),
                size: self.size,
                etag: Bytes::copy_from_slice(&self.etag),
                modified_ms: self.modified_ms,
                content_type: self.content_type.clone(),
                sealed_etag: self.sealed_etag.clone(),
            }
            .encode_to_vec(),
        )
    }

    /// Decodes and validates a stored index entry.
    ///
    /// # Errors
    /// [`ValueError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ValueError> {
        let pb: pb::ObjectEntry = decode_bounded(bytes, VALUE_BYTES_MAX)?;
        if pb.content_type.len() as u64 > CONTENT_TYPE_BYTES_MAX {
            return Err(ValueError::Invalid("content type too long".into()));
        }
        if pb.sealed_etag.len() as u64 > SEALED_ETAG_BYTES_MAX {
            return Err(ValueError::Invalid("sealed etag too long".into()));
        }
        Ok(Self {
            version_id: VersionId::try_from(pb.version_id.as_ref())
                .map_err(|e| ValueError::Invalid(e.to_string()))?,
            size: pb.size,
            etag: pb
                .etag
                .as_ref()
                .try_into()
                .map_err(|_| ValueError::Invalid("etag must be 32 bytes".into()))?,
            modified_ms: pb.modified_ms,
            content_type: pb.content_type,
            sealed_etag: pb.sealed_etag,
        })
    }
}

/// When a replaced or deleted version's shards and manifest may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarbageEntry {
    /// Not before this (ms since the Unix epoch).
    pub due_ms: u64,
    /// The object key whose version it was (the collector checks that the key's index
    /// entry no longer names the version).
    pub key: String,
    /// The record names a multipart upload (its id is the sort key), not a version.
    pub upload: bool,
}

impl GarbageEntry {
    /// The stored form.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::GarbageEntry {
                due_ms: self.due_ms,
                key: self.key.clone(),
                upload: self.upload,
            }
            .encode_to_vec(),
        )
    }

    /// Decodes a stored garbage record.
    ///
    /// # Errors
    /// [`ValueError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ValueError> {
        let pb: pb::GarbageEntry = decode_bounded(bytes, VALUE_BYTES_MAX)?;
        Ok(Self {
            due_ms: pb.due_ms,
            key: pb.key,
            upload: pb.upload,
        })
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    /// When it was created (ms since the Unix epoch).
    pub initiated_ms: u64,
    /// The object's MIME type.
    pub content_type: String,
    /// The object's metadata, sealed by the client; opaque to nodes.
    pub sealed_metadata: Bytes,
}

impl UploadEntry {
    /// The stored form.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::UploadEntry {
                initiated_ms: self.initiated_ms,
                content_type: self.content_type.clone(),
                sealed_metadata: self.sealed_metadata.clone(),
            }
            .encode_to_vec(),
        )
    }

    /// Decodes a stored upload record.
    ///
    /// # Errors
    /// [`ValueError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ValueError> {
        let pb: pb::UploadEntry = decode_bounded(bytes, VALUE_BYTES_MAX)?;
        if pb.content_type.len() as u64 > CONTENT_TYPE_BYTES_MAX {
            return Err(ValueError::Invalid("content type too long".into()));
        }
        Ok(Self {
            initiated_ms: pb.initiated_ms,
            content_type: pb.content_type,
            sealed_metadata: pb.sealed_metadata,
        })
    }
}

/// The latest version uploaded for one part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEntry {
    /// The part's version (its manifest's key).
    pub version_id: VersionId,
    /// Plaintext bytes.
    pub size: u64,
    /// When it was uploaded (ms since the Unix epoch).
    pub modified_ms: u64,
    /// Its ETag, sealed by the client.
    pub sealed_etag: Bytes,
}

impl PartEntry {
    /// The stored form.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::PartEntry {
                version_id: Bytes::copy_from_slice(self.version_id.as_bytes()),
                size: self.size,
                modified_ms: self.modified_ms,
                sealed_etag: self.sealed_etag.clone(),
            }
            .encode_to_vec(),
        )
    }

    /// Decodes a stored part record.
    ///
    /// # Errors
    /// [`ValueError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ValueError> {
        let pb: pb::PartEntry = decode_bounded(bytes, VALUE_BYTES_MAX)?;
        if pb.sealed_etag.len() as u64 > SEALED_ETAG_BYTES_MAX {
            return Err(ValueError::Invalid("sealed etag too long".into()));
        }
        Ok(Self {
            version_id: VersionId::try_from(pb.version_id.as_ref())
                .map_err(|e| ValueError::Invalid(e.to_string()))?,
            size: pb.size,
            modified_ms: pb.modified_ms,
            sealed_etag: pb.sealed_etag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_ones_are_refused() {
        let bucket = BucketInfo {
            params: ErasureParams::new(4, 2).unwrap(),
            jurisdictions: vec!["FR".into()],
            created_ms: 7,
        };
        assert_eq!(BucketInfo::decode(&bucket.encode()).unwrap(), bucket);
        let entry = ObjectEntry {
            version_id: VersionId([3; 16]),
            size: 12,
            etag: [9; 32],
            modified_ms: 5,
            content_type: "text/plain".into(),
            sealed_etag: Bytes::from_static(b"sealed"),
        };
        assert_eq!(ObjectEntry::decode(&entry.encode()).unwrap(), entry);
        let mut long = entry.clone();
        long.sealed_etag = Bytes::from(vec![0; 129]);
        assert!(ObjectEntry::decode(&long.encode()).is_err());
        let garbage = GarbageEntry {
            due_ms: 99,
            key: "photos/a.jpg".into(),
            upload: true,
        };
        assert_eq!(GarbageEntry::decode(&garbage.encode()).unwrap(), garbage);
        let upload = UploadEntry {
            initiated_ms: 3,
            content_type: "text/plain".into(),
            sealed_metadata: Bytes::from_static(b"sealed"),
        };
        assert_eq!(UploadEntry::decode(&upload.encode()).unwrap(), upload);
        let part = PartEntry {
            version_id: VersionId([4; 16]),
            size: 5 << 20,
            modified_ms: 9,
            sealed_etag: Bytes::from_static(b"etag"),
        };
        assert_eq!(PartEntry::decode(&part.encode()).unwrap(), part);
        let mut long_part = part.clone();
        long_part.sealed_etag = Bytes::from(vec![0; 129]);
        assert!(PartEntry::decode(&long_part.encode()).is_err());

        let zero_k = pb::BucketInfo {
            k: 0,
            m: 1,
            ..pb::BucketInfo::default()
        };
        assert!(BucketInfo::decode(&zero_k.encode_to_vec()).is_err());
        let short_version = pb::ObjectEntry {
            version_id: Bytes::from_static(b"short"),
            etag: Bytes::from(vec![0; 32]),
            ..pb::ObjectEntry::default()
        };
        assert!(ObjectEntry::decode(&short_version.encode_to_vec()).is_err());
        assert!(ObjectEntry::decode(&[0xff; 3]).is_err());
    }
}
