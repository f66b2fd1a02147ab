//! Collection of unreferenced shards: shards on this node that no manifest names any
//! more (an upload that failed before its commit, the old copy of a shard that repair
//! moved, a version collected while this node was away), deleted once older than
//! `grace`.
//!
//! Deleting on the absence of a reference is the dangerous direction, so a pass proves
//! the absence: every node of the roster must answer which of this node's shards the live
//! manifests it holds reference (from its holder index, a page at a time). The roster is
//! every node this one has seen live in the last 30 days, kept in a file next to the
//! shards (so it is lost with them, never with the metadata alone). Each manifest is on
//! `R = 3` replicas, so one replica that lost its metadata cannot make a live shard look
//! unreferenced. A pass deletes nothing if any roster node does not answer — down,
//! partitioned — or while this node's view of the cluster has not settled (it knows fewer
//! live nodes than a peer reports), in the first 30 s after start, while the roster is
//! younger than `grace` (a new node, or one from before rosters, may not know its
//! cluster yet), or when it has never seen a peer but peers exist. Only shards whose file is older than `grace` are candidates: a PUT stores its shards
//! before it commits the manifest, and repair stores a rebuilt shard before it rewrites
//! the manifest.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use andromede_cluster::net::PeerId;
use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse};
use andromede_cluster::{Membership, MetaQuorum};
use andromede_proto::ShardId;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::runner::{StatusHandle, WorkerContext};
use super::shard_calls::ShardCalls;
use super::{every, now_ms};
use crate::error::WorkerError;
use crate::meta::RecordKey;
use crate::store::ShardStore;

/// Candidates (old shards) looked at per pass at most; the next pass takes the rest.
const CANDIDATES_MAX: usize = 1 << 20;
/// Shards listed per page of the local index.
const LIST_PAGE: usize = 1024;
/// A roster peer not seen live for this long no longer has to answer.
const ROSTER_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// Membership refreshes after start before a first pass (30 s at the default 5 s): the
/// view fills in meanwhile (a node that has just started knows nobody and would take
/// itself for a lone node).
const WARMUP_REFRESHES: u32 = 6;
/// Pages asked of one peer at most per pass (each names up to 64 manifests).
const PAGES_PER_PEER_MAX: usize = 1 << 20;

/// Settings of the collector.
#[derive(Debug, Clone)]
pub struct OrphanConfig {
    /// Pause between passes.
    pub interval: Duration,
    /// Age a shard file must reach before it may be collected.
    pub grace: Duration,
}

impl Default for OrphanConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrphanReport {
    /// Shards old enough to be candidates.
    pub candidates: u64,
    /// Unreferenced shards deleted.
    pub deleted: u64,
    /// The peer that did not answer, when the pass deleted nothing for that reason.
    pub waiting_for: Option<String>,
}

/// Deletes this node's shards that no manifest references.
#[derive(Debug)]
pub struct OrphanWorker {
    quorum: MetaQuorum,
    membership: Membership,
    store: ShardStore,
    calls: ShardCalls,
    roster: PathBuf,
    config: OrphanConfig,
    started: tokio::time::Instant,
}

/// The roster file.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Roster {
    /// When this roster was started (ms since the epoch): a young roster may not know
    /// the whole cluster yet (a new node, or one upgraded from before rosters).
    created_ms: u64,
    /// Peer id → last seen live (ms since the epoch).
    peers: BTreeMap<String, u64>,
}

/// Loads the roster file; a new one when there is none yet.
fn load_roster(path: &std::path::Path) -> Result<Roster, WorkerError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|error| WorkerError::RosterUnreadable {
                path: path.to_owned(),
                error,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Roster {
            created_ms: now_ms(),
            peers: BTreeMap::new(),
        }),
        Err(error) => Err(WorkerError::File {
            what: "reading",
            path: path.to_owned(),
            error,
        }),
    }
}

/// Writes the roster file atomically and durably.
fn save_roster(path: &std::path::Path, roster: &Roster) -> Result<(), WorkerError> {
    // A map of strings to integers always serialises.
    let bytes = serde_json::to_vec(roster).map_err(|error| WorkerError::RosterUnreadable {
        path: path.to_owned(),
        error,
    })?;
    crate::data_dir::write_file_durably(path, &bytes).map_err(|error| WorkerError::File {
        what: "writing",
        path: path.to_owned(),
        error,
    })
}

impl OrphanWorker {
    /// A collector over this node's stores; `roster` is the file that keeps the nodes
    /// it has seen.
    pub fn new(ctx: &WorkerContext, roster: PathBuf, config: OrphanConfig) -> Self {
        Self {
            quorum: ctx.quorum.clone(),
            membership: ctx.membership.clone(),
            store: ctx.store.clone(),
            calls: ctx.calls.clone(),
            roster,
            config,
            started: tokio::time::Instant::now(),
        }
    }

    /// Runs passes until `cancel`.
    pub async fn run(self, cancel: CancellationToken, status: StatusHandle) {
        every(self.config.interval, &cancel, || async {
            let started = tokio::time::Instant::now();
            let result = self.pass().instrument(info_span!("orphans")).await;
            status.pass_done(
                started,
                result.as_ref().map_or(0, |r| r.deleted),
                result.as_ref().err().map(ToString::to_string),
            );
            match result {
                Ok(report) if report.deleted > 0 => info!(?report, "unreferenced shards collected"),
                Ok(report) if report.waiting_for.is_some() => {
                    debug!(?report, "unreferenced shards left: a node did not answer");
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "unreferenced-shard pass stopped"),
            }
        })
        .await;
    }

    /// One pass.
    ///
    /// # Errors
    /// A description of a local store failure.
    pub async fn pass(&self) -> Result<OrphanReport, WorkerError> {
        super::majority_reached(&self.membership)?;
        let mut report = OrphanReport::default();
        if self.started.elapsed() < self.membership.refresh_every() * WARMUP_REFRESHES {
            report.waiting_for = Some("the node's view of the cluster (just started)".into());
            return Ok(report);
        }
        let local = self.calls.local();
        let live: Vec<PeerId> = self.membership.live().iter().map(|m| m.peer).collect();
        if !self.membership.is_settled(1) {
            report.waiting_for = Some("a settled view of the cluster".into());
            return Ok(report);
        }
        let path = self.roster.clone();
        let mut names: Vec<String> = live.iter().map(ToString::to_string).collect();
        names.push(local.to_string());
        let roster = tokio::task::spawn_blocking(move || {
            let mut roster = load_roster(&path)?;
            let now = now_ms();
            for name in names {
                roster.peers.insert(name, now);
            }
            let keep_ms = u64::try_from(ROSTER_KEEP.as_millis()).unwrap_or(u64::MAX);
            roster
                .peers
                .retain(|_, seen| now.saturating_sub(*seen) <= keep_ms);
            save_roster(&path, &roster)?;
            Ok::<_, WorkerError>(roster)
        })
        .await??;
        let grace_ms = u64::try_from(self.config.grace.as_millis()).unwrap_or(u64::MAX);
        if now_ms().saturating_sub(roster.created_ms) < grace_ms {
            report.waiting_for = Some("a roster as old as the grace period".into());
            return Ok(report);
        }
        let mut peers: Vec<PeerId> = Vec::new();
        for name in roster.peers.keys() {
            let Ok(peer) = name.parse::<PeerId>() else {
                continue;
            };
            if peer != local && !live.contains(&peer) {
                report.waiting_for = Some(peer.to_string());
                return Ok(report);
            }
            peers.push(peer);
        }
        // A node that has never seen a peer collects only if it is alone by design: one
        // that merely has not met its cluster yet knows nothing of its manifests.
        if peers.len() <= 1 && !self.membership.all().is_empty() {
            report.waiting_for = Some("the other nodes of the cluster".into());
            return Ok(report);
        }

        let mut candidates = self.old_shards().await?;
        report.candidates = candidates.len() as u64;
        if candidates.is_empty() {
            return Ok(report);
        }
        for peer in peers {
            if let Err(error) = self.strike_referenced(peer, &mut candidates).await {
                report.waiting_for = Some(format!("{peer} ({error})"));
                return Ok(report);
            }
            if candidates.is_empty() {
                return Ok(report);
            }
        }
        let orphans: Vec<ShardId> = candidates.into_iter().collect();
        for orphan in &orphans {
            debug!(shard = %orphan.short(), "unreferenced shard");
        }
        report.deleted = self.calls.delete(local, &orphans).await?;
        Ok(report)
    }

    /// Ids of the shards held here whose file is older than the grace period.
    async fn old_shards(&self) -> Result<HashSet<ShardId>, WorkerError> {
        let store = self.store.clone();
        let grace = self.config.grace;
        tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            let mut out = HashSet::new();
            let mut after: Option<ShardId> = None;
            loop {
                let page = store.list(after.as_ref(), LIST_PAGE)?;
                let Some((last, _)) = page.last() else {
                    return Ok(out);
                };
                after = Some(*last);
                for (id, _) in page {
                    let old = store
                        .written_at(&id)
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age >= grace);
                    if old {
                        out.insert(id);
                        if out.len() >= CANDIDATES_MAX {
                            return Ok(out);
                        }
                    }
                }
            }
        })
        .await?
    }

    /// Removes from `candidates` every shard `peer`'s manifests reference on this node.
    async fn strike_referenced(
        &self,
        peer: PeerId,
        candidates: &mut HashSet<ShardId>,
    ) -> Result<(), WorkerError> {
        let holder = self.calls.local().to_bytes();
        let mut after: Option<RecordKey> = None;
        for _ in 0..PAGES_PER_PEER_MAX {
            let request = MetaRequest::Referenced {
                holder: holder.clone(),
                start_after: after.take(),
            };
            match self.quorum.ask_one(peer, request).await? {
                MetaResponse::ShardIds { ids, next } => {
                    debug!(%peer, referenced = ids.len(), more = next.is_some(), "references");
                    for id in ids {
                        candidates.remove(&id);
                    }
                    match next {
                        Some(next) => after = Some(next),
                        None => return Ok(()),
                    }
                }
                _ => {
                    return Err(WorkerError::UnexpectedAnswer {
                        peer,
                        request: "referenced",
                    });
                }
            }
        }
        Err(WorkerError::TooManyPages {
            peer,
            pages_max: PAGES_PER_PEER_MAX,
        })
    }
}
