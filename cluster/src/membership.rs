//! [`Membership`]: the cluster's members — its roster (DESIGN.md, "Metadata") — what each
//! says about itself (zone, jurisdiction, capacity) and whether it answered lately.
//!
//! The members are the [`Roster`]: every node with a valid, unrevoked node certificate,
//! reachable or not. It grows from the certificates of the nodes this peer is admitted
//! to and from the rosters of its peers (each announces its roster's digest in its node
//! info; a different digest is fetched and merged), and a node keeps it on disk so that
//! a restart finds its peers without its bootstrap list. Every member is asked for its
//! [`NodeInfo`] on every refresh, at most `INFO_CONCURRENCY_MAX` at once; one that does
//! not answer, or that failed a request since, is not live until it answers again.
//! Refreshes run in the background every `refresh_every` and on demand.
//!
//! What placement and repair trust comes from certificates, never from what a node says:
//! a member's zone and jurisdiction are those its certificate names, and a revoked node
//! leaves the roster at once and is reported by [`Membership::is_revoked`] so that
//! liveness counts it down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::authority::{AuthorityKey, PeerRole, RevocationList, Trust, unix_now};
use crate::net::message::MessageError;
use crate::net::meta_message::{MetaRequest, MetaResponse, NodeInfo};
use crate::net::{CallError, NetError, NetHandle, call_meta};
use crate::placement::{PlacementKey, placement_key};
use crate::roster::{Roster, RosterEntry, RosterSnapshot};

/// Info requests in flight at once during a refresh.
const INFO_CONCURRENCY_MAX: usize = 32;
/// How long a node keeps saying it handed off for a departed member after it saw every
/// member do so (a view slower to see it has that long to look).
const HANDED_OFF_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Peers asked for their roster per refresh at most (when their digest differs).
const ROSTER_FETCHES_PER_REFRESH: usize = 2;

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
    /// Whether it left the roster (revoked, retired, expired) and only holds its place in
    /// the replica sets known to be complete until every member has handed off for it:
    /// never asked, never live.
    pub departed: bool,
}

/// How much of the roster a view reaches (see [`Membership::reach`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterReach {
    /// Members of the roster.
    pub members: usize,
    /// Of them, those this view reaches (this node included when it is a member).
    pub reachable: usize,
}

impl RosterReach {
    /// Whether a strict majority of the roster is reachable. A node that is not (cut off
    /// from the others, or on the minority side of a partition) writes nothing
    /// destructive: collection, repair's manifest rewrites and drain wait.
    pub fn majority(&self) -> bool {
        2 * self.reachable > self.members
    }

    /// Why destructive work waits, when it does.
    pub fn minority_reason(&self) -> Option<String> {
        (!self.majority()).then(|| {
            format!(
                "this node reaches {} of the roster's {} members, {} needed: collection, repair and drain write nothing until it reaches a majority",
                self.reachable,
                self.members,
                self.members / 2 + 1
            )
        })
    }
}

/// Refreshes after a member finished catching up during which writes still reach the
/// replica sets without it: every other view has refreshed by then, so a reader that
/// still leaves it out meets every write.
const HANDOFF_GRACE: u32 = 3;

#[derive(Debug, Default)]
struct State {
    /// What each member last said, and when it last answered.
    members: HashMap<PeerId, (Member, Instant)>,
    /// When this view saw each member finish catching up (kept `HANDOFF_GRACE`).
    caught_up: HashMap<PeerId, Instant>,
    /// The certified members.
    roster: Roster,
    /// Its digest, as node info announces it.
    digest: [u8; 32],
    /// Members that left the roster since this view started (revoked, retired, expired).
    departures: u64,
    /// When the roster last changed (or this view started).
    roster_changed_at: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    net: NetHandle,
    revocations: watch::Receiver<RevocationList>,
    /// The cluster's authority, which certified this peer (and so every member).
    authority: Option<AuthorityKey>,
    /// Where a node keeps its roster (clients keep it in memory).
    roster_file: Option<PathBuf>,
    /// Whether this node was told of peers to join (a bootstrap list): until its roster
    /// names one of them, it does not count as a majority of one.
    expects_peers: bool,
    config: MembershipConfig,
    state: Mutex<State>,
    /// Woken when members leave the roster.
    departed: tokio::sync::Notify,
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
    /// Starts tracking the cluster's members as a client sees them (the roster in
    /// memory, learnt from the nodes), refreshing in the background.
    pub fn start(net: NetHandle, config: MembershipConfig) -> Self {
        Self::start_with(net, config, None, Roster::new(), true)
    }

    /// Starts tracking the members as a node does: the roster kept in `roster_file`,
    /// loaded now (members that expired or were revoked meanwhile left out) and written
    /// whenever it changes; the addresses it holds are handed to the swarm at once, so
    /// a restarted node finds its peers without a bootstrap list.
    ///
    /// # Errors
    /// [`RosterError`](crate::roster::RosterError) when the file exists but cannot be
    /// read as a roster.
    pub async fn start_node(
        net: NetHandle,
        config: MembershipConfig,
        roster_file: PathBuf,
        expects_peers: bool,
    ) -> Result<Self, crate::roster::RosterError> {
        let authority = net.certificate().issuer().ok();
        let (roster, departures) = match &authority {
            Some(authority) => {
                // Loaded against the authority alone, then the revocations held: members
                // revoked while the node was down (or before it handed off for them)
                // count as departures, so it takes their partitions over again.
                let mut trust = Trust::new(authority.clone());
                let mut roster = Roster::load(&roster_file, &trust, unix_now())?;
                trust.update(net.revocations().borrow().clone());
                let gone = roster.drop_invalid(&trust, unix_now());
                (roster, gone.len() as u64)
            }
            None => (Roster::new(), 0),
        };
        let local = net.local_peer_id();
        for entry in roster.entries().filter(|e| e.peer() != local) {
            let _ = net.add_addresses(entry.peer(), entry.addrs.clone()).await;
        }
        if !roster.is_empty() {
            info!(members = roster.len(), "roster loaded");
        }
        let membership = Self::start_with(net, config, Some(roster_file), roster, expects_peers);
        membership.inner.lock().departures = departures;
        if departures > 0 {
            membership.inner.save_roster().await;
        }
        Ok(membership)
    }

    fn start_with(
        net: NetHandle,
        config: MembershipConfig,
        roster_file: Option<PathBuf>,
        roster: Roster,
        expects_peers: bool,
    ) -> Self {
        let digest = roster.digest();
        let inner = Arc::new(Inner {
            revocations: net.revocations(),
            authority: net.certificate().issuer().ok(),
            net,
            roster_file,
            expects_peers,
            config,
            state: Mutex::new(State {
                roster,
                digest,
                roster_changed_at: Some(Instant::now()),
                ..State::default()
            }),
            departed: tokio::sync::Notify::new(),
        });
        let weak = Arc::downgrade(&inner);
        let refresher = tokio::spawn(async move {
            let mut revocations = match weak.upgrade() {
                Some(inner) => inner.revocations.clone(),
                None => return,
            };
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let every = inner.config.refresh_every;
                inner.refresh().await;
                drop(inner);
                // A newer revocation list changes the roster: look again at once.
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    changed = revocations.changed() => if changed.is_err() {
                        tokio::time::sleep(every).await;
                    },
                }
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

    /// Every member of the roster, live or not, sorted by peer id; a node revoked since
    /// the last refresh is left out at once. A member that never answered this view has
    /// its certificate's place and no capacity.
    pub fn all(&self) -> Vec<Member> {
        let revocations = self.inner.revocations.borrow();
        let state = self.inner.lock();
        let local = self.inner.net.local_peer_id();
        let all: Vec<Member> = state
            .roster
            .entries()
            .filter(|e| e.peer() != local && !revocations.revokes(&e.peer()))
            .map(|e| match state.members.get(&e.peer()) {
                Some((member, _)) => member.clone(),
                None => Member {
                    peer: e.peer(),
                    key: placement_key(&e.peer().to_bytes()),
                    info: NodeInfo {
                        zone: e.certificate.zone().to_owned(),
                        jurisdiction: e.certificate.jurisdiction().to_owned(),
                        ..NodeInfo::default()
                    },
                    live: false,
                    handing_off: false,
                    departed: false,
                },
            })
            .collect();
        all
    }

    /// The roster's entries (this node's own included) and departed members, to answer a
    /// peer asking for them.
    pub fn roster(&self) -> RosterSnapshot {
        self.inner.lock().roster.snapshot()
    }

    /// The roster's digest, as node info announces it.
    pub fn roster_digest(&self) -> [u8; 32] {
        self.inner.lock().digest
    }

    /// Whether every live member announces the same roster members as this view: one
    /// that knows more (or fewer) computes other replica sets. A client waits for it
    /// before its first request.
    pub fn roster_agrees(&self) -> bool {
        let ours = self.members_digest();
        self.live()
            .iter()
            .all(|m| m.info.members_digest.is_none_or(|d| d == ours))
    }

    /// Who the roster's members are, as a digest (see [`Roster::members_digest`]).
    pub fn members_digest(&self) -> [u8; 32] {
        self.inner.lock().roster.members_digest()
    }

    /// How long the roster has not changed (since this view started, at most).
    pub fn roster_unchanged_for(&self) -> Duration {
        let state = self.inner.lock();
        state
            .roster_changed_at
            .map_or(Duration::ZERO, |at| at.elapsed())
    }

    /// How many members the roster holds (this node included when it is one).
    pub fn roster_len(&self) -> usize {
        self.inner.lock().roster.len()
    }

    /// The live nodes, sorted by peer id.
    pub fn live(&self) -> Vec<Member> {
        let mut live = self.all();
        live.retain(|m| m.live);
        live
    }

    /// How much of the roster this view reaches: members live in it (plus this node when
    /// it is a member) out of the roster's members.
    pub fn reach(&self) -> RosterReach {
        let local = self.inner.net.local_peer_id();
        let state = self.inner.lock();
        let revocations = self.inner.revocations.borrow();
        let members: Vec<PeerId> = state
            .roster
            .entries()
            .map(RosterEntry::peer)
            .filter(|p| !revocations.revokes(p))
            .collect();
        let reachable = members
            .iter()
            .filter(|p| **p == local || state.members.get(p).is_some_and(|(m, _)| m.live))
            .count();
        // A node told of peers to join that knows none of them yet is not a cluster of
        // one: it has only not met the others.
        let floor = if self.inner.expects_peers { 2 } else { 0 };
        RosterReach {
            members: members.len().max(floor),
            reachable,
        }
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

    /// The members that left the roster and keep their place in replica sets until
    /// every member has handed off for them (see [`crate::roster`]), as members that are
    /// never live.
    pub fn departed(&self) -> Vec<Member> {
        let state = self.inner.lock();
        state
            .roster
            .departed()
            .map(|e| {
                let last = state.members.get(&e.peer()).map(|(m, _)| &m.info);
                Member {
                    peer: e.peer(),
                    key: placement_key(&e.peer().to_bytes()),
                    info: NodeInfo {
                        zone: e.certificate.zone().to_owned(),
                        jurisdiction: e.certificate.jurisdiction().to_owned(),
                        // A member that drained before it left holds no place.
                        draining: last.is_some_and(|i| i.draining),
                        ..NodeInfo::default()
                    },
                    live: false,
                    handing_off: false,
                    departed: true,
                }
            })
            .collect()
    }

    /// Departed members this node has not handed off for yet.
    pub fn handoffs_pending(&self) -> Vec<PeerId> {
        let state = self.inner.lock();
        let done: Vec<&PeerId> = state.roster.handed_off().collect();
        state
            .roster
            .departed()
            .map(RosterEntry::peer)
            .filter(|p| !done.contains(&p))
            .collect()
    }

    /// Departed members this node has handed off for (its node info lists them).
    pub fn handed_off(&self) -> Vec<PeerId> {
        self.inner.lock().roster.handed_off().copied().collect()
    }

    /// Records that this node has copied every partition it replicates since `peers`
    /// left (the roster file keeps it).
    pub async fn mark_handed_off(&self, peers: &[PeerId]) {
        self.inner.lock().roster.mark_handed_off(peers, unix_now());
        self.inner.save_roster().await;
    }

    /// Members that left the roster since this view started.
    pub fn departures_seen(&self) -> u64 {
        self.inner.lock().departures
    }

    /// Waits until the departures seen exceed `seen`; returns how many there are.
    pub async fn departed_since(&self, seen: u64) -> u64 {
        loop {
            let notified = self.inner.departed.notified();
            let count = self.inner.lock().departures;
            if count > seen {
                return count;
            }
            notified.await;
        }
    }

    /// Version of the revocation list this peer holds.
    pub fn revocations_version(&self) -> u64 {
        self.inner.revocations.borrow().version()
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
    /// says it knows, with the same roster members: a peer that has just joined through one node otherwise sees part
    /// of the cluster and would pick replicas and placements from that part. Returns
    /// whether the view caught up (when it does not, a node may be unreachable from here).
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.refresh().await;
            if self.is_settled(0) && self.roster_agrees() {
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

    /// The trust certificates are checked against now (none for a peer whose own
    /// certificate names no valid authority: it then learns no roster).
    fn trust(&self) -> Option<Trust> {
        let mut trust = Trust::new(self.authority.clone()?);
        trust.update(self.revocations.borrow().clone());
        Some(trust)
    }

    async fn refresh(&self) {
        let Ok(routed) = self.net.routed_peers().await else {
            return;
        };
        let local = self.net.local_peer_id();
        let trust = self.trust();
        let now_unix = unix_now();
        // The certificates of the nodes admitted (and this node's own) join the roster.
        let admitted = self.net.certificates().await.unwrap_or_default();
        let own = self.roster_file.is_some().then(|| self.net.certificate());
        let own_addrs = match own {
            Some(_) => self.net.listen_addrs().await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut roster_changed = false;
        let mut file_changed = false;
        if let Some(trust) = &trust {
            let mut state = self.lock();
            let learnt: Vec<RosterEntry> = admitted
                .into_iter()
                .chain(own)
                .filter(|c| c.role() == PeerRole::Node)
                .map(|certificate| RosterEntry {
                    certificate,
                    addrs: Vec::new(),
                    addrs_unix: 0,
                })
                .collect();
            let merged = state.roster.merge_all(learnt, Some(local), trust, now_unix);
            roster_changed |= merged.changed();
            if self.roster_file.is_some() {
                let before = state.roster.digest();
                state.roster.set_own_addrs(&local, own_addrs, now_unix);
                roster_changed |= state.roster.digest() != before;
            }
            let gone = state.roster.drop_invalid(trust, now_unix);
            for peer in &gone {
                info!(%peer, "member left the roster (revoked, retired or its certificate expired)");
            }
            if !gone.is_empty() {
                state.departures += gone.len() as u64;
                roster_changed = true;
                self.departed.notify_waiters();
            }
        }
        // Every member is asked, and every routed node (it may bring a certificate).
        let mut peers: Vec<PeerId> = self
            .lock()
            .roster
            .entries()
            .map(RosterEntry::peer)
            .filter(|p| *p != local)
            .collect();
        for peer in routed {
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        let mut answers = self.ask_infos(peers.clone()).await;
        // A node holding a newer revocation list is asked for it (a client takes no
        // pushes); taking it triggers another refresh, which applies it.
        let held = self.revocations.borrow().version();
        let newer = answers.iter().find_map(|(peer, info)| {
            let info = info.as_ref().ok()?;
            (info.revocations_version > held).then_some(*peer)
        });
        if let Some(peer) = newer
            && let Err(error) = self.net.pull_revocations(peer).await
        {
            debug!(%peer, %error, "newer revocation list not taken");
        }
        // Rosters that differ from ours are fetched from a few of the peers holding them.
        let ours = self.lock().digest;
        let differing: Vec<PeerId> = answers
            .iter()
            .filter_map(|(peer, info)| {
                let digest = info.as_ref().ok()?.roster_digest?;
                (digest != ours).then_some(*peer)
            })
            .take(ROSTER_FETCHES_PER_REFRESH)
            .collect();
        if let Some(trust) = &trust {
            for peer in differing {
                let Ok(snapshot) = self.ask_roster(peer).await else {
                    continue;
                };
                let mut state = self.lock();
                let merged = state
                    .roster
                    .merge_all(snapshot.entries, Some(peer), trust, now_unix);
                if merged.refused > 0 {
                    debug!(%peer, refused = merged.refused, "roster entries refused");
                }
                roster_changed |= merged.changed();
                for entry in snapshot.departed {
                    roster_changed |= state.roster.merge_departed(entry, trust, now_unix);
                }
            }
            // Members just learnt are asked at once, at the addresses their entries give:
            // a client that has just connected sees the whole cluster after one refresh.
            let new: Vec<RosterEntry> = self
                .lock()
                .roster
                .entries()
                .filter(|e| e.peer() != local && !peers.contains(&e.peer()))
                .cloned()
                .collect();
            for entry in &new {
                let _ = self
                    .net
                    .add_addresses(entry.peer(), entry.addrs.clone())
                    .await;
            }
            answers.extend(
                self.ask_infos(new.iter().map(RosterEntry::peer).collect())
                    .await,
            );
        }
        let now = Instant::now();
        let grace = self.config.refresh_every * HANDOFF_GRACE;
        let revocations = self.revocations.borrow().clone();
        let mut unreachable: Vec<RosterEntry> = Vec::new();
        {
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
                        let Some(entry) = state.roster.get(&peer) else {
                            debug!(%peer, "node answered without a certificate in this view yet");
                            continue;
                        };
                        let (zone, jurisdiction) = (
                            entry.certificate.zone().to_owned(),
                            entry.certificate.jurisdiction().to_owned(),
                        );
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
                            departed: false,
                        };
                        state.members.insert(peer, (member, now));
                    }
                    // No answer: the peer may be down.
                    Err(error) if error.is_unreachable() => {
                        debug!(%peer, %error, "node info request failed");
                        if let Some((member, _)) = state.members.get_mut(&peer) {
                            member.live = false;
                        }
                        if let Some(entry) = state.roster.get(&peer) {
                            unreachable.push(entry.clone());
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
            // Only members are tracked; the roster says who they are.
            let State {
                members, roster, ..
            } = &mut *state;
            members.retain(|peer, _| roster.contains(peer) || roster.is_departed(peer));
            roster_changed |= Self::forget_handed_off(&mut state, local);
            let keep_secs = HANDED_OFF_KEEP.as_secs();
            if state
                .roster
                .prune_handed_off(now_unix.saturating_sub(keep_secs))
            {
                // The file only: the digest does not cover this node's hand-offs.
                file_changed = true;
            }
            if roster_changed {
                state.digest = state.roster.digest();
                state.roster_changed_at = Some(now);
            }
        }
        // Members not reached: the swarm dials them at the addresses the roster holds.
        for entry in unreachable {
            if !entry.addrs.is_empty() {
                let _ = self.net.add_addresses(entry.peer(), entry.addrs).await;
            }
        }
        if roster_changed || file_changed {
            self.save_roster().await;
        }
    }

    /// Forgets the departed members every member has handed off for (this node's own
    /// hand-offs from its roster, the others' from their last node info), or that a
    /// member already let go after seeing the same (it lists the member as handed off
    /// but no longer keeps its places): a view that joined after some member stopped
    /// never hears that member's word, and would otherwise keep the places for ever.
    /// Says whether any was forgotten.
    fn forget_handed_off(state: &mut State, local: PeerId) -> bool {
        let own: Vec<PeerId> = state.roster.handed_off().copied().collect();
        let departed: Vec<PeerId> = state.roster.departed().map(RosterEntry::peer).collect();
        let mut forgot = false;
        for gone in departed {
            let handed_off = |peer: PeerId| {
                if peer == local {
                    own.contains(&gone)
                } else {
                    state
                        .members
                        .get(&peer)
                        .is_some_and(|(m, _)| m.info.handed_off.contains(&gone))
                }
            };
            let everyone = state.roster.entries().all(|e| handed_off(e.peer()));
            let let_go = state.roster.entries().any(|e| {
                state.members.get(&e.peer()).is_some_and(|(m, _)| {
                    m.info.handed_off.contains(&gone) && !m.info.departed.contains(&gone)
                })
            });
            if everyone || let_go {
                info!(peer = %gone, everyone, "every member has handed off for a departed member: its replica-set places go");
                forgot |= state.roster.forget_departed(&gone);
            }
        }
        forgot
    }

    /// Writes the roster to its file (nodes only), off the async workers.
    async fn save_roster(&self) {
        let Some(path) = self.roster_file.clone() else {
            return;
        };
        let roster = self.lock().roster.clone();
        let saved = tokio::task::spawn_blocking(move || roster.save(&path)).await;
        match saved {
            Ok(Ok(())) => debug!("roster saved"),
            Ok(Err(error)) => {
                warn!(%error, "roster not saved; a restart will need the bootstrap list")
            }
            Err(error) => warn!(%error, "roster not saved"),
        }
    }

    /// Asks each of `peers` for its node info, at most `INFO_CONCURRENCY_MAX` at once.
    async fn ask_infos(&self, peers: Vec<PeerId>) -> Vec<(PeerId, Result<NodeInfo, CallError>)> {
        futures::stream::iter(peers)
            .map(|peer| async move { (peer, self.ask_info(peer).await) })
            .buffer_unordered(INFO_CONCURRENCY_MAX)
            .collect()
            .await
    }

    async fn ask_roster(&self, peer: PeerId) -> Result<RosterSnapshot, CallError> {
        let request = MetaRequest::Roster;
        match call_meta(&self.net, peer, &request, self.config.info_timeout).await? {
            MetaResponse::Roster(snapshot) => Ok(snapshot),
            _ => Err(CallError::BadAnswer {
                peer,
                error: MessageError::Mismatch("a roster request answered with another kind"),
            }),
        }
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
