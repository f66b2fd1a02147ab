//! The Andromède cluster core: everything both peers, client and node, run — so that the
//! two cannot disagree on placement, merge rules or the wire. It holds no key material and
//! never sees plaintext (DESIGN.md, "Trust model"); the node depends on this crate and
//! `andromede-proto` only.
//!
//! Module map:
//! - [`net`]: the network — transport and admission, framing, typed request and response
//!   messages of the shard and metadata protocols, the swarm actor ([`net::spawn`]) and its
//!   [`net::NetHandle`].
//! - [`membership`]: which nodes exist, what they offer, and which answer.
//! - [`roster`]: the certified members, their addresses, kept on disk and spread.
//! - [`replicas`]: replica sets of metadata partitions and quorum sizes.
//! - [`quorum`]: quorum reads, writes and scans of metadata records, with read repair.
//! - [`meta`]: metadata records — keys and tables, hybrid-logical-clock versions,
//!   last-writer-wins merge, and the values (bucket info, index entries, garbage records).
//! - [`placement`]: which peers hold the shards of a version.
//! - [`manifest`]: the validated manifest of an object version and its persisted form.
//! - [`shard`]: erasure coding and shard ids (blake3).
//! - [`secret_file`]: secrets kept in mode-0600 files (authority key, identity, master key).
//! - [`units`]: sizes (`10GiB`) and durations (`90s`) as people write them.
//! - [`admin`]: the node's loopback admin endpoint: its requests, its answers and a client.
//! - [`error`]: errors of the erasure code and the manifest.
//! - [`faults`]: the names of the planted bugs tests switch on to show the scenarios catch
//!   them; the code that acts on them exists only with the `fault-injection` feature,
//!   never in a normal build.
#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod admin;
pub mod authority;
pub mod error;
pub mod faults;
pub mod manifest;
pub mod membership;
pub mod meta;
pub mod net;
pub mod placement;
pub mod quorum;
pub mod replicas;
pub mod roster;
pub mod secret_file;
pub mod shard;
pub mod units;

pub use error::{ErasureError, ManifestError};
pub use manifest::{Body, HolderMove, Manifest, SegmentEntry};
pub use membership::{Member, Membership, MembershipConfig, RosterReach};
pub use quorum::{LocalReplica, MetaQuorum, QuorumError, READ_GRACE, ReplicaError, ScanPage};
pub use replicas::{
    REPLICAS, closest_members, partition_key, read_quorum, with_local, write_quorum,
};
pub use shard::{Erasure, ErasureParams, shard_id, verify_shard};
