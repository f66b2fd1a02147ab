//! The gateway against the native client on one testnet (`cargo bench -p
//! andromede-gateway --bench gateway`): a 6-node RS(4,2) testnet of node processes, the
//! gateway built with the bench profile, boto3 for the S3 side (`bench/s3_bench.py`, with
//! aws-cli's transfer settings: 8 MiB parts, 10 threads).
//!
//! Measures PUT and GET of a large object (median of 3), 1000 × 4 KiB PUT and GET at
//! concurrency 8, and the gateway's peak RSS (VmHWM) under 8 concurrent 1 GiB uploads.
//! `BENCH_LARGE_MIB` (256), `BENCH_SMALL_OPS` (1000), `BENCH_RSS_UPLOADS` (8) and
//! `BENCH_RSS_MIB` (1024) change the sizes; `BENCH_RSS_UPLOADS=0` skips that phase.
//! The node binary is the release one: `cargo build --release -p andromede-node` first.
//! The concurrent uploads write 12 GiB of shards to the testnet's directory (under the
//! system's temporary directory): leave ~16 GiB free, or lower `BENCH_RSS_MIB`.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use andromede_client::{BucketOptions, Client, ErasureParams, PutObjectOptions};
use andromede_testnet::cluster::{CLIENT_FILE, Testnet, UpOptions};

const MIB: usize = 1 << 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Operations per second of `count` small PUTs (or GETs) by 8 workers.
async fn small_ops(client: &Client, bodies: &Arc<Vec<Vec<u8>>>, get: bool) -> f64 {
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, bodies, next) = (client.clone(), Arc::clone(bodies), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() {
                        return;
                    }
                    let key = format!("native-small/{i:05}");
                    if get {
                        let back = client.get_object_bytes("bench", &key).await.unwrap();
                        assert!(back == bodies[i]);
                    } else {
                        client
                            .put_object(
                                "bench",
                                &key,
                                bodies[i].as_slice(),
                                PutObjectOptions::default(),
                            )
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    bodies.len() as f64 / start.elapsed().as_secs_f64()
}

/// Native client: large PUT and GET MiB/s (median of 3), small PUT and GET ops/s.
async fn native(client: &Client, large_mib: usize, count: usize) -> [f64; 4] {
    let body = random(large_mib * MIB, 3);
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let key = format!("native-large-{round}");
        let options = PutObjectOptions {
            size_hint: Some(body.len() as u64),
            ..PutObjectOptions::default()
        };
        let start = Instant::now();
        client
            .put_object("bench", &key, body.as_slice(), options)
            .await
            .unwrap();
        puts.push(large_mib as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        let back = client.get_object_bytes("bench", &key).await.unwrap();
        gets.push(large_mib as f64 / start.elapsed().as_secs_f64());
        assert!(back == body);
    }
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..count).map(|i| random(4096, i as u64)).collect());
    let small_put = small_ops(client, &bodies, false).await;
    let small_get = small_ops(client, &bodies, true).await;
    [median(puts), median(gets), small_put, small_get]
}

/// One phase of `bench/s3_bench.py`; its JSON answer.
fn s3_phase(endpoint: &str, id: &str, secret: &str, args: &[&str]) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/s3_bench.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("S3_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("BENCH_BUCKET", "s3bench")
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn main() {
    let large_mib = env_usize("BENCH_LARGE_MIB", 256);
    let count = env_usize("BENCH_SMALL_OPS", 1000);
    let rss_uploads = env_usize("BENCH_RSS_UPLOADS", 8);
    let rss_mib = env_usize("BENCH_RSS_MIB", 1024);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let options = UpOptions {
            nodes: 6,
            zones: 3,
            k: 4,
            m: 2,
            ..UpOptions::default()
        };
        eprintln!("starting a 6-node RS(4,2) testnet in {}", dir.path().display());
        let testnet = Testnet::up(&dir.path().join("testnet"), &options)
            .await
            .unwrap()
            .kill_on_drop();
        let client = testnet.client().await.unwrap();
        client.wait_for_nodes(6, Duration::from_secs(60)).await.unwrap();
        let bucket = BucketOptions {
            params: ErasureParams::new(4, 2).unwrap(),
            jurisdictions: Vec::new(),
        };
        client.create_bucket("bench", bucket).await.unwrap();
        eprintln!("native client: {large_mib} MiB ×3, {count} × 4 KiB at concurrency 8");
        let [n_put, n_get, n_small_put, n_small_get] = native(&client, large_mib, count).await;

        let gateway_bin = env!("CARGO_BIN_EXE_andromede-gateway");
        let config = dir.path().join("gateway.toml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let init = Command::new(gateway_bin)
            .args(["init", "--client"])
            .arg(dir.path().join("testnet").join(CLIENT_FILE))
            .arg("--out")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&init.stdout).into_owned();
        assert!(init.status.success(), "{text}{}", String::from_utf8_lossy(&init.stderr));
        let field = |label: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(label))
                .unwrap()
                .trim()
                .to_owned()
        };
        let (id, secret) = (field("access key id:"), field("secret access key:"));
        let endpoint = format!("http://127.0.0.1:{port}");
        // A fresh gateway process for each phase: each phase's peak RSS is its own.
        let start_gateway = async || {
            let gateway = Command::new(gateway_bin)
                .args(["run", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            gateway
        };
        let stop = |mut gateway: std::process::Child| {
            let peak = peak_rss_mib(gateway.id());
            let _ = gateway.kill();
            let _ = gateway.wait();
            peak
        };
        let gateway = start_gateway().await;
        let made = Command::new("aws")
            .args(["--endpoint-url", &endpoint, "s3", "mb", "s3://s3bench"])
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        eprintln!("gateway (boto3): {large_mib} MiB ×3");
        let large = s3_phase(&endpoint, &id, &secret, &["large", &large_mib.to_string(), "3"]);
        let rss_large = stop(gateway);
        let gateway = start_gateway().await;
        eprintln!("gateway (boto3): {count} × 4 KiB at concurrency 8");
        let small = s3_phase(&endpoint, &id, &secret, &["small", &count.to_string(), "8"]);
        let rss_small = stop(gateway);
        let rss = if rss_uploads > 0 {
            let gateway = start_gateway().await;
            eprintln!("gateway: {rss_uploads} concurrent uploads of {rss_mib} MiB");
            let args = ["rss", &rss_uploads.to_string(), &rss_mib.to_string()];
            let result = s3_phase(&endpoint, &id, &secret, &args);
            Some((result, stop(gateway)))
        } else {
            None
        };

        let g = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        println!("| measure | native client | gateway (boto3) | gateway / native |");
        println!("| --- | --- | --- | --- |");
        let row = |name: &str, native: f64, gateway: f64, unit: &str| {
            let ratio = gateway / native;
            println!("| {name} | {native:.1} {unit} | {gateway:.1} {unit} | {ratio:.2}× |");
        };
        row(&format!("PUT {large_mib} MiB"), n_put, g(&large, "put_mib_s"), "MiB/s");
        row(&format!("GET {large_mib} MiB"), n_get, g(&large, "get_mib_s"), "MiB/s");
        row("PUT 4 KiB ×1000, c=8", n_small_put, g(&small, "put_ops_s"), "ops/s");
        row("GET 4 KiB ×1000, c=8", n_small_get, g(&small, "get_ops_s"), "ops/s");
        println!();
        println!("gateway peak RSS (a fresh process per phase):");
        println!("- {large_mib} MiB PUT and GET ×3 (boto3, 10 threads): {rss_large:.0} MiB");
        println!("- {count} × 4 KiB PUT and GET at concurrency 8: {rss_small:.0} MiB");
        if let Some((result, peak)) = rss {
            println!(
                "- {rss_uploads} concurrent {rss_mib} MiB uploads: {peak:.0} MiB ({:.0} MiB/s aggregate, {:.0} s)",
                g(&result, "mib_s"),
                g(&result, "seconds")
            );
        }
    });
}
