//! Inline bodies and user metadata: small pieces sealed with the data key and kept inside
//! the manifest, bound to bucket, object key and version.

use std::collections::BTreeMap;

use andromede_proto::limits::USER_METADATA_BYTES_MAX;
use andromede_proto::{Message, VersionId, decode_bounded, pb};

use super::ObjectName;
use super::seal::{self, Purpose};
use crate::error::CodecError;
use crate::keys::DataKey;

/// Associated data of a piece kept in the manifest: bucket, key and version.
fn manifest_aad(purpose: Purpose, object: &ObjectName, version: &VersionId) -> Vec<u8> {
    seal::object_aad(purpose, &object.bucket, &object.key, version, &[])
}

/// Seals `body` (which holds the nonce space then the plaintext) in place.
pub(super) fn seal_body(
    key: &DataKey,
    object: &ObjectName,
    version: &VersionId,
    body: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let aad = manifest_aad(Purpose::Inline, object, version);
    seal::seal_in_place(key, &aad, body)
}

/// Opens an inline body.
pub(super) fn open_body(
    key: &DataKey,
    object: &ObjectName,
    version: &VersionId,
    sealed: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let aad = manifest_aad(Purpose::Inline, object, version);
    seal::open(key, &aad, sealed).ok_or(CodecError::SegmentAuthentication { segment: 0 })
}

/// Encodes and seals user metadata; empty output when there is none.
pub(super) fn seal_user_metadata(
    key: &DataKey,
    object: &ObjectName,
    version: &VersionId,
    entries: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CodecError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let plain = pb::UserMetadata {
        entries: entries.clone(),
    }
    .encode_to_vec();
    if plain.len() as u64 > USER_METADATA_BYTES_MAX {
        return Err(CodecError::TooLarge {
            field: "user metadata",
            bytes: plain.len() as u64,
            bytes_max: USER_METADATA_BYTES_MAX,
        });
    }
    let aad = manifest_aad(Purpose::UserMetadata, object, version);
    seal::seal(key, &aad, &plain)
}

/// Opens user metadata sealed by [`seal_user_metadata`].
pub(super) fn open_user_metadata(
    key: &DataKey,
    object: &ObjectName,
    version: &VersionId,
    sealed: &[u8],
) -> Result<BTreeMap<String, String>, CodecError> {
    if sealed.is_empty() {
        return Ok(BTreeMap::new());
    }
    let aad = manifest_aad(Purpose::UserMetadata, object, version);
    let plain = seal::open(key, &aad, sealed).ok_or_else(|| CodecError::ManifestCorrupt {
        reason: "user metadata does not authenticate".into(),
    })?;
    let limit = usize::try_from(USER_METADATA_BYTES_MAX).unwrap_or(usize::MAX);
    let decoded: pb::UserMetadata = decode_bounded(&plain, limit)?;
    Ok(decoded.entries)
}
