//! `/andromede/meta/1` messages as validated domain types: keys within their limits,
//! records that decode and validate, batch and page sizes bounded. Generated prost types
//! never leave this module.

use andromede_proto::limits::{
    HELD_BY_COUNT_MAX, LIST_KEYS_MAX, META_BATCH_RECORDS_MAX, META_MESSAGE_BYTES_MAX,
    REFERENCED_IDS_MAX, ROSTER_MEMBERS_MAX, TAG_BYTES_MAX,
};
use andromede_proto::pb::{self, meta_request, meta_response};
use andromede_proto::{Message, RepeatedLimit, ShardId, decode_bounded_counted};
use bytes::Bytes;
use libp2p::PeerId;

use super::message::{MessageError, RemoteErrorCode};
use crate::meta::key::{RecordKey, Table, validate_sort_key};
pub use crate::meta::record::KeyedRecord;
use crate::meta::record::{Record, Version, keyed_to_pb};
use crate::roster::{Roster, RosterEntry, RosterSnapshot};

/// A request of the metadata protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaRequest {
    /// Merge these records; answered once durable.
    Apply(Vec<KeyedRecord>),
    /// The record held for a key.
    Get(RecordKey),
    /// A page of one partition.
    Scan {
        /// Which table.
        table: Table,
        /// Which partition.
        partition: String,
        /// Sort keys must start with this.
        prefix: Vec<u8>,
        /// Only sort keys after this one.
        start_after: Option<Vec<u8>>,
        /// At most this many records (≤ `LIST_KEYS_MAX`).
        limit: u32,
    },
    /// The node's tags and capacity.
    Info,
    /// Anti-entropy: which of these records (held by the sender) does the replica lack
    /// or hold older? At most `META_BATCH_RECORDS_MAX` entries.
    Compare {
        /// Which table.
        table: Table,
        /// Which partition.
        partition: String,
        /// Sort keys and the versions the sender holds.
        entries: Vec<(Vec<u8>, Version)>,
    },
    /// Which shards on `holder` do the live manifests held here reference? One page.
    Referenced {
        /// The holder's peer id bytes (1 to `HOLDER_BYTES_MAX`).
        holder: Vec<u8>,
        /// Resume after this manifest key.
        start_after: Option<RecordKey>,
    },
    /// How many live manifest versions of partitions the answering node is a replica of
    /// name `holder`? (A draining node is safe to stop when every member says 0.)
    HeldBy {
        /// The holder's peer id bytes (1 to `HOLDER_BYTES_MAX`).
        holder: Vec<u8>,
    },
    /// The roster the node holds.
    Roster,
}

/// Longest holder (peer id bytes) a referenced-shards request may name.
pub const HOLDER_BYTES_MAX: usize = 128;

/// What a node says about itself: where it stands (tags from its config) and how much
/// room it has. Placement and replica choice use it; `status` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// Failure domain.
    pub zone: String,
    /// Legal jurisdiction, e.g. `FR`.
    pub jurisdiction: String,
    /// Bytes of shards the node accepts at most.
    pub capacity_bytes: u64,
    /// Bytes of shards it holds.
    pub used_bytes: u64,
    /// Live nodes it knows, itself included.
    pub live_nodes: u32,
    /// Being drained: placement and replica sets leave it out, repair moves its shards.
    pub draining: bool,
    /// Drawn when its shard store was created (0: not known); a new one means its shards
    /// are gone (a wiped or replaced disk).
    pub store_epoch: u64,
    /// Its metadata store is new and still being filled from the other replicas: it
    /// takes writes but does not count towards read quorums (DESIGN.md, "Metadata").
    pub catching_up: bool,
    /// Digest of the roster it holds (none yet: `None`); a peer holding another asks for
    /// it.
    pub roster_digest: Option<[u8; 32]>,
    /// Departed members whose partitions it has copied since (see
    /// [`crate::roster`]).
    pub handed_off: Vec<PeerId>,
    /// Departed members it still keeps places for (one it has handed off for and no
    /// longer keeps: every member has handed off for it).
    pub departed: Vec<PeerId>,
    /// Version of the revocation list it holds.
    pub revocations_version: u64,
    /// Milliseconds since its roster last changed.
    pub roster_unchanged_ms: u64,
    /// Digest of who its roster's members are (none yet: `None`).
    pub members_digest: Option<[u8; 32]>,
}

impl NodeInfo {
    /// Bytes it can still accept.
    pub fn free_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.used_bytes)
    }

    /// Checks the tags against [`TAG_BYTES_MAX`].
    ///
    /// # Errors
    /// [`MessageError::TagTooLong`].
    pub fn validate(&self) -> Result<(), MessageError> {
        for (field, value) in [("zone", &self.zone), ("jurisdiction", &self.jurisdiction)] {
            if value.len() as u64 > TAG_BYTES_MAX {
                return Err(MessageError::TagTooLong {
                    field,
                    bytes: value.len() as u64,
                    bytes_max: TAG_BYTES_MAX,
                });
            }
        }
        Ok(())
    }
}

/// An answer of the metadata protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaResponse {
    /// Per applied record, whether it replaced what was held.
    Apply {
        /// In request order.
        replaced: Vec<bool>,
    },
    /// The record held, if any.
    Get(Option<Record<Bytes>>),
    /// A page of records.
    Scan {
        /// The records, in sort-key order.
        records: Vec<KeyedRecord>,
        /// Whether more records follow.
        more: bool,
    },
    /// The node's tags and capacity.
    Info(NodeInfo),
    /// Per compared entry, in order: whether the replica wants the sender's record.
    Wanted(Vec<bool>),
    /// Referenced shard ids of a page of manifests, and where the next page starts.
    ShardIds {
        /// The ids (at most `REFERENCED_IDS_MAX`).
        ids: Vec<ShardId>,
        /// The last manifest key of the page when more follow.
        next: Option<RecordKey>,
    },
    /// Manifest versions naming a holder (at most `HELD_BY_COUNT_MAX` looked at).
    HeldCount {
        /// Versions counted.
        versions: u64,
        /// Whether counting stopped at the limit (there may be more).
        capped: bool,
    },
    /// The roster the node holds, decoded but not verified (merging verifies each
    /// certificate).
    Roster(RosterSnapshot),
    /// The request failed.
    Error {
        /// Why, as a code.
        code: RemoteErrorCode,
        /// Human-readable detail.
        detail: String,
    },
}

fn key_to_pb(key: &RecordKey) -> (u32, String, Bytes) {
    (
        key.table as u32,
        key.partition.clone(),
        Bytes::copy_from_slice(&key.sort),
    )
}

fn key_from_pb(table: u32, partition: String, sort: Bytes) -> Result<RecordKey, MessageError> {
    Ok(RecordKey::from_parts(table, partition, &sort)?)
}

fn keyed_from_pb(keyed: pb::KeyedRecord) -> Result<KeyedRecord, MessageError> {
    let key = key_from_pb(keyed.table, keyed.partition, keyed.sort)?;
    let record = keyed.record.ok_or(MessageError::Empty)?;
    Ok((key, Record::from_pb(record)?))
}

/// A 32-byte digest, or none when empty.
fn digest_from_pb(bytes: &[u8]) -> Result<Option<[u8; 32]>, MessageError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    <[u8; 32]>::try_from(bytes)
        .map(Some)
        .map_err(|_| MessageError::Mismatch("a digest of a wrong length"))
}

/// A list of roster peers for the wire.
fn peers_to_pb(peers: &[PeerId]) -> Vec<Bytes> {
    peers.iter().map(|p| p.to_bytes().into()).collect()
}

/// A list of roster peers from the wire: at most a roster's members, each a peer id.
fn peers_from_pb(peers: &[Bytes]) -> Result<Vec<PeerId>, MessageError> {
    check_count(peers.len(), ROSTER_MEMBERS_MAX)?;
    peers
        .iter()
        .map(|p| PeerId::from_bytes(p))
        .collect::<Result<_, _>>()
        .map_err(|_| MessageError::Mismatch("a roster peer id that does not parse"))
}

fn message_limit() -> usize {
    usize::try_from(META_MESSAGE_BYTES_MAX).unwrap_or(usize::MAX)
}

fn check_count(count: usize, count_max: u64) -> Result<(), MessageError> {
    if count as u64 > count_max {
        return Err(MessageError::BatchTooLarge {
            count: count as u64,
            count_max,
        });
    }
    Ok(())
}

impl MetaRequest {
    /// The node-only request this is, if it is one: clients read and write bucket and
    /// object records and ask for node information; anti-entropy and the holder and
    /// reference queries of repair, drain and orphan collection are refused from a
    /// client certificate (DESIGN.md, "Trust model").
    pub fn node_only(&self) -> Option<&'static str> {
        match self {
            Self::Apply(_) | Self::Get(_) | Self::Scan { .. } | Self::Info | Self::Roster => None,
            Self::Compare { .. } => Some("anti-entropy"),
            Self::Referenced { .. } => Some("asking which shards manifests reference"),
            Self::HeldBy { .. } => Some("asking which manifests name a holder"),
        }
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let request = match self {
            Self::Apply(records) => meta_request::Request::Apply(pb::ApplyRecords {
                records: records.iter().map(keyed_to_pb).collect(),
            }),
            Self::Get(key) => {
                let (table, partition, sort) = key_to_pb(key);
                meta_request::Request::Get(pb::GetRecord {
                    table,
                    partition,
                    sort,
                })
            }
            Self::Scan {
                table,
                partition,
                prefix,
                start_after,
                limit,
            } => meta_request::Request::Scan(pb::ScanRecords {
                table: *table as u32,
                partition: partition.clone(),
                prefix: Bytes::copy_from_slice(prefix),
                start_after: start_after.as_ref().map(|s| Bytes::copy_from_slice(s)),
                limit: *limit,
            }),
            Self::Info => meta_request::Request::Info(pb::NodeInfoRequest {}),
            Self::Compare {
                table,
                partition,
                entries,
            } => meta_request::Request::Compare(pb::CompareVersions {
                table: *table as u32,
                partition: partition.clone(),
                entries: entries
                    .iter()
                    .map(|(sort, version)| pb::VersionedKey {
                        sort: Bytes::copy_from_slice(sort),
                        version: Some(version.to_pb()),
                    })
                    .collect(),
            }),
            Self::Referenced {
                holder,
                start_after,
            } => meta_request::Request::Referenced(pb::ReferencedShards {
                holder: Bytes::copy_from_slice(holder),
                start_after: start_after.as_ref().map(get_record_pb),
            }),
            Self::HeldBy { holder } => meta_request::Request::HeldBy(pb::HeldBy {
                holder: Bytes::copy_from_slice(holder),
            }),
            Self::Roster => meta_request::Request::Roster(pb::RosterRequest {}),
        };
        pb::MetaRequest {
            request: Some(request),
        }
        .encode_to_vec()
    }
}

/// Decodes and validates a request received from a peer.
///
/// # Errors
/// Any [`MessageError`]; nothing is partially accepted.
pub fn decode_meta_request(bytes: &[u8]) -> Result<MetaRequest, MessageError> {
    // Record lists are counted on the wire first: empty elements are 2 bytes there.
    const LIMITS: &[RepeatedLimit] = &[
        RepeatedLimit {
            path: &[1, 1],
            count_max: META_BATCH_RECORDS_MAX,
            what: "records in an apply request",
        },
        RepeatedLimit {
            path: &[5, 3],
            count_max: META_BATCH_RECORDS_MAX,
            what: "entries in a compare request",
        },
    ];
    let pb: pb::MetaRequest = decode_bounded_counted(bytes, message_limit(), LIMITS)?;
    match pb.request.ok_or(MessageError::Empty)? {
        meta_request::Request::Apply(apply) => {
            check_count(apply.records.len(), META_BATCH_RECORDS_MAX)?;
            Ok(MetaRequest::Apply(
                apply
                    .records
                    .into_iter()
                    .map(keyed_from_pb)
                    .collect::<Result<_, _>>()?,
            ))
        }
        meta_request::Request::Get(get) => Ok(MetaRequest::Get(key_from_pb(
            get.table,
            get.partition,
            get.sort,
        )?)),
        meta_request::Request::Scan(scan) => {
            check_count(
                usize::try_from(scan.limit).unwrap_or(usize::MAX),
                LIST_KEYS_MAX,
            )?;
            let key = key_from_pb(scan.table, scan.partition, scan.prefix)?;
            if let Some(after) = &scan.start_after {
                validate_sort_key(after)?;
            }
            Ok(MetaRequest::Scan {
                table: key.table,
                partition: key.partition,
                prefix: key.sort,
                start_after: scan.start_after.map(|s| s.to_vec()),
                limit: scan.limit,
            })
        }
        meta_request::Request::Info(pb::NodeInfoRequest {}) => Ok(MetaRequest::Info),
        meta_request::Request::Compare(compare) => {
            check_count(compare.entries.len(), META_BATCH_RECORDS_MAX)?;
            let partition = key_from_pb(compare.table, compare.partition, Bytes::new())?;
            let entries = compare
                .entries
                .into_iter()
                .map(|entry| {
                    validate_sort_key(&entry.sort)?;
                    let version = entry.version.ok_or(MessageError::Empty)?;
                    Ok((entry.sort.to_vec(), Version::from_pb(version)?))
                })
                .collect::<Result<_, MessageError>>()?;
            Ok(MetaRequest::Compare {
                table: partition.table,
                partition: partition.partition,
                entries,
            })
        }
        meta_request::Request::Referenced(referenced) => {
            if referenced.holder.is_empty() || referenced.holder.len() > HOLDER_BYTES_MAX {
                return Err(MessageError::Mismatch("holder of an invalid length"));
            }
            Ok(MetaRequest::Referenced {
                holder: referenced.holder.to_vec(),
                start_after: referenced.start_after.map(get_record_key).transpose()?,
            })
        }
        meta_request::Request::HeldBy(held_by) => {
            if held_by.holder.is_empty() || held_by.holder.len() > HOLDER_BYTES_MAX {
                return Err(MessageError::Mismatch("holder of an invalid length"));
            }
            Ok(MetaRequest::HeldBy {
                holder: held_by.holder.to_vec(),
            })
        }
        meta_request::Request::Roster(pb::RosterRequest {}) => Ok(MetaRequest::Roster),
    }
}

fn get_record_pb(key: &RecordKey) -> pb::GetRecord {
    let (table, partition, sort) = key_to_pb(key);
    pb::GetRecord {
        table,
        partition,
        sort,
    }
}

fn get_record_key(key: pb::GetRecord) -> Result<RecordKey, MessageError> {
    key_from_pb(key.table, key.partition, key.sort)
}

impl MetaResponse {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let response = match self {
            Self::Apply { replaced } => meta_response::Response::Apply(pb::ApplyDone {
                replaced: replaced.clone(),
            }),
            Self::Get(record) => meta_response::Response::Get(pb::RecordFound {
                record: record.as_ref().map(Record::to_pb),
            }),
            Self::Scan { records, more } => meta_response::Response::Scan(pb::ScanPage {
                records: records.iter().map(keyed_to_pb).collect(),
                more: *more,
            }),
            Self::Info(info) => meta_response::Response::Info(pb::NodeInfo {
                zone: info.zone.clone(),
                jurisdiction: info.jurisdiction.clone(),
                capacity_bytes: info.capacity_bytes,
                used_bytes: info.used_bytes,
                live_nodes: info.live_nodes,
                draining: info.draining,
                store_epoch: info.store_epoch,
                catching_up: info.catching_up,
                roster_digest: info
                    .roster_digest
                    .map(|d| Bytes::copy_from_slice(&d))
                    .unwrap_or_default(),
                handed_off: peers_to_pb(&info.handed_off),
                departed: peers_to_pb(&info.departed),
                revocations_version: info.revocations_version,
                roster_unchanged_ms: info.roster_unchanged_ms,
                members_digest: info
                    .members_digest
                    .map(|d| Bytes::copy_from_slice(&d))
                    .unwrap_or_default(),
            }),
            Self::Wanted(wanted) => meta_response::Response::Wanted(pb::Wanted {
                wanted: wanted.clone(),
            }),
            Self::ShardIds { ids, next } => meta_response::Response::ShardIds(pb::ShardIdPage {
                ids: ids
                    .iter()
                    .map(|id| Bytes::copy_from_slice(id.as_bytes()))
                    .collect(),
                next: next.as_ref().map(get_record_pb),
            }),
            Self::HeldCount { versions, capped } => {
                meta_response::Response::HeldCount(pb::HeldCount {
                    versions: *versions,
                    capped: *capped,
                })
            }
            Self::Roster(snapshot) => meta_response::Response::Roster(pb::Roster {
                entries: snapshot.entries.iter().map(RosterEntry::to_pb).collect(),
                departed: snapshot.departed.iter().map(RosterEntry::to_pb).collect(),
                handed_off: Vec::new(),
            }),
            Self::Error { code, detail } => meta_response::Response::Error(pb::Error {
                code: (*code).into(),
                detail: detail.clone(),
            }),
        };
        pb::MetaResponse {
            response: Some(response),
        }
        .encode_to_vec()
    }
}

/// Decodes and validates the answer to `request`.
///
/// # Errors
/// Any [`MessageError`], including an answer of the wrong kind or count.
pub fn decode_meta_response(
    request: &MetaRequest,
    bytes: &[u8],
) -> Result<MetaResponse, MessageError> {
    const LIMITS: &[RepeatedLimit] = &[
        RepeatedLimit {
            path: &[4, 1],
            count_max: META_BATCH_RECORDS_MAX,
            what: "records in a scan page",
        },
        RepeatedLimit {
            path: &[7, 1],
            count_max: REFERENCED_IDS_MAX,
            what: "shard ids in a referenced page",
        },
        RepeatedLimit {
            path: &[9, 1],
            count_max: ROSTER_MEMBERS_MAX,
            what: "roster entries",
        },
    ];
    let pb: pb::MetaResponse = decode_bounded_counted(bytes, message_limit(), LIMITS)?;
    let response = pb.response.ok_or(MessageError::Empty)?;
    match (request, response) {
        (_, meta_response::Response::Error(e)) => Ok(MetaResponse::Error {
            code: RemoteErrorCode::from(e.code),
            detail: e.detail,
        }),
        (MetaRequest::Apply(records), meta_response::Response::Apply(done)) => {
            if done.replaced.len() != records.len() {
                return Err(MessageError::Mismatch("apply flags count"));
            }
            Ok(MetaResponse::Apply {
                replaced: done.replaced,
            })
        }
        (MetaRequest::Get(_), meta_response::Response::Get(found)) => Ok(MetaResponse::Get(
            found.record.map(Record::from_pb).transpose()?,
        )),
        (MetaRequest::Scan { limit, .. }, meta_response::Response::Scan(page)) => {
            check_count(page.records.len(), u64::from(*limit))?;
            Ok(MetaResponse::Scan {
                records: page
                    .records
                    .into_iter()
                    .map(keyed_from_pb)
                    .collect::<Result<_, _>>()?,
                more: page.more,
            })
        }
        (MetaRequest::Info, meta_response::Response::Info(info)) => {
            let info =
                NodeInfo {
                    zone: info.zone,
                    jurisdiction: info.jurisdiction,
                    capacity_bytes: info.capacity_bytes,
                    used_bytes: info.used_bytes,
                    live_nodes: info.live_nodes,
                    draining: info.draining,
                    store_epoch: info.store_epoch,
                    catching_up: info.catching_up,
                    roster_digest: match info.roster_digest.len() {
                        0 => None,
                        _ => Some(<[u8; 32]>::try_from(info.roster_digest.as_ref()).map_err(
                            |_| MessageError::Mismatch("roster digest of a wrong length"),
                        )?),
                    },
                    handed_off: peers_from_pb(&info.handed_off)?,
                    departed: peers_from_pb(&info.departed)?,
                    revocations_version: info.revocations_version,
                    roster_unchanged_ms: info.roster_unchanged_ms,
                    members_digest: digest_from_pb(&info.members_digest)?,
                };
            info.validate()?;
            Ok(MetaResponse::Info(info))
        }
        (MetaRequest::Compare { entries, .. }, meta_response::Response::Wanted(wanted)) => {
            if wanted.wanted.len() != entries.len() {
                return Err(MessageError::Mismatch("wanted flags count"));
            }
            Ok(MetaResponse::Wanted(wanted.wanted))
        }
        (MetaRequest::Referenced { .. }, meta_response::Response::ShardIds(page)) => {
            check_count(page.ids.len(), REFERENCED_IDS_MAX)?;
            Ok(MetaResponse::ShardIds {
                ids: page
                    .ids
                    .iter()
                    .map(|id| ShardId::try_from(id.as_ref()))
                    .collect::<Result<_, _>>()?,
                next: page.next.map(get_record_key).transpose()?,
            })
        }
        (MetaRequest::HeldBy { .. }, meta_response::Response::HeldCount(count)) => {
            if count.versions > HELD_BY_COUNT_MAX {
                return Err(MessageError::Mismatch("held-by count over its limit"));
            }
            Ok(MetaResponse::HeldCount {
                versions: count.versions,
                capped: count.capped,
            })
        }
        (MetaRequest::Roster, meta_response::Response::Roster(roster)) => {
            check_count(roster.entries.len(), ROSTER_MEMBERS_MAX)?;
            check_count(roster.departed.len(), ROSTER_MEMBERS_MAX)?;
            let entries = Roster::entries_from_pb(roster)
                .map_err(|_| MessageError::Mismatch("a roster over its size"))?;
            Ok(MetaResponse::Roster(entries))
        }
        _ => Err(MessageError::Mismatch("answer of another kind")),
    }
}

#[cfg(test)]
mod tests {
    use crate::meta::hlc::Timestamp;
    use crate::meta::record::{Version, WriterId};

    use super::*;

    fn record(wall_ms: u64, value: Option<&'static [u8]>) -> Record<Bytes> {
        Record {
            version: Version {
                timestamp: Timestamp {
                    wall_ms,
                    logical: 0,
                },
                writer: WriterId::new(Bytes::from_static(b"peer")).unwrap(),
            },
            value: value.map(Bytes::from_static),
            seal: None,
        }
    }

    fn key(sort: &str) -> RecordKey {
        RecordKey {
            table: Table::ObjectIndex,
            partition: "bucket".into(),
            sort: sort.as_bytes().to_vec(),
        }
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let apply = MetaRequest::Apply(vec![
            (key("a"), record(1, Some(b"x"))),
            (key("b"), record(2, None)),
        ]);
        assert_eq!(decode_meta_request(&apply.encode()).unwrap(), apply);
        let scan = MetaRequest::Scan {
            table: Table::ObjectIndex,
            partition: "bucket".into(),
            prefix: b"a/".to_vec(),
            start_after: Some(b"a/1".to_vec()),
            limit: 10,
        };
        assert_eq!(decode_meta_request(&scan.encode()).unwrap(), scan);
        let get = MetaRequest::Get(key("k"));
        assert_eq!(decode_meta_request(&get.encode()).unwrap(), get);

        let done = MetaResponse::Apply {
            replaced: vec![true, false],
        };
        assert_eq!(decode_meta_response(&apply, &done.encode()).unwrap(), done);
        let page = MetaResponse::Scan {
            records: vec![(key("a/2"), record(3, Some(b"y")))],
            more: true,
        };
        assert_eq!(decode_meta_response(&scan, &page.encode()).unwrap(), page);
        let found = MetaResponse::Get(Some(record(4, None)));
        assert_eq!(decode_meta_response(&get, &found.encode()).unwrap(), found);
        let none = MetaResponse::Get(None);
        assert_eq!(decode_meta_response(&get, &none.encode()).unwrap(), none);
        let info = MetaResponse::Info(NodeInfo {
            zone: "rack-1".into(),
            jurisdiction: "FR".into(),
            capacity_bytes: 10,
            used_bytes: 4,
            live_nodes: 3,
            draining: true,
            store_epoch: 0x1234_5678_9abc,
            catching_up: true,
            roster_digest: Some([7; 32]),
            handed_off: vec![PeerId::random()],
            departed: vec![PeerId::random(), PeerId::random()],
            revocations_version: 17,
            roster_unchanged_ms: 1234,
            members_digest: Some([9; 32]),
        });
        let ask = MetaRequest::Info;
        assert_eq!(decode_meta_request(&ask.encode()).unwrap(), ask);
        assert_eq!(decode_meta_response(&ask, &info.encode()).unwrap(), info);
        let ask = MetaRequest::Roster;
        assert_eq!(decode_meta_request(&ask.encode()).unwrap(), ask);
        let empty = MetaResponse::Roster(RosterSnapshot::default());
        assert_eq!(decode_meta_response(&ask, &empty.encode()).unwrap(), empty);
        let compare = MetaRequest::Compare {
            table: Table::Manifest,
            partition: "bucket".into(),
            entries: vec![
                (b"v1".to_vec(), record(5, None).version),
                (b"v2".to_vec(), record(6, None).version),
            ],
        };
        assert_eq!(decode_meta_request(&compare.encode()).unwrap(), compare);
        let wanted = MetaResponse::Wanted(vec![false, true]);
        assert_eq!(
            decode_meta_response(&compare, &wanted.encode()).unwrap(),
            wanted
        );
    }

    #[test]
    fn bad_requests_and_mismatched_answers_are_refused() {
        let long_key = MetaRequest::Get(RecordKey {
            table: Table::ObjectIndex,
            partition: "b".into(),
            sort: vec![b'k'; usize::try_from(crate::meta::key::SORT_KEY_BYTES_MAX).unwrap() + 1],
        });
        assert!(matches!(
            decode_meta_request(&long_key.encode()),
            Err(MessageError::Key(_))
        ));
        let unknown_table = pb::MetaRequest {
            request: Some(meta_request::Request::Get(pb::GetRecord {
                table: 9,
                partition: String::new(),
                sort: Bytes::new(),
            })),
        };
        assert!(matches!(
            decode_meta_request(&unknown_table.encode_to_vec()),
            Err(MessageError::Key(_))
        ));
        let huge_page = MetaRequest::Scan {
            table: Table::Bucket,
            partition: String::new(),
            prefix: Vec::new(),
            start_after: None,
            limit: 1001,
        };
        assert!(matches!(
            decode_meta_request(&huge_page.encode()),
            Err(MessageError::BatchTooLarge { .. })
        ));
        assert!(matches!(decode_meta_request(&[]), Err(MessageError::Empty)));
        let apply = MetaRequest::Apply(vec![(key("a"), record(1, Some(b"x")))]);
        let wrong_count = MetaResponse::Apply {
            replaced: vec![true, true],
        };
        assert!(matches!(
            decode_meta_response(&apply, &wrong_count.encode()),
            Err(MessageError::Mismatch(_))
        ));
        let long_tag = MetaResponse::Info(NodeInfo {
            zone: "z".repeat(65),
            ..NodeInfo::default()
        });
        assert!(matches!(
            decode_meta_response(&MetaRequest::Info, &long_tag.encode()),
            Err(MessageError::TagTooLong { field: "zone", .. })
        ));
        let too_many = MetaRequest::Compare {
            table: Table::ObjectIndex,
            partition: "b".into(),
            entries: vec![(b"k".to_vec(), record(1, None).version); 1025],
        };
        assert!(matches!(
            decode_meta_request(&too_many.encode()),
            Err(MessageError::Decode(
                andromede_proto::DecodeError::TooMany { .. }
            ))
        ));
        let one = MetaRequest::Compare {
            table: Table::ObjectIndex,
            partition: "b".into(),
            entries: vec![(b"k".to_vec(), record(1, None).version)],
        };
        assert!(matches!(
            decode_meta_response(&one, &MetaResponse::Wanted(vec![]).encode()),
            Err(MessageError::Mismatch(_))
        ));
        let long_sort = pb::MetaRequest {
            request: Some(meta_request::Request::Compare(pb::CompareVersions {
                table: 2,
                partition: "b".into(),
                entries: vec![pb::VersionedKey {
                    sort: Bytes::from(vec![
                        b'k';
                        usize::try_from(crate::meta::key::SORT_KEY_BYTES_MAX)
                            .unwrap()
                            + 1
                    ]),
                    version: Some(record(1, None).version.to_pb()),
                }],
            })),
        };
        assert!(matches!(
            decode_meta_request(&long_sort.encode_to_vec()),
            Err(MessageError::Key(_))
        ));
        let wrong_kind = MetaResponse::Get(None);
        assert!(matches!(
            decode_meta_response(&apply, &wrong_kind.encode()),
            Err(MessageError::Mismatch(_))
        ));
    }

    #[test]
    fn referenced_shards_round_trip_and_bad_ones_are_refused() {
        let request = MetaRequest::Referenced {
            holder: b"peer".to_vec(),
            start_after: Some(RecordKey {
                table: Table::Manifest,
                partition: "bucket".into(),
                sort: vec![7; 16],
            }),
        };
        assert_eq!(decode_meta_request(&request.encode()).unwrap(), request);
        let answer = MetaResponse::ShardIds {
            ids: vec![ShardId([1; 32]), ShardId([2; 32])],
            next: None,
        };
        assert_eq!(
            decode_meta_response(&request, &answer.encode()).unwrap(),
            answer
        );
        // No holder, or one longer than any peer id.
        for holder in [Vec::new(), vec![0; HOLDER_BYTES_MAX + 1]] {
            let bad = MetaRequest::Referenced {
                holder,
                start_after: None,
            };
            assert!(decode_meta_request(&bad.encode()).is_err());
        }
        // An id of the wrong length.
        let bad = pb::MetaResponse {
            response: Some(meta_response::Response::ShardIds(pb::ShardIdPage {
                ids: vec![Bytes::from_static(b"short")],
                next: None,
            })),
        }
        .encode_to_vec();
        assert!(decode_meta_response(&request, &bad).is_err());
        // Ids are not an answer to another request.
        assert!(decode_meta_response(&MetaRequest::Info, &answer.encode()).is_err());
    }
}
