//! `andromede-node bench`: starts a loopback cluster of real node processes (this same
//! binary, `run`), drives it with the client library, and reports throughput, small-object
//! rates and each node's peak RSS. A measurement tool, not a test: numbers vary with the
//! machine and its load.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use andromede_client::codec::{CodecConfig, EncodedShard, ShardSink, encode_object};
use andromede_client::net::ClusterSecret;
use andromede_client::{
    BoxError, BucketOptions, Client, ClientConfig, ErasureParams, MasterKey, ObjectName,
    PutObjectOptions, PutOptions,
};
use andromede_node::config::NodeConfig;
use andromede_node::data_dir::DataDir;
use andromede_node::init::init_data_dir;
use anyhow::{Context, anyhow};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

const MIB: u64 = 1 << 20;

/// What to measure.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Node processes to start.
    #[arg(long, default_value_t = 6)]
    nodes: usize,
    /// Data shards per segment.
    #[arg(long, default_value_t = 4)]
    k: u32,
    /// Parity shards per segment.
    #[arg(long, default_value_t = 2)]
    m: u32,
    /// Small-object operations of each kind.
    #[arg(long, default_value_t = 1000)]
    small_ops: usize,
    /// Size of the large object whose passage sets the nodes' peak RSS, in MiB.
    #[arg(long, default_value_t = 1024)]
    rss_object_mib: u64,
}

/// Node processes, stopped (SIGTERM, then SIGKILL) when dropped.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Peak resident set of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Pseudo-random bytes (xorshift): incompressible enough, cheap to make.
fn data(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while (out.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(usize::try_from(len).unwrap_or(0));
    out
}

struct NullSink;

impl ShardSink for NullSink {
    async fn put_segment(&self, _segment: u64, _shards: &[EncodedShard]) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Rounds of each large PUT/GET measurement.
const ROUNDS: usize = 3;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn start_nodes(root: &Path, count: usize) -> anyhow::Result<(Nodes, String, PathBuf)> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut nodes = Nodes(Vec::new());
    let mut first = String::new();
    let secret = DataDir::new(&root.join("node0")).cluster_secret();
    for i in 0..count {
        let dir = root.join(format!("node{i}"));
        let addr = format!("/ip4/127.0.0.1/tcp/{}", free_port()?);
        if i == 0 {
            first.clone_from(&addr);
        }
        let config = NodeConfig {
            listen: vec![addr],
            bootstrap: if i == 0 {
                Vec::new()
            } else {
                vec![first.clone()]
            },
            zone: format!("zone-{i}"),
            capacity: "200GiB".into(),
            admin: format!("127.0.0.1:{}", free_port()?),
            ..NodeConfig::default()
        };
        let from = (i > 0).then_some(secret.as_path());
        init_data_dir(&DataDir::new(&dir), &config, from)?;
        let log = std::fs::File::create(dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(["run", "--data"])
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a node process")?;
        nodes.0.push(child);
    }
    Ok((nodes, first, secret))
}

async fn put_get(client: &Client, bucket: &str, size: u64) -> anyhow::Result<(f64, f64)> {
    let body = data(size, size);
    let key = format!("large-{size}");
    let options = PutObjectOptions {
        size_hint: Some(size),
        ..PutObjectOptions::default()
    };
    let start = Instant::now();
    client.put_object(bucket, &key, &body[..], options).await?;
    let put = mbps(size, start.elapsed());
    let start = Instant::now();
    let object = client.get_object(bucket, &key, None).await?;
    let mut hasher = blake3::Hasher::new();
    let mut stream = object.body;
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    let get = mbps(size, start.elapsed());
    if hasher.finalize() != blake3::hash(&body) {
        return Err(anyhow!("{key} read back different bytes"));
    }
    Ok((put, get))
}

async fn small_ops(client: &Client, bucket: &str, ops: usize) -> anyhow::Result<(f64, f64)> {
    let body = Arc::new(data(4096, 7));
    let start = Instant::now();
    let puts: Vec<anyhow::Result<()>> = futures::stream::iter(0..ops)
        .map(|i| {
            let (client, body) = (client.clone(), Arc::clone(&body));
            async move {
                client
                    .put_object(
                        bucket,
                        &format!("small/{i}"),
                        &body[..],
                        PutObjectOptions::default(),
                    )
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    puts.into_iter().collect::<anyhow::Result<()>>()?;
    let put_rate = ops as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let gets: Vec<anyhow::Result<()>> = futures::stream::iter(0..ops)
        .map(|i| {
            let (client, body) = (client.clone(), Arc::clone(&body));
            async move {
                let back = client
                    .get_object_bytes(bucket, &format!("small/{i}"))
                    .await?;
                if back != *body {
                    return Err(anyhow!("small/{i} read back different bytes"));
                }
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    gets.into_iter().collect::<anyhow::Result<()>>()?;
    Ok((put_rate, ops as f64 / start.elapsed().as_secs_f64()))
}

/// Runs the benchmark and prints the report.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let params = ErasureParams::new(args.k, args.m)?;
    let root = tempfile::tempdir().context("creating a scratch directory")?;
    println!(
        "starting {} node processes (RS({},{})) under {}",
        args.nodes,
        args.k,
        args.m,
        root.path().display()
    );
    let (nodes, first, secret) = start_nodes(root.path(), args.nodes)?;
    let master = MasterKey::generate();
    // The first node may still be starting: retry until it listens.
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        let mut config = ClientConfig::new(
            vec![first.parse()?],
            ClusterSecret::load_file(&secret)?,
            master.clone(),
        );
        config.connect_timeout = Duration::from_secs(30);
        match Client::connect(config).await {
            Ok(client) => break client,
            Err(error) if Instant::now() < deadline => {
                tracing::debug!(%error, "first node not ready yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => return Err(error).context("connecting to the first node"),
        }
    };
    if let Err(error) = client
        .wait_for_nodes(args.nodes, Duration::from_secs(120))
        .await
    {
        for i in 0..args.nodes {
            let log = root.path().join(format!("node{i}/node.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            eprintln!(
                "node{i} log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        return Err(error.into());
    }
    client
        .create_bucket(
            "bench",
            BucketOptions {
                params,
                jurisdictions: Vec::new(),
            },
        )
        .await?;

    // The codec alone, single stream, same process and run: the ceiling for a PUT.
    let codec = CodecConfig::default();
    let size = 256 * MIB;
    let body = data(size, 1);
    let start = Instant::now();
    encode_object(
        &codec,
        &MasterKey::generate(),
        &ObjectName::new("bench", "codec"),
        &PutOptions {
            params,
            ..PutOptions::default()
        },
        &body[..],
        &NullSink,
    )
    .await?;
    let codec_encode = mbps(size, start.elapsed());
    drop(body);
    println!("codec encode (no network), 256 MiB: {codec_encode:.0} MB/s");

    for size in [64 * MIB, 256 * MIB] {
        // The median of three rounds: one round on a shared machine is noisy.
        let mut puts = Vec::with_capacity(ROUNDS);
        let mut gets = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let (put, get) = put_get(&client, "bench", size).await?;
            puts.push(put);
            gets.push(get);
        }
        let (put, get) = (median(&mut puts), median(&mut gets));
        println!(
            "{} MiB object, median of {ROUNDS}: PUT {put:.0} MB/s ({:.2}x codec encode), GET {get:.0} MB/s ({:.2}x codec encode)",
            size / MIB,
            put / codec_encode,
            get / codec_encode
        );
    }
    let (put_rate, get_rate) = small_ops(&client, "bench", args.small_ops).await?;
    println!(
        "{} x 4 KiB at concurrency 8: PUT {put_rate:.0} ops/s, GET {get_rate:.0} ops/s",
        args.small_ops
    );

    let big = args.rss_object_mib * MIB;
    let start = Instant::now();
    let options = PutObjectOptions {
        size_hint: Some(big),
        ..PutObjectOptions::default()
    };
    client
        .put_object("bench", "rss", tokio::io::repeat(0x5a).take(big), options)
        .await?;
    let put = mbps(big, start.elapsed());
    let start = Instant::now();
    let mut stream = client.get_object("bench", "rss", None).await?.body;
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        read += chunk?.len() as u64;
    }
    if read != big {
        return Err(anyhow!("read {read} of {big} bytes"));
    }
    let get = mbps(big, start.elapsed());
    println!(
        "{} MiB object: PUT {put:.0} MB/s, GET {get:.0} MB/s",
        big / MIB
    );
    let peaks: Vec<String> = nodes
        .0
        .iter()
        .map(|c| peak_rss(c.id()).map_or("?".into(), |b| format!("{}", b / MIB)))
        .collect();
    println!(
        "peak RSS per node over the whole run (MiB): {}",
        peaks.join(", ")
    );
    drop(nodes);
    Ok(())
}
