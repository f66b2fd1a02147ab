//! Replica sets (DESIGN.md, "Metadata"): where a metadata partition lives in the key
//! space, which members hold it ([`closest_members`]), and how many of them make a quorum.

use libp2p::PeerId;

use crate::membership::Member;
use crate::net::meta_message::NodeInfo;
use crate::placement::{PlacementKey, placement_key, xor_distance};

/// Metadata replicas per bucket (DESIGN.md: `R = 3`).
pub const REPLICAS: usize = 3;

/// Replicas that must answer a read or acknowledge a write (`W = R = 2` of 3).
pub fn quorum_size(replicas: usize) -> usize {
    replicas.min(2)
}

/// Where a metadata partition lives in the key space: a bucket's records, or (for the
/// empty partition) the bucket directory.
pub fn partition_key(partition: &str) -> PlacementKey {
    if partition.is_empty() {
        placement_key(b"andromede/bucket-directory")
    } else {
        let mut id = b"andromede/bucket/".to_vec();
        id.extend_from_slice(partition.as_bytes());
        placement_key(&id)
    }
}

/// `members` with this node added as a live member (a node is one of the candidates
/// for its own partitions), draining or not, catching up or not.
pub fn with_local(
    mut members: Vec<Member>,
    local: PeerId,
    draining: bool,
    catching_up: bool,
) -> Vec<Member> {
    members.retain(|m| m.peer != local);
    members.push(Member {
        peer: local,
        key: placement_key(&local.to_bytes()),
        info: NodeInfo {
            draining,
            catching_up,
            ..NodeInfo::default()
        },
        live: true,
        handing_off: catching_up,
    });
    members
}

/// Every member, closest to `target` first: the first `REPLICAS` are the replica set,
/// the rest stand in, in this order, for replicas that fail. Draining members are left
/// out: they are handing their records to the others before they retire.
pub fn closest_members(members: &[Member], target: &PlacementKey) -> Vec<PeerId> {
    let mut ordered: Vec<&Member> = members.iter().filter(|m| !m.info.draining).collect();
    ordered.sort_by_key(|m| xor_distance(&m.key, target));
    ordered.into_iter().map(|m| m.peer).collect()
}
