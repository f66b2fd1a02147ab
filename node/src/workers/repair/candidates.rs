//! Finding the versions to repair: the down-peer pass (holder index of down, draining and
//! restocked peers, and rechecks), the sweep over every version this node owns, and the
//! filter that leaves replaced versions to the collector.

use super::*;
use crate::error::WorkerError;

impl RepairWorker {
    /// Notes the store epoch every live peer announces; a peer whose epoch changed lost
    /// its shards (a wiped or replaced disk, back under the same identity) and the
    /// versions it holds are walked by the next down-peer passes.
    pub(super) fn note_epochs(&self) {
        let mut epochs = self.epochs.lock().unwrap_or_else(|e| e.into_inner());
        for member in self.membership.live() {
            let now = member.info.store_epoch;
            if now == 0 {
                continue;
            }
            match epochs.get(&member.peer) {
                Some(&before) if before != now => {
                    info!(peer = %member.peer, "peer's store is new (wiped or replaced disk): checking what it held");
                    self.restocked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(member.peer, None);
                }
                Some(_) => {}
                None if epochs.len() >= KNOWN_PEERS_MAX => continue,
                None => {}
            }
            epochs.insert(member.peer, now);
        }
    }

    /// One page (up to `limit`) of the versions naming `holder`, after `after`, from the
    /// holder index.
    pub(super) async fn held_by(
        &self,
        holder: &PeerId,
        after: Option<RecordKey>,
        limit: usize,
    ) -> Result<Vec<RecordKey>, WorkerError> {
        let meta = Arc::clone(&self.meta);
        let holder = holder.to_bytes();
        tokio::task::spawn_blocking(move || meta.versions_held_by(&holder, after.as_ref(), limit))
            .await?
            .map_err(WorkerError::from)
    }

    /// Adds to `keys` the versions this node owns that name `holder`, from the holder
    /// index, until `keys` holds `VERSIONS_PER_PASS_MAX`.
    pub(super) async fn held_by_all(
        &self,
        holder: &PeerId,
        keys: &mut Vec<RecordKey>,
    ) -> Result<(), WorkerError> {
        let mut after: Option<RecordKey> = None;
        while keys.len() < VERSIONS_PER_PASS_MAX {
            let page = self.held_by(holder, after.clone(), HOLDER_PAGE).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            after = Some(last);
            keys.extend(page.into_iter().filter(|k| self.owns(k)));
        }
        Ok(())
    }

    /// Up to `limit` versions held by peers whose store is new, continuing each walk
    /// where the last pass left it; a walk that reaches the end is done.
    pub(super) async fn restocked_versions(
        &self,
        limit: usize,
    ) -> Result<Vec<RecordKey>, WorkerError> {
        let walks: Vec<(PeerId, Option<RecordKey>)> = self
            .restocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, c)| (*p, c.clone()))
            .collect();
        let mut keys = Vec::new();
        let local = self.calls.local();
        for (peer, cursor) in walks {
            if peer == local
                && (self.membership.live().is_empty() || !self.membership.is_settled(1))
            {
                // This node has just started: which versions it owns is not known yet.
                continue;
            }
            let want = limit.saturating_sub(keys.len()).min(HOLDER_PAGE);
            if want == 0 {
                break;
            }
            let page = self.held_by(&peer, cursor, want).await?;
            let mut restocked = self.restocked.lock().unwrap_or_else(|e| e.into_inner());
            match page.last() {
                Some(last) if page.len() == want => {
                    restocked.insert(peer, Some(last.clone()));
                }
                _ => {
                    restocked.remove(&peer);
                }
            }
            keys.extend(page.into_iter().filter(|k| self.owns(k)));
        }
        Ok(keys)
    }

    /// Repairs the versions with a shard on a down peer, and moves those with a shard on a
    /// draining peer, found through the holder index; looks again at versions whose
    /// holders could not be asked before and now answer, and at those held by a peer
    /// whose store is new.
    ///
    /// # Errors
    /// A description of a local metadata store failure.
    pub async fn down_pass(&self, cancel: &CancellationToken) -> Result<RepairReport, WorkerError> {
        // Versions on a draining node all move, replaced ones too: the drain is done
        // only when no manifest names the node.
        let mut draining = Vec::new();
        for peer in self.draining_peers() {
            self.held_by_all(&peer, &mut draining).await?;
        }
        let mut keys = Vec::new();
        for peer in self.liveness.down_peers() {
            self.held_by_all(&peer, &mut keys).await?;
        }
        keys.extend(self.rechecks_due(VERSIONS_PER_PASS_MAX.saturating_sub(keys.len())));
        keys.extend(
            self.restocked_versions(VERSIONS_PER_PASS_MAX.saturating_sub(keys.len()))
                .await?,
        );
        let mut keys = self.current_versions(keys).await;
        keys.extend(draining);
        keys.sort();
        keys.dedup();
        keys.truncate(VERSIONS_PER_PASS_MAX);
        let plans = self.assess_all(keys).await;
        Ok(self.repair_all(plans, cancel).await)
    }

    /// Checks every version this node owns with its holders, records redundancy counts,
    /// and repairs what is missing.
    ///
    /// # Errors
    /// A description of a local metadata store failure.
    pub async fn sweep(&self, cancel: &CancellationToken) -> Result<RepairReport, WorkerError> {
        // Assessment walks the pages while repair works through what they found: the
        // two overlap, so the disks and the network stay busy between pages. The channel
        // bounds how far assessment runs ahead (plans hold manifests).
        let (mut found, queued) = futures::channel::mpsc::channel(SWEEP_PLANS_AHEAD);
        let walk = async move {
            let mut health = HealthCounts::default();
            let mut after: Option<RecordKey> = None;
            let mut rebalance_budget = self.config.rebalance_bytes_per_sweep;
            let mut policies = Policies::default();
            while !cancel.is_cancelled() {
                let page = table_page(
                    &self.meta,
                    Table::Manifest,
                    after.as_ref(),
                    PAGE_RECORDS,
                    PAGE_BYTES,
                )
                .await?;
                let Some((last, _)) = page.last() else {
                    self.with_status(|s| {
                        s.health = health;
                        s.health_at_ms = now_ms();
                    });
                    break;
                };
                after = Some(last.clone());
                let keys: Vec<RecordKey> = page
                    .into_iter()
                    .filter(|(key, record)| !record.is_tombstone() && self.owns(key))
                    .map(|(key, _)| key)
                    .collect();
                let keys = self.current_versions(keys).await;
                let mut plans = self.assess_all(keys).await;
                for plan in &plans {
                    plan::count_health(&mut health, plan);
                }
                if rebalance_budget > 0 {
                    let targets = self.targets();
                    for plan in plans.iter_mut().filter(|p| !p.needs_repair()) {
                        let BucketPolicy::Known(policy) =
                            policies.get(self, &plan.key.partition).await
                        else {
                            continue;
                        };
                        let marked = mark_rebalance(plan, &targets, &policy, rebalance_budget);
                        rebalance_budget = rebalance_budget.saturating_sub(marked);
                    }
                }
                for job in self.jobs(plans, &mut policies).await {
                    self.with_status(|s| s.queue += 1);
                    if found.send(job).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok::<(), WorkerError>(())
        };
        let (walked, report) = tokio::join!(walk, self.repair_jobs(queued, cancel));
        self.with_status(|s| s.queue = 0);
        walked.map(|()| report)
    }

    /// Whether this node is the first live replica of the bucket of `key`.
    pub(super) fn owns(&self, key: &RecordKey) -> bool {
        self.quorum.leads(&key.partition, self.calls.local())
    }

    /// The versions of `keys` not known here to be replaced or deleted. A garbage record
    /// names each version a PUT replaced or a DELETE removed (written with the index
    /// entry that supersedes it, so it never names a current version): the collector
    /// deletes its shards once the grace period is over, and rebuilding them first
    /// would queue the current versions behind every overwrite of the last minutes.
    pub(super) async fn current_versions(&self, keys: Vec<RecordKey>) -> Vec<RecordKey> {
        let meta = Arc::clone(&self.meta);
        let checked = tokio::task::spawn_blocking(move || {
            let mut current = Vec::with_capacity(keys.len());
            let mut failure = None;
            for key in keys {
                let garbage = RecordKey {
                    table: Table::Garbage,
                    partition: key.partition.clone(),
                    sort: key.sort.clone(),
                };
                match meta.get(&garbage) {
                    Ok(Some(record)) if !record.is_tombstone() => {}
                    Ok(_) => current.push(key),
                    // Unknown: assessed like a current version, never skipped.
                    Err(error) => {
                        failure.get_or_insert(error);
                        current.push(key);
                    }
                }
            }
            (current, failure)
        })
        .await;
        match checked {
            Ok((current, failure)) => {
                if let Some(error) = failure {
                    warn!(%error, "garbage records unreadable: replaced versions may be repaired too");
                }
                current
            }
            Err(error) => {
                warn!(%error, "checking garbage records failed: nothing assessed this pass");
                Vec::new()
            }
        }
    }
}
