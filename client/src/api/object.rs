//! Objects: put (stream of known or unknown length), get (whole or a byte range), head,
//! delete, copy.
//!
//! A PUT chooses its version id first, places the version's shards on `k + m` peers by
//! XOR distance to it (bucket policy, capacity and zones respected), streams the shards
//! straight to them (a failing holder's shards go to the next peer in placement order),
//! and only then commits, in one quorum write: the manifest, the index entry (versioned
//! after the one it replaces, whatever this clock says) and a garbage record for the
//! replaced version. The commit is the moment the new version exists.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use andromede_proto::VersionId;
use andromede_proto::limits::{SEAL_OVERHEAD_BYTES, SEALED_ETAG_BYTES_MAX};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use libp2p::PeerId;
use tokio::io::AsyncRead;
use tracing::{debug, instrument, warn};

use super::names::validate_key;
use super::{Client, ClientError, now_ms};
use crate::codec::BodyEnd;
use crate::codec::seal::{self, Purpose};
use crate::codec::{
    FinishHook, ObjectName, OpenedObject, PutOptions, encode_object, new_version_id,
};
use crate::error::CodecError;
use crate::keys::MasterKey;
use crate::shards::NetShards;
use andromede_cluster::authority::Rights;
use andromede_cluster::manifest::{Body, Manifest, PartRef};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::Record;
use andromede_cluster::meta::values::{BucketInfo, GarbageEntry, ObjectEntry};
use andromede_cluster::net::meta_message::KeyedRecord;
use andromede_cluster::placement::{Candidate, PlacementPolicy, place_shards, placement_key};

/// What a PUT says about the object besides its bytes.
#[derive(Clone)]
pub struct PutObjectOptions {
    /// MIME type.
    pub content_type: String,
    /// User metadata (sealed: replicas never see it).
    pub user_metadata: BTreeMap<String, String>,
    /// The object's size when known: placement then checks each peer has room for it.
    pub size_hint: Option<u64>,
    /// Checks the body once read and adds what is known only then (see [`FinishHook`]).
    pub finish: Option<FinishHook>,
}

impl std::fmt::Debug for PutObjectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutObjectOptions")
            .field("content_type", &self.content_type)
            .field("user_metadata", &self.user_metadata)
            .field("size_hint", &self.size_hint)
            .field("finish", &self.finish.is_some())
            .finish()
    }
}

impl Default for PutObjectOptions {
    fn default() -> Self {
        Self {
            content_type: "application/octet-stream".into(),
            user_metadata: BTreeMap::new(),
            size_hint: None,
            finish: None,
        }
    }
}

/// What is known about an object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// The version.
    pub version_id: VersionId,
    /// Plaintext bytes.
    pub size: u64,
    /// The ETag its writer gave (an S3 gateway: the MD5), else the content fingerprint
    /// (hex).
    pub etag: String,
    /// When it was written (ms since the Unix epoch).
    pub modified_ms: u64,
    /// MIME type.
    pub content_type: String,
    /// User metadata (from a PUT's answer: only what its finish hook added).
    pub user_metadata: BTreeMap<String, String>,
    /// Distinct peers holding its shards (0 when inlined in its manifest).
    pub holders: usize,
    /// Node failures every segment survives as placed (`None`: inlined in its
    /// manifest, which lives as long as its metadata replicas).
    pub node_failures_survived: Option<u64>,
    /// Who wrote this version, as the signature of its index entry says ("client NAME
    /// (PEER)").
    pub author: String,
}

/// The latest version of an object, opened: its index entry, its manifest, and who
/// signed the entry.
struct CurrentVersion {
    entry: ObjectEntry,
    opened: OpenedObject,
    author: String,
    /// The manifest as its writer signed it, when a node has rewritten its holders.
    written: Option<Manifest>,
}

/// An opened object version, not read yet ([`Client::open_object`]).
pub struct ObjectReader {
    client: Client,
    /// What the version is (user metadata included).
    pub info: ObjectInfo,
    opened: OpenedObject,
    /// The manifest as its writer signed it, when a node has rewritten its holders since.
    written: Option<Manifest>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ObjectReader {
    /// Streams the version, or the byte range `range` of it.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for a range that starts after the object's end.
    pub fn read(self, range: Option<Range<u64>>) -> Result<GetObject, ClientError> {
        let info = self.info;
        if let Some(range) = &range
            && (range.start > range.end || range.start > info.size)
        {
            return Err(ClientError::InvalidArgument(format!(
                "range {}..{} is outside the object's {} bytes",
                range.start, range.end, info.size
            )));
        }
        let client = self.client;
        if let Body::Parts(parts) = &self.opened.manifest().body {
            let body = client.read_parts(
                &info.bucket,
                &info.key,
                parts.clone(),
                range.unwrap_or(0..info.size),
            );
            return Ok(GetObject { info, body });
        }
        let source = Arc::new(NetShards::for_manifest(
            client.net.clone(),
            self.opened.manifest(),
            self.written.as_ref(),
        ));
        let body = Arc::new(self.opened).read(&client.codec, range, source);
        Ok(GetObject { info, body })
    }
}

/// An object being read: what it is, and its bytes as they are decoded. Every chunk is
/// verified plaintext; an error ends the stream. Never wrong bytes.
pub struct GetObject {
    /// The version read.
    pub info: ObjectInfo,
    /// The bytes (of the range asked for).
    pub body: BoxStream<'static, Result<Bytes, CodecError>>,
}

impl std::fmt::Debug for GetObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObject")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

pub(super) fn index_key(bucket: &str, key: &str) -> RecordKey {
    RecordKey {
        table: Table::ObjectIndex,
        partition: bucket.to_owned(),
        sort: key.as_bytes().to_vec(),
    }
}

pub(super) fn manifest_key(bucket: &str, version: &VersionId) -> RecordKey {
    RecordKey {
        table: Table::Manifest,
        partition: bucket.to_owned(),
        sort: version.as_bytes().to_vec(),
    }
}

pub(super) fn decode_entry(
    record: Option<&Record<Bytes>>,
) -> Result<Option<ObjectEntry>, ClientError> {
    match record.and_then(|r| r.value.as_ref()) {
        Some(value) => {
            ObjectEntry::decode(value)
                .map(Some)
                .map_err(|source| ClientError::CorruptRecord {
                    what: "object index",
                    source,
                })
        }
        None => Ok(None),
    }
}

/// Seals the ETag a writer gave for listings (see [`ObjectEntry::sealed_etag`]).
pub(super) fn seal_etag(
    master: &MasterKey,
    bucket: &str,
    key: &str,
    version: &VersionId,
    etag: &str,
) -> Result<Bytes, ClientError> {
    let aad = seal::object_aad(Purpose::ListingEtag, bucket, key, version, &[]);
    let sealed = seal::seal(&master.listing_key(), &aad, etag.as_bytes())?;
    if sealed.len() as u64 > SEALED_ETAG_BYTES_MAX {
        return Err(ClientError::InvalidArgument(format!(
            "an ETag of {} bytes is longer than the index keeps",
            etag.len()
        )));
    }
    Ok(Bytes::from(sealed))
}

/// The ETag an index entry shows: the one its writer sealed, else the content
/// fingerprint. One that does not open (another master key, a damaged entry) shows the
/// fingerprint too, with a warning: a listing is not refused for one entry.
pub(super) fn listed_etag(
    master: &MasterKey,
    bucket: &str,
    key: &str,
    entry: &ObjectEntry,
) -> String {
    if entry.sealed_etag.is_empty() {
        return hex::encode(entry.etag);
    }
    let aad = seal::object_aad(Purpose::ListingEtag, bucket, key, &entry.version_id, &[]);
    match seal::open(&master.listing_key(), &aad, &entry.sealed_etag)
        .and_then(|plain| String::from_utf8(plain).ok())
    {
        Some(etag) => etag,
        None => {
            warn!(
                bucket,
                key, "an index entry's sealed ETag does not open; showing its fingerprint"
            );
            hex::encode(entry.etag)
        }
    }
}

/// Opens an ETag sealed by [`seal_etag`] for `version`; `None` if it does not open.
pub(super) fn open_etag(
    master: &MasterKey,
    bucket: &str,
    key: &str,
    version: &VersionId,
    sealed: &[u8],
) -> Option<String> {
    let aad = seal::object_aad(Purpose::ListingEtag, bucket, key, version, &[]);
    seal::open(&master.listing_key(), &aad, sealed).and_then(|plain| String::from_utf8(plain).ok())
}

fn distinct_holders(manifest: &Manifest) -> usize {
    if matches!(manifest.body, Body::Inline(_)) {
        return 0;
    }
    manifest.distinct_holders().len()
}

/// The shard holders of a new version and the peers to fail over to, in placement order.
struct Chosen {
    holders: Vec<PeerId>,
    spares: Vec<PeerId>,
}

/// A roster that changed more recently than this may still be growing (a cluster
/// forming): a write waits for its members before doubling shards up.
const ROSTER_FORMING: Duration = Duration::from_secs(10);
/// Pause between looks at the cluster while a write waits for holders.
const PLACEMENT_POLL: Duration = Duration::from_millis(200);

impl Client {
    /// Waits, at most `placement_wait`, while fewer than `shard_count` roster members that
    /// take shards are reachable and a node says its roster changed lately (a cluster
    /// forming, nodes still joining): a write issued right after a cluster starts then
    /// spreads its shards over distinct nodes instead of doubling them up on the first
    /// one it met. Members known to be down are not waited for.
    async fn wait_for_holders(&self, shard_count: usize) {
        let deadline = tokio::time::Instant::now() + self.placement_wait;
        let forming_ms = u64::try_from(ROSTER_FORMING.as_millis()).unwrap_or(u64::MAX);
        loop {
            let mut members = self.membership.all();
            members.retain(|m| !m.info.draining);
            let live: Vec<&andromede_cluster::Member> = members.iter().filter(|m| m.live).collect();
            let forming = live.iter().any(|m| m.info.roster_unchanged_ms < forming_ms);
            let enough = live.len() >= shard_count || (!forming && !live.is_empty());
            if enough || tokio::time::Instant::now() >= deadline {
                if !enough {
                    debug!(
                        reachable = live.len(),
                        members = members.len(),
                        shard_count,
                        "placing on the members reachable: some shards share a node"
                    );
                }
                return;
            }
            tokio::time::sleep(PLACEMENT_POLL).await;
            self.membership.refresh().await;
        }
    }

    fn place(
        &self,
        bucket: &BucketInfo,
        version: &VersionId,
        size_hint: Option<u64>,
    ) -> Result<Chosen, ClientError> {
        let mut members = self.membership.live();
        // A draining node takes no new shards.
        members.retain(|m| !m.info.draining);
        let candidates: Vec<Candidate> = members
            .iter()
            .map(|m| Candidate {
                key: m.key,
                zone: m.info.zone.clone(),
                jurisdiction: m.info.jurisdiction.clone(),
                free_bytes: m.info.free_bytes(),
            })
            .collect();
        let params = bucket.params;
        let shard_count = params.shard_count();
        let k = u64::from(params.k());
        // Each holder keeps about its share of every segment (several shards when peers
        // are fewer than k + m).
        let shards_per_holder = shard_count.div_ceil(members.len().clamp(1, shard_count)) as u64;
        let shard_bytes = match size_hint {
            Some(size) => size.div_ceil(k) + SEAL_OVERHEAD_BYTES,
            None => self.codec.segment_bytes.div_ceil(k) + SEAL_OVERHEAD_BYTES,
        };
        let policy = PlacementPolicy {
            jurisdictions: bucket.jurisdictions.clone(),
            // Spread enough to survive one node loss whenever the cluster has the nodes:
            // a policy that leaves fewer eligible peers refuses the PUT instead.
            min_holders: (usize::from(params.m()) + 1).min(members.len()).max(1),
        };
        let target = placement_key(version.as_bytes());
        let placement = place_shards(
            &candidates,
            &policy,
            params,
            &target,
            shard_bytes * shards_per_holder,
        )?;
        let peers = |indices: &[usize]| indices.iter().map(|&i| members[i].peer).collect();
        Ok(Chosen {
            holders: peers(&placement.holders),
            spares: peers(&placement.spares),
        })
    }

    /// Encodes everything `reader` yields as version `version_id` of `bucket/key` and
    /// stores its shards on their holders: the manifest returned has its placement
    /// filled in, with what the finish hook said and how many holders were replaced on
    /// the way. Nothing is committed: the caller writes the manifest.
    pub(super) async fn store_version<R>(
        &self,
        bucket_info: &BucketInfo,
        bucket: &str,
        key: &str,
        version_id: VersionId,
        reader: R,
        options: PutObjectOptions,
    ) -> Result<(Manifest, BodyEnd, usize), ClientError>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.may(bucket, Rights::WRITE, "write")?;
        self.wait_for_holders(bucket_info.params.shard_count())
            .await;
        let chosen = self.place(bucket_info, &version_id, options.size_hint)?;
        let shards = NetShards::for_upload(self.net.clone(), chosen.holders, chosen.spares);
        let put = PutOptions {
            content_type: options.content_type,
            user_metadata: options.user_metadata,
            params: bucket_info.params,
            version_id: Some(version_id),
            finish: options.finish,
            size_hint: options.size_hint,
        };
        let encoded = encode_object(
            &self.codec,
            &self.master,
            &ObjectName::new(bucket, key),
            &put,
            reader,
            &shards,
        )
        .await?;
        let mut manifest = encoded.manifest;
        if matches!(manifest.body, Body::Segments(_)) {
            (manifest.holders, manifest.moves) = shards.placement();
        }
        Ok((manifest, encoded.end, shards.replaced_holders()))
    }

    /// Stores everything `reader` yields as the new version of `bucket/key`.
    /// Acknowledged (returns) only once every shard is fsynced on its holder and the
    /// manifest is on a write quorum of the bucket's replicas.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], [`ClientError::InvalidKey`],
    /// [`ClientError::Placement`] (too few eligible peers), a shard upload that failed on
    /// every candidate peer, a read failure, or a metadata failure. Nothing is committed
    /// then; shards already stored are collected as orphans.
    #[instrument(skip_all, fields(bucket, key))]
    pub async fn put_object<R>(
        &self,
        bucket: &str,
        key: &str,
        reader: R,
        options: PutObjectOptions,
    ) -> Result<ObjectInfo, ClientError>
    where
        R: AsyncRead + Unpin + Send,
    {
        validate_key(key)?;
        let index = index_key(bucket, key);
        // Independent quorum reads: one round trip instead of two.
        let (bucket_info, current) = tokio::try_join!(self.head_bucket(bucket), async {
            Ok(self.meta.get(&index).await?)
        })?;

        let version_id = new_version_id();
        let (manifest, end, moved) = self
            .store_version(&bucket_info, bucket, key, version_id, reader, options)
            .await?;
        let sealed_etag = match &end.etag {
            Some(etag) => seal_etag(&self.master, bucket, key, &version_id, etag)?,
            None => Bytes::new(),
        };
        let entry = ObjectEntry {
            version_id,
            size: manifest.size,
            etag: manifest.etag,
            modified_ms: now_ms(),
            content_type: manifest.content_type.clone(),
            sealed_etag,
        };
        let records = self.commit_records(bucket, key, &manifest, &entry, current.as_ref())?;
        self.meta.apply(bucket, records).await?;
        debug!(version = %version_id.short(), size = entry.size, moved, "object committed");
        Ok(ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id,
            size: entry.size,
            etag: end.etag.unwrap_or_else(|| hex::encode(entry.etag)),
            modified_ms: entry.modified_ms,
            content_type: entry.content_type,
            user_metadata: end.user_metadata,
            holders: distinct_holders(&manifest),
            node_failures_survived: manifest.node_failures_survived(),
            author: self.meta.author().to_owned(),
        })
    }

    /// What commits a new version of `bucket/key`, in one quorum write: its manifest,
    /// the index entry (versioned after `current`, the entry it replaces), and a garbage
    /// record for the replaced version.
    pub(super) fn commit_records(
        &self,
        bucket: &str,
        key: &str,
        manifest: &Manifest,
        entry: &ObjectEntry,
        current: Option<&Record<Bytes>>,
    ) -> Result<Vec<KeyedRecord>, ClientError> {
        let mut records: Vec<KeyedRecord> = vec![
            (
                manifest_key(bucket, &manifest.version_id),
                Record::live(
                    self.meta.version_after(None),
                    Bytes::from(manifest.encode()),
                ),
            ),
            (
                index_key(bucket, key),
                Record::live(
                    self.meta.version_after(current.map(|r| &r.version)),
                    entry.encode(),
                ),
            ),
        ];
        if let Some(old) = decode_entry(current)? {
            records.push(self.garbage(bucket, key, &old.version_id)?);
        }
        Ok(records)
    }

    pub(super) fn garbage(
        &self,
        bucket: &str,
        key: &str,
        version: &VersionId,
    ) -> Result<KeyedRecord, ClientError> {
        let grace_ms = u64::try_from(self.gc_grace.as_millis()).unwrap_or(u64::MAX);
        Ok((
            RecordKey {
                table: Table::Garbage,
                partition: bucket.to_owned(),
                sort: version.as_bytes().to_vec(),
            },
            Record::live(
                self.meta.version_after(None),
                GarbageEntry {
                    due_ms: now_ms().saturating_add(grace_ms),
                    key: key.to_owned(),
                    upload: false,
                }
                .encode(),
            ),
        ))
    }

    /// The latest version of `bucket/key`, its manifest opened with the master key.
    async fn open(&self, bucket: &str, key: &str) -> Result<CurrentVersion, ClientError> {
        validate_key(key)?;
        let index = index_key(bucket, key);
        let record = self.meta.get(&index).await?;
        // Read at quorum, so verified: this names its signer.
        let author = record
            .as_ref()
            .and_then(|r| self.meta.verifier().author_of(r).ok())
            .map(|author| author.describe())
            .unwrap_or_default();
        let Some(entry) = decode_entry(record.as_ref())? else {
            // Tell a missing bucket from a missing key.
            self.head_bucket(bucket).await?;
            return Err(ClientError::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        };
        let manifest_at = manifest_key(bucket, &entry.version_id);
        let record = self
            .meta
            .get(&manifest_at)
            .await?
            .filter(|r| !r.is_tombstone())
            .ok_or_else(|| ClientError::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })?;
        // A holder update (repair, rebalance) carries the manifest as its writer signed
        // it: where the shards were first put is a second place to look for them.
        let (_, origin) = record.origin(&manifest_at);
        let written = match origin.value.as_deref() {
            Some(bytes) if origin.version != record.version => Some(Manifest::decode(bytes)?),
            _ => None,
        };
        let manifest = Manifest::decode(record.value.as_deref().unwrap_or_default())?;
        if manifest.version_id != entry.version_id {
            return Err(CodecError::ManifestCorrupt {
                reason: "a replica answered another version's manifest".into(),
            }
            .into());
        }
        let opened =
            crate::codec::open_manifest(&self.master, &ObjectName::new(bucket, key), manifest)?;
        Ok(CurrentVersion {
            entry,
            opened,
            author,
            written,
        })
    }

    fn info(&self, bucket: &str, key: &str, current: &CurrentVersion) -> ObjectInfo {
        let CurrentVersion {
            entry,
            opened,
            author,
            ..
        } = current;
        let manifest = opened.manifest();
        ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: entry.version_id,
            size: manifest.size,
            etag: listed_etag(&self.master, bucket, key, entry),
            modified_ms: entry.modified_ms,
            content_type: manifest.content_type.clone(),
            user_metadata: BTreeMap::new(),
            holders: distinct_holders(manifest),
            node_failures_survived: manifest.node_failures_survived(),
            author: author.clone(),
        }
    }

    /// An object's metadata, user metadata included.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], [`ClientError::NoSuchKey`], a wrong master key
    /// ([`CodecError::WrongMasterKey`]), a corrupt manifest, or a metadata failure.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo, ClientError> {
        let current = self.open(bucket, key).await?;
        let mut info = self.info(bucket, key, &current);
        info.user_metadata = current.opened.user_metadata()?;
        Ok(info)
    }

    /// The manifest of an object's latest version, opened (so verified) with the master
    /// key: which peers hold which shards. What an operator or the testnet checks
    /// redundancy with.
    ///
    /// # Errors
    /// As [`Client::head_object`].
    pub async fn object_manifest(&self, bucket: &str, key: &str) -> Result<Manifest, ClientError> {
        let current = self.open(bucket, key).await?;
        Ok(current.opened.manifest().clone())
    }

    /// Reads an object, or the byte range `range` of it, as a stream.
    ///
    /// # Errors
    /// As [`Client::head_object`], and [`ClientError::InvalidArgument`] for a range that
    /// starts after the object's end. Shard failures beyond what the code tolerates
    /// arrive as an error item in the stream.
    #[instrument(skip_all, fields(bucket, key))]
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<GetObject, ClientError> {
        self.open_object(bucket, key).await?.read(range)
    }

    /// Opens the latest version of `bucket/key` (its index entry and manifest, read at
    /// quorum and authenticated) without reading any byte: what it is is known before
    /// the caller chooses a range or checks its conditions, at no further round trip.
    ///
    /// # Errors
    /// As [`Client::head_object`].
    pub async fn open_object(&self, bucket: &str, key: &str) -> Result<ObjectReader, ClientError> {
        let current = self.open(bucket, key).await?;
        let mut info = self.info(bucket, key, &current);
        info.user_metadata = current.opened.user_metadata()?;
        Ok(ObjectReader {
            client: self.clone(),
            info,
            opened: current.opened,
            written: current.written,
        })
    }

    /// The bytes `range` of an assembled object: each part it overlaps opened (its
    /// manifest read at quorum and authenticated for this object) and read in turn.
    fn read_parts(
        &self,
        bucket: &str,
        key: &str,
        parts: Vec<PartRef>,
        range: Range<u64>,
    ) -> BoxStream<'static, Result<Bytes, CodecError>> {
        let mut slices = Vec::new();
        let mut start = 0u64;
        for part in parts {
            let end = start + part.size;
            if end > range.start && start < range.end {
                let within = range.start.max(start) - start..range.end.min(end) - start;
                slices.push((part, within));
            }
            start = end;
        }
        let client = self.clone();
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        futures::stream::iter(slices)
            .then(move |(part, within)| {
                let client = client.clone();
                let (bucket, key) = (bucket.clone(), key.clone());
                async move { client.open_part(&bucket, &key, &part, within).await }
            })
            .try_flatten()
            .boxed()
    }

    /// One part of an assembled object, its manifest read at quorum and authenticated for
    /// this object (a replica cannot serve another part, or another object's).
    pub(super) async fn open_part_manifest(
        &self,
        bucket: &str,
        key: &str,
        part: &PartRef,
    ) -> Result<OpenedObject, CodecError> {
        let corrupt = |reason: String| CodecError::ManifestCorrupt { reason };
        let bytes = self
            .meta
            .get(&manifest_key(bucket, &part.version_id))
            .await
            .map_err(|e| corrupt(format!("reading part {}: {e}", part.version_id.short())))?
            .and_then(|r| r.value)
            .ok_or_else(|| corrupt(format!("part {} is missing", part.version_id.short())))?;
        let manifest = Manifest::decode(&bytes)?;
        if manifest.version_id != part.version_id || manifest.size != part.size {
            return Err(corrupt("a replica answered another part's manifest".into()));
        }
        if matches!(manifest.body, Body::Parts(_)) {
            return Err(corrupt("a part is itself assembled".into()));
        }
        crate::codec::open_manifest(&self.master, &ObjectName::new(bucket, key), manifest)
    }

    /// Opens one part of an assembled object and streams `within` of it.
    async fn open_part(
        &self,
        bucket: &str,
        key: &str,
        part: &PartRef,
        within: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, CodecError>>, CodecError> {
        let opened = self.open_part_manifest(bucket, key, part).await?;
        let source = Arc::new(NetShards::for_manifest(
            self.net.clone(),
            opened.manifest(),
            None,
        ));
        Ok(Arc::new(opened).read(&self.codec, Some(within), source))
    }

    /// Deletes an object (a tombstone; its shards go after the grace period). Deleting a
    /// missing key succeeds, as in S3.
    ///
    /// # Errors
    /// [`ClientError::NoSuchBucket`], or a metadata failure.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), ClientError> {
        validate_key(key)?;
        let index = index_key(bucket, key);
        let current = self.meta.get(&index).await?;
        let Some(entry) = decode_entry(current.as_ref())? else {
            self.head_bucket(bucket).await?;
            return Ok(());
        };
        let version = self
            .meta
            .version_after(current.as_ref().map(|r| &r.version));
        let records = vec![
            (index, Record::tombstone(version)),
            self.garbage(bucket, key, &entry.version_id)?,
        ];
        self.meta.apply(bucket, records).await?;
        Ok(())
    }

    /// Copies an object to `dst_bucket/dst_key` (re-encoded under the destination
    /// bucket's code, with the same content type and user metadata).
    ///
    /// # Errors
    /// As [`Client::get_object`] and [`Client::put_object`].
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<ObjectInfo, ClientError> {
        let source = self.get_object(src_bucket, src_key, None).await?;
        let options = PutObjectOptions {
            content_type: source.info.content_type.clone(),
            user_metadata: source.info.user_metadata.clone(),
            size_hint: Some(source.info.size),
            finish: None,
        };
        let reader = tokio_util::io::StreamReader::new(
            source
                .body
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        self.put_object(dst_bucket, dst_key, reader, options).await
    }

    /// Copies version `expected` of `src_bucket/src_key` to `dst_bucket/dst_key` without
    /// moving a byte: the new version reuses the source's shards (its data key wrapped
    /// again for the new name, `content_type` and `user_metadata` sealed for it, `etag`
    /// as its listing ETag). `Ok(None)` when that cannot be done and the caller should
    /// copy by re-encoding: the source is inline or assembled, its current version is not
    /// `expected`, the destination bucket has another erasure code, or a holder is not
    /// certified in a jurisdiction the destination allows.
    ///
    /// Before the copy is committed, a shared-seal record in the source's bucket tells the
    /// collectors to leave the shards to the collection of unreferenced shards.
    ///
    /// # Errors
    /// As [`Client::head_object`] and [`Client::put_object`]'s commit.
    #[allow(
        clippy::too_many_arguments,
        reason = "a copy names both ends and what it keeps"
    )]
    pub async fn copy_object_reusing(
        &self,
        src_bucket: &str,
        src_key: &str,
        expected: &VersionId,
        dst_bucket: &str,
        dst_key: &str,
        content_type: &str,
        user_metadata: &BTreeMap<String, String>,
        etag: &str,
    ) -> Result<Option<ObjectInfo>, ClientError> {
        validate_key(dst_key)?;
        let CurrentVersion { entry, opened, .. } = self.open(src_bucket, src_key).await?;
        if entry.version_id != *expected || !matches!(opened.manifest().body, Body::Segments(_)) {
            return Ok(None);
        }
        let index = index_key(dst_bucket, dst_key);
        let (dst_info, current) = tokio::try_join!(self.head_bucket(dst_bucket), async {
            Ok(self.meta.get(&index).await?)
        })?;
        let source = opened.manifest();
        if dst_info.params != source.params {
            return Ok(None);
        }
        if !dst_info.jurisdictions.is_empty() {
            let places: std::collections::HashMap<Vec<u8>, String> = self
                .membership
                .all()
                .into_iter()
                .map(|m| (m.peer.to_bytes(), m.info.jurisdiction))
                .collect();
            let allowed = source.distinct_holders().iter().all(|holder| {
                places
                    .get(holder.as_ref())
                    .is_some_and(|j| dst_info.jurisdictions.contains(j))
            });
            if !allowed {
                return Ok(None);
            }
        }
        let version_id = new_version_id();
        let manifest = opened.rewrap(
            &self.master,
            &ObjectName::new(dst_bucket, dst_key),
            version_id,
            content_type,
            user_metadata,
        )?;
        let seal = manifest.seal_id();
        let marker = (
            RecordKey {
                table: Table::Shared,
                partition: src_bucket.to_owned(),
                sort: seal.as_bytes().to_vec(),
            },
            Record::live(self.meta.version_after(None), Bytes::new()),
        );
        self.meta.apply(src_bucket, vec![marker]).await?;
        let entry = ObjectEntry {
            version_id,
            size: manifest.size,
            etag: manifest.etag,
            modified_ms: now_ms(),
            content_type: manifest.content_type.clone(),
            sealed_etag: seal_etag(&self.master, dst_bucket, dst_key, &version_id, etag)?,
        };
        let records =
            self.commit_records(dst_bucket, dst_key, &manifest, &entry, current.as_ref())?;
        self.meta.apply(dst_bucket, records).await?;
        Ok(Some(ObjectInfo {
            bucket: dst_bucket.to_owned(),
            key: dst_key.to_owned(),
            version_id,
            size: entry.size,
            etag: etag.to_owned(),
            modified_ms: entry.modified_ms,
            content_type: entry.content_type,
            user_metadata: user_metadata.clone(),
            holders: distinct_holders(&manifest),
            node_failures_survived: manifest.node_failures_survived(),
            author: self.meta.author().to_owned(),
        }))
    }

    /// Reads a whole object into memory (small objects, tests).
    ///
    /// # Errors
    /// As [`Client::get_object`], and any error item of the stream.
    pub async fn get_object_bytes(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ClientError> {
        let object = self.get_object(bucket, key, None).await?;
        let mut out = Vec::with_capacity(usize::try_from(object.info.size).unwrap_or(0));
        let mut body = object.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}
