//! Liveness (DESIGN.md, "Design for failure"): a peer unreachable for `down_after` is
//! down. Membership says whether a peer answered its last info request; this module adds
//! the time dimension, so that a reboot or a blip (shorter than `down_after`) never
//! starts a repair, and a peer that flaps faster than that is never declared down.
//!
//! A peer the authority revoked is down at once: its shards are rebuilt elsewhere.
//!
//! A peer this node does not know at all (a holder named by a manifest, forgotten by
//! membership or never met) counts as unreachable from the first time someone asks about
//! it. After this node starts, nobody is down before `down_after` has passed, whatever
//! membership says: it takes a while to meet everyone again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andromede_cluster::Membership;
use andromede_cluster::net::meta_message::MetaRequest;
use andromede_cluster::net::{NetHandle, PeerId, call_meta};
use tokio::time::Instant;
use tracing::{info, warn};

/// Suspects probed per call at most.
const PROBES_MAX: usize = 64;
/// Peers tracked as unreachable at most: beyond, the oldest entries are dropped (they are
/// met again, and start a fresh `down_after`, if they matter).
const TRACKED_MAX: usize = 65_536;

/// What liveness says about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Answered lately.
    Up,
    /// Unreachable for less than `down_after`.
    Unreachable,
    /// Unreachable for at least `down_after`.
    Down,
}

#[derive(Debug)]
struct Tracked {
    /// When it was first seen unreachable (since it last answered).
    since: Instant,
    /// Whether its going down was logged.
    reported: bool,
}

/// The down detector, shared by the workers that need it.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    membership: Membership,
    local: PeerId,
    down_after: Duration,
    started: Instant,
    unreachable: Mutex<HashMap<PeerId, Tracked>>,
}

impl Liveness {
    /// Down detection over `membership`; `local` (this node) is always up.
    pub fn new(membership: Membership, local: PeerId, down_after: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                membership,
                local,
                down_after,
                started: Instant::now(),
                unreachable: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How long a peer must be unreachable to be down.
    pub fn down_after(&self) -> Duration {
        self.inner.down_after
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Tracked>> {
        // Plain data, each update one statement: a panic cannot tear it.
        self.inner
            .unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The state of `peer` now.
    pub fn state(&self, peer: &PeerId) -> PeerState {
        if *peer == self.inner.local {
            return PeerState::Up;
        }
        // Revoked: its shards count as lost at once, whatever it answers.
        if self.inner.membership.is_revoked(peer) {
            return PeerState::Down;
        }
        let live = self
            .inner
            .membership
            .all()
            .iter()
            .any(|m| m.peer == *peer && m.live);
        let now = Instant::now();
        let mut tracked = self.lock();
        if live {
            if tracked.remove(peer).is_some_and(|t| t.reported) {
                info!(%peer, "peer is back");
            }
            return PeerState::Up;
        }
        if tracked.len() >= TRACKED_MAX && !tracked.contains_key(peer) {
            let oldest = tracked.iter().min_by_key(|(_, t)| t.since).map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                tracked.remove(&oldest);
            }
        }
        let entry = tracked.entry(*peer).or_insert(Tracked {
            since: now,
            reported: false,
        });
        let unreachable_for = now.duration_since(entry.since.max(self.inner.started));
        if unreachable_for < self.inner.down_after {
            return PeerState::Unreachable;
        }
        if !entry.reported {
            entry.reported = true;
            warn!(%peer, ?unreachable_for, "peer is down: its shards will be repaired");
        }
        PeerState::Down
    }

    /// Records that `peer` just answered: it is up, and any unreachable time so far is
    /// forgotten (membership may still call it not live until its next refresh).
    pub fn mark_up(&self, peer: &PeerId) {
        if self.lock().remove(peer).is_some_and(|t| t.reported) {
            info!(%peer, "peer is back");
        }
        self.lock().insert(
            *peer,
            Tracked {
                since: Instant::now(),
                reported: false,
            },
        );
    }

    /// Asks the peers seen unreachable (at most `PROBES_MAX`, longest unreachable first)
    /// for their info (at most `timeout` each, all at once): one that answers counts as
    /// unreachable from now on, not since it was first missed. Membership refreshes
    /// only every few seconds; without this, a node that restarts within `down_after`,
    /// or flaps faster than that, could be declared down between two refreshes and
    /// start repairs.
    pub async fn probe(&self, net: &NetHandle, timeout: Duration) {
        let mut suspects: Vec<(PeerId, Instant)> =
            self.lock().iter().map(|(p, t)| (*p, t.since)).collect();
        suspects.sort_by_key(|(_, since)| *since);
        suspects.truncate(PROBES_MAX);
        let answers = futures::future::join_all(suspects.iter().map(|(peer, _)| async move {
            // Any answer, even `Busy` or a refusal, shows the peer is up.
            let answered = match call_meta(net, *peer, &MetaRequest::Info, timeout).await {
                Ok(_) => true,
                Err(error) => !error.is_unreachable(),
            };
            (*peer, answered)
        }))
        .await;
        for (peer, answered) in answers {
            if answered {
                self.mark_up(&peer);
            }
        }
    }

    /// Whether `peer` is down now.
    pub fn is_down(&self, peer: &PeerId) -> bool {
        self.state(peer) == PeerState::Down
    }

    /// Every known peer that is down now: members not live, and any peer asked about
    /// before and still unreachable.
    pub fn down_peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .inner
            .membership
            .all()
            .into_iter()
            .filter(|m| !m.live)
            .map(|m| m.peer)
            .collect();
        peers.extend(self.lock().keys().copied());
        peers.extend(self.inner.membership.revoked());
        peers.sort();
        peers.dedup();
        peers.retain(|p| self.is_down(p));
        peers
    }
}
