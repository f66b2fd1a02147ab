//! Signed records (DESIGN.md, "Metadata"): every record is signed by its author, a node or
//! a client, with the ed25519 key of its peer id, over what identifies it and what it
//! says — table, partition, sort key, version, tombstone flag, value. The version's writer
//! is the author's peer id, so a version cannot be raised, nor a record moved to another
//! key, without the author's key: a replica can withhold a record, never forge one or
//! roll one back.
//!
//! - [`RecordSigner`]: what a writer signs with (its key pair and certificate).
//! - [`RecordVerifier`]: what replicas (before applying) and readers (before believing)
//!   check: the signature, the certificate (this cluster's authority, for the writer's
//!   peer id, valid when the record was written) and what the author may write
//!   ([`super::authorship`]). A verified certificate is remembered, so a record costs one
//!   signature check once its author is known.
//!
//! A revoked author's records keep verifying: they were written while it was trusted,
//! and revocation stops the peer from connecting at all. An expired certificate covers
//! the records stamped before it expired; replicas refuse far-future stamps, so an
//! author whose certificate expired cannot write a record that wins over later ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use andromede_proto::pb;
use bytes::Bytes;
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};

use super::authorship;
use super::key::RecordKey;
use super::record::{KeyedRecord, Record, Seal, Version};
use crate::authority::trust::CLOCK_SKEW_SECS;
use crate::authority::{AuthorityKey, Certificate, CertificateError, PeerRole};

/// Domain-separation prefix of a record signature.
const RECORD_DOMAIN: &[u8] = b"andromede record v1\0";
/// blake3 derivation context of the digest a record signature covers.
const DIGEST_CONTEXT: &str = "andromede 2026 metadata record digest v1";
/// Authors whose certificates a verifier remembers (cleared when full).
const AUTHORS_CACHED_MAX: usize = 4096;

/// Why a record's seal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The record carries no seal.
    #[error("record is not signed")]
    Unsigned,
    /// The author's certificate does not verify.
    #[error("record author's certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The version's writer is not the certificate's peer.
    #[error("record version names writer {writer}, but its certificate is for {certified}")]
    WrongWriter {
        /// The writer, as the version says (hex if not a peer id).
        writer: String,
        /// The certificate's peer.
        certified: String,
    },
    /// The record was stamped after its author's certificate expired.
    #[error(
        "record written at {written_unix} (Unix seconds), after its author's certificate expired ({not_after_unix})"
    )]
    Expired {
        /// The record's stamp.
        written_unix: u64,
        /// Certificate end.
        not_after_unix: u64,
    },
    /// The signature does not verify.
    #[error("record signature does not verify (forged or altered)")]
    BadSignature,
    /// The author may not write this record.
    #[error("{0}")]
    NotAllowed(String),
    /// Signing failed (this peer's key).
    #[error("cannot sign the record: {0}")]
    Signing(String),
}

/// A verified author: its certificate and public key.
#[derive(Debug)]
pub struct Author {
    /// The certificate, checked against the authority.
    pub certificate: Certificate,
    key: PublicKey,
}

impl Author {
    /// A client or a node.
    pub fn role(&self) -> PeerRole {
        self.certificate.role()
    }

    /// "client NAME (PEER)" or "node NAME (PEER)": who wrote a record, for people.
    pub fn describe(&self) -> String {
        describe(&self.certificate)
    }
}

/// Who a certificate names, for people: "client NAME (PEER)" or "node NAME (PEER)".
fn describe(certificate: &Certificate) -> String {
    format!(
        "{} {} ({})",
        certificate.role(),
        certificate.name(),
        certificate.peer()
    )
}

/// The message an author signs for `record` at `key`: the domain prefix and a digest of
/// every field, each length-prefixed so that no two records share a message.
pub fn signed_message(key: &RecordKey, version: &Version, value: Option<&[u8]>) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
    hasher.update(&[key.table as u8]);
    for part in [key.partition.as_bytes(), &key.sort] {
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.update(&version.timestamp.wall_ms.to_be_bytes());
    hasher.update(&version.timestamp.logical.to_be_bytes());
    let writer = version.writer.as_bytes();
    hasher.update(&(writer.len() as u64).to_be_bytes());
    hasher.update(writer);
    match value {
        None => hasher.update(&[0]),
        Some(value) => {
            hasher.update(&[1]);
            hasher.update(&(value.len() as u64).to_be_bytes());
            hasher.update(value)
        }
    };
    let mut message = Vec::with_capacity(RECORD_DOMAIN.len() + 32);
    message.extend_from_slice(RECORD_DOMAIN);
    message.extend_from_slice(hasher.finalize().as_bytes());
    message
}

/// Signs the records this peer writes.
#[derive(Clone)]
pub struct RecordSigner {
    keypair: Keypair,
    author: pb::Certificate,
    described: String,
}

impl std::fmt::Debug for RecordSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSigner")
            .field("peer", &self.keypair.public().to_peer_id())
            .finish_non_exhaustive()
    }
}

impl RecordSigner {
    /// Signs as `keypair`'s peer, certified by `certificate`.
    pub fn new(keypair: Keypair, certificate: &Certificate) -> Self {
        Self {
            keypair,
            author: certificate.to_pb(),
            described: describe(certificate),
        }
    }

    /// Who signs, for people ([`Author::describe`]).
    pub fn author(&self) -> &str {
        &self.described
    }

    /// The author's peer id (every version this signer stamps names it).
    pub fn peer(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// `record` at `key`, signed, with `causes` (the client-signed records that justify
    /// a record a node writes for itself; none for a client).
    ///
    /// # Errors
    /// [`SealError::Signing`] if the key cannot sign.
    pub fn sign(
        &self,
        key: &RecordKey,
        mut record: Record<Bytes>,
        causes: Vec<KeyedRecord>,
    ) -> Result<Record<Bytes>, SealError> {
        let message = signed_message(key, &record.version, record.value.as_deref());
        let signature = self
            .keypair
            .sign(&message)
            .map_err(|e| SealError::Signing(e.to_string()))?;
        record.seal = Some(Arc::new(Seal {
            author: self.author.clone(),
            signature: Bytes::from(signature),
            causes,
        }));
        Ok(record)
    }
}

/// The public key a peer id names (ed25519 peer ids embed it).
fn peer_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    // Code 0: the identity multihash, whose digest is the encoded public key.
    (multihash.code() == 0)
        .then(|| PublicKey::try_decode_protobuf(multihash.digest()).ok())
        .flatten()
}

/// Checks records' seals against this cluster's authority.
#[derive(Debug)]
pub struct RecordVerifier {
    authority: AuthorityKey,
    /// Verified authors, by their certificate's signature.
    authors: Mutex<HashMap<Bytes, Arc<Author>>>,
}

impl RecordVerifier {
    /// A verifier for the cluster of `authority`.
    pub fn new(authority: AuthorityKey) -> Self {
        Self {
            authority,
            authors: Mutex::new(HashMap::new()),
        }
    }

    /// The author of `certificate`, verified against the authority (remembered).
    fn author(&self, certificate: &pb::Certificate) -> Result<Arc<Author>, SealError> {
        let cached = self
            .authors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&certificate.signature)
            .cloned();
        if let Some(author) = cached
            && author.certificate.to_pb() == *certificate
        {
            return Ok(author);
        }
        let decoded = Certificate::from_pb(certificate.clone())?;
        decoded.signed_by(&self.authority)?;
        let key = peer_key(&decoded.peer()).ok_or_else(|| {
            SealError::Certificate(CertificateError::Malformed(
                "the certified peer id does not embed an ed25519 key".into(),
            ))
        })?;
        let author = Arc::new(Author {
            certificate: decoded,
            key,
        });
        let mut authors = self.authors.lock().unwrap_or_else(|e| e.into_inner());
        if authors.len() >= AUTHORS_CACHED_MAX {
            authors.clear();
        }
        authors.insert(certificate.signature.clone(), Arc::clone(&author));
        Ok(author)
    }

    /// The author of `record` at `key` if its seal verifies: signature, certificate, and
    /// what that author may write (for a node, with the causes it carries).
    ///
    /// # Errors
    /// [`SealError`]: the first check that fails.
    pub fn verify(
        &self,
        key: &RecordKey,
        record: &Record<Bytes>,
    ) -> Result<Arc<Author>, SealError> {
        let author = self.verify_signature(key, record)?;
        let seal = record.seal.as_deref().ok_or(SealError::Unsigned)?;
        let refusal = match author.role() {
            PeerRole::Client => {
                if seal.causes.is_empty() {
                    authorship::client_refusal(
                        key,
                        record.is_tombstone(),
                        author.certificate.grants(),
                    )
                } else {
                    Some("a client's record carries no causes".to_owned())
                }
            }
            PeerRole::Node => {
                let mut causes = Vec::with_capacity(seal.causes.len());
                for (cause_key, cause) in &seal.causes {
                    let cause_author = self.verify_signature(cause_key, cause)?;
                    if cause_author.role() != PeerRole::Client {
                        return Err(SealError::NotAllowed(
                            "a node's record is justified by client-signed records only".into(),
                        ));
                    }
                    if let Some(refusal) = authorship::client_refusal(
                        cause_key,
                        cause.is_tombstone(),
                        cause_author.certificate.grants(),
                    ) {
                        return Err(SealError::NotAllowed(format!("its cause: {refusal}")));
                    }
                    causes.push((cause_key, cause));
                }
                authorship::node_refusal(key, record, &causes)
            }
        };
        match refusal {
            Some(refusal) => Err(SealError::NotAllowed(refusal)),
            None => Ok(author),
        }
    }

    /// The author of a record already verified (by [`RecordVerifier::verify`], as every
    /// record a quorum read returns is): its certificate, without checking the
    /// signature again.
    ///
    /// # Errors
    /// [`SealError`] if it carries no seal or its certificate does not verify.
    pub fn author_of(&self, record: &Record<Bytes>) -> Result<Arc<Author>, SealError> {
        self.author(&record.seal.as_deref().ok_or(SealError::Unsigned)?.author)
    }

    /// Signature, certificate and writer of one record (not what it may write).
    fn verify_signature(
        &self,
        key: &RecordKey,
        record: &Record<Bytes>,
    ) -> Result<Arc<Author>, SealError> {
        let seal = record.seal.as_deref().ok_or(SealError::Unsigned)?;
        let author = self.author(&seal.author)?;
        let certified = author.certificate.peer();
        if record.version.writer.as_bytes() != certified.to_bytes().as_slice() {
            let writer = PeerId::from_bytes(record.version.writer.as_bytes()).map_or_else(
                |_| hex::encode(record.version.writer.as_bytes()),
                |p| p.to_string(),
            );
            return Err(SealError::WrongWriter {
                writer,
                certified: certified.to_string(),
            });
        }
        // Stamped after its certificate expired: refused. (Stamped before it began is not:
        // a writer whose clock is behind stamps so, and such a record loses to every later
        // one anyway.)
        let written_unix = record.version.timestamp.wall_ms / 1000;
        let not_after_unix = author.certificate.not_after_unix();
        if written_unix >= not_after_unix.saturating_add(CLOCK_SKEW_SECS) {
            return Err(SealError::Expired {
                written_unix,
                not_after_unix,
            });
        }
        let message = signed_message(key, &record.version, record.value.as_deref());
        if !author.key.verify(&message, &seal.signature) {
            return Err(SealError::BadSignature);
        }
        Ok(author)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authority::{Authority, CertificateSpec, Grant};
    use crate::meta::hlc::Timestamp;
    use crate::meta::key::Table;
    use crate::meta::record::WriterId;
    use crate::meta::values::GarbageEntry;

    struct Cluster {
        authority: Authority,
        verifier: RecordVerifier,
    }

    impl Cluster {
        fn new() -> Self {
            let authority = Authority::generate();
            let verifier = RecordVerifier::new(authority.public());
            Self {
                authority,
                verifier,
            }
        }

        fn peer(&self, role: PeerRole, grants: &[&str]) -> RecordSigner {
            let keypair = Keypair::generate_ed25519();
            let grants = grants.iter().map(|g| g.parse::<Grant>().unwrap()).collect();
            let spec = CertificateSpec::new(
                keypair.public().to_peer_id(),
                role,
                "peer",
                Duration::from_secs(3600),
            )
            .granted(grants);
            let certificate = self.authority.certify(spec).unwrap();
            RecordSigner::new(keypair, &certificate)
        }
    }

    fn now_version(signer: &RecordSigner, ahead_ms: u64, writer: Option<&[u8]>) -> Version {
        let wall_ms = crate::authority::unix_now() * 1000 + ahead_ms;
        Version {
            timestamp: Timestamp {
                wall_ms,
                logical: 0,
            },
            writer: WriterId::new(Bytes::copy_from_slice(
                writer.unwrap_or(&signer.peer().to_bytes()),
            ))
            .unwrap(),
        }
    }

    fn key(table: Table, partition: &str, sort: &[u8]) -> RecordKey {
        RecordKey {
            table,
            partition: partition.to_owned(),
            sort: sort.to_vec(),
        }
    }

    #[test]
    fn a_signed_record_verifies_and_any_change_breaks_it() {
        let cluster = Cluster::new();
        let client = cluster.peer(PeerRole::Client, &["photos:all"]);
        let index = key(Table::ObjectIndex, "photos", b"cat.jpg");
        let record = Record::live(now_version(&client, 0, None), Bytes::from_static(b"v1"));
        let signed = client.sign(&index, record, Vec::new()).unwrap();
        let author = cluster.verifier.verify(&index, &signed).unwrap();
        assert_eq!(author.role(), PeerRole::Client);
        // Survives the wire and the disk.
        let decoded = Record::decode(&signed.encode()).unwrap();
        assert!(cluster.verifier.verify(&index, &decoded).is_ok());

        assert_eq!(
            cluster
                .verifier
                .verify(&index, &Record::live(signed.version.clone(), Bytes::new()))
                .err(),
            Some(SealError::Unsigned)
        );
        let mut altered = signed.clone();
        altered.value = Some(Bytes::from_static(b"v0"));
        assert_eq!(
            cluster.verifier.verify(&index, &altered).err(),
            Some(SealError::BadSignature)
        );
        // Moved to another key.
        let elsewhere = key(Table::ObjectIndex, "photos", b"dog.jpg");
        assert_eq!(
            cluster.verifier.verify(&elsewhere, &signed).err(),
            Some(SealError::BadSignature)
        );
        // Rolled forward: the same record re-versioned ahead, by its writer or a maximal
        // one.
        let mut ahead = signed.clone();
        ahead.version.timestamp.wall_ms += 60_000;
        assert_eq!(
            cluster.verifier.verify(&index, &ahead).err(),
            Some(SealError::BadSignature)
        );
        let mut maximal = signed.clone();
        maximal.version.writer = WriterId::new(vec![0xff; 64]).unwrap();
        assert!(matches!(
            cluster.verifier.verify(&index, &maximal),
            Err(SealError::WrongWriter { .. })
        ));
        // Signed by a key of another cluster.
        let stranger = Cluster::new().peer(PeerRole::Client, &["*:all"]);
        let foreign = stranger
            .sign(
                &index,
                Record::live(now_version(&stranger, 0, None), Bytes::new()),
                Vec::new(),
            )
            .unwrap();
        assert!(matches!(
            cluster.verifier.verify(&index, &foreign),
            Err(SealError::Certificate(
                CertificateError::OtherAuthority { .. }
            ))
        ));
    }

    #[test]
    fn an_author_writes_only_what_its_grants_or_its_job_allow() {
        let cluster = Cluster::new();
        let reader = cluster.peer(PeerRole::Client, &["photos:read"]);
        let writer = cluster.peer(PeerRole::Client, &["photos:write"]);
        let node = cluster.peer(PeerRole::Node, &[]);
        let sign = |signer: &RecordSigner, key: &RecordKey, value: Option<&[u8]>, causes| {
            let version = now_version(signer, 0, None);
            let record = match value {
                Some(v) => Record::live(version, Bytes::copy_from_slice(v)),
                None => Record::tombstone(version),
            };
            signer.sign(key, record, causes).unwrap()
        };
        let index = key(Table::ObjectIndex, "photos", b"cat.jpg");
        let by_reader = sign(&reader, &index, Some(b"v"), Vec::new());
        assert!(matches!(
            cluster.verifier.verify(&index, &by_reader),
            Err(SealError::NotAllowed(why)) if why == "this client may not write bucket photos"
        ));
        assert!(
            cluster
                .verifier
                .verify(&index, &sign(&writer, &index, Some(b"v"), Vec::new()))
                .is_ok()
        );
        // A node writes no index entry, no bucket policy, whatever it claims.
        for key in [&index, &key(Table::Bucket, "", b"photos")] {
            let forged = sign(&node, key, Some(b"v"), Vec::new());
            assert!(matches!(
                cluster.verifier.verify(key, &forged),
                Err(SealError::NotAllowed(_))
            ));
        }
        // The collector's manifest tombstone needs the client-signed garbage record.
        let version_id = [7u8; 16];
        let manifest_key = key(Table::Manifest, "photos", &version_id);
        let bare = sign(&node, &manifest_key, None, Vec::new());
        assert!(cluster.verifier.verify(&manifest_key, &bare).is_err());
        let garbage_key = key(Table::Garbage, "photos", &version_id);
        let garbage = GarbageEntry {
            due_ms: 1,
            key: "cat.jpg".into(),
            upload: false,
        }
        .encode();
        let garbage_record = sign(&writer, &garbage_key, Some(&garbage), Vec::new());
        let justified = sign(
            &node,
            &manifest_key,
            None,
            vec![(garbage_key.clone(), garbage_record.clone())],
        );
        assert!(cluster.verifier.verify(&manifest_key, &justified).is_ok());
        // ...naming that version, not another.
        let other_key = key(Table::Manifest, "photos", &[8u8; 16]);
        let misused = sign(
            &node,
            &other_key,
            None,
            vec![(garbage_key.clone(), garbage_record)],
        );
        assert!(cluster.verifier.verify(&other_key, &misused).is_err());
        // A garbage record "signed" by a node justifies nothing.
        let node_garbage = sign(&node, &garbage_key, Some(&garbage), Vec::new());
        let laundered = sign(
            &node,
            &manifest_key,
            None,
            vec![(garbage_key, node_garbage)],
        );
        assert!(matches!(
            cluster.verifier.verify(&manifest_key, &laundered),
            Err(SealError::NotAllowed(_))
        ));
    }
}
