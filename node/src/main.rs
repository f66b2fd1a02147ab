//! `andromede-node`: parse the command line, set up logging, run.

mod cli;

use std::process::ExitCode;

use andromede_node::daemon::{Daemon, DaemonConfig};
use andromede_node::data_dir::DataDir;
use andromede_node::store::ShardStore;
use andromede_node::workers::rate::RateLimiter;
use andromede_node::workers::scrub::{ScrubConfig, scrub_pass};
use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing::info;

use cli::{Cli, Command, StoreArgs};

fn main() -> ExitCode {
    andromede_node::telemetry::init();
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
        Command::Run {
            store,
            listen,
            bootstrap,
            scrub_rate,
            scrub_interval,
        } => {
            run_node(DaemonConfig {
                data: DataDir::new(&store.data),
                capacity_bytes: store.capacity,
                listen,
                bootstrap,
                scrub: ScrubConfig {
                    rate_bytes_per_sec: scrub_rate,
                    interval: scrub_interval,
                },
                tags: andromede_node::service::dispatch::NodeTags::default(),
            })
            .await
        }
        Command::Scrub { store, rate } => scrub_once(&store, rate).await,
    }
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<ShardStore> {
    let config = DataDir::new(&args.data).store_config(args.capacity);
    let (store, report) = tokio::task::spawn_blocking(move || ShardStore::open(&config))
        .await?
        .with_context(|| format!("opening the shard store in {}", args.data.display()))?;
    info!(
        data = %args.data.display(),
        shards = report.shard_count,
        bytes = report.used_bytes,
        adopted = report.adopted,
        quarantined = report.quarantined,
        "shard store ready"
    );
    Ok(store)
}

async fn run_node(config: DaemonConfig) -> anyhow::Result<()> {
    let data = config.data.clone();
    let daemon = Daemon::start(config)
        .await
        .with_context(|| format!("starting the node in {}", data.root().display()))?;
    let peer = daemon.net().local_peer_id();
    // Listening starts asynchronously: give it a moment to report its addresses.
    let mut addrs = Vec::new();
    for _ in 0..20 {
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
    println!(
        "to add a node: copy {} to its data dir, then run it with --bootstrap {}/p2p/{peer}",
        data.cluster_secret().display(),
        addrs.first().map(ToString::to_string).unwrap_or_default()
    );
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

async fn scrub_once(args: &StoreArgs, rate: u64) -> anyhow::Result<()> {
    let store = open_store(args).await?;
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
            args.data.join("store/quarantine").display()
        );
    }
    Ok(())
}
