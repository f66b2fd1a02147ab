//! The Andromède node.
//!
//! Module map:
//! - [`admin`]: the loopback admin endpoint (`status`).
//! - [`config`]: `config.toml`, its checks, and the size and duration units.
//! - [`daemon`]: the composition root (start and stop order).
//! - [`init`]: initialising a data directory (keys, then config).
//! - [`data_dir`]: where everything lives in a node's data directory.
//! - [`meta`]: metadata replicas' record store (LWW records in sled) and its holder index.
//! - [`service`]: inbound protocol handlers and their bounded dispatcher.
//! - [`store`]: the shard store (files + sled index, crash-safe writes, quarantine,
//!   open-time reconciliation, capacity).
//! - [`workers`]: background work — the scrubber and its byte-rate limiter, metadata
//!   anti-entropy, garbage collection of replaced and deleted versions, liveness (who is
//!   down) and repair of lost shards, and the shard calls they share.
//! - [`error`]: the error types.
//! - `faults` (feature `fault-injection` only, never in a normal build): partition and
//!   delay hooks the testnet drives through the admin endpoint.
//!
#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod admin;
pub mod config;
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
