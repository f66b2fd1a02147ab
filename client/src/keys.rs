//! Key material: the tenant master key (a file, mode 0600) and per-version data keys.
//!
//! Only this module and [`crate::codec::seal`] touch key material. The master key never
//! leaves the client; data keys travel only wrapped (sealed with the master key, with
//! associated data binding them to their object and manifest). Keys are zeroed on drop and
//! their `Debug` is redacted.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use andromede_cluster::secret_file::{
    SECRET_BYTES, SecretFileError, SecretFileKind, read_secret_file, write_secret_file,
};
pub use andromede_proto::limits::{MASTER_KEY_ID_BYTES, WRAPPED_KEY_BYTES};

use crate::error::CodecError;

const KEY_BYTES: usize = SECRET_BYTES;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
// The manifest format fixes the wrapped key's length; it must be what sealing produces.
const _: () = assert!(WRAPPED_KEY_BYTES == NONCE_BYTES + KEY_BYTES + TAG_BYTES);

/// The tenant master key: wraps every data key. Losing it loses every object.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_BYTES]>,
    id: [u8; MASTER_KEY_ID_BYTES],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKey {{ id: {}, key: [redacted] }}",
            hex::encode(self.id)
        )
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        OsRng.fill_bytes(key.as_mut());
        Self::from_bytes(key)
    }

    fn from_bytes(key: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        let derived = blake3::derive_key("andromede master key id v1", key.as_ref());
        let mut id = [0u8; MASTER_KEY_ID_BYTES];
        id.copy_from_slice(&derived[..MASTER_KEY_ID_BYTES]);
        Self { key, id }
    }

    /// A public identifier of this key, recorded in manifests so that a wrong key is
    /// reported as such. It reveals nothing about the key.
    pub fn id(&self) -> [u8; MASTER_KEY_ID_BYTES] {
        self.id
    }

    /// Creates a new key and writes it to `path` (mode 0600, fsynced). Never overwrites.
    ///
    /// # Errors
    /// [`SecretFileError::AlreadyExists`] if `path` exists; [`SecretFileError::Io`] on I/O failure.
    pub fn create_file(path: &Path) -> Result<Self, SecretFileError> {
        let key = Self::generate();
        write_secret_file(path, MASTER_KEY_FILE, &key.key)?;
        Ok(key)
    }

    /// Loads a key written by [`MasterKey::create_file`].
    ///
    /// # Errors
    /// [`SecretFileError::Permissions`] if group or others can read it, [`SecretFileError::Corrupted`]
    /// if its format or checksum is wrong, [`SecretFileError::Io`] on I/O failure.
    pub fn load_file(path: &Path) -> Result<Self, SecretFileError> {
        read_secret_file(path, MASTER_KEY_FILE).map(Self::from_bytes)
    }

    /// Seals `data_key` under this master key, bound to `aad`.
    ///
    /// # Errors
    /// [`CodecError::SealFailed`] only if the cipher refuses (over-long input; a 32-byte
    /// key never is).
    pub(crate) fn wrap(&self, data_key: &DataKey, aad: &[u8]) -> Result<Vec<u8>, CodecError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: data_key.0.as_ref(),
                    aad,
                },
            )
            .map_err(|_| CodecError::SealFailed {
                bytes: KEY_BYTES as u64,
            })?;
        let mut out = Vec::with_capacity(WRAPPED_KEY_BYTES);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a wrapped data key; `None` if it does not authenticate with `aad` under this key.
    /// The key listing ETags are sealed with: derived from the master key, so that a
    /// listing opens every entry without reading a manifest.
    pub(crate) fn listing_key(&self) -> DataKey {
        DataKey(Zeroizing::new(blake3::derive_key(
            "andromede listing etag key v1",
            self.key.as_ref(),
        )))
    }

    /// The key client-private values are sealed with (see `Client::put_private`).
    pub(crate) fn private_key(&self) -> DataKey {
        DataKey(Zeroizing::new(blake3::derive_key(
            "andromede private value key v1",
            self.key.as_ref(),
        )))
    }

    pub(crate) fn unwrap_key(&self, wrapped: &[u8], aad: &[u8]) -> Option<DataKey> {
        if wrapped.len() != WRAPPED_KEY_BYTES {
            return None;
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_BYTES);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
                .ok()?,
        );
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        key.copy_from_slice(plain.get(..KEY_BYTES)?);
        Some(DataKey(key))
    }
}

const MASTER_KEY_FILE: SecretFileKind = SecretFileKind {
    what: "master key",
    header: "andromede-master-key-v1",
};

/// A fresh random key for one object version; encrypts its segments and inline body.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_BYTES]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    /// A new random data key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = MasterKey::create_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = MasterKey::load_file(&path).unwrap();
        assert_eq!(created.id(), loaded.id());
        assert_eq!(created.key.as_ref(), loaded.key.as_ref());
        assert!(matches!(
            MasterKey::create_file(&path),
            Err(SecretFileError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn corrupted_or_exposed_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::create_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // Flip one hex digit of the key: the checksum catches it.
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let flipped = if lines[1].starts_with('0') { "1" } else { "0" };
        lines[1].replace_range(0..1, flipped);
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert!(matches!(
            MasterKey::load_file(&path),
            Err(SecretFileError::Corrupted { .. })
        ));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            MasterKey::load_file(&path),
            Err(SecretFileError::Corrupted { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_file(&path),
            Err(SecretFileError::Permissions { .. })
        ));
    }

    #[test]
    fn wrapped_key_opens_only_with_same_key_and_aad() {
        let master = MasterKey::generate();
        let other = MasterKey::generate();
        let data = DataKey::generate();
        let wrapped = master.wrap(&data, b"binding").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_BYTES);
        let opened = master.unwrap_key(&wrapped, b"binding").unwrap();
        assert_eq!(opened.0.as_ref(), data.0.as_ref());
        assert!(master.unwrap_key(&wrapped, b"other binding").is_none());
        assert!(other.unwrap_key(&wrapped, b"binding").is_none());
        assert!(master.unwrap_key(&wrapped[1..], b"binding").is_none());
        assert!(format!("{master:?}").contains("redacted"));
    }
}
