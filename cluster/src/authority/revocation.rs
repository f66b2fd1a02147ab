//! The revocation list: the authority's signed, versioned set of peer ids that are no
//! longer admitted, whatever certificate they show. Members keep the highest version they
//! have seen (on disk, across restarts) and pass newer ones on, so one list given to any
//! member reaches all of them.

use std::collections::BTreeSet;

use andromede_proto::limits::{REVOCATION_LIST_BYTES_MAX, REVOKED_PEERS_MAX};
use andromede_proto::{Message, decode_bounded, pb};
use bytes::Bytes;
use libp2p::PeerId;

use super::keys::{Authority, AuthorityKey};

/// Layout of [`pb::RevocationListBody`] written by this version.
pub const REVOCATION_FORMAT: u32 = 1;
const REVOCATION_DOMAIN: &[u8] = b"andromede revocations v1\0";

/// Why a revocation list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Too large, not protobuf, or with bad fields.
    #[error("malformed revocation list: {0}")]
    Malformed(String),
    /// Not signed by this cluster's authority.
    #[error("revocation list not signed by this cluster's authority")]
    BadSignature,
    /// More peers than a list may name.
    #[error("a revocation list names at most {REVOKED_PEERS_MAX} peers")]
    TooMany,
}

/// A verified revocation list (version 0, empty, is what a member has before any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationList {
    version: u64,
    issued_unix: u64,
    peers: BTreeSet<PeerId>,
    /// The signed form, passed on as received (empty for version 0).
    signed: Option<pb::RevocationList>,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::empty()
    }
}

fn malformed(what: impl Into<String>) -> RevocationError {
    RevocationError::Malformed(what.into())
}

impl RevocationList {
    /// No list yet: version 0, nobody revoked.
    pub fn empty() -> Self {
        Self {
            version: 0,
            issued_unix: 0,
            peers: BTreeSet::new(),
            signed: None,
        }
    }

    /// Verifies a list against `authority`, checking sizes before building anything.
    ///
    /// # Errors
    /// [`RevocationError`].
    pub fn verify(
        signed: pb::RevocationList,
        authority: &AuthorityKey,
    ) -> Result<Self, RevocationError> {
        if !authority.verify(REVOCATION_DOMAIN, &signed.body, &signed.signature) {
            return Err(RevocationError::BadSignature);
        }
        let bytes_max = usize::try_from(REVOCATION_LIST_BYTES_MAX).unwrap_or(usize::MAX);
        // Signed by the authority, so the count is the authority's; still bounded by size.
        let body: pb::RevocationListBody =
            decode_bounded(&signed.body, bytes_max).map_err(|e| malformed(e.to_string()))?;
        if body.format != REVOCATION_FORMAT {
            return Err(malformed(format!("format {} not supported", body.format)));
        }
        if body.authority.as_ref() != authority.to_bytes() {
            return Err(RevocationError::BadSignature);
        }
        if body.peer_ids.len() as u64 > REVOKED_PEERS_MAX {
            return Err(RevocationError::TooMany);
        }
        let peers = body
            .peer_ids
            .iter()
            .map(|id| PeerId::from_bytes(id).map_err(|_| malformed("bad peer id")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            version: body.version,
            issued_unix: body.issued_unix,
            peers,
            signed: Some(signed),
        })
    }

    /// Decodes and verifies an encoded list.
    ///
    /// # Errors
    /// [`RevocationError`].
    pub fn decode(bytes: &[u8], authority: &AuthorityKey) -> Result<Self, RevocationError> {
        let bytes_max = usize::try_from(REVOCATION_LIST_BYTES_MAX + 256).unwrap_or(usize::MAX);
        let signed: pb::RevocationList =
            decode_bounded(bytes, bytes_max).map_err(|e| malformed(e.to_string()))?;
        Self::verify(signed, authority)
    }

    /// The version (0: no list).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the authority signed it (Unix seconds).
    pub fn issued_unix(&self) -> u64 {
        self.issued_unix
    }

    /// Whether `peer` is revoked.
    pub fn revokes(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    /// The revoked peers.
    pub fn peers(&self) -> &BTreeSet<PeerId> {
        &self.peers
    }

    /// The signed form, to pass on (none for version 0).
    pub fn signed(&self) -> Option<&pb::RevocationList> {
        self.signed.as_ref()
    }

    /// Its encoding (empty for version 0).
    pub fn encode(&self) -> Vec<u8> {
        self.signed
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default()
    }
}

impl Authority {
    /// Signs the list that follows `previous` with `peer` added.
    ///
    /// # Errors
    /// [`RevocationError::TooMany`] when the list is full.
    pub fn revoke(
        &self,
        previous: &RevocationList,
        peer: PeerId,
        now_unix: u64,
    ) -> Result<RevocationList, RevocationError> {
        let mut peers = previous.peers.clone();
        peers.insert(peer);
        if peers.len() as u64 > REVOKED_PEERS_MAX {
            return Err(RevocationError::TooMany);
        }
        let body = pb::RevocationListBody {
            format: REVOCATION_FORMAT,
            authority: Bytes::copy_from_slice(&self.public().to_bytes()),
            version: previous.version + 1,
            issued_unix: now_unix,
            peer_ids: peers.iter().map(|p| Bytes::from(p.to_bytes())).collect(),
        }
        .encode_to_vec();
        let signature = self.sign(REVOCATION_DOMAIN, &body);
        RevocationList::verify(
            pb::RevocationList {
                body: Bytes::from(body),
                signature: Bytes::from(signature),
            },
            &self.public(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_grow_in_version_and_verify_only_under_their_authority() {
        let authority = Authority::generate();
        let (a, b) = (PeerId::random(), PeerId::random());
        let first = authority.revoke(&RevocationList::empty(), a, 10).unwrap();
        let second = authority.revoke(&first, b, 11).unwrap();
        assert_eq!((first.version(), second.version()), (1, 2));
        assert!(second.revokes(&a) && second.revokes(&b));
        let decoded = RevocationList::decode(&second.encode(), &authority.public()).unwrap();
        assert_eq!(decoded, second);
        assert_eq!(
            RevocationList::decode(&second.encode(), &Authority::generate().public()),
            Err(RevocationError::BadSignature)
        );
        let mut tampered = second.signed().unwrap().clone();
        let mut body = pb::RevocationListBody::decode(tampered.body.clone()).unwrap();
        body.version = 99;
        tampered.body = Bytes::from(body.encode_to_vec());
        assert_eq!(
            RevocationList::verify(tampered, &authority.public()),
            Err(RevocationError::BadSignature)
        );
    }
}
