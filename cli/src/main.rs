//! `andromede`: the command-line client. `init` writes a config and a new master key;
//! the other commands read the config (`--config` or `ANDROMEDE_CONFIG`) and talk to the
//! cluster through the client library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use andromede_client::{
    BucketOptions, Client, ErasureParams, ListOptions, MasterKey, PutObjectOptions,
};
use andromede_cluster::authority::{AuthorityKey, JoinToken, PeerRole, Trust, unix_now};
use andromede_cluster::net::{self, Multiaddr, PeerId};
use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncRead, AsyncWriteExt};

use andromede_client::ClientFile;

/// The Andromède command-line client.
#[derive(Debug, Parser)]
#[command(name = "andromede", version)]
struct Cli {
    /// The client config written by `andromede init`.
    #[arg(
        long,
        env = "ANDROMEDE_CONFIG",
        default_value = "andromede.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a client config from a join token (`andromede-node invite --client NAME`),
    /// with the identity and certificate it carries and a new master key (next to the
    /// config, mode 0600).
    Init {
        /// The token `andromede-node invite --client NAME` printed.
        #[arg(long)]
        join: String,
        /// Use this existing master key file instead of creating one (to read what other
        /// clients with that key wrote).
        #[arg(long)]
        master_key: Option<PathBuf>,
        /// Another node to join through (repeatable), besides those the token names.
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        /// Where to write the config.
        #[arg(long)]
        out: PathBuf,
    },
    /// Install a renewed certificate (a token from `andromede-node invite --peer ID
    /// --client NAME`).
    Renew {
        /// The token.
        token: String,
    },
    #[command(flatten)]
    Cluster(ClusterCommand),
}

/// The commands that talk to the cluster.
#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Make a bucket.
    Mb {
        /// Bucket name (3-63 lowercase letters, digits, '-', '.').
        bucket: String,
        /// Data shards per segment.
        #[arg(long, default_value_t = 4)]
        k: u32,
        /// Parity shards per segment (node losses survived).
        #[arg(long, default_value_t = 2)]
        m: u32,
        /// Keep shards in this jurisdiction (repeatable); default: anywhere.
        #[arg(long)]
        jurisdiction: Vec<String>,
    },
    /// Remove an empty bucket.
    Rb {
        /// Bucket name.
        bucket: String,
    },
    /// List buckets, or the objects of BUCKET[/PREFIX] ("/" rolls up directories).
    Ls {
        /// BUCKET or BUCKET/PREFIX; none lists the buckets.
        path: Option<String>,
    },
    /// Upload FILE (or - for stdin) to BUCKET/KEY.
    Put {
        /// File to upload, or - for stdin.
        file: String,
        /// Destination BUCKET/KEY.
        target: String,
        /// MIME type.
        #[arg(long, default_value = "application/octet-stream")]
        content_type: String,
    },
    /// Download BUCKET/KEY to FILE (or - for stdout).
    Get {
        /// Source BUCKET/KEY.
        source: String,
        /// File to write, or - for stdout.
        file: String,
    },
    /// Show an object's size, etag, date, content type, metadata and spread.
    Stat {
        /// BUCKET/KEY.
        target: String,
    },
    /// Delete an object.
    Rm {
        /// BUCKET/KEY.
        target: String,
    },
    /// Show where every shard of the current objects of BUCKET[/PREFIX] lives: holder,
    /// its certified jurisdiction and zone, whether it still has the shard, and the node
    /// failures each object survives. Exits with status 1 when a shard lies outside the
    /// bucket's jurisdictions or an object survives fewer failures than its m.
    Audit {
        /// BUCKET or BUCKET/PREFIX.
        path: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANDROMEDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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

/// `BUCKET/KEY` → (bucket, key).
fn split_target(target: &str) -> anyhow::Result<(&str, &str)> {
    target
        .split_once('/')
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .ok_or_else(|| anyhow!("'{target}' is not BUCKET/KEY"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            join,
            master_key,
            bootstrap,
            out,
        } => init(&join, master_key.as_deref(), &bootstrap, &out),
        Command::Renew { token } => renew(&cli.config, &token),
        Command::Cluster(command) => run_cluster(&connect(&cli.config).await?, command).await,
    }
}

async fn run_cluster(client: &Client, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Mb {
            bucket,
            k,
            m,
            jurisdiction,
        } => {
            let params = ErasureParams::new(k, m)?;
            let options = BucketOptions {
                params,
                jurisdictions: jurisdiction,
            };
            client.create_bucket(&bucket, options).await?;
            println!("made bucket {bucket} (k={k}, m={m})");
            Ok(())
        }
        ClusterCommand::Rb { bucket } => {
            client.delete_bucket(&bucket).await?;
            println!("removed bucket {bucket}");
            Ok(())
        }
        ClusterCommand::Ls { path: None } => {
            for (name, info) in client.list_buckets().await? {
                let policy = if info.jurisdictions.is_empty() {
                    "anywhere".to_string()
                } else {
                    info.jurisdictions.join(",")
                };
                println!(
                    "{:<40} k={} m={} {}",
                    name,
                    info.params.k(),
                    info.params.m(),
                    policy
                );
            }
            Ok(())
        }
        ClusterCommand::Ls { path: Some(path) } => list(client, &path).await,
        ClusterCommand::Put {
            file,
            target,
            content_type,
        } => put(client, &file, &target, content_type).await,
        ClusterCommand::Get { source, file } => get(client, &source, &file).await,
        ClusterCommand::Stat { target } => {
            let (bucket, key) = split_target(&target)?;
            let info = client.head_object(bucket, key).await?;
            println!("object:       {bucket}/{key}");
            println!("size:         {} bytes", info.size);
            println!("etag:         {}", info.etag);
            println!("version:      {}", hex::encode(info.version_id.as_bytes()));
            println!("modified:     {} ms since the Unix epoch", info.modified_ms);
            println!("content type: {}", info.content_type);
            println!("holders:      {} node(s)", info.holders);
            println!("written by:   {}", info.author);
            for (name, value) in &info.user_metadata {
                println!("meta {name}: {value}");
            }
            Ok(())
        }
        ClusterCommand::Audit { path, json } => audit(client, &path, json).await,
        ClusterCommand::Rm { target } => {
            let (bucket, key) = split_target(&target)?;
            client.delete_object(bucket, key).await?;
            println!("deleted {bucket}/{key}");
            Ok(())
        }
    }
}

async fn audit(client: &Client, path: &str, json: bool) -> anyhow::Result<()> {
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    let report = client.audit(bucket, prefix).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_audit(&report);
    }
    if report.summary.is_clean() {
        Ok(())
    } else {
        Err(anyhow!(
            "the audit found shards outside the bucket's policy, objects below their redundancy or records that do not verify (see above)"
        ))
    }
}

fn print_audit(report: &andromede_client::AuditReport) {
    let policy = if report.jurisdictions.is_empty() {
        "any jurisdiction".to_owned()
    } else {
        report.jurisdictions.join(",")
    };
    println!("bucket {} ({policy})", report.bucket);
    for object in &report.objects {
        if let Some(error) = &object.error {
            println!("{}: NOT AUDITED: {error}", object.key);
            continue;
        }
        let survives = object.survives.map_or_else(
            || "inline (kept with its metadata)".to_owned(),
            |s| format!("survives {s} node failure(s), m={}", object.m),
        );
        println!(
            "{}  {} bytes  k={} m={}  {survives}{}",
            object.key,
            object.size,
            object.k,
            object.m,
            if object.survives.is_some_and(|s| s < i64::from(object.m)) {
                "  DEGRADED"
            } else {
                ""
            }
        );
        for shard in &object.shards {
            let or_dash = |s: &str| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    s.to_owned()
                }
            };
            let place = match (&shard.jurisdiction, &shard.zone) {
                (Some(j), Some(z)) => format!("{}/{}", or_dash(j), or_dash(z)),
                _ => "place unknown (not in view)".to_owned(),
            };
            let state = match shard.present {
                Some(true) => "held",
                Some(false) => "MISSING",
                None => "UNREACHABLE",
            };
            println!(
                "  segment {} shard {}  {}  {place}  {state}{}",
                shard.segment,
                shard.shard,
                shard.holder,
                if shard.outside_policy {
                    "  OUTSIDE POLICY"
                } else {
                    ""
                }
            );
        }
    }
    for bad in &report.bad_records {
        println!(
            "BAD SIGNATURE: {} record {} on replica {}: {}",
            bad.table, bad.key, bad.replica, bad.reason
        );
    }
    let summary = &report.summary;
    println!(
        "records: {} checked on the bucket's replicas, {} do not verify{}",
        summary.records_checked,
        summary.records_bad,
        if summary.replicas_unread > 0 {
            format!(" ({} replica(s) unreadable)", summary.replicas_unread)
        } else {
            String::new()
        }
    );
    println!(
        "summary: {} object(s), {} shard(s): {} outside policy, {} missing, {} unreachable; {} object(s) below their redundancy; worst object survives {} failure(s){}",
        summary.objects,
        summary.shards,
        summary.shards_outside_policy,
        summary.shards_missing,
        summary.shards_unreachable,
        summary.objects_below_m,
        summary
            .worst_survives
            .map_or_else(|| "-".to_owned(), |w| w.to_string()),
        if summary.is_clean() { " — clean" } else { "" }
    );
}

/// `PATH` + `suffix`, absolute.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut with = path.as_os_str().to_owned();
    with.push(suffix);
    let with = PathBuf::from(with);
    std::path::absolute(&with).unwrap_or(with)
}

fn init(
    join: &str,
    master_key: Option<&Path>,
    bootstrap: &[Multiaddr],
    out: &Path,
) -> anyhow::Result<()> {
    let token = JoinToken::decode(join)?;
    let certificate = token.certificate();
    Trust::new(token.authority().clone())
        .verify_role(certificate, &certificate.peer(), PeerRole::Client, unix_now())
        .map_err(|e| anyhow!("the join token: {e}; ask for a client token (`andromede-node invite --client NAME`)"))?;
    let Some(secret) = token.identity_secret() else {
        return Err(anyhow!(
            "this token carries no identity (it renews an existing one): use `andromede renew TOKEN` with that client's config"
        ));
    };
    if out.exists() {
        return Err(anyhow!(
            "{} exists: refusing to overwrite a client config",
            out.display()
        ));
    }
    if let Some(path) = master_key {
        MasterKey::load_file(path)?;
    }
    let identity_path = beside(out, ".identity.key");
    let certificate_path = beside(out, ".certificate");
    net::create_identity_file(&identity_path, secret)?;
    certificate.write_file(&certificate_path)?;
    let key_path = match master_key {
        Some(path) => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        None => {
            let path = beside(out, ".master.key");
            MasterKey::create_file(&path)?;
            path
        }
    };
    let mut addrs: Vec<String> = token.bootstrap().iter().map(ToString::to_string).collect();
    addrs.extend(bootstrap.iter().map(ToString::to_string));
    ClientFile {
        authority: token.authority().to_string(),
        bootstrap: addrs,
        identity_file: identity_path,
        certificate_file: certificate_path,
        master_key_file: key_path.clone(),
    }
    .create(out)?;
    println!(
        "wrote {} (client {:?}, certified until {} Unix time)",
        out.display(),
        certificate.name(),
        certificate.not_after_unix()
    );
    if master_key.is_none() {
        println!(
            "new master key in {}: back it up; without it no object can be read",
            key_path.display()
        );
    }
    Ok(())
}

fn renew(config_path: &Path, token: &str) -> anyhow::Result<()> {
    let file = ClientFile::load(config_path)?;
    let authority: AuthorityKey = file.authority.parse()?;
    let identity = net::load_or_create_identity(&file.identity_file)?;
    let token = JoinToken::decode(token)?;
    Trust::new(authority)
        .verify_role(
            token.certificate(),
            &PeerId::from(identity.public()),
            PeerRole::Client,
            unix_now(),
        )
        .map_err(|e| anyhow!("the token's certificate does not fit this client: {e}"))?;
    token.certificate().write_file(&file.certificate_file)?;
    println!(
        "certificate renewed until {} (Unix time)",
        token.certificate().not_after_unix()
    );
    Ok(())
}

async fn connect(config_path: &Path) -> anyhow::Result<Client> {
    let config = ClientFile::load(config_path)?.client_config(config_path)?;
    let client = Client::connect(config)
        .await
        .context("connecting to the cluster")?;
    Ok(client)
}

fn bar(len: Option<u64>, label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(style),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(label.to_owned());
    bar
}

async fn put(
    client: &Client,
    file: &str,
    target: &str,
    content_type: String,
) -> anyhow::Result<()> {
    let (bucket, key) = split_target(target)?;
    let (reader, size): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) = if file == "-" {
        (Box::new(tokio::io::stdin()), None)
    } else {
        let f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("opening {file}"))?;
        let size = f.metadata().await?.len();
        (Box::new(f), Some(size))
    };
    let progress = bar(size, "put");
    let options = PutObjectOptions {
        content_type,
        size_hint: size,
        ..PutObjectOptions::default()
    };
    let info = client
        .put_object(bucket, key, progress.wrap_async_read(reader), options)
        .await?;
    progress.finish_and_clear();
    match info.node_failures_survived {
        Some(survived) => println!(
            "put {bucket}/{key}: {} bytes, etag {}, on {} node(s): survives {survived} node failure(s)",
            info.size, info.etag, info.holders
        ),
        None => println!(
            "put {bucket}/{key}: {} bytes, etag {}, kept with its metadata (small object)",
            info.size, info.etag
        ),
    }
    Ok(())
}

async fn get(client: &Client, source: &str, file: &str) -> anyhow::Result<()> {
    let (bucket, key) = split_target(source)?;
    let object = client.get_object(bucket, key, None).await?;
    let to_stdout = file == "-";
    let progress = if !to_stdout || std::io::stdout().is_terminal() {
        bar(Some(object.info.size), "get")
    } else {
        ProgressBar::hidden()
    };
    // Written to a temporary name and renamed once complete: no partial file on failure.
    let temp = PathBuf::from(format!("{file}.andromede-partial"));
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(&temp)
                .await
                .with_context(|| format!("creating {}", temp.display()))?,
        )
    };
    let mut body = object.body;
    let mut result: anyhow::Result<()> = Ok(());
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if let Err(e) = out.write_all(&chunk).await {
                    result = Err(e).context("writing the object");
                    break;
                }
                progress.inc(chunk.len() as u64);
            }
            Err(e) => {
                result = Err(e).context(format!("reading {bucket}/{key}"));
                break;
            }
        }
    }
    progress.finish_and_clear();
    if result.is_ok() {
        result = out.flush().await.context("writing the object");
    }
    drop(out);
    if to_stdout {
        return result;
    }
    match result {
        Ok(()) => {
            tokio::fs::rename(&temp, file)
                .await
                .with_context(|| format!("renaming {} to {file}", temp.display()))?;
            eprintln!("got {bucket}/{key}: {} bytes", object.info.size);
            Ok(())
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}

async fn list(client: &Client, path: &str) -> anyhow::Result<()> {
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    let mut options = ListOptions {
        prefix: prefix.to_owned(),
        delimiter: Some("/".into()),
        ..ListOptions::default()
    };
    loop {
        let page = client.list_objects(bucket, &options).await?;
        for common in &page.common_prefixes {
            println!("{:>14}  {common}", "PRE");
        }
        for object in &page.objects {
            println!("{:>14}  {}", object.size, object.key);
        }
        if !page.is_truncated {
            return Ok(());
        }
        options.continuation_token = page.next_continuation_token;
    }
}
