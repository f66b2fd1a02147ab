//! Repairing assessed versions, worst first and within the rate: rebuilding or moving
//! each segment's missing shards to their destinations, then rewriting the manifest with
//! the new holders, replacing exactly the record version that was assessed.

use super::*;
use crate::error::WorkerError;

impl RepairWorker {
    /// Repairs `plans`, worst first.
    pub(super) async fn repair_all(
        &self,
        plans: Vec<Plan>,
        cancel: &CancellationToken,
    ) -> RepairReport {
        let mut policies = Policies::default();
        let jobs = self.jobs(plans, &mut policies).await;
        self.with_status(|s| s.queue = jobs.len() as u64);
        let report = self.repair_jobs(futures::stream::iter(jobs), cancel).await;
        self.with_status(|s| s.queue = 0);
        report
    }

    /// The plans that need work, worst first (fewest healthy shards in a segment), each
    /// with its bucket's placement policy; those whose policy cannot be read wait for a
    /// later pass.
    pub(super) async fn jobs(
        &self,
        mut plans: Vec<Plan>,
        policies: &mut Policies,
    ) -> Vec<(Plan, PlacementPolicy)> {
        plans.retain(Plan::needs_repair);
        plans.sort_by_key(Plan::healthy_min);
        let mut jobs = Vec::with_capacity(plans.len());
        for plan in plans {
            let policy = match policies.get(self, &plan.key.partition).await {
                BucketPolicy::Known(policy) => Some(policy),
                BucketPolicy::Deleted => self.held_places(&plan.manifest),
                BucketPolicy::Unreadable => None,
            };
            if let Some(policy) = policy {
                jobs.push((plan, policy));
            }
        }
        jobs
    }

    /// Repairs the versions `jobs` yields, `VERSIONS_IN_FLIGHT` at once in the order given,
    /// their segments sharing `segments_in_flight` slots: a small version or a slow one
    /// does not leave the disks idle. Counts each job out of the status queue as it
    /// starts.
    pub(super) async fn repair_jobs(
        &self,
        jobs: impl futures::Stream<Item = (Plan, PlacementPolicy)>,
        cancel: &CancellationToken,
    ) -> RepairReport {
        let outcomes = jobs
            .take_while(|_| std::future::ready(!cancel.is_cancelled()))
            .map(|(plan, policy)| async move {
                self.with_status(|s| s.queue = s.queue.saturating_sub(1));
                let k = usize::from(plan.manifest.params.k());
                let lost = (0..plan.missing.len())
                    .filter(|&s| plan.healthy(s) < k)
                    .count() as u64;
                if lost > 0 {
                    warn!(bucket = %plan.key.partition, segments = lost, "segments with fewer than k healthy shards: unreadable until a holder returns");
                }
                let key = plan.key.clone();
                (key, lost, self.repair_one(plan, &policy).await)
            })
            .buffer_unordered(VERSIONS_IN_FLIGHT);
        let mut report = RepairReport::default();
        futures::pin_mut!(outcomes);
        while let Some((key, lost, outcome)) = outcomes.next().await {
            report.found += 1;
            report.lost_segments += lost;
            match outcome {
                Ok(true) => {
                    self.forget(&key);
                    report.repaired += 1;
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(bucket = %key.partition, %error, "repair deferred");
                    self.defer(&key);
                    report.deferred += 1;
                }
            }
        }
        report
    }

    /// The members being drained.
    pub(super) fn draining_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .membership
            .live()
            .into_iter()
            .filter(|m| m.info.draining)
            .map(|m| m.peer)
            .collect();
        if self.drain.is_draining() {
            peers.push(self.calls.local());
        }
        peers
    }

    /// The nodes that may receive shards now: the live members and this node, unless
    /// they are draining.
    pub(super) fn targets(&self) -> Vec<Target> {
        let local = self.calls.local();
        let mut targets = Vec::new();
        if !self.drain.is_draining() {
            let own = self.tags.info(&self.store, &self.membership, false);
            targets.push(Target {
                peer: local,
                candidate: Candidate {
                    key: placement_key(&local.to_bytes()),
                    zone: own.zone.clone(),
                    jurisdiction: own.jurisdiction.clone(),
                    free_bytes: own.free_bytes(),
                },
            });
        }
        targets.extend(
            self.membership
                .live()
                .into_iter()
                .filter(|m| !self.liveness.is_down(&m.peer) && !m.info.draining)
                .map(|m| Target {
                    peer: m.peer,
                    candidate: Candidate {
                        key: m.key,
                        zone: m.info.zone.clone(),
                        jurisdiction: m.info.jurisdiction.clone(),
                        free_bytes: m.info.free_bytes(),
                    },
                }),
        );
        targets
    }

    /// Rebuilds what `plan` lacks and rewrites its manifest. Ok(false) when the version
    /// changed meanwhile (collected, or rewritten by someone else): nothing written.
    pub(super) async fn repair_one(
        &self,
        plan: Plan,
        policy: &PlacementPolicy,
    ) -> Result<bool, WorkerError> {
        let destinations = destinations(&plan, &self.targets(), policy, &self.liveness)?;
        let mut segments: Vec<usize> = (0..plan.missing.len())
            .filter(|&s| !plan.missing[s].is_empty())
            .collect();
        segments.sort_by_key(|&s| plan.healthy(s));
        let span = info_span!("version", bucket = %plan.key.partition, segments = segments.len());
        let plan_ref = &plan;
        let destinations_ref = &destinations;
        let started = Instant::now();
        let results: Vec<(usize, Result<rebuild::Rebuilt, WorkerError>)> =
            futures::stream::iter(segments)
                .map(|segment| async move {
                    let segment_entry_bytes = match &plan_ref.manifest.body {
                        Body::Segments(list) => list.get(segment).map_or(0, |s| {
                            plan_ref.manifest.params.shard_bytes(s.sealed_bytes())
                                * plan_ref.missing[segment].len() as u64
                        }),
                        Body::Inline(_) | Body::Parts(_) => 0,
                    };
                    let Ok(_slot) = self.segment_slots.acquire().await else {
                        return (segment, Err(WorkerError::Stopping));
                    };
                    self.limiter.lock().await.acquire(segment_entry_bytes).await;
                    let result =
                        rebuild_segment(plan_ref, segment, destinations_ref, &self.calls).await;
                    // Counted as each segment lands, so `status` shows repair's pace.
                    if let Ok(rebuilt) = &result {
                        self.with_status(|s| {
                            s.segments_repaired += 1;
                            s.shards_rebuilt += rebuilt.stored.len() as u64;
                            s.bytes_rebuilt += rebuilt.bytes;
                        });
                    }
                    (segment, result)
                })
                .buffer_unordered(self.config.segments_in_flight.max(1))
                .collect()
                .instrument(span)
                .await;

        let mut holders: Vec<Vec<Option<PeerId>>> = plan.holders.clone();
        let mut new_on: Vec<(PeerId, andromede_proto::ShardId)> = Vec::new();
        let mut failures = Vec::new();
        let mut stored_any = false;
        for (segment, result) in results {
            match result {
                Ok(rebuilt) => {
                    stored_any |= !rebuilt.stored.is_empty();
                    for (j, peer) in rebuilt.stored {
                        let cell = &mut holders[segment][usize::from(j)];
                        if *cell != Some(peer) {
                            *cell = Some(peer);
                            if let Some(id) = plan.shard_id(segment, j) {
                                new_on.push((peer, id));
                            }
                        }
                    }
                }
                Err(error) => failures.push(error),
            }
        }
        let rebuilt_in = started.elapsed();
        let committed = if new_on.is_empty() && plan.restored.is_empty() {
            true
        } else {
            let committed = self.commit(&plan, &holders, &new_on).await?;
            if committed {
                // The two durations say where a slow repair spends its time.
                info!(
                    bucket = %plan.key.partition,
                    moved = new_on.len(),
                    rebuild = ?rebuilt_in,
                    commit = ?started.elapsed().saturating_sub(rebuilt_in),
                    "version repaired: manifest names the new holders"
                );
            }
            committed
        };
        if committed {
            // The old copies stay until the orphan collector's grace period has passed:
            // a reader or a replica still holding the previous manifest finds them there.
            let moved = Self::moved(&plan, &holders);
            self.with_status(|s| s.shards_moved += moved);
        }
        let failed = failures.len();
        if let Some(first) = failures.into_iter().next() {
            return Err(WorkerError::SegmentsFailed {
                failed,
                first: Box::new(first),
            });
        }
        Ok(committed && (stored_any || !plan.restored.is_empty()))
    }

    /// Misplaced shards that `holders` put on another node than before.
    pub(super) fn moved(plan: &Plan, holders: &[Vec<Option<PeerId>>]) -> u64 {
        let mut moved = 0;
        for (segment, misplaced) in plan.misplaced.iter().enumerate() {
            for &j in misplaced {
                let j = usize::from(j);
                moved += u64::from(holders[segment][j] != plan.holders[segment][j]);
            }
        }
        moved
    }

    /// Rewrites the manifest with `holders` if it is still the version assessed. When the
    /// version has been collected meanwhile, the shards just placed on new holders are
    /// deleted again (nothing references them). Returns whether it was written.
    pub(super) async fn commit(
        &self,
        plan: &Plan,
        holders: &[Vec<Option<PeerId>>],
        new_on: &[(PeerId, andromede_proto::ShardId)],
    ) -> Result<bool, WorkerError> {
        let matrix = holder_matrix(holders)?;
        let _collector_waits = self.lock.lock().await;
        let current = self.quorum.get(&plan.key).await?;
        // The client-signed manifest whose content this update keeps (DESIGN.md,
        // "Metadata": a node changes only where shards are).
        let origin = match current {
            Some(record) if record.version == plan.version && !record.is_tombstone() => {
                record.origin(&plan.key)
            }
            Some(record) if record.is_tombstone() => {
                if crate::workers::shards_may_be_shared(
                    &self.quorum,
                    &plan.key.partition,
                    &plan.manifest,
                )
                .await?
                {
                    // Another version may name the same shards: orphans, proven later.
                    return Ok(false);
                }
                let mut by_peer: BTreeMap<PeerId, Vec<andromede_proto::ShardId>> = BTreeMap::new();
                for (peer, id) in new_on {
                    by_peer.entry(*peer).or_default().push(*id);
                }
                for (peer, ids) in by_peer {
                    if let Err(error) = self.calls.delete(peer, &ids).await {
                        debug!(%peer, %error, "rebuilt shards of a collected version left as orphans");
                    }
                }
                return Ok(false);
            }
            _ => return Ok(false),
        };
        let mut manifest = plan.manifest.clone();
        manifest.set_holders(&matrix)?;
        let version = self.quorum.version_after(Some(&plan.version));
        let record = self.quorum.sign(
            &plan.key,
            Record::live(version, Bytes::from(manifest.encode())),
            vec![origin],
        )?;
        self.quorum
            .apply(&plan.key.partition, vec![(plan.key.clone(), record)])
            .await?;
        self.with_status(|s| s.versions_repaired += 1);
        Ok(true)
    }
}

/// The manifest's holder matrix for `holders`; the first shard left without a holder is
/// an error that names it.
fn holder_matrix(holders: &[Vec<Option<PeerId>>]) -> Result<Vec<Vec<Bytes>>, WorkerError> {
    (0u64..)
        .zip(holders)
        .map(|(segment, row)| {
            (0u8..)
                .zip(row)
                .map(|(shard, holder)| {
                    holder
                        .map(|peer| Bytes::from(peer.to_bytes()))
                        .ok_or(WorkerError::NoHolder { segment, shard })
                })
                .collect()
        })
        .collect()
}
