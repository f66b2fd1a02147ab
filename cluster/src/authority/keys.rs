//! The authority's key pair. The private key signs certificates and revocation lists and
//! is needed only where those are made (`andromede-node invite`, `revoke`); the public key
//! is the cluster's identity, checked by every member.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use libp2p::identity::ed25519;
use zeroize::Zeroizing;

use crate::secret_file::{SecretFileError, SecretFileKind, read_secret_file, write_secret_file};

const AUTHORITY_FILE: SecretFileKind = SecretFileKind {
    what: "cluster authority key",
    header: "andromede-authority-ed25519-v1",
};

/// Prefix of an authority key's text form: the algorithm, so a later one can be told apart.
const KEY_PREFIX: &str = "ed25519:";

/// The cluster's identity: the authority's ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityKey(ed25519::PublicKey);

/// Why a text or bytes are not an authority key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a cluster authority key ({reason}): copy the `authority = \"ed25519:...\"` line of a member's configuration"
)]
pub struct AuthorityKeyError {
    reason: &'static str,
}

impl AuthorityKey {
    /// The key from its 32 bytes.
    ///
    /// # Errors
    /// [`AuthorityKeyError`] if they are not an ed25519 public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuthorityKeyError> {
        ed25519::PublicKey::try_from_bytes(bytes)
            .map(Self)
            .map_err(|_| AuthorityKeyError {
                reason: "not a 32-byte ed25519 public key",
            })
    }

    /// Its 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Whether `signature` is this key's signature of `domain || message`.
    pub(crate) fn verify(&self, domain: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let mut signed = Vec::with_capacity(domain.len() + message.len());
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        self.0.verify(&signed, signature)
    }
}

impl fmt::Display for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityKey({self})")
    }
}

impl FromStr for AuthorityKey {
    type Err = AuthorityKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.trim().strip_prefix(KEY_PREFIX).ok_or(AuthorityKeyError {
            reason: "it does not start with `ed25519:`",
        })?;
        let bytes = hex::decode(hex_part).map_err(|_| AuthorityKeyError {
            reason: "not hexadecimal after `ed25519:`",
        })?;
        Self::from_bytes(&bytes)
    }
}

impl serde::Serialize for AuthorityKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AuthorityKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The authority's private key: whoever holds it decides who is in the cluster.
pub struct Authority {
    keypair: ed25519::Keypair,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({}, [private key redacted])", self.public())
    }
}

impl Authority {
    /// A new authority (a new cluster), kept in memory only.
    pub fn generate() -> Self {
        Self {
            keypair: ed25519::Keypair::generate(),
        }
    }

    fn from_secret(secret: &mut [u8; 32], path: &Path) -> Result<Self, SecretFileError> {
        let secret =
            ed25519::SecretKey::try_from_bytes(secret).map_err(|_| SecretFileError::Corrupted {
                what: AUTHORITY_FILE.what,
                path: path.to_owned(),
                reason: "not an ed25519 secret key",
            })?;
        Ok(Self {
            keypair: ed25519::Keypair::from(secret),
        })
    }

    /// Creates a new authority in `path` (mode 0600). Never overwrites.
    ///
    /// # Errors
    /// [`SecretFileError::AlreadyExists`] or [`SecretFileError::Io`].
    pub fn create_file(path: &Path) -> Result<Self, SecretFileError> {
        let authority = Self::generate();
        authority.write_file(path)?;
        Ok(authority)
    }

    /// Writes this authority to `path` (mode 0600). Never overwrites.
    ///
    /// # Errors
    /// [`SecretFileError::AlreadyExists`] or [`SecretFileError::Io`].
    pub fn write_file(&self, path: &Path) -> Result<(), SecretFileError> {
        let secret = Zeroizing::new(self.secret_bytes());
        write_secret_file(path, AUTHORITY_FILE, &secret)
    }

    /// Loads an authority written by [`Authority::create_file`].
    ///
    /// # Errors
    /// [`SecretFileError`]: missing, exposed, of another kind or corrupted.
    pub fn load_file(path: &Path) -> Result<Self, SecretFileError> {
        let mut secret = read_secret_file(path, AUTHORITY_FILE)?;
        Self::from_secret(&mut secret, path)
    }

    fn secret_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.keypair.secret().as_ref());
        out
    }

    /// The cluster's identity.
    pub fn public(&self) -> AuthorityKey {
        AuthorityKey(self.keypair.public())
    }

    /// The signature of `domain || message`.
    pub(crate) fn sign(&self, domain: &[u8], message: &[u8]) -> Vec<u8> {
        let mut signed = Vec::with_capacity(domain.len() + message.len());
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        self.keypair.sign(&signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trips_and_refuses_garbage() {
        let key = Authority::generate().public();
        let text = key.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.parse::<AuthorityKey>().unwrap(), key);
        for bad in ["", "ed25519:", "ed25519:zz", &text[8..], "ed25519:0011"] {
            assert!(bad.parse::<AuthorityKey>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn authority_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authority.key");
        let created = Authority::create_file(&path).unwrap();
        let loaded = Authority::load_file(&path).unwrap();
        assert_eq!(created.public(), loaded.public());
        assert!(matches!(
            Authority::create_file(&path),
            Err(SecretFileError::AlreadyExists { .. })
        ));
        let signature = loaded.sign(b"d", b"m");
        assert!(created.public().verify(b"d", b"m", &signature));
        assert!(!created.public().verify(b"e", b"m", &signature));
    }
}
