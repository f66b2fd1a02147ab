//! The Andromède client library.
//!
//! Module map:
//! - [`codec`]: object ↔ encrypted, erasure-coded, self-verifying shards (DESIGN.md, "The
//!   object codec"), with [`codec::erasure`] and [`codec::hash`] reused by the node.
//! - [`manifest`]: the validated domain manifest and its persisted form.
//! - [`keys`]: the tenant master key file and per-version data keys.
//! - [`meta`]: hybrid-logical-clock versions and last-writer-wins records.
//! - [`placement`]: which peers hold the shards of a version.
//! - [`net`]: validated domain types for the shard protocol messages.
//! - [`error`]: the error types.
//! - `faults` (feature `fault-injection` only): planted bugs that tests switch on to show
//!   the scenarios catch them.
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
pub mod cluster;
pub mod codec;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod keys;
pub mod manifest;
pub mod meta;
pub mod net;
pub mod placement;

pub use api::{
    BucketOptions, Client, ClientConfig, ClientError, GetObject, ListOptions, ListPage, ObjectInfo,
    ObjectSummary, PutObjectOptions,
};
pub use codec::{
    CodecConfig, EncodedShard, ErasureParams, MemoryShards, ObjectName, OpenedObject, PutOptions,
    ShardSink, ShardSource, encode_object, open_manifest,
};
pub use error::{BoxError, CodecError, KeyError};
pub use keys::MasterKey;
pub use manifest::{Body, HolderMove, Manifest, SegmentEntry};
