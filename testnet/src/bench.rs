//! `andromede-testnet bench`: a testnet of real node processes driven by one client.
//! Measures PUT/GET throughput of large objects (median of three rounds) against the
//! codec alone, small-object rates, the nodes' peak RSS, and repair after a node loses
//! its data: time to full redundancy (from the wipe and from the first rebuilt byte),
//! rebuilt MB/s, the clients' PUT throughput while repair runs, and the nodes' CPU and RSS
//! meanwhile. A measurement tool, not a test: numbers vary with the machine and its load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andromede_client::codec::{CodecConfig, EncodedShard, ShardSink, encode_object};
use andromede_client::{
    BoxError, BucketOptions, Client, ErasureParams, MasterKey, ObjectName, PutObjectOptions,
    PutOptions,
};
use anyhow::{Context, anyhow};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncReadExt;

use crate::cluster::{Testnet, UpOptions};
use crate::process::{cpu_time, peak_rss};
use crate::redundancy::{Depth, check_bucket};

const MIB: u64 = 1 << 20;
const BUCKET: &str = "bench";

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Node processes.
    pub nodes: usize,
    /// Data shards per segment.
    pub k: u32,
    /// Parity shards per segment.
    pub m: u32,
    /// Small-object operations of each kind.
    pub small_ops: usize,
    /// Size of the large object whose passage sets the nodes' peak RSS, in MiB.
    pub rss_object_mib: u64,
    /// Shard bytes the wiped node must hold before the repair measurement, in MiB
    /// (0 skips it).
    pub repair_mib: u64,
    /// The node binary.
    pub node_bin: Option<PathBuf>,
    /// Where the testnet lives (a fresh directory).
    pub dir: PathBuf,
    /// Measure the 4 KiB operations only (rates and p50/p99 latencies).
    pub small_only: bool,
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

async fn put_get(client: &Client, size: u64) -> anyhow::Result<(f64, f64)> {
    let body = data(size, size);
    let key = format!("large-{size}");
    let options = PutObjectOptions {
        size_hint: Some(size),
        ..PutObjectOptions::default()
    };
    let start = Instant::now();
    client.put_object(BUCKET, &key, &body[..], options).await?;
    let put = mbps(size, start.elapsed());
    let start = Instant::now();
    let object = client.get_object(BUCKET, &key, None).await?;
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

/// Rates and latencies of 4 KiB operations at concurrency 8.
struct SmallOps {
    put_rate: f64,
    get_rate: f64,
    /// p50 and p99 of a PUT, in milliseconds.
    put_ms: (f64, f64),
    /// p50 and p99 of a GET, in milliseconds.
    get_ms: (f64, f64),
    /// Listing every key written (pages of 1 000, one after another): keys, time.
    listed: (usize, Duration),
}

impl SmallOps {
    fn print(&self, ops: usize) {
        println!(
            "{ops} x 4 KiB at concurrency 8: PUT {:.0} ops/s (p50 {:.1} ms, p99 {:.1} ms), GET {:.0} ops/s (p50 {:.1} ms, p99 {:.1} ms)",
            self.put_rate,
            self.put_ms.0,
            self.put_ms.1,
            self.get_rate,
            self.get_ms.0,
            self.get_ms.1
        );
        let (keys, took) = self.listed;
        println!(
            "LIST of {keys} keys (pages of 1000): {:.0} ms, {:.0} keys/s",
            took.as_secs_f64() * 1000.0,
            keys as f64 / took.as_secs_f64().max(f64::EPSILON)
        );
    }
}

/// The `permille`/1000 quantile of `values`, in milliseconds.
fn quantile_ms(values: &mut [Duration], permille: usize) -> f64 {
    values.sort_unstable();
    let last = values.len().saturating_sub(1);
    let at = (last * permille + 500) / 1000;
    values
        .get(at.min(last))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn small_ops(client: &Client, ops: usize) -> anyhow::Result<SmallOps> {
    let body = Arc::new(data(4096, 7));
    let start = Instant::now();
    let puts: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..ops)
        .map(|i| {
            let (client, body) = (client.clone(), Arc::clone(&body));
            async move {
                let started = Instant::now();
                client
                    .put_object(
                        BUCKET,
                        &format!("small/{i}"),
                        &body[..],
                        PutObjectOptions::default(),
                    )
                    .await?;
                Ok(started.elapsed())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut put_times = puts
        .into_iter()
        .collect::<anyhow::Result<Vec<Duration>>>()?;
    let put_rate = ops as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let gets: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..ops)
        .map(|i| {
            let (client, body) = (client.clone(), Arc::clone(&body));
            async move {
                let started = Instant::now();
                let back = client
                    .get_object_bytes(BUCKET, &format!("small/{i}"))
                    .await?;
                if back != *body {
                    return Err(anyhow!("small/{i} read back different bytes"));
                }
                Ok(started.elapsed())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut get_times = gets
        .into_iter()
        .collect::<anyhow::Result<Vec<Duration>>>()?;
    let get_rate = ops as f64 / start.elapsed().as_secs_f64();
    // Metadata-heavy work: every key listed, a page at a time.
    let start = Instant::now();
    let mut options = andromede_client::ListOptions {
        prefix: "small/".into(),
        ..andromede_client::ListOptions::default()
    };
    let mut keys = 0;
    loop {
        let page = client.list_objects(BUCKET, &options).await?;
        keys += page.objects.len();
        match page.next_continuation_token {
            Some(token) if page.is_truncated => options.continuation_token = Some(token),
            _ => break,
        }
    }
    if keys != ops {
        return Err(anyhow!("listed {keys} keys, {ops} written"));
    }
    let listed = (keys, start.elapsed());
    Ok(SmallOps {
        listed,
        put_rate,
        get_rate,
        put_ms: (
            quantile_ms(&mut put_times, 500),
            quantile_ms(&mut put_times, 990),
        ),
        get_ms: (
            quantile_ms(&mut get_times, 500),
            quantile_ms(&mut get_times, 990),
        ),
    })
}

/// Streams `size` bytes of one repeated byte as `key`; returns MB/s.
async fn put_stream(client: &Client, key: &str, size: u64) -> anyhow::Result<f64> {
    let options = PutObjectOptions {
        size_hint: Some(size),
        ..PutObjectOptions::default()
    };
    let start = Instant::now();
    client
        .put_object(BUCKET, key, tokio::io::repeat(0x5a).take(size), options)
        .await?;
    Ok(mbps(size, start.elapsed()))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} MiB"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs the benchmark and prints the report; the testnet is stopped at the end.
///
/// # Errors
/// When the testnet cannot be started or driven, or a read returns other bytes.
pub async fn run(options: &BenchOptions) -> anyhow::Result<()> {
    let up = UpOptions {
        nodes: options.nodes,
        zones: options.nodes,
        k: options.k,
        m: options.m,
        down_after: "10s".into(),
        repair_sweep_interval: "10s".into(),
        scrub_interval: "24h".into(),
        node_bin: options.node_bin.clone(),
        planted_bug: None,
        ..UpOptions::default()
    };
    println!(
        "starting {} node processes (RS({},{})) under {}",
        options.nodes,
        options.k,
        options.m,
        options.dir.display()
    );
    let mut testnet = Testnet::up(&options.dir, &up).await?.kill_on_drop();
    let result = measure(&mut testnet, options).await;
    testnet.down()?;
    result
}

async fn measure(testnet: &mut Testnet, options: &BenchOptions) -> anyhow::Result<()> {
    let params = ErasureParams::new(options.k, options.m)?;
    let client = testnet.client().await?;
    client
        .wait_for_nodes(options.nodes, Duration::from_secs(120))
        .await?;
    client
        .create_bucket(
            BUCKET,
            BucketOptions {
                params,
                jurisdictions: Vec::new(),
            },
        )
        .await?;

    if options.small_only {
        let small = small_ops(&client, options.small_ops).await?;
        small.print(options.small_ops);
        return Ok(());
    }
    // The codec alone, single stream, same process and run: the ceiling for a PUT.
    let size = 256 * MIB;
    let body = data(size, 1);
    let start = Instant::now();
    encode_object(
        &CodecConfig::default(),
        &MasterKey::generate(),
        &ObjectName::new(BUCKET, "codec"),
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

    let mut put_large = 0.0;
    for size in [64 * MIB, 256 * MIB] {
        let mut puts = Vec::with_capacity(ROUNDS);
        let mut gets = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let (put, get) = put_get(&client, size).await?;
            puts.push(put);
            gets.push(get);
        }
        let (put, get) = (median(&mut puts), median(&mut gets));
        put_large = put;
        println!(
            "{} MiB object, median of {ROUNDS}: PUT {put:.0} MB/s ({:.2}x codec encode), GET {get:.0} MB/s ({:.2}x codec encode)",
            size / MIB,
            put / codec_encode,
            get / codec_encode
        );
    }
    let small = small_ops(&client, options.small_ops).await?;
    small.print(options.small_ops);

    let big = options.rss_object_mib * MIB;
    let put = put_stream(&client, "rss", big).await?;
    let start = Instant::now();
    let mut stream = client.get_object(BUCKET, "rss", None).await?.body;
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
    let peaks: Vec<String> = (0..testnet.len())
        .map(|i| {
            testnet.state().nodes[i]
                .pid
                .and_then(peak_rss)
                .map_or("?".into(), |b| format!("{}", b / MIB))
        })
        .collect();
    println!(
        "peak RSS per node over the whole run (MiB): {}",
        peaks.join(", ")
    );
    if options.repair_mib > 0 {
        repair(testnet, &client, options, put_large).await?;
    }
    Ok(())
}

/// Fills the cluster until the last node holds `repair_mib`, then wipes it twice: once
/// with clients idle (repair throughput, time to full redundancy, the nodes' CPU and
/// RSS), once while a client writes 64 MiB objects (the PUT throughput repair leaves).
async fn repair(
    testnet: &mut Testnet,
    client: &Client,
    options: &BenchOptions,
    put_baseline: f64,
) -> anyhow::Result<()> {
    let victim = testnet.len() - 1;
    let target = options.repair_mib * MIB;
    let bar = progress(options.repair_mib, "filling the wiped node-to-be");
    let mut n = 0u64;
    loop {
        let held = testnet.status(victim).await?.used_bytes;
        bar.set_position(held / MIB);
        if held >= target {
            break;
        }
        put_stream(client, &format!("fill/{n}"), 256 * MIB).await?;
        n += 1;
    }
    bar.finish_and_clear();
    let held = testnet.status(victim).await?.used_bytes;
    println!(
        "repair: node {victim} holds {} MiB of shards ({n} objects of 256 MiB written)",
        held / MIB
    );

    let idle = wipe_and_repair(testnet, client, victim, false).await?;
    println!(
        "repair with clients idle, after wiping node {victim}: full redundancy {:.1} s after the wipe, {:.1} s after the first rebuilt byte; {} MiB rebuilt in {:.1} s at {:.0} MB/s; {} segments checked",
        idle.from_wipe.as_secs_f64(),
        idle.from_start.as_secs_f64(),
        idle.rebuilt / MIB,
        idle.rebuilding.as_secs_f64(),
        mbps(idle.rebuilt_while_timed, idle.rebuilding),
        idle.segments
    );
    println!("nodes during that repair: {}", idle.usage.join("; "));

    let loaded = wipe_and_repair(testnet, client, victim, true).await?;
    let put_during = loaded.put_during.unwrap_or(0.0);
    println!(
        "repair while a client writes, after wiping node {victim} again: full redundancy {:.1} s after the wipe; {} MiB rebuilt at {:.0} MB/s; client PUT (64 MiB objects) meanwhile {put_during:.0} MB/s ({:.0}% of the {put_baseline:.0} MB/s measured idle)",
        loaded.from_wipe.as_secs_f64(),
        loaded.rebuilt / MIB,
        mbps(loaded.rebuilt_while_timed, loaded.rebuilding),
        100.0 * put_during / put_baseline.max(1.0)
    );
    Ok(())
}

/// One measured repair.
struct RepairRun {
    /// From the wipe to full redundancy.
    from_wipe: Duration,
    /// From the first rebuilt byte to full redundancy.
    from_start: Duration,
    /// From the first rebuilt byte seen to the last (the rebuild itself, without the
    /// final redundancy check): what the throughput is measured over.
    rebuilding: Duration,
    /// Bytes of shards rebuilt.
    rebuilt: u64,
    /// Bytes of shards rebuilt during `rebuilding` (those seen at its start excluded).
    rebuilt_while_timed: u64,
    /// Segments checked at the end.
    segments: u64,
    /// CPU and peak RSS of each node over the run.
    usage: Vec<String>,
    /// The writer's PUT throughput, when one ran.
    put_during: Option<f64>,
}

/// Wipes node `victim` and waits until every segment is fully redundant again, with a
/// client writing 64 MiB objects meanwhile when `with_writer`.
async fn wipe_and_repair(
    testnet: &mut Testnet,
    client: &Client,
    victim: usize,
    with_writer: bool,
) -> anyhow::Result<RepairRun> {
    let before: BTreeMap<usize, u64> = bytes_rebuilt(testnet).await;
    let cpu_before: BTreeMap<usize, Duration> = (0..testnet.len())
        .filter_map(|i| Some((i, cpu_time(testnet.state().nodes[i].pid?)?)))
        .collect();
    let wiped_at = Instant::now();
    testnet.wipe(victim)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = with_writer.then(|| {
        let writer_client = client.clone();
        let writer_stop = stop.clone();
        tokio::spawn(async move {
            let (mut bytes, start) = (0u64, Instant::now());
            let mut i = 0;
            while !writer_stop.is_cancelled() {
                if put_stream(&writer_client, &format!("during/{i}"), 64 * MIB)
                    .await
                    .is_ok()
                {
                    bytes += 64 * MIB;
                }
                i += 1;
            }
            mbps(bytes, start.elapsed())
        })
    });
    let mut started: Option<Instant> = None;
    let (mut last_progress, mut rebuilt_before, mut rebuilt_at_start) = (Instant::now(), 0, 0);
    let (rebuilt, redundancy) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = bytes_rebuilt(testnet).await;
        let rebuilt: u64 = now
            .iter()
            .map(|(i, b)| {
                b.saturating_sub(if *i == victim {
                    0
                } else {
                    before.get(i).copied().unwrap_or(0)
                })
            })
            .sum();
        if started.is_none() && rebuilt > 0 {
            started = Some(Instant::now());
            rebuilt_at_start = rebuilt;
        }
        if rebuilt > rebuilt_before {
            (last_progress, rebuilt_before) = (Instant::now(), rebuilt);
            continue;
        }
        // Checked only once rebuilding pauses: the check reads every manifest and asks
        // every holder, and would otherwise compete with the repair it measures.
        if started.is_some() {
            let running = testnet.running_peers().await;
            let redundancy = check_bucket(client, BUCKET, &running, Depth::Have).await?;
            if redundancy.is_full() {
                break (rebuilt, redundancy);
            }
        }
        if wiped_at.elapsed() > Duration::from_secs(3600) {
            return Err(anyhow!("repair did not finish within an hour"));
        }
    };
    let done = Instant::now();
    stop.cancel();
    let put_during = match writer {
        Some(writer) => Some(writer.await.context("the writer task failed")?),
        None => None,
    };
    let elapsed = done.duration_since(wiped_at).as_secs_f64();
    let usage: Vec<String> = (0..testnet.len())
        .map(|i| {
            let pid = testnet.state().nodes[i].pid;
            let cpu = pid.and_then(cpu_time).map_or(0.0, |now| {
                let before = if i == victim {
                    Duration::ZERO
                } else {
                    cpu_before.get(&i).copied().unwrap_or_default()
                };
                now.saturating_sub(before).as_secs_f64() / elapsed * 100.0
            });
            let rss = pid.and_then(peak_rss).map_or(0, |b| b / MIB);
            format!("node {i}: {cpu:.0}% CPU, peak RSS {rss} MiB")
        })
        .collect();
    Ok(RepairRun {
        from_wipe: done.duration_since(wiped_at),
        from_start: started.map_or(Duration::ZERO, |s| done.duration_since(s)),
        rebuilding: started.map_or(Duration::ZERO, |s| last_progress.duration_since(s)),
        rebuilt_while_timed: rebuilt.saturating_sub(rebuilt_at_start),
        rebuilt,
        segments: redundancy.segments,
        usage,
        put_during,
    })
}

async fn bytes_rebuilt(testnet: &Testnet) -> BTreeMap<usize, u64> {
    let mut out = BTreeMap::new();
    for i in testnet.running_nodes() {
        if let Ok(status) = testnet.status(i).await {
            out.insert(i, status.repair.bytes_rebuilt);
        }
    }
    out
}
