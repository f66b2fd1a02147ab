//! Draining a node before it is retired (`andromede-node drain`).
//!
//! A draining node says so in its info. Every member then leaves it out of placement
//! (no new shards) and of metadata replica sets (its records go to the next closest
//! nodes through anti-entropy), and the repair worker of each bucket's first replica
//! moves the shards it holds to the nodes placement now prefers, through the holder
//! index, at repair's byte rate. Nothing is deleted from the draining node (the old
//! copies become unreferenced shards), so redundancy never drops on the way.
//!
//! The node is safe to stop when every other member answers that none of the live
//! manifests it replicates names this node as a holder, and this node's own records
//! have all been offered to their new replica sets in a complete anti-entropy pass that
//! began after the others had had time to see the drain. The drain is persisted
//! (`DIR/draining`), so a restarted node keeps draining; it is not undone (a node put
//! back into service is re-initialised empty).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use andromede_cluster::admin::DrainProgress;
use andromede_cluster::net::PeerId;
use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse};
use andromede_cluster::{Membership, MetaQuorum, ReplicaError};
use tokio::sync::Notify;

use crate::data_dir::write_file_durably;
use crate::workers::now_ms;

/// Time after the start of a drain by which every member has seen it (membership
/// refreshes every few seconds): anti-entropy passes that start later count.
pub const DRAIN_SEEN_AFTER: Duration = Duration::from_secs(DRAIN_SEEN_AFTER_SECS);
const DRAIN_SEEN_AFTER_SECS: u64 = 15;
/// Members asked at once for their count.
const COUNT_CONCURRENCY: usize = 16;

/// Whether this node is draining, shared by the workers that act on it.
#[derive(Debug, Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    marker: PathBuf,
    /// When the drain began (ms since the Unix epoch); 0: not draining.
    since_ms: AtomicU64,
    /// Start time of the last anti-entropy pass that reached every replica.
    clean_handoff_since_ms: AtomicU64,
    /// Wakes the workers that act faster while draining.
    started: Notify,
}

/// Why the drain state could not be read or recorded; nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// The marker file could not be read or written.
    #[error("{what} {path}: {error}")]
    Marker {
        /// What was being done.
        what: &'static str,
        /// The marker.
        path: PathBuf,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The marker does not hold a time.
    #[error(
        "{path} does not hold a drain start time; delete it only if this node is not being retired"
    )]
    BadMarker {
        /// The marker.
        path: PathBuf,
    },
}

impl Drain {
    /// The state kept at `marker` (absent: not draining).
    ///
    /// # Errors
    /// The marker exists but cannot be read or does not hold a time.
    pub fn load(marker: PathBuf) -> Result<Self, DrainError> {
        let since_ms = match std::fs::read_to_string(&marker) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| DrainError::BadMarker {
                    path: marker.clone(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => {
                return Err(DrainError::Marker {
                    what: "reading",
                    path: marker,
                    error,
                });
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                marker,
                since_ms: AtomicU64::new(since_ms),
                clean_handoff_since_ms: AtomicU64::new(0),
                started: Notify::new(),
            }),
        })
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.since_ms().is_some()
    }

    /// When the drain began.
    pub fn since_ms(&self) -> Option<u64> {
        Some(self.inner.since_ms.load(Ordering::Acquire)).filter(|&ms| ms > 0)
    }

    /// Starts draining (durably: the marker is written first); a node already draining
    /// keeps its start time. Returns the start time.
    ///
    /// # Errors
    /// The marker could not be written; nothing changed.
    pub fn start(&self) -> Result<u64, DrainError> {
        if let Some(since) = self.since_ms() {
            return Ok(since);
        }
        let since = now_ms().max(1);
        write_file_durably(&self.inner.marker, since.to_string().as_bytes()).map_err(|error| {
            DrainError::Marker {
                what: "cannot record the drain in",
                path: self.inner.marker.clone(),
                error,
            }
        })?;
        self.inner.since_ms.store(since, Ordering::Release);
        self.inner.started.notify_waiters();
        Ok(since)
    }

    /// Resolves when a drain starts (at once if one has).
    pub async fn started(&self) {
        let notified = self.inner.started.notified();
        if self.is_draining() {
            return;
        }
        notified.await;
    }

    /// Records that an anti-entropy pass that began at `pass_started_ms` reached every
    /// replica it offered records to.
    pub fn record_clean_handoff(&self, pass_started_ms: u64) {
        self.inner
            .clean_handoff_since_ms
            .fetch_max(pass_started_ms, Ordering::AcqRel);
    }

    /// Whether this node's records are on their new replica sets: a clean anti-entropy
    /// pass began after every member had seen the drain.
    pub fn metadata_handed_off(&self) -> bool {
        self.since_ms().is_some_and(|since| {
            let seen = since + DRAIN_SEEN_AFTER_SECS * 1000;
            self.inner.clean_handoff_since_ms.load(Ordering::Acquire) >= seen
        })
    }
}

/// Asks every member of the roster how many manifests still name `local`, and combines
/// that with the metadata hand-off into a progress report: a member that does not answer
/// (down, or across a partition) keeps the node from being safe to stop, since its
/// replicas may still name it.
pub async fn progress(
    drain: &Drain,
    local: PeerId,
    membership: &Membership,
    quorum: &MetaQuorum,
) -> DrainProgress {
    use futures::StreamExt;
    let Some(since_ms) = drain.since_ms() else {
        return DrainProgress::default();
    };
    let holder = local.to_bytes();
    let answers: Vec<(PeerId, Result<MetaResponse, ReplicaError>)> =
        futures::stream::iter(membership.all())
            .map(|member| {
                let request = MetaRequest::HeldBy {
                    holder: holder.clone(),
                };
                async move { (member.peer, quorum.ask_one(member.peer, request).await) }
            })
            .buffer_unordered(COUNT_CONCURRENCY)
            .collect()
            .await;
    let mut report = DrainProgress {
        draining: true,
        since_ms,
        metadata_handed_off: drain.metadata_handed_off(),
        ..DrainProgress::default()
    };
    let mut answered = 0;
    for (peer, answer) in answers {
        match answer {
            Ok(MetaResponse::HeldCount { versions, capped }) => {
                answered += 1;
                report.versions_left += versions;
                report.capped |= capped;
            }
            _ => report.unanswered.push(peer.to_string()),
        }
    }
    // With no other member, nothing can have been handed over.
    report.safe_to_stop = answered > 0
        && membership.reach().majority()
        && report.versions_left == 0
        && report.unanswered.is_empty()
        && report.metadata_handed_off;
    report
}
