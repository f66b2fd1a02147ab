//! Join tokens: what `andromede-node invite` prints, one line that a new node (`run
//! --join`) or client (`andromede init --join`) needs to join: its certificate, where to
//! join, and — when the authority created the identity — the identity's secret key.
//!
//! A token that carries an identity is a secret good for that one peer only (revocable like
//! any other); one made for an existing peer id (`invite --peer`) carries nothing secret.

use std::fmt;

use andromede_proto::limits::{JOIN_BOOTSTRAP_ADDRS_MAX, JOIN_TOKEN_BYTES_MAX};
use andromede_proto::{Message, decode_bounded, pb};
use bytes::Bytes;
use libp2p::Multiaddr;
use libp2p::identity::{Keypair, ed25519};
use zeroize::Zeroizing;

use super::certificate::{Certificate, CertificateError};
use super::keys::AuthorityKey;
use super::text::{armour, dearmour};

const TOKEN_KIND: &str = "andromede-join-v1";
const TOKEN_FORMAT: u32 = 1;

/// Why a join token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token, or damaged in copying.
    #[error("{0}: copy the whole line `andromede-node invite` printed")]
    Malformed(String),
    /// Its certificate is bad.
    #[error("the token's certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The identity it carries is not the certified one.
    #[error("the token's identity is not the peer its certificate names")]
    IdentityMismatch,
}

/// A decoded join token. Its certificate is signed by the authority it names (checked).
pub struct JoinToken {
    certificate: Certificate,
    authority: AuthorityKey,
    identity: Option<Zeroizing<[u8; 32]>>,
    bootstrap: Vec<Multiaddr>,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("certificate", &self.certificate)
            .field("identity", &self.identity.as_ref().map(|_| "[redacted]"))
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

fn malformed(what: impl Into<String>) -> TokenError {
    TokenError::Malformed(what.into())
}

impl JoinToken {
    /// A token for `certificate`, carrying `identity` when the authority made it.
    ///
    /// # Errors
    /// [`TokenError::IdentityMismatch`] if `identity` is not the certified peer's.
    pub fn new(
        certificate: Certificate,
        identity: Option<&Keypair>,
        mut bootstrap: Vec<Multiaddr>,
    ) -> Result<Self, TokenError> {
        let identity = match identity {
            None => None,
            Some(keypair) => {
                if keypair.public().to_peer_id() != certificate.peer() {
                    return Err(TokenError::IdentityMismatch);
                }
                let ed = keypair
                    .clone()
                    .try_into_ed25519()
                    .map_err(|_| malformed("identity is not an ed25519 key"))?;
                let mut secret = Zeroizing::new([0u8; 32]);
                secret.copy_from_slice(ed.secret().as_ref());
                Some(secret)
            }
        };
        bootstrap.truncate(usize::try_from(JOIN_BOOTSTRAP_ADDRS_MAX).unwrap_or(usize::MAX));
        Ok(Self {
            authority: certificate.issuer()?,
            certificate,
            identity,
            bootstrap,
        })
    }

    /// The one-line text form.
    pub fn encode(&self) -> String {
        let token = pb::JoinToken {
            format: TOKEN_FORMAT,
            certificate: Some(self.certificate.to_pb()),
            identity_secret: self
                .identity
                .as_ref()
                .map(|s| Bytes::copy_from_slice(s.as_ref()))
                .unwrap_or_default(),
            bootstrap: self.bootstrap.iter().map(ToString::to_string).collect(),
        };
        let bytes = Zeroizing::new(token.encode_to_vec());
        armour(TOKEN_KIND, &bytes)
    }

    /// Reads a token, checking that its certificate verifies under the authority it names
    /// and that the identity it carries (if any) is the certified peer.
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        let bytes = Zeroizing::new(
            dearmour(TOKEN_KIND, "a join token", text, JOIN_TOKEN_BYTES_MAX)
                .map_err(|e| malformed(e.to_string()))?,
        );
        let bytes_max = usize::try_from(JOIN_TOKEN_BYTES_MAX).unwrap_or(usize::MAX);
        let token: pb::JoinToken =
            decode_bounded(&bytes, bytes_max).map_err(|e| malformed(e.to_string()))?;
        if token.format != TOKEN_FORMAT {
            return Err(malformed(format!("token format {}", token.format)));
        }
        let certificate = Certificate::from_pb(
            token
                .certificate
                .ok_or_else(|| malformed("no certificate"))?,
        )?;
        let authority = certificate.issuer()?;
        certificate.signed_by(&authority)?;
        if token.bootstrap.len() as u64 > JOIN_BOOTSTRAP_ADDRS_MAX {
            return Err(malformed("too many bootstrap addresses"));
        }
        let bootstrap = token
            .bootstrap
            .iter()
            .map(|a| a.parse().map_err(|_| malformed(format!("bad address {a}"))))
            .collect::<Result<_, _>>()?;
        let identity = if token.identity_secret.is_empty() {
            None
        } else {
            let secret = Zeroizing::new(
                <[u8; 32]>::try_from(token.identity_secret.as_ref())
                    .map_err(|_| malformed("identity is not 32 bytes"))?,
            );
            let keypair = identity_from_secret(&secret)?;
            if keypair.public().to_peer_id() != certificate.peer() {
                return Err(TokenError::IdentityMismatch);
            }
            Some(secret)
        };
        Ok(Self {
            certificate,
            authority,
            identity,
            bootstrap,
        })
    }

    /// The certificate it carries.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The authority that signed it: the cluster the token joins.
    pub fn authority(&self) -> &AuthorityKey {
        &self.authority
    }

    /// Members to join through.
    pub fn bootstrap(&self) -> &[Multiaddr] {
        &self.bootstrap
    }

    /// The identity's secret key, when the token carries one.
    pub fn identity_secret(&self) -> Option<&Zeroizing<[u8; 32]>> {
        self.identity.as_ref()
    }
}

/// The identity key pair of a 32-byte ed25519 secret.
///
/// # Errors
/// [`TokenError::Malformed`] if the bytes are not a secret key.
pub fn identity_from_secret(secret: &[u8; 32]) -> Result<Keypair, TokenError> {
    // libp2p zeroes the bytes it is given: give it a copy.
    let mut copy = Zeroizing::new(*secret);
    let secret = ed25519::SecretKey::try_from_bytes(copy.as_mut())
        .map_err(|_| malformed("identity is not an ed25519 secret key"))?;
    Ok(Keypair::from(ed25519::Keypair::from(secret)))
}

#[cfg(test)]
mod tests {
    use super::super::certificate::{CertificateSpec, PeerRole};
    use super::super::keys::Authority;
    use super::*;

    fn certified(authority: &Authority, keypair: &Keypair) -> Certificate {
        authority
            .certify(CertificateSpec {
                peer: keypair.public().to_peer_id(),
                role: PeerRole::Client,
                name: "laptop".into(),
                zone: String::new(),
                jurisdiction: String::new(),
                not_before_unix: 1,
                not_after_unix: 2,
                grants: Vec::new(),
            })
            .unwrap()
    }

    #[test]
    fn tokens_round_trip_with_and_without_identity() {
        let authority = Authority::generate();
        let keypair = Keypair::generate_ed25519();
        let cert = certified(&authority, &keypair);
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4100".parse().unwrap();
        let token = JoinToken::new(cert.clone(), Some(&keypair), vec![addr.clone()]).unwrap();
        let decoded = JoinToken::decode(&token.encode()).unwrap();
        assert_eq!(decoded.certificate(), &cert);
        assert_eq!(decoded.authority(), &authority.public());
        assert_eq!(decoded.bootstrap(), &[addr]);
        let secret = decoded.identity_secret().unwrap().clone();
        let again = identity_from_secret(&secret).unwrap();
        assert_eq!(again.public().to_peer_id(), keypair.public().to_peer_id());
        let bare = JoinToken::new(cert, None, Vec::new()).unwrap();
        assert!(
            JoinToken::decode(&bare.encode())
                .unwrap()
                .identity_secret()
                .is_none()
        );
        assert!(!format!("{decoded:?}").contains(&hex::encode(secret.as_ref())));
    }

    #[test]
    fn tokens_with_another_identity_or_damage_are_refused() {
        let authority = Authority::generate();
        let keypair = Keypair::generate_ed25519();
        let cert = certified(&authority, &keypair);
        let other = Keypair::generate_ed25519();
        assert_eq!(
            JoinToken::new(cert.clone(), Some(&other), Vec::new()).unwrap_err(),
            TokenError::IdentityMismatch
        );
        let text = JoinToken::new(cert, None, Vec::new()).unwrap().encode();
        assert!(JoinToken::decode(&text[..text.len() - 8]).is_err());
        assert!(JoinToken::decode("andromede-join-v1:").is_err());
        assert!(JoinToken::decode("hello").is_err());
    }
}
