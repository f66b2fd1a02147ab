//! Replica sets (DESIGN.md, "Metadata"): where a metadata partition lives in the key
//! space, which roster members hold it ([`closest_members`]), and how many of them make a
//! quorum.
//!
//! A partition's replicas are the [`REPLICAS`] roster members closest to it, reachable or
//! not: a member that is down keeps its place (no stand-in counts for it), so a node cut
//! off from the others, or the minority side of a partition, never reaches a quorum.
//! `REPLICAS = 5` with a write quorum of 3 and a read quorum of 3 survives two members
//! down, as the default code RS(4,2) survives two shards lost: metadata lasts as long as
//! the data it describes. In a roster of fewer nodes, every node is a replica and reads
//! and writes need a majority (`W + R > N` in every case).
//!
//! The count is one for the cluster, not per bucket: a bucket's `m` sets how many shard
//! losses its data survives, and its metadata survives `(REPLICAS - 1) / 2 = 2` member
//! losses whatever its `m`. A bucket with `m > 2` has data that outlives its metadata's
//! quorum by `m - 2` failures (still readable once members come back, never lost: a
//! record is on at least three members); one with `m < 2` has metadata that outlives
//! its data.

use libp2p::PeerId;

use crate::membership::Member;
use crate::net::meta_message::NodeInfo;
use crate::placement::{PlacementKey, placement_key, xor_distance};

/// Metadata replicas per partition (DESIGN.md: `R = 5`).
pub const REPLICAS: usize = 5;

/// Acknowledgements a write to a set of `replicas` needs: a majority.
pub fn write_quorum(replicas: usize) -> usize {
    replicas / 2 + 1
}

/// Answers a read of a set of `replicas` needs: a majority too. `R - W + 1` would meet
/// every write quorum of the same set with fewer answers in even-sized sets, but a view
/// that has not yet learnt a member computes a smaller set, and two majorities of sets
/// one member apart still meet.
pub fn read_quorum(replicas: usize) -> usize {
    write_quorum(replicas)
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
        departed: false,
    });
    members
}

/// Every member, closest to `target` first: the first `REPLICAS` are the replica set.
/// Draining members are left out: they are handing their records to the others before
/// they retire.
pub fn closest_members(members: &[Member], target: &PlacementKey) -> Vec<PeerId> {
    let mut ordered: Vec<&Member> = members.iter().filter(|m| !m.info.draining).collect();
    ordered.sort_by_key(|m| xor_distance(&m.key, target));
    ordered.into_iter().map(|m| m.peer).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_quorum_meets_every_write_quorum() {
        for n in 1..=REPLICAS {
            let (w, r) = (write_quorum(n), read_quorum(n));
            assert!(w + r > n, "{n} replicas: W {w} + R {r}");
            assert!(w <= n && r <= n && r >= 1);
            // A write quorum is a strict majority: two sides of a split cannot both write.
            assert!(2 * w > n);
        }
        assert_eq!((write_quorum(5), read_quorum(5)), (3, 3));
        assert_eq!((write_quorum(4), read_quorum(4)), (3, 3));
        // A view one member behind (a set of n - 1) still meets every write of n.
        for n in 2..=REPLICAS {
            let written = write_quorum(n) - 1; // at most one outside the smaller set
            assert!(written + read_quorum(n - 1) > n - 1, "{n}");
        }
        assert_eq!((write_quorum(3), read_quorum(3)), (2, 2));
        assert_eq!((write_quorum(1), read_quorum(1)), (1, 1));
        // A full set survives two members lost, as RS(4,2) survives two shards lost.
        assert_eq!(REPLICAS - write_quorum(REPLICAS), 2);
    }
}
