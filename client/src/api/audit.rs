//! `audit`: where the current version of every object of a bucket (or of a prefix) lives —
//! for each segment, which node holds each shard, that node's *certified* jurisdiction and
//! zone, and whether it still has the shard — and how many node failures each object
//! survives now. This is how an organisation shows where its data is.
//!
//! Places come from the certificates in this client's view of the cluster (never from
//! what a node says); a holder outside the view (down, revoked, unknown) has no known
//! place and its shards count as not held. Presence is asked with `have` requests, one
//! batch per holder and object.
//!
//! It also reads the bucket's index entries (under the prefix) and manifests from each of
//! its metadata replicas, one by one, and reports every record whose signature, author
//! certificate or grant does not verify: what a tampered or rogue replica holds (readers
//! ignore such records; the audit names the replica that keeps them).

use andromede_cluster::placement::node_failures_survived;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::net::call_shard;
use andromede_cluster::net::message::{ShardRequest, ShardResponse};
use andromede_proto::ShardId;
use andromede_proto::limits::SHARD_BATCH_IDS_MAX;
use futures::StreamExt;
use libp2p::PeerId;
use serde::Serialize;

use andromede_cluster::meta::key::Table;
use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse};
use andromede_proto::limits::LIST_KEYS_MAX;

use super::{Client, ClientError, ListOptions};

/// Bad records an audit lists at most (all are counted).
const BAD_RECORDS_LISTED_MAX: usize = 1000;

/// Objects audited at once.
const OBJECTS_IN_FLIGHT: usize = 8;
/// Time a holder has to say which shards it has.
const HAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One shard of one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardPlace {
    /// Segment index.
    pub segment: u64,
    /// Shard index in the segment.
    pub shard: u8,
    /// The holder's peer id.
    pub holder: String,
    /// Its certified jurisdiction (`None`: not in this client's view).
    pub jurisdiction: Option<String>,
    /// Its certified zone.
    pub zone: Option<String>,
    /// Whether it has the shard (`None`: it did not answer).
    pub present: Option<bool>,
    /// Whether its jurisdiction is outside the bucket's policy.
    pub outside_policy: bool,
}

/// One object's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectAudit {
    /// Its key.
    pub key: String,
    /// Its version id, hex.
    pub version: String,
    /// Plaintext bytes.
    pub size: u64,
    /// Data shards per segment.
    pub k: u32,
    /// Parity shards per segment: the node failures it is meant to survive.
    pub m: u32,
    /// Every shard (none for an object kept inline in its metadata).
    pub shards: Vec<ShardPlace>,
    /// Node failures it survives now, in its worst segment: how many holders can fail
    /// (the fullest first) before fewer than `k` held shards are left — the held shards
    /// minus `k` when every shard has a holder of its own (negative: unreadable now).
    /// `None` for an inline object (it lives with the metadata replicas).
    pub survives: Option<i64>,
    /// Why it could not be audited, if it could not.
    pub error: Option<String>,
}

/// A record a replica holds whose signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    /// The replica holding it.
    pub replica: String,
    /// `index` or `manifest`.
    pub table: String,
    /// Its key (an object key, or a version id in hex).
    pub key: String,
    /// Why it does not verify.
    pub reason: String,
}

/// Totals over an audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// Objects audited.
    pub objects: u64,
    /// Shards looked at.
    pub shards: u64,
    /// Shards whose holder says it does not have them.
    pub shards_missing: u64,
    /// Shards whose holder did not answer.
    pub shards_unreachable: u64,
    /// Shards on a holder certified outside the bucket's jurisdictions.
    pub shards_outside_policy: u64,
    /// Objects that survive fewer node failures than their `m`, or could not be audited.
    pub objects_below_m: u64,
    /// The fewest node failures any object survives.
    pub worst_survives: Option<i64>,
    /// Records read from the replicas one by one and verified.
    pub records_checked: u64,
    /// Records whose signature, author certificate or grant does not verify.
    pub records_bad: u64,
    /// Replicas that could not be read (their records were not checked).
    pub replicas_unread: u64,
}

impl AuditSummary {
    /// Nothing outside the policy, and every object as redundant as its code.
    pub fn is_clean(&self) -> bool {
        self.shards_outside_policy == 0 && self.objects_below_m == 0 && self.records_bad == 0
    }
}

/// An audit of a bucket (or a prefix of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The bucket.
    pub bucket: String,
    /// The prefix audited.
    pub prefix: String,
    /// The bucket's jurisdictions (empty: any).
    pub jurisdictions: Vec<String>,
    /// Every object, in key order.
    pub objects: Vec<ObjectAudit>,
    /// Records that do not verify, per replica (at most 1 000 listed).
    pub bad_records: Vec<BadRecord>,
    /// Totals.
    pub summary: AuditSummary,
}

impl Client {
    /// Audits the current version of every object of `bucket` whose key starts with
    /// `prefix`.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`] or a metadata failure while listing; an object that
    /// cannot be read is reported in the audit, not as an error.
    pub async fn audit(&self, bucket: &str, prefix: &str) -> Result<AuditReport, ClientError> {
        let info = self.head_bucket(bucket).await?;
        let places: HashMap<PeerId, (String, String)> = self
            .membership
            .all()
            .into_iter()
            .map(|m| (m.peer, (m.info.jurisdiction, m.info.zone)))
            .collect();
        let mut objects = Vec::new();
        let mut options = ListOptions {
            prefix: prefix.to_owned(),
            ..ListOptions::default()
        };
        loop {
            let page = self.list_objects(bucket, &options).await?;
            let audited: Vec<ObjectAudit> = futures::stream::iter(&page.objects)
                .map(|object| self.audit_object(bucket, &object.key, &info.jurisdictions, &places))
                .buffered(OBJECTS_IN_FLIGHT)
                .collect()
                .await;
            objects.extend(audited);
            match page.next_continuation_token {
                Some(token) if page.is_truncated => options.continuation_token = Some(token),
                _ => break,
            }
        }
        let mut summary = summarise(&objects);
        let mut bad_records = Vec::new();
        for replica in self.meta.replicas(bucket) {
            for (table, table_prefix) in [(Table::ObjectIndex, prefix), (Table::Manifest, "")] {
                match self
                    .check_records(replica, bucket, table, table_prefix, &mut bad_records)
                    .await
                {
                    Ok((checked, bad)) => {
                        summary.records_checked += checked;
                        summary.records_bad += bad;
                    }
                    Err(error) => {
                        tracing::warn!(%replica, %error, "replica's records not checked");
                        summary.replicas_unread += 1;
                        break;
                    }
                }
            }
        }
        Ok(AuditReport {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            jurisdictions: info.jurisdictions,
            objects,
            bad_records,
            summary,
        })
    }

    /// Reads every record of `table` in `bucket` under `prefix` from `replica` alone and
    /// verifies each; returns how many were checked and how many failed (listed in `bad`
    /// up to its limit). Errors: why the replica could not be read.
    async fn check_records(
        &self,
        replica: PeerId,
        bucket: &str,
        table: Table,
        prefix: &str,
        bad: &mut Vec<BadRecord>,
    ) -> Result<(u64, u64), String> {
        let (mut checked, mut failed) = (0u64, 0u64);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let request = MetaRequest::Scan {
                table,
                partition: bucket.to_owned(),
                prefix: prefix.as_bytes().to_vec(),
                start_after: after.clone(),
                limit: u32::try_from(LIST_KEYS_MAX).unwrap_or(u32::MAX),
            };
            let answer = self
                .meta
                .ask_one(replica, request)
                .await
                .map_err(|error| error.to_string())?;
            let MetaResponse::Scan { records, more } = answer else {
                return Err("it answered a scan with something else".into());
            };
            for (key, record) in &records {
                checked += 1;
                if let Err(error) = self.meta.verifier().verify(key, record) {
                    failed += 1;
                    if bad.len() < BAD_RECORDS_LISTED_MAX {
                        bad.push(BadRecord {
                            replica: replica.to_string(),
                            table: match table {
                                Table::Manifest => "manifest".into(),
                                _ => "index".into(),
                            },
                            key: match table {
                                Table::Manifest => hex::encode(&key.sort),
                                _ => String::from_utf8_lossy(&key.sort).into_owned(),
                            },
                            reason: error.to_string(),
                        });
                    }
                }
            }
            match records.last() {
                Some((key, _)) if more => after = Some(key.sort.clone()),
                _ => return Ok((checked, failed)),
            }
        }
    }

    async fn audit_object(
        &self,
        bucket: &str,
        key: &str,
        jurisdictions: &[String],
        places: &HashMap<PeerId, (String, String)>,
    ) -> ObjectAudit {
        let manifest = match self.object_manifest(bucket, key).await {
            Ok(manifest) => manifest,
            Err(error) => {
                return ObjectAudit {
                    key: key.to_owned(),
                    version: String::new(),
                    size: 0,
                    k: 0,
                    m: 0,
                    shards: Vec::new(),
                    survives: None,
                    error: Some(error.to_string()),
                };
            }
        };
        // An assembled object: every part's shards, numbered as one run of segments.
        let mut pieces = vec![manifest.clone()];
        if let Body::Parts(parts) = &manifest.body {
            pieces.clear();
            for part in parts {
                match self.open_part_manifest(bucket, key, part).await {
                    Ok(opened) => pieces.push(opened.manifest().clone()),
                    Err(error) => {
                        return ObjectAudit {
                            key: key.to_owned(),
                            version: hex::encode(manifest.version_id.as_bytes()),
                            size: manifest.size,
                            k: u32::from(manifest.params.k()),
                            m: u32::from(manifest.params.m()),
                            shards: Vec::new(),
                            survives: None,
                            error: Some(error.to_string()),
                        };
                    }
                }
            }
        }
        let mut shards = Vec::new();
        let mut survives_min: Option<i64> = None;
        let mut first_segment = 0u64;
        for piece in &pieces {
            let mut piece_shards = self.shard_places(piece, jurisdictions, places).await;
            if let Body::Segments(segments) = &piece.body {
                let piece_min = (0..segments.len() as u64)
                    .map(|segment| survives(&piece_shards, segment, usize::from(piece.params.k())))
                    .min();
                survives_min = match (survives_min, piece_min) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            for place in &mut piece_shards {
                place.segment += first_segment;
            }
            first_segment += piece.segment_count();
            shards.extend(piece_shards);
        }
        let survives = survives_min;
        ObjectAudit {
            key: key.to_owned(),
            version: hex::encode(manifest.version_id.as_bytes()),
            size: manifest.size,
            k: u32::from(manifest.params.k()),
            m: u32::from(manifest.params.m()),
            shards,
            survives,
            error: None,
        }
    }

    /// Every shard of `manifest` with its holder's place and presence.
    async fn shard_places(
        &self,
        manifest: &Manifest,
        jurisdictions: &[String],
        places: &HashMap<PeerId, (String, String)>,
    ) -> Vec<ShardPlace> {
        let Body::Segments(segments) = &manifest.body else {
            return Vec::new();
        };
        let mut by_holder: BTreeMap<Option<PeerId>, Vec<(u64, u8, ShardId)>> = BTreeMap::new();
        for (segment, entry) in (0u64..).zip(segments) {
            for (shard, id) in (0u8..).zip(&entry.shard_ids) {
                let holder = manifest
                    .holder(segment, shard)
                    .and_then(|bytes| PeerId::from_bytes(bytes).ok());
                by_holder
                    .entry(holder)
                    .or_default()
                    .push((segment, shard, *id));
            }
        }
        let asked = futures::future::join_all(
            by_holder
                .iter()
                .map(|(holder, shards)| self.have(*holder, shards)),
        )
        .await;
        let mut out = Vec::new();
        for ((holder, shards), present) in by_holder.iter().zip(asked) {
            let place = holder.and_then(|peer| places.get(&peer));
            for ((segment, shard, _), present) in shards.iter().zip(present) {
                let jurisdiction = place.map(|(j, _)| j.clone());
                let outside_policy = !jurisdictions.is_empty()
                    && jurisdiction
                        .as_ref()
                        .is_some_and(|j| !jurisdictions.contains(j));
                out.push(ShardPlace {
                    segment: *segment,
                    shard: *shard,
                    holder: holder.map_or_else(|| "(unreadable peer id)".into(), |p| p.to_string()),
                    jurisdiction,
                    zone: place.map(|(_, z)| z.clone()),
                    present,
                    outside_policy,
                });
            }
        }
        out.sort_by_key(|s| (s.segment, s.shard));
        out
    }

    /// Whether `holder` has each of `shards` (`None` for each when it does not answer).
    async fn have(
        &self,
        holder: Option<PeerId>,
        shards: &[(u64, u8, ShardId)],
    ) -> Vec<Option<bool>> {
        let Some(holder) = holder else {
            return vec![None; shards.len()];
        };
        let batch = usize::try_from(SHARD_BATCH_IDS_MAX).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(shards.len());
        for chunk in shards.chunks(batch) {
            let request = ShardRequest::Have {
                ids: chunk.iter().map(|(_, _, id)| *id).collect(),
            };
            match call_shard(&self.net, holder, &request, HAVE_TIMEOUT).await {
                Ok(ShardResponse::Have { present }) if present.len() == chunk.len() => {
                    out.extend(present.into_iter().map(Some));
                }
                _ => out.extend(std::iter::repeat_n(None, chunk.len())),
            }
        }
        out
    }
}

/// Node failures `segment` survives: how many of its holders can fail, the fullest first,
/// before fewer than `k` of its held shards are left. With one shard per holder this is
/// the held shards minus `k`; shards doubled up on a holder count against it. Negative
/// when fewer than `k` are held now.
fn survives(shards: &[ShardPlace], segment: u64, k: usize) -> i64 {
    node_failures_survived(
        shards
            .iter()
            .filter(|s| s.segment == segment && s.present == Some(true))
            .map(|s| s.holder.as_str()),
        k,
    )
}

fn summarise(objects: &[ObjectAudit]) -> AuditSummary {
    let mut summary = AuditSummary::default();
    for object in objects {
        summary.objects += 1;
        for shard in &object.shards {
            summary.shards += 1;
            match shard.present {
                Some(true) => {}
                Some(false) => summary.shards_missing += 1,
                None => summary.shards_unreachable += 1,
            }
            if shard.outside_policy {
                summary.shards_outside_policy += 1;
            }
        }
        let below = object.error.is_some()
            || object
                .survives
                .is_some_and(|survives| survives < i64::from(object.m));
        if below {
            summary.objects_below_m += 1;
        }
        if let Some(survives) = object.survives {
            summary.worst_survives =
                Some(summary.worst_survives.map_or(survives, |w| w.min(survives)));
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(segment: u64, holder: &str) -> ShardPlace {
        ShardPlace {
            segment,
            shard: 0,
            holder: holder.into(),
            jurisdiction: None,
            zone: None,
            present: Some(true),
            outside_policy: false,
        }
    }

    #[test]
    fn survival_counts_holders_not_shards() {
        // RS(4,2) on six holders: two failures.
        let spread: Vec<ShardPlace> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|h| held(0, h))
            .collect();
        assert_eq!(survives(&spread, 0, 4), 2);
        // The same six shards on two holders: no failure at all.
        let doubled: Vec<ShardPlace> = ["a", "a", "a", "b", "b", "b"]
            .iter()
            .map(|h| held(0, h))
            .collect();
        assert_eq!(survives(&doubled, 0, 4), 0);
        // Three of six held: unreadable by one shard.
        let missing: Vec<ShardPlace> = ["a", "b", "c"].iter().map(|h| held(0, h)).collect();
        assert_eq!(survives(&missing, 0, 4), -1);
    }
}
