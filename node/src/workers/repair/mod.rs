//! Repair (DESIGN.md, "Design for failure"): the first live metadata replica of a bucket
//! restores every segment of its versions to `k + m` healthy shards.
//!
//! Two ways in. Every `tick`, the versions that have a shard on a down or draining peer
//! are read from the holder index (a targeted list, no scan) — at once when a peer goes
//! down or starts draining, and again each tick until none is left. The same pass walks
//! the versions held by a peer whose store epoch changed (a wiped or replaced disk back
//! under the same identity; this node's own store when it was created at this start),
//! and looks again at versions whose holders could not be asked before and now answer.
//! Every `sweep_interval`, every version this node owns is
//! checked with its holders (`Have`): that finds shards lost to a wiped disk, deleted by
//! hand, or quarantined by a scrubber (a quarantined shard is a missing shard), and gives
//! the redundancy counts `status` shows.
//!
//! Only current versions are repaired: one that a garbage record names (replaced by a
//! PUT, or deleted) keeps whatever shards it has until the collector deletes them after
//! the grace period. Under overwrites, those doomed versions outnumber the current ones
//! many times over, and rebuilding them would hold up the repair of live data. (Shards
//! on a draining node all move, a replaced version's too: the drain is done when no
//! manifest names the node.)
//!
//! Found versions are repaired worst first (fewest healthy shards in a segment; up to
//! `VERSIONS_IN_FLIGHT` at once), each segment worst first too, at most
//! `segments_in_flight` at once across those versions, at `bytes_per_sec` of rebuilt
//! shards. A rebuilt shard goes back to its holder when that holder is up, or to a
//! new holder chosen by placement (policy, capacity and zones respected); then the
//! manifest is rewritten with the new holders, replacing exactly the record version that
//! was assessed. Nothing is ever removed on the way, so redundancy never drops: the old
//! copies on a down peer become unreferenced shards. A version that cannot be repaired now
//! (too few healthy shards, no room) is retried with a backoff.
//!
//! Healthy shards on the wrong node are moved the same way, copied rather than rebuilt:
//! those of a draining node, those doubled up on one node once enough nodes exist, and,
//! in a sweep, up to `rebalance_bytes_per_sweep` of those that the placement preferred by
//! the current membership puts elsewhere (a node joined; the next sweep comes early
//! then). The old copy is left to the unreferenced-shard collector.

mod plan;
mod rebuild;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andromede_cluster::admin::{HealthCounts, RepairStatus};
use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::Record;
use andromede_cluster::meta::values::BucketInfo;
use andromede_cluster::net::PeerId;
use andromede_cluster::placement::{Candidate, PlacementPolicy, placement_key};
use andromede_cluster::{Membership, MetaQuorum};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use plan::{Plan, Target, assess, destinations, mark_rebalance};
use rebuild::rebuild_segment;

use super::liveness::{Liveness, PeerState};
use super::rate::RateLimiter;
use super::runner::{StatusHandle, WorkerContext};
use super::shard_calls::ShardCalls;
use super::{MaintenanceLock, now_ms, table_page};
use crate::drain::Drain;
use crate::meta::MetaStore;
use crate::service::dispatch::NodeTags;
use crate::store::ShardStore;

/// Versions looked at per pass at most (each costs a quorum read and a few `Have`s).
const VERSIONS_PER_PASS_MAX: usize = 1024;
/// Versions repaired at once (their segments share `segments_in_flight`).
const VERSIONS_IN_FLIGHT: usize = 4;
/// Versions assessed at once.
const ASSESS_CONCURRENCY: usize = 8;
/// Versions a sweep's assessment may find ahead of the repair working through them.
const SWEEP_PLANS_AHEAD: usize = 2 * PAGE_RECORDS;
/// Versions read from the holder index per page.
const HOLDER_PAGE: usize = 256;
/// Manifest records walked per page by the sweep.
const PAGE_RECORDS: usize = 64;
/// Bytes of manifest records per sweep page.
const PAGE_BYTES: usize = 16 << 20;
/// Versions remembered as failing (for backoff) at most.
const BACKOFF_ENTRIES_MAX: usize = 100_000;
/// Time a suspect peer has to answer a liveness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Peers remembered as seen (to notice joins) at most.
const KNOWN_PEERS_MAX: usize = 100_000;
/// Versions remembered for a second look because a holder could not be asked, at most
/// (beyond that, the next sweep finds them).
const RECHECK_MAX: usize = 100_000;
/// Assessments in a row that may fail to ask a holder before the version is left to the
/// next sweep (a holder that is up but never answers must not cost a read every tick).
const RECHECK_ATTEMPTS_MAX: u32 = 3;
/// First retry delay of a version that could not be repaired.
const BACKOFF_MIN: Duration = Duration::from_secs(10);

/// Settings of the repair worker.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// How often down peers are looked for.
    pub tick: Duration,
    /// Pause between two sweeps of every version owned.
    pub sweep_interval: Duration,
    /// Rebuilt shard bytes per second at most.
    pub bytes_per_sec: u64,
    /// Segments rebuilt or moved at once, across the versions repaired at once (each
    /// holds about `k + 1` shards in memory).
    pub segments_in_flight: usize,
    /// Time each shard request has to be answered.
    pub request_timeout: Duration,
    /// Shard bytes a sweep moves at most toward the placement the current membership
    /// prefers (after nodes join); the rest waits for the next sweep.
    pub rebalance_bytes_per_sweep: u64,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(3600),
            bytes_per_sec: 256 << 20,
            segments_in_flight: 8,
            request_timeout: Duration::from_secs(30),
            rebalance_bytes_per_sweep: 4 << 30,
        }
    }
}

/// The repair worker's shared status.
pub type RepairStatusHandle = Arc<Mutex<RepairStatus>>;

/// Bucket placement policies read during one pass.
#[derive(Debug, Default)]
struct Policies(BTreeMap<String, PlacementPolicy>);

impl Policies {
    async fn get(&mut self, worker: &RepairWorker, bucket: &str) -> PlacementPolicy {
        if let Some(policy) = self.0.get(bucket) {
            return policy.clone();
        }
        let policy = worker.policy(bucket).await;
        self.0.insert(bucket.to_owned(), policy.clone());
        policy
    }
}

/// Repairs the versions of the buckets this node is the first live replica of.
#[derive(Debug)]
pub struct RepairWorker {
    meta: Arc<dyn MetaStore>,
    quorum: MetaQuorum,
    calls: ShardCalls,
    liveness: Liveness,
    membership: Membership,
    store: ShardStore,
    tags: NodeTags,
    drain: Drain,
    lock: MaintenanceLock,
    config: RepairConfig,
    status: RepairStatusHandle,
    limiter: tokio::sync::Mutex<RateLimiter>,
    /// Segments being rebuilt or moved at once, across versions.
    segment_slots: tokio::sync::Semaphore,
    backoff: Mutex<HashMap<RecordKey, (Instant, Duration)>>,
    /// Versions assessed while some of their holders could not be asked (a node
    /// restarting after a wipe, say), with those holders: assessed again by the next
    /// tick's pass once every one of them answers, rather than at the next sweep.
    /// The count is of assessments in a row that could not ask them all.
    recheck: Mutex<BTreeMap<RecordKey, (Vec<PeerId>, u32)>>,
    /// The store epoch each peer announced last.
    epochs: Mutex<HashMap<PeerId, u64>>,
    /// Peers whose store epoch changed (their shards are gone), each with how far the
    /// down-peer pass has walked the versions they hold.
    restocked: Mutex<BTreeMap<PeerId, Option<RecordKey>>>,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Versions found needing repair.
    pub found: u64,
    /// Versions whose manifest was rewritten.
    pub repaired: u64,
    /// Segments with too few healthy shards to rebuild.
    pub lost_segments: u64,
    /// Versions left for later (a failure, or not enough room).
    pub deferred: u64,
}

impl RepairWorker {
    /// A worker with `config`; its status is readable through [`RepairWorker::status`].
    pub fn new(ctx: &WorkerContext, liveness: Liveness, config: RepairConfig) -> Self {
        // A store created by this start under an identity that held shards (a wiped
        // disk): what the local metadata says this node holds is checked at once.
        let mut restocked = BTreeMap::new();
        if ctx.store.is_new() {
            restocked.insert(ctx.local, None);
        }
        Self {
            limiter: tokio::sync::Mutex::new(RateLimiter::new(config.bytes_per_sec)),
            segment_slots: tokio::sync::Semaphore::new(config.segments_in_flight.max(1)),
            meta: Arc::clone(&ctx.meta),
            quorum: ctx.quorum.clone(),
            calls: ctx.calls.clone(),
            liveness,
            membership: ctx.membership.clone(),
            store: ctx.store.clone(),
            tags: ctx.tags.clone(),
            drain: ctx.drain.clone(),
            lock: Arc::clone(&ctx.lock),
            config,
            status: RepairStatusHandle::default(),
            backoff: Mutex::new(HashMap::new()),
            recheck: Mutex::new(BTreeMap::new()),
            epochs: Mutex::new(HashMap::new()),
            restocked: Mutex::new(restocked),
        }
    }

    /// The status this worker keeps up to date.
    pub fn status(&self) -> RepairStatusHandle {
        Arc::clone(&self.status)
    }

    fn with_status(&self, update: impl FnOnce(&mut RepairStatus)) {
        // Plain counters: a panic elsewhere cannot leave them torn.
        update(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Runs until `cancel`: the down-peer pass every tick, a sweep every `sweep_interval`
    /// (the first once `down_after` has passed, when membership has settled).
    ///
    /// A node joining brings the next sweep forward to `down_after` from then (time for
    /// everyone to see it), so that shards move toward it without waiting an interval.
    pub async fn run(self, cancel: CancellationToken, status: StatusHandle) {
        let mut next_sweep = Instant::now() + self.liveness.down_after();
        let mut known: BTreeSet<PeerId> = BTreeSet::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.tick) => {}
            }
            self.liveness.probe(self.calls.net(), PROBE_TIMEOUT).await;
            self.note_epochs();
            let live: BTreeSet<PeerId> = self.membership.live().iter().map(|m| m.peer).collect();
            if !known.is_empty() && live.iter().any(|p| !known.contains(p)) {
                next_sweep = next_sweep.min(Instant::now() + self.liveness.down_after());
            }
            if known.len() < KNOWN_PEERS_MAX {
                known.extend(live);
            }
            let sweep = Instant::now() >= next_sweep;
            let span = info_span!("repair", sweep);
            let started = Instant::now();
            let result = if sweep {
                self.sweep(&cancel).instrument(span).await
            } else {
                self.down_pass(&cancel).instrument(span).await
            };
            if sweep {
                next_sweep = Instant::now() + self.config.sweep_interval;
            }
            status.pass_done(
                started,
                result.as_ref().map_or(0, |r| r.repaired),
                result.as_ref().err().cloned(),
            );
            match result {
                Ok(report) if report == RepairReport::default() => {}
                Ok(report) => info!(?report, sweep, "repair pass done"),
                Err(error) => warn!(%error, "repair pass stopped"),
            }
        }
    }

    /// Notes the store epoch every live peer announces; a peer whose epoch changed lost
    /// its shards (a wiped or replaced disk, back under the same identity) and the
    /// versions it holds are walked by the next down-peer passes.
    fn note_epochs(&self) {
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
    async fn held_by(
        &self,
        holder: &PeerId,
        after: Option<RecordKey>,
        limit: usize,
    ) -> Result<Vec<RecordKey>, String> {
        let meta = Arc::clone(&self.meta);
        let holder = holder.to_bytes();
        tokio::task::spawn_blocking(move || meta.versions_held_by(&holder, after.as_ref(), limit))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Adds to `keys` the versions this node owns that name `holder`, from the holder
    /// index, until `keys` holds `VERSIONS_PER_PASS_MAX`.
    async fn held_by_all(&self, holder: &PeerId, keys: &mut Vec<RecordKey>) -> Result<(), String> {
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
    async fn restocked_versions(&self, limit: usize) -> Result<Vec<RecordKey>, String> {
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
    pub async fn down_pass(&self, cancel: &CancellationToken) -> Result<RepairReport, String> {
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
    pub async fn sweep(&self, cancel: &CancellationToken) -> Result<RepairReport, String> {
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
                        let policy = policies.get(self, &plan.key.partition).await;
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
            Ok::<(), String>(())
        };
        let (walked, report) = tokio::join!(walk, self.repair_jobs(queued, cancel));
        self.with_status(|s| s.queue = 0);
        walked.map(|()| report)
    }

    /// Whether this node is the first live replica of the bucket of `key`.
    fn owns(&self, key: &RecordKey) -> bool {
        self.quorum.replicas(&key.partition).first() == Some(&self.calls.local())
    }

    fn backing_off(&self, key: &RecordKey) -> bool {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff
            .get(key)
            .is_some_and(|(until, _)| Instant::now() < *until)
    }

    fn defer(&self, key: &RecordKey) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        if backoff.len() >= BACKOFF_ENTRIES_MAX {
            backoff.clear();
        }
        let delay = backoff.get(key).map_or(BACKOFF_MIN, |(_, d)| {
            (*d * 2).min(self.config.sweep_interval)
        });
        backoff.insert(key.clone(), (Instant::now() + delay, delay));
    }

    fn forget(&self, key: &RecordKey) {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The versions of `keys` not known here to be replaced or deleted. A garbage record
    /// names each version a PUT replaced or a DELETE removed (written with the index
    /// entry that supersedes it, so it never names a current version): the collector
    /// deletes its shards once the grace period is over, and rebuilding them first
    /// would queue the current versions behind every overwrite of the last minutes.
    async fn current_versions(&self, keys: Vec<RecordKey>) -> Vec<RecordKey> {
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

    /// Reads each version's manifest from a quorum and finds its missing shards.
    async fn assess_all(&self, keys: Vec<RecordKey>) -> Vec<Plan> {
        // Membership read once for the batch, not once per version.
        let target_count = self.targets().len();
        let draining = self.draining_peers();
        let draining = &draining;
        let plans: Vec<Plan> = futures::stream::iter(keys)
            .filter(|key| std::future::ready(!self.backing_off(key)))
            .map(|key| self.assess_one(key, target_count, draining))
            .buffer_unordered(ASSESS_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let mut recheck = self.recheck.lock().unwrap_or_else(|e| e.into_inner());
        for plan in &plans {
            let attempts = recheck.remove(&plan.key).map_or(0, |(_, n)| n) + 1;
            if !plan.unconfirmed.is_empty()
                && attempts <= RECHECK_ATTEMPTS_MAX
                && recheck.len() < RECHECK_MAX
            {
                recheck.insert(plan.key.clone(), (plan.unconfirmed.clone(), attempts));
            }
        }
        plans
    }

    /// Up to `count` versions to assess again because every holder that could not be
    /// asked before answers now. Those with a holder now down are dropped: the holder
    /// index brings them to the down-peer pass.
    fn rechecks_due(&self, count: usize) -> Vec<RecordKey> {
        let mut recheck = self.recheck.lock().unwrap_or_else(|e| e.into_inner());
        recheck.retain(|_, (peers, _)| {
            !peers
                .iter()
                .any(|p| self.liveness.state(p) == PeerState::Down)
        });
        recheck
            .iter()
            .filter(|(_, (peers, _))| {
                peers
                    .iter()
                    .all(|p| self.liveness.state(p) == PeerState::Up)
            })
            .map(|(key, _)| key.clone())
            .take(count)
            .collect()
    }

    /// `target_count`: nodes that may take shards now; `draining`: the draining peers.
    async fn assess_one(
        &self,
        key: RecordKey,
        target_count: usize,
        draining: &[PeerId],
    ) -> Option<Plan> {
        let record = match self.quorum.get(&key).await {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(error) => {
                debug!(bucket = %key.partition, %error, "manifest unreadable; repair later");
                self.defer(&key);
                return None;
            }
        };
        let bytes = record.value.as_ref()?;
        let manifest = match Manifest::decode(bytes) {
            Ok(manifest) => manifest,
            Err(error) => {
                warn!(bucket = %key.partition, %error, "manifest does not decode; cannot repair it");
                return None;
            }
        };
        if matches!(manifest.body, Body::Inline(_)) {
            return None;
        }
        let can_spread = target_count >= manifest.params.shard_count();
        Some(
            assess(
                key,
                record.version,
                manifest,
                &self.liveness,
                &self.calls,
                can_spread,
                draining,
            )
            .await,
        )
    }

    /// Repairs `plans`, worst first.
    async fn repair_all(&self, plans: Vec<Plan>, cancel: &CancellationToken) -> RepairReport {
        let mut policies = Policies::default();
        let jobs = self.jobs(plans, &mut policies).await;
        self.with_status(|s| s.queue = jobs.len() as u64);
        let report = self.repair_jobs(futures::stream::iter(jobs), cancel).await;
        self.with_status(|s| s.queue = 0);
        report
    }

    /// The plans that need work, worst first (fewest healthy shards in a segment), each
    /// with its bucket's placement policy.
    async fn jobs(
        &self,
        mut plans: Vec<Plan>,
        policies: &mut Policies,
    ) -> Vec<(Plan, PlacementPolicy)> {
        plans.retain(Plan::needs_repair);
        plans.sort_by_key(Plan::healthy_min);
        let mut jobs = Vec::with_capacity(plans.len());
        for plan in plans {
            let policy = policies.get(self, &plan.key.partition).await;
            jobs.push((plan, policy));
        }
        jobs
    }

    /// Repairs the versions `jobs` yields, `VERSIONS_IN_FLIGHT` at once in the order given,
    /// their segments sharing `segments_in_flight` slots: a small version or a slow one
    /// does not leave the disks idle. Counts each job out of the status queue as it
    /// starts.
    async fn repair_jobs(
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

    /// The bucket's placement policy (any jurisdiction when the bucket record cannot be
    /// read: its shards were placed under some policy, and rebuilding beats losing them).
    async fn policy(&self, bucket: &str) -> PlacementPolicy {
        let key = RecordKey {
            table: Table::Bucket,
            partition: String::new(),
            sort: bucket.as_bytes().to_vec(),
        };
        let jurisdictions = match self.quorum.get(&key).await {
            Ok(Some(Record {
                value: Some(bytes), ..
            })) => BucketInfo::decode(&bytes)
                .map(|info| info.jurisdictions)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        PlacementPolicy {
            jurisdictions,
            min_holders: 1,
        }
    }

    /// The members being drained.
    fn draining_peers(&self) -> Vec<PeerId> {
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
    fn targets(&self) -> Vec<Target> {
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
    async fn repair_one(&self, plan: Plan, policy: &PlacementPolicy) -> Result<bool, String> {
        let destinations = destinations(&plan, &self.targets(), policy, &self.liveness)?;
        let mut segments: Vec<usize> = (0..plan.missing.len())
            .filter(|&s| !plan.missing[s].is_empty())
            .collect();
        segments.sort_by_key(|&s| plan.healthy(s));
        let span = info_span!("version", bucket = %plan.key.partition, segments = segments.len());
        let plan_ref = &plan;
        let destinations_ref = &destinations;
        let started = Instant::now();
        let results: Vec<(usize, Result<rebuild::Rebuilt, String>)> =
            futures::stream::iter(segments)
                .map(|segment| async move {
                    let segment_entry_bytes = match &plan_ref.manifest.body {
                        Body::Segments(list) => list.get(segment).map_or(0, |s| {
                            plan_ref.manifest.params.shard_bytes(s.sealed_bytes())
                                * plan_ref.missing[segment].len() as u64
                        }),
                        Body::Inline(_) => 0,
                    };
                    let Ok(_slot) = self.segment_slots.acquire().await else {
                        return (segment, Err("repair is stopping".to_owned()));
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
        let committed = if new_on.is_empty() {
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
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
        Ok(committed && stored_any)
    }

    /// Misplaced shards that `holders` put on another node than before.
    fn moved(plan: &Plan, holders: &[Vec<Option<PeerId>>]) -> u64 {
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
    async fn commit(
        &self,
        plan: &Plan,
        holders: &[Vec<Option<PeerId>>],
        new_on: &[(PeerId, andromede_proto::ShardId)],
    ) -> Result<bool, String> {
        let matrix: Vec<Vec<Bytes>> = holders
            .iter()
            .map(|row| {
                row.iter()
                    .map(|h| h.map(|p| Bytes::from(p.to_bytes())))
                    .collect::<Option<Vec<Bytes>>>()
            })
            .collect::<Option<_>>()
            .ok_or("a shard still has no valid holder")?;
        let _collector_waits = self.lock.lock().await;
        let current = self
            .quorum
            .get(&plan.key)
            .await
            .map_err(|e| e.to_string())?;
        match current {
            Some(record) if record.version == plan.version && !record.is_tombstone() => {}
            Some(record) if record.is_tombstone() => {
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
        }
        let mut manifest = plan.manifest.clone();
        manifest.set_holders(&matrix).map_err(|e| e.to_string())?;
        let version = self.quorum.version_after(Some(&plan.version));
        self.quorum
            .apply(
                &plan.key.partition,
                vec![(
                    plan.key.clone(),
                    Record::live(version, Bytes::from(manifest.encode())),
                )],
            )
            .await
            .map_err(|e| e.to_string())?;
        self.with_status(|s| s.versions_repaired += 1);
        Ok(true)
    }
}
