//! The domain manifest: a validated, self-consistent description of one object version.
//!
//! Manifests come from metadata replicas, which are untrusted, so [`Manifest::decode`]
//! checks every structural rule (format version, id lengths, `k`/`m`, segment lengths that
//! add up to the size, `k + m` shard ids per segment, limits) and recomputes the etag, which
//! commits to all of them. The etag is in turn bound into the wrapped data key's associated
//! data, so once the key unwraps (see `andromede_client::open_manifest`) every field except
//! the placement is authenticated; shard ids then make every shard self-verifying.

use andromede_proto::limits::{
    CONTENT_TYPE_BYTES_MAX, INLINE_BYTES_MAX, MANIFEST_BYTES_MAX, MANIFEST_FORMAT_VERSION,
    MANIFEST_MOVES_MAX, MANIFEST_PARTS_MAX, MANIFEST_SHARD_IDS_MAX, SEAL_OVERHEAD_BYTES,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, USER_METADATA_BYTES_MAX,
};
use andromede_proto::{Message, RepeatedLimit, ShardId, VersionId, decode_bounded_counted, pb};
use bytes::Bytes;

use crate::error::ManifestError;
use crate::shard::erasure::ErasureParams;
use andromede_proto::limits::{MASTER_KEY_ID_BYTES, WRAPPED_KEY_BYTES};

/// Longest holder (libp2p peer id) accepted in a manifest.
const HOLDER_BYTES_MAX: usize = 128;

/// One object version, as committed to the metadata replicas.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Names this version; bound into every seal.
    pub version_id: VersionId,
    /// Plaintext bytes.
    pub size: u64,
    /// Commits to the version id, size, geometry and every shard id (or inline body).
    pub etag: [u8; 32],
    /// MIME type given at upload.
    pub content_type: String,
    /// Id of the master key that wrapped the data key.
    pub master_key_id: [u8; MASTER_KEY_ID_BYTES],
    /// The data key sealed under the master key.
    pub wrapped_key: Bytes,
    /// Sealed user metadata; empty when there is none.
    pub sealed_user_metadata: Bytes,
    /// Erasure-code parameters.
    pub params: ErasureParams,
    /// Plaintext bytes per segment.
    pub segment_bytes: u64,
    /// Placement: holder `j` keeps shard `j` of every segment. Not covered by the etag,
    /// because repair may move shards; shard ids make that safe.
    pub holders: Vec<Bytes>,
    /// Shards held elsewhere than `holders` says, from a segment on; later moves win.
    pub moves: Vec<HolderMove>,
    /// Where the bytes are.
    pub body: Body,
    /// The version whose shards this one reuses (a copy inside the cluster): its
    /// segments are sealed under that version's id. `None`: its own.
    pub sealed_as: Option<VersionId>,
}

/// From segment `from_segment` on, shard `shard_index` is held by `holder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderMove {
    /// First segment concerned.
    pub from_segment: u64,
    /// Which shard of each segment.
    pub shard_index: u8,
    /// The peer (libp2p peer id bytes) holding it.
    pub holder: Bytes,
}

/// Where an object's bytes live.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// Sealed in the manifest itself (small objects).
    Inline(Bytes),
    /// In shards, segment by segment.
    Segments(Vec<SegmentEntry>),
    /// In other versions, one after the other (a multipart upload's parts): each its own
    /// manifest, in the same bucket, for the same object key.
    Parts(Vec<PartRef>),
}

/// One part of an assembled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRef {
    /// The part's own version (its manifest's key).
    pub version_id: VersionId,
    /// Its plaintext bytes.
    pub size: u64,
}

/// One segment: its plaintext length and its `k + m` shard ids, data shards first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Plaintext bytes in this segment.
    pub plain_bytes: u64,
    /// `k + m` shard ids.
    pub shard_ids: Vec<ShardId>,
}

impl SegmentEntry {
    /// Length of the sealed segment (plaintext + nonce + tag).
    pub fn sealed_bytes(&self) -> u64 {
        self.plain_bytes + SEAL_OVERHEAD_BYTES
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(sealed) => write!(f, "Inline({} sealed bytes)", sealed.len()),
            Self::Segments(segments) => write!(f, "Segments({})", segments.len()),
            Self::Parts(parts) => write!(f, "Parts({})", parts.len()),
        }
    }
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (body, pieces) = match &self.body {
            Body::Inline(sealed) => ("inline", sealed.len()),
            Body::Segments(segments) => ("segments", segments.len()),
            Body::Parts(parts) => ("parts", parts.len()),
        };
        f.debug_struct("Manifest")
            .field("version_id", &self.version_id)
            .field("size", &self.size)
            .field("params", &self.params)
            .field("segment_bytes", &self.segment_bytes)
            .field("body", &body)
            .field("pieces", &pieces)
            .field("holders", &self.holders.len())
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// The peer holding shard `shard_index` of `segment`: the last move that covers it,
    /// else the placement's holder.
    pub fn holder(&self, segment: u64, shard_index: u8) -> Option<&Bytes> {
        self.moves
            .iter()
            .rev()
            .find(|m| m.shard_index == shard_index && m.from_segment <= segment)
            .map(|m| &m.holder)
            .or_else(|| self.holders.get(usize::from(shard_index)))
    }

    /// Who holds each shard, `[segment][shard index]` (empty for inline objects).
    pub fn holder_matrix(&self) -> Vec<Vec<Option<Bytes>>> {
        let shard_count = u8::try_from(self.params.shard_count()).unwrap_or(u8::MAX);
        (0..self.segment_count())
            .map(|s| {
                (0..shard_count)
                    .map(|j| self.holder(s, j).cloned())
                    .collect()
            })
            .collect()
    }

    /// How many node failures every segment of this version survives as it is placed
    /// (`None` for an inline object, which lives in its manifest's replicas).
    pub fn node_failures_survived(&self) -> Option<u64> {
        if matches!(self.body, Body::Inline(_)) {
            return None;
        }
        let k = usize::from(self.params.k());
        let worst = self
            .holder_matrix()
            .into_iter()
            .map(|row| crate::placement::node_failures_survived(row.into_iter().flatten(), k))
            .min()
            .unwrap_or(0);
        Some(u64::try_from(worst).unwrap_or(0))
    }

    /// Every peer that holds at least one shard of this version, each once, sorted.
    pub fn distinct_holders(&self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self
            .holder_matrix()
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Rewrites the placement so that shard `j` of segment `s` is held by `matrix[s][j]`,
    /// with as few moves as that takes (repair moves shards; the etag does not cover the
    /// placement, shard ids keep it safe).
    ///
    /// # Errors
    /// [`ManifestError::Corrupt`] if the matrix does not have one row per segment of
    /// `k + m` holders, or needs more than `MANIFEST_MOVES_MAX` moves.
    pub fn set_holders(&mut self, matrix: &[Vec<Bytes>]) -> Result<(), ManifestError> {
        let shard_count = self.params.shard_count();
        if matrix.len() as u64 != self.segment_count()
            || matrix.iter().any(|row| row.len() != shard_count)
        {
            return Err(corrupt("holder matrix does not match the segments"));
        }
        let Some(first) = matrix.first() else {
            return Ok(());
        };
        let mut moves = Vec::new();
        for (segment, pair) in (1u64..).zip(matrix.windows(2)) {
            for (j, (before, now)) in (0u8..).zip(pair[0].iter().zip(&pair[1])) {
                if before != now {
                    moves.push(HolderMove {
                        from_segment: segment,
                        shard_index: j,
                        holder: now.clone(),
                    });
                }
            }
        }
        if moves.len() as u64 > MANIFEST_MOVES_MAX {
            return Err(corrupt("the new placement needs too many holder moves"));
        }
        self.holders = first.clone();
        self.moves = moves;
        Ok(())
    }

    /// Decodes and validates a manifest received from a replica or read from disk.
    ///
    /// # Errors
    /// [`ManifestError::Decode`] for oversize or malformed protobuf,
    /// [`ManifestError::UnsupportedVersion`], or [`ManifestError::Corrupt`] when a
    /// rule is broken or the etag does not match.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let limit = usize::try_from(MANIFEST_BYTES_MAX).unwrap_or(usize::MAX);
        // Counted on the wire before anything is built.
        const LIMITS: &[RepeatedLimit] = &[
            RepeatedLimit {
                path: &[13, 1],
                count_max: MANIFEST_SHARD_IDS_MAX,
                what: "segments in a manifest",
            },
            RepeatedLimit {
                path: &[13, 1, 2],
                count_max: MANIFEST_SHARD_IDS_MAX,
                what: "shard ids in a manifest",
            },
            RepeatedLimit {
                path: &[11],
                count_max: MANIFEST_SHARD_IDS_MAX,
                what: "holders in a manifest",
            },
            RepeatedLimit {
                path: &[14],
                count_max: MANIFEST_MOVES_MAX,
                what: "holder moves in a manifest",
            },
            RepeatedLimit {
                path: &[15, 1],
                count_max: MANIFEST_PARTS_MAX,
                what: "parts in a manifest",
            },
        ];
        let pb: pb::Manifest = decode_bounded_counted(bytes, limit, LIMITS)?;
        Self::try_from(pb)
    }

    /// Encodes to the persisted protobuf form.
    pub fn encode(&self) -> Vec<u8> {
        pb::Manifest::from(self).encode_to_vec()
    }

    /// The version id the segments are sealed under (bound into each segment's seal).
    pub fn seal_id(&self) -> VersionId {
        self.sealed_as.unwrap_or(self.version_id)
    }

    /// Number of segments (0 for inline and assembled objects).
    pub fn segment_count(&self) -> u64 {
        match &self.body {
            Body::Inline(_) | Body::Parts(_) => 0,
            Body::Segments(segments) => segments.len() as u64,
        }
    }

    /// Whether `other` says the same as this manifest but for where its shards are
    /// (holders and moves): what a node may change in a client-signed manifest.
    pub fn same_content(&self, other: &Self) -> bool {
        // Every field named, so that a new one must be placed on one side or the other.
        let Self {
            version_id,
            size,
            etag,
            content_type,
            master_key_id,
            wrapped_key,
            sealed_user_metadata,
            params,
            segment_bytes,
            holders: _,
            moves: _,
            body,
            sealed_as,
        } = self;
        *version_id == other.version_id
            && *size == other.size
            && *etag == other.etag
            && *content_type == other.content_type
            && *master_key_id == other.master_key_id
            && *wrapped_key == other.wrapped_key
            && *sealed_user_metadata == other.sealed_user_metadata
            && *params == other.params
            && *segment_bytes == other.segment_bytes
            && *body == other.body
            && *sealed_as == other.sealed_as
    }

    /// The parts of an assembled object (empty for others).
    pub fn parts(&self) -> &[PartRef] {
        match &self.body {
            Body::Parts(parts) => parts,
            _ => &[],
        }
    }
}

/// The etag of a version: a blake3 hash (own derivation context) over everything that
/// determines its bytes. Costs no pass over the plaintext.
pub fn compute_etag(
    version_id: &VersionId,
    sealed_as: Option<&VersionId>,
    size: u64,
    params: ErasureParams,
    segment_bytes: u64,
    body: &Body,
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("andromede etag v1");
    hasher.update(version_id.as_bytes());
    // Only when present, so that the etags of versions sealed as themselves are unchanged.
    if let Some(sealed_as) = sealed_as {
        hasher.update(b"sealed-as");
        hasher.update(sealed_as.as_bytes());
    }
    hasher.update(&size.to_le_bytes());
    hasher.update(&[params.k(), params.m()]);
    hasher.update(&segment_bytes.to_le_bytes());
    match body {
        Body::Inline(sealed) => {
            hasher.update(b"inline");
            hasher.update(sealed);
        }
        Body::Segments(segments) => {
            hasher.update(b"segments");
            for segment in segments {
                hasher.update(&segment.plain_bytes.to_le_bytes());
                for id in &segment.shard_ids {
                    hasher.update(id.as_bytes());
                }
            }
        }
        Body::Parts(parts) => {
            hasher.update(b"parts");
            for part in parts {
                hasher.update(part.version_id.as_bytes());
                hasher.update(&part.size.to_le_bytes());
            }
        }
    }
    *hasher.finalize().as_bytes()
}

fn corrupt(reason: impl Into<String>) -> ManifestError {
    ManifestError::Corrupt {
        reason: reason.into(),
    }
}

fn fixed<const N: usize>(bytes: &[u8], field: &str) -> Result<[u8; N], ManifestError> {
    <[u8; N]>::try_from(bytes)
        .map_err(|_| corrupt(format!("{field} has {} bytes, {N} expected", bytes.len())))
}

impl TryFrom<pb::Manifest> for Manifest {
    type Error = ManifestError;

    fn try_from(pb: pb::Manifest) -> Result<Self, Self::Error> {
        if pb.format_version != MANIFEST_FORMAT_VERSION {
            return Err(ManifestError::UnsupportedVersion {
                found: pb.format_version,
                supported: MANIFEST_FORMAT_VERSION,
            });
        }
        let version_id = VersionId(fixed(&pb.version_id, "version id")?);
        let etag = fixed(&pb.etag, "etag")?;
        let params = ErasureParams::new(pb.k, pb.m).map_err(|e| corrupt(e.to_string()))?;
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&pb.segment_bytes) {
            return Err(corrupt(format!(
                "segment size {} out of range",
                pb.segment_bytes
            )));
        }
        if pb.content_type.len() as u64 > CONTENT_TYPE_BYTES_MAX {
            return Err(corrupt("content type too long"));
        }
        let wrapped = pb.wrapped_key.ok_or_else(|| corrupt("no wrapped key"))?;
        let master_key_id = fixed(&wrapped.master_key_id, "master key id")?;
        if wrapped.sealed_key.len() != WRAPPED_KEY_BYTES {
            return Err(corrupt("wrapped key has the wrong length"));
        }
        if pb.sealed_user_metadata.len() as u64 > USER_METADATA_BYTES_MAX + SEAL_OVERHEAD_BYTES {
            return Err(corrupt("user metadata too long"));
        }
        if pb.holders.len() > params.shard_count()
            || pb
                .holders
                .iter()
                .any(|h| h.is_empty() || h.len() > HOLDER_BYTES_MAX)
        {
            return Err(corrupt("invalid holder list"));
        }
        if pb.moves.len() as u64 > MANIFEST_MOVES_MAX {
            return Err(corrupt("too many holder moves"));
        }
        let moves = pb
            .moves
            .into_iter()
            .map(|m| {
                let shard_index = u8::try_from(m.shard_index)
                    .ok()
                    .filter(|&j| usize::from(j) < params.shard_count())
                    .ok_or_else(|| corrupt("holder move of a shard index out of range"))?;
                if m.holder.is_empty() || m.holder.len() > HOLDER_BYTES_MAX {
                    return Err(corrupt("holder move with an invalid holder"));
                }
                Ok(HolderMove {
                    from_segment: m.from_segment,
                    shard_index,
                    holder: m.holder,
                })
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let body = match pb.body.ok_or_else(|| corrupt("no body"))? {
            pb::manifest::Body::Inline(inline) => {
                if pb.size > INLINE_BYTES_MAX
                    || inline.sealed.len() as u64 != pb.size + SEAL_OVERHEAD_BYTES
                {
                    return Err(corrupt("inline body length does not match the size"));
                }
                Body::Inline(inline.sealed)
            }
            pb::manifest::Body::Segments(list) => Body::Segments(validate_segments(
                list.segments,
                pb.size,
                pb.segment_bytes,
                params,
            )?),
            pb::manifest::Body::Parts(list) => {
                if !pb.holders.is_empty() || !moves.is_empty() {
                    return Err(corrupt("an assembled object names shard holders"));
                }
                Body::Parts(validate_parts(list.parts, pb.size)?)
            }
        };
        let sealed_as = if pb.sealed_as.is_empty() {
            None
        } else {
            if !matches!(body, Body::Segments(_)) {
                return Err(corrupt("only a segmented version reuses another's shards"));
            }
            Some(VersionId(fixed(&pb.sealed_as, "sealed-as version id")?))
        };
        if compute_etag(
            &version_id,
            sealed_as.as_ref(),
            pb.size,
            params,
            pb.segment_bytes,
            &body,
        ) != etag
        {
            return Err(corrupt("etag does not match the manifest's contents"));
        }
        Ok(Self {
            version_id,
            size: pb.size,
            etag,
            content_type: pb.content_type,
            master_key_id,
            wrapped_key: wrapped.sealed_key,
            sealed_user_metadata: pb.sealed_user_metadata,
            params,
            segment_bytes: pb.segment_bytes,
            holders: pb.holders,
            moves,
            body,
            sealed_as,
        })
    }
}

fn validate_parts(parts: Vec<pb::PartRef>, size: u64) -> Result<Vec<PartRef>, ManifestError> {
    if parts.is_empty() || parts.len() as u64 > MANIFEST_PARTS_MAX {
        return Err(corrupt(format!(
            "an assembled object has 1 to {MANIFEST_PARTS_MAX} parts, not {}",
            parts.len()
        )));
    }
    let parts = parts
        .into_iter()
        .map(|p| {
            Ok(PartRef {
                version_id: VersionId(fixed(&p.version_id, "part version id")?),
                size: p.size,
            })
        })
        .collect::<Result<Vec<_>, ManifestError>>()?;
    let total = parts
        .iter()
        .try_fold(0u64, |sum, p| sum.checked_add(p.size))
        .ok_or_else(|| corrupt("part sizes overflow"))?;
    if total != size {
        return Err(corrupt(format!(
            "parts add up to {total} bytes, the manifest says {size}"
        )));
    }
    Ok(parts)
}

fn validate_segments(
    segments: Vec<pb::Segment>,
    size: u64,
    segment_bytes: u64,
    params: ErasureParams,
) -> Result<Vec<SegmentEntry>, ManifestError> {
    let expected_count = size.div_ceil(segment_bytes);
    if size == 0 || segments.len() as u64 != expected_count {
        return Err(corrupt(format!(
            "{} segments listed, {expected_count} expected for {size} bytes",
            segments.len()
        )));
    }
    if expected_count * params.shard_count() as u64 > MANIFEST_SHARD_IDS_MAX {
        return Err(corrupt("too many shard ids"));
    }
    let last_bytes = size - (expected_count - 1) * segment_bytes;
    segments
        .into_iter()
        .enumerate()
        .map(|(index, segment)| {
            let expected = if index as u64 + 1 == expected_count {
                last_bytes
            } else {
                segment_bytes
            };
            if segment.plain_bytes != expected {
                return Err(corrupt(format!(
                    "segment {index} has {} bytes, {expected} expected",
                    segment.plain_bytes
                )));
            }
            if segment.shard_ids.len() != params.shard_count() {
                return Err(corrupt(format!(
                    "segment {index} lists {} shards, {} expected",
                    segment.shard_ids.len(),
                    params.shard_count()
                )));
            }
            let shard_ids = segment
                .shard_ids
                .iter()
                .map(|id| ShardId::try_from(id.as_ref()).map_err(|e| corrupt(e.to_string())))
                .collect::<Result<_, _>>()?;
            Ok(SegmentEntry {
                plain_bytes: segment.plain_bytes,
                shard_ids,
            })
        })
        .collect()
}

impl From<&Manifest> for pb::Manifest {
    fn from(m: &Manifest) -> Self {
        let body = match &m.body {
            Body::Inline(sealed) => pb::manifest::Body::Inline(pb::InlineBody {
                sealed: sealed.clone(),
            }),
            Body::Segments(segments) => pb::manifest::Body::Segments(pb::SegmentList {
                segments: segments
                    .iter()
                    .map(|s| pb::Segment {
                        plain_bytes: s.plain_bytes,
                        shard_ids: s
                            .shard_ids
                            .iter()
                            .map(|id| Bytes::copy_from_slice(id.as_bytes()))
                            .collect(),
                    })
                    .collect(),
            }),
            Body::Parts(parts) => pb::manifest::Body::Parts(pb::PartList {
                parts: parts
                    .iter()
                    .map(|p| pb::PartRef {
                        version_id: Bytes::copy_from_slice(p.version_id.as_bytes()),
                        size: p.size,
                    })
                    .collect(),
            }),
        };
        pb::Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            version_id: Bytes::copy_from_slice(m.version_id.as_bytes()),
            size: m.size,
            etag: Bytes::copy_from_slice(&m.etag),
            content_type: m.content_type.clone(),
            wrapped_key: Some(pb::WrappedKey {
                master_key_id: Bytes::copy_from_slice(&m.master_key_id),
                sealed_key: m.wrapped_key.clone(),
            }),
            sealed_user_metadata: m.sealed_user_metadata.clone(),
            k: u32::from(m.params.k()),
            m: u32::from(m.params.m()),
            segment_bytes: m.segment_bytes,
            holders: m.holders.clone(),
            moves: m
                .moves
                .iter()
                .map(|mv| pb::HolderMove {
                    from_segment: mv.from_segment,
                    shard_index: u32::from(mv.shard_index),
                    holder: mv.holder.clone(),
                })
                .collect(),
            body: Some(body),
            sealed_as: m
                .sealed_as
                .map(|v| Bytes::copy_from_slice(v.as_bytes()))
                .unwrap_or_default(),
        }
    }
}
