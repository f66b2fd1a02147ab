//! `andromede-testnet`: start a loopback cluster of real node processes, break it on
//! purpose, and check that nothing is lost.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::IsTerminal;

use andromede_testnet::bench::BenchOptions;
use andromede_testnet::chaos::ChaosOptions;
use andromede_testnet::cluster::{Testnet, UpOptions};
use clap::{Parser, Subcommand};

/// Real Andromède clusters on one machine, broken on purpose.
#[derive(Debug, Parser)]
#[command(name = "andromede-testnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct DirArg {
    /// The testnet's directory (node data, logs, state, client config).
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct NodeArg {
    #[command(flatten)]
    dir: DirArg,
    /// Which node (0-based).
    #[arg(long)]
    node: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start N nodes with their own ports and data dirs, wait until they all see each
    /// other, and write DIR/client.toml for the `andromede` client.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Node processes.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Zones the nodes are spread over, round-robin.
        #[arg(long, default_value_t = 3)]
        zones: usize,
        /// Data shards per segment of the workloads' bucket.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// Parity shards per segment.
        #[arg(long, default_value_t = 2)]
        m: u32,
        /// A peer unreachable this long is down and its shards are repaired.
        #[arg(long, default_value = "10s")]
        down_after: String,
        /// The andromede-node binary (default: next to this one, or $ANDROMEDE_NODE_BIN).
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
    /// Stop every node (SIGTERM, SIGKILL after 15 s).
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Each node: running or not, peers it reaches, shards, redundancy and repair.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
    /// SIGKILL a node.
    Kill {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Cut a node's power: writes it had not made durable are undone and it dies (needs a
    /// node built with the fault-injection feature; `restart` brings it back).
    Powercut {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Start a stopped node, or kill and start a running one.
    Restart {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Kill a node, delete its shards and metadata, and start it empty.
    Wipe {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Cut the given nodes off from the others, both ways (replaces any earlier
    /// partition; needs nodes built with the fault-injection feature).
    Partition {
        #[command(flatten)]
        dir: DirArg,
        /// Node indices on one side, e.g. 0,1.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<usize>,
    },
    /// Lift every partition.
    Unpartition {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Delay every request a node serves (0 lifts it).
    Slow {
        #[command(flatten)]
        node: NodeArg,
        /// Milliseconds per request.
        #[arg(long)]
        delay: u64,
    },
    /// Start a testnet, run writers, overwriters, deleters and readers under a seeded
    /// random schedule of faults (never more than m nodes' data at once), then stop the
    /// faults, wait for repair and check every invariant. Exits non-zero if one failed.
    Chaos {
        /// Where the testnet lives (default: a new temporary directory, kept if a check
        /// fails).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Node processes.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Data shards.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// Parity shards.
        #[arg(long, default_value_t = 2)]
        m: u32,
        /// How long faults are injected, e.g. 2m, 30m.
        #[arg(long, default_value = "2m", value_parser = andromede_cluster::units::parse_duration)]
        duration: std::time::Duration,
        /// Seed of the schedule and the workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Faults started per minute.
        #[arg(long, default_value_t = 6.0)]
        faults_per_minute: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The andromede-node binary (built with --features fault-injection).
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
    /// Start a testnet and measure PUT/GET throughput of large and small objects, the
    /// nodes' RSS, and repair after a node loses its data (build the node in release:
    /// `cargo build --release -p andromede-node -p andromede-testnet`).
    Bench {
        /// Where the testnet lives (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Node processes.
        #[arg(long, default_value_t = 7)]
        nodes: usize,
        /// Data shards.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// Parity shards.
        #[arg(long, default_value_t = 2)]
        m: u32,
        /// Small-object operations of each kind.
        #[arg(long, default_value_t = 1000)]
        small_ops: usize,
        /// Size of the large object whose passage sets the nodes' peak RSS, in MiB.
        #[arg(long, default_value_t = 1024)]
        rss_object_mib: u64,
        /// Shard MiB the wiped node holds before the repair measurement (0: skip it).
        #[arg(long, default_value_t = 1024)]
        repair_mib: u64,
        /// The andromede-node binary.
        #[arg(long)]
        node_bin: Option<PathBuf>,
        /// Measure only the 4 KiB operations (rates, p50/p99 latencies).
        #[arg(long)]
        small_only: bool,
    },
    /// Flip a byte in a fraction of a node's shard files.
    Corrupt {
        #[command(flatten)]
        node: NodeArg,
        /// Fraction of its shard files to corrupt (0 to 1; at least one file).
        #[arg(long)]
        fraction: f64,
        /// Seed of the choice of files and bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // Under chaos the client warns of every failed holder: expected, and noise here.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,andromede_cluster::net::shards=error")
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up {
            dir,
            nodes,
            zones,
            k,
            m,
            down_after,
            node_bin,
        } => {
            let options = UpOptions {
                nodes,
                zones,
                k,
                m,
                down_after,
                node_bin,
                ..UpOptions::default()
            };
            let testnet = Testnet::up(&dir.dir, &options).await?;
            println!(
                "{} nodes up under {}; client config: {}",
                testnet.len(),
                testnet.dir().display(),
                testnet
                    .dir()
                    .join(andromede_testnet::cluster::CLIENT_FILE)
                    .display()
            );
            println!(
                "use it: andromede --config {} ls",
                testnet
                    .dir()
                    .join(andromede_testnet::cluster::CLIENT_FILE)
                    .display()
            );
            Ok(())
        }
        Command::Down { dir } => {
            Testnet::open(&dir.dir)?.down()?;
            println!("every node stopped");
            Ok(())
        }
        Command::Status { dir } => status(&Testnet::open(&dir.dir)?).await,
        Command::Kill { node } => {
            Testnet::open(&node.dir.dir)?.kill(node.node)?;
            println!("node {} killed", node.node);
            Ok(())
        }
        Command::Powercut { node } => {
            Testnet::open(&node.dir.dir)?.power_cut(node.node).await?;
            println!("node {} lost power", node.node);
            Ok(())
        }
        Command::Restart { node } => {
            Testnet::open(&node.dir.dir)?.restart(node.node)?;
            println!("node {} restarted", node.node);
            Ok(())
        }
        Command::Wipe { node } => {
            Testnet::open(&node.dir.dir)?.wipe(node.node)?;
            println!("node {} wiped and restarted empty", node.node);
            Ok(())
        }
        Command::Chaos {
            dir,
            nodes,
            k,
            m,
            duration,
            seed,
            faults_per_minute,
            json,
            node_bin,
        } => {
            let temp = match &dir {
                Some(_) => None,
                None => Some(
                    tempfile::Builder::new()
                        .prefix("andromede-chaos-")
                        .tempdir()?,
                ),
            };
            let dir = dir.unwrap_or_else(|| {
                temp.as_ref()
                    .map(|t| t.path().to_owned())
                    .unwrap_or_default()
            });
            let options = ChaosOptions {
                dir: dir.clone(),
                nodes,
                k,
                m,
                duration,
                seed,
                faults_per_minute,
                progress: !json && std::io::stderr().is_terminal(),
                node_bin,
            };
            // The seed reproduces the fault schedule and the workload's choices (wall-clock
            // timing still varies from run to run).
            eprintln!(
                "chaos: {nodes} nodes, RS({k},{m}), {duration:?}, seed {seed}, testnet in {}",
                dir.display()
            );
            let report = andromede_testnet::chaos::run(&options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            if !report.ok() {
                if let Some(temp) = temp {
                    let kept = temp.keep();
                    eprintln!("testnet kept for inspection in {}", kept.display());
                }
                anyhow::bail!("an invariant failed");
            }
            Ok(())
        }
        Command::Bench {
            dir,
            nodes,
            k,
            m,
            small_ops,
            rss_object_mib,
            repair_mib,
            node_bin,
            small_only,
        } => {
            let temp = tempfile::Builder::new()
                .prefix("andromede-bench-")
                .tempdir()?;
            let options = BenchOptions {
                dir: dir.unwrap_or_else(|| temp.path().join("testnet")),
                nodes,
                k,
                m,
                small_ops,
                rss_object_mib,
                repair_mib,
                node_bin,
                small_only,
            };
            andromede_testnet::bench::run(&options).await
        }
        Command::Partition { dir, nodes } => {
            Testnet::open(&dir.dir)?.partition(&nodes).await?;
            println!("nodes {nodes:?} cut off from the others");
            Ok(())
        }
        Command::Unpartition { dir } => {
            Testnet::open(&dir.dir)?.unpartition().await?;
            println!("partition lifted");
            Ok(())
        }
        Command::Slow { node, delay } => {
            Testnet::open(&node.dir.dir)?.slow(node.node, delay).await?;
            println!("node {} delays every request by {delay} ms", node.node);
            Ok(())
        }
        Command::Corrupt {
            node,
            fraction,
            seed,
        } => {
            let count = Testnet::open(&node.dir.dir)?.corrupt(node.node, fraction, seed)?;
            println!("{count} shard file(s) of node {} corrupted", node.node);
            Ok(())
        }
    }
}

async fn status(testnet: &Testnet) -> anyhow::Result<()> {
    println!(
        "{:<5} {:<8} {:>6} {:>8} {:>10} {:>9} {:>8} {:>7} {:>6}",
        "node", "process", "peers", "shards", "full segs", "degraded", "at risk", "lost", "queue"
    );
    for i in 0..testnet.len() {
        if !testnet.is_running(i) {
            println!("{i:<5} {:<8}", "stopped");
            continue;
        }
        match testnet.status(i).await {
            Ok(status) => {
                let health = &status.repair.health;
                println!(
                    "{i:<5} {:<8} {:>6} {:>8} {:>10} {:>9} {:>8} {:>7} {:>6}",
                    "running",
                    status.peers.iter().filter(|p| p.reachable).count(),
                    status.shard_count,
                    health.full,
                    health.degraded.values().sum::<u64>(),
                    health.at_risk,
                    health.lost,
                    status.repair.queue
                );
            }
            Err(error) => println!("{i:<5} {:<8} {error}", "running"),
        }
    }
    Ok(())
}
