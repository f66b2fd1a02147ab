//! The Andromède node: the `andromede-node` daemon's library. It depends on
//! `andromede-proto` and `andromede-cluster` only, never on the client, so it cannot name
//! a key type (DESIGN.md, invariant 4).
//!
//! Module map:
//! - [`admin`]: the loopback admin endpoint (`status`, `drain`, `drain-progress`); the
//!   answers' shapes are `andromede_cluster::admin`.
//! - [`config`]: `config.toml`, parsed once into typed values with allowed ranges.
//! - [`credentials`]: the node's certificate and revocation list, loaded at start and
//!   kept current (renewals, newer lists) while it runs.
//! - [`daemon`]: the composition root (start and stop order).
//! - [`init`]: initialising a data directory (keys, then config).
//! - [`data_dir`]: where everything lives in a node's data directory.
//! - [`drain`]: retiring a node: its durable marker and the progress report.
//! - [`meta`]: metadata replicas' record store (LWW records in sled) and its holder index.
//! - [`service`]: inbound protocol handlers and their bounded dispatcher.
//! - [`store`]: the shard store (files + sled index, crash-safe writes, quarantine,
//!   open-time reconciliation, capacity).
//! - [`workers`]: background work on one runner (`workers::runner`) — the scrubber and
//!   its byte-rate limiter, metadata anti-entropy and catch-up, garbage collection of
//!   replaced and deleted versions, liveness (who is down), repair of lost shards
//!   (candidates, queue, assessment, commit), the unreferenced-shard collector, and the
//!   shard calls they share.
//! - [`telemetry`]: logging setup.
//! - [`error`]: the error types.
//! - `faults` (feature `fault-injection` only, never in a normal build): partition and
//!   delay hooks the testnet drives through the admin endpoint.
#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod admin;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod data_dir;
pub mod drain;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod init;
pub mod meta;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod workers;

pub use error::{DaemonError, MetaError, StoreError};
pub use store::{ShardStore, StoreConfig};
