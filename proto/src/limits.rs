//! Limits shared by every producer and consumer of Andromède's formats, so both ends of a
//! protocol agree on what is too large. Units come last in every name.

/// Manifest format written by this version; readers refuse any other.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// Bytes added to a segment by sealing: a 24-byte XChaCha20 nonce and a 16-byte tag.
pub const SEAL_OVERHEAD_BYTES: u64 = 24 + 16;

/// Default plaintext bytes per segment.
pub const SEGMENT_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;
/// Smallest configurable segment: below this, per-segment overhead (hashes in the
/// manifest, one request per shard) dominates.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest configurable segment: bounds every shard, and with it every message and buffer.
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Largest number of shards (data + parity) per segment: GF(2^8) Reed-Solomon limit.
pub const SHARD_COUNT_MAX: u64 = 255;
/// Largest shard: a whole sealed maximal segment when `k = 1`.
pub const SHARD_BYTES_MAX: u64 = SEGMENT_BYTES_MAX + SEAL_OVERHEAD_BYTES;
/// Largest `/andromede/shard/1` message: one shard plus framing.
pub const SHARD_MESSAGE_BYTES_MAX: u64 = SHARD_BYTES_MAX + 4096;
/// Largest number of ids in one `have` or `delete` request.
pub const SHARD_BATCH_IDS_MAX: u64 = 1024;

/// Default inline threshold: objects up to this size live sealed in their manifest.
pub const INLINE_BYTES_DEFAULT: u64 = 16 * 1024;
/// Largest configurable inline threshold (inlined bodies travel in metadata records).
pub const INLINE_BYTES_MAX: u64 = 64 * 1024;

/// Largest number of shard ids in one manifest (about 17 MiB of hashes; with RS(4,2) and
/// 8 MiB segments that is objects up to ~680 GiB). Larger objects need manifest pages.
pub const MANIFEST_SHARD_IDS_MAX: u64 = 512 * 1024;
/// Largest encoded manifest.
pub const MANIFEST_BYTES_MAX: u64 = MANIFEST_SHARD_IDS_MAX * 40 + 1024 * 1024;

/// Most holder moves in one manifest (one per holder that failed during an upload).
pub const MANIFEST_MOVES_MAX: u64 = 1024;
/// Most parts an assembled (multipart) object has, as S3.
pub const MANIFEST_PARTS_MAX: u64 = 10_000;

/// Largest value of one metadata record (a manifest is the largest kind).
pub const META_VALUE_BYTES_MAX: u64 = MANIFEST_BYTES_MAX;
/// Most records a node-written record carries as its causes (the client-signed records
/// that justify it: DESIGN.md, "Metadata").
pub const RECORD_CAUSES_MAX: u64 = 2;
/// Bytes of one record beyond its value at most: version, seal (the author's certificate
/// and signature), its key when carried as a cause, framing.
pub const RECORD_OVERHEAD_BYTES_MAX: u64 = CERTIFICATE_BYTES_MAX + 4096;
/// Largest encoded metadata record: its value, its causes (their values together at most
/// one more value), their seals and framing.
pub const META_RECORD_BYTES_MAX: u64 =
    2 * META_VALUE_BYTES_MAX + (RECORD_CAUSES_MAX + 1) * RECORD_OVERHEAD_BYTES_MAX;

/// Largest `/andromede/meta/1` message: one maximal record plus framing; batches and
/// scan pages are cut to fit.
pub const META_MESSAGE_BYTES_MAX: u64 = META_RECORD_BYTES_MAX + 64 * 1024;
/// Most records in one apply batch.
pub const META_BATCH_RECORDS_MAX: u64 = 1024;
/// Most keys in one listing page (as S3).
pub const LIST_KEYS_MAX: u64 = 1000;

/// Largest encoded user metadata: S3's 2 KiB of `x-amz-meta-*` plus what a gateway keeps
/// beside it (content encoding, disposition, cache control, checksums).
pub const USER_METADATA_BYTES_MAX: u64 = 8 * 1024;
/// Largest sealed listing ETag in an object index entry (nonce, a multipart ETag, tag).
pub const SEALED_ETAG_BYTES_MAX: u64 = 128;
/// Largest content type.
pub const CONTENT_TYPE_BYTES_MAX: u64 = 256;
/// Largest object key (as S3).
pub const OBJECT_KEY_BYTES_MAX: u64 = 1024;
/// Largest bucket name (as S3).
pub const BUCKET_NAME_BYTES_MAX: u64 = 63;

/// Longest node tag (zone, jurisdiction).
pub const TAG_BYTES_MAX: u64 = 64;
/// Length of a master key id in a manifest (the first bytes of the key's blake3 hash).
pub const MASTER_KEY_ID_BYTES: usize = 8;
/// Length of a wrapped data key in a manifest: XChaCha20 nonce (24) || sealed 32-byte key
/// || Poly1305 tag (16).
pub const WRAPPED_KEY_BYTES: usize = 24 + 32 + 16;

/// Largest encoded certificate (body and signature).
pub const CERTIFICATE_BYTES_MAX: u64 = 2048;
/// Longest certified name.
pub const PEER_NAME_BYTES_MAX: u64 = 64;
/// Most peers one revocation list names.
pub const REVOKED_PEERS_MAX: u64 = 16 * 1024;
/// Largest encoded revocation list: each entry is a peer id (at most 64 bytes of multihash
/// for the identities Andromède issues, 38 for ed25519) with 2 bytes of framing.
pub const REVOCATION_LIST_BYTES_MAX: u64 = REVOKED_PEERS_MAX * 66 + 1024;
/// Largest `/andromede/admit/2` message: a certificate and a version.
pub const ADMIT_MESSAGE_BYTES_MAX: u64 = CERTIFICATE_BYTES_MAX + 64;
/// Largest `/andromede/trust/1` message: a revocation list and framing.
pub const TRUST_MESSAGE_BYTES_MAX: u64 = REVOCATION_LIST_BYTES_MAX + 1024;
/// Most bootstrap addresses in a join token.
pub const JOIN_BOOTSTRAP_ADDRS_MAX: u64 = 16;
/// Largest encoded join token.
pub const JOIN_TOKEN_BYTES_MAX: u64 = CERTIFICATE_BYTES_MAX + 64 + JOIN_BOOTSTRAP_ADDRS_MAX * 256;

/// Most nodes a roster holds (DESIGN.md, "Metadata").
pub const ROSTER_MEMBERS_MAX: u64 = 1024;
/// Most addresses a roster entry keeps for a node.
pub const ROSTER_ADDRS_MAX: u64 = 8;
/// Longest address in a roster entry.
pub const ROSTER_ADDR_BYTES_MAX: u64 = 256;
/// Largest encoded roster (a message and the `roster.pb` file): every entry full.
pub const ROSTER_BYTES_MAX: u64 = ROSTER_MEMBERS_MAX
    * (CERTIFICATE_BYTES_MAX + ROSTER_ADDRS_MAX * (ROSTER_ADDR_BYTES_MAX + 3) + 32);

/// Most segments an encoder or decoder keeps in flight: memory is bounded by
/// segment size × (pipeline depth + 1) × (k+m)/k.
pub const PIPELINE_DEPTH_MAX: u64 = 16;

const _: () = assert!(ROSTER_BYTES_MAX < META_MESSAGE_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
const _: () = assert!(SHARD_MESSAGE_BYTES_MAX > SHARD_BYTES_MAX);
const _: () = assert!(INLINE_BYTES_DEFAULT <= INLINE_BYTES_MAX);
const _: () = assert!(INLINE_BYTES_MAX <= SEGMENT_BYTES_MIN);
// Each shard id costs 32 bytes plus at most 3 bytes of protobuf framing.
const _: () = assert!(MANIFEST_BYTES_MAX > MANIFEST_SHARD_IDS_MAX * 35 + INLINE_BYTES_MAX);
// Every limit below must fit a usize on 32-bit targets too.
const _: () = assert!(SHARD_MESSAGE_BYTES_MAX < u32::MAX as u64);
const _: () = assert!(MANIFEST_BYTES_MAX < u32::MAX as u64);
const _: () = assert!(META_RECORD_BYTES_MAX < u32::MAX as u64);
const _: () = assert!(META_MESSAGE_BYTES_MAX > META_RECORD_BYTES_MAX + OBJECT_KEY_BYTES_MAX);
const _: () = assert!(META_MESSAGE_BYTES_MAX < u32::MAX as u64);

/// Shard ids in one answer about referenced shards at most (a page of manifests; a
/// single manifest names at most `MANIFEST_SHARD_IDS_MAX`).
pub const REFERENCED_IDS_MAX: u64 = MANIFEST_SHARD_IDS_MAX;

/// Manifest versions one held-by count looks at most (bounds the work of one request; a
/// draining node only needs to know whether the count has reached 0).
pub const HELD_BY_COUNT_MAX: u64 = 100_000;
