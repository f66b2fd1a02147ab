//! `andromede-gateway`: the S3-compatible gateway. `init` writes its config and the first
//! access key, `run` serves S3, `key` manages access keys.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use andromede_client::{Client, ClientFile, MemoryBudget};
use andromede_gateway::access::Access;
use andromede_gateway::config::{GatewayFile, LISTEN_DEFAULT, REGION_DEFAULT};
use andromede_gateway::keys::{AccessKey, Grant, KeyStore};
use andromede_gateway::s3::Gateway;
use andromede_gateway::server;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tracing::info;

/// The Andromède S3 gateway: aws-cli, boto3, rclone, restic and every S3 SDK, on your
/// cluster.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a gateway config from a client config and creates the first access key
    /// (what the gateway's certificate allows: its grants at their widest permission, and
    /// bucket creation with an owner grant).
    Init {
        /// The client config the gateway reaches the cluster with (`andromede init`).
        #[arg(long)]
        client: PathBuf,
        /// The gateway config to write.
        #[arg(long, default_value = "gateway.toml")]
        out: PathBuf,
        /// Address to listen on (loopback unless told otherwise).
        #[arg(long, default_value = LISTEN_DEFAULT)]
        listen: SocketAddr,
        /// Root domain for virtual-hosted-style requests (repeatable).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// The region clients sign requests for.
        #[arg(long, default_value = REGION_DEFAULT)]
        region: String,
        /// Incomplete multipart uploads are collected after this long.
        #[arg(long, default_value = "7d", value_parser = andromede_cluster::units::parse_duration)]
        multipart_expiry: std::time::Duration,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_certificate: Option<PathBuf>,
        /// The PEM private key of --tls-certificate.
        #[arg(long, requires = "tls_certificate")]
        tls_key: Option<PathBuf>,
    },
    /// Serves S3 until Ctrl-C or SIGTERM.
    Run {
        /// The gateway config.
        #[arg(long, default_value = "gateway.toml")]
        config: PathBuf,
        /// Listen here instead of the config's address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Access keys: create, list, delete.
    Key {
        /// The gateway config.
        #[arg(long, default_value = "gateway.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Creates a key and prints its secret (shown this once).
    Create {
        /// Who or what the key is for.
        name: String,
        /// BUCKET:read|write|owner; BUCKET may be `prefix*` or `*` (repeatable).
        #[arg(long = "grant")]
        grants: Vec<Grant>,
        /// The key may create buckets (and owns those it creates).
        #[arg(long)]
        create_buckets: bool,
    },
    /// Lists keys (never their secrets).
    List,
    /// Deletes a key: other gateways stop taking it within 10 seconds.
    Delete {
        /// The access key id.
        id: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // s3s logs every refused request at error level (a 404 included): ours say what
    // matters.
    let level = match cli.command {
        Command::Run { .. } => "info,s3s::ops=off",
        _ => "warn,s3s::ops=off",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn connect(
    client_config: &Path,
    multipart_expiry: std::time::Duration,
) -> anyhow::Result<Client> {
    let mut config = ClientFile::load(client_config)?.client_config(client_config)?;
    config.multipart_expiry = multipart_expiry;
    config.codec.memory = Some(MemoryBudget::new(server::CODEC_MEMORY_BYTES));
    Client::connect(config)
        .await
        .context("connecting to the cluster")
}

fn print_key(key: &AccessKey, endpoint: &str) {
    println!("access key id:     {}", key.id);
    println!("secret access key: {}", key.secret);
    let grants: Vec<String> = key.grants.iter().map(ToString::to_string).collect();
    println!(
        "grants:            {}{}",
        grants.join(", "),
        if key.create_buckets {
            "; may create buckets"
        } else {
            ""
        }
    );
    println!("(the secret is shown this once: keep it now)");
    println!();
    println!("try it:");
    println!(
        "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY='{}' aws --endpoint-url {endpoint} s3 ls",
        key.id, key.secret
    );
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init {
            client,
            out,
            listen,
            domains,
            region,
            tls_certificate,
            tls_key,
            multipart_expiry,
        } => {
            if out.exists() {
                bail!(
                    "{} exists: a gateway config is never overwritten",
                    out.display()
                );
            }
            let client_path = std::path::absolute(&client).unwrap_or(client);
            let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
            let file = GatewayFile {
                client_config: client_path.clone(),
                listen,
                domains,
                region,
                multipart_expiry,
                tls_certificate: tls_certificate.map(absolute),
                tls_key: tls_key.map(absolute),
            };
            file.check()?;
            if let (Some(certificate), Some(key)) = (&file.tls_certificate, &file.tls_key) {
                server::tls_acceptor(certificate, key)?;
            }
            let scheme = if file.tls_certificate.is_some() {
                "https"
            } else {
                "http"
            };
            let cluster = connect(&client_path, file.multipart_expiry).await?;
            // The first key may do what the gateway's certificate allows.
            let (grants, create_buckets) =
                andromede_gateway::keys::admin_grants(cluster.net().certificate().grants());
            if grants.is_empty() {
                bail!(
                    "this client's certificate grants nothing: ask the authority for one with --grant (e.g. '*:all')"
                );
            }
            let keys = KeyStore::new(cluster);
            let key = AccessKey::generate("admin", grants, create_buckets);
            keys.put(&key)
                .await
                .context("storing the first access key")?;
            file.create(&out)?;
            println!("wrote {}; start the gateway with:", out.display());
            println!("  andromede-gateway run --config {}", out.display());
            println!();
            print_key(&key, &format!("{scheme}://{listen}"));
            Ok(())
        }
        Command::Run { config, listen } => {
            let file = GatewayFile::load(&config)?;
            let listen = listen.unwrap_or(file.listen);
            let client = connect(&file.client_config, file.multipart_expiry).await?;
            let keys = Arc::new(KeyStore::new(client.clone()));
            let gateway = Gateway::new(client, Arc::clone(&keys), file.region.clone());
            let service = server::service(gateway, Access::new(keys), &file.domains)?;
            let tls = match (&file.tls_certificate, &file.tls_key) {
                (Some(certificate), Some(key)) => Some(server::tls_acceptor(certificate, key)?),
                _ => None,
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let local = listener.local_addr()?;
            info!(address = %local, region = %file.region, tls = tls.is_some(), "serving S3");
            println!("serving S3 on {scheme}://{local}");
            server::serve(listener, service, tls).await
        }
        Command::Key { config, command } => {
            let file = GatewayFile::load(&config)?;
            let cluster = connect(&file.client_config, file.multipart_expiry).await?;
            let certified = cluster.net().certificate().grants().to_vec();
            let keys = KeyStore::new(cluster);
            match command {
                KeyCommand::Create {
                    name,
                    grants,
                    create_buckets,
                } => {
                    if grants.is_empty() && !create_buckets {
                        bail!(
                            "a key with no grant can do nothing: give --grant BUCKET:PERMISSION or --create-buckets"
                        );
                    }
                    let key = AccessKey::generate(&name, grants, create_buckets);
                    key.check_within(&certified).map_err(anyhow::Error::msg)?;
                    keys.put(&key).await.context("storing the key")?;
                    let scheme = if file.tls_certificate.is_some() {
                        "https"
                    } else {
                        "http"
                    };
                    print_key(&key, &format!("{scheme}://{}", file.listen));
                }
                KeyCommand::List => {
                    let mut all = keys.list().await?;
                    all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                    println!("{:<22} {:<20} {:<8} grants", "id", "name", "create");
                    for key in all {
                        let grants: Vec<String> =
                            key.grants.iter().map(ToString::to_string).collect();
                        println!(
                            "{:<22} {:<20} {:<8} {}",
                            key.id,
                            key.name,
                            if key.create_buckets { "yes" } else { "no" },
                            grants.join(" ")
                        );
                    }
                }
                KeyCommand::Delete { id } => {
                    if !keys.delete(&id).await? {
                        bail!("no access key {id}: see `andromede-gateway key list`");
                    }
                    println!("deleted {id}; other gateways stop taking it within 10 seconds");
                }
            }
            Ok(())
        }
    }
}
