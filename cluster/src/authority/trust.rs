//! [`Trust`]: what a member checks a peer's certificate against — the cluster's authority
//! key and the newest revocation list it holds. [`Trust::verify`] is the one function that
//! decides whether a certificate admits a peer, wherever one is checked.

use libp2p::PeerId;

use super::certificate::{Certificate, CertificateError, PeerRole};
use super::keys::AuthorityKey;
use super::revocation::RevocationList;

/// How far ahead of a certificate's start a verifier's clock may be behind (clocks of
/// the authority's machine and of members differ by this much at most).
pub const CLOCK_SKEW_SECS: u64 = 300;

/// The cluster's authority and the revocations known so far.
#[derive(Debug, Clone)]
pub struct Trust {
    authority: AuthorityKey,
    revocations: RevocationList,
}

impl Trust {
    /// Trust in `authority`, with no revocation known yet.
    pub fn new(authority: AuthorityKey) -> Self {
        Self {
            authority,
            revocations: RevocationList::empty(),
        }
    }

    /// The cluster's identity.
    pub fn authority(&self) -> &AuthorityKey {
        &self.authority
    }

    /// The newest revocation list known.
    pub fn revocations(&self) -> &RevocationList {
        &self.revocations
    }

    /// Takes `list` (already verified against this authority) if it is newer than the one
    /// held; says whether it did.
    pub fn update(&mut self, list: RevocationList) -> bool {
        if list.version() > self.revocations.version() {
            self.revocations = list;
            true
        } else {
            false
        }
    }

    /// Whether `certificate`, presented by `presenter` at `now_unix`, admits it: signed
    /// by this cluster's authority, for that peer id, valid now, and not revoked.
    ///
    /// # Errors
    /// The first check that fails, as a [`CertificateError`].
    pub fn verify(
        &self,
        certificate: &Certificate,
        presenter: &PeerId,
        now_unix: u64,
    ) -> Result<(), CertificateError> {
        certificate.signed_by(&self.authority)?;
        if certificate.peer() != *presenter {
            return Err(CertificateError::WrongPeer {
                certified: certificate.peer().to_string(),
                presenter: presenter.to_string(),
            });
        }
        if now_unix.saturating_add(CLOCK_SKEW_SECS) < certificate.not_before_unix() {
            return Err(CertificateError::NotYetValid {
                not_before_unix: certificate.not_before_unix(),
                now_unix,
            });
        }
        if now_unix >= certificate.not_after_unix() {
            return Err(CertificateError::Expired {
                not_after_unix: certificate.not_after_unix(),
                now_unix,
            });
        }
        if self.revocations.revokes(presenter) {
            return Err(CertificateError::Revoked(presenter.to_string()));
        }
        Ok(())
    }

    /// [`Trust::verify`], and the certificate is for `role`.
    ///
    /// # Errors
    /// As [`Trust::verify`], or [`CertificateError::WrongRole`].
    pub fn verify_role(
        &self,
        certificate: &Certificate,
        presenter: &PeerId,
        role: PeerRole,
        now_unix: u64,
    ) -> Result<(), CertificateError> {
        self.verify(certificate, presenter, now_unix)?;
        if certificate.role() != role {
            return Err(CertificateError::WrongRole {
                expected: role,
                found: certificate.role(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::certificate::CertificateSpec;
    use super::super::keys::Authority;
    use super::*;

    fn spec(peer: PeerId, role: PeerRole) -> CertificateSpec {
        CertificateSpec {
            peer,
            role,
            name: "n".into(),
            zone: String::new(),
            jurisdiction: String::new(),
            not_before_unix: 10_000,
            not_after_unix: 20_000,
            grants: Vec::new(),
        }
    }

    #[test]
    fn verify_checks_authority_peer_validity_revocation_and_role() {
        let authority = Authority::generate();
        let mut trust = Trust::new(authority.public());
        let peer = PeerId::random();
        let cert = authority.certify(spec(peer, PeerRole::Node)).unwrap();
        assert_eq!(trust.verify(&cert, &peer, 15_000), Ok(()));
        assert!(matches!(
            trust.verify(&cert, &PeerId::random(), 15_000),
            Err(CertificateError::WrongPeer { .. })
        ));
        assert!(matches!(
            trust.verify(&cert, &peer, 20_000),
            Err(CertificateError::Expired { .. })
        ));
        assert!(matches!(
            trust.verify(&cert, &peer, 10_000 - CLOCK_SKEW_SECS - 1),
            Err(CertificateError::NotYetValid { .. })
        ));
        assert_eq!(trust.verify(&cert, &peer, 10_000 - CLOCK_SKEW_SECS), Ok(()));
        assert!(matches!(
            trust.verify_role(&cert, &peer, PeerRole::Client, 15_000),
            Err(CertificateError::WrongRole { .. })
        ));
        let stranger = Authority::generate();
        let foreign = stranger.certify(spec(peer, PeerRole::Node)).unwrap();
        assert!(matches!(
            trust.verify(&foreign, &peer, 15_000),
            Err(CertificateError::OtherAuthority { .. })
        ));
        let list = authority
            .revoke(&RevocationList::empty(), peer, 15_000)
            .unwrap();
        assert!(trust.update(list.clone()));
        assert!(!trust.update(list), "same version again");
        assert_eq!(
            trust.verify(&cert, &peer, 15_000),
            Err(CertificateError::Revoked(peer.to_string()))
        );
    }
}
