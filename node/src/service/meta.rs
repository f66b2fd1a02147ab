//! `/andromede/meta/1` on a replica: apply, get and scan against the metadata store.
//!
//! Requests are decoded and validated first; anything malformed gets an error and changes
//! nothing. Apply answers only after the records are durable. Scan pages are cut by count
//! (`limit`) and by bytes (so that the answer fits one message), with `more` set.

use andromede_cluster::authority::Grant;
use andromede_cluster::meta::authorship::table_name;
use andromede_cluster::meta::key::Table;
use andromede_cluster::meta::seal::RecordVerifier;
use andromede_cluster::meta::values::BucketInfo;
use andromede_cluster::net::PeerRole;
use andromede_cluster::roster::RosterSnapshot;
use std::collections::HashMap;

use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::meta::hlc::{ClockDriftError, Hlc};
use andromede_cluster::net::PeerId;
use andromede_cluster::net::message::{MessageError, RemoteErrorCode};
use andromede_cluster::net::meta_message::{
    KeyedRecord, MetaRequest, MetaResponse, NodeInfo, decode_meta_request,
};
use andromede_cluster::{
    LocalReplica, Membership, REPLICAS, closest_members, partition_key, with_local,
};
use andromede_proto::limits::{HELD_BY_COUNT_MAX, META_MESSAGE_BYTES_MAX, REFERENCED_IDS_MAX};
use andromede_proto::{DecodeError, ShardId};
use std::sync::Arc;
use tracing::{debug, error, warn};

use crate::drain::Drain;
use crate::meta::{MetaStore, RecordKey};
use crate::service::dispatch::NodeTags;
use crate::service::grants;
use crate::store::ShardStore;
use crate::workers::catch_up::CatchUp;

/// Who sent a request, as its certificate says: node-only requests and what a client's
/// grants do not allow are refused.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Node or client.
    pub role: PeerRole,
    /// A client's grants (empty for a node).
    pub grants: &'a [Grant],
}

impl Requester<'_> {
    /// A node (this one, or a peer).
    pub const NODE: Requester<'static> = Requester {
        role: PeerRole::Node,
        grants: &[],
    };

    fn is_client(&self) -> bool {
        self.role == PeerRole::Client
    }
}

/// Rows a client's listing of the bucket directory looks at, at most, for one page of
/// buckets it may see.
const DIRECTORY_ROWS_MAX: usize = 65_536;

/// What a request handler needs to know about this node beyond its store.
pub trait NodeView {
    /// What the node says about itself.
    fn info(&self) -> NodeInfo;
    /// Whether this node is in `partition`'s replica set as it sees membership now.
    fn is_replica(&self, partition: &str) -> bool;
    /// The roster it holds (DESIGN.md, "Metadata").
    fn roster(&self) -> RosterSnapshot;
    /// What it checks records' seals with before applying them.
    fn verifier(&self) -> &RecordVerifier;
    /// The cluster's minimum redundancy (parity shards a bucket keeps at least).
    fn min_parity(&self) -> u8;
}

/// This node as one of the metadata replicas its own workers talk to (in-process, through
/// the same handler as remote requests, so that validation is the same), and as the
/// service answers its peers.
#[derive(Debug, Clone)]
pub struct LocalMeta {
    /// This node.
    pub peer: PeerId,
    /// Its metadata store.
    pub store: Arc<dyn MetaStore>,
    /// Its shard store (for the info it reports).
    pub shards: ShardStore,
    /// Its tags.
    pub tags: NodeTags,
    /// The nodes it knows.
    pub membership: Membership,
    /// Whether it is being drained.
    pub drain: Drain,
    /// Whether its metadata store is still being filled.
    pub catch_up: CatchUp,
    /// What records are checked with before they are applied.
    pub verifier: Arc<RecordVerifier>,
    /// The cluster's minimum redundancy (parity shards).
    pub min_parity: u8,
}

impl LocalMeta {
    /// Answers one raw request from a peer (or this node). Blocking (disk I/O).
    pub fn answer(&self, request: &[u8], requester: Requester<'_>) -> MetaResponse {
        handle_meta_request(self.store.as_ref(), self, request, requester)
    }
}

impl NodeView for LocalMeta {
    fn info(&self) -> NodeInfo {
        let mut info = self
            .tags
            .info(&self.shards, &self.membership, self.drain.is_draining());
        info.catching_up = self.catching_up();
        info
    }

    fn is_replica(&self, partition: &str) -> bool {
        if self.drain.is_draining() {
            return false;
        }
        let members = with_local(self.membership.all(), self.peer, false, false);
        closest_members(&members, &partition_key(partition))
            .iter()
            .take(REPLICAS)
            .any(|p| *p == self.peer)
    }

    fn roster(&self) -> RosterSnapshot {
        self.membership.roster()
    }

    fn verifier(&self) -> &RecordVerifier {
        &self.verifier
    }

    fn min_parity(&self) -> u8 {
        self.min_parity
    }
}

impl LocalReplica for LocalMeta {
    fn peer(&self) -> PeerId {
        self.peer
    }

    fn handle(&self, request: &MetaRequest) -> MetaResponse {
        self.answer(&request.encode(), Requester::NODE)
    }

    fn draining(&self) -> bool {
        self.drain.is_draining()
    }

    fn catching_up(&self) -> bool {
        self.catch_up.is_pending()
    }
}

/// Up to `limit + 1` rows of a scan (one more tells that more follow) that `hidden` does
/// not hide, reading the store page after page past the hidden ones; at most
/// `DIRECTORY_ROWS_MAX` rows are looked at.
///
/// # Errors
/// The store's; [`crate::error::MetaError::TooManyHidden`] past the bound.
fn scan_visible(
    store: &dyn MetaStore,
    table: Table,
    partition: &str,
    prefix: &[u8],
    start_after: Option<Vec<u8>>,
    limit: usize,
    hidden: &dyn Fn(&[u8]) -> bool,
) -> Result<Vec<crate::meta::ScanRow>, crate::error::MetaError> {
    let wanted = limit.saturating_add(1);
    let mut rows = Vec::new();
    let mut after = start_after;
    let mut examined = 0usize;
    while rows.len() < wanted {
        let page = store.scan(table, partition, prefix, after.as_deref(), wanted)?;
        let fetched = page.len();
        examined = examined.saturating_add(fetched);
        after = page.last().map(|(sort, _)| sort.clone());
        rows.extend(page.into_iter().filter(|(sort, _)| !hidden(sort)));
        if fetched < wanted {
            break;
        }
        if rows.len() < wanted && examined >= DIRECTORY_ROWS_MAX {
            return Err(crate::error::MetaError::TooManyHidden {
                examined,
                limit: DIRECTORY_ROWS_MAX,
            });
        }
    }
    rows.truncate(wanted);
    Ok(rows)
}

/// Manifest versions of the partitions `node` replicates that name `holder`, counted
/// through the holder index up to `HELD_BY_COUNT_MAX` versions looked at.
fn held_by(
    store: &dyn MetaStore,
    node: &dyn NodeView,
    holder: &[u8],
) -> Result<MetaResponse, crate::error::MetaError> {
    const PAGE: usize = 1024;
    let mut replica_of: HashMap<String, bool> = HashMap::new();
    let (mut looked, mut versions) = (0u64, 0u64);
    let mut after: Option<RecordKey> = None;
    loop {
        let page = store.versions_held_by(holder, after.as_ref(), PAGE)?;
        let full = page.len() == PAGE;
        for key in &page {
            looked += 1;
            let mine = *replica_of
                .entry(key.partition.clone())
                .or_insert_with(|| node.is_replica(&key.partition));
            versions += u64::from(mine);
            if looked >= HELD_BY_COUNT_MAX {
                return Ok(MetaResponse::HeldCount {
                    versions,
                    capped: true,
                });
            }
        }
        if !full {
            return Ok(MetaResponse::HeldCount {
                versions,
                capped: false,
            });
        }
        after = page.last().cloned();
    }
}

/// Manifests read per page of a referenced-shards answer.
const REFERENCED_PAGE_MANIFESTS: usize = 64;

/// The shard ids on `holder` that the live manifests held here reference, a page of
/// manifests (from the holder index) at a time.
fn referenced_shards(
    store: &dyn MetaStore,
    holder: &[u8],
    start_after: Option<&RecordKey>,
) -> Result<MetaResponse, crate::error::MetaError> {
    let keys = store.versions_held_by(holder, start_after, REFERENCED_PAGE_MANIFESTS)?;
    let full_page = keys.len() == REFERENCED_PAGE_MANIFESTS;
    let mut ids = Vec::new();
    let mut last = None;
    for key in keys {
        let Some(value) = store.get(&key)?.and_then(|record| record.value) else {
            last = Some(key);
            continue;
        };
        let Ok(manifest) = Manifest::decode(&value) else {
            last = Some(key);
            continue;
        };
        let mine = manifest_ids_on(&manifest, holder);
        if !ids.is_empty() && (ids.len() + mine.len()) as u64 > REFERENCED_IDS_MAX {
            // The next page starts with this manifest.
            return Ok(MetaResponse::ShardIds { ids, next: last });
        }
        ids.extend(mine);
        last = Some(key);
    }
    Ok(MetaResponse::ShardIds {
        ids,
        next: if full_page { last } else { None },
    })
}

/// The ids of the shards of `manifest` that `holder` holds.
fn manifest_ids_on(manifest: &Manifest, holder: &[u8]) -> Vec<ShardId> {
    let Body::Segments(segments) = &manifest.body else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (s, segment) in (0u64..).zip(segments) {
        for (j, id) in (0u8..).zip(&segment.shard_ids) {
            if manifest.holder(s, j).is_some_and(|h| h.as_ref() == holder) {
                out.push(*id);
            }
        }
    }
    out
}

/// The first record whose version is further ahead of this replica's clock than the
/// drift allowed (DESIGN.md: far-future timestamps are refused): a writer with a fast
/// clock would otherwise pin the record, and every correct writer after it would be
/// refused. The whole batch is refused, so nothing changes.
fn too_far_ahead(records: &[KeyedRecord]) -> Option<ClockDriftError> {
    let hlc = Hlc::system();
    records
        .iter()
        .find_map(|(_, record)| hlc.check_drift(record.version.timestamp).err())
}

/// Why the first record of `records` whose seal does not verify is refused (DESIGN.md,
/// "Metadata": replicas verify signature, certificate and grant before applying). The
/// whole batch is refused, so nothing changes.
fn unverified(verifier: &RecordVerifier, records: &[KeyedRecord]) -> Option<String> {
    records.iter().find_map(|(key, record)| {
        verifier.verify(key, record).err().map(|error| {
            format!(
                "replica refused the {} record of {}: {error}",
                table_name(key.table),
                if key.partition.is_empty() {
                    "the bucket directory".to_owned()
                } else {
                    format!("bucket {}", key.partition)
                }
            )
        })
    })
}

/// Why the first bucket record of `records` that sets a policy this cluster does not
/// allow is refused: one that does not decode, or keeps fewer than `min_parity` parity
/// shards (DESIGN.md: a policy never goes below the cluster's minimum redundancy).
fn policy_refusal(records: &[KeyedRecord], min_parity: u8) -> Option<String> {
    records
        .iter()
        .filter(|(key, _)| key.table == Table::Bucket)
        .find_map(|(key, record)| {
            let bucket = String::from_utf8_lossy(&key.sort);
            let value = record.value.as_deref()?;
            match BucketInfo::decode(value) {
                Err(error) => Some(format!("replica refused bucket {bucket}'s policy: {error}")),
                Ok(info) if info.params.m() < min_parity => Some(format!(
                    "replica refused bucket {bucket}'s policy: {} parity shard(s) is below this cluster's minimum of {min_parity}; create it with at least {min_parity}",
                    info.params.m()
                )),
                Ok(_) => None,
            }
        })
}

/// Bytes of a scan page's records at most: the message limit less framing.
const SCAN_PAGE_BYTES_MAX: u64 = META_MESSAGE_BYTES_MAX - 32 * 1024;

/// Answers one raw request; `node` says what this node says about itself and which
/// partitions it replicates. Blocking (disk I/O): run it on a blocking thread.
pub fn handle_meta_request(
    store: &dyn MetaStore,
    node: &dyn NodeView,
    request: &[u8],
    requester: Requester<'_>,
) -> MetaResponse {
    let role = requester.role;
    let request = match decode_meta_request(request) {
        Ok(request) => request,
        Err(e) => {
            debug!(error = %e, "malformed meta request refused");
            let code = match e {
                MessageError::Decode(
                    DecodeError::TooLarge { .. } | DecodeError::TooMany { .. },
                )
                | MessageError::BatchTooLarge { .. } => RemoteErrorCode::TooLarge,
                _ => RemoteErrorCode::Invalid,
            };
            return MetaResponse::Error {
                code,
                detail: e.to_string(),
            };
        }
    };
    if let (PeerRole::Client, Some(what)) = (role, request.node_only()) {
        warn!(what, "node-only metadata request from a client refused");
        return MetaResponse::Error {
            code: RemoteErrorCode::Forbidden,
            detail: format!(
                "refused: {what} is for nodes only, and the requester is certified as a client"
            ),
        };
    }
    if requester.is_client()
        && let Some(detail) = grants::refusal(&request, requester.grants)
    {
        debug!(%detail, "client request beyond its grants refused");
        return MetaResponse::Error {
            code: RemoteErrorCode::Forbidden,
            detail,
        };
    }
    let result = match request {
        MetaRequest::Info => Ok(MetaResponse::Info(node.info())),
        MetaRequest::Roster => Ok(MetaResponse::Roster(node.roster())),
        MetaRequest::HeldBy { holder } => held_by(store, node, &holder),
        MetaRequest::Apply(records) => {
            if let Some(error) = too_far_ahead(&records) {
                debug!(%error, "records from the future refused");
                return MetaResponse::Error {
                    code: RemoteErrorCode::Invalid,
                    detail: format!("replica refused the write: {error}"),
                };
            }
            if let Some(detail) = unverified(node.verifier(), &records)
                .or_else(|| policy_refusal(&records, node.min_parity()))
            {
                warn!(%detail, "records that do not verify refused");
                return MetaResponse::Error {
                    code: RemoteErrorCode::Forbidden,
                    detail,
                };
            }
            store
                .apply(&records)
                .map(|replaced| MetaResponse::Apply { replaced })
        }
        MetaRequest::Get(key) => store.get(&key).map(MetaResponse::Get),
        MetaRequest::Compare {
            table,
            partition,
            entries,
        } => entries
            .into_iter()
            .map(|(sort, version)| {
                let key = RecordKey {
                    table,
                    partition: partition.clone(),
                    sort,
                };
                Ok(store.get(&key)?.is_none_or(|held| held.version < version))
            })
            .collect::<Result<Vec<bool>, _>>()
            .map(MetaResponse::Wanted),
        MetaRequest::Referenced {
            holder,
            start_after,
        } => referenced_shards(store, &holder, start_after.as_ref()),
        MetaRequest::Scan {
            table,
            partition,
            prefix,
            start_after,
            limit,
        } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            // A client lists only the buckets it holds a right on.
            let hidden = |sort: &[u8]| {
                table == Table::Bucket
                    && requester.is_client()
                    && !grants::sees_bucket(requester.grants, sort)
            };
            scan_visible(
                store,
                table,
                &partition,
                &prefix,
                start_after,
                limit,
                &hidden,
            )
            .map(|rows| {
                let fetched = rows.len();
                let mut bytes = 0u64;
                let records: Vec<_> = rows
                    .into_iter()
                    .take(limit)
                    .take_while(|(sort, record)| {
                        bytes +=
                            (sort.len() + record.value.as_ref().map_or(0, |v| v.len()) + 64) as u64;
                        bytes <= SCAN_PAGE_BYTES_MAX
                    })
                    .map(|(sort, record)| {
                        (
                            RecordKey {
                                table,
                                partition: partition.clone(),
                                sort,
                            },
                            record,
                        )
                    })
                    .collect();
                let more = records.len() < fetched;
                MetaResponse::Scan { records, more }
            })
        }
    };
    result.unwrap_or_else(|e| {
        error!(error = %e, "meta request failed");
        MetaResponse::Error {
            code: RemoteErrorCode::Internal,
            detail: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use andromede_cluster::authority::{Authority, CertificateSpec};
    use andromede_cluster::meta::hlc::Timestamp;
    use andromede_cluster::meta::key::Table;
    use andromede_cluster::meta::record::{Record, Version, WriterId};
    use andromede_cluster::meta::seal::RecordSigner;
    use bytes::Bytes;

    use super::*;
    use crate::meta::replica::SledMetaStore;
    use crate::store::IndexOptions;

    /// A node that replicates every partition.
    struct TestNode {
        verifier: RecordVerifier,
    }

    /// A node of a new cluster, and a client of it allowed everything.
    fn node_and_client() -> (TestNode, RecordSigner) {
        let authority = Authority::generate();
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let spec = CertificateSpec::new(
            keypair.public().to_peer_id(),
            PeerRole::Client,
            "client",
            std::time::Duration::from_secs(3600),
        )
        .granted(vec!["*:all".parse().unwrap()]);
        let certificate = authority.certify(spec).unwrap();
        (
            TestNode {
                verifier: RecordVerifier::new(authority.public()),
            },
            RecordSigner::new(keypair, &certificate),
        )
    }

    fn now(signer: &RecordSigner, ahead_ms: u64) -> Version {
        Version {
            timestamp: Timestamp {
                wall_ms: andromede_cluster::authority::unix_now() * 1000 + ahead_ms,
                logical: 0,
            },
            writer: WriterId::new(Bytes::from(signer.peer().to_bytes())).unwrap(),
        }
    }

    impl NodeView for TestNode {
        fn info(&self) -> NodeInfo {
            NodeInfo::default()
        }

        fn is_replica(&self, _partition: &str) -> bool {
            true
        }

        fn roster(&self) -> RosterSnapshot {
            RosterSnapshot::default()
        }

        fn verifier(&self) -> &RecordVerifier {
            &self.verifier
        }

        fn min_parity(&self) -> u8 {
            2
        }
    }

    #[test]
    fn records_that_do_not_verify_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledMetaStore::open(dir.path(), IndexOptions::default()).unwrap();
        let (node, client) = node_and_client();
        let key = RecordKey {
            table: Table::ObjectIndex,
            partition: "b".into(),
            sort: b"k".to_vec(),
        };
        let v1 = client
            .sign(
                &key,
                Record::live(now(&client, 0), Bytes::from_static(b"v1")),
                Vec::new(),
            )
            .unwrap();
        let v2 = client
            .sign(
                &key,
                Record::live(now(&client, 1), Bytes::from_static(b"v2")),
                Vec::new(),
            )
            .unwrap();
        let apply = |records: Vec<KeyedRecord>| {
            handle_meta_request(
                &store,
                &node,
                &MetaRequest::Apply(records).encode(),
                Requester::NODE,
            )
        };
        assert!(matches!(
            apply(vec![(key.clone(), v1.clone())]),
            MetaResponse::Apply { .. }
        ));
        assert!(matches!(
            apply(vec![(key.clone(), v2.clone())]),
            MetaResponse::Apply { .. }
        ));
        // The rollback: v1 re-versioned ahead of v2, with a maximal writer id.
        let mut rolled_back = v1.clone();
        rolled_back.version.timestamp.wall_ms += 30_000;
        let mut maximal = v1.clone();
        maximal.version.timestamp.wall_ms += 30_000;
        maximal.version.writer = WriterId::new(vec![0xff; 64]).unwrap();
        let unsigned = Record::live(now(&client, 2), Bytes::from_static(b"v3"));
        for forged in [rolled_back, maximal, unsigned] {
            let answer = apply(vec![(key.clone(), forged)]);
            assert!(
                matches!(&answer, MetaResponse::Error { code: RemoteErrorCode::Forbidden, detail } if detail.contains("replica refused")),
                "{answer:?}"
            );
        }
        assert_eq!(store.get(&key).unwrap(), Some(v2));
    }

    #[test]
    fn scan_pages_report_more_and_malformed_requests_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledMetaStore::open(dir.path(), IndexOptions::default()).unwrap();
        let (node, client) = node_and_client();
        let version = now(&client, 0);
        let records: Vec<_> = (0..5)
            .map(|i| {
                let key = RecordKey {
                    table: Table::ObjectIndex,
                    partition: "b".into(),
                    sort: format!("k{i}").into_bytes(),
                };
                let record = Record::live(version.clone(), Bytes::from_static(b"v"));
                let record = client.sign(&key, record, Vec::new()).unwrap();
                (key, record)
            })
            .collect();
        let apply = MetaRequest::Apply(records);
        assert_eq!(
            handle_meta_request(&store, &node, &apply.encode(), Requester::NODE),
            MetaResponse::Apply {
                replaced: vec![true; 5]
            }
        );
        let scan = |limit| MetaRequest::Scan {
            table: Table::ObjectIndex,
            partition: "b".into(),
            prefix: Vec::new(),
            start_after: None,
            limit,
        };
        let MetaResponse::Scan { records, more } =
            handle_meta_request(&store, &node, &scan(3).encode(), Requester::NODE)
        else {
            panic!()
        };
        assert_eq!((records.len(), more), (3, true));
        let MetaResponse::Scan { records, more } =
            handle_meta_request(&store, &node, &scan(5).encode(), Requester::NODE)
        else {
            panic!()
        };
        assert_eq!((records.len(), more), (5, false));
        let garbage = handle_meta_request(&store, &node, &[0xff, 0x01], Requester::NODE);
        assert!(matches!(
            garbage,
            MetaResponse::Error {
                code: RemoteErrorCode::Invalid,
                ..
            }
        ));
        let MetaResponse::Scan { records, .. } =
            handle_meta_request(&store, &node, &scan(10).encode(), Requester::NODE)
        else {
            panic!()
        };
        assert_eq!(records.len(), 5);

        // Anti-entropy: a replica wants what it lacks or holds older, nothing else.
        let newer = Version {
            timestamp: Timestamp {
                wall_ms: version.timestamp.wall_ms + 1,
                logical: 0,
            },
            ..version.clone()
        };
        let compare = MetaRequest::Compare {
            table: Table::ObjectIndex,
            partition: "b".into(),
            entries: vec![
                (b"k0".to_vec(), version.clone()),
                (b"k1".to_vec(), newer),
                (b"k9".to_vec(), version),
            ],
        };
        assert_eq!(
            handle_meta_request(&store, &node, &compare.encode(), Requester::NODE),
            MetaResponse::Wanted(vec![false, true, true])
        );
    }
}
