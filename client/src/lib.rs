//! The Andromède client library: what an application embeds to store objects on a cluster.
//! It is the only crate that touches key material or plaintext (DESIGN.md, "Trust model");
//! what it shares with the nodes (network, membership, quorums, placement, manifests,
//! erasure coding) is `andromede-cluster`.
//!
//! Module map:
//! - [`api`]: the S3-like object API — [`Client`], buckets, objects, listings.
//! - [`codec`]: object ↔ encrypted, erasure-coded, self-verifying shards (DESIGN.md, "The
//!   object codec"): segments, sealing, encoding, decoding, range reads, inline bodies.
//! - [`shards`]: the codec's shard sink and source over the network ([`NetShards`]).
//! - [`keys`]: the tenant master key file and per-version data keys.
//! - [`config_file`]: the client config file every client program reads.
//! - [`error`]: the error types.
//!
//! The library never prints; binaries own terminals and progress bars.
#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod api;
pub mod codec;
pub mod config_file;
pub mod error;
pub mod keys;
pub mod shards;

pub use andromede_cluster::secret_file::SecretFileError;
pub use api::{
    AuditReport, AuditSummary, BucketOptions, Client, ClientConfig, ClientError, GetObject,
    ListOptions, ListPage, ObjectAudit, ObjectInfo, ObjectReader, ObjectSummary, PutObjectOptions,
    ShardPlace,
};
pub use codec::{
    BodyEnd, CodecConfig, EncodedShard, ErasureParams, FinishHook, MemoryBudget, MemoryShards,
    ObjectName, OpenedObject, PutOptions, ShardSink, ShardSource, encode_object, open_manifest,
};
pub use config_file::{ClientFile, ConfigFileError};
pub use error::{BoxError, CodecError};
pub use keys::MasterKey;
pub use shards::{HolderError, NetShards};
