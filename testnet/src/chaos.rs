//! A chaos run: a testnet under the [`workload`](crate::workload) while a seeded random
//! schedule injects faults, never taking more than `m` nodes' data at once; then faults
//! stop, repair is awaited, and the invariants are checked: every acknowledged write reads
//! back, no read ever returned wrong bytes, every segment is back to full redundancy, no
//! plaintext lies in any data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use andromede_client::{BucketOptions, ErasureParams};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::checker::{Verdict, check};
use crate::cluster::{Testnet, UpOptions, files_under};
use crate::redundancy::{Depth, Redundancy, check_bucket};
use crate::workload::{self, PLAINTEXT_MARKER, Recorder, WorkloadOptions, key_name};

/// The workload's bucket.
const BUCKET: &str = "chaos";
/// Longest wait for full redundancy once faults stop.
const REPAIR_WAIT_MAX: Duration = Duration::from_secs(600);

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Where the testnet lives (a fresh directory).
    pub dir: PathBuf,
    /// Node processes.
    pub nodes: usize,
    /// Data shards.
    pub k: u32,
    /// Parity shards: at most this many nodes' data is lost at once.
    pub m: u32,
    /// How long faults are injected.
    pub duration: Duration,
    /// Seed of the schedule and the workload.
    pub seed: u64,
    /// Faults started per minute.
    pub faults_per_minute: f64,
    /// Show a progress bar.
    pub progress: bool,
    /// The node binary.
    pub node_bin: Option<PathBuf>,
}

/// A fault the schedule can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultKind {
    /// SIGKILL, restarted a while later.
    Kill,
    /// A power cut (writes not yet durable undone, then dead), restarted a while later.
    PowerCut,
    /// Data deleted, restarted empty.
    Wipe,
    /// Bytes flipped in a tenth of a node's shard files.
    Corrupt,
    /// A minority cut off, healed a while later.
    Partition,
    /// Every request of a node delayed, lifted a while later.
    Slow,
}

impl FaultKind {
    /// Whether the node is down until the fault is lifted.
    fn stops_a_node(self) -> bool {
        matches!(self, FaultKind::Kill | FaultKind::PowerCut)
    }
}

/// Every kind, in a fixed order (shuffled per round by the seed).
const ALL_FAULTS: [FaultKind; 6] = [
    FaultKind::Kill,
    FaultKind::PowerCut,
    FaultKind::Wipe,
    FaultKind::Corrupt,
    FaultKind::Partition,
    FaultKind::Slow,
];

/// What a chaos run found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Acknowledged writes (puts and deletes).
    pub objects_written: u64,
    /// Reads that returned an answer.
    pub objects_read: u64,
    /// Keys read back and matched after faults stopped.
    pub objects_verified: u64,
    /// Keys whose final read broke read-after-write (lost acknowledged writes).
    pub objects_lost: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Faults that could not be injected or lifted on time (a node still starting).
    pub faults_failed: u64,
    /// From the end of faults to every segment fully redundant (seconds).
    pub time_to_full_redundancy_s: f64,
    /// Times the cluster lost data (a node killed, wiped or corrupted while it was fully
    /// redundant) and became fully redundant again while faults were still running.
    #[serde(default)]
    pub recoveries: u64,
    /// The longest of those recoveries: from the first fault that lost data until every
    /// segment was whole again (seconds; checked every 5 s, and not while a killed node
    /// is still down, so the figure includes that downtime).
    #[serde(default)]
    pub worst_time_to_full_redundancy_s: f64,
    /// Bytes of shards rebuilt by the nodes' repair.
    pub bytes_repaired: u64,
    /// Redundancy at the end.
    pub redundancy: Redundancy,
    /// The checkers' verdict.
    pub verdict: Verdict,
    /// Files holding plaintext (must be none).
    pub plaintext_files: Vec<String>,
    /// Each invariant that failed.
    pub failures: Vec<String>,
}

impl ChaosReport {
    /// Whether every invariant held.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<32} {v}\n"));
        line("seed", self.seed.to_string());
        line("nodes", self.nodes.to_string());
        line("objects written (acked)", self.objects_written.to_string());
        line("objects read", self.objects_read.to_string());
        line(
            "objects verified at the end",
            self.objects_verified.to_string(),
        );
        line("objects lost", self.objects_lost.to_string());
        for (kind, count) in &self.faults {
            line(&format!("faults: {kind:?}"), count.to_string());
        }
        line("faults not injected", self.faults_failed.to_string());
        line(
            "time to full redundancy",
            format!(
                "{:.1} s after faults stopped",
                self.time_to_full_redundancy_s
            ),
        );
        line(
            "worst recovery during the run",
            format!(
                "{:.1} s (of {} recoveries)",
                self.worst_time_to_full_redundancy_s, self.recoveries
            ),
        );
        line("bytes repaired", self.bytes_repaired.to_string());
        line(
            "segments full / degraded / lost",
            format!(
                "{} / {} / {}",
                self.redundancy.full, self.redundancy.degraded, self.redundancy.lost
            ),
        );
        line("anomalies", self.verdict.anomalies.len().to_string());
        line(
            "result",
            if self.ok() {
                "every invariant held".into()
            } else {
                format!("FAILED: {}", self.failures.join("; "))
            },
        );
        out
    }
}

/// A node whose data may be damaged, until the cluster is fully redundant again.
#[derive(Debug)]
struct Damage {
    /// Nodes killed or wiped or corrupted since the last full redundancy.
    nodes: BTreeSet<usize>,
    /// When the first of those faults struck.
    since: Option<Instant>,
}

/// Repair counters per node, summed across restarts.
#[derive(Debug, Default)]
struct RepairBytes {
    last: BTreeMap<usize, u64>,
    total: u64,
}

impl RepairBytes {
    async fn poll(&mut self, testnet: &Testnet) {
        for i in testnet.running_nodes() {
            if let Ok(status) = testnet.status(i).await {
                let now = status.repair.bytes_rebuilt;
                let before = self.last.get(&i).copied().unwrap_or(0);
                // A counter that went down belongs to a restarted process.
                self.total += if now >= before { now - before } else { now };
                self.last.insert(i, now);
            }
        }
    }
}

/// Runs a chaos run and reports; the testnet is stopped at the end.
///
/// # Errors
/// When the testnet cannot be set up or driven (an invariant that fails is in the
/// report, not an error).
pub async fn run(options: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    let up = UpOptions {
        nodes: options.nodes,
        zones: options.nodes.min(3),
        k: options.k,
        m: options.m,
        down_after: "5s".into(),
        repair_sweep_interval: "10s".into(),
        scrub_interval: "15s".into(),
        node_bin: options.node_bin.clone(),
        planted_bug: None,
        ..UpOptions::default()
    };
    let mut testnet = Testnet::up(&options.dir, &up).await?.kill_on_drop();
    let result = drive(&mut testnet, options).await;
    if let Err(error) = testnet.down() {
        warn!(%error, "stopping the testnet");
    }
    result
}

async fn drive(testnet: &mut Testnet, options: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    let client = testnet.client().await?;
    client
        .wait_for_nodes(options.nodes, Duration::from_secs(60))
        .await?;
    client
        .create_bucket(
            BUCKET,
            BucketOptions {
                params: ErasureParams::new(options.k, options.m)?,
                jurisdictions: Vec::new(),
            },
        )
        .await?;
    let mut report = ChaosReport {
        seed: options.seed,
        nodes: options.nodes,
        ..ChaosReport::default()
    };
    let recorder = Recorder::new();
    let workload = WorkloadOptions {
        bucket: BUCKET.into(),
        keys: 48,
        writers: 3,
        readers: 2,
        body_bytes_max: 3 << 20,
        seed: options.seed,
    };
    let stop_workload = CancellationToken::new();
    let load = tokio::spawn(workload::run(
        client.clone(),
        workload.clone(),
        recorder.clone(),
        stop_workload.clone(),
    ));

    let bar = if options.progress {
        let bar = ProgressBar::new(options.duration.as_secs());
        bar.set_style(
            ProgressStyle::with_template("{spinner} chaos [{bar:30}] {pos}/{len} s {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut damage = Damage {
        nodes: BTreeSet::new(),
        since: None,
    };
    let mut repaired = RepairBytes::default();
    // Faults to undo, at the given time.
    let mut undo: Vec<(Instant, FaultKind, usize)> = Vec::new();
    let m = usize::try_from(options.m).unwrap_or(usize::MAX);
    let start = Instant::now();
    let gap = Duration::from_secs_f64(60.0 / options.faults_per_minute.max(0.1));
    let mut next_fault = start + gap / 2;
    let mut last_check = start;
    let mut pending: Vec<FaultKind> = Vec::new();
    while start.elapsed() < options.duration {
        tokio::time::sleep(Duration::from_millis(500)).await;
        bar.set_position(start.elapsed().as_secs());
        let now = Instant::now();
        for (_, kind, node) in undo.iter().filter(|(at, _, _)| *at <= now) {
            if let Err(error) = lift(testnet, *kind, *node).await {
                warn!(%error, ?kind, node, "lifting a fault failed; lifted at the end");
                report.faults_failed += 1;
            }
        }
        undo.retain(|(at, _, _)| *at > now);
        // Damage is forgiven once every segment is whole again.
        if !damage.nodes.is_empty() && now.duration_since(last_check) > Duration::from_secs(5) {
            last_check = now;
            repaired.poll(testnet).await;
            let running = testnet.running_peers().await;
            if undo.iter().all(|(_, kind, _)| !kind.stops_a_node())
                && check_bucket(&client, BUCKET, &running, Depth::Have)
                    .await
                    .is_ok_and(|r| r.is_full())
            {
                let took = damage
                    .since
                    .take()
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                info!(nodes = ?damage.nodes, took_s = took, "fully redundant again");
                report.recoveries += 1;
                report.worst_time_to_full_redundancy_s =
                    report.worst_time_to_full_redundancy_s.max(took);
                damage.nodes.clear();
            }
        }
        if now < next_fault {
            continue;
        }
        // Kinds come in seeded shuffles of all five, so a run of a few minutes has each.
        if pending.is_empty() {
            pending = ALL_FAULTS.to_vec();
            for i in (1..pending.len()).rev() {
                pending.swap(i, rng.random_range(0..=i));
            }
        }
        let kind = pending[pending.len() - 1];
        let node = rng.random_range(0..options.nodes);
        let destructive =
            kind.stops_a_node() || matches!(kind, FaultKind::Wipe | FaultKind::Corrupt);
        let too_much_damage =
            destructive && !damage.nodes.contains(&node) && damage.nodes.len() >= m;
        if too_much_damage || !testnet.is_running(node) || undo.iter().any(|(_, k, _)| *k == kind) {
            // Not now: the same kind is tried again shortly.
            next_fault = now + gap / 4;
            continue;
        }
        pending.pop();
        next_fault = now + gap;
        bar.set_message(format!("{kind:?} node {node}"));
        info!(?kind, node, "fault");
        let applied = inject(testnet, kind, node, &mut rng, m, options.nodes).await;
        match applied {
            Ok(Some(lift_after)) => undo.push((Instant::now() + lift_after, kind, node)),
            Ok(None) => {}
            Err(error) => {
                warn!(%error, ?kind, node, "fault not injected");
                report.faults_failed += 1;
                continue;
            }
        }
        if destructive {
            damage.nodes.insert(node);
            damage.since.get_or_insert(Instant::now());
        }
        *report.faults.entry(kind).or_default() += 1;
    }
    bar.finish_and_clear();

    // Faults stop: every node back, partitions and delays lifted (retried: a node may
    // be starting).
    for (_, kind, node) in std::mem::take(&mut undo) {
        let mut tries = 0;
        while let Err(error) = lift(testnet, kind, node).await {
            tries += 1;
            if tries >= 10 {
                return Err(error.context(format!("lifting {kind:?} on node {node}")));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for i in 0..options.nodes {
        testnet.start(i)?;
    }
    testnet.unpartition().await?;
    stop_workload.cancel();
    load.await.context("the workload task failed")?;
    let faults_end = Instant::now();
    testnet.wait_settled(Duration::from_secs(120)).await?;
    let running = testnet.running_peers().await;
    loop {
        repaired.poll(testnet).await;
        let redundancy = check_bucket(&client, BUCKET, &running, Depth::Read).await?;
        let full = redundancy.is_full();
        report.redundancy = redundancy;
        if full {
            report.time_to_full_redundancy_s = faults_end.elapsed().as_secs_f64();
            break;
        }
        if faults_end.elapsed() > REPAIR_WAIT_MAX {
            report.failures.push(format!(
                "not fully redundant {REPAIR_WAIT_MAX:?} after faults stopped: {:?}",
                report.redundancy
            ));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every key read once more, now that nothing is in flight: lost writes show here.
    let final_reads_from = recorder.now();
    for i in 0..workload.keys {
        recorder.get(&client, BUCKET, &key_name(i)).await;
    }
    let history = recorder.history();
    report.verdict = check(&history);
    report.objects_written = report.verdict.writes_acked;
    report.objects_read = report.verdict.reads_checked;
    let final_events: Vec<_> = history
        .events
        .iter()
        .filter(|e| e.start >= final_reads_from)
        .collect();
    report.objects_lost = report
        .verdict
        .anomalies
        .iter()
        .filter(|a| {
            matches!(a, crate::checker::Anomaly::StaleRead { start, .. } if *start >= final_reads_from)
        })
        .count() as u64;
    let final_errors = final_events
        .iter()
        .filter(|e| matches!(e.op, crate::checker::Op::Get { found: None }))
        .count() as u64;
    report.objects_verified = (final_events.len() as u64)
        .saturating_sub(final_errors)
        .saturating_sub(report.objects_lost);
    if final_errors > 0 {
        report.failures.push(format!(
            "{final_errors} key(s) could not be read after faults stopped"
        ));
    }
    if !report.verdict.ok() {
        report.failures.push(format!(
            "{} history anomalies: {:?}",
            report.verdict.anomalies.len(),
            report.verdict.anomalies.iter().take(5).collect::<Vec<_>>()
        ));
    }
    report.bytes_repaired = repaired.total;
    report.plaintext_files = plaintext_files(testnet.dir());
    if !report.plaintext_files.is_empty() {
        report
            .failures
            .push("plaintext found in a data directory".into());
    }
    Ok(report)
}

/// Injects `kind` on `node`; returns after how long it must be lifted, if it must.
async fn inject(
    testnet: &mut Testnet,
    kind: FaultKind,
    node: usize,
    rng: &mut StdRng,
    m: usize,
    nodes: usize,
) -> anyhow::Result<Option<Duration>> {
    match kind {
        FaultKind::Kill => {
            testnet.kill(node)?;
            Ok(Some(Duration::from_secs(rng.random_range(3..20))))
        }
        FaultKind::PowerCut => {
            testnet.power_cut(node).await?;
            Ok(Some(Duration::from_secs(rng.random_range(3..20))))
        }
        FaultKind::Wipe => testnet.wipe(node).map(|()| None),
        FaultKind::Corrupt => {
            testnet.corrupt(node, 0.1, rng.random_range(0..u64::MAX))?;
            Ok(None)
        }
        FaultKind::Partition => {
            // A minority: at most m nodes, never half of the cluster.
            let size = rng.random_range(1..=m.min(nodes.saturating_sub(1) / 2).max(1));
            let mut group: Vec<usize> = (0..nodes).collect();
            while group.len() > size {
                group.swap_remove(rng.random_range(0..group.len()));
            }
            testnet.partition(&group).await?;
            Ok(Some(Duration::from_secs(rng.random_range(5..20))))
        }
        FaultKind::Slow => {
            testnet.slow(node, rng.random_range(50..500)).await?;
            Ok(Some(Duration::from_secs(rng.random_range(5..20))))
        }
    }
}

/// Undoes a fault that has a duration.
async fn lift(testnet: &mut Testnet, kind: FaultKind, node: usize) -> anyhow::Result<()> {
    match kind {
        FaultKind::Kill | FaultKind::PowerCut => testnet.start(node),
        FaultKind::Partition => testnet.unpartition().await,
        FaultKind::Slow => testnet.slow(node, 0).await,
        FaultKind::Wipe | FaultKind::Corrupt => Ok(()),
    }
}

/// Files under `dir` (node data only: the testnet's own files hold no bodies) that
/// contain the workload's plaintext marker.
pub fn plaintext_files(dir: &Path) -> Vec<String> {
    files_under(dir, |path| {
        std::fs::read(path).is_ok_and(|bytes| {
            bytes
                .windows(PLAINTEXT_MARKER.len())
                .any(|w| w == PLAINTEXT_MARKER)
        })
    })
    .into_iter()
    .map(|path| path.display().to_string())
    .collect()
}
