//! Shared by the testnet's integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The node binary with its fault hooks, built next to the test binaries (a no-op build
/// when `cargo test --workspace` has built it already: the node's own tests enable the
/// same feature).
pub(crate) fn node_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "andromede-node", "--bin", "andromede-node"])
                .args(["--features", "fault-injection"])
                .status()
                .unwrap();
            assert!(status.success(), "building andromede-node failed");
            andromede_testnet::process::node_binary(None).unwrap()
        })
        .clone()
}
