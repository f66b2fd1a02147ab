//! Assessing a version: its manifest from a read quorum, its bucket's placement policy,
//! and each holder asked which shards it has, into a [`Plan`].

use super::*;

impl RepairWorker {
    /// Reads each version's manifest from a quorum and finds its missing shards.
    pub(super) async fn assess_all(&self, keys: Vec<RecordKey>) -> Vec<Plan> {
        // Membership read once for the batch, not once per version.
        let target_count = self.targets().len();
        let draining = self.draining_peers();
        let draining = &draining;
        let plans: Vec<Plan> = futures::stream::iter(keys)
            .filter(|key| std::future::ready(!self.backing_off(key)))
            .map(|key| self.assess_one(key, target_count, draining))
            .buffer_unordered(ASSESS_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let mut recheck = self.recheck.lock().unwrap_or_else(|e| e.into_inner());
        for plan in &plans {
            let attempts = recheck.remove(&plan.key).map_or(0, |(_, n)| n) + 1;
            if !plan.unconfirmed.is_empty()
                && attempts <= RECHECK_ATTEMPTS_MAX
                && recheck.len() < RECHECK_MAX
            {
                recheck.insert(plan.key.clone(), (plan.unconfirmed.clone(), attempts));
            }
        }
        plans
    }

    /// `target_count`: nodes that may take shards now; `draining`: the draining peers.
    pub(super) async fn assess_one(
        &self,
        key: RecordKey,
        target_count: usize,
        draining: &[PeerId],
    ) -> Option<Plan> {
        let record = match self.quorum.get(&key).await {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(error) => {
                debug!(bucket = %key.partition, %error, "manifest unreadable; repair later");
                self.defer(&key);
                return None;
            }
        };
        let bytes = record.value.as_ref()?;
        let manifest = match Manifest::decode(bytes) {
            Ok(manifest) => manifest,
            Err(error) => {
                warn!(bucket = %key.partition, %error, "manifest does not decode; cannot repair it");
                return None;
            }
        };
        // Inline and assembled objects have no shards of their own (an assembled
        // object's parts are manifests of their own, repaired as such).
        if !matches!(manifest.body, Body::Segments(_)) {
            return None;
        }
        let can_spread = target_count >= manifest.params.shard_count();
        // Where the version's writer put its shards, if a node has rewritten them since.
        let (_, origin) = record.origin(&key);
        let written = origin
            .value
            .as_deref()
            .filter(|_| origin.version != record.version)
            .and_then(|bytes| Manifest::decode(bytes).ok());
        Some(
            assess(
                key,
                record.version,
                manifest,
                written.as_ref(),
                &self.liveness,
                &self.calls,
                can_spread,
                draining,
            )
            .await,
        )
    }

    /// The bucket's placement policy as its record says, read at quorum. Placement fails
    /// closed: a bucket whose record cannot be read (no quorum, missing, undecodable)
    /// waits for it rather than have its shards placed "anywhere", which could be outside
    /// its jurisdictions.
    pub(super) async fn policy(&self, bucket: &str) -> BucketPolicy {
        let key = RecordKey {
            table: Table::Bucket,
            partition: String::new(),
            sort: bucket.as_bytes().to_vec(),
        };
        let info = match self.quorum.get(&key).await {
            Ok(Some(Record {
                value: Some(bytes), ..
            })) => BucketInfo::decode(&bytes).ok(),
            // Deleted at quorum: what is left of it is garbage awaiting collection.
            Ok(Some(Record { value: None, .. })) => return BucketPolicy::Deleted,
            _ => None,
        };
        let Some(info) = info else {
            warn!(
                bucket,
                "the bucket's policy cannot be read: its repair and rebalancing wait"
            );
            return BucketPolicy::Unreadable;
        };
        BucketPolicy::Known(PlacementPolicy {
            jurisdictions: info.jurisdictions,
            min_holders: 1,
        })
    }

    /// Where the shards of a version of a deleted bucket may move (a drain must move
    /// them): only within the jurisdictions certified for the holders it already has,
    /// so that a move never widens where its data is. `None` when no holder's place is
    /// known.
    pub(super) fn held_places(&self, manifest: &Manifest) -> Option<PlacementPolicy> {
        let local = self.calls.local();
        let members = self.membership.all();
        let mut jurisdictions: Vec<String> = manifest
            .holder_matrix()
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|bytes| PeerId::from_bytes(&bytes).ok())
            .filter_map(|peer| {
                if peer == local {
                    Some(self.tags.jurisdiction.clone())
                } else {
                    members
                        .iter()
                        .find(|m| m.peer == peer)
                        .map(|m| m.info.jurisdiction.clone())
                }
            })
            .collect();
        jurisdictions.sort();
        jurisdictions.dedup();
        (!jurisdictions.is_empty()).then_some(PlacementPolicy {
            jurisdictions,
            min_holders: 1,
        })
    }
}
