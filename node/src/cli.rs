//! Command-line interface of `andromede-node`.

use std::net::SocketAddr;
use std::path::PathBuf;

use andromede_cluster::net::Multiaddr;
use andromede_cluster::units::parse_size;
use andromede_node::config::{ADMIN_DEFAULT, LISTEN_DEFAULT};
use clap::{Parser, Subcommand};

/// The version `--version` prints: a build with test hooks says so, so that nobody runs
/// one in production by mistake and the testnet can check it has one.
const VERSION: &str = if cfg!(feature = "fault-injection") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (fault-injection build: test hooks compiled in, not for production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

/// The Andromède node daemon.
#[derive(Debug, Parser)]
#[command(name = "andromede-node", version = VERSION, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Prepare a data directory: identity key, cluster secret (new, or copied with
    /// --cluster-secret-file to join an existing cluster) and config.toml.
    Init(InitArgs),
    /// Run the node (initialising DIR with the defaults first if it is empty): serve
    /// shards and metadata, join through the bootstrap peers, scrub in the background;
    /// stop cleanly on Ctrl-C or SIGTERM.
    Run {
        #[command(flatten)]
        data: DataArg,
    },
    /// Ask the running node for its peers (zones, jurisdictions, capacity, reachability).
    Status {
        #[command(flatten)]
        data: DataArg,
        /// Print the raw JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Retire this node: it stops taking shards and metadata, the cluster moves
    /// everything it holds elsewhere (never lowering redundancy), and this command shows
    /// the progress and says when the node is safe to stop. The drain is not undone.
    Drain {
        #[command(flatten)]
        data: DataArg,
        /// Start the drain and return at once (`status` shows that it is draining).
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the drain goes on).
        #[arg(long, default_value_t = 86_400)]
        timeout_secs: u64,
    },
    /// Re-hash every shard once now (progress bar), quarantine any that fail, and report.
    /// Run it while the node is stopped.
    Scrub {
        #[command(flatten)]
        data: DataArg,
        /// Most bytes per second re-hashed.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        rate: u64,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct DataArg {
    /// The node's data directory.
    #[arg(long, env = "ANDROMEDE_DATA", default_value = "andromede-data")]
    pub(crate) data: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// Address to listen on.
    #[arg(long, default_value = LISTEN_DEFAULT)]
    pub(crate) listen: Multiaddr,
    /// A member to join the cluster through (repeatable), e.g.
    /// /ip4/10.0.0.5/tcp/4100/p2p/12D3Koo...
    #[arg(long)]
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// The cluster's secret, copied from an existing member (DIR/cluster.secret there).
    /// Without it, a new cluster is started.
    #[arg(long)]
    pub(crate) cluster_secret_file: Option<PathBuf>,
    /// Failure domain (rack, room, site): shards of a segment are spread over zones.
    #[arg(long, default_value = "")]
    pub(crate) zone: String,
    /// Legal jurisdiction, e.g. FR: buckets may require their shards to stay in some.
    #[arg(long, default_value = "")]
    pub(crate) jurisdiction: String,
    /// Most bytes of shards kept (e.g. 500GiB).
    #[arg(long, default_value = "10GiB", value_parser = parse_size)]
    pub(crate) capacity: u64,
    /// Admin endpoint (loopback only), used by `status`.
    #[arg(long, default_value = ADMIN_DEFAULT)]
    pub(crate) admin: SocketAddr,
}
