//! Opening a manifest and streaming an object (or a range of it) back out of its shards.
//!
//! Per segment: fetch the `k` data shards concurrently; verify each against its id (a
//! mismatch counts as missing); when all are valid, the sealed segment is simply their
//! concatenation and no Reed-Solomon decoding happens. Otherwise fetch as many parity
//! shards as are missing, again until `k` valid shards are in hand or none are left,
//! then reconstruct. Up to `pipeline_depth` segments are in flight, yielded in order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use andromede_proto::{ShardId, VersionId};
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, future};
use tracing::{Instrument, debug, warn};

use super::range::{SegmentSlice, plan};
use super::seal::{self, Purpose};
use super::{CodecConfig, ObjectName, ShardSource, blocking, inline};
use crate::error::CodecError;
use crate::keys::{DataKey, MasterKey};
use andromede_cluster::ErasureError;
use andromede_cluster::manifest::{Body, Manifest, SegmentEntry};
use andromede_cluster::shard::erasure::Erasure;
use andromede_cluster::shard::hash::verify_shard;

/// A manifest whose data key has been unwrapped: every field but the placement is now
/// authenticated for this object.
pub struct OpenedObject {
    object: ObjectName,
    manifest: Manifest,
    data_key: DataKey,
}

impl std::fmt::Debug for OpenedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedObject")
            .field("object", &self.object)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

/// Checks that `manifest` was written with `master` for `object` and unwraps its data key.
///
/// # Errors
/// [`CodecError::WrongMasterKey`] if another master key wrote it;
/// [`CodecError::ManifestCorrupt`] if the wrapped key does not authenticate for this
/// object (tampered, or another object's manifest).
pub fn open_manifest(
    master: &MasterKey,
    object: &ObjectName,
    manifest: Manifest,
) -> Result<OpenedObject, CodecError> {
    if manifest.master_key_id != master.id() {
        return Err(CodecError::WrongMasterKey {
            expected: hex::encode(manifest.master_key_id),
            loaded: hex::encode(master.id()),
        });
    }
    let aad = seal::object_aad(
        Purpose::WrappedKey,
        &object.bucket,
        &object.key,
        &manifest.version_id,
        &[
            &manifest.etag,
            manifest.content_type.as_bytes(),
            &manifest.sealed_user_metadata,
        ],
    );
    let data_key = master
        .unwrap_key(&manifest.wrapped_key, &aad)
        .ok_or_else(|| CodecError::ManifestCorrupt {
            reason: format!(
                "wrapped key does not authenticate for {}/{}",
                object.bucket, object.key
            ),
        })?;
    Ok(OpenedObject {
        object: object.clone(),
        manifest,
        data_key,
    })
}

impl OpenedObject {
    /// A new version `version_id` of `object` with this version's bytes, made without
    /// touching them: same segments, shards and holders, the same data key wrapped again
    /// for the new name (and `content_type`, `user_metadata` sealed for it). The new
    /// manifest says which version its segments are sealed under (`sealed_as`).
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] unless this version is segmented (inline bodies
    /// are bound to their name: copy those by re-encoding), oversize metadata.
    pub fn rewrap(
        &self,
        master: &MasterKey,
        object: &ObjectName,
        version_id: VersionId,
        content_type: &str,
        user_metadata: &BTreeMap<String, String>,
    ) -> Result<Manifest, CodecError> {
        if !matches!(self.manifest.body, Body::Segments(_)) {
            return Err(CodecError::InvalidParameter {
                field: "copy source",
                value: self.manifest.size,
                allowed: "a segmented version (inline and assembled ones are re-encoded)",
            });
        }
        let sealed_user_metadata = bytes::Bytes::from(inline::seal_user_metadata(
            &self.data_key,
            object,
            &version_id,
            user_metadata,
        )?);
        let sealed_as = self.manifest.seal_id();
        let etag = andromede_cluster::manifest::compute_etag(
            &version_id,
            Some(&sealed_as),
            self.manifest.size,
            self.manifest.params,
            self.manifest.segment_bytes,
            &self.manifest.body,
        );
        let aad = seal::object_aad(
            Purpose::WrappedKey,
            &object.bucket,
            &object.key,
            &version_id,
            &[&etag, content_type.as_bytes(), &sealed_user_metadata],
        );
        Ok(Manifest {
            version_id,
            size: self.manifest.size,
            etag,
            content_type: content_type.to_owned(),
            master_key_id: master.id(),
            wrapped_key: bytes::Bytes::from(master.wrap(&self.data_key, &aad)?),
            sealed_user_metadata,
            params: self.manifest.params,
            segment_bytes: self.manifest.segment_bytes,
            holders: self.manifest.holders.clone(),
            moves: self.manifest.moves.clone(),
            body: self.manifest.body.clone(),
            sealed_as: Some(sealed_as),
        })
    }

    /// The authenticated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The user metadata given at upload.
    ///
    /// # Errors
    /// [`CodecError::ManifestCorrupt`] if it does not authenticate.
    pub fn user_metadata(&self) -> Result<BTreeMap<String, String>, CodecError> {
        inline::open_user_metadata(
            &self.data_key,
            &self.object,
            &self.manifest.version_id,
            &self.manifest.sealed_user_metadata,
        )
    }

    /// Streams the plaintext of `range` (the whole object if `None`; clamped to the object)
    /// as it is decoded. Only the segments the range touches are fetched.
    ///
    /// Every item is verified plaintext; an error item ends the stream. Never wrong bytes.
    pub fn read<S: ShardSource>(
        self: Arc<Self>,
        config: &CodecConfig,
        range: Option<Range<u64>>,
        source: Arc<S>,
    ) -> BoxStream<'static, Result<Bytes, CodecError>> {
        let range = range.unwrap_or(0..self.manifest.size);
        if let Body::Inline(sealed) = &self.manifest.body {
            let opened = inline::open_body(
                &self.data_key,
                &self.object,
                &self.manifest.version_id,
                sealed,
            );
            let end = range.end.min(self.manifest.size);
            let start = range.start.min(end);
            let result = opened.map(|plain| {
                // Both bounds are clamped to the inline size, at most 64 KiB.
                let (start, end) = (
                    usize::try_from(start).unwrap_or(0),
                    usize::try_from(end).unwrap_or(0),
                );
                Bytes::from(plain).slice(start..end)
            });
            return stream::once(future::ready(result))
                .filter(|item| future::ready(!matches!(item, Ok(b) if b.is_empty())))
                .boxed();
        }
        if matches!(self.manifest.body, Body::Parts(_)) {
            let error = CodecError::ManifestCorrupt {
                reason: "an assembled object is read part by part, through its parts' manifests"
                    .into(),
            };
            return stream::once(future::ready(Err(error))).boxed();
        }
        let depth = config.pipeline_depth.max(1);
        let span = tracing::Span::current();
        let budget = config.memory.clone();
        stream::iter(plan(self.manifest.size, self.manifest.segment_bytes, range))
            .map(move |slice| {
                let (object, source, budget) =
                    (Arc::clone(&self), Arc::clone(&source), budget.clone());
                async move {
                    // Counted before the segment's shards are fetched, for its own size
                    // (the last segment is shorter).
                    let _permit = match &budget {
                        Some(budget) => {
                            let plain = object
                                .manifest
                                .size
                                .saturating_sub(slice.index * object.manifest.segment_bytes);
                            let memory = super::segment_memory(
                                plain.min(object.manifest.segment_bytes),
                                object.manifest.params,
                            );
                            Some(budget.acquire(memory).await)
                        }
                        None => None,
                    };
                    decode_slice(object, slice, source).await
                }
                .instrument(span.clone())
            })
            .buffered(depth)
            .scan(false, |failed, item| {
                // Stop after the first error: later segments would be out of context.
                if *failed {
                    return future::ready(None);
                }
                *failed = item.is_err();
                future::ready(Some(item))
            })
            .boxed()
    }
}

async fn decode_slice<S: ShardSource>(
    object: Arc<OpenedObject>,
    slice: SegmentSlice,
    source: Arc<S>,
) -> Result<Bytes, CodecError> {
    let plain = decode_segment(object, slice.index, source).await?;
    if slice.within.end > plain.len() {
        return Err(CodecError::ShardSize {
            bytes: plain.len() as u64,
            expected: slice.within.end as u64,
        });
    }
    Ok(plain.slice(slice.within))
}

/// Recovers and opens one whole segment.
async fn decode_segment<S: ShardSource>(
    object: Arc<OpenedObject>,
    index: u64,
    source: Arc<S>,
) -> Result<Bytes, CodecError> {
    let Body::Segments(segments) = &object.manifest.body else {
        return Err(CodecError::ManifestCorrupt {
            reason: "segment read of an inline object".into(),
        });
    };
    let entry = usize::try_from(index)
        .ok()
        .and_then(|i| segments.get(i))
        .cloned()
        .ok_or_else(|| CodecError::ManifestCorrupt {
            reason: format!("segment {index} is not in the manifest"),
        })?;
    let params = object.manifest.params;
    let k = usize::from(params.k());
    let shard_bytes = usize::try_from(params.shard_bytes(entry.sealed_bytes())).unwrap_or(0);
    let entry = Arc::new(entry);

    let mut shards: Vec<Option<Bytes>> = vec![None; params.shard_count()];
    let mut next = 0usize;
    loop {
        let valid = shards.iter().filter(|s| s.is_some()).count();
        let wanted = (k - valid).min(shards.len() - next);
        if valid == k || wanted == 0 {
            break;
        }
        let batch: Vec<usize> = (next..next + wanted).collect();
        next += wanted;
        let fetched = fetch_verified(&source, index, &entry, &batch, shard_bytes).await?;
        for (i, shard) in batch.into_iter().zip(fetched) {
            shards[i] = shard;
        }
    }
    let valid = shards.iter().filter(|s| s.is_some()).count();
    if valid < k {
        return Err(CodecError::SegmentUnrecoverable {
            segment: index,
            valid: u8::try_from(valid).unwrap_or(u8::MAX),
            needed: params.k(),
        });
    }
    let erasure_params = params;
    blocking(move || {
        let sealed = assemble(shards, shard_bytes, &entry, erasure_params, index)?;
        open_segment(&object, index, sealed)
    })
    .await
}

/// Fetches the shards at `indices` concurrently and verifies them against their ids on a
/// blocking thread; a failed fetch or a mismatch yields `None`.
async fn fetch_verified<S: ShardSource>(
    source: &Arc<S>,
    segment: u64,
    entry: &Arc<SegmentEntry>,
    indices: &[usize],
    shard_bytes: usize,
) -> Result<Vec<Option<Bytes>>, CodecError> {
    let fetches = indices.iter().map(|&i| {
        let id = entry.shard_ids[i];
        // Shard indices are below k + m <= 255 by manifest validation.
        let shard_index = u8::try_from(i).unwrap_or(u8::MAX);
        async move { (id, source.fetch(segment, shard_index, id).await) }
    });
    let results: Vec<(ShardId, Result<Bytes, _>)> = future::join_all(fetches).await;
    blocking(move || {
        Ok(results
            .into_iter()
            .map(|(id, result)| match result {
                Ok(bytes) if bytes.len() == shard_bytes && verify_shard(&id, &bytes) => Some(bytes),
                Ok(bytes) => {
                    warn!(segment, shard = %id.short(), bytes = bytes.len(), "shard failed verification; treating it as missing");
                    None
                }
                Err(error) => {
                    debug!(segment, shard = %id.short(), %error, "shard fetch failed");
                    None
                }
            })
            .collect())
    })
    .await
}

/// The sealed segment from `k` or more verified shards: concatenation when every data
/// shard is present, Reed-Solomon reconstruction otherwise.
fn assemble(
    shards: Vec<Option<Bytes>>,
    shard_bytes: usize,
    entry: &SegmentEntry,
    params: super::ErasureParams,
    index: u64,
) -> Result<BytesMut, CodecError> {
    let k = usize::from(params.k());
    let sealed_bytes = usize::try_from(entry.sealed_bytes()).unwrap_or(usize::MAX);
    let mut sealed = BytesMut::with_capacity(shard_bytes * k);
    if shards.iter().take(k).all(Option::is_some) {
        for shard in shards.iter().take(k).flatten() {
            sealed.extend_from_slice(shard);
        }
    } else {
        let mut owned: Vec<Option<Vec<u8>>> =
            shards.into_iter().map(|s| s.map(|b| b.to_vec())).collect();
        Erasure::new(params)?
            .reconstruct_data(&mut owned, shard_bytes)
            .map_err(|e| match e {
                ErasureError::SegmentUnrecoverable { valid, needed, .. } => {
                    CodecError::SegmentUnrecoverable {
                        segment: index,
                        valid,
                        needed,
                    }
                }
                other => other.into(),
            })?;
        for shard in owned.iter().take(k).flatten() {
            sealed.extend_from_slice(shard);
        }
    }
    if sealed.len() < sealed_bytes {
        return Err(CodecError::ShardSize {
            bytes: sealed.len() as u64,
            expected: sealed_bytes as u64,
        });
    }
    sealed.truncate(sealed_bytes);
    Ok(sealed)
}

fn open_segment(
    object: &OpenedObject,
    index: u64,
    mut sealed: BytesMut,
) -> Result<Bytes, CodecError> {
    let aad = seal::segment_aad(&object.manifest.seal_id(), index);
    let plain = seal::open_in_place(&object.data_key, &aad, &mut sealed)
        .ok_or(CodecError::SegmentAuthentication { segment: index })?;
    Ok(sealed.freeze().slice(plain))
}
