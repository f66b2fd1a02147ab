//! [`Testnet`]: a cluster of real `andromede-node` processes on 127.0.0.1, each with its
//! own ports and data directory under one testnet directory, described by
//! `DIR/testnet.json` so that separate commands (`up`, `kill`, `down`, ...) act on the
//! same cluster. Faults are applied to the processes and their files exactly as an
//! operator's bad day would: SIGKILL, a wiped disk, flipped bytes in shard files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use andromede_client::{Client, ClientConfig, MasterKey};
use andromede_cluster::admin::{Status, admin_request, query_status};
use andromede_cluster::authority::{Authority, CertificateSpec, Grant, JoinToken, PeerRole};
use andromede_cluster::faults::PlantedBug;
use andromede_cluster::net::{self, Admission, Keypair, Multiaddr, PeerId};
use andromede_cluster::units::format_duration;
use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::process::{
    Invitee, Joining, NodeInit, data_files, init_node, invite, node_binary, running, signal,
    spawn_node, wait_gone,
};

/// Name of the state file in a testnet directory.
const STATE_FILE: &str = "testnet.json";
/// Name of the client config written by `up`.
pub const CLIENT_FILE: &str = "client.toml";
/// The testnet client's identity key and certificate (beside `client.toml`).
pub const CLIENT_IDENTITY: &str = "client.identity.key";
/// See [`CLIENT_IDENTITY`].
pub const CLIENT_CERTIFICATE: &str = "client.certificate";
/// Time a node has to stop on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How to build a testnet.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Node processes.
    pub nodes: usize,
    /// Zones the nodes are spread over, round-robin (at least 1).
    pub zones: usize,
    /// Erasure code of the default bucket the testnet's workloads use.
    pub k: u32,
    /// Parity shards of that code.
    pub m: u32,
    /// A peer unreachable this long is down (short: faults come fast here).
    pub down_after: String,
    /// Pause between repair sweeps.
    pub repair_sweep_interval: String,
    /// Pause between scrub passes (corrupt shards are found by them).
    pub scrub_interval: String,
    /// Pause between membership refreshes, on the nodes and on the testnet's clients.
    pub membership_refresh: Duration,
    /// The `andromede-node` binary (default: see [`node_binary`]).
    pub node_bin: Option<PathBuf>,
    /// A bug every node runs with, to show a scenario catches it (fault-injection
    /// nodes only; see `andromede_cluster::faults`).
    pub planted_bug: Option<PlantedBug>,
    /// The cluster's minimum redundancy (every node's `min_parity`).
    pub min_parity: u8,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            nodes: 6,
            zones: 3,
            k: 4,
            m: 2,
            down_after: "10s".into(),
            repair_sweep_interval: "20s".into(),
            scrub_interval: "1m".into(),
            membership_refresh: andromede_cluster::MembershipConfig::default().refresh_every,
            node_bin: None,
            planted_bug: None,
            min_parity: 1,
        }
    }
}

/// One node as the state file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Its data directory.
    pub dir: PathBuf,
    /// Its listen address.
    pub listen: String,
    /// Its admin endpoint.
    pub admin: SocketAddr,
    /// Its zone.
    pub zone: String,
    /// Its process, when started.
    pub pid: Option<u32>,
    /// Its peer id, once it has answered (its identity survives restarts and wipes).
    #[serde(default)]
    pub peer: Option<String>,
}

/// The state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The nodes, by index.
    pub nodes: Vec<NodeState>,
    /// Erasure code of the workloads' bucket.
    pub k: u32,
    /// Parity shards of that code.
    pub m: u32,
    /// The node binary.
    pub node_bin: PathBuf,
    /// The planted bug the nodes run with, by name.
    #[serde(default)]
    pub planted_bug: Option<String>,
    /// The nodes' membership refresh, which the testnet's clients use too (ms).
    #[serde(default = "membership_refresh_ms_default")]
    pub membership_refresh_ms: u64,
}

fn membership_refresh_ms_default() -> u64 {
    u64::try_from(
        andromede_cluster::MembershipConfig::default()
            .refresh_every
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// A testnet: its directory, its state, and the node processes this process started
/// (reaped when they end).
#[derive(Debug)]
pub struct Testnet {
    dir: PathBuf,
    state: State,
    children: Vec<Option<Child>>,
    kill_on_drop: bool,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Testnet {
    /// Initialises `opts.nodes` nodes under `dir` (which must not hold a testnet), starts
    /// them, waits until they all see each other, and writes `DIR/client.toml`.
    ///
    /// # Errors
    /// Bad options, an existing testnet, a node that does not start or join in time
    /// (its log tail is in the message).
    pub async fn up(dir: &Path, opts: &UpOptions) -> anyhow::Result<Self> {
        if opts.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        if opts.zones == 0 {
            bail!("--zones must be at least 1");
        }
        andromede_client::ErasureParams::new(opts.k, opts.m)
            .map_err(|e| anyhow!("--k/--m: {e}"))?;
        if dir.join(STATE_FILE).exists() {
            bail!(
                "{} already holds a testnet: `andromede-testnet down --dir {}` first, or choose another directory",
                dir.display(),
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        let node_bin = node_binary(opts.node_bin.as_deref())?;
        let mut nodes = Vec::with_capacity(opts.nodes);
        for i in 0..opts.nodes {
            nodes.push(NodeState {
                dir: dir.join(format!("node{i}")),
                listen: format!("/ip4/127.0.0.1/tcp/{}", free_port()?),
                admin: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                zone: format!("zone-{}", i % opts.zones),
                pid: None,
                peer: None,
            });
        }
        let authority_dir = nodes[0].dir.clone();
        for (i, node) in nodes.iter().enumerate() {
            let name = format!("node{i}");
            let joining = if i == 0 {
                Joining::NewCluster {
                    name: &name,
                    zone: &node.zone,
                    jurisdiction: "EU",
                }
            } else {
                Joining::Token(
                    invite(
                        &node_bin,
                        &authority_dir,
                        &name,
                        Invitee::Node {
                            zone: &node.zone,
                            jurisdiction: "EU",
                        },
                    )
                    .with_context(|| format!("inviting node {i}"))?,
                )
            };
            // Every node knows every other: any of them can be down when one restarts.
            let bootstrap = nodes
                .iter()
                .filter(|other| other.dir != node.dir)
                .map(|other| other.listen.clone())
                .collect();
            let init = NodeInit {
                listen: &node.listen,
                admin: node.admin,
                bootstrap,
                capacity: "100GiB",
                joining,
                settings: vec![
                    ("scrub_interval", opts.scrub_interval.clone().into()),
                    ("anti_entropy_interval", "10s".into()),
                    ("gc_interval", "5s".into()),
                    ("down_after", opts.down_after.clone().into()),
                    (
                        "repair_sweep_interval",
                        opts.repair_sweep_interval.clone().into(),
                    ),
                    (
                        "membership_refresh",
                        format_duration(opts.membership_refresh).into(),
                    ),
                    ("min_parity", i64::from(opts.min_parity).into()),
                ],
            };
            init_node(&node_bin, &node.dir, &init)
                .with_context(|| format!("initialising node {i}"))?;
        }
        let master_path = dir.join("master.key");
        MasterKey::create_file(&master_path)?;
        let mut testnet = Self {
            children: (0..nodes.len()).map(|_| None).collect(),
            dir,
            state: State {
                nodes,
                k: opts.k,
                m: opts.m,
                node_bin,
                planted_bug: opts.planted_bug.map(|bug| bug.to_string()),
                membership_refresh_ms: u64::try_from(opts.membership_refresh.as_millis())
                    .unwrap_or(u64::MAX),
            },
            kill_on_drop: false,
        };
        testnet.save()?;
        // The testnet's client: certified like any other, its files beside client.toml.
        testnet.new_client_file("client", "testnet-client", &["*:all"])?;
        for i in 0..opts.nodes {
            testnet.start(i)?;
        }
        // The statuses that showed the cluster settled name the peers: no second round
        // of admin requests to a node that may be busy right after settling.
        for (i, status) in testnet.wait_settled(Duration::from_secs(60)).await? {
            testnet.state.nodes[i].peer = Some(status.peer);
        }
        testnet.save()?;
        Ok(testnet)
    }

    /// The testnet recorded in `dir`.
    ///
    /// # Errors
    /// When `dir` holds no testnet or its state file is unreadable.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: start a testnet there with `andromede-testnet up --dir {}`",
                path.display(),
                dir.display()
            )
        })?;
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a testnet state file", path.display()))?;
        Ok(Self {
            children: (0..state.nodes.len()).map(|_| None).collect(),
            dir: dir.to_owned(),
            state,
            kill_on_drop: false,
        })
    }

    fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.state)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The testnet's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The recorded state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.state.nodes.len()
    }

    /// Whether the testnet has no node (never: `up` refuses).
    pub fn is_empty(&self) -> bool {
        self.state.nodes.is_empty()
    }

    fn node(&self, i: usize) -> anyhow::Result<&NodeState> {
        self.state.nodes.get(i).ok_or_else(|| {
            anyhow!(
                "no node {i}: this testnet has nodes 0 to {}",
                self.state.nodes.len().saturating_sub(1)
            )
        })
    }

    /// Whether node `i`'s process runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.state
            .nodes
            .get(i)
            .and_then(|n| n.pid)
            .is_some_and(running)
    }

    /// Indices of the nodes whose process runs.
    pub fn running_nodes(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_running(i)).collect()
    }

    /// Starts node `i` if it is not running.
    ///
    /// # Errors
    /// When the process cannot start.
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        if self.is_running(i) {
            return Ok(());
        }
        let dir = self.node(i)?.dir.clone();
        let child = spawn_node(
            &self.state.node_bin,
            &dir,
            self.state.planted_bug.as_deref(),
        )?;
        info!(node = i, pid = child.id(), "node started");
        self.state.nodes[i].pid = Some(child.id());
        self.children[i] = Some(child);
        self.save()
    }

    fn end(&mut self, i: usize, how: Signal) -> anyhow::Result<()> {
        let Some(pid) = self.node(i)?.pid else {
            return Ok(());
        };
        signal(pid, how)?;
        if !wait_gone(pid, self.children[i].as_mut(), STOP_TIMEOUT) {
            warn!(node = i, "node did not stop in time; killing it");
            signal(pid, Signal::SIGKILL)?;
            wait_gone(pid, self.children[i].as_mut(), STOP_TIMEOUT);
        }
        self.forget_process(i)
    }

    /// SIGKILL: the node dies mid-flight, as on a power cut.
    ///
    /// # Errors
    /// When the node does not exist or cannot be signalled.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.end(i, Signal::SIGKILL)
    }

    /// A power cut: the node undoes every shard write that was not durable yet, as the
    /// kernel would on power loss, and dies at once (fault-injection nodes only).
    ///
    /// # Errors
    /// When the node does not exist, is not running or does not die.
    pub async fn power_cut(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(pid) = self.node(i)?.pid else {
            bail!("node {i} is not running");
        };
        // The node dies instead of answering.
        let _ = admin_request(self.node(i)?.admin, "fault powercut").await;
        if !wait_gone(pid, self.children[i].as_mut(), STOP_TIMEOUT) {
            bail!(
                "node {i} survived a power cut: is it built with `--features fault-injection`? {}",
                self.log_tail(i, 5)
            );
        }
        self.forget_process(i)
    }

    /// Reaps node `i`'s ended process and records it as stopped.
    fn forget_process(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.wait();
        }
        self.state.nodes[i].pid = None;
        self.save()
    }

    /// Makes dropping this handle SIGKILL every node it started, so that a failing test
    /// leaves no processes behind (the command line's `up` leaves them running).
    #[must_use]
    pub fn kill_on_drop(mut self) -> Self {
        self.kill_on_drop = true;
        self
    }

    /// SIGTERM: a clean stop (killed after a while if it hangs).
    ///
    /// # Errors
    /// As [`Testnet::kill`].
    pub fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        self.end(i, Signal::SIGTERM)
    }

    /// Kills node `i` and starts it again.
    ///
    /// # Errors
    /// As [`Testnet::kill`] and [`Testnet::start`].
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i)?;
        self.start(i)
    }

    /// Kills node `i`, deletes its data (shards and metadata; its identity, config and
    /// its certificate stay, as on a server whose data disk was replaced) and starts it
    /// empty.
    ///
    /// # Errors
    /// As [`Testnet::restart`], or when the data cannot be deleted.
    pub fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i)?;
        let dir = &self.node(i)?.dir;
        for path in [dir.join(data_files::STORE), dir.join(data_files::META)] {
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("wiping {}", path.display()))?;
            }
        }
        self.start(i)
    }

    /// Flips one byte in `fraction` (0 to 1) of node `i`'s shard files, chosen by `seed`,
    /// at least one when it has any. Returns how many files were corrupted.
    ///
    /// # Errors
    /// Bad fraction, or I/O errors.
    pub fn corrupt(&self, i: usize, fraction: f64, seed: u64) -> anyhow::Result<usize> {
        if !(0.0..=1.0).contains(&fraction) {
            bail!("--fraction must be between 0 and 1, not {fraction}");
        }
        let mut files = shard_files(&self.node(i)?.dir.join("store"));
        files.sort();
        if files.is_empty() || fraction == 0.0 {
            return Ok(0);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        // Files to corrupt: the fraction rounded up, in whole files (`fraction` ≤ 1, so the
        // product never exceeds the count it came from).
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative value no larger than files.len()"
        )]
        let count = ((files.len() as f64 * fraction).ceil() as usize).clamp(1, files.len());
        for _ in 0..count {
            let pick = rng.random_range(0..files.len());
            let path = files.swap_remove(pick);
            let mut bytes = std::fs::read(&path)?;
            if bytes.is_empty() {
                continue;
            }
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 0x5a;
            std::fs::write(&path, &bytes)?;
        }
        Ok(count)
    }

    /// Cuts the nodes in `group` off from every other node, both ways (clients still
    /// reach everyone). Replaces any earlier partition; nodes that are not running are
    /// skipped (restarting a node lifts its side of a partition).
    ///
    /// # Errors
    /// A node index out of range, a node built without the `fault-injection` feature, or
    /// a node that does not answer.
    pub async fn partition(&self, group: &[usize]) -> anyhow::Result<()> {
        for &i in group {
            self.node(i)?;
        }
        let peer = |i: usize| self.state.nodes[i].peer.clone();
        for i in self.running_nodes() {
            let inside = group.contains(&i);
            let blocked: Vec<String> = (0..self.len())
                .filter(|j| group.contains(j) != inside)
                .filter_map(peer)
                .collect();
            self.fault(i, &format!("block {}", blocked.join(",")))
                .await?;
        }
        Ok(())
    }

    /// Lifts every partition.
    ///
    /// # Errors
    /// As [`Testnet::partition`].
    pub async fn unpartition(&self) -> anyhow::Result<()> {
        for i in self.running_nodes() {
            self.fault(i, "block ").await?;
        }
        Ok(())
    }

    /// Delays every request node `i` serves by `delay_ms` (0 lifts it).
    ///
    /// # Errors
    /// As [`Testnet::partition`].
    pub async fn slow(&self, i: usize, delay_ms: u64) -> anyhow::Result<()> {
        self.fault(i, &format!("delay {delay_ms}")).await
    }

    async fn fault(&self, i: usize, request: &str) -> anyhow::Result<()> {
        // A node that has just (re)started opens its admin endpoint a moment later.
        let deadline = Instant::now() + Duration::from_secs(15);
        let answer = loop {
            match admin_request(self.node(i)?.admin, &format!("fault {request}")).await {
                Ok(answer) => break answer,
                Err(error) if Instant::now() >= deadline || !self.is_running(i) => {
                    bail!("node {i}: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let value: serde_json::Value = serde_json::from_str(&answer)
            .with_context(|| format!("node {i} answered {answer:?}"))?;
        if let Some(error) = value.get("error") {
            bail!(
                "node {i} refused the fault: {error} (faults need a node built with `cargo build -p andromede-node --features fault-injection`)"
            );
        }
        Ok(())
    }

    /// Stops every node (SIGTERM, then SIGKILL after a while).
    ///
    /// # Errors
    /// When a node cannot be signalled.
    pub fn down(&mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            self.stop(i)?;
        }
        Ok(())
    }

    /// Revokes node `i` as an operator does, where the authority key is (node 0's
    /// directory): `andromede-node revoke --data NODE0 PEER`, which signs a newer
    /// revocation list and hands it to a member.
    ///
    /// # Errors
    /// An unknown node or peer id, or the command failing (its output is in the message).
    pub fn revoke(&self, i: usize) -> anyhow::Result<()> {
        let peer = self
            .node(i)?
            .peer
            .clone()
            .ok_or_else(|| anyhow!("node {i}'s peer id is not known yet"))?;
        let mut command = std::process::Command::new(&self.state.node_bin);
        command
            .arg("revoke")
            .arg("--data")
            .arg(&self.node(0)?.dir)
            .arg(&peer);
        crate::process::run_to_end(command, &format!("andromede-node revoke {peer}"))?;
        Ok(())
    }

    /// Node `i`'s status from its admin endpoint.
    ///
    /// # Errors
    /// When it does not answer.
    pub async fn status(&self, i: usize) -> anyhow::Result<Status> {
        query_status(self.node(i)?.admin)
            .await
            .map_err(|e| anyhow!("node {i}: {e}"))
    }

    /// Waits until every running node answers its admin endpoint, sees every other
    /// running node as reachable, has caught up (a new or wiped metadata store) and sees
    /// no replica set changing: the cluster is then as it will stay. Returns the statuses
    /// (by node index) that showed it.
    ///
    /// # Errors
    /// When `timeout` passes first; the message has the laggards' log tails.
    pub async fn wait_settled(&self, timeout: Duration) -> anyhow::Result<Vec<(usize, Status)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.running_nodes();
            let mut laggards = Vec::new();
            let mut settled = Vec::with_capacity(running.len());
            for &i in &running {
                match self.status(i).await {
                    Ok(status)
                        if status.peers.iter().filter(|p| p.reachable).count() + 1
                            >= running.len()
                            && !status.catching_up
                            && status.peers.iter().all(|p| !p.handing_off) =>
                    {
                        settled.push((i, status));
                    }
                    _ => laggards.push(i),
                }
            }
            if laggards.is_empty() {
                return Ok(settled);
            }
            if Instant::now() >= deadline {
                let tails: Vec<String> = laggards
                    .iter()
                    .map(|&i| format!("node {i}:\n{}", self.log_tail(i, 5)))
                    .collect();
                bail!(
                    "nodes {laggards:?} did not see every other running node within {timeout:?}\n{}",
                    tails.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let Some(node) = self.state.nodes.get(i) else {
            return String::new();
        };
        let text = std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The peer ids of the running nodes (those whose admin endpoint answers).
    pub async fn running_peers(
        &self,
    ) -> std::collections::BTreeSet<andromede_cluster::net::PeerId> {
        let mut out = std::collections::BTreeSet::new();
        for i in self.running_nodes() {
            if let Ok(status) = self.status(i).await
                && let Ok(peer) = status.peer.parse()
            {
                out.insert(peer);
            }
        }
        out
    }

    /// Writes `DIR/STEM.toml`, the config of a new client certified as `name` by the
    /// testnet's authority (`andromede-node invite`), its identity and certificate beside
    /// it, with every node as a bootstrap peer and the testnet's master key: for a program
    /// that needs a client identity of its own (a second gateway), allowed `grants`
    /// (`BUCKET:RIGHTS`). Returns its path.
    ///
    /// # Errors
    /// The invitation fails, or a file exists or cannot be written.
    pub fn new_client_file(
        &self,
        stem: &str,
        name: &str,
        grants: &[&str],
    ) -> anyhow::Result<PathBuf> {
        let authority_dir = &self.node(0)?.dir;
        let token = JoinToken::decode(&invite(
            &self.state.node_bin,
            authority_dir,
            name,
            Invitee::Client { grants },
        )?)?;
        let secret = token
            .identity_secret()
            .ok_or_else(|| anyhow!("the client token carries no identity"))?;
        let identity = self.dir.join(format!("{stem}.identity.key"));
        let certificate = self.dir.join(format!("{stem}.certificate"));
        net::create_identity_file(&identity, secret)?;
        token.certificate().write_file(&certificate)?;
        let path = self.dir.join(format!("{stem}.toml"));
        andromede_client::ClientFile {
            authority: token.authority().to_string(),
            bootstrap: self.state.nodes.iter().map(|n| n.listen.clone()).collect(),
            identity_file: identity,
            certificate_file: certificate,
            master_key_file: self.dir.join("master.key"),
        }
        .create(&path)?;
        Ok(path)
    }

    /// The testnet's cluster authority (its key lives with node 0, which created the
    /// cluster): what certifies peers of a test's own.
    ///
    /// # Errors
    /// The key cannot be read.
    pub fn authority(&self) -> anyhow::Result<Authority> {
        Ok(Authority::load_file(
            &self.node(0)?.dir.join(data_files::AUTHORITY_KEY),
        )?)
    }

    /// A client of this testnet (the master key of `DIR/master.key`).
    ///
    /// # Errors
    /// When the keys cannot be read or no node answers.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(self.client_config()?).await?)
    }

    /// The configuration of a client of this testnet (every node as a bootstrap peer,
    /// the testnet's master key), with an identity of its own certified just now by the
    /// testnet's authority: clients that run at once must not share a peer id.
    ///
    /// # Errors
    /// The authority key or master key cannot be read.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let authority = self.authority()?;
        let identity = Keypair::generate_ed25519();
        let spec = CertificateSpec::new(
            PeerId::from(identity.public()),
            PeerRole::Client,
            "testnet-client",
            Duration::from_secs(7 * 86_400),
        )
        .granted(vec![Grant::everything()]);
        let admission = Admission::issued(&authority, spec)?;
        let master = MasterKey::load_file(&self.dir.join("master.key"))?;
        let bootstrap: Vec<Multiaddr> = self
            .state
            .nodes
            .iter()
            .map(|n| n.listen.parse())
            .collect::<Result<_, _>>()?;
        let mut config = ClientConfig::new(bootstrap, identity, admission, master);
        config.connect_timeout = Duration::from_secs(30);
        config.membership.refresh_every = Duration::from_millis(self.state.membership_refresh_ms);
        Ok(config)
    }
}

/// Every shard file under `dir`.
pub fn shard_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, |path| path.extension().is_some_and(|e| e == "shard"))
}

/// Every file under `dir` (recursively) that `keep` accepts; none if `dir` is missing.
pub fn files_under(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if !self.kill_on_drop {
            return;
        }
        for i in 0..self.len() {
            if self.is_running(i) {
                let _ = self.kill(i);
            }
        }
    }
}
