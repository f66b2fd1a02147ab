//! The cluster authority (DESIGN.md, "Trust model"): who is in a cluster, in what role and
//! where, decided by one ed25519 key and proven by what it signed.
//!
//! - [`keys`]: the authority's key pair ([`Authority`], private, in a 0600 file that can
//!   live off the nodes) and its public half ([`AuthorityKey`], the cluster's identity,
//!   written into every node and client configuration).
//! - [`certificate`]: [`Certificate`]s binding a peer id to a role, a name and, for nodes,
//!   a zone and a jurisdiction, for clients their [`grant`]s, for a validity period.
//! - [`revocation`]: the versioned, signed [`RevocationList`] of peers no longer admitted.
//! - [`trust`]: [`Trust`], the one place a certificate is verified (signature, authority,
//!   role, validity, peer id, revocation).
//! - [`token`]: [`JoinToken`]s, the one line an operator copies to a new node or client.
//! - [`text`]: the armoured one-line text form of statements; [`files`]: certificates
//!   and revocation lists kept in files, replaced atomically.
//!
//! Nothing here is secret except the authority's private key and a token that carries a
//! new identity: admission rests on signatures, never on a secret shared by members.

pub mod certificate;
pub mod files;
pub mod grant;
pub mod keys;
pub mod revocation;
pub mod text;
pub mod token;
pub mod trust;

pub use certificate::{Certificate, CertificateError, CertificateSpec, PeerRole};
pub use files::AuthorityFileError;
pub use grant::{Grant, Rights};
pub use keys::{Authority, AuthorityKey, AuthorityKeyError};
pub use revocation::{RevocationError, RevocationList};
pub use token::{JoinToken, TokenError};
pub use trust::Trust;

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
