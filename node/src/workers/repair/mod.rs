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

mod assess;
mod candidates;
mod commit;
mod plan;
mod queue;
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

/// What a bucket's record says about where its shards may go.
#[derive(Debug, Clone)]
enum BucketPolicy {
    /// Its policy.
    Known(PlacementPolicy),
    /// The bucket is deleted: its versions are garbage; a drain still moves them, within
    /// the jurisdictions they are already in (see `RepairWorker::held_places`).
    Deleted,
    /// The record cannot be read: the bucket waits.
    Unreadable,
}

/// Bucket placement policies read during one pass.
#[derive(Debug, Default)]
struct Policies(BTreeMap<String, BucketPolicy>);

impl Policies {
    async fn get(&mut self, worker: &RepairWorker, bucket: &str) -> BucketPolicy {
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
            let result = if let Err(minority) = crate::workers::majority_reached(&self.membership) {
                Err(minority)
            } else if sweep {
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
                result.as_ref().err().map(ToString::to_string),
            );
            match result {
                Ok(report) if report == RepairReport::default() => {}
                Ok(report) => info!(?report, sweep, "repair pass done"),
                Err(error) => warn!(%error, "repair pass stopped"),
            }
        }
    }
}
