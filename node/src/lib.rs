//! The Andromède node.
//!
//! Module map:
//! - [`store`]: the shard store (files + sled index, crash-safe writes, quarantine,
//!   open-time reconciliation, capacity).
//! - [`workers`]: background work — the scrubber and its byte-rate limiter.
//! - [`error`]: the error types.
//!
//! The swarm, metadata replicas, repair and the admin endpoint arrive with the cluster.
#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod error;
pub mod store;
pub mod telemetry;
pub mod workers;

pub use error::StoreError;
pub use store::{ShardStore, StoreConfig};
