//! [`MetaQuorum`]: reads and writes of metadata records on a partition's replicas, with
//! quorums (DESIGN.md, "Metadata": the `REPLICAS = 5` roster members closest to the
//! partition, a majority to write, enough to meet it to read) and read repair.
//!
//! - A write goes to every replica at once (each request its own task, so the slowest
//!   still receives it) and returns once a write quorum has made it durable.
//! - Replicas are roster members, reachable or not: a replica that fails is not replaced
//!   by another node, so a peer that reaches too few of a set gets
//!   [`QuorumError::NoQuorum`] ("no quorum: 2 of 5 replicas of bucket X reachable"),
//!   never an answer from a minority. Members this view knows to be down are not asked
//!   (they count as failed at once) unless the set cannot reach its quorum without them.
//! - A read asks a read quorum (a majority) and returns the last-writer-wins merge of its
//!   answers (it meets every acknowledged write); during a replica-set
//!   change it also merges every answer that arrives before the last one or `READ_GRACE`
//!   after the quorum, whichever is first. Replicas that answered with an older record
//!   (or none) are sent the winner in the background.
//! - A scan merges one page from each replica of a read quorum: the merged page stops at
//!   the smallest last key among pages that have more, so no key is skipped.
//! - Replica-set changes (DESIGN.md, "Metadata"): a node whose metadata store is new
//!   (it joined, or its disk was wiped) says it is catching up until it has copied its
//!   partitions from their replicas. Reads leave it out, so they count only replicas
//!   known to be complete; writes reach a quorum of the set with it and of the set
//!   without it, until every view has seen it finish (`Member::handing_off`). A reader
//!   on either side of the change then meets every acknowledged write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use tracing::{debug, warn};

use crate::membership::{Member, Membership};
use crate::meta::hlc::Hlc;
use crate::meta::key::{RecordKey, Table};
use crate::meta::record::{Record, Version, WriterId};
use crate::meta::seal::{RecordSigner, RecordVerifier, SealError};
use crate::net::message::RemoteErrorCode;
use crate::net::meta_message::{KeyedRecord, MetaRequest, MetaResponse};
use crate::net::{CallError, NetHandle, call_meta};
use crate::replicas::{
    REPLICAS, closest_members, partition_key, read_quorum, with_local, write_quorum,
};

/// How long a read waits for the remaining replicas once a quorum has answered.
pub const READ_GRACE: Duration = Duration::from_millis(200);

/// Why a metadata operation did not reach its quorum.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// No member is known at all.
    #[error(
        "no reachable node: check that the bootstrap node runs and that this peer's certificate is of its cluster"
    )]
    NoNodes,
    /// Too few of a partition's replicas answered.
    #[error(
        "no quorum: {reachable} of {replicas} replicas of {} reachable, {needed} needed ({last}); retry once more of them are up",
        describe_partition(.partition)
    )]
    NoQuorum {
        /// The partition (a bucket; empty: the bucket directory).
        partition: String,
        /// Replicas in its set.
        replicas: usize,
        /// Replicas that answered.
        reachable: usize,
        /// Answers needed.
        needed: usize,
        /// The last failure.
        last: String,
    },
    /// A replica refused the request for what this peer's certificate allows (its
    /// grants): every replica checks the same certificate, so asking others is useless.
    #[error("{0}")]
    Forbidden(String),
    /// This peer could not sign a record it writes.
    #[error(transparent)]
    Seal(#[from] SealError),
}

fn describe_partition(partition: &str) -> String {
    if partition.is_empty() {
        "the bucket directory".to_owned()
    } else {
        format!("bucket {partition}")
    }
}

/// Why one replica gave no usable answer to one request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// A remote replica: see [`CallError`] (it says whether the replica answered at all).
    #[error(transparent)]
    Call(#[from] CallError),
    /// This node, as its own replica, refused the request.
    #[error("this node refused: {code:?}: {detail}")]
    LocalRefused {
        /// Why, as a code.
        code: RemoteErrorCode,
        /// Its explanation.
        detail: String,
    },
    /// This node's metadata task failed.
    #[error("this node's metadata task failed: {0}")]
    LocalTask(String),
}

impl ReplicaError {
    /// The replica's explanation when it refused what the requester's certificate does
    /// not allow.
    fn forbidden(&self) -> Option<&str> {
        match self {
            Self::Call(CallError::Remote {
                code: RemoteErrorCode::Forbidden,
                detail,
                ..
            })
            | Self::LocalRefused {
                code: RemoteErrorCode::Forbidden,
                detail,
            } => Some(detail),
            _ => None,
        }
    }
}

/// A merged page of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Records in sort-key order, tombstones included.
    pub records: Vec<KeyedRecord>,
    /// Whether more records may follow the last one.
    pub more: bool,
}

/// What a request does, which decides the replica sets it must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// A replica set a request goes to.
#[derive(Debug)]
struct ReplicaSet {
    /// Its members, closest first (at most `REPLICAS`).
    replicas: Vec<PeerId>,
    /// Whether the request needs a quorum of it (otherwise its answers are only merged).
    counted: bool,
}

/// One replica set's progress during a request.
#[derive(Debug)]
struct SetProgress {
    /// Its members.
    members: Vec<PeerId>,
    /// Answers this set needs.
    needed: usize,
    /// Answers from its members.
    answered: usize,
    /// Members that failed, or were not asked because this view knows them down.
    failed: usize,
}

impl SetProgress {
    fn reached(&self) -> bool {
        self.answered >= self.needed
    }

    /// Whether the members still to answer can no longer make the quorum.
    fn lost(&self) -> bool {
        self.members.len().saturating_sub(self.failed) < self.needed
    }
}

/// A metadata replica inside this process. A node is one of the replicas of the
/// partitions closest to it, and cannot send itself requests over the network.
pub trait LocalReplica: Send + Sync + std::fmt::Debug {
    /// The node's peer id.
    fn peer(&self) -> PeerId;
    /// Answers one request; blocking (disk I/O), so called on a blocking thread.
    fn handle(&self, request: &MetaRequest) -> MetaResponse;
    /// Whether the node is being drained (then it is no replica, even of its own
    /// partitions).
    fn draining(&self) -> bool {
        false
    }
    /// Whether the node's metadata store is still being filled after it joined or was
    /// wiped (then it takes writes but counts towards no read quorum).
    fn catching_up(&self) -> bool {
        false
    }
}

/// Quorum access to metadata replicas.
#[derive(Debug, Clone)]
pub struct MetaQuorum {
    net: NetHandle,
    membership: Membership,
    local: Option<Arc<dyn LocalReplica>>,
    hlc: Arc<Hlc>,
    writer: WriterId,
    signer: RecordSigner,
    verifier: Arc<RecordVerifier>,
    timeout: Duration,
    #[cfg(feature = "fault-injection")]
    planted: Option<crate::faults::PlantedBug>,
}

impl MetaQuorum {
    /// Metadata access through `net`, versions stamped by `hlc` and records signed by
    /// `signer`; what replicas answer is believed only if `verifier` accepts it.
    ///
    /// # Errors
    /// [`QuorumError::Seal`] if the signer's peer id is not a valid writer id.
    pub fn new(
        net: NetHandle,
        membership: Membership,
        hlc: Arc<Hlc>,
        signer: RecordSigner,
        verifier: Arc<RecordVerifier>,
        timeout: Duration,
    ) -> Result<Self, QuorumError> {
        let writer = WriterId::new(Bytes::from(signer.peer().to_bytes()))
            .map_err(|e| SealError::Signing(e.to_string()))?;
        Ok(Self {
            net,
            membership,
            local: None,
            hlc,
            writer,
            signer,
            verifier,
            timeout,
            #[cfg(feature = "fault-injection")]
            planted: None,
        })
    }

    /// Who this peer signs as, for people ("client NAME (PEER)").
    pub fn author(&self) -> &str {
        self.signer.author()
    }

    /// What this peer checks records with.
    pub fn verifier(&self) -> &Arc<RecordVerifier> {
        &self.verifier
    }

    /// `record` at `key` signed by this peer, carrying `causes` (a node's justification:
    /// see [`crate::meta::authorship`]). [`MetaQuorum::apply`] signs unsigned records
    /// itself; this is for records that need causes.
    ///
    /// # Errors
    /// [`QuorumError::Seal`] if signing fails.
    pub fn sign(
        &self,
        key: &RecordKey,
        record: Record<Bytes>,
        causes: Vec<KeyedRecord>,
    ) -> Result<Record<Bytes>, QuorumError> {
        Ok(self.signer.sign(key, record, causes)?)
    }

    /// Whether `record` at `key` is believed: signed by an author allowed to write it.
    /// A record that is not is logged and treated as absent.
    fn believed(&self, key: &RecordKey, record: &Record<Bytes>, from: PeerId) -> bool {
        match self.verifier.verify(key, record) {
            Ok(_) => true,
            Err(error) => {
                warn!(%from, table = ?key.table, bucket = %key.partition, %error, "a replica answered with a record that does not verify: ignored");
                false
            }
        }
    }

    /// The same with a planted bug (tests that show the scenarios catch it).
    #[cfg(feature = "fault-injection")]
    #[must_use]
    pub fn with_planted_bug(mut self, bug: Option<crate::faults::PlantedBug>) -> Self {
        self.planted = bug;
        self
    }

    /// Acknowledgements a write to a set of `replicas` needs.
    fn write_quorum(&self, replicas: usize) -> usize {
        #[cfg(feature = "fault-injection")]
        if self.planted == Some(crate::faults::PlantedBug::WriteQuorumOne) {
            return replicas.min(1);
        }
        write_quorum(replicas)
    }

    /// The same, for a node that is itself a replica: `local` counts as a live member
    /// and is asked in-process.
    #[must_use]
    pub fn with_local(mut self, local: Arc<dyn LocalReplica>) -> Self {
        self.local = Some(local);
        self
    }

    /// Whether `peer` is the first replica of `partition` that this view sees live: the
    /// one node that runs the partition's maintenance (repair, garbage collection), so
    /// that two nodes do not rewrite the same manifests at once. (Two views that differ
    /// may both lead for a while; their writes still need a quorum each.)
    pub fn leads(&self, partition: &str, peer: PeerId) -> bool {
        let mut up: Vec<PeerId> = self.membership.live().iter().map(|m| m.peer).collect();
        up.extend(self.local.as_ref().map(|l| l.peer()));
        self.replicas(partition)
            .into_iter()
            .find(|p| up.contains(p))
            == Some(peer)
    }

    /// The replica set of `partition` as this process sees it now: the `REPLICAS` roster
    /// members closest to it that are not catching up (this node included when it is
    /// one), reachable or not, closest first; a member that left the roster keeps its
    /// place until the hand-off is done. Reads count these.
    pub fn replicas(&self, partition: &str) -> Vec<PeerId> {
        self.sets(partition, Access::Read)
            .ok()
            .and_then(|(sets, _)| sets.into_iter().next())
            .map(|set| set.replicas)
            .unwrap_or_default()
    }

    /// Every node a write to `partition` goes to: the replica set, and while the set
    /// changes (a node catching up or just caught up) the set with the newcomer too.
    pub fn write_targets(&self, partition: &str) -> Vec<PeerId> {
        let mut targets: Vec<PeerId> = Vec::new();
        let (sets, departed) = self.sets(partition, Access::Write).unwrap_or_default();
        for set in sets {
            for peer in set.replicas {
                if !targets.contains(&peer) && !departed.contains(&peer) {
                    targets.push(peer);
                }
            }
        }
        targets
    }

    /// Sends one request to one replica (in-process when it is this node).
    ///
    /// # Errors
    /// [`ReplicaError`]: no answer in time, a refusal or a bad answer. A replica that gave
    /// no answer at all is marked not live until it answers a membership refresh.
    pub async fn ask_one(
        &self,
        peer: PeerId,
        request: MetaRequest,
    ) -> Result<MetaResponse, ReplicaError> {
        self.ask(peer, Arc::new(request)).await
    }

    /// The replica sets a request on `partition` goes to, each its `REPLICAS` roster
    /// members closest first, reachable or not, and the departed members among them
    /// (never asked: they count as failed).
    ///
    /// Every request counts the set known to be complete: nodes catching up left out
    /// (DESIGN.md, "Metadata": reads consult the set known to be complete), and members
    /// that left the roster kept in their place until every member has copied what moved
    /// to it (the hand-off). While a node hands off (catching up, or finished less than
    /// a grace ago in this view), a request also counts the set without it, which writers
    /// that have not seen the change yet still use; and a write counts the set of the
    /// current roster with every newcomer, which reads after the change use. A read also
    /// asks that last set without counting it: its newcomers may hold a write another
    /// view made, and merging an answer can only bring a newer version. The sets differ
    /// only during a change.
    ///
    /// # Errors
    /// [`QuorumError::NoNodes`].
    fn sets(
        &self,
        partition: &str,
        access: Access,
    ) -> Result<(Vec<ReplicaSet>, Vec<PeerId>), QuorumError> {
        let mut members = self.membership.all();
        if let Some(local) = &self.local {
            members = with_local(members, local.peer(), local.draining(), local.catching_up());
        }
        let departed = self.membership.departed();
        let departed_peers: Vec<PeerId> = departed.iter().map(|m| m.peer).collect();
        members.extend(departed);
        let target = partition_key(partition);
        let closest = |keep: &dyn Fn(&Member) -> bool| {
            let kept: Vec<Member> = members.iter().filter(|m| keep(m)).cloned().collect();
            let mut replicas = closest_members(&kept, &target);
            replicas.truncate(REPLICAS);
            replicas
        };
        let mut complete = closest(&|m| !m.info.catching_up);
        if complete.iter().all(|p| departed_peers.contains(p)) {
            // Every node is new (a cluster starting): none knows more than another.
            complete = closest(&|m| !m.departed);
        }
        if complete.is_empty() {
            return Err(QuorumError::NoNodes);
        }
        let mut sets = vec![ReplicaSet {
            replicas: complete,
            counted: true,
        }];
        // (set, counted): the set without any node whose replica sets are changing
        // counts for both (a writer that has not seen the change yet uses it); the set
        // of the current roster with every newcomer counts for writes and is asked,
        // uncounted, by reads.
        let old = closest(&|m| !m.handing_off);
        let new = closest(&|m| !m.departed);
        for (replicas, counted) in [(old, true), (new, access == Access::Write)] {
            let known = sets.iter().any(|s| s.replicas == replicas);
            // A set of departed members alone (every current one is changing: a cluster
            // forming) holds nothing anyone could read.
            let holds_nobody = replicas.iter().all(|p| departed_peers.contains(p));
            if !holds_nobody && !known {
                sets.push(ReplicaSet { replicas, counted });
            }
        }
        Ok((sets, departed_peers))
    }

    /// A version for a write that replaces `previous`: now, or just after `previous`
    /// when this clock is behind it.
    pub fn version_after(&self, previous: Option<&Version>) -> Version {
        #[cfg(feature = "fault-injection")]
        if self.planted == Some(crate::faults::PlantedBug::RawClockVersions) {
            return Version {
                timestamp: self.hlc.raw(),
                writer: self.writer.clone(),
            };
        }
        let timestamp = match previous {
            Some(previous) => self.hlc.after(previous.timestamp),
            None => self.hlc.now(),
        };
        Version {
            timestamp,
            writer: self.writer.clone(),
        }
    }

    async fn ask(
        &self,
        peer: PeerId,
        request: Arc<MetaRequest>,
    ) -> Result<MetaResponse, ReplicaError> {
        if let Some(local) = self.local.clone().filter(|l| l.peer() == peer) {
            return match tokio::task::spawn_blocking(move || local.handle(&request)).await {
                Ok(MetaResponse::Error { code, detail }) => {
                    Err(ReplicaError::LocalRefused { code, detail })
                }
                Ok(response) => Ok(response),
                Err(e) => Err(ReplicaError::LocalTask(e.to_string())),
            };
        }
        match call_meta(&self.net, peer, &request, self.timeout).await {
            Ok(response) => Ok(response),
            Err(error) => {
                // Only a replica that gave no answer may be down and is replaced in the
                // view; one that answered (busy after retries, a refusal) stays live.
                if error.is_unreachable() {
                    self.membership.mark_failed(peer);
                }
                Err(error.into())
            }
        }
    }

    fn spawn_ask(
        &self,
        peer: PeerId,
        request: &Arc<MetaRequest>,
    ) -> tokio::task::JoinHandle<(PeerId, Result<MetaResponse, ReplicaError>)> {
        // Cloning is a few reference counts; the task outlives this call.
        let this = self.clone();
        let request = Arc::clone(request);
        tokio::spawn(async move { (peer, this.ask(peer, request).await) })
    }

    /// Sends `request` to the replicas of each of `partition`'s sets (see
    /// [`MetaQuorum::sets`]) and returns the successful answers once every counted set
    /// has its quorum, plus (with `grace`, for reads) those that arrive within `grace`
    /// after it; the other requests run on. Members this view knows to be down are
    /// asked only when their set cannot reach its quorum without them.
    ///
    /// # Errors
    /// [`QuorumError::NoQuorum`] as soon as a counted set can no longer reach its
    /// quorum.
    async fn gather(
        &self,
        partition: &str,
        request: MetaRequest,
        grace: Option<Duration>,
    ) -> Result<Vec<(PeerId, MetaResponse)>, QuorumError> {
        let access = if grace.is_some() {
            Access::Read
        } else {
            Access::Write
        };
        let (sets, departed) = self.sets(partition, access)?;
        // Outside a replica-set change one set counts, and any read quorum of it meets
        // every write quorum: a read returns at its quorum. During a change (more than
        // one set) it also waits, up to `grace`, for the rest (a newcomer, asked
        // uncounted, may hold a write another view made).
        let grace = grace.filter(|_| sets.len() > 1);
        let mut up: Vec<PeerId> = self.membership.live().iter().map(|m| m.peer).collect();
        if let Some(local) = &self.local {
            up.push(local.peer());
        }
        let mut progress: Vec<SetProgress> = Vec::with_capacity(sets.len());
        let mut to_ask: Vec<PeerId> = Vec::new();
        for set in sets {
            let n = set.replicas.len();
            let needed = match (set.counted, access) {
                (false, _) => 0,
                (true, Access::Read) => read_quorum(n),
                (true, Access::Write) => self.write_quorum(n),
            };
            let reachable = set.replicas.iter().filter(|p| up.contains(p)).count();
            // Down in this view: not asked, unless the quorum needs them (the view may
            // be a refresh behind a member that came back). Departed members never are.
            let ask_all = reachable < needed;
            for peer in &set.replicas {
                if (ask_all || up.contains(peer))
                    && !departed.contains(peer)
                    && !to_ask.contains(peer)
                {
                    to_ask.push(*peer);
                }
            }
            progress.push(SetProgress {
                members: set.replicas,
                needed,
                answered: 0,
                failed: 0,
            });
        }
        // A read outside a change asks just a read quorum (this node first, then the
        // closest), and the next member only when one fails: the others' work is not
        // needed for an answer that meets every write.
        let mut reserve: Vec<PeerId> = Vec::new();
        if access == Access::Read && grace.is_none() && progress.len() == 1 {
            let needed = progress[0].needed;
            if let Some(local) = self.local.as_ref().map(|l| l.peer())
                && let Some(at) = to_ask.iter().position(|p| *p == local)
            {
                to_ask[..=at].rotate_right(1);
            }
            if to_ask.len() > needed {
                reserve = to_ask.split_off(needed);
            }
        }
        for set in &mut progress {
            set.failed = set
                .members
                .iter()
                .filter(|p| !to_ask.contains(p) && !reserve.contains(p))
                .count();
        }
        let request = Arc::new(request);
        let mut pending: FuturesUnordered<_> = to_ask
            .iter()
            .map(|peer| self.spawn_ask(*peer, &request))
            .collect();
        let mut answers: Vec<(PeerId, MetaResponse)> = Vec::with_capacity(to_ask.len());
        let mut last = String::from("no answer");
        let mut deadline: Option<tokio::time::Instant> = None;
        if progress.iter().all(SetProgress::reached) && grace.is_none() {
            return Ok(answers);
        }
        loop {
            if let Some(short) = progress.iter().find(|s| s.lost()) {
                return Err(self.no_quorum(partition, short, last));
            }
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, pending.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => pending.next().await,
            };
            let Some(joined) = next else { break };
            let (peer, answer) = match joined {
                Ok(joined) => joined,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let succeeded = match answer {
                Ok(response) => {
                    answers.push((peer, response));
                    true
                }
                Err(e) => {
                    if let Some(detail) = e.forbidden() {
                        return Err(QuorumError::Forbidden(detail.to_owned()));
                    }
                    last = e.to_string();
                    false
                }
            };
            for set in progress.iter_mut().filter(|s| s.members.contains(&peer)) {
                if succeeded {
                    set.answered += 1;
                } else {
                    set.failed += 1;
                }
            }
            if !succeeded && !reserve.is_empty() {
                let next = reserve.remove(0);
                pending.push(self.spawn_ask(next, &request));
            }
            if deadline.is_none() && progress.iter().all(SetProgress::reached) {
                match grace {
                    Some(grace) => deadline = Some(tokio::time::Instant::now() + grace),
                    None => return Ok(answers),
                }
            }
        }
        match progress.iter().find(|s| !s.reached()) {
            None => Ok(answers),
            Some(short) => Err(self.no_quorum(partition, short, last)),
        }
    }

    fn no_quorum(&self, partition: &str, set: &SetProgress, last: String) -> QuorumError {
        let error = QuorumError::NoQuorum {
            partition: partition.to_owned(),
            replicas: set.members.len(),
            reachable: set
                .answered
                .max(set.members.len().saturating_sub(set.failed)),
            needed: set.needed,
            last,
        };
        debug!(%error, "metadata request without quorum");
        error
    }

    /// Makes `records` (all of `partition`) durable on a write quorum of its replicas.
    ///
    /// # Errors
    /// [`QuorumError`] when too few replicas acknowledged.
    pub async fn apply(
        &self,
        partition: &str,
        records: Vec<KeyedRecord>,
    ) -> Result<(), QuorumError> {
        let records = records
            .into_iter()
            .map(|(key, record)| {
                let record = match record.seal {
                    Some(_) => record,
                    None => self.signer.sign(&key, record, Vec::new())?,
                };
                Ok((key, record))
            })
            .collect::<Result<Vec<_>, QuorumError>>()?;
        self.gather(partition, MetaRequest::Apply(records), None)
            .await
            .map(drop)
    }

    /// The current record of `key` (tombstones included), as a read quorum sees it.
    ///
    /// # Errors
    /// [`QuorumError`] when too few replicas answered.
    pub async fn get(&self, key: &RecordKey) -> Result<Option<Record<Bytes>>, QuorumError> {
        let answers = self
            .gather(
                &key.partition,
                MetaRequest::Get(key.clone()),
                Some(READ_GRACE),
            )
            .await?;
        // The newest record that verifies wins; one that does not counts as none (a
        // replica may withhold a record, never replace it).
        let mut winner: Option<Record<Bytes>> = None;
        let mut seen = Vec::with_capacity(answers.len());
        for (peer, response) in answers {
            if let MetaResponse::Get(record) = response {
                seen.push((peer, record.as_ref().map(|r| r.version.clone())));
                if let Some(record) = record
                    && winner.as_ref().is_none_or(|w| record.version > w.version)
                    && self.believed(key, &record, peer)
                {
                    winner = Some(record);
                }
            }
        }
        if let Some(winner) = &winner {
            self.observe(winner);
            for (peer, version) in seen {
                if version.as_ref() != Some(&winner.version) {
                    self.repair(peer, vec![(key.clone(), winner.clone())]);
                }
            }
        }
        Ok(winner)
    }

    /// One merged page of `partition` in `table`.
    ///
    /// # Errors
    /// [`QuorumError`] when too few replicas answered.
    pub async fn scan(
        &self,
        table: Table,
        partition: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Result<ScanPage, QuorumError> {
        let request = MetaRequest::Scan {
            table,
            partition: partition.to_owned(),
            prefix: prefix.to_vec(),
            start_after: start_after.map(<[u8]>::to_vec),
            limit,
        };
        let answers = self.gather(partition, request, Some(READ_GRACE)).await?;
        let mut pages = Vec::with_capacity(answers.len());
        for (peer, response) in answers {
            if let MetaResponse::Scan { records, more } = response {
                pages.push((peer, records, more));
            }
        }
        // Keys beyond the smallest last key of a page that has more are not known to be
        // complete on every replica; they come with the next page.
        let bound: Option<Vec<u8>> = pages
            .iter()
            .filter(|(_, records, more)| *more && !records.is_empty())
            .filter_map(|(_, records, _)| records.last().map(|(k, _)| k.sort.clone()))
            .min();
        // Per key, every replica's record, newest first; the first that verifies wins
        // (replicas that agree hold the same record, checked once).
        let mut candidates: BTreeMap<Vec<u8>, Vec<(PeerId, KeyedRecord)>> = BTreeMap::new();
        let mut held: Vec<(PeerId, BTreeMap<Vec<u8>, Version>)> = Vec::new();
        for (peer, records, _) in pages {
            let mut versions = BTreeMap::new();
            for (key, record) in records {
                if bound.as_ref().is_some_and(|b| key.sort > *b) {
                    continue;
                }
                versions.insert(key.sort.clone(), record.version.clone());
                candidates
                    .entry(key.sort.clone())
                    .or_default()
                    .push((peer, (key, record)));
            }
            held.push((peer, versions));
        }
        let mut merged: BTreeMap<Vec<u8>, (RecordKey, Record<Bytes>)> = BTreeMap::new();
        for (sort, mut offered) in candidates {
            offered.sort_by(|a, b| b.1.1.version.cmp(&a.1.1.version));
            let mut refused: Vec<&Record<Bytes>> = Vec::new();
            let mut chosen = None;
            for (peer, (key, record)) in &offered {
                if refused.iter().any(|r| same_record(r, record)) {
                    continue;
                }
                if self.believed(key, record, *peer) {
                    chosen = Some((key.clone(), record.clone()));
                    break;
                }
                refused.push(record);
            }
            if let Some(chosen) = chosen {
                merged.insert(sort, chosen);
            }
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut more = bound.is_some();
        if merged.len() > limit {
            merged = merged.into_iter().take(limit).collect();
            more = true;
        }
        for (peer, versions) in held {
            let stale: Vec<KeyedRecord> = merged
                .iter()
                .filter(|(sort, (_, record))| versions.get(*sort) != Some(&record.version))
                .map(|(_, keyed)| keyed.clone())
                .collect();
            if !stale.is_empty() {
                self.repair(peer, stale);
            }
        }
        Ok(ScanPage {
            records: merged.into_values().collect(),
            more,
        })
    }

    fn observe(&self, record: &Record<Bytes>) {
        // Only verified records reach here: a forged far-future stamp cannot drag this
        // clock.
        if let Err(error) = self.hlc.observe(record.version.timestamp) {
            warn!(%error, "a replica holds a version from a clock far ahead");
        }
    }

    /// Sends `records` to a replica that answered with older ones (read repair).
    fn repair(&self, peer: PeerId, records: Vec<KeyedRecord>) {
        debug!(%peer, records = records.len(), "read repair");
        let request = Arc::new(MetaRequest::Apply(records));
        drop(self.spawn_ask(peer, &request));
    }
}

/// Whether two records are the same write with the same signature (checked once).
fn same_record(a: &Record<Bytes>, b: &Record<Bytes>) -> bool {
    a.version == b.version
        && match (&a.seal, &b.seal) {
            (Some(x), Some(y)) => x.signature == y.signature,
            _ => false,
        }
        && a.value == b.value
}
