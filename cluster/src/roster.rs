//! [`Roster`]: the cluster's members as the authority made them (DESIGN.md, "Metadata").
//!
//! The roster is every node holding a valid, unrevoked node certificate, with the
//! addresses it last listened on. Metadata replica sets are computed from it, not from
//! who answers: a member that is down still holds its place in its sets, so a node cut
//! off from the others never counts as a quorum of its own.
//!
//! - **Spread.** Certificates are signed by the authority, so any member may pass them on:
//!   each node holds a roster, announces its digest in its node info, and merges the
//!   roster of any peer whose digest differs. A certificate learnt this way is checked
//!   as admission checks it (authority, role node, validity, revocation).
//! - **Addresses** are hints, not statements: a node's own entry, as it sends it, replaces
//!   older addresses (by the node's own `addrs_unix`); from anyone else they are taken
//!   only for a node this roster has no address for yet. A forged address costs one
//!   failed dial: the Noise handshake proves the peer id.
//! - **Kept on disk** by every node (`roster.pb` in its data directory, replaced
//!   atomically), so that a restarted node finds its peers without its bootstrap list.
//! - **Leaving** is explicit: a revoked (or retired) node leaves at once, an expired
//!   certificate when it expires, a renewed certificate replaces the older one. A member
//!   that leaves is kept as *departed*: it holds its place in the replica sets known to
//!   be complete until every member says it has copied the partitions that moved to it
//!   (the hand-off, listed in its node info), so a read never counts a replica that
//!   took a partition over before it holds the partition's records. A departure is taken
//!   from a peer only when this peer's own trust refuses the certificate too.

use std::collections::BTreeMap;
use std::path::Path;

use andromede_proto::limits::{
    ROSTER_ADDR_BYTES_MAX, ROSTER_ADDRS_MAX, ROSTER_BYTES_MAX, ROSTER_MEMBERS_MAX,
};
use andromede_proto::{Message, decode_bounded, pb};
use libp2p::{Multiaddr, PeerId};

use crate::authority::files::replace_file_bytes;
use crate::authority::{AuthorityFileError, Certificate, CertificateError, PeerRole, Trust};

/// Why a roster (a message or the file) is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// Too large or not protobuf.
    #[error("malformed roster: {0}")]
    Malformed(String),
    /// Reading or writing the file failed.
    #[error(transparent)]
    File(#[from] AuthorityFileError),
}

/// One member: its certificate and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its node certificate (verified before it entered the roster).
    pub certificate: Certificate,
    /// Addresses it listens on (at most `ROSTER_ADDRS_MAX`).
    pub addrs: Vec<Multiaddr>,
    /// When the node last saw its addresses change (its clock, Unix seconds).
    pub addrs_unix: u64,
}

impl RosterEntry {
    /// The member's peer id.
    pub fn peer(&self) -> PeerId {
        self.certificate.peer()
    }

    pub(crate) fn to_pb(&self) -> pb::RosterEntry {
        pb::RosterEntry {
            certificate: self.certificate.encoded().into(),
            addrs: self.addrs.iter().map(ToString::to_string).collect(),
            addrs_unix: self.addrs_unix,
        }
    }

    /// The entry `entry` describes, if its certificate decodes; unparsable or oversized
    /// addresses are dropped (they are hints).
    fn from_pb(entry: pb::RosterEntry) -> Result<Self, CertificateError> {
        let certificate = Certificate::decode(&entry.certificate)?;
        let addrs = entry
            .addrs
            .iter()
            .filter(|a| a.len() as u64 <= ROSTER_ADDR_BYTES_MAX)
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .take(usize::try_from(ROSTER_ADDRS_MAX).unwrap_or(usize::MAX))
            .collect();
        Ok(Self {
            certificate,
            addrs,
            addrs_unix: entry.addrs_unix,
        })
    }
}

/// What merging changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Members that entered the roster.
    pub added: usize,
    /// Entries whose certificate or addresses changed.
    pub updated: usize,
    /// Entries refused (their certificate does not verify, or the roster is full).
    pub refused: usize,
}

impl Merged {
    /// Whether the roster changed.
    pub fn changed(&self) -> bool {
        self.added + self.updated > 0
    }
}

/// The members, by peer id, and those that left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    entries: BTreeMap<PeerId, RosterEntry>,
    /// Members that left and keep their place in replica sets until handed off.
    departed: BTreeMap<PeerId, RosterEntry>,
    /// Departed members this node has handed off for, and when (Unix seconds): its own
    /// state, kept in its file, never sent as roster.
    handed_off: BTreeMap<PeerId, u64>,
}

/// What a peer sends when asked for its roster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterSnapshot {
    /// Its members.
    pub entries: Vec<RosterEntry>,
    /// Members that left and are not handed off everywhere yet.
    pub departed: Vec<RosterEntry>,
}

impl Roster {
    /// No member yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The members, sorted by peer id.
    pub fn entries(&self) -> impl Iterator<Item = &RosterEntry> {
        self.entries.values()
    }

    /// The entry of `peer`, if it is a member.
    pub fn get(&self, peer: &PeerId) -> Option<&RosterEntry> {
        self.entries.get(peer)
    }

    /// Whether `peer` is a member.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.entries.contains_key(peer)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Merges `entry`, received from `sender` (`None`: learnt locally, e.g. at admission
    /// or the node's own), if its certificate verifies against `trust` at `now_unix` as a
    /// node certificate. Returns what changed.
    pub fn merge(
        &mut self,
        entry: RosterEntry,
        sender: Option<PeerId>,
        trust: &Trust,
        now_unix: u64,
    ) -> Merged {
        let mut merged = Merged::default();
        let peer = entry.peer();
        if trust
            .verify_role(&entry.certificate, &peer, PeerRole::Node, now_unix)
            .is_err()
        {
            merged.refused += 1;
            return merged;
        }
        let from_itself = sender.is_none_or(|s| s == peer);
        // A renewed certificate brings a member that expired back.
        self.departed.remove(&peer);
        match self.entries.get_mut(&peer) {
            None => {
                if self.entries.len() as u64 >= ROSTER_MEMBERS_MAX {
                    merged.refused += 1;
                    return merged;
                }
                let mut entry = entry;
                if !from_itself {
                    // Hints from a third party: kept, but any word of the node's own wins.
                    entry.addrs_unix = 0;
                }
                self.entries.insert(peer, entry);
                merged.added += 1;
            }
            Some(held) => {
                let mut changed = false;
                if entry.certificate.not_after_unix() > held.certificate.not_after_unix() {
                    held.certificate = entry.certificate;
                    changed = true;
                }
                let newer_addrs =
                    from_itself && entry.addrs_unix > held.addrs_unix && entry.addrs != held.addrs;
                let first_addrs = held.addrs.is_empty() && !entry.addrs.is_empty();
                if newer_addrs || first_addrs {
                    held.addrs = entry.addrs;
                    held.addrs_unix = if from_itself { entry.addrs_unix } else { 0 };
                    changed = true;
                }
                if changed {
                    merged.updated += 1;
                }
            }
        }
        merged
    }

    /// Merges every entry of `other` (see [`Roster::merge`]).
    pub fn merge_all(
        &mut self,
        other: Vec<RosterEntry>,
        sender: Option<PeerId>,
        trust: &Trust,
        now_unix: u64,
    ) -> Merged {
        let mut total = Merged::default();
        for entry in other {
            let merged = self.merge(entry, sender, trust, now_unix);
            total.added += merged.added;
            total.updated += merged.updated;
            total.refused += merged.refused;
        }
        total
    }

    /// Takes a departure a peer reports, if this peer's own `trust` refuses the
    /// certificate too (revoked, or expired) while the authority did sign it for a node;
    /// returns whether it is new here.
    pub fn merge_departed(&mut self, entry: RosterEntry, trust: &Trust, now_unix: u64) -> bool {
        let peer = entry.peer();
        let certified_node = entry.certificate.signed_by(trust.authority()).is_ok()
            && entry.certificate.role() == PeerRole::Node;
        let refused = trust
            .verify_role(&entry.certificate, &peer, PeerRole::Node, now_unix)
            .is_err();
        if !certified_node
            || !refused
            || self.entries.contains_key(&peer)
            || self.departed.contains_key(&peer)
            || self.departed.len() as u64 >= ROSTER_MEMBERS_MAX
        {
            return false;
        }
        self.departed.insert(peer, entry);
        true
    }

    /// Whether `peer` left and is not handed off everywhere yet.
    pub fn is_departed(&self, peer: &PeerId) -> bool {
        self.departed.contains_key(peer)
    }

    /// Members that left and keep their place in replica sets until handed off.
    pub fn departed(&self) -> impl Iterator<Item = &RosterEntry> {
        self.departed.values()
    }

    /// Forgets a departed member: every member has handed off for it.
    pub fn forget_departed(&mut self, peer: &PeerId) -> bool {
        self.departed.remove(peer).is_some()
    }

    /// Records that this node has handed off for `peers` at `now_unix`.
    pub fn mark_handed_off(&mut self, peers: &[PeerId], now_unix: u64) {
        for peer in peers {
            self.handed_off.entry(*peer).or_insert(now_unix);
        }
    }

    /// The departed members this node has handed off for.
    pub fn handed_off(&self) -> impl Iterator<Item = &PeerId> {
        self.handed_off.keys()
    }

    /// Forgets hand-offs done before `before_unix` whose member is no longer departed
    /// here (a peer slower to see every member confirm has had that long to look).
    pub fn prune_handed_off(&mut self, before_unix: u64) -> bool {
        let departed = &self.departed;
        let before = self.handed_off.len();
        self.handed_off
            .retain(|peer, at| *at >= before_unix || departed.contains_key(peer));
        self.handed_off.len() != before
    }

    /// What a peer asking for the roster is sent.
    pub fn snapshot(&self) -> RosterSnapshot {
        RosterSnapshot {
            entries: self.entries.values().cloned().collect(),
            departed: self.departed.values().cloned().collect(),
        }
    }

    /// Moves the members whose certificate expired or who were revoked to the departed;
    /// returns them.
    pub fn drop_invalid(&mut self, trust: &Trust, now_unix: u64) -> Vec<PeerId> {
        let gone: Vec<PeerId> = self
            .entries
            .iter()
            .filter(|(peer, e)| {
                trust
                    .verify_role(&e.certificate, peer, PeerRole::Node, now_unix)
                    .is_err()
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &gone {
            if let Some(entry) = self.entries.remove(peer)
                && (self.departed.len() as u64) < ROSTER_MEMBERS_MAX
            {
                self.departed.insert(*peer, entry);
            }
        }
        gone
    }

    /// Sets this node's own addresses (stamped `now_unix` when they changed).
    pub fn set_own_addrs(&mut self, peer: &PeerId, mut addrs: Vec<Multiaddr>, now_unix: u64) {
        addrs.truncate(usize::try_from(ROSTER_ADDRS_MAX).unwrap_or(usize::MAX));
        if let Some(entry) = self.entries.get_mut(peer)
            && entry.addrs != addrs
        {
            entry.addrs = addrs;
            entry.addrs_unix = now_unix.max(entry.addrs_unix.saturating_add(1));
        }
    }

    /// A digest of what the roster holds (members, certificates, addresses): two nodes
    /// with the same digest have nothing to tell each other.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("andromede roster digest v1");
        for entry in self.entries.values() {
            let certificate = entry.certificate.encoded();
            hasher.update(&(certificate.len() as u64).to_le_bytes());
            hasher.update(&certificate);
            hasher.update(&entry.addrs_unix.to_le_bytes());
            for addr in &entry.addrs {
                let addr = addr.to_vec();
                hasher.update(&(addr.len() as u64).to_le_bytes());
                hasher.update(&addr);
            }
        }
        hasher.update(b"departed");
        for peer in self.departed.keys() {
            let peer = peer.to_bytes();
            hasher.update(&(peer.len() as u64).to_le_bytes());
            hasher.update(&peer);
        }
        *hasher.finalize().as_bytes()
    }

    /// A digest of who the members are (and who departed), leaving out addresses and
    /// renewals: two views with the same one compute the same replica sets.
    pub fn members_digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("andromede roster members v1");
        for (what, peers) in [(b"m", &self.entries), (b"d", &self.departed)] {
            hasher.update(what);
            for peer in peers.keys() {
                let peer = peer.to_bytes();
                hasher.update(&(peer.len() as u64).to_le_bytes());
                hasher.update(&peer);
            }
        }
        *hasher.finalize().as_bytes()
    }

    /// The file form (with this node's hand-offs).
    pub fn to_pb(&self) -> pb::Roster {
        pb::Roster {
            entries: self.entries.values().map(RosterEntry::to_pb).collect(),
            departed: self.departed.values().map(RosterEntry::to_pb).collect(),
            handed_off: self
                .handed_off
                .iter()
                .map(|(peer, at)| pb::HandedOff {
                    peer_id: peer.to_bytes().into(),
                    at_unix: *at,
                })
                .collect(),
        }
    }

    /// The entries of a received roster, decoded but not yet verified (merging verifies);
    /// entries whose certificate does not decode are skipped.
    ///
    /// # Errors
    /// [`RosterError::Malformed`] when it names more than `ROSTER_MEMBERS_MAX` members.
    pub fn entries_from_pb(roster: pb::Roster) -> Result<RosterSnapshot, RosterError> {
        for (what, count) in [
            ("members", roster.entries.len()),
            ("departed", roster.departed.len()),
        ] {
            if count as u64 > ROSTER_MEMBERS_MAX {
                return Err(RosterError::Malformed(format!(
                    "{count} {what}, at most {ROSTER_MEMBERS_MAX}"
                )));
            }
        }
        let decode = |entries: Vec<pb::RosterEntry>| {
            entries
                .into_iter()
                .filter_map(|e| RosterEntry::from_pb(e).ok())
                .collect()
        };
        Ok(RosterSnapshot {
            entries: decode(roster.entries),
            departed: decode(roster.departed),
        })
    }

    /// The roster kept in `path` (empty when there is no file yet), its entries verified
    /// against `trust` at `now_unix`: members that expired or were revoked meanwhile are
    /// left out.
    ///
    /// # Errors
    /// [`RosterError`] when the file cannot be read or is not a roster.
    pub fn load(path: &Path, trust: &Trust, now_unix: u64) -> Result<Self, RosterError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(error) => {
                return Err(AuthorityFileError::Io {
                    path: path.to_owned(),
                    error,
                }
                .into());
            }
        };
        let bytes_max = usize::try_from(ROSTER_BYTES_MAX).unwrap_or(usize::MAX);
        let roster: pb::Roster = decode_bounded(&bytes, bytes_max)
            .map_err(|e| RosterError::Malformed(format!("{}: {e}", path.display())))?;
        let handed_off: BTreeMap<PeerId, u64> = roster
            .handed_off
            .iter()
            .take(usize::try_from(ROSTER_MEMBERS_MAX).unwrap_or(usize::MAX))
            .filter_map(|h| Some((PeerId::from_bytes(&h.peer_id).ok()?, h.at_unix)))
            .collect();
        let snapshot = Self::entries_from_pb(roster)?;
        let mut loaded = Self::new();
        loaded.handed_off = handed_off;
        for entry in snapshot.departed {
            if entry.certificate.signed_by(trust.authority()).is_ok() {
                loaded.departed.insert(entry.peer(), entry);
            }
        }
        for entry in snapshot.entries {
            // Each node wrote its own file: addresses it kept are as good as it had them.
            let stamp = entry.addrs_unix;
            let peer = entry.peer();
            loaded.merge(entry, Some(peer), trust, now_unix);
            if let Some(held) = loaded.entries.get_mut(&peer) {
                held.addrs_unix = stamp;
            }
        }
        Ok(loaded)
    }

    /// Writes the roster to `path`, atomically and durably.
    ///
    /// # Errors
    /// [`RosterError::File`].
    pub fn save(&self, path: &Path) -> Result<(), RosterError> {
        Ok(replace_file_bytes(path, &self.to_pb().encode_to_vec())?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::authority::{Authority, RevocationList};

    const NOW: u64 = 2_000_000_000;

    fn node(authority: &Authority, valid_for: Duration) -> (PeerId, Certificate) {
        let peer = PeerId::random();
        let spec = crate::authority::CertificateSpec {
            peer,
            role: PeerRole::Node,
            name: "n".into(),
            zone: "z".into(),
            jurisdiction: "FR".into(),
            not_before_unix: NOW - 10,
            not_after_unix: NOW + valid_for.as_secs(),
            grants: Vec::new(),
        };
        let certificate = authority.certify(spec).expect("certify");
        (peer, certificate)
    }

    fn entry(certificate: &Certificate, addr: &str, stamp: u64) -> RosterEntry {
        RosterEntry {
            certificate: certificate.clone(),
            addrs: vec![addr.parse().expect("addr")],
            addrs_unix: stamp,
        }
    }

    #[test]
    fn only_valid_node_certificates_of_this_authority_enter() {
        let authority = Authority::generate();
        let trust = Trust::new(authority.public());
        let mut roster = Roster::new();
        let (_, good) = node(&authority, Duration::from_secs(3600));
        let (_, expired) = node(&authority, Duration::ZERO);
        let (_, foreign) = node(&Authority::generate(), Duration::from_secs(3600));
        let merged = roster.merge_all(
            vec![
                entry(&good, "/ip4/127.0.0.1/tcp/1", 1),
                entry(&expired, "/ip4/127.0.0.1/tcp/2", 1),
                entry(&foreign, "/ip4/127.0.0.1/tcp/3", 1),
            ],
            None,
            &trust,
            NOW,
        );
        assert_eq!((merged.added, merged.refused), (1, 2));
        assert!(roster.contains(&good.peer()));
        assert_eq!(roster.len(), 1);
    }

    #[test]
    fn addresses_come_from_the_node_itself_and_newer_wins() {
        let authority = Authority::generate();
        let trust = Trust::new(authority.public());
        let (peer, cert) = node(&authority, Duration::from_secs(3600));
        let other = PeerId::random();
        let mut roster = Roster::new();
        // A third party's hint is taken for a node with no address yet...
        roster.merge(
            entry(&cert, "/ip4/127.0.0.1/tcp/1", 50),
            Some(other),
            &trust,
            NOW,
        );
        assert_eq!(roster.get(&peer).expect("member").addrs_unix, 0);
        // ...the node's own word replaces it...
        let merged = roster.merge(
            entry(&cert, "/ip4/127.0.0.1/tcp/2", 10),
            Some(peer),
            &trust,
            NOW,
        );
        assert!(merged.changed());
        // ...and a third party cannot replace the node's own word, however new its stamp.
        let merged = roster.merge(
            entry(&cert, "/ip4/10.0.0.1/tcp/9", u64::MAX),
            Some(other),
            &trust,
            NOW,
        );
        assert!(!merged.changed());
        assert_eq!(
            roster.get(&peer).expect("member").addrs,
            vec!["/ip4/127.0.0.1/tcp/2".parse::<Multiaddr>().expect("addr")]
        );
        // An older word of the node's own is ignored.
        let merged = roster.merge(
            entry(&cert, "/ip4/127.0.0.1/tcp/3", 5),
            Some(peer),
            &trust,
            NOW,
        );
        assert!(!merged.changed());
    }

    #[test]
    fn a_renewed_certificate_replaces_the_older_and_revocation_drops_the_member() {
        let authority = Authority::generate();
        let mut trust = Trust::new(authority.public());
        let (peer, short) = node(&authority, Duration::from_secs(60));
        let spec = crate::authority::CertificateSpec {
            not_after_unix: NOW + 3600,
            grants: Vec::new(),
            ..short.spec().clone()
        };
        let renewed = authority.certify(spec).expect("certify");
        let mut roster = Roster::new();
        roster.merge(entry(&short, "/ip4/127.0.0.1/tcp/1", 1), None, &trust, NOW);
        let before = roster.digest();
        assert!(
            roster
                .merge(
                    entry(&renewed, "/ip4/127.0.0.1/tcp/1", 1),
                    None,
                    &trust,
                    NOW
                )
                .changed()
        );
        assert_ne!(roster.digest(), before);
        assert_eq!(roster.get(&peer).expect("member").certificate, renewed);
        // The short one expired: nothing is dropped, the member holds the renewal.
        assert!(roster.drop_invalid(&trust, NOW + 120).is_empty());
        let list = authority
            .revoke(&RevocationList::empty(), peer, NOW)
            .expect("revoke");
        trust.update(list);
        assert_eq!(roster.drop_invalid(&trust, NOW), vec![peer]);
        assert!(roster.is_empty());
    }

    #[test]
    fn the_file_round_trips_and_a_corrupt_file_is_refused() {
        let authority = Authority::generate();
        let trust = Trust::new(authority.public());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("roster.pb");
        assert!(
            Roster::load(&path, &trust, NOW)
                .expect("no file")
                .is_empty()
        );
        let mut roster = Roster::new();
        for _ in 0..3 {
            let (peer, cert) = node(&authority, Duration::from_secs(3600));
            roster.merge(
                entry(&cert, "/ip4/127.0.0.1/tcp/7", 42),
                Some(peer),
                &trust,
                NOW,
            );
        }
        roster.save(&path).expect("save");
        let loaded = Roster::load(&path, &trust, NOW).expect("load");
        assert_eq!(loaded, roster);
        std::fs::write(&path, b"\xff\xff\xff not a roster").expect("write");
        assert!(matches!(
            Roster::load(&path, &trust, NOW),
            Err(RosterError::Malformed(_))
        ));
    }
}
