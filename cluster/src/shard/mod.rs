//! Shard primitives both peers use: the erasure code that splits a sealed segment into
//! shards and rebuilds lost ones (the client when it writes and reads, the node when it
//! repairs), and the shard id, the blake3 hash that makes every shard self-verifying.

pub mod erasure;
pub mod hash;

pub use erasure::{Erasure, ErasureParams};
pub use hash::{shard_id, verify_shard};
