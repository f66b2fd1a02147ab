//! Authenticated encryption of segments, inline bodies and user metadata
//! (XChaCha20-Poly1305, random 24-byte nonces), and the associated data that binds each
//! sealed piece to its place: version id and segment index for segments; bucket, object
//! key and version id for everything kept in the manifest.
//!
//! Sealed layout everywhere: nonce (24) || ciphertext || tag (16). Segments are sealed in
//! place in the buffer they were read into, so a segment is never copied to be encrypted.
//! This module and [`crate::keys`] are the only places that handle keys or plaintext.

use std::ops::Range;

use chacha20poly1305::aead::{AeadCore, AeadInPlace, OsRng};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use crate::error::CodecError;
use crate::keys::DataKey;
use andromede_proto::VersionId;

/// Bytes of nonce in front of every sealed piece.
pub(crate) const NONCE_BYTES: usize = 24;
/// Bytes of tag behind every sealed piece.
pub(crate) const TAG_BYTES: usize = 16;

/// Seals `buf[NONCE_BYTES..]` in place: writes a fresh nonce into `buf[..NONCE_BYTES]` and
/// appends the tag. The caller reserves the nonce prefix when it fills the buffer.
///
/// # Errors
/// [`CodecError::SealFailed`] if `buf` has no nonce prefix or is beyond the cipher's
/// length limit (2^38 bytes, far above every segment limit).
pub(crate) fn seal_in_place(
    key: &DataKey,
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let failed = CodecError::SealFailed {
        bytes: buf.len() as u64,
    };
    let (prefix, body) = buf
        .split_at_mut_checked(NONCE_BYTES)
        .ok_or(CodecError::SealFailed { bytes: 0 })?;
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    prefix.copy_from_slice(&nonce);
    let tag = key
        .cipher()
        .encrypt_in_place_detached(&nonce, aad, body)
        .map_err(|_| failed)?;
    buf.extend_from_slice(&tag);
    Ok(())
}

/// Seals a copy of `plain`.
pub(crate) fn seal(key: &DataKey, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::with_capacity(NONCE_BYTES + plain.len() + TAG_BYTES);
    buf.resize(NONCE_BYTES, 0);
    buf.extend_from_slice(plain);
    seal_in_place(key, aad, &mut buf)?;
    Ok(buf)
}

/// Opens a sealed piece in place and returns where its plaintext now lies in `buf`, so
/// the caller can slice it without copying. `None` (buffer contents unspecified) if it does
/// not authenticate.
pub(crate) fn open_in_place(key: &DataKey, aad: &[u8], buf: &mut [u8]) -> Option<Range<usize>> {
    let tag_at = buf.len().checked_sub(TAG_BYTES)?;
    if tag_at < NONCE_BYTES {
        return None;
    }
    let tag = Tag::clone_from_slice(&buf[tag_at..]);
    let nonce = XNonce::clone_from_slice(&buf[..NONCE_BYTES]);
    key.cipher()
        .decrypt_in_place_detached(&nonce, aad, &mut buf[NONCE_BYTES..tag_at], &tag)
        .ok()?;
    Some(NONCE_BYTES..tag_at)
}

/// Opens a sealed piece into a new buffer.
pub(crate) fn open(key: &DataKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let mut buf = sealed.to_vec();
    let plain = open_in_place(key, aad, &mut buf)?;
    buf.truncate(plain.end);
    buf.drain(..plain.start);
    Some(buf)
}

/// Associated data of segment `index` of `version`.
pub(crate) fn segment_aad(version: &VersionId, index: u64) -> [u8; 8 + 16 + 8] {
    let mut aad = [0u8; 32];
    aad[..8].copy_from_slice(b"ANDRSEG1");
    aad[8..24].copy_from_slice(version.as_bytes());
    aad[24..].copy_from_slice(&index.to_le_bytes());
    aad
}

/// What a piece kept in the manifest is bound to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    Inline,
    UserMetadata,
    WrappedKey,
    ListingEtag,
    Private,
    UploadMetadata,
}

/// Associated data binding a manifest piece to bucket, key, version and any further
/// `fields` (length-prefixed, so no two field lists encode alike).
pub(crate) fn object_aad(
    purpose: Purpose,
    bucket: &str,
    key: &str,
    version: &VersionId,
    fields: &[&[u8]],
) -> Vec<u8> {
    let tag: &[u8] = match purpose {
        Purpose::Inline => b"ANDRINL1",
        Purpose::UserMetadata => b"ANDRUMD1",
        Purpose::WrappedKey => b"ANDRKEY1",
        Purpose::ListingEtag => b"ANDRETG1",
        Purpose::Private => b"ANDRPRV1",
        Purpose::UploadMetadata => b"ANDRUPL1",
    };
    let mut aad = Vec::with_capacity(64 + bucket.len() + key.len());
    aad.extend_from_slice(tag);
    for field in [
        bucket.as_bytes(),
        key.as_bytes(),
        version.as_bytes().as_slice(),
    ]
    .into_iter()
    .chain(fields.iter().copied())
    {
        aad.extend_from_slice(&(field.len() as u64).to_le_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = DataKey::generate();
        let v = VersionId([1; 16]);
        let sealed = seal(&key, &segment_aad(&v, 0), b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + NONCE_BYTES + TAG_BYTES);
        assert_eq!(open(&key, &segment_aad(&v, 0), &sealed).unwrap(), b"hello");
        assert!(open(&key, &segment_aad(&v, 1), &sealed).is_none());
        assert!(open(&DataKey::generate(), &segment_aad(&v, 0), &sealed).is_none());
        assert!(open(&key, &segment_aad(&v, 0), &sealed[..10]).is_none());
    }

    #[test]
    fn object_aad_fields_are_unambiguous() {
        let v = VersionId([0; 16]);
        let a = object_aad(Purpose::Inline, "ab", "c", &v, &[]);
        let b = object_aad(Purpose::Inline, "a", "bc", &v, &[]);
        assert_ne!(a, b);
        let c = object_aad(Purpose::UserMetadata, "ab", "c", &v, &[]);
        assert_ne!(a, c);
    }
}
