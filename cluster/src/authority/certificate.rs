//! Certificates: the authority's signed statement that a libp2p peer id is a member of the
//! cluster, in a role, under a name, and (for nodes) in a zone and a jurisdiction, for a
//! validity period. Decoding checks shape and sizes only; [`crate::authority::Trust`]
//! decides whether one is valid.

use std::fmt;

use andromede_proto::limits::{CERTIFICATE_BYTES_MAX, PEER_NAME_BYTES_MAX, TAG_BYTES_MAX};
use andromede_proto::{Message, decode_bounded, pb};
use bytes::Bytes;
use libp2p::PeerId;
use rand_core::{OsRng, RngCore};

use super::grant::{GRANTS_MAX, Grant, Rights};
use super::keys::{Authority, AuthorityKey};

/// Layout of [`pb::CertificateBody`] written by this version.
pub const CERTIFICATE_FORMAT: u32 = 1;
/// What the authority signs before a certificate body, so that no other statement it
/// signs can pass for a certificate.
pub(crate) const CERTIFICATE_DOMAIN: &[u8] = b"andromede certificate v1\0";
const SERIAL_BYTES: usize = 16;

/// What a certified peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    /// Serves shards and metadata, routes, and runs the cluster's maintenance.
    Node,
    /// Stores and fetches shards, reads and writes bucket and object records.
    Client,
}

impl fmt::Display for PeerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Node => "node",
            Self::Client => "client",
        })
    }
}

/// Why a certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Not a certificate: too large, not protobuf, missing or out-of-range fields.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// Written in a layout this version does not know.
    #[error("certificate format {0} is not supported by this version")]
    Format(u32),
    /// Issued by another authority (another cluster).
    #[error("certificate issued by another authority ({found}), not this cluster's ({expected})")]
    OtherAuthority {
        /// This cluster's authority.
        expected: String,
        /// The one that signed it.
        found: String,
    },
    /// The signature does not verify: forged or altered.
    #[error("certificate signature does not verify")]
    BadSignature,
    /// For another peer id than the one that presented it.
    #[error("certificate is for peer {certified}, presented by {presenter}")]
    WrongPeer {
        /// The peer id in the certificate.
        certified: String,
        /// Who presented it.
        presenter: String,
    },
    /// Not valid yet.
    #[error("certificate is not valid before {not_before_unix} (now {now_unix}): check the clocks")]
    NotYetValid {
        /// Start of validity.
        not_before_unix: u64,
        /// Now.
        now_unix: u64,
    },
    /// Expired.
    #[error(
        "certificate expired at {not_after_unix} (now {now_unix}): renew it with `andromede-node invite --peer`"
    )]
    Expired {
        /// End of validity.
        not_after_unix: u64,
        /// Now.
        now_unix: u64,
    },
    /// The authority revoked this peer.
    #[error("peer {0} is revoked by the cluster authority")]
    Revoked(String),
    /// The role is not the one this exchange needs (a client where a node must answer).
    #[error("certificate is for a {found}, a {expected} was expected")]
    WrongRole {
        /// What was needed.
        expected: PeerRole,
        /// What it certifies.
        found: PeerRole,
    },
}

/// What the authority certifies about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSpec {
    /// The peer.
    pub peer: PeerId,
    /// Node or client.
    pub role: PeerRole,
    /// The operator's name for it.
    pub name: String,
    /// Failure domain (nodes).
    pub zone: String,
    /// Legal jurisdiction (nodes).
    pub jurisdiction: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before_unix: u64,
    /// End of validity.
    pub not_after_unix: u64,
    /// What a client may do, per bucket (nodes: none).
    pub grants: Vec<Grant>,
}

/// A decoded certificate. Its fields are what the authority signed *if* it was obtained
/// through [`crate::authority::Trust::verify`]; [`Certificate::decode`] alone checks
/// nothing but shape.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    body: Bytes,
    signature: Bytes,
    authority: Vec<u8>,
    spec: CertificateSpec,
    serial: [u8; SERIAL_BYTES],
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("peer", &self.spec.peer)
            .field("role", &self.spec.role)
            .field("name", &self.spec.name)
            .field("zone", &self.spec.zone)
            .field("jurisdiction", &self.spec.jurisdiction)
            .field("not_after_unix", &self.spec.not_after_unix)
            .field("grants", &self.spec.grants)
            .finish_non_exhaustive()
    }
}

fn malformed(what: impl Into<String>) -> CertificateError {
    CertificateError::Malformed(what.into())
}

fn check_text(field: &str, value: &str, bytes_max: u64) -> Result<(), CertificateError> {
    if value.len() as u64 > bytes_max || value.chars().any(char::is_control) {
        return Err(malformed(format!(
            "{field} longer than {bytes_max} bytes or with control characters"
        )));
    }
    Ok(())
}

impl CertificateSpec {
    /// A certificate for `peer` in `role`, valid from now for `valid_for`, in no zone or
    /// jurisdiction yet ([`CertificateSpec::placed`]).
    pub fn new(peer: PeerId, role: PeerRole, name: &str, valid_for: std::time::Duration) -> Self {
        let now = super::unix_now();
        Self {
            peer,
            role,
            name: name.to_owned(),
            zone: String::new(),
            jurisdiction: String::new(),
            not_before_unix: now,
            not_after_unix: now.saturating_add(valid_for.as_secs().max(1)),
            grants: Vec::new(),
        }
    }

    /// The same, allowing what `grants` allow (clients).
    #[must_use]
    pub fn granted(mut self, grants: Vec<Grant>) -> Self {
        self.grants = grants;
        self
    }

    /// The same, in `zone` and `jurisdiction`.
    #[must_use]
    pub fn placed(mut self, zone: &str, jurisdiction: &str) -> Self {
        zone.clone_into(&mut self.zone);
        jurisdiction.clone_into(&mut self.jurisdiction);
        self
    }

    fn check(&self) -> Result<(), CertificateError> {
        check_text("name", &self.name, PEER_NAME_BYTES_MAX)?;
        check_text("zone", &self.zone, TAG_BYTES_MAX)?;
        check_text("jurisdiction", &self.jurisdiction, TAG_BYTES_MAX)?;
        if self.not_after_unix <= self.not_before_unix {
            return Err(malformed("validity ends before it starts"));
        }
        if self.grants.len() > GRANTS_MAX {
            return Err(malformed(format!("more than {GRANTS_MAX} grants")));
        }
        if self.role == PeerRole::Node && !self.grants.is_empty() {
            return Err(malformed("a node certificate carries no grants"));
        }
        for grant in &self.grants {
            grant.check().map_err(malformed)?;
        }
        Ok(())
    }
}

impl Authority {
    /// Signs a certificate.
    ///
    /// # Errors
    /// [`CertificateError::Malformed`] if a field is out of range (a name too long, an
    /// empty validity period).
    pub fn certify(&self, spec: CertificateSpec) -> Result<Certificate, CertificateError> {
        spec.check()?;
        let mut serial = [0u8; SERIAL_BYTES];
        OsRng.fill_bytes(&mut serial);
        let body = pb::CertificateBody {
            format: CERTIFICATE_FORMAT,
            authority: Bytes::copy_from_slice(&self.public().to_bytes()),
            peer_id: Bytes::from(spec.peer.to_bytes()),
            role: match spec.role {
                PeerRole::Node => pb::PeerRole::Node,
                PeerRole::Client => pb::PeerRole::Client,
            } as i32,
            name: spec.name,
            zone: spec.zone,
            jurisdiction: spec.jurisdiction,
            not_before_unix: spec.not_before_unix,
            not_after_unix: spec.not_after_unix,
            serial: Bytes::copy_from_slice(&serial),
            grants: spec
                .grants
                .iter()
                .map(|g| pb::Grant {
                    buckets: g.buckets.clone(),
                    rights: g.rights.bits(),
                })
                .collect(),
        }
        .encode_to_vec();
        let signature = self.sign(CERTIFICATE_DOMAIN, &body);
        let encoded = pb::Certificate {
            body: Bytes::from(body),
            signature: Bytes::from(signature),
        }
        .encode_to_vec();
        Certificate::decode(&encoded)
    }
}

impl Certificate {
    /// Decodes a certificate, checking sizes and shape (not the signature).
    ///
    /// # Errors
    /// [`CertificateError::Malformed`] or [`CertificateError::Format`].
    pub fn decode(bytes: &[u8]) -> Result<Self, CertificateError> {
        let bytes_max = usize::try_from(CERTIFICATE_BYTES_MAX).unwrap_or(usize::MAX);
        let outer: pb::Certificate =
            decode_bounded(bytes, bytes_max).map_err(|e| malformed(e.to_string()))?;
        Self::from_pb(outer)
    }

    /// From its protobuf form (as carried inside other messages).
    ///
    /// # Errors
    /// As [`Certificate::decode`].
    pub fn from_pb(outer: pb::Certificate) -> Result<Self, CertificateError> {
        let bytes_max = usize::try_from(CERTIFICATE_BYTES_MAX).unwrap_or(usize::MAX);
        let body: pb::CertificateBody =
            decode_bounded(&outer.body, bytes_max).map_err(|e| malformed(e.to_string()))?;
        if body.format != CERTIFICATE_FORMAT {
            return Err(CertificateError::Format(body.format));
        }
        let peer = PeerId::from_bytes(&body.peer_id).map_err(|_| malformed("bad peer id"))?;
        let role = match pb::PeerRole::try_from(body.role) {
            Ok(pb::PeerRole::Node) => PeerRole::Node,
            Ok(pb::PeerRole::Client) => PeerRole::Client,
            _ => return Err(malformed(format!("unknown role {}", body.role))),
        };
        let serial = <[u8; SERIAL_BYTES]>::try_from(body.serial.as_ref())
            .map_err(|_| malformed("serial is not 16 bytes"))?;
        if body.grants.len() > GRANTS_MAX {
            return Err(malformed(format!("more than {GRANTS_MAX} grants")));
        }
        let grants = body
            .grants
            .into_iter()
            .map(|g| {
                let rights = Rights::from_bits(g.rights)
                    .ok_or_else(|| malformed(format!("unknown rights {:#x}", g.rights)))?;
                Ok(Grant {
                    buckets: g.buckets,
                    rights,
                })
            })
            .collect::<Result<Vec<_>, CertificateError>>()?;
        let spec = CertificateSpec {
            peer,
            role,
            name: body.name,
            zone: body.zone,
            jurisdiction: body.jurisdiction,
            not_before_unix: body.not_before_unix,
            not_after_unix: body.not_after_unix,
            grants,
        };
        spec.check()?;
        Ok(Self {
            body: outer.body,
            signature: outer.signature,
            authority: body.authority.to_vec(),
            spec,
            serial,
        })
    }

    /// Its protobuf form, to carry inside other messages.
    pub fn to_pb(&self) -> pb::Certificate {
        pb::Certificate {
            body: self.body.clone(),
            signature: self.signature.clone(),
        }
    }

    /// Its encoding (for files; messages carry [`Certificate::to_pb`]).
    pub fn encoded(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    /// Whether `authority` signed it (only the signature; see `Trust::verify`).
    pub(crate) fn signed_by(&self, authority: &AuthorityKey) -> Result<(), CertificateError> {
        if self.authority != authority.to_bytes() {
            let found = AuthorityKey::from_bytes(&self.authority)
                .map_or_else(|_| "an invalid key".to_owned(), |k| k.to_string());
            return Err(CertificateError::OtherAuthority {
                expected: authority.to_string(),
                found,
            });
        }
        if !authority.verify(CERTIFICATE_DOMAIN, &self.body, &self.signature) {
            return Err(CertificateError::BadSignature);
        }
        Ok(())
    }

    /// The authority that signed it, as it claims (see `signed_by`).
    ///
    /// # Errors
    /// [`CertificateError::Malformed`] if the field is not a key.
    pub fn issuer(&self) -> Result<AuthorityKey, CertificateError> {
        AuthorityKey::from_bytes(&self.authority).map_err(|e| malformed(e.to_string()))
    }

    /// The certified peer.
    pub fn peer(&self) -> PeerId {
        self.spec.peer
    }

    /// Node or client.
    pub fn role(&self) -> PeerRole {
        self.spec.role
    }

    /// The operator's name for the peer.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Certified failure domain.
    pub fn zone(&self) -> &str {
        &self.spec.zone
    }

    /// Certified jurisdiction.
    pub fn jurisdiction(&self) -> &str {
        &self.spec.jurisdiction
    }

    /// What a client may do, per bucket (empty for a node, and for a client allowed
    /// nothing).
    pub fn grants(&self) -> &[Grant] {
        &self.spec.grants
    }

    /// What this peer may do to `bucket`: every right for a node (its jobs are bounded
    /// by what they are, not by grants), the rights its grants give for a client.
    pub fn rights_on(&self, bucket: &str) -> Rights {
        match self.spec.role {
            PeerRole::Node => Rights::ALL,
            PeerRole::Client => super::grant::rights_on(&self.spec.grants, bucket),
        }
    }

    /// Start of validity (Unix seconds).
    pub fn not_before_unix(&self) -> u64 {
        self.spec.not_before_unix
    }

    /// End of validity (Unix seconds).
    pub fn not_after_unix(&self) -> u64 {
        self.spec.not_after_unix
    }

    /// The issuance's serial, hex.
    pub fn serial(&self) -> String {
        hex::encode(self.serial)
    }

    /// Everything certified.
    pub fn spec(&self) -> &CertificateSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(peer: PeerId) -> CertificateSpec {
        CertificateSpec {
            peer,
            role: PeerRole::Node,
            name: "node-1".into(),
            zone: "rack-1".into(),
            jurisdiction: "FR".into(),
            not_before_unix: 1_000,
            not_after_unix: 2_000,
            grants: Vec::new(),
        }
    }

    #[test]
    fn certificates_round_trip_and_bind_the_authority() {
        let authority = Authority::generate();
        let peer = PeerId::random();
        let cert = authority.certify(spec(peer)).unwrap();
        let again = Certificate::decode(&cert.encoded()).unwrap();
        assert_eq!(again, cert);
        assert_eq!(again.peer(), peer);
        assert_eq!(again.jurisdiction(), "FR");
        assert!(again.signed_by(&authority.public()).is_ok());
        assert!(matches!(
            again.signed_by(&Authority::generate().public()),
            Err(CertificateError::OtherAuthority { .. })
        ));
    }

    #[test]
    fn an_altered_body_fails_the_signature() {
        let authority = Authority::generate();
        let cert = authority.certify(spec(PeerId::random())).unwrap();
        let mut body = pb::CertificateBody::decode(cert.body.clone()).unwrap();
        body.jurisdiction = "US".into();
        let forged = pb::Certificate {
            body: Bytes::from(body.encode_to_vec()),
            signature: cert.signature.clone(),
        };
        let forged = Certificate::from_pb(forged).unwrap();
        assert_eq!(
            forged.signed_by(&authority.public()),
            Err(CertificateError::BadSignature)
        );
    }

    #[test]
    fn malformed_certificates_are_refused() {
        assert!(matches!(
            Certificate::decode(&[0xff; 10]),
            Err(CertificateError::Malformed(_))
        ));
        assert!(matches!(
            Certificate::decode(&vec![0u8; 4096]),
            Err(CertificateError::Malformed(_))
        ));
        let authority = Authority::generate();
        let mut long = spec(PeerId::random());
        long.name = "x".repeat(65);
        assert!(authority.certify(long).is_err());
        let mut empty = spec(PeerId::random());
        empty.not_after_unix = empty.not_before_unix;
        assert!(authority.certify(empty).is_err());
    }
}
