//! `andromede-node`: parse the command line, set up logging, run.

mod authority_cmd;
mod cli;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use andromede_cluster::admin::{DrainProgress, admin_request, query_status};
use andromede_node::config::NodeConfig;
use andromede_node::daemon::Daemon;
use andromede_node::data_dir::DataDir;
use andromede_node::init::{InitSettings, Joining, init_data_dir};
use andromede_node::store::ShardStore;
use andromede_node::workers::rate::RateLimiter;
use andromede_node::workers::scrub::scrub_pass;
use anyhow::{Context, anyhow};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing::info;

use cli::{Cli, Command, InitArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A running node logs what it does; a one-shot command (invite, revoke, status)
    // only what went wrong.
    andromede_node::telemetry::init(match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    });
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
        Command::Init(args) => init(&args).map(|_| ()),
        Command::Run(args) => run_node(&args).await,
        Command::Invite(args) => authority_cmd::invite(&args),
        Command::Revoke(args) => authority_cmd::revoke(&args).await,
        Command::Retire(args) => authority_cmd::retire(&args).await,
        Command::Renew { data, token } => authority_cmd::renew(&data.data, &token),
        Command::Status { data, json } => status(&data.data, json).await,
        Command::Drain {
            data,
            no_wait,
            timeout_secs,
        } => drain(&data.data, no_wait, Duration::from_secs(timeout_secs)).await,
        Command::Scrub { data, rate } => scrub_once(&data.data, rate).await,
    }
}

fn init(args: &InitArgs) -> anyhow::Result<andromede_node::init::Initialised> {
    let settings = InitSettings {
        listen: vec![args.listen_or_default()],
        bootstrap: args.bootstrap.clone(),
        capacity: args.capacity.unwrap_or(10 << 30),
        admin: args.admin_or_default(),
    };
    let joining = match &args.join {
        Some(token) => Joining::Token(Box::new(andromede_cluster::authority::JoinToken::decode(
            token,
        )?)),
        None => Joining::NewCluster {
            name: args.name.clone().unwrap_or_else(|| "node-1".into()),
            zone: args.zone.clone().unwrap_or_default(),
            jurisdiction: args.jurisdiction.clone().unwrap_or_default(),
        },
    };
    let data = DataDir::new(&args.data.data);
    let done = init_data_dir(&data, settings, joining)
        .with_context(|| format!("initialising {}", args.data.data.display()))?;
    print_initialised(&data, &done);
    Ok(done)
}

fn print_initialised(data: &DataDir, done: &andromede_node::init::Initialised) {
    let cert = &done.certificate;
    println!("initialised {}", data.root().display());
    println!(
        "peer id: {} (certified as node {:?}, zone {:?}, jurisdiction {:?})",
        done.peer,
        cert.name(),
        cert.zone(),
        cert.jurisdiction()
    );
    for addr in &done.config.listen {
        println!("will listen on {addr}/p2p/{}", done.peer);
    }
    if done.new_cluster {
        println!(
            "started a new cluster, authority {}: its private key is {} (mode 0600); keep it safe, or move it off the nodes and pass --authority FILE to invite and revoke",
            done.authority,
            data.authority_key().display()
        );
    }
}

async fn run_node(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.data.data;
    let data = DataDir::new(dir);
    if !data.config().exists() {
        init(args)?;
    } else if args.sets_anything() {
        return Err(anyhow!(
            "{} is already initialised: its settings are in {} (edit it, or give only --data)",
            dir.display(),
            data.config().display()
        ));
    }
    let config = NodeConfig::load(&data.config())?;
    let daemon_config = config.daemon_config(data.clone())?;
    let daemon = Daemon::start(daemon_config)
        .await
        .with_context(|| format!("starting the node in {}", dir.display()))?;
    let peer = daemon.net().local_peer_id();
    // Listening starts asynchronously: give it a moment to report its addresses.
    let mut addrs = Vec::new();
    for _ in 0..40 {
        addrs = daemon.net().listen_addrs().await?;
        if !addrs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let usage = daemon.store().usage();
    info!(
        %peer,
        shards = usage.shard_count,
        used_bytes = usage.used_bytes,
        capacity_bytes = usage.capacity_bytes,
        "node running; Ctrl-C or SIGTERM stops it"
    );
    for addr in &addrs {
        println!("listening on {addr}/p2p/{peer}");
    }
    if data.authority_key().exists() {
        let at = dir.display();
        println!(
            "connect a client:  andromede init --join \"$(andromede-node invite --data {at} --client laptop --grant '*:all')\" --out client.toml"
        );
        println!(
            "add a node:        andromede-node run --data DIR2 --listen /ip4/127.0.0.1/tcp/4101 --admin 127.0.0.1:4181 --join \"$(andromede-node invite --data {at} --node node-2 --zone Z --jurisdiction J)\""
        );
        println!("revoke one:        andromede-node revoke --data {at} NAME");
    }
    shutdown_signal().await?;
    info!("stopping");
    daemon.stop().await.context("stopping the node")?;
    info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn load_config(dir: &Path) -> anyhow::Result<NodeConfig> {
    let path = DataDir::new(dir).config();
    if !path.exists() {
        return Err(anyhow!(
            "{} has no config.toml: run `andromede-node init --data {}` first",
            dir.display(),
            dir.display()
        ));
    }
    Ok(NodeConfig::load(&path)?)
}

async fn status(dir: &Path, json: bool) -> anyhow::Result<()> {
    let config = load_config(dir)?;
    let addr = config.admin;
    let status = query_status(addr).await.map_err(|e| anyhow!(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!(
        "node {}{}",
        status.peer,
        if status.draining {
            " (DRAINING: see `andromede-node drain`)"
        } else if status.catching_up {
            " (CATCHING UP: copying its metadata from the other replicas)"
        } else {
            ""
        }
    );
    println!(
        "  zone {:?}, jurisdiction {:?}, {} shards, {} of {} bytes used",
        status.zone,
        status.jurisdiction,
        status.shard_count,
        status.used_bytes,
        status.capacity_bytes
    );
    for addr in &status.listen {
        println!("  listening on {addr}");
    }
    if let Some(certificate) = &status.certificate {
        let now = andromede_cluster::authority::unix_now();
        let days_left = certificate.not_after_unix.saturating_sub(now) / 86_400;
        println!(
            "  certified as {:?} by {}, for {days_left} more day(s){}; revocation list version {}",
            certificate.name,
            certificate.authority,
            if days_left < 14 {
                " (RENEW IT: `andromede-node invite --peer` where the authority key is, then `renew` here)"
            } else {
                ""
            },
            status.revocations_version
        );
    }
    println!(
        "roster: {} member(s), {} reachable from here (this node included)",
        status.roster_members, status.roster_reachable
    );
    if let Some(minority) = &status.minority {
        println!("  MINORITY: {minority}");
    }
    println!("{} peer(s):", status.peers.len());
    println!(
        "  {:<54} {:<12} {:<6} {:>16} {:>16}  reachable",
        "peer", "zone", "juris.", "used bytes", "capacity bytes"
    );
    for peer in &status.peers {
        println!(
            "  {:<54} {:<12} {:<6} {:>16} {:>16}  {}",
            peer.peer,
            peer.zone,
            peer.jurisdiction,
            peer.used_bytes,
            peer.capacity_bytes,
            if peer.reachable { "yes" } else { "NO" },
        );
        if peer.draining {
            println!("    draining");
        }
        if peer.handing_off {
            println!(
                "    joining the replica sets near it (writes reach the sets with and without it)"
            );
        }
    }
    let repair = &status.repair;
    let health = &repair.health;
    if repair.health_at_ms == 0 {
        println!("redundancy: not checked yet (the first sweep runs once down_after has passed)");
    } else {
        let degraded: Vec<String> = health
            .degraded
            .iter()
            .map(|(missing, count)| format!("{count} missing {missing}"))
            .collect();
        println!(
            "redundancy of the segments this node repairs (last sweep): {} fully redundant, degraded: {}, {} at risk (k shards left), {} lost",
            health.full,
            if degraded.is_empty() {
                "none".into()
            } else {
                degraded.join(", ")
            },
            health.at_risk,
            health.lost
        );
        let survives: Vec<String> = health
            .survives_node_losses
            .iter()
            .map(|(losses, count)| format!("{count} survive {losses}"))
            .collect();
        println!(
            "  node losses the readable segments survive: {}",
            if survives.is_empty() {
                "none".into()
            } else {
                survives.join(", ")
            }
        );
    }
    println!(
        "repair: {} version(s) queued; since start {} segments repaired, {} shards ({} bytes) rebuilt or copied, {} of them moved off a node that keeps its old copy until orphan collection, {} manifests rewritten",
        repair.queue,
        repair.segments_repaired,
        repair.shards_rebuilt,
        repair.bytes_rebuilt,
        repair.shards_moved,
        repair.versions_repaired
    );
    print_workers(&status.workers);
    Ok(())
}

/// One line per background worker: passes, the last one's age, length and result.
fn print_workers(workers: &[andromede_cluster::admin::WorkerStatus]) {
    println!("workers:");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    for worker in workers {
        let last = if worker.passes == 0 {
            "no pass yet".to_owned()
        } else {
            format!(
                "last {} s ago, took {} ms, {} item(s){}",
                now_ms.saturating_sub(worker.last_pass_end_ms) / 1000,
                worker.last_pass_ms,
                worker.last_items,
                worker
                    .last_error
                    .as_ref()
                    .map(|e| format!(", stopped: {e}"))
                    .unwrap_or_default()
            )
        };
        println!(
            "  {:<13} {:>6} pass(es), {last}",
            worker.name, worker.passes
        );
    }
}

/// Starts draining the running node, then polls its progress until it is safe to stop.
async fn drain(dir: &Path, no_wait: bool, timeout: Duration) -> anyhow::Result<()> {
    let config = load_config(dir)?;
    let addr = config.admin;
    let answer: serde_json::Value =
        serde_json::from_str(&admin_request(addr, "drain").await.map_err(|e| anyhow!(e))?)?;
    if let Some(error) = answer.get("error") {
        return Err(anyhow!("the node refused to drain: {error}"));
    }
    println!(
        "node in {} is draining: it takes no new shards or metadata, and the cluster moves what it holds",
        dir.display()
    );
    if no_wait {
        println!(
            "run `andromede-node drain --data {}` again to follow it",
            dir.display()
        );
        return Ok(());
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = admin_request(addr, "drain-progress")
            .await
            .map_err(|e| anyhow!(e))?;
        let progress: DrainProgress = serde_json::from_str(&text).map_err(|e| {
            anyhow!("the node answered something other than drain progress ({e}): {text}")
        })?;
        if progress.safe_to_stop {
            bar.finish_and_clear();
            println!(
                "safe to stop: no manifest names this node as a holder any more and its metadata is on its new replicas"
            );
            return Ok(());
        }
        bar.set_message(format!(
            "{}{} object version(s) still name this node; metadata {}{}",
            if progress.capped { "at least " } else { "" },
            progress.versions_left,
            if progress.metadata_handed_off {
                "handed over"
            } else {
                "being handed over"
            },
            if progress.unanswered.is_empty() {
                String::new()
            } else {
                format!("; {} member(s) did not answer", progress.unanswered.len())
            }
        ));
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Err(anyhow!(
                "not safe to stop yet after {timeout:?} ({} version(s) left): the drain goes on; run the command again to follow it",
                progress.versions_left
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn open_store(dir: &Path) -> anyhow::Result<ShardStore> {
    let config = load_config(dir)?;
    let store_config = DataDir::new(dir).store_config(config.capacity);
    let (store, report) = tokio::task::spawn_blocking(move || ShardStore::open(&store_config))
        .await?
        .with_context(|| format!("opening the shard store in {}", dir.display()))?;
    info!(
        data = %dir.display(),
        shards = report.shard_count,
        bytes = report.used_bytes,
        adopted = report.adopted,
        quarantined = report.quarantined,
        "shard store ready"
    );
    Ok(store)
}

async fn scrub_once(dir: &Path, rate: u64) -> anyhow::Result<()> {
    let store = open_store(dir).await?;
    let bar = ProgressBar::new(store.usage().used_bytes).with_style(
        ProgressStyle::with_template(
            "{spinner} scrub [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let cancel = CancellationToken::new();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let report = scrub_pass(&store, &mut RateLimiter::new(rate), &cancel, |bytes| {
        bar.inc(bytes)
    })
    .await?;
    ctrl_c.abort();
    bar.finish_and_clear();
    println!(
        "scrub {}: {} intact, {} quarantined, {} missing, {} bytes checked",
        if report.cancelled {
            "interrupted"
        } else {
            "complete"
        },
        report.intact,
        report.quarantined,
        report.missing,
        report.bytes
    );
    if report.quarantined > 0 {
        println!(
            "quarantined shards were moved to {}; repair restores them once the node is in a cluster",
            dir.join("store/quarantine").display()
        );
    }
    Ok(())
}
