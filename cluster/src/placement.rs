//! Placement: which peers hold the shards of an object version (DESIGN.md, "Placement").
//!
//! Chosen once per version and written into its manifest, so it never has to be
//! recomputed to find data. Rules, in order:
//! 1. only peers allowed by the bucket's jurisdiction policy and with room for their share;
//! 2. closest first by XOR distance between the peer's placement key and the version's;
//! 3. `k + m` distinct peers where that many exist, no zone holding more than `m` of them
//!    where enough zones exist (otherwise as evenly as the zones allow);
//! 4. with fewer peers, shards go round-robin over them, and the placement reports how
//!    many peer losses it survives, so the cluster can say so honestly.
//!
//! Holder `j` of the result keeps shard `j` of every segment.

use std::collections::BTreeMap;

use crate::shard::ErasureParams;

/// A 32-byte position in the placement key space.
pub type PlacementKey = [u8; 32];

/// The placement key of a peer id or a version id: blake3 in its own derivation context,
/// so positions are uniform whatever the id format.
pub fn placement_key(id: &[u8]) -> PlacementKey {
    let mut hasher = blake3::Hasher::new_derive_key("andromede placement key v1");
    hasher.update(id);
    *hasher.finalize().as_bytes()
}

/// A live peer that may receive shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its placement key (see [`placement_key`]).
    pub key: PlacementKey,
    /// Failure domain.
    pub zone: String,
    /// Legal jurisdiction, e.g. `FR`.
    pub jurisdiction: String,
    /// Bytes it can still accept.
    pub free_bytes: u64,
}

/// A bucket's placement constraints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementPolicy {
    /// Allowed jurisdictions; empty means any.
    pub jurisdictions: Vec<String>,
    /// Fewest distinct holders accepted (at least 1): a bucket can demand real spread.
    pub min_holders: usize,
}

/// Why no placement exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// Too few peers satisfy the policy and have room.
    #[error("too few peers: {needed} needed, {found} found{}", jurisdiction_note(.jurisdictions))]
    TooFewPeers {
        /// Distinct holders required.
        needed: usize,
        /// Eligible peers found.
        found: usize,
        /// The bucket's allowed jurisdictions (empty: any).
        jurisdictions: Vec<String>,
    },
}

fn jurisdiction_note(jurisdictions: &[String]) -> String {
    if jurisdictions.is_empty() {
        " with free capacity: add nodes or free space".into()
    } else {
        format!(
            " in jurisdictions {} with free capacity: add nodes there or widen the bucket's policy",
            jurisdictions.join(",")
        )
    }
}

/// The chosen holders of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// For each shard index `j`, the index in the candidate list of its holder.
    pub holders: Vec<usize>,
    /// How many holders can be lost, whichever they are, without losing data.
    pub peer_loss_tolerance: usize,
    /// Where a shard goes when its holder fails during the upload, next first: the
    /// eligible peers holding nothing, closest first, then the holders themselves (a shard
    /// doubles up rather than failing the upload).
    pub spares: Vec<usize>,
}

/// How many node failures a segment survives, its shards held as `holders` lists them
/// (one entry per shard held; a node holding several shards is named several times):
/// the most holders that can fail, the busiest first, leaving at least `k` shards.
/// Negative when fewer than `k` shards are held at all (by how many it is short).
pub fn node_failures_survived<H: Eq + std::hash::Hash>(
    holders: impl IntoIterator<Item = H>,
    k: usize,
) -> i64 {
    let mut per_holder: std::collections::HashMap<H, usize> = std::collections::HashMap::new();
    for holder in holders {
        *per_holder.entry(holder).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_holder.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let mut left: usize = counts.iter().sum();
    if left < k {
        return i64::try_from(left).unwrap_or(0) - i64::try_from(k).unwrap_or(i64::MAX);
    }
    let mut failures = 0;
    for count in counts {
        if left - count < k {
            break;
        }
        left -= count;
        failures += 1;
    }
    failures
}

/// Chooses the holders of a version placed at `target` (its [`placement_key`]), each
/// needing `bytes_per_holder` of free space.
///
/// # Errors
/// [`PlacementError::TooFewPeers`] when fewer than `policy.min_holders` (at least 1)
/// candidates are eligible.
pub fn place_shards(
    candidates: &[Candidate],
    policy: &PlacementPolicy,
    params: ErasureParams,
    target: &PlacementKey,
    bytes_per_holder: u64,
) -> Result<Placement, PlacementError> {
    let eligible = eligible(candidates, policy, target, bytes_per_holder);
    let shard_count = params.shard_count();
    let needed = policy.min_holders.max(1).min(shard_count);
    if eligible.len() < needed {
        return Err(PlacementError::TooFewPeers {
            needed,
            found: eligible.len(),
            jurisdictions: policy.jurisdictions.clone(),
        });
    }
    let holders = if eligible.len() >= shard_count {
        spread_over_zones(candidates, &eligible, shard_count, usize::from(params.m()))
    } else {
        (0..shard_count)
            .map(|j| eligible[j % eligible.len()])
            .collect()
    };
    let (idle, busy): (Vec<usize>, Vec<usize>) =
        eligible.iter().partition(|i| !holders.contains(i));
    Ok(Placement {
        peer_loss_tolerance: peer_loss_tolerance(&holders, usize::from(params.m())),
        holders,
        spares: idle.into_iter().chain(busy).collect(),
    })
}

/// Chooses a new holder for each of `count` shard indices whose holders are gone (repair),
/// given the candidate indices of the holders that stay (`kept`, one per remaining shard
/// index, repeats allowed). Same rules as [`place_shards`]: the policy and free space
/// filter, closest to `target` first, a new holder is a peer that holds nothing of the
/// version while one is left, and no zone goes over `m` shards where another zone can
/// take it. With no fresh peer left, the shard doubles up on the eligible holder with the
/// fewest shards (full shard redundancy, lower peer tolerance: reported by the caller).
///
/// # Errors
/// [`PlacementError::TooFewPeers`] when no candidate is eligible at all.
pub fn place_replacements(
    candidates: &[Candidate],
    policy: &PlacementPolicy,
    params: ErasureParams,
    target: &PlacementKey,
    kept: &[usize],
    count: usize,
    bytes_per_holder: u64,
) -> Result<Vec<usize>, PlacementError> {
    let eligible = eligible(candidates, policy, target, bytes_per_holder);
    if eligible.is_empty() && count > 0 {
        return Err(PlacementError::TooFewPeers {
            needed: 1,
            found: 0,
            jurisdictions: policy.jurisdictions.clone(),
        });
    }
    let m = usize::from(params.m());
    let mut holding: Vec<usize> = kept.to_vec();
    let mut chosen = Vec::with_capacity(count);
    for _ in 0..count {
        let zone_load = |i: usize, holding: &[usize]| {
            holding
                .iter()
                .filter(|&&h| candidates.get(h).map(|c| &c.zone) == Some(&candidates[i].zone))
                .count()
        };
        let fresh = eligible.iter().copied().filter(|i| !holding.contains(i));
        let pick = fresh
            .clone()
            .find(|&i| zone_load(i, &holding) < m)
            .or_else(|| fresh.min_by_key(|&i| zone_load(i, &holding)))
            .or_else(|| {
                eligible
                    .iter()
                    .copied()
                    .min_by_key(|&i| holding.iter().filter(|&&h| h == i).count())
            });
        // `eligible` is not empty here, so a pick always exists.
        let Some(pick) = pick else { break };
        holding.push(pick);
        chosen.push(pick);
    }
    Ok(chosen)
}

/// The candidates allowed by `policy` with room for `bytes_per_holder`, closest to
/// `target` first.
fn eligible(
    candidates: &[Candidate],
    policy: &PlacementPolicy,
    target: &PlacementKey,
    bytes_per_holder: u64,
) -> Vec<usize> {
    let mut eligible: Vec<usize> = (0..candidates.len())
        .filter(|&i| {
            let c = &candidates[i];
            c.free_bytes >= bytes_per_holder
                && (policy.jurisdictions.is_empty()
                    || policy.jurisdictions.contains(&c.jurisdiction))
        })
        .collect();
    eligible.sort_by_key(|&i| xor_distance(&candidates[i].key, target));
    eligible
}

pub(crate) fn xor_distance(a: &PlacementKey, b: &PlacementKey) -> PlacementKey {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Picks `count` distinct peers from `ordered` (closest first) so that no zone holds more
/// than a cap: `m` if the zones allow it, else the smallest cap that fills the set. Greedy
/// by distance under a cap takes `min(cap, peers in zone)` from every zone whatever the
/// order, so the first cap that fills the set is the most even spread possible.
fn spread_over_zones(
    candidates: &[Candidate],
    ordered: &[usize],
    count: usize,
    m: usize,
) -> Vec<usize> {
    let zones = ordered
        .iter()
        .map(|&i| candidates[i].zone.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        .max(1);
    let mut cap = m.max(count.div_ceil(zones));
    loop {
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        let mut chosen = Vec::with_capacity(count);
        for &i in ordered {
            let in_zone = per_zone.entry(candidates[i].zone.as_str()).or_default();
            if *in_zone < cap {
                *in_zone += 1;
                chosen.push(i);
                if chosen.len() == count {
                    return chosen;
                }
            }
        }
        // `ordered` has at least `count` peers, so a cap of `count` always fills.
        cap += 1;
    }
}

/// The largest `t` such that losing any `t` distinct holders loses at most `m` shards.
fn peer_loss_tolerance(holders: &[usize], m: usize) -> usize {
    let mut shards_per_holder: BTreeMap<usize, usize> = BTreeMap::new();
    for &h in holders {
        *shards_per_holder.entry(h).or_default() += 1;
    }
    let mut counts: Vec<usize> = shards_per_holder.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let mut lost = 0;
    counts
        .iter()
        .take_while(|&&c| {
            lost += c;
            lost <= m
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8, zone: &str, jurisdiction: &str) -> Candidate {
        Candidate {
            key: placement_key(&[n]),
            zone: zone.into(),
            jurisdiction: jurisdiction.into(),
            free_bytes: 1 << 30,
        }
    }

    fn zones_of(candidates: &[Candidate], placement: &Placement) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for &h in &placement.holders {
            *out.entry(candidates[h].zone.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn picks_k_plus_m_distinct_closest_peers() {
        let peers: Vec<Candidate> = (0..20).map(|n| peer(n, &format!("z{n}"), "FR")).collect();
        let target = placement_key(b"version");
        let placement = place_shards(
            &peers,
            &PlacementPolicy::default(),
            ErasureParams::DEFAULT,
            &target,
            1,
        )
        .unwrap();
        assert_eq!(placement.holders.len(), 6);
        let distinct: std::collections::BTreeSet<_> = placement.holders.iter().collect();
        assert_eq!(distinct.len(), 6);
        assert_eq!(placement.peer_loss_tolerance, 2);
        // They are the six closest, in order.
        let mut by_distance: Vec<usize> = (0..20).collect();
        by_distance.sort_by_key(|&i| xor_distance(&peers[i].key, &target));
        assert_eq!(placement.holders, by_distance[..6]);
        // Deterministic.
        let again = place_shards(
            &peers,
            &PlacementPolicy::default(),
            ErasureParams::DEFAULT,
            &target,
            1,
        )
        .unwrap();
        assert_eq!(again, placement);
    }

    #[test]
    fn no_zone_holds_more_than_m_where_zones_allow() {
        // 3 zones × 4 peers, RS(4,2): each zone may hold at most 2 of the 6 shards.
        let peers: Vec<Candidate> = (0..12)
            .map(|n| peer(n, ["a", "b", "c"][usize::from(n % 3)], "EU"))
            .collect();
        for t in 0..50u8 {
            let placement = place_shards(
                &peers,
                &PlacementPolicy::default(),
                ErasureParams::DEFAULT,
                &placement_key(&[t, 1]),
                1,
            )
            .unwrap();
            let zones = zones_of(&peers, &placement);
            assert!(zones.values().all(|&n| n <= 2), "{zones:?}");
        }
        // Only 2 zones: 3 each is the best possible.
        let two: Vec<Candidate> = (0..12)
            .map(|n| peer(n, ["a", "b"][usize::from(n % 2)], "EU"))
            .collect();
        let placement = place_shards(
            &two,
            &PlacementPolicy::default(),
            ErasureParams::DEFAULT,
            &placement_key(b"x"),
            1,
        )
        .unwrap();
        assert!(zones_of(&two, &placement).values().all(|&n| n == 3));
    }

    #[test]
    fn jurisdiction_and_capacity_filter_peers() {
        let mut peers: Vec<Candidate> = (0..10)
            .map(|n| peer(n, &format!("z{n}"), if n < 7 { "FR" } else { "DE" }))
            .collect();
        peers[0].free_bytes = 10;
        let policy = PlacementPolicy {
            jurisdictions: vec!["FR".into()],
            min_holders: 6,
        };
        let placement = place_shards(
            &peers,
            &policy,
            ErasureParams::DEFAULT,
            &placement_key(b"v"),
            100,
        )
        .unwrap();
        assert!(
            placement
                .holders
                .iter()
                .all(|&h| peers[h].jurisdiction == "FR" && h != 0)
        );
        // Only 6 FR peers have room; RS(4,3) needs 7 distinct.
        let strict = PlacementPolicy {
            jurisdictions: vec!["FR".into()],
            min_holders: 7,
        };
        let err = place_shards(
            &peers,
            &strict,
            ErasureParams::new(4, 3).unwrap(),
            &placement_key(b"v"),
            100,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PlacementError::TooFewPeers {
                needed: 7,
                found: 6,
                jurisdictions: vec!["FR".into()]
            }
        );
        assert!(err.to_string().contains("jurisdictions FR"));
        let none = PlacementPolicy {
            jurisdictions: vec!["US".into()],
            min_holders: 1,
        };
        assert!(
            place_shards(
                &peers,
                &none,
                ErasureParams::DEFAULT,
                &placement_key(b"v"),
                1
            )
            .is_err()
        );
    }

    #[test]
    fn fewer_peers_than_shards_double_up_and_report_tolerance() {
        let one = vec![peer(1, "a", "FR")];
        let placement = place_shards(
            &one,
            &PlacementPolicy::default(),
            ErasureParams::DEFAULT,
            &placement_key(b"v"),
            1,
        )
        .unwrap();
        assert_eq!(placement.holders, vec![0; 6]);
        assert_eq!(placement.peer_loss_tolerance, 0);
        let three: Vec<Candidate> = (0..3).map(|n| peer(n, "a", "FR")).collect();
        let placement = place_shards(
            &three,
            &PlacementPolicy::default(),
            ErasureParams::DEFAULT,
            &placement_key(b"v"),
            1,
        )
        .unwrap();
        // 2 shards each: losing one peer loses 2 = m shards, losing two loses 4.
        assert_eq!(placement.peer_loss_tolerance, 1);
        let five: Vec<Candidate> = (0..5).map(|n| peer(n, "a", "FR")).collect();
        let placement = place_shards(
            &five,
            &PlacementPolicy::default(),
            ErasureParams::DEFAULT,
            &placement_key(b"v"),
            1,
        )
        .unwrap();
        // One peer holds 2 shards, four hold 1: the worst two losses take 3 > m.
        assert_eq!(placement.peer_loss_tolerance, 1);
    }

    #[test]
    fn replacements_are_fresh_peers_within_the_zone_cap_then_double_up() {
        // Zones a, a, b, b, c, c, d: RS(4,2) holders 0..6 minus the two lost (1, 4).
        let peers: Vec<Candidate> = (0..7)
            .map(|n| peer(n, ["a", "a", "b", "b", "c", "c", "d"][usize::from(n)], "FR"))
            .collect();
        let target = placement_key(b"v");
        let kept = [0, 2, 3, 5];
        let policy = PlacementPolicy::default();
        let picked = place_replacements(
            &peers,
            &policy,
            ErasureParams::DEFAULT,
            &target,
            &kept,
            2,
            1,
        )
        .unwrap();
        assert_eq!(picked.len(), 2);
        for p in &picked {
            assert!(!kept.contains(p), "a fresh peer first: {picked:?}");
        }
        assert_ne!(picked[0], picked[1]);
        // Zone b already holds 2 = m: nobody of b may be picked; 6 (zone d) must be.
        assert!(picked.contains(&6), "{picked:?}");
        // A jurisdiction filter that leaves only holders: the shard doubles up on the
        // eligible holder with the fewest shards.
        let mut fr_only = peers.clone();
        for (i, c) in fr_only.iter_mut().enumerate() {
            if ![0, 2].contains(&i) {
                c.jurisdiction = "DE".into();
            }
        }
        let policy = PlacementPolicy {
            jurisdictions: vec!["FR".into()],
            min_holders: 1,
        };
        let picked = place_replacements(
            &fr_only,
            &policy,
            ErasureParams::DEFAULT,
            &target,
            &[0, 0, 2],
            1,
            1,
        )
        .unwrap();
        assert_eq!(picked, [2]);
        // Nothing eligible: a clear refusal.
        let policy = PlacementPolicy {
            jurisdictions: vec!["US".into()],
            min_holders: 1,
        };
        assert!(
            place_replacements(&peers, &policy, ErasureParams::DEFAULT, &target, &[0], 1, 1)
                .is_err()
        );
    }

    #[test]
    fn spares_are_idle_eligible_peers_closest_first_then_holders() {
        let mut peers: Vec<Candidate> = (0..9).map(|n| peer(n, &format!("z{n}"), "FR")).collect();
        peers[7].jurisdiction = "DE".into();
        peers[8].free_bytes = 0;
        let target = placement_key(b"v");
        let placement = place_shards(
            &peers,
            &PlacementPolicy {
                jurisdictions: vec!["FR".into()],
                min_holders: 1,
            },
            ErasureParams::DEFAULT,
            &target,
            1,
        )
        .unwrap();
        let (idle, busy) = placement.spares.split_at(1);
        assert!(!placement.holders.contains(&idle[0]));
        let mut holders = placement.holders.clone();
        holders.sort_unstable();
        let mut rest = busy.to_vec();
        rest.sort_unstable();
        assert_eq!(rest, holders, "then every holder");
        // The DE peer and the full peer are never spares.
        assert_eq!(placement.spares.len(), 7);
        assert!(!placement.spares.contains(&7) && !placement.spares.contains(&8));
        let distances: Vec<_> = busy
            .iter()
            .map(|&i| xor_distance(&peers[i].key, &target))
            .collect();
        assert!(distances.is_sorted(), "holders closest first");
    }
}
