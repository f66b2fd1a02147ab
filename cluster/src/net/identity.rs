//! A peer's long-term identity: an ed25519 key kept in a secret file (mode 0600), so a
//! node keeps its peer id, and with it its place in the DHT, across restarts.

use std::path::Path;

use libp2p::identity::Keypair;
use zeroize::Zeroizing;

use crate::secret_file::SecretFileError;
use crate::secret_file::{SecretFileKind, read_secret_file, write_secret_file};

const IDENTITY_FILE: SecretFileKind = SecretFileKind {
    what: "identity key",
    header: "andromede-node-identity-ed25519-v1",
};

/// Loads the identity in `path`, creating it first if the file does not exist.
///
/// # Errors
/// [`SecretFileError`] if the file cannot be read or written, is exposed, or is corrupted.
pub fn load_or_create_identity(path: &Path) -> Result<Keypair, SecretFileError> {
    if !path.exists() {
        let keypair = libp2p::identity::ed25519::Keypair::generate();
        let secret = Zeroizing::new(<[u8; 32]>::try_from(keypair.secret().as_ref()).map_err(
            |_| SecretFileError::Corrupted {
                what: IDENTITY_FILE.what,
                path: path.to_owned(),
                reason: "generated key is not 32 bytes",
            },
        )?);
        write_secret_file(path, IDENTITY_FILE, &secret)?;
    }
    let mut secret = read_secret_file(path, IDENTITY_FILE)?;
    Keypair::ed25519_from_bytes(secret.as_mut()).map_err(|_| SecretFileError::Corrupted {
        what: IDENTITY_FILE.what,
        path: path.to_owned(),
        reason: "not an ed25519 secret key",
    })
}

/// Writes the identity whose ed25519 secret is `secret` (from a join token) to `path`
/// (mode 0600, never overwriting) and returns it.
///
/// # Errors
/// [`SecretFileError`]: the file exists, cannot be written, or `secret` is not a key.
pub fn create_identity_file(path: &Path, secret: &[u8; 32]) -> Result<Keypair, SecretFileError> {
    let keypair = crate::authority::token::identity_from_secret(secret).map_err(|_| {
        SecretFileError::Corrupted {
            what: IDENTITY_FILE.what,
            path: path.to_owned(),
            reason: "not an ed25519 secret key",
        }
    })?;
    write_secret_file(path, IDENTITY_FILE, secret)?;
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let first = load_or_create_identity(&path).unwrap();
        let again = load_or_create_identity(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
    }
}
