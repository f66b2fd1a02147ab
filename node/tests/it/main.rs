//! The node's integration tests: one binary.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test data generators truncate integers on purpose"
)]

mod admin;
mod binaries;
mod front_door;
mod net;
mod scrub;
mod store;
mod store_crash;

use andromede_cluster::shard::hash::shard_id;
use andromede_node::store::{IndexOptions, ShardStore, StoreConfig};
use andromede_proto::ShardId;

/// A loopback port free now (for a process the test starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A store in `dir` with `capacity_bytes`.
fn open(dir: &std::path::Path, capacity_bytes: u64) -> ShardStore {
    try_open(dir, capacity_bytes).unwrap().0
}

fn try_open(
    dir: &std::path::Path,
    capacity_bytes: u64,
) -> Result<(ShardStore, andromede_node::store::RecoveryReport), andromede_node::StoreError> {
    ShardStore::open(&StoreConfig {
        root: dir.to_owned(),
        capacity_bytes,
        index: IndexOptions {
            cache_bytes: 4 * 1024 * 1024,
            flush_every_ms: 100,
        },
    })
}

/// A shard of `len` bytes derived from `seed`, and its id.
fn shard(seed: u8, len: usize) -> (ShardId, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    (shard_id(&bytes), bytes)
}

#[path = "../daemons.rs"]
mod daemons;
use daemons::{daemon_config, files_under, listen_addr, start_daemon};
