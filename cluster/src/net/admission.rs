//! Closed membership: right after Noise has authenticated both peer ids, each side proves
//! it knows the cluster secret (`/andromede/admit/1`). DESIGN.md, "Trust model".
//!
//! A proof is a keyed blake3 hash, under a key derived from the cluster secret, of the
//! prover's peer id, the verifier's peer id and the prover's role (dialer or listener).
//! Peer ids are authenticated by Noise, so a proof cannot be replayed to another peer or
//! by another peer, and the role makes a proof useless when reflected back at its sender.
//! The dialer sends its proof as the request, the listener answers with its own: one round
//! trip admits both sides.
//!
//! Goals: no service to, and no routing through, a peer that has not proved membership;
//! cheap (one hash per connection, nothing per byte, unlike libp2p pnet: 6.1 vs 2.4
//! CPU-s/GB of wire traffic according to DESIGN.md).
//! Non-goals (yet): per-node revocation — this module is where signed, revocable admission
//! tickets will go, gated by `allow_block_list`.

use std::path::Path;

use libp2p::PeerId;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::secret_file::SecretFileError;
use crate::secret_file::{SECRET_BYTES, SecretFileKind, read_secret_file, write_secret_file};

const CLUSTER_SECRET_FILE: SecretFileKind = SecretFileKind {
    what: "cluster secret",
    header: "andromede-cluster-secret-v1",
};

/// Bytes of an admission proof.
pub const PROOF_BYTES: usize = 32;

/// The secret every member of a cluster holds (nodes and clients).
pub struct ClusterSecret {
    /// The key proofs are computed under; the raw secret is not kept.
    proof_key: Zeroizing<[u8; SECRET_BYTES]>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret([redacted])")
    }
}

/// Which end of a connection a proof speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Dialer,
    Listener,
}

fn random_secret() -> Zeroizing<[u8; SECRET_BYTES]> {
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    OsRng.fill_bytes(secret.as_mut());
    secret
}

impl ClusterSecret {
    fn from_secret(secret: &[u8; SECRET_BYTES]) -> Self {
        Self {
            proof_key: Zeroizing::new(blake3::derive_key("andromede admission v1", secret)),
        }
    }

    /// A new random secret (a new cluster).
    pub fn generate() -> Self {
        Self::from_secret(&random_secret())
    }

    /// Creates a new secret in `path` (mode 0600). Never overwrites.
    ///
    /// # Errors
    /// [`SecretFileError::AlreadyExists`] or [`SecretFileError::Io`].
    pub fn create_file(path: &Path) -> Result<Self, SecretFileError> {
        let secret = random_secret();
        write_secret_file(path, CLUSTER_SECRET_FILE, &secret)?;
        Ok(Self::from_secret(&secret))
    }

    /// Loads a secret written by [`ClusterSecret::create_file`].
    ///
    /// # Errors
    /// [`SecretFileError::Permissions`], [`SecretFileError::Corrupted`] or [`SecretFileError::Io`].
    pub fn load_file(path: &Path) -> Result<Self, SecretFileError> {
        read_secret_file(path, CLUSTER_SECRET_FILE).map(|s| Self::from_secret(&s))
    }

    /// The proof that `prover`, acting as `role`, knows the secret, for `verifier`.
    pub(crate) fn proof(
        &self,
        prover: &PeerId,
        verifier: &PeerId,
        role: Role,
    ) -> [u8; PROOF_BYTES] {
        let mut hasher = blake3::Hasher::new_keyed(&self.proof_key);
        for id in [prover.to_bytes(), verifier.to_bytes()] {
            hasher.update(&(id.len() as u64).to_le_bytes());
            hasher.update(&id);
        }
        hasher.update(match role {
            Role::Dialer => b"dialer",
            Role::Listener => b"listen",
        });
        *hasher.finalize().as_bytes()
    }

    /// Whether `proof` is valid (constant-time comparison).
    pub(crate) fn verify(
        &self,
        proof: &[u8],
        prover: &PeerId,
        verifier: &PeerId,
        role: Role,
    ) -> bool {
        let Ok(proof) = <[u8; PROOF_BYTES]>::try_from(proof) else {
            return false;
        };
        blake3::Hash::from_bytes(proof)
            == blake3::Hash::from_bytes(self.proof(prover, verifier, role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_both_peers_and_the_role() {
        let secret = ClusterSecret::generate();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let proof = secret.proof(&a, &b, Role::Dialer);
        assert!(secret.verify(&proof, &a, &b, Role::Dialer));
        assert!(!secret.verify(&proof, &a, &b, Role::Listener), "reflected");
        assert!(!secret.verify(&proof, &b, &a, Role::Dialer), "reversed");
        assert!(
            !secret.verify(&proof, &a, &c, Role::Dialer),
            "replayed to another peer"
        );
        assert!(!secret.verify(&proof[..31], &a, &b, Role::Dialer));
        assert!(
            !ClusterSecret::generate().verify(&proof, &a, &b, Role::Dialer),
            "other cluster"
        );
    }

    #[test]
    fn secret_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let created = ClusterSecret::create_file(&path).unwrap();
        let loaded = ClusterSecret::load_file(&path).unwrap();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_eq!(
            created.proof(&a, &b, Role::Dialer),
            loaded.proof(&a, &b, Role::Dialer)
        );
        assert!(matches!(
            read_secret_file(
                &path,
                SecretFileKind {
                    what: "master key",
                    header: "andromede-master-key-v1",
                }
            ),
            Err(SecretFileError::Corrupted { .. })
        ));
    }
}
