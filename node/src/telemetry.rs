//! Logging setup for the node binary: `tracing` to stderr, filtered by `RUST_LOG`
//! (default `info` for a running node, `warn` for the one-shot commands, see `init`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, logging at `default_level` unless `RUST_LOG` says
/// otherwise. Call once, first thing in `main`.
pub fn init(default_level: &str) {
    // libp2p-kad warns "Failed to trigger bootstrap: No known peers" whenever a node runs
    // alone (its automatic bootstrap cannot be switched off from outside the crate); a lone
    // node is a normal state here, so that module logs errors only unless RUST_LOG says
    // otherwise.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},libp2p_kad::behaviour=error")));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
