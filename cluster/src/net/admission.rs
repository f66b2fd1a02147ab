//! Admission by certificate (`/andromede/admit/2`, DESIGN.md "Trust model"): right after
//! Noise has authenticated both peer ids, the dialer sends its certificate and the version
//! of the revocation list it holds; the listener checks it ([`Trust::verify`]) and answers
//! with its own, or with nothing when it refuses. One round trip admits both sides. A
//! listener is always a node; a dialer may be a node or a client.
//!
//! After admission, `/andromede/trust/1` carries newer revocation lists (pushed to every
//! node that holds an older one, fetched from a peer that announced a newer one) and
//! renewed certificates, so that a renewal needs no reconnection.
//!
//! Peer ids are authenticated by Noise and certificates bind one, so a certificate is
//! useless to anyone but its peer; it is not secret.

use andromede_proto::limits::{ADMIT_MESSAGE_BYTES_MAX, TRUST_MESSAGE_BYTES_MAX};
use andromede_proto::{Message, decode_bounded, pb};
use libp2p::PeerId;

use crate::authority::{
    Authority, Certificate, CertificateError, CertificateSpec, PeerRole, RevocationError,
    RevocationList, Trust, unix_now,
};

/// What a peer presents and checks at admission: its own certificate, and the cluster's
/// authority with the newest revocations it knows.
#[derive(Debug, Clone)]
pub struct Admission {
    certificate: Certificate,
    trust: Trust,
}

/// Why a peer was not admitted, or a trust message refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// Not an admission message.
    #[error("malformed admission message: {0}")]
    Malformed(String),
    /// It presented no certificate (a refusal).
    #[error("no certificate presented (the peer refused ours)")]
    NoCertificate,
    /// Its certificate does not admit it.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// A revocation list that does not verify.
    #[error(transparent)]
    Revocations(#[from] RevocationError),
}

/// A peer's admission message, checked.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub(crate) certificate: Certificate,
    /// The version of the revocation list it holds.
    pub(crate) revocations_version: u64,
}

/// A request on `/andromede/trust/1`, decoded.
#[derive(Debug)]
pub(crate) enum TrustRequest {
    Revocations(pb::RevocationList),
    RevocationsNewerThan(u64),
    Renewed(pb::Certificate),
}

fn malformed(e: impl ToString) -> AdmitError {
    AdmitError::Malformed(e.to_string())
}

fn bytes_max(limit: u64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

impl Admission {
    /// This peer's admission.
    ///
    /// # Errors
    /// [`AdmitError::Certificate`] if `certificate` does not admit `local` as `role` under
    /// `trust` now (another cluster's, another peer's, expired, revoked): the peer would be
    /// refused by every member, so it is refused before it starts.
    pub fn new(
        certificate: Certificate,
        trust: Trust,
        local: &PeerId,
        role: PeerRole,
    ) -> Result<Self, AdmitError> {
        trust.verify_role(&certificate, local, role, unix_now())?;
        Ok(Self { certificate, trust })
    }

    /// An admission certified by `authority` just now per `spec` (the peer's own
    /// identity is `spec.peer`): for tools that act for the authority, and for tests.
    ///
    /// # Errors
    /// As [`Authority::certify`] and [`Admission::new`].
    pub fn issued(authority: &Authority, spec: CertificateSpec) -> Result<Self, AdmitError> {
        let (peer, role) = (spec.peer, spec.role);
        let certificate = authority.certify(spec)?;
        Self::new(certificate, Trust::new(authority.public()), &peer, role)
    }

    /// An admission that presents `certificate` without checking that it admits this
    /// peer: how a test plays a misbehaving peer (expired, or someone else's certificate)
    /// to show that the other side refuses it. Never use it otherwise.
    #[doc(hidden)]
    pub fn unchecked(certificate: Certificate, trust: Trust) -> Self {
        Self { certificate, trust }
    }

    /// The certificate this peer presents.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// What certificates are checked against.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Replaces this peer's certificate (a renewal), if it admits `local` as the same role.
    pub(crate) fn renew(
        &mut self,
        certificate: Certificate,
        local: &PeerId,
    ) -> Result<(), AdmitError> {
        self.trust
            .verify_role(&certificate, local, self.certificate.role(), unix_now())?;
        self.certificate = certificate;
        Ok(())
    }

    /// Takes a newer revocation list (checked against the authority); says whether it was
    /// newer.
    pub(crate) fn update_revocations(
        &mut self,
        signed: pb::RevocationList,
    ) -> Result<Option<&RevocationList>, AdmitError> {
        let list = RevocationList::verify(signed, self.trust.authority())?;
        Ok(self.trust.update(list).then_some(self.trust.revocations()))
    }

    /// The admission message this peer sends.
    pub(crate) fn hello(&self) -> Vec<u8> {
        pb::Admit {
            certificate: Some(self.certificate.to_pb()),
            revocations_version: self.trust.revocations().version(),
        }
        .encode_to_vec()
    }

    /// Checks `peer`'s admission message. A listener takes any role; a dialer needs a node.
    pub(crate) fn check(
        &self,
        message: &[u8],
        peer: &PeerId,
        role: Option<PeerRole>,
    ) -> Result<Admitted, AdmitError> {
        let admit: pb::Admit =
            decode_bounded(message, bytes_max(ADMIT_MESSAGE_BYTES_MAX)).map_err(malformed)?;
        let certificate =
            Certificate::from_pb(admit.certificate.ok_or(AdmitError::NoCertificate)?)?;
        self.verify(&certificate, peer, role)?;
        Ok(Admitted {
            certificate,
            revocations_version: admit.revocations_version,
        })
    }

    /// Whether `certificate` still admits `peer` (a renewal, or after a new revocation).
    pub(crate) fn verify(
        &self,
        certificate: &Certificate,
        peer: &PeerId,
        role: Option<PeerRole>,
    ) -> Result<(), AdmitError> {
        let now = unix_now();
        match role {
            Some(role) => self.trust.verify_role(certificate, peer, role, now)?,
            None => self.trust.verify(certificate, peer, now)?,
        }
        Ok(())
    }
}

impl TrustRequest {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, AdmitError> {
        let request: pb::TrustRequest =
            decode_bounded(bytes, bytes_max(TRUST_MESSAGE_BYTES_MAX)).map_err(malformed)?;
        match request.kind {
            Some(pb::trust_request::Kind::Revocations(list)) => Ok(Self::Revocations(list)),
            Some(pb::trust_request::Kind::RevocationsNewerThan(v)) => {
                Ok(Self::RevocationsNewerThan(v))
            }
            Some(pb::trust_request::Kind::Renewed(cert)) => Ok(Self::Renewed(cert)),
            None => Err(malformed("empty trust request")),
        }
    }

    pub(crate) fn encode(self) -> Vec<u8> {
        let kind = match self {
            Self::Revocations(list) => pb::trust_request::Kind::Revocations(list),
            Self::RevocationsNewerThan(v) => pb::trust_request::Kind::RevocationsNewerThan(v),
            Self::Renewed(cert) => pb::trust_request::Kind::Renewed(cert),
        };
        pb::TrustRequest { kind: Some(kind) }.encode_to_vec()
    }
}

/// A trust answer: a list (answering a fetch), accepted, or why not.
pub(crate) fn trust_answer(answer: &Result<Option<pb::RevocationList>, AdmitError>) -> Vec<u8> {
    let kind = match answer {
        Ok(Some(list)) => pb::trust_response::Kind::Revocations(list.clone()),
        Ok(None) => pb::trust_response::Kind::Accepted(true),
        Err(e) => pb::trust_response::Kind::Error(pb::Error {
            code: pb::ErrorCode::Invalid as i32,
            detail: e.to_string(),
        }),
    };
    pb::TrustResponse { kind: Some(kind) }.encode_to_vec()
}

/// A trust answer, decoded: a list, accepted, or refused with the peer's reason.
pub(crate) fn trust_outcome(bytes: &[u8]) -> Result<Option<pb::RevocationList>, String> {
    let response: pb::TrustResponse = decode_bounded(bytes, bytes_max(TRUST_MESSAGE_BYTES_MAX))
        .map_err(|e| format!("malformed trust answer: {e}"))?;
    match response.kind {
        Some(pb::trust_response::Kind::Revocations(list)) => Ok(Some(list)),
        Some(pb::trust_response::Kind::Accepted(_)) => Ok(None),
        Some(pb::trust_response::Kind::Error(error)) => Err(error.detail),
        None => Err("empty trust answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certify(authority: &Authority, peer: PeerId, role: PeerRole) -> Certificate {
        let now = unix_now();
        authority
            .certify(CertificateSpec {
                peer,
                role,
                name: "p".into(),
                zone: String::new(),
                jurisdiction: String::new(),
                not_before_unix: now - 10,
                not_after_unix: now + 3600,
                grants: Vec::new(),
            })
            .unwrap()
    }

    #[test]
    fn hello_admits_its_peer_only_and_only_in_its_role() {
        let authority = Authority::generate();
        let trust = Trust::new(authority.public());
        let (a, b) = (PeerId::random(), PeerId::random());
        let admission_a = Admission::new(
            certify(&authority, a, PeerRole::Client),
            trust.clone(),
            &a,
            PeerRole::Client,
        )
        .unwrap();
        let admission_b = Admission::new(
            certify(&authority, b, PeerRole::Node),
            trust.clone(),
            &b,
            PeerRole::Node,
        )
        .unwrap();
        let hello = admission_a.hello();
        let admitted = admission_b.check(&hello, &a, None).unwrap();
        assert_eq!(admitted.certificate.role(), PeerRole::Client);
        assert!(admission_b.check(&hello, &b, None).is_err(), "another peer");
        assert!(
            admission_b.check(&hello, &a, Some(PeerRole::Node)).is_err(),
            "a client cannot answer as a node"
        );
        assert!(matches!(
            admission_b.check(&[], &a, None),
            Err(AdmitError::NoCertificate)
        ));
        assert!(matches!(
            admission_b.check(&vec![7u8; 5000], &a, None),
            Err(AdmitError::Malformed(_))
        ));
        assert!(
            Admission::new(
                certify(&Authority::generate(), a, PeerRole::Client),
                trust,
                &a,
                PeerRole::Client
            )
            .is_err(),
            "another cluster's certificate is refused at start"
        );
    }
}
