//! Andromède's shared vocabulary on the wire and on disk.
//!
//! - [`pb`]: the prost types generated from `andromede/v1/*.proto`. They never travel
//!   past a decode boundary: each crate converts them into validated domain types.
//! - [`limits`]: the maxima both ends of every protocol agree on.
//! - [`ids`]: fixed-size identifiers (shards, versions, buckets).
//! - [`decode_bounded`] (and [`decode_bounded_shared`], zero-copy): the one way to decode a
//!   message, refusing oversize input first.
//!
//! No I/O, no async runtime, no networking here.
#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod decode;
pub mod ids;
pub mod limits;

/// Generated protobuf types of package `andromede.v1`.
#[allow(missing_docs, unreachable_pub, reason = "generated code")]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/andromede.v1.rs"));
}

pub use decode::{
    DecodeError, RepeatedLimit, check_repeated, decode_bounded, decode_bounded_counted,
    decode_bounded_shared, decode_bounded_shared_counted,
};
pub use ids::{BucketId, IdLengthError, ShardId, VersionId};
pub use prost::Message;
