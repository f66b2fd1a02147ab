//! What a version needs: which shards of which segments are missing (their holder is
//! down, does not hold them, or holds a quarantined copy), how many healthy shards each
//! segment has left, and where each missing shard goes.

use std::collections::{BTreeMap, BTreeSet};

use andromede_cluster::admin::HealthCounts;
use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::meta::key::RecordKey;
use andromede_cluster::meta::record::Version;
use andromede_cluster::net::PeerId;
use andromede_cluster::placement::{
    Candidate, PlacementPolicy, place_replacements, place_shards, placement_key,
};
use andromede_proto::ShardId;

use super::super::liveness::{Liveness, PeerState};
use super::super::shard_calls::ShardCalls;
use crate::error::WorkerError;

/// One version as repair sees it.
#[derive(Debug)]
pub(super) struct Plan {
    /// Its manifest record.
    pub(super) key: RecordKey,
    /// The record version read (the rewrite must replace exactly this one).
    pub(super) version: Version,
    /// The manifest.
    pub(super) manifest: Manifest,
    /// Holder of each shard, `[segment][index]` (`None`: not a peer id).
    pub(super) holders: Vec<Vec<Option<PeerId>>>,
    /// Shard indices to rebuild, per segment: missing ones, and misplaced ones.
    pub(super) missing: Vec<Vec<u8>>,
    /// Of those, the ones that are healthy but on the wrong node: doubled up on a node
    /// that holds another shard of the segment while enough nodes exist to spread them
    /// (a repair made while the cluster was smaller, or split by a partition), held by a
    /// draining node, or chosen by rebalancing. They are copied to a new node.
    pub(super) misplaced: Vec<Vec<u8>>,
    /// Where rebalancing sends a misplaced shard (`(segment, index)`); the others go
    /// where placement puts replacements.
    pub(super) preferred: BTreeMap<(usize, u8), PeerId>,
    /// Holders that could not be asked (unreachable but not yet down, or no answer):
    /// their shards count as healthy for now, and the version is looked at again once
    /// they answer.
    pub(super) unconfirmed: Vec<PeerId>,
    /// Shards missing at their holder but found where the version's writer put them
    /// (`(segment, index)`; `holders` names that peer again): the manifest is rewritten
    /// with them even when nothing is rebuilt.
    pub(super) restored: Vec<(usize, u8)>,
}

impl Plan {
    /// Healthy shards of `segment` (misplaced ones are healthy where they are).
    pub(super) fn healthy(&self, segment: usize) -> usize {
        self.manifest.params.shard_count() - self.missing[segment].len()
            + self.misplaced[segment].len()
    }

    /// Marks shard `index` of `segment`, healthy on its holder, to be moved (to
    /// `to`, when given).
    pub(super) fn relocate(&mut self, segment: usize, index: u8, to: Option<PeerId>) {
        if !self.missing[segment].contains(&index) {
            self.missing[segment].push(index);
            self.missing[segment].sort_unstable();
            self.misplaced[segment].push(index);
        }
        if let Some(to) = to {
            self.preferred.insert((segment, index), to);
        }
    }

    /// Healthy shards of the worst segment.
    pub(super) fn healthy_min(&self) -> usize {
        (0..self.missing.len())
            .map(|s| self.healthy(s))
            .min()
            .unwrap_or_else(|| self.manifest.params.shard_count())
    }

    /// Whether any shard is missing, or found back where it was written.
    pub(super) fn needs_repair(&self) -> bool {
        self.missing.iter().any(|m| !m.is_empty()) || !self.restored.is_empty()
    }

    /// Shard id of `index` in `segment`.
    pub(super) fn shard_id(&self, segment: usize, index: u8) -> Option<ShardId> {
        match &self.manifest.body {
            Body::Segments(segments) => segments
                .get(segment)?
                .shard_ids
                .get(usize::from(index))
                .copied(),
            Body::Inline(_) | Body::Parts(_) => None,
        }
    }
}

/// Counts the segments of `plan` into `health`.
pub(super) fn count_health(health: &mut HealthCounts, plan: &Plan) {
    let k = usize::from(plan.manifest.params.k());
    let shard_count = plan.manifest.params.shard_count();
    for (segment, missing) in plan.missing.iter().enumerate() {
        let healthy = plan.healthy(segment);
        let misplaced = &plan.misplaced[segment];
        if healthy == shard_count {
            health.full += 1;
        } else if healthy < k {
            health.lost += 1;
        } else if healthy == k {
            health.at_risk += 1;
        } else {
            *health
                .degraded
                .entry((shard_count - healthy) as u64)
                .or_default() += 1;
        }
        if healthy >= k {
            let mut per_node: BTreeMap<PeerId, usize> = BTreeMap::new();
            for (j, holder) in (0u8..).zip(&plan.holders[segment]) {
                if let Some(peer) = holder
                    && (!missing.contains(&j) || misplaced.contains(&j))
                {
                    *per_node.entry(*peer).or_default() += 1;
                }
            }
            let mut counts: Vec<usize> = per_node.into_values().collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            // The most-loaded nodes go first: how many can go with ≤ healthy - k shards.
            let mut lost = 0;
            let survives = counts
                .iter()
                .take_while(|&&c| {
                    lost += c;
                    lost <= healthy - k
                })
                .count();
            *health
                .survives_node_losses
                .entry(survives as u64)
                .or_default() += 1;
        }
    }
}

/// Finds the missing shards of a segmented `manifest`: every shard of a down holder,
/// and those that a reachable holder says it does not hold. A holder that cannot be
/// asked right now (unreachable, not yet down) is given the benefit of the doubt. With
/// `can_spread` (at least `k + m` nodes can take shards), a shard that doubles up on a
/// node holding another shard of its segment is misplaced; so is every shard a
/// `draining` node holds.
#[allow(clippy::too_many_arguments)]
pub(super) async fn assess(
    key: RecordKey,
    version: Version,
    manifest: Manifest,
    written: Option<&Manifest>,
    liveness: &Liveness,
    calls: &ShardCalls,
    can_spread: bool,
    draining: &[PeerId],
) -> Plan {
    let matrix = |manifest: &Manifest| -> Vec<Vec<Option<PeerId>>> {
        manifest
            .holder_matrix()
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|h| h.and_then(|bytes| PeerId::from_bytes(&bytes).ok()))
                    .collect()
            })
            .collect()
    };
    let mut holders = matrix(&manifest);
    let mut missing: Vec<Vec<u8>> = vec![Vec::new(); holders.len()];
    let mut cells: BTreeMap<PeerId, Vec<(usize, u8)>> = BTreeMap::new();
    for (segment, row) in holders.iter().enumerate() {
        for (index, holder) in (0u8..).zip(row) {
            match holder {
                Some(peer) => cells.entry(*peer).or_default().push((segment, index)),
                None => missing[segment].push(index),
            }
        }
    }
    let ids = |list: &[(usize, u8)]| -> Vec<ShardId> {
        list.iter()
            .filter_map(|&(s, j)| match &manifest.body {
                Body::Segments(segments) => segments.get(s)?.shard_ids.get(usize::from(j)).copied(),
                Body::Inline(_) | Body::Parts(_) => None,
            })
            .collect()
    };
    let mut unconfirmed = Vec::new();
    for (peer, list) in cells {
        match liveness.state(&peer) {
            PeerState::Down => {
                for (s, j) in list {
                    missing[s].push(j);
                }
            }
            PeerState::Unreachable => unconfirmed.push(peer),
            PeerState::Up => match calls.have(peer, &ids(&list)).await {
                Ok(present) => {
                    for ((s, j), here) in list.into_iter().zip(present) {
                        if !here {
                            missing[s].push(j);
                        }
                    }
                }
                Err(_) => unconfirmed.push(peer),
            },
        }
    }
    // A missing shard may still be where the version's writer put it, when a node has
    // named another holder since (a repair that raced, or a rogue node pointing the
    // holders at itself): it is named there again instead of rebuilt.
    let mut restored = Vec::new();
    if let Some(written) = written {
        let first = matrix(written);
        let mut asks: BTreeMap<PeerId, Vec<(usize, u8)>> = BTreeMap::new();
        for (segment, list) in missing.iter().enumerate() {
            for &j in list {
                let was = first.get(segment).and_then(|row| row.get(usize::from(j)));
                if let Some(Some(peer)) = was
                    && holders[segment][usize::from(j)] != Some(*peer)
                    && liveness.state(peer) == PeerState::Up
                {
                    asks.entry(*peer).or_default().push((segment, j));
                }
            }
        }
        for (peer, list) in asks {
            let Ok(present) = calls.have(peer, &ids(&list)).await else {
                continue;
            };
            for ((s, j), here) in list.into_iter().zip(present) {
                if here {
                    holders[s][usize::from(j)] = Some(peer);
                    missing[s].retain(|m| *m != j);
                    restored.push((s, j));
                }
            }
        }
    }
    let mut misplaced: Vec<Vec<u8>> = vec![Vec::new(); holders.len()];
    for (segment, row) in holders.iter().enumerate() {
        for (j, holder) in (0u8..).zip(row) {
            if holder.is_some_and(|p| draining.contains(&p)) && !missing[segment].contains(&j) {
                misplaced[segment].push(j);
                missing[segment].push(j);
            }
        }
    }
    if can_spread {
        for (segment, row) in holders.iter().enumerate() {
            let mut seen: Vec<PeerId> = Vec::new();
            for (j, holder) in (0u8..).zip(row) {
                let Some(peer) = holder else { continue };
                if missing[segment].contains(&j) {
                    continue;
                }
                if seen.contains(peer) && !misplaced[segment].contains(&j) {
                    misplaced[segment].push(j);
                    missing[segment].push(j);
                } else {
                    seen.push(*peer);
                }
            }
        }
    }
    for row in &mut missing {
        row.sort_unstable();
        row.dedup();
    }
    Plan {
        key,
        version,
        manifest,
        holders,
        missing,
        misplaced,
        preferred: BTreeMap::new(),
        unconfirmed,
        restored,
    }
}

/// A peer that may receive rebuilt shards.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Who.
    pub(super) peer: PeerId,
    /// Where it stands for placement.
    pub(super) candidate: Candidate,
}

/// Where each missing shard goes: back to its holder when that holder is up (it lost or
/// quarantined the shard) and the shard is not misplaced, else to a replacement chosen by
/// placement among `targets` (the live nodes), per segment against that segment's
/// holders. Keyed `(segment, index)`.
///
/// # Errors
/// A description when no node may take a shard (policy or capacity).
pub(super) fn destinations(
    plan: &Plan,
    targets: &[Target],
    policy: &PlacementPolicy,
    liveness: &Liveness,
) -> Result<BTreeMap<(usize, u8), PeerId>, WorkerError> {
    let up = |peer: &Option<PeerId>| {
        peer.filter(|p| targets.iter().any(|t| t.peer == *p) && !liveness.is_down(p))
    };
    let stays = |segment: usize, j: u8| {
        if let Some(to) = plan.preferred.get(&(segment, j)) {
            return Some(*to);
        }
        up(&plan.holders[segment][usize::from(j)]).filter(|_| !plan.misplaced[segment].contains(&j))
    };
    let candidates: Vec<Candidate> = targets.iter().map(|t| t.candidate.clone()).collect();
    let shard_bytes: u64 = match &plan.manifest.body {
        Body::Segments(segments) => segments
            .iter()
            .map(|s| plan.manifest.params.shard_bytes(s.sealed_bytes()))
            .sum(),
        Body::Inline(_) | Body::Parts(_) => 0,
    };
    // Replacements are chosen per segment, against the holders that stay in that very
    // segment (rows differ once a PUT failed over or a repair moved shards: choosing
    // against another row could put a shard on a node that already holds one of the
    // segment). Segments with the same holders that stay get the same answer.
    let mut chosen: BTreeMap<(Vec<usize>, Vec<u8>), Vec<usize>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (segment, missing) in plan.missing.iter().enumerate() {
        let replaced: Vec<u8> = missing
            .iter()
            .copied()
            .filter(|&j| stays(segment, j).is_none())
            .collect();
        for &j in missing {
            if let Some(peer) = stays(segment, j) {
                out.insert((segment, j), peer);
            }
        }
        if replaced.is_empty() {
            continue;
        }
        let kept: Vec<usize> = (0u8..)
            .zip(&plan.holders[segment])
            .filter(|(j, _)| !replaced.contains(j))
            .filter_map(|(j, holder)| {
                let peer = stays(segment, j).or_else(|| up(holder))?;
                targets.iter().position(|t| t.peer == peer)
            })
            .collect();
        let key = (kept, replaced);
        if !chosen.contains_key(&key) {
            let picked = place_replacements(
                &candidates,
                policy,
                plan.manifest.params,
                &placement_key(plan.manifest.version_id.as_bytes()),
                &key.0,
                key.1.len(),
                shard_bytes,
            )?;
            chosen.insert(key.clone(), picked);
        }
        let picked = &chosen[&key];
        for (&j, &t) in key.1.iter().zip(picked) {
            out.insert((segment, j), targets[t].peer);
        }
        if picked.len() < key.1.len() {
            return Err(WorkerError::NoDestination {
                segment: segment as u64,
                shard: key.1[picked.len()],
            });
        }
    }
    Ok(out)
}

/// Marks shards of a fully healthy version to move toward the placement `targets` now
/// prefer (nodes have joined since it was placed), within `budget` shard bytes; returns
/// the bytes marked.
///
/// The preferred holders are what [`place_shards`] chooses today, current holders
/// counting as having room for what they already hold (so that a filling node does not
/// push its own shards out). In each segment, a shard whose holder is not preferred moves
/// to a preferred node that holds nothing of the segment — one of the same zone first,
/// else one whose zone stays within the spread cap — so each move keeps `k + m` distinct
/// healthy shards, and the old copy is deleted only once the manifest names the new one.
/// Nothing moves while fewer than `k + m` nodes are eligible, or while a holder is not
/// among the targets.
pub(super) fn mark_rebalance(
    plan: &mut Plan,
    targets: &[Target],
    policy: &PlacementPolicy,
    budget: u64,
) -> u64 {
    let Body::Segments(segments) = &plan.manifest.body else {
        return 0;
    };
    let params = plan.manifest.params;
    let shard_count = params.shard_count();
    let holding: BTreeSet<PeerId> = plan.holders.iter().flatten().flatten().copied().collect();
    // A holder missing from the targets is down, unreachable for now, or draining: that
    // is repair's business, and a placement computed without it would move shards off a
    // node that is only rebooting.
    if !holding.iter().all(|h| targets.iter().any(|t| t.peer == *h)) {
        return 0;
    }
    let candidates: Vec<Candidate> = targets
        .iter()
        .map(|t| {
            let mut c = t.candidate.clone();
            if holding.contains(&t.peer) {
                c.free_bytes = u64::MAX;
            }
            c
        })
        .collect();
    let version_bytes: u64 = segments
        .iter()
        .map(|s| params.shard_bytes(s.sealed_bytes()))
        .sum();
    let policy = PlacementPolicy {
        jurisdictions: policy.jurisdictions.clone(),
        min_holders: shard_count,
    };
    let Ok(placement) = place_shards(
        &candidates,
        &policy,
        params,
        &placement_key(plan.manifest.version_id.as_bytes()),
        version_bytes,
    ) else {
        return 0;
    };
    let preferred: Vec<PeerId> = placement.holders.iter().map(|&i| targets[i].peer).collect();
    let zone_of = |peer: &PeerId| {
        targets
            .iter()
            .find(|t| t.peer == *peer)
            .map(|t| t.candidate.zone.as_str())
    };
    let zones = targets
        .iter()
        .map(|t| t.candidate.zone.as_str())
        .collect::<BTreeSet<_>>()
        .len()
        .max(1);
    let zone_cap = usize::from(params.m()).max(shard_count.div_ceil(zones));
    let mut marked = 0u64;
    let mut moves: Vec<(usize, u8, PeerId)> = Vec::new();
    for (segment, entry) in segments.iter().enumerate() {
        let shard_bytes = params.shard_bytes(entry.sealed_bytes());
        let row = &plan.holders[segment];
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for holder in row.iter().flatten() {
            *per_zone.entry(zone_of(holder).unwrap_or("")).or_default() += 1;
        }
        let mut leaving: Vec<u8> = (0u8..)
            .zip(row)
            .filter(|(_, h)| h.is_some_and(|h| !preferred.contains(&h)))
            .map(|(j, _)| j)
            .collect();
        for incoming in preferred.iter().filter(|p| !row.contains(&Some(**p))) {
            if marked + shard_bytes > budget {
                break;
            }
            let Some(zone) = zone_of(incoming) else {
                continue;
            };
            let holder_zone = |j: &u8| row[usize::from(*j)].as_ref().and_then(zone_of);
            let pick = leaving
                .iter()
                .position(|j| holder_zone(j) == Some(zone))
                .or_else(|| {
                    (per_zone.get(zone).copied().unwrap_or(0) < zone_cap)
                        .then_some(0)
                        .filter(|_| !leaving.is_empty())
                });
            let Some(pick) = pick else { continue };
            let j = leaving.remove(pick);
            if let Some(old_zone) = holder_zone(&j)
                && let Some(count) = per_zone.get_mut(old_zone)
            {
                *count = count.saturating_sub(1);
            }
            *per_zone.entry(zone).or_default() += 1;
            moves.push((segment, j, *incoming));
            marked += shard_bytes;
        }
    }
    for (segment, j, to) in moves {
        plan.relocate(segment, j, Some(to));
    }
    marked
}
