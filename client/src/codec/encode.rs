//! The encode pipeline: read a segment → (blocking thread) seal in place, Reed-Solomon
//! parity, blake3 ids → hand the shards to the sink, in order. Up to `pipeline_depth`
//! segments are sealed and coded concurrently. Whole segments per core scale 1.62× on two
//! cores here (criterion, depth 2 vs 1); DESIGN.md found splitting one segment's stages
//! across threads did worse.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use andromede_proto::VersionId;
use andromede_proto::limits::{
    BUCKET_NAME_BYTES_MAX, CONTENT_TYPE_BYTES_MAX, MANIFEST_SHARD_IDS_MAX, OBJECT_KEY_BYTES_MAX,
};
use bytes::Bytes;
use chacha20poly1305::aead::{OsRng, rand_core::RngCore};
use futures::{TryStreamExt, stream};
use tokio::io::AsyncRead;
use tracing::{Instrument, debug, instrument};

use super::seal::{self, Purpose};
use super::segment::{read_segment, segment_buffer};
use super::{CodecConfig, EncodedShard, ObjectName, ShardSink, blocking, inline};
use crate::error::{BoxError, CodecError};
use crate::keys::{DataKey, MasterKey};
use andromede_cluster::manifest::{Body, Manifest, SegmentEntry, compute_etag};
use andromede_cluster::shard::erasure::{Erasure, ErasureParams};
use andromede_cluster::shard::hash::shard_id;

/// What a PUT says about the object besides its bytes.
#[derive(Clone)]
pub struct PutOptions {
    /// MIME type.
    pub content_type: String,
    /// User metadata (sealed; replicas never see it).
    pub user_metadata: BTreeMap<String, String>,
    /// The bucket's erasure code.
    pub params: ErasureParams,
    /// The version's id, when the caller chose it first (placement depends on it);
    /// `None` draws a fresh random one.
    pub version_id: Option<VersionId>,
    /// Called once the whole body is read and encoded, before the manifest is built.
    pub finish: Option<FinishHook>,
    /// The body's size when known: a small body is counted against the memory budget
    /// for what it is, not for a whole segment.
    pub size_hint: Option<u64>,
}

impl std::fmt::Debug for PutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOptions")
            .field("content_type", &self.content_type)
            .field("user_metadata", &self.user_metadata)
            .field("params", &self.params)
            .field("version_id", &self.version_id)
            .field("finish", &self.finish.is_some())
            .field("size_hint", &self.size_hint)
            .finish()
    }
}

impl Default for PutOptions {
    fn default() -> Self {
        Self {
            content_type: "application/octet-stream".into(),
            user_metadata: BTreeMap::new(),
            params: ErasureParams::DEFAULT,
            version_id: None,
            finish: None,
            size_hint: None,
        }
    }
}

/// What a writer learns only once it has seen the whole body: digests computed on the
/// way (an S3 gateway's MD5 and checksums), trailers that followed the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyEnd {
    /// Added to the user metadata (sealed with it).
    pub user_metadata: BTreeMap<String, String>,
    /// The ETag listings and heads show for this version (sealed in its index entry);
    /// `None`: the content fingerprint.
    pub etag: Option<String>,
}

/// Checks a body once it is read (a digest the request announced) and says what to keep
/// with it. An error refuses the object: nothing is committed
/// ([`CodecError::Refused`]).
pub type FinishHook = Arc<dyn Fn() -> Result<BodyEnd, BoxError> + Send + Sync>;

/// The result of encoding one object.
#[derive(Debug)]
pub struct Encoded {
    /// The manifest to commit; the version exists once it is committed.
    pub manifest: Manifest,
    /// Most segment buffers alive at once during the encode: the memory bound, observed.
    pub peak_buffered_segments: usize,
    /// What the finish hook returned (default without one).
    pub end: BodyEnd,
}

/// Encodes everything `reader` yields as a new version of `object`, sending shards to
/// `sink` and returning the manifest. Shards reach the sink in segment order; the
/// manifest is returned only after the sink accepted every segment.
///
/// # Errors
/// Invalid config or options, oversize names or metadata, a read failure, a sink failure,
/// or an object larger than one manifest can describe.
///
/// # Cancel safety
/// Dropping the future abandons the upload: shards already in the sink are orphans that
/// garbage collection removes, and no manifest exists.
#[instrument(skip_all, fields(bucket = %object.bucket, key = %object.key, version))]
pub async fn encode_object<R, S>(
    config: &CodecConfig,
    master: &MasterKey,
    object: &ObjectName,
    options: &PutOptions,
    mut reader: R,
    sink: &S,
) -> Result<Encoded, CodecError>
where
    R: AsyncRead + Unpin + Send,
    S: ShardSink,
{
    config.validate()?;
    check_names(object, options)?;
    let version_id = options.version_id.unwrap_or_else(new_version_id);
    tracing::Span::current().record("version", version_id.short());
    let data_key = DataKey::generate();

    let segment_bytes =
        usize::try_from(config.segment_bytes).map_err(|_| CodecError::InvalidParameter {
            field: "segment_bytes",
            value: config.segment_bytes,
            allowed: "fits in memory",
        })?;
    let gauge = Arc::new(BufferGauge {
        budget: config.memory.clone(),
        segment_memory: super::segment_memory(config.segment_bytes, options.params),
        ..BufferGauge::default()
    });
    let first_guard = match options.size_hint {
        // A body known to be smaller than a segment is counted for its size.
        Some(size) if size < config.segment_bytes => {
            gauge
                .acquire_bytes(super::segment_memory(size, options.params))
                .await
        }
        _ => gauge.acquire().await,
    };
    let mut first = segment_buffer(segment_bytes, options.params.k());
    let first_bytes = read_segment(&mut reader, &mut first, segment_bytes)
        .await
        .map_err(CodecError::Read)?;

    let (size, body) = if first_bytes == 0
        || (first_bytes as u64 <= config.inline_bytes_max && first_bytes < segment_bytes)
    {
        inline::seal_body(&data_key, object, &version_id, &mut first)?;
        (first_bytes as u64, Body::Inline(Bytes::from(first)))
    } else {
        let pipeline = SegmentPipeline {
            data_key: data_key.clone(),
            version_id,
            erasure: Arc::new(Erasure::new(options.params)?),
            segment_bytes,
            gauge: Arc::clone(&gauge),
        };
        let segments = pipeline
            .run(reader, (first, first_guard), config.pipeline_depth, sink)
            .await?;
        let size = segments.iter().map(|s| s.plain_bytes).sum();
        (size, Body::Segments(segments))
    };

    let end = match &options.finish {
        Some(finish) => finish().map_err(CodecError::Refused)?,
        None => BodyEnd::default(),
    };
    let mut user_metadata = options.user_metadata.clone();
    user_metadata.extend(end.user_metadata.clone());
    let sealed_user_metadata = Bytes::from(inline::seal_user_metadata(
        &data_key,
        object,
        &version_id,
        &user_metadata,
    )?);
    let etag = compute_etag(
        &version_id,
        None,
        size,
        options.params,
        config.segment_bytes,
        &body,
    );
    let aad = seal::object_aad(
        Purpose::WrappedKey,
        &object.bucket,
        &object.key,
        &version_id,
        &[
            &etag,
            options.content_type.as_bytes(),
            &sealed_user_metadata,
        ],
    );
    let manifest = Manifest {
        version_id,
        size,
        etag,
        content_type: options.content_type.clone(),
        master_key_id: master.id(),
        wrapped_key: Bytes::from(master.wrap(&data_key, &aad)?),
        sealed_user_metadata,
        params: options.params,
        segment_bytes: config.segment_bytes,
        holders: Vec::new(),
        moves: Vec::new(),
        body,
        sealed_as: None,
    };
    debug!(size, segments = manifest.segment_count(), "object encoded");
    Ok(Encoded {
        manifest,
        peak_buffered_segments: gauge.peak.load(Ordering::Relaxed),
        end,
    })
}

/// The manifest of an object assembled from versions stored before (a multipart
/// upload's parts, each its own manifest for the same object): a new data key seals the
/// user metadata, and the wrapped key binds the part list through the etag. No byte of
/// the parts is read or re-encoded.
///
/// # Errors
/// Oversize names or metadata, no parts, or too many.
pub fn assemble_manifest(
    master: &MasterKey,
    object: &ObjectName,
    version_id: VersionId,
    options: &PutOptions,
    segment_bytes: u64,
    parts: Vec<andromede_cluster::manifest::PartRef>,
) -> Result<Manifest, CodecError> {
    check_names(object, options)?;
    if parts.is_empty() || parts.len() as u64 > andromede_proto::limits::MANIFEST_PARTS_MAX {
        return Err(CodecError::InvalidParameter {
            field: "parts",
            value: parts.len() as u64,
            allowed: "1 to 10 000",
        });
    }
    let data_key = DataKey::generate();
    let sealed_user_metadata = Bytes::from(inline::seal_user_metadata(
        &data_key,
        object,
        &version_id,
        &options.user_metadata,
    )?);
    let size = parts.iter().map(|p| p.size).sum();
    let body = Body::Parts(parts);
    let etag = compute_etag(
        &version_id,
        None,
        size,
        options.params,
        segment_bytes,
        &body,
    );
    let aad = seal::object_aad(
        Purpose::WrappedKey,
        &object.bucket,
        &object.key,
        &version_id,
        &[
            &etag,
            options.content_type.as_bytes(),
            &sealed_user_metadata,
        ],
    );
    Ok(Manifest {
        version_id,
        size,
        etag,
        content_type: options.content_type.clone(),
        master_key_id: master.id(),
        wrapped_key: Bytes::from(master.wrap(&data_key, &aad)?),
        sealed_user_metadata,
        params: options.params,
        segment_bytes,
        holders: Vec::new(),
        moves: Vec::new(),
        body,
        sealed_as: None,
    })
}

/// A fresh random version id (128 bits: collisions are not a concern).
pub fn new_version_id() -> VersionId {
    let mut bytes = [0u8; VersionId::LEN];
    OsRng.fill_bytes(&mut bytes);
    VersionId(bytes)
}

fn check_names(object: &ObjectName, options: &PutOptions) -> Result<(), CodecError> {
    // User metadata is sealed once the body is read (a finish hook may add to it); its
    // size is checked before anything is read, and again when it is sealed.
    let metadata_bytes: usize = options
        .user_metadata
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if metadata_bytes as u64 > andromede_proto::limits::USER_METADATA_BYTES_MAX {
        return Err(CodecError::TooLarge {
            field: "user metadata",
            bytes: metadata_bytes as u64,
            bytes_max: andromede_proto::limits::USER_METADATA_BYTES_MAX,
        });
    }
    for (field, value, bytes_max) in [
        ("bucket name", &object.bucket, BUCKET_NAME_BYTES_MAX),
        ("object key", &object.key, OBJECT_KEY_BYTES_MAX),
        (
            "content type",
            &options.content_type,
            CONTENT_TYPE_BYTES_MAX,
        ),
    ] {
        if value.len() as u64 > bytes_max {
            return Err(CodecError::TooLarge {
                field,
                bytes: value.len() as u64,
                bytes_max,
            });
        }
    }
    Ok(())
}

/// Counts segment buffers alive, and the most ever alive at once; charges each to the
/// process's memory budget, if any, before it is allocated.
#[derive(Debug, Default)]
struct BufferGauge {
    alive: AtomicUsize,
    peak: AtomicUsize,
    budget: Option<super::MemoryBudget>,
    segment_memory: u64,
}

impl BufferGauge {
    async fn acquire(self: &Arc<Self>) -> BufferGuard {
        self.acquire_bytes(self.segment_memory).await
    }

    async fn acquire_bytes(self: &Arc<Self>, bytes: u64) -> BufferGuard {
        let permit = match &self.budget {
            Some(budget) => Some(budget.acquire(bytes).await),
            None => None,
        };
        let now = self.alive.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        BufferGuard(Arc::clone(self), permit)
    }
}

/// Held for as long as a segment's buffer (or its shards) is alive.
#[derive(Debug)]
struct BufferGuard(
    Arc<BufferGauge>,
    #[allow(dead_code, reason = "held for its drop")] Option<super::BudgetPermit>,
);

impl Drop for BufferGuard {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One sealed, coded segment on its way to the sink.
struct CodedSegment {
    plain_bytes: u64,
    shards: Vec<EncodedShard>,
    _guard: BufferGuard,
}

struct SegmentPipeline {
    data_key: DataKey,
    version_id: VersionId,
    erasure: Arc<Erasure>,
    segment_bytes: usize,
    gauge: Arc<BufferGauge>,
}

impl SegmentPipeline {
    async fn run<R, S>(
        &self,
        reader: R,
        first: (Vec<u8>, BufferGuard),
        depth: usize,
        sink: &S,
    ) -> Result<Vec<SegmentEntry>, CodecError>
    where
        R: AsyncRead + Unpin + Send,
        S: ShardSink,
    {
        let k = self.erasure.params().k();
        let shard_count = self.erasure.params().shard_count() as u64;
        let segment_bytes = self.segment_bytes;
        let gauge = Arc::clone(&self.gauge);
        // Yields (index, buffer) until the reader ends; `first` was read by the caller.
        let reads = stream::try_unfold(
            (reader, Some(first), 0u64, false),
            move |(mut reader, pending, index, ended)| {
                let gauge = Arc::clone(&gauge);
                async move {
                    let (buf, guard) = match pending {
                        Some(first) => first,
                        None if ended => return Ok::<_, CodecError>(None),
                        None => {
                            let guard = gauge.acquire().await;
                            let mut buf = segment_buffer(segment_bytes, k);
                            let n = read_segment(&mut reader, &mut buf, segment_bytes)
                                .await
                                .map_err(CodecError::Read)?;
                            if n == 0 {
                                return Ok(None);
                            }
                            (buf, guard)
                        }
                    };
                    let ended = buf.len() - seal::NONCE_BYTES < segment_bytes;
                    Ok(Some((
                        (index, buf, guard),
                        (reader, None, index + 1, ended),
                    )))
                }
            },
        );
        let coded = reads
            .map_ok(|(index, buf, guard)| {
                let key = self.data_key.clone();
                let version = self.version_id;
                let erasure = Arc::clone(&self.erasure);
                async move {
                    let (plain_bytes, shards) =
                        blocking(move || code_segment(&key, &version, index, buf, &erasure))
                            .await?;
                    Ok::<_, CodecError>((
                        index,
                        CodedSegment {
                            plain_bytes,
                            shards,
                            _guard: guard,
                        },
                    ))
                }
                .in_current_span()
            })
            .try_buffered(depth);
        let mut coded = std::pin::pin!(coded);

        let mut segments = Vec::new();
        while let Some((index, segment)) = coded.try_next().await? {
            if (index + 1) * shard_count > MANIFEST_SHARD_IDS_MAX {
                return Err(CodecError::ObjectTooLarge {
                    shard_ids_max: MANIFEST_SHARD_IDS_MAX,
                });
            }
            sink.put_segment(index, &segment.shards)
                .await
                .map_err(|error| CodecError::Sink {
                    segment: index,
                    error,
                })?;
            segments.push(SegmentEntry {
                plain_bytes: segment.plain_bytes,
                shard_ids: segment.shards.iter().map(|s| s.id).collect(),
            });
        }
        Ok(segments)
    }
}

/// Seals a segment in place, pads it to `k` equal data shards, computes parity, hashes
/// every shard. Data shards are slices of the sealed buffer (no copy).
fn code_segment(
    key: &DataKey,
    version: &VersionId,
    index: u64,
    mut buf: Vec<u8>,
    erasure: &Erasure,
) -> Result<(u64, Vec<EncodedShard>), CodecError> {
    let plain_bytes = (buf.len() - seal::NONCE_BYTES) as u64;
    seal::seal_in_place(key, &seal::segment_aad(version, index), &mut buf)?;
    let params = erasure.params();
    let shard_bytes = usize::try_from(params.shard_bytes(buf.len() as u64)).unwrap_or(0);
    buf.resize(shard_bytes * usize::from(params.k()), 0);
    let parity = erasure.encode_parity(&buf)?;
    let sealed = Bytes::from(buf);
    let shards = (0..usize::from(params.k()))
        .map(|i| sealed.slice(i * shard_bytes..(i + 1) * shard_bytes))
        .chain(parity.into_iter().map(Bytes::from))
        .map(|bytes| EncodedShard {
            id: shard_id(&bytes),
            bytes,
        })
        .collect();
    Ok((plain_bytes, shards))
}
