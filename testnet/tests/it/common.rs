//! Shared by the testnet's integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use andromede_client::{BucketOptions, Client, ErasureParams};
use andromede_cluster::faults::PlantedBug;
use andromede_testnet::cluster::{Testnet, UpOptions};

/// The node binary with its fault hooks, built once for this test binary before any
/// cluster starts: `cargo test --workspace --no-run`, the same build as the one that runs
/// these tests, so after `cargo test --workspace` it has nothing to do. (The workspace's
/// test build compiles `andromede-node` with `fault-injection`: the node's and the e2e
/// tests use it.) The binary must say it is a fault-injection build.
pub(crate) fn node_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let binary = andromede_testnet::process::build_workspace_node().unwrap();
            let version = Command::new(&binary).arg("--version").output().unwrap();
            assert!(
                String::from_utf8_lossy(&version.stdout).contains("fault-injection"),
                "{} is not a fault-injection build",
                binary.display()
            );
            binary
        })
        .clone()
}

/// Held shared by every test that starts a cluster, and exclusively by the chaos run,
/// which must have the machine to itself (its recovery deadlines assume it).
pub(crate) static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A testnet of `nodes` nodes in their own zones (down after 3 s, sweeps every 3 s,
/// scrubs every 2 s), a client that sees them all, and `bucket` with RS(2,1). The nodes
/// die with the returned handle.
pub(crate) async fn up(dir: &Path, nodes: usize, bucket: &str) -> (Testnet, Client) {
    up_planted(dir, nodes, bucket, None).await
}

/// The same with `planted_bug` in every node.
pub(crate) async fn up_planted(
    dir: &Path,
    nodes: usize,
    bucket: &str,
    planted_bug: Option<PlantedBug>,
) -> (Testnet, Client) {
    let options = UpOptions {
        planted_bug,
        ..test_options(nodes)
    };
    up_with(dir, &options, bucket).await
}

/// The options of [`up`]: `nodes` nodes in their own zones, at test speed, RS(2,1).
pub(crate) fn test_options(nodes: usize) -> UpOptions {
    UpOptions {
        nodes,
        zones: nodes,
        k: 2,
        m: 1,
        down_after: "3s".into(),
        repair_sweep_interval: "3s".into(),
        scrub_interval: "2s".into(),
        // Views at test speed: a replica-set hand-off lasts three refreshes.
        membership_refresh: Duration::from_secs(1),
        node_bin: Some(node_binary()),
        planted_bug: None,
        min_parity: 1,
    }
}

/// A testnet built with `options`, a client that sees every node, and `bucket` with
/// the options' code.
pub(crate) async fn up_with(dir: &Path, options: &UpOptions, bucket: &str) -> (Testnet, Client) {
    let nodes = options.nodes;
    let testnet = Testnet::up(dir, options).await.unwrap().kill_on_drop();
    let client = testnet.client().await.unwrap();
    if let Err(error) = client.wait_for_nodes(nodes, Duration::from_secs(30)).await {
        let seen: Vec<String> = client
            .nodes()
            .iter()
            .map(|m| format!("{} live={}", m.peer, m.live))
            .collect();
        let routed = client.net().routed_peers().await;
        let admitted = client.net().admitted_peers().await;
        panic!("{error}: client sees {seen:?}; routed {routed:?}; admitted {admitted:?}");
    }
    client
        .create_bucket(
            bucket,
            BucketOptions {
                params: ErasureParams::new(options.k, options.m).unwrap(),
                jurisdictions: Vec::new(),
            },
        )
        .await
        .unwrap();
    (testnet, client)
}
