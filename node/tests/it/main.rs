//! The node's integration tests: one binary.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test data generators truncate integers on purpose"
)]

mod admin;
mod binaries;
mod net;
mod scrub;
mod store;
mod store_crash;

use andromede_cluster::shard::hash::shard_id;
use andromede_node::store::{IndexOptions, ShardStore, StoreConfig};
use andromede_proto::ShardId;

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

/// The files under `dir` (recursively) whose names end with `suffix`; none if `dir` is
/// missing (or vanishes while listed).
fn files_under(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out
}

/// A node daemon on an ephemeral loopback port, with its data in `dir`.
async fn start_daemon(dir: &std::path::Path) -> andromede_node::daemon::Daemon {
    andromede_node::daemon::Daemon::start(daemon_config(dir, Vec::new(), "FR"))
        .await
        .unwrap()
}

/// A node's config: data in `dir`, an ephemeral loopback port, joining through
/// `bootstrap`, in `jurisdiction`, its zone named after its directory.
fn daemon_config(
    dir: &std::path::Path,
    bootstrap: Vec<andromede_cluster::net::Multiaddr>,
    jurisdiction: &str,
) -> andromede_node::daemon::DaemonConfig {
    andromede_node::daemon::DaemonConfig {
        data: andromede_node::data_dir::DataDir::new(dir),
        capacity_bytes: 1 << 30,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap,
        scrub: andromede_node::workers::scrub::ScrubConfig::default(),
        anti_entropy: andromede_node::workers::anti_entropy::AntiEntropyConfig {
            interval: std::time::Duration::from_secs(2),
        },
        gc: andromede_node::workers::gc::GcConfig {
            interval: std::time::Duration::from_secs(1),
        },
        down_after: std::time::Duration::from_secs(3),
        // Long: uploads in these tests must never see their shards collected mid-way.
        orphans: andromede_node::workers::orphans::OrphanConfig::default(),
        repair: andromede_node::workers::repair::RepairConfig {
            tick: std::time::Duration::from_millis(500),
            sweep_interval: std::time::Duration::from_secs(3),
            ..Default::default()
        },
        tags: andromede_node::service::dispatch::NodeTags {
            zone: dir.display().to_string(),
            jurisdiction: jurisdiction.into(),
        },
        admin: None,
    }
}

/// The daemon's listen address, once it has one (polled for up to 4 s).
async fn listen_addr(daemon: &andromede_node::daemon::Daemon) -> andromede_cluster::net::Multiaddr {
    for _ in 0..200 {
        if let Some(addr) = daemon
            .net()
            .listen_addrs()
            .await
            .unwrap()
            .into_iter()
            .next()
        {
            return addr;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("node never listened");
}
