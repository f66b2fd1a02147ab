//! [`Membership`]: the nodes this peer knows, what each says about itself (zone,
//! jurisdiction, capacity) and whether it answered lately.
//!
//! Nodes come from the Kademlia routing table (only admitted nodes enter it); each is
//! asked for its [`NodeInfo`] on every refresh, at most `INFO_CONCURRENCY_MAX` at once. A
//! node that does not answer, or that failed a request since, is not live until it answers
//! again. Refreshes run in the background every `refresh_every` and on demand.
//!
//! What placement and repair trust comes from certificates, never from what a node says:
//! a member's zone and jurisdiction are those its certificate names (a node without one
//! in this view is not a member yet), and a revoked node leaves the view at once and is
//! reported by [`Membership::is_revoked`] so that liveness counts it down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use crate::authority::{Certificate, PeerRole, RevocationList};
use crate::net::message::MessageError;
use crate::net::meta_message::{MetaRequest, MetaResponse, NodeInfo};
use crate::net::{CallError, NetError, NetHandle, call_meta};
use crate::placement::{PlacementKey, placement_key};

/// Info requests in flight at once during a refresh.
const INFO_CONCURRENCY_MAX: usize = 32;

/// How membership is kept fresh.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Pause between background refreshes.
    pub refresh_every: Duration,
    /// Time a node has to answer an info request.
    pub info_timeout: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            refresh_every: Duration::from_secs(5),
            info_timeout: Duration::from_secs(5),
        }
    }
}

/// A node, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its peer id.
    pub peer: PeerId,
    /// Its position in the placement key space.
    pub key: PlacementKey,
    /// What it said about itself.
    pub info: NodeInfo,
    /// Whether it answered its last info request and failed nothing since.
    pub live: bool,
    /// Whether the replica sets it belongs to are changing because of it: it is catching
    /// up, or this view saw it finish less than `HANDOFF_GRACE` refreshes ago (other
    /// views may not have seen it finish yet). Metadata writes then reach the sets with
    /// and without it (DESIGN.md, "Metadata").
    pub handing_off: bool,
}

/// Refreshes after a member finished catching up during which writes still reach the
/// replica sets without it: every other view has refreshed by then, so a reader that
/// still leaves it out meets every write.
const HANDOFF_GRACE: u32 = 3;

#[derive(Debug, Default)]
struct State {
    members: HashMap<PeerId, (Member, Instant)>,
    /// When this view saw each member finish catching up (kept `HANDOFF_GRACE`).
    caught_up: HashMap<PeerId, Instant>,
}

#[derive(Debug)]
struct Inner {
    net: NetHandle,
    revocations: watch::Receiver<RevocationList>,
    config: MembershipConfig,
    state: Mutex<State>,
}

/// The known nodes. Cloning shares the view; the background refresh stops with the last
/// clone.
#[derive(Debug, Clone)]
pub struct Membership {
    inner: Arc<Inner>,
    _refresher: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Membership {
    /// Starts tracking the nodes `net` routes to, refreshing in the background.
    pub fn start(net: NetHandle, config: MembershipConfig) -> Self {
        let inner = Arc::new(Inner {
            revocations: net.revocations(),
            net,
            config,
            state: Mutex::new(State::default()),
        });
        let weak = Arc::downgrade(&inner);
        let refresher = tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let every = inner.config.refresh_every;
                inner.refresh().await;
                drop(inner);
                tokio::time::sleep(every).await;
            }
        });
        Self {
            inner,
            _refresher: Arc::new(AbortOnDrop(refresher)),
        }
    }

    /// Asks every routed node for its info now.
    pub async fn refresh(&self) {
        self.inner.refresh().await;
    }

    /// The pause between refreshes of this view: the pace at which it learns who is
    /// there (other timings count in refreshes).
    pub fn refresh_every(&self) -> Duration {
        self.inner.config.refresh_every
    }

    /// Every known node, live or not, sorted by peer id; a node revoked since the last
    /// refresh is left out at once.
    pub fn all(&self) -> Vec<Member> {
        let revocations = self.inner.revocations.borrow();
        let mut all: Vec<Member> = self
            .inner
            .lock()
            .members
            .values()
            .filter(|(m, _)| !revocations.revokes(&m.peer))
            .map(|(m, _)| m.clone())
            .collect();
        drop(revocations);
        all.sort_by_key(|m| m.peer);
        all
    }

    /// The live nodes, sorted by peer id.
    pub fn live(&self) -> Vec<Member> {
        let mut live = self.all();
        live.retain(|m| m.live);
        live
    }

    /// Records that `peer` failed a request: not live until it answers a refresh.
    pub fn mark_failed(&self, peer: PeerId) {
        if let Some((member, _)) = self.inner.lock().members.get_mut(&peer) {
            if member.live {
                debug!(%peer, "node marked not live after a failed request");
            }
            member.live = false;
        }
    }

    /// Whether the authority revoked `peer` (as far as this peer knows).
    pub fn is_revoked(&self, peer: &PeerId) -> bool {
        self.inner.revocations.borrow().revokes(peer)
    }

    /// The peers the authority revoked.
    pub fn revoked(&self) -> Vec<PeerId> {
        self.inner
            .revocations
            .borrow()
            .peers()
            .iter()
            .copied()
            .collect()
    }

    /// Whether this view holds as many live nodes as the live nodes say they know. `own`
    /// is 1 when the viewer is a node (its view leaves itself out), 0 for a client.
    ///
    /// The count to reach is the second highest any live node announces (the highest
    /// when only one is live): one node announcing a huge count cannot stall the
    /// collectors, repair and hand-off that wait for a settled view.
    pub fn is_settled(&self, own: usize) -> bool {
        let live = self.live();
        let mut claims: Vec<u32> = live.iter().map(|m| m.info.live_nodes).collect();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        let known = claims.get(1).or(claims.first()).copied().unwrap_or(0);
        (live.len() + own) as u64 >= u64::from(known)
    }

    /// Waits, at most `timeout`, until this view holds as many live nodes as any live node
    /// says it knows: a peer that has just joined through one node otherwise sees part
    /// of the cluster and would pick replicas and placements from that part. Returns
    /// whether the view caught up (when it does not, a node may be unreachable from here).
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh().await;
            if self.is_settled(0) {
                return true;
            }
            if Instant::now() >= deadline {
                debug!(seen = self.live().len(), "membership did not settle");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until at least `count` nodes are live, refreshing as it goes.
    ///
    /// # Errors
    /// [`NetError::Setup`] saying how many were found when `timeout` passes first.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Result<(), NetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh().await;
            let live = self.live().len();
            if live >= count {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NetError::Setup(format!(
                    "{live} live node(s) found, {count} wanted: check the bootstrap address and that the certificates are of this cluster"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data, each update one statement: a panic cannot tear it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn refresh(&self) {
        let Ok(peers) = self.net.routed_peers().await else {
            return;
        };
        let answers: Vec<(PeerId, Result<NodeInfo, CallError>)> = futures::stream::iter(peers)
            .map(|peer| async move { (peer, self.ask_info(peer).await) })
            .buffer_unordered(INFO_CONCURRENCY_MAX)
            .collect()
            .await;
        // Asked after the answers: asking connects, and connecting admits.
        let certified: HashMap<PeerId, Certificate> = self
            .net
            .certificates()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.role() == PeerRole::Node)
            .map(|c| (c.peer(), c))
            .collect();
        let revocations = self.revocations.borrow().clone();
        let now = Instant::now();
        let grace = self.config.refresh_every * HANDOFF_GRACE;
        let mut state = self.lock();
        state.members.retain(|peer, _| !revocations.revokes(peer));
        state
            .caught_up
            .retain(|_, at| now.duration_since(*at) < grace);
        for (peer, info) in answers {
            if revocations.revokes(&peer) {
                continue;
            }
            match info {
                Ok(mut info) => {
                    // The certified place, never the announced one.
                    let certified_place = certified
                        .get(&peer)
                        .map(|c| (c.zone().to_owned(), c.jurisdiction().to_owned()))
                        .or_else(|| {
                            state
                                .members
                                .get(&peer)
                                .map(|(m, _)| (m.info.zone.clone(), m.info.jurisdiction.clone()))
                        });
                    let Some((zone, jurisdiction)) = certified_place else {
                        debug!(%peer, "node answered without a certificate in this view yet");
                        continue;
                    };
                    if (&zone, &jurisdiction) != (&info.zone, &info.jurisdiction) {
                        debug!(%peer, announced_zone = info.zone, announced_jurisdiction = info.jurisdiction, zone, jurisdiction, "node announces another place than its certificate's; the certificate's is used");
                    }
                    info.zone = zone;
                    info.jurisdiction = jurisdiction;
                    let was_catching_up = state
                        .members
                        .get(&peer)
                        .is_some_and(|(m, _)| m.info.catching_up);
                    if was_catching_up && !info.catching_up {
                        debug!(%peer, "node caught up: its replica sets change");
                        state.caught_up.insert(peer, now);
                    }
                    let handing_off = info.catching_up || state.caught_up.contains_key(&peer);
                    let member = Member {
                        peer,
                        key: placement_key(&peer.to_bytes()),
                        info,
                        live: true,
                        handing_off,
                    };
                    state.members.insert(peer, (member, now));
                }
                // No answer: the peer may be down.
                Err(error) if error.is_unreachable() => {
                    debug!(%peer, %error, "node info request failed");
                    if let Some((member, _)) = state.members.get_mut(&peer) {
                        member.live = false;
                    }
                }
                // It answered (busy, a refusal, a bad answer): it is up, and keeps the
                // info it last gave; a busy replica must not turn into replica-set churn.
                Err(error) => {
                    debug!(%peer, %error, "node info not given, the node is up");
                    if let Some((_, seen)) = state.members.get_mut(&peer) {
                        *seen = now;
                    }
                }
            }
        }
        // Nodes not heard of for a long time leave the view (they are still in the
        // manifests that name them).
        let forget_after = self.config.refresh_every * 60;
        state
            .members
            .retain(|_, (m, seen)| m.live || now.duration_since(*seen) < forget_after);
    }

    async fn ask_info(&self, peer: PeerId) -> Result<NodeInfo, CallError> {
        let request = MetaRequest::Info;
        match call_meta(&self.net, peer, &request, self.config.info_timeout).await? {
            MetaResponse::Info(info) => Ok(info),
            // The decoder only lets an answer of the request's kind through.
            _ => Err(CallError::BadAnswer {
                peer,
                error: MessageError::Mismatch("an info request answered with another kind"),
            }),
        }
    }
}
