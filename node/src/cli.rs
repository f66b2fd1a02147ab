//! Command-line interface of `andromede-node`.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use andromede_cluster::net::{Multiaddr, PeerId};
use andromede_cluster::units::{parse_duration, parse_size};
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
    /// Prepare a data directory: identity key, certificate and config.toml. Without
    /// --join it starts a new cluster (DIR/authority.key is its authority); with --join
    /// it joins the cluster that invited it.
    Init(InitArgs),
    /// Run the node, initialising DIR first (as `init` with the same options) if it is
    /// empty: serve shards and metadata, join through the bootstrap peers, scrub in the
    /// background; stop cleanly on Ctrl-C or SIGTERM.
    Run(InitArgs),
    /// Where the authority key is: certify a new node or client and print its join token
    /// (stdout; the command to use it goes to stderr). With --peer, certify an identity
    /// that already exists (a renewal): the token then carries no secret.
    Invite(InviteArgs),
    /// Where the authority key is: revoke a node or client (by name or peer id). The new
    /// revocation list is handed to a member, and every node refuses the peer within
    /// seconds; a revoked node's shards are rebuilt elsewhere.
    Revoke(RevokeArgs),
    /// Where the authority key is: retire a node for good (by name or peer id). It
    /// leaves the roster (a revocation: refused from then on); the nodes that take its
    /// metadata roles over copy them before they count, and its shards are rebuilt
    /// elsewhere. Drain a node that still runs first.
    Retire(RevokeArgs),
    /// Install a renewed certificate (a token from `invite --peer`): a running node
    /// presents it to its peers within seconds, without a restart.
    Renew {
        #[command(flatten)]
        data: DataArg,
        /// The token `invite --peer` printed.
        token: String,
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

/// How a data directory is initialised. Every option is optional so that `run` on an
/// initialised directory can refuse them instead of silently ignoring them.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// Join the cluster that made this token (`andromede-node invite --node NAME`):
    /// name, zone, jurisdiction and bootstrap addresses come from it.
    #[arg(long, conflicts_with_all = ["name", "zone", "jurisdiction"])]
    pub(crate) join: Option<String>,
    /// Address to listen on [default: /ip4/127.0.0.1/tcp/4100].
    #[arg(long)]
    pub(crate) listen: Option<Multiaddr>,
    /// Another member to join through (repeatable), e.g.
    /// /ip4/10.0.0.5/tcp/4100/p2p/12D3Koo...
    #[arg(long)]
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// A new cluster's first node: its certified name [default: node-1].
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// A new cluster's first node: its failure domain (rack, room, site).
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// A new cluster's first node: its legal jurisdiction, e.g. FR.
    #[arg(long)]
    pub(crate) jurisdiction: Option<String>,
    /// Most bytes of shards kept (e.g. 500GiB) [default: 10GiB].
    #[arg(long, value_parser = parse_size)]
    pub(crate) capacity: Option<u64>,
    /// Admin endpoint (loopback only), used by `status` [default: 127.0.0.1:4180].
    #[arg(long)]
    pub(crate) admin: Option<SocketAddr>,
}

impl InitArgs {
    /// Whether any option beyond `--data` was given.
    pub(crate) fn sets_anything(&self) -> bool {
        self.join.is_some()
            || self.listen.is_some()
            || !self.bootstrap.is_empty()
            || self.name.is_some()
            || self.zone.is_some()
            || self.jurisdiction.is_some()
            || self.capacity.is_some()
            || self.admin.is_some()
    }

    pub(crate) fn listen_or_default(&self) -> Multiaddr {
        self.listen.clone().unwrap_or_else(|| {
            LISTEN_DEFAULT
                .parse()
                .unwrap_or_else(|_| Multiaddr::empty())
        })
    }

    pub(crate) fn admin_or_default(&self) -> SocketAddr {
        self.admin.unwrap_or_else(|| {
            ADMIN_DEFAULT
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4180)))
        })
    }
}

/// Where the authority key is, and how to reach the cluster.
#[derive(Debug, clap::Args)]
pub(crate) struct AuthorityArgs {
    /// The data directory of the node that created the cluster: its authority.key, and
    /// its address as the bootstrap of tokens.
    #[arg(long, env = "ANDROMEDE_DATA", default_value = "andromede-data")]
    pub(crate) data: PathBuf,
    /// The authority key file, when it is not in --data (moved off the nodes).
    #[arg(long)]
    pub(crate) authority: Option<PathBuf>,
    /// A member to join through (repeatable) instead of the --data node's address.
    #[arg(long)]
    pub(crate) bootstrap: Vec<Multiaddr>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["node", "client"])))]
pub(crate) struct InviteArgs {
    #[command(flatten)]
    pub(crate) authority: AuthorityArgs,
    /// Certify a node with this name.
    #[arg(long, value_name = "NAME")]
    pub(crate) node: Option<String>,
    /// Certify a client with this name.
    #[arg(long, value_name = "NAME")]
    pub(crate) client: Option<String>,
    /// The node's failure domain (rack, room, site): shards of a segment are spread over
    /// zones.
    #[arg(long, default_value = "", requires = "node")]
    pub(crate) zone: String,
    /// The node's legal jurisdiction, e.g. FR: buckets may require their shards to stay
    /// in some.
    #[arg(long, default_value = "", requires = "node")]
    pub(crate) jurisdiction: String,
    /// What the client may do (repeatable): BUCKET:RIGHTS, the bucket a name, `prefix*`
    /// or `*`, the rights read, write, delete, owner joined by '+', or all (e.g.
    /// photos:read, backup-*:read+write, '*:all'). Every node enforces them.
    #[arg(long, value_name = "BUCKET:RIGHTS", requires = "client")]
    pub(crate) grant: Vec<andromede_cluster::authority::Grant>,
    /// Certify this existing identity (renewal) instead of creating one.
    #[arg(long)]
    pub(crate) peer: Option<PeerId>,
    /// How long the certificate is valid (e.g. 365d, 12h).
    #[arg(long, default_value = "365d", value_parser = parse_duration)]
    pub(crate) valid: Duration,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) authority: AuthorityArgs,
    /// The peer id, or the name it was invited with.
    pub(crate) who: String,
}
