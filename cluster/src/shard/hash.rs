//! Shard ids: the blake3 hash of a shard's bytes. Hashed on the calling thread (whole
//! segments run in parallel instead of blake3's internal threading, which DESIGN.md found slower).

use andromede_proto::ShardId;

/// The id of a shard holding `bytes`.
pub fn shard_id(bytes: &[u8]) -> ShardId {
    ShardId(*blake3::hash(bytes).as_bytes())
}

/// Whether `bytes` are the shard named `id` (constant-time comparison).
pub fn verify_shard(id: &ShardId, bytes: &[u8]) -> bool {
    blake3::hash(bytes) == blake3::Hash::from_bytes(id.0)
}
