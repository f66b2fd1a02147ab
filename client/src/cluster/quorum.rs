//! [`MetaQuorum`]: reads and writes of metadata records on a partition's replicas, with
//! quorums (DESIGN.md: `W = R = 2` of 3, fewer replicas in smaller clusters) and read
//! repair.
//!
//! - A write goes to every replica at once (each request its own task, so the slowest
//!   still receives it) and returns once a write quorum has made it durable.
//! - Replicas are the `REPLICAS` live nodes closest to the partition; when one fails a
//!   request (it may have gone down since membership last looked), the next closest live
//!   node is asked in its place, up to `REPLICAS` stand-ins.
//! - A read asks every replica and returns the last-writer-wins merge of every answer
//!   that arrives before the last one or `READ_GRACE` after a read quorum, whichever is
//!   first; replicas that answered with an older record (or none) are sent the winner in
//!   the background. Waiting past the quorum matters when replicas are down: the set then
//!   includes the next live nodes, which may not hold the record yet, and the one
//!   surviving replica that does must be heard.
//! - A scan merges one page from each replica of a read quorum: the merged page stops at
//!   the smallest last key among pages that have more, so no key is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use tracing::{debug, warn};

use super::{Membership, REPLICAS, closest_members, partition_key, quorum, with_local};
use crate::meta::hlc::Hlc;
use crate::meta::key::{RecordKey, Table};
use crate::meta::record::{Record, Version, WriterId, merge};
use crate::net::meta_message::{KeyedRecord, MetaRequest, MetaResponse, decode_meta_response};
use crate::net::{NetHandle, Protocol};

/// How long a read waits for the remaining replicas once a quorum has answered.
pub const READ_GRACE: Duration = Duration::from_millis(200);

/// Why a metadata operation did not reach its quorum.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// No live node is known at all.
    #[error(
        "no reachable node: check that the bootstrap node runs and that the cluster secret matches"
    )]
    NoNodes,
    /// Too few replicas answered.
    #[error(
        "only {reached} of {needed} metadata replicas answered ({last}): retry once more nodes are up"
    )]
    Unavailable {
        /// Answers needed.
        needed: usize,
        /// Answers received.
        reached: usize,
        /// The last failure.
        last: String,
    },
}

/// A merged page of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Records in sort-key order, tombstones included.
    pub records: Vec<KeyedRecord>,
    /// Whether more records may follow the last one.
    pub more: bool,
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
}

/// Quorum access to metadata replicas.
#[derive(Debug, Clone)]
pub struct MetaQuorum {
    net: NetHandle,
    membership: Membership,
    local: Option<Arc<dyn LocalReplica>>,
    hlc: Arc<Hlc>,
    writer: WriterId,
    timeout: Duration,
    #[cfg(feature = "fault-injection")]
    planted: Option<crate::faults::PlantedBug>,
}

impl MetaQuorum {
    /// Metadata access through `net`, versions stamped by `hlc` as `writer`.
    pub fn new(
        net: NetHandle,
        membership: Membership,
        hlc: Arc<Hlc>,
        writer: WriterId,
        timeout: Duration,
    ) -> Self {
        Self {
            net,
            membership,
            local: None,
            hlc,
            writer,
            timeout,
            #[cfg(feature = "fault-injection")]
            planted: None,
        }
    }

    /// The same with a planted bug (tests that show the scenarios catch it).
    #[cfg(feature = "fault-injection")]
    #[must_use]
    pub fn with_planted_bug(mut self, bug: Option<crate::faults::PlantedBug>) -> Self {
        self.planted = bug;
        self
    }

    /// Acknowledgements a write to `asked` replicas needs.
    fn write_quorum(&self, asked: usize) -> usize {
        #[cfg(feature = "fault-injection")]
        if self.planted == Some(crate::faults::PlantedBug::WriteQuorumOne) {
            return asked.min(1);
        }
        quorum(asked)
    }

    /// The same, for a node that is itself a replica: `local` counts as a live member
    /// and is asked in-process.
    #[must_use]
    pub fn with_local(mut self, local: Arc<dyn LocalReplica>) -> Self {
        self.local = Some(local);
        self
    }

    /// The replica set of `partition` as this process sees it now: the `REPLICAS` live
    /// nodes closest to it (this node included when it is a replica), closest first.
    pub fn replicas(&self, partition: &str) -> Vec<PeerId> {
        let mut replicas = self.candidates(partition).unwrap_or_default();
        replicas.truncate(REPLICAS);
        replicas
    }

    /// Sends one request to one replica (in-process when it is this node).
    ///
    /// # Errors
    /// A description of the failure: no answer in time, a refusal or a bad answer. The
    /// replica is then marked not live until it answers a membership refresh.
    pub async fn ask_one(
        &self,
        peer: PeerId,
        request: MetaRequest,
    ) -> Result<MetaResponse, String> {
        self.ask(peer, Arc::new(request)).await
    }

    /// The live nodes closest to `partition`, closest first, as many as may be asked: the
    /// `REPLICAS` of its replica set, then as many stand-ins.
    ///
    /// # Errors
    /// [`QuorumError::NoNodes`].
    fn candidates(&self, partition: &str) -> Result<Vec<PeerId>, QuorumError> {
        let mut members = self.membership.live();
        if let Some(local) = &self.local {
            members = with_local(members, local.peer(), local.draining());
        }
        let mut candidates = closest_members(&members, &partition_key(partition));
        if candidates.is_empty() {
            return Err(QuorumError::NoNodes);
        }
        candidates.truncate(2 * REPLICAS);
        Ok(candidates)
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

    async fn ask(&self, peer: PeerId, request: Arc<MetaRequest>) -> Result<MetaResponse, String> {
        if let Some(local) = self.local.clone().filter(|l| l.peer() == peer) {
            return match tokio::task::spawn_blocking(move || local.handle(&request)).await {
                Ok(MetaResponse::Error { code, detail }) => {
                    Err(format!("this node refused: {code:?}: {detail}"))
                }
                Ok(response) => Ok(response),
                Err(e) => Err(format!("this node's metadata task failed: {e}")),
            };
        }
        let call = self.net.request(peer, Protocol::Meta, request.encode());
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(bytes)) => match decode_meta_response(&request, &bytes) {
                Ok(MetaResponse::Error { code, detail }) => {
                    Err(format!("{peer} refused: {code:?}: {detail}"))
                }
                Ok(response) => return Ok(response),
                Err(e) => Err(format!("{peer} answered badly: {e}")),
            },
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("{peer} did not answer within {:?}", self.timeout)),
        };
        self.membership.mark_failed(peer);
        outcome
    }

    fn spawn_ask(
        &self,
        peer: PeerId,
        request: &Arc<MetaRequest>,
    ) -> tokio::task::JoinHandle<(PeerId, Result<MetaResponse, String>)> {
        // Cloning is a few reference counts; the task outlives this call.
        let this = self.clone();
        let request = Arc::clone(request);
        tokio::spawn(async move { (peer, this.ask(peer, request).await) })
    }

    /// Sends `request` to every replica of `partition` and returns the successful
    /// answers once a quorum has answered, plus (with `grace`) those that arrive within
    /// `grace` after it; the other requests run on.
    async fn gather(
        &self,
        partition: &str,
        request: MetaRequest,
        grace: Option<Duration>,
    ) -> Result<Vec<(PeerId, MetaResponse)>, QuorumError> {
        let candidates = self.candidates(partition)?;
        let asked = candidates.len().min(REPLICAS);
        let needed = match grace {
            Some(_) => quorum(asked),
            None => self.write_quorum(asked),
        };
        let request = Arc::new(request);
        let mut stand_ins = candidates.iter().skip(asked);
        let mut pending: FuturesUnordered<_> = candidates[..asked]
            .iter()
            .map(|&peer| self.spawn_ask(peer, &request))
            .collect();
        let mut answers = Vec::with_capacity(asked);
        let mut last = String::from("no answer");
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, pending.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => pending.next().await,
            };
            let Some(joined) = next else { break };
            let outcome = joined
                .map_err(|e| e.to_string())
                .and_then(|(peer, answer)| answer.map(|response| (peer, response)));
            match outcome {
                Ok(answer) => {
                    answers.push(answer);
                    if answers.len() == needed {
                        match grace {
                            Some(grace) => deadline = Some(tokio::time::Instant::now() + grace),
                            None => return Ok(answers),
                        }
                    }
                }
                Err(e) => {
                    last = e;
                    // The next closest live node stands in for the replica that failed.
                    if let Some(&peer) = stand_ins.next() {
                        pending.push(self.spawn_ask(peer, &request));
                    }
                }
            }
        }
        if answers.len() >= needed {
            return Ok(answers);
        }
        Err(QuorumError::Unavailable {
            needed,
            reached: answers.len(),
            last,
        })
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
        let mut winner: Option<Record<Bytes>> = None;
        let mut seen = Vec::with_capacity(answers.len());
        for (peer, response) in answers {
            if let MetaResponse::Get(record) = response {
                seen.push((peer, record.as_ref().map(|r| r.version.clone())));
                if let Some(record) = record {
                    winner = Some(match winner {
                        Some(w) => merge(w, record),
                        None => record,
                    });
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
        let mut merged: BTreeMap<Vec<u8>, (RecordKey, Record<Bytes>)> = BTreeMap::new();
        let mut held: Vec<(PeerId, BTreeMap<Vec<u8>, Version>)> = Vec::new();
        for (peer, records, _) in pages {
            let mut versions = BTreeMap::new();
            for (key, record) in records {
                if bound.as_ref().is_some_and(|b| key.sort > *b) {
                    continue;
                }
                versions.insert(key.sort.clone(), record.version.clone());
                let record = match merged.remove(&key.sort) {
                    Some((_, current)) => merge(current, record),
                    None => record,
                };
                merged.insert(key.sort.clone(), (key, record));
            }
            held.push((peer, versions));
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
