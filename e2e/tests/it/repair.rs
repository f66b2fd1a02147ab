//! Repair against real daemons on 127.0.0.1 (DESIGN.md, "Design for failure"): shards of
//! a node that is gone are rebuilt on other nodes and the manifests name them, twice in a
//! row; a node whose shard store was wiped gets its shards back in place; a segment with a
//! corrupt shard on one node and a missing shard on another is made whole. Afterwards
//! every segment has `k + m` healthy shards on distinct live nodes, and objects still read
//! back exactly with `m` more nodes stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use andromede_client::codec::CodecConfig;
use andromede_client::{Client, MasterKey};
use andromede_cluster::manifest::{Body, Manifest};
use andromede_cluster::net::message::{ShardRequest, ShardResponse, decode_shard_response};
use andromede_cluster::net::{Multiaddr, PeerId, Protocol};
use andromede_node::daemon::{Daemon, DaemonConfig};
use andromede_node::data_dir::DataDir;

use crate::objects::{body, bucket, get, put};
use crate::{daemon_config, eventually, files_under, listen_addr, passes};

/// Segment size of these tests' objects: small, so that several segments stay cheap.
pub(crate) const SEGMENT: usize = 256 * 1024;

fn config(dir: &std::path::Path, bootstrap: Vec<Multiaddr>) -> DaemonConfig {
    let mut config = daemon_config(dir, bootstrap, "FR");
    // The scrubber finds corrupt shards quickly (the data is small).
    config.scrub.interval = Duration::from_secs(1);
    config
}

pub(crate) struct Cluster {
    /// Applied to every node's config, at every start.
    tune: fn(&mut DaemonConfig),
    dirs: Vec<tempfile::TempDir>,
    pub(crate) daemons: Vec<Option<Daemon>>,
    first_addr: Multiaddr,
    /// Where each stopped node listened: it comes back on the same address, as a
    /// restarted server does (on a new port, a restarted first node would find nobody:
    /// its bootstrap address is its own old one).
    stopped_addrs: BTreeMap<usize, Multiaddr>,
    pub(crate) client: Client,
    /// The tenant key of `client`: another client of the same tenant reads its objects.
    master: MasterKey,
}

impl Cluster {
    pub(crate) async fn start(nodes: usize) -> Self {
        Self::start_with(nodes, |_| 1 << 30).await
    }

    /// A cluster whose node `i` keeps at most `capacity(i)` bytes of shards.
    pub(crate) async fn start_with(nodes: usize, capacity: impl Fn(usize) -> u64) -> Self {
        Self::start_tuned(nodes, capacity, |_| {}).await
    }

    /// A cluster whose nodes' configs pass through `tune` (at every start).
    pub(crate) async fn start_tuned(
        nodes: usize,
        capacity: impl Fn(usize) -> u64,
        tune: fn(&mut DaemonConfig),
    ) -> Self {
        let (dirs, daemons, first_addr) = Self::launch(nodes, |i, config| {
            tune(config);
            config.capacity_bytes = capacity(i);
        })
        .await;
        let master = MasterKey::generate();
        let client = Self::client_of(&first_addr, &master, nodes, &["*:all"]).await;
        // The cluster has formed once no node still copies its partitions from the
        // others (until then, the first node is the only complete replica).
        let formed = eventually(Duration::from_secs(60), async || {
            daemons.iter().flatten().all(|d| !d.is_catching_up())
        })
        .await;
        assert!(
            formed,
            "the nodes of a new cluster never finished catching up"
        );
        Self {
            tune,
            dirs,
            daemons,
            first_addr,
            stopped_addrs: BTreeMap::new(),
            client,
            master,
        }
    }

    /// Starts `nodes` daemons in new directories, node `i`'s config passing through
    /// `adjust(i, _)`: the first alone, the others joining through it.
    async fn launch(
        nodes: usize,
        adjust: impl Fn(usize, &mut DaemonConfig),
    ) -> (Vec<tempfile::TempDir>, Vec<Option<Daemon>>, Multiaddr) {
        let dirs: Vec<tempfile::TempDir> =
            (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut daemons = Vec::new();
        let mut first_addr = None;
        for (i, dir) in dirs.iter().enumerate() {
            let bootstrap = first_addr.iter().cloned().collect();
            let mut config = config(dir.path(), bootstrap);
            adjust(i, &mut config);
            let daemon = Daemon::start(config).await.unwrap();
            if first_addr.is_none() {
                first_addr = Some(listen_addr(&daemon).await);
            }
            daemons.push(Some(daemon));
        }
        (dirs, daemons, first_addr.unwrap())
    }

    /// Node `i`'s data directory.
    pub(crate) fn dir(&self, i: usize) -> &std::path::Path {
        self.dirs[i].path()
    }

    /// Where the first node listens (every node and client joins through it).
    pub(crate) fn first_addr(&self) -> Multiaddr {
        self.first_addr.clone()
    }

    /// A cluster of `nodes` nodes started at once, and a client connected to the first as
    /// soon as it answers: a user who starts a cluster and writes right away.
    pub(crate) async fn start_quick(nodes: usize) -> Self {
        let (dirs, daemons, first_addr) = Self::launch(nodes, |_, _| {}).await;
        let master = MasterKey::generate();
        let client = Client::connect(crate::client_config(
            vec![first_addr.clone()],
            master.clone(),
        ))
        .await
        .unwrap();
        Self {
            tune: |_| {},
            dirs,
            daemons,
            first_addr,
            stopped_addrs: BTreeMap::new(),
            client,
            master,
        }
    }

    /// The config of a node in `dir` that joins through the first node.
    fn config(&self, dir: &std::path::Path) -> DaemonConfig {
        let mut config = config(dir, vec![self.first_addr.clone()]);
        (self.tune)(&mut config);
        config
    }

    pub(crate) fn peer(&self, i: usize) -> Option<PeerId> {
        self.daemons[i].as_ref().map(|d| d.net().local_peer_id())
    }

    pub(crate) fn index_of(&self, peer: PeerId) -> usize {
        (0..self.daemons.len())
            .find(|&i| self.peer(i) == Some(peer))
            .unwrap_or_else(|| panic!("{peer} is not a running node"))
    }

    /// The index of `peer` among every node started, running or not (`usize::MAX`: none).
    fn index_of_any(&self, peer: PeerId) -> usize {
        (0..self.daemons.len())
            .find(|&i| self.peer(i) == Some(peer))
            .unwrap_or(usize::MAX)
    }

    /// Stops node `i`; [`Self::restart`] brings it back on the same address.
    pub(crate) async fn stop(&mut self, i: usize) {
        let daemon = self.daemons[i].take().unwrap();
        let addr = listen_addr(&daemon).await;
        daemon.stop().await.unwrap();
        self.stopped_addrs.insert(i, addr);
    }

    /// Stops node `i`, deletes its shard store (identity and metadata kept) and starts it
    /// again on the same address, as a server whose data disk was replaced.
    async fn replace_disk(&mut self, i: usize) {
        self.stop(i).await;
        std::fs::remove_dir_all(self.dirs[i].path().join("store")).unwrap();
        self.restart(i).await;
    }

    /// Stops node `i` and starts it again on the same address (as a rebooted server).
    async fn reboot(&mut self, i: usize, down_for: Duration) {
        self.stop(i).await;
        tokio::time::sleep(down_for).await;
        self.restart(i).await;
    }

    /// Starts a new, empty node that joins through the first one; returns its index.
    pub(crate) async fn join(&mut self) -> usize {
        self.join_as(None).await
    }

    /// Starts a new, empty node with the identity key at `identity` (a new one if
    /// `None`) that joins through the first one; returns its index.
    pub(crate) async fn join_as(&mut self, identity: Option<&std::path::Path>) -> usize {
        let dir = tempfile::tempdir().unwrap();
        if let Some(identity) = identity {
            std::fs::copy(identity, DataDir::new(dir.path()).identity_key()).unwrap();
        }
        let daemon = Daemon::start(self.config(dir.path())).await.unwrap();
        self.dirs.push(dir);
        self.daemons.push(Some(daemon));
        self.daemons.len() - 1
    }

    /// Retires `peers` (see [`Self::revoke`]), then waits until every running node has
    /// seen them leave and every member has handed off for them (a member down and not
    /// retired would hold the hand-off: retire every lost node).
    pub(crate) async fn retire(&self, peers: &[PeerId]) {
        for &peer in peers {
            self.revoke(peer).await;
        }
        self.wait_handed_off(peers).await;
    }

    /// Waits until every running node has seen `peers` leave the roster and dropped
    /// their places (every member has handed off for them).
    pub(crate) async fn wait_handed_off(&self, peers: &[PeerId]) {
        let gone = crate::eventually(Duration::from_secs(180), async || {
            self.daemons.iter().flatten().all(|d| {
                d.membership().departures_seen() >= peers.len() as u64
                    && d.membership().departed().is_empty()
                    && !d.membership().all().iter().any(|m| peers.contains(&m.peer))
            })
        })
        .await;
        let states: Vec<String> = self
            .daemons
            .iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}: catching up {}, departed {:?}, handed off {:?}, catch-up {:?}",
                    d.net().local_peer_id(),
                    d.is_catching_up(),
                    d.membership()
                        .departed()
                        .iter()
                        .map(|m| m.peer)
                        .collect::<Vec<_>>(),
                    d.membership().handed_off(),
                    d.worker_statuses()
                        .into_iter()
                        .find(|w| w.name == "catch_up")
                )
            })
            .collect();
        assert!(
            gone,
            "the hand-off for {peers:?} never finished: {states:#?}"
        );
    }

    /// Another client of the same tenant, connected through the first running node,
    /// once it sees `nodes` nodes.
    pub(crate) async fn another_client(&self, nodes: usize) -> Client {
        self.client_granted(&["*:all"], nodes).await
    }

    /// Another client of the same tenant certified with `grants` (`BUCKET:RIGHTS`),
    /// connected through the first running node, once it sees `nodes` nodes.
    pub(crate) async fn client_granted(&self, grants: &[&str], nodes: usize) -> Client {
        let running = self.daemons.iter().flatten().next().unwrap();
        Self::client_of(&listen_addr(running).await, &self.master, nodes, grants).await
    }

    async fn client_of(
        addr: &Multiaddr,
        master: &MasterKey,
        nodes: usize,
        grants: &[&str],
    ) -> Client {
        let (identity, admission) = crate::daemons::client_identity_granted(grants);
        let mut config = andromede_client::ClientConfig::new(
            vec![addr.clone()],
            identity,
            admission,
            master.clone(),
        );
        config.codec = CodecConfig {
            segment_bytes: SEGMENT as u64,
            ..CodecConfig::default()
        };
        let client = Client::connect(config).await.unwrap();
        client
            .wait_for_nodes(nodes, Duration::from_secs(30))
            .await
            .unwrap();
        client
    }

    /// Revokes `peer` where the authority key is: the list goes to the first running
    /// node, which passes it on.
    pub(crate) async fn revoke(&self, peer: PeerId) {
        let first = self.daemons.iter().flatten().next().unwrap();
        let held = first.net().revocations().borrow().clone();
        let list = crate::daemons::test_authority()
            .revoke(&held, peer, andromede_cluster::authority::unix_now())
            .unwrap();
        first
            .net()
            .publish_revocations(list.signed().unwrap().clone())
            .await
            .unwrap()
            .unwrap();
    }

    /// Starts stopped node `i` again on a new port and with no bootstrap address: it can
    /// only find the others through the roster it kept.
    pub(crate) async fn restart_alone_elsewhere(&mut self, i: usize) {
        let mut config = self.config(self.dirs[i].path());
        config.bootstrap = Vec::new();
        self.stopped_addrs.remove(&i);
        self.daemons[i] = Some(Daemon::start(config).await.unwrap());
    }

    /// Starts stopped node `i` again, on the address it had.
    async fn restart(&mut self, i: usize) {
        let mut config = self.config(self.dirs[i].path());
        if let Some(addr) = self.stopped_addrs.remove(&i) {
            config.listen = vec![addr];
        }
        self.daemons[i] = Some(Daemon::start(config).await.unwrap());
    }

    /// The manifest of `bucket/key`, read from a quorum.
    pub(crate) async fn manifest(&self, bucket: &str, key: &str) -> Manifest {
        self.client.object_manifest(bucket, key).await.unwrap()
    }

    /// Whether every segment of `manifest` has `k + m` shards held by running nodes,
    /// on distinct nodes when `distinct` (a cluster of at least `k + m` nodes).
    pub(crate) async fn fully_redundant(&self, manifest: &Manifest, distinct: bool) -> bool {
        let Body::Segments(segments) = &manifest.body else {
            return true;
        };
        let running: BTreeSet<PeerId> = (0..self.daemons.len())
            .filter_map(|i| self.peer(i))
            .collect();
        for (s, segment) in (0u64..).zip(segments) {
            let mut holders = BTreeSet::new();
            for (j, id) in (0u8..).zip(&segment.shard_ids) {
                let Some(peer) = manifest
                    .holder(s, j)
                    .and_then(|h| PeerId::from_bytes(h).ok())
                    .filter(|p| running.contains(p))
                else {
                    return false;
                };
                // Asked of the node's store directly: the client may not have connected
                // to a node that has just joined.
                let store = self.daemons[self.index_of(peer)].as_ref().unwrap().store();
                if store.have(&[*id]).ok().as_deref() != Some(&[true]) {
                    return false;
                }
                holders.insert(peer);
            }
            if distinct && holders.len() != segment.shard_ids.len() {
                return false;
            }
        }
        true
    }

    /// Waits (up to `within`) until every object in `keys` is fully redundant.
    pub(crate) async fn wait_repaired(
        &self,
        bucket: &str,
        keys: &[(String, Vec<u8>)],
        within: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        for (key, _) in keys {
            loop {
                // A read may fail while the cluster notices a node stopped: retried, told.
                let manifest = match self.client.object_manifest(bucket, key).await {
                    Ok(manifest) => manifest,
                    Err(error) if tokio::time::Instant::now() < deadline => {
                        eprintln!("{key}: manifest unreadable for now: {error}");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    Err(error) => panic!("{key}: manifest unreadable: {error}"),
                };
                if self.fully_redundant(&manifest, true).await {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{key} not back to full redundancy in {within:?}: holders {:?}, running {:?}",
                    manifest
                        .holder_matrix()
                        .iter()
                        .map(|row| row
                            .iter()
                            .map(|h| h
                                .as_ref()
                                .and_then(|h| PeerId::from_bytes(h).ok())
                                .map(|p| self.index_of_any(p)))
                            .collect::<Vec<_>>())
                        .collect::<Vec<_>>(),
                    (0..self.daemons.len())
                        .filter(|&i| self.daemons[i].is_some())
                        .collect::<Vec<_>>()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// Sizes at the repair boundaries for RS(4,2) and `SEGMENT`: a segment ± 1 (a 1-byte last
/// segment), and a last segment of k·shard ± 1 sealed bytes.
fn sizes() -> Vec<usize> {
    let seal = 40;
    vec![
        SEGMENT - 1,
        SEGMENT + 1,
        2 * SEGMENT + 4 * 1000 - seal - 1,
        2 * SEGMENT + 4 * 1000 - seal + 1,
        40_000,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_of_a_lost_node_are_rebuilt_elsewhere_twice_in_a_row() {
    // k + m + 2 = 8 nodes: each of two lost nodes leaves room for full redundancy.
    let mut cluster = Cluster::start(8).await;
    cluster
        .client
        .create_bucket("repair", bucket(4, 2, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = sizes()
        .into_iter()
        .enumerate()
        .map(|(i, len)| (format!("object-{i}"), body(len, i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "repair", key, data).await;
    }

    let mut lost = Vec::new();
    for round in 0..2 {
        // Stop the holder of shard 0 of the first object: it holds shards of it for sure.
        let manifest = cluster.manifest("repair", &objects[0].0).await;
        let victim = PeerId::from_bytes(manifest.holder(0, 0).unwrap()).unwrap();
        lost.push(victim);
        let victim = cluster.index_of(victim);
        cluster.stop(victim).await;
        cluster
            .wait_repaired("repair", &objects, Duration::from_secs(90))
            .await;
        let repaired: u64 = cluster
            .daemons
            .iter()
            .flatten()
            .map(|d| d.repair_status().versions_repaired)
            .sum();
        assert!(repaired > round, "round {round}: no manifest rewritten");
    }

    // The two lost nodes never come back: they are retired (their metadata roles move
    // to the others). Full redundancy is real: with m = 2 more nodes stopped, everything
    // reads back.
    cluster.retire(&lost).await;
    let mut more = 2;
    for i in (1..8).rev() {
        if more > 0 && cluster.daemons[i].is_some() {
            cluster.stop(i).await;
            more -= 1;
        }
    }
    // Read by the client connected all along and by one that joins now (it never
    // heard from the stopped nodes).
    let reader = cluster.another_client(4).await;
    for client in [&cluster.client, &reader] {
        for (key, data) in &objects {
            assert_eq!(&get(client, "repair", key).await, data, "{key}");
        }
    }
}

/// A version that a PUT replaced waits for the collector, not for repair: once a holder
/// of both is lost, the current version is rebuilt and the replaced one's manifest still
/// names the lost holder (its shards are deleted after the grace period anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_rebuilds_current_versions_and_leaves_replaced_ones_to_the_collector() {
    let mut cluster = Cluster::start(7).await;
    cluster
        .client
        .create_bucket("doomed", bucket(4, 2, &[]))
        .await
        .unwrap();
    let first = body(SEGMENT + 1, 7);
    let second = body(SEGMENT + 1, 8);
    put(&cluster.client, "doomed", "k", &first).await;
    let replaced = cluster.manifest("doomed", "k").await;
    put(&cluster.client, "doomed", "k", &second).await;
    let current = cluster.manifest("doomed", "k").await;
    assert_ne!(replaced.version_id, current.version_id);

    // A node (not the first, the client's way in) holding shards of both versions.
    let holders = |manifest: &Manifest| -> BTreeSet<PeerId> {
        manifest
            .holder_matrix()
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| PeerId::from_bytes(&h).unwrap())
            .collect()
    };
    let both: BTreeSet<PeerId> = holders(&replaced)
        .intersection(&holders(&current))
        .copied()
        .collect();
    let victim = (1..7)
        .find(|&i| both.contains(&cluster.peer(i).unwrap()))
        .expect("some node holds shards of both versions");
    let lost = cluster.peer(victim).unwrap();
    cluster.stop(victim).await;

    cluster
        .wait_repaired(
            "doomed",
            &[("k".to_owned(), second.clone())],
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(get(&cluster.client, "doomed", "k").await, second);
    // A few more passes of every repair worker (down-peer passes every 500 ms, sweeps
    // every 3 s: eight passes take in a sweep) to be sure.
    let before: Vec<u64> = cluster
        .daemons
        .iter()
        .flatten()
        .map(|d| passes(d, "repair"))
        .collect();
    let ran = eventually(Duration::from_secs(60), async || {
        cluster
            .daemons
            .iter()
            .flatten()
            .zip(&before)
            .all(|(d, before)| passes(d, "repair") >= before + 8)
    })
    .await;
    assert!(ran, "the repair workers did not run");
    let key = andromede_cluster::meta::key::RecordKey {
        table: andromede_cluster::meta::key::Table::Manifest,
        partition: "doomed".to_owned(),
        sort: replaced.version_id.as_bytes().to_vec(),
    };
    let mut replicas_seen = 0;
    for daemon in cluster.daemons.iter().flatten() {
        let Some(record) = daemon.meta().get(&key).unwrap() else {
            continue;
        };
        let bytes = record
            .value
            .expect("the replaced version is collected only after 15 min");
        let manifest = Manifest::decode(&bytes).unwrap();
        assert!(
            holders(&manifest).contains(&lost),
            "the replaced version was repaired: holders {:?}",
            holders(&manifest)
        );
        replicas_seen += 1;
    }
    assert!(
        replicas_seen >= 2,
        "{replicas_seen} replicas hold the replaced version"
    );
}

/// A disk replaced under a running identity: the node is back with an empty store long
/// before anyone would call it down, and no sweep is due for an hour. Its new store epoch
/// alone brings repair: first a node that is not the bucket's repairer, then the repairer
/// itself (which finds its own store new at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replaced_disk_is_repaired_in_place_without_waiting_for_a_sweep() {
    let mut cluster = Cluster::start_tuned(
        6,
        |_| 1 << 30,
        |config| {
            // Neither the down-peer pass nor a sweep can run during this test: the first
            // sweep is due `down_after` after start.
            config.down_after = Duration::from_secs(600);
            config.repair.sweep_interval = Duration::from_secs(3600);
        },
    )
    .await;
    cluster
        .client
        .create_bucket("disks", bucket(4, 2, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = [SEGMENT + 1, 3 * SEGMENT]
        .into_iter()
        .enumerate()
        .map(|(i, len)| (format!("object-{i}"), body(len, 40 + i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "disks", key, data).await;
    }
    let holders_of = |manifest: &Manifest| -> BTreeSet<PeerId> {
        manifest
            .holder_matrix()
            .into_iter()
            .flatten()
            .flatten()
            .map(|b| PeerId::from_bytes(&b).unwrap())
            .collect()
    };
    let manifest = cluster.manifest("disks", &objects[1].0).await;
    let held = holders_of(&manifest);

    let mut replaced = Vec::new();
    for round in 0..2 {
        // Round 0: a holder that has rebuilt nothing (not the repairer). Round 1: the
        // node that did the rebuilding in round 0.
        let rebuilt = |c: &Cluster, i: usize| {
            c.daemons[i]
                .as_ref()
                .map_or(0, |d| d.repair_status().shards_rebuilt)
        };
        let victim = if round == 0 {
            (0..6)
                .find(|&i| held.contains(&cluster.peer(i).unwrap()) && rebuilt(&cluster, i) == 0)
                .unwrap()
        } else {
            (0..6).find(|&i| rebuilt(&cluster, i) > 0).unwrap()
        };
        if round == 1 && !held.contains(&cluster.peer(victim).unwrap()) {
            // The repairer holds none of these shards: its own store's renewal would
            // prove nothing here.
            break;
        }
        cluster.replace_disk(victim).await;
        replaced.push(victim);
        cluster
            .wait_repaired("disks", &objects, Duration::from_secs(60))
            .await;
        assert!(
            !files_under(&cluster.dirs[victim].path().join("store"), ".shard").is_empty(),
            "round {round}: node {victim} got nothing back"
        );
        // In place: the same nodes hold the shards.
        assert_eq!(
            holders_of(&cluster.manifest("disks", &objects[1].0).await),
            held,
            "round {round}"
        );
    }
    assert!(!replaced.is_empty());
    for daemon in cluster.daemons.iter().flatten() {
        assert_eq!(
            daemon.repair_status().health_at_ms,
            0,
            "a sweep ran: the test proves nothing"
        );
    }
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "disks", key).await, data, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_store_corrupt_and_missing_shards_are_rebuilt_in_place() {
    let mut cluster = Cluster::start(6).await;
    cluster
        .client
        .create_bucket("heal", bucket(4, 2, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = sizes()
        .into_iter()
        .enumerate()
        .map(|(i, len)| (format!("object-{i}"), body(len, 100 + i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "heal", key, data).await;
    }

    // One segment: its shard 1 corrupted on its holder, its shard 2 deleted on another.
    let manifest = cluster.manifest("heal", &objects[1].0).await;
    let Body::Segments(segments) = &manifest.body else {
        panic!("not segmented")
    };
    let shard_path = |j: u8| {
        let holder = PeerId::from_bytes(manifest.holder(0, j).unwrap()).unwrap();
        let dir = cluster.dirs[cluster.index_of(holder)].path().to_owned();
        let name = format!("{}.shard", segments[0].shard_ids[usize::from(j)]);
        files_under(&dir, ".shard")
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy() == name)
            .unwrap()
    };
    let corrupt = shard_path(1);
    let missing = shard_path(2);
    let mut bytes = std::fs::read(&corrupt).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&corrupt, &bytes).unwrap();
    let holder_of_2 = PeerId::from_bytes(manifest.holder(0, 2).unwrap()).unwrap();
    let i2 = cluster.index_of(holder_of_2);
    cluster.stop(i2).await;
    std::fs::remove_file(&missing).unwrap();
    cluster.restart(i2).await;

    cluster
        .wait_repaired("heal", &objects, Duration::from_secs(90))
        .await;

    // Then a node whose shard store is wiped (identity kept) restarts empty. (Not at the
    // same time: with six nodes it holds a third shard of the damaged segment.)
    let wiped = 3;
    cluster.stop(wiped).await;
    std::fs::remove_dir_all(cluster.dirs[wiped].path().join("store")).unwrap();
    cluster.restart(wiped).await;
    assert!(files_under(&cluster.dirs[wiped].path().join("store"), ".shard").is_empty());

    cluster
        .wait_repaired("heal", &objects, Duration::from_secs(90))
        .await;
    // In place: every holder is still one of the six nodes, and the wiped node holds shards again.
    assert!(!files_under(&cluster.dirs[wiped].path().join("store"), ".shard").is_empty());
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "heal", key).await, data, "{key}");
    }
    let status: Vec<_> = cluster
        .daemons
        .iter()
        .flatten()
        .map(Daemon::repair_status)
        .collect();
    assert!(
        status.iter().map(|s| s.shards_rebuilt).sum::<u64>() >= 2,
        "{status:?}"
    );

    // A shard file that holds another valid shard's bytes (a misdirected write): never
    // served under the name it has, and rebuilt in place.
    let store = cluster.dirs[1].path().join("store").join("shards");
    let mut files = files_under(&store, ".shard");
    files.sort();
    assert!(files.len() >= 2);
    std::fs::copy(&files[0], &files[1]).unwrap();
    let misdirected = andromede_proto::ShardId::from_hex(
        files[1]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".shard"),
    )
    .unwrap();
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "heal", key).await, data, "{key}");
    }
    // Found (by a read or the scrubber), quarantined, rebuilt: the node serves the right
    // bytes under that id again.
    let node1 = cluster.peer(1).unwrap();
    let healed = crate::eventually(Duration::from_secs(90), async || {
        let request = ShardRequest::Get { id: misdirected };
        match cluster
            .client
            .net()
            .request(node1, Protocol::Shard, request.encode())
            .await
            .map(|answer| decode_shard_response(&request, answer.into()))
        {
            Ok(Ok(ShardResponse::Get { data })) => {
                andromede_cluster::shard::hash::verify_shard(&misdirected, &data)
            }
            _ => false,
        }
    })
    .await;
    assert!(healed, "the misdirected shard was not rebuilt");
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "heal", key).await, data, "{key}");
    }
}

/// Redundancy as the nodes report it: the health counts of every running node summed
/// (each bucket is counted by its owner only).
fn reported(cluster: &Cluster) -> andromede_cluster::admin::HealthCounts {
    let mut sum = andromede_cluster::admin::HealthCounts::default();
    for daemon in cluster.daemons.iter().flatten() {
        let health = daemon.repair_status().health;
        sum.full += health.full;
        sum.at_risk += health.at_risk;
        sum.lost += health.lost;
        for (losses, count) in health.survives_node_losses {
            *sum.survives_node_losses.entry(losses).or_default() += count;
        }
        for (missing, count) in health.degraded {
            *sum.degraded.entry(missing).or_default() += count;
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_of_exactly_k_plus_m_nodes_that_loses_one_reports_its_tolerance_honestly() {
    let mut cluster = Cluster::start(3).await;
    cluster
        .client
        .create_bucket("tight", bucket(2, 1, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = sizes()
        .into_iter()
        .enumerate()
        .map(|(i, len)| (format!("object-{i}"), body(len, 50 + i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "tight", key, data).await;
    }
    let mut segments = 0;
    for (key, _) in &objects {
        segments += cluster.manifest("tight", key).await.segment_count();
    }
    // Three nodes, three shards per segment: each segment survives one node loss.
    let full = crate::eventually(Duration::from_secs(60), async || {
        reported(&cluster).survives_node_losses.get(&1) == Some(&segments)
    })
    .await;
    assert!(full, "{:?}", reported(&cluster));

    // One node gone for good: repair restores three shards per segment on the two left,
    // and the nodes say each segment now survives no node loss.
    let victim = cluster.index_of(
        PeerId::from_bytes(
            cluster
                .manifest("tight", &objects[0].0)
                .await
                .holder(0, 2)
                .unwrap(),
        )
        .unwrap(),
    );
    cluster.stop(victim).await;
    let honest = crate::eventually(Duration::from_secs(90), async || {
        let health = reported(&cluster);
        health.full == segments
            && health.lost == 0
            && health.survives_node_losses.get(&0) == Some(&segments)
    })
    .await;
    assert!(honest, "{:?}", reported(&cluster));
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "tight", key).await, data, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_flapping_faster_than_down_after_starts_no_repair() {
    let mut cluster = Cluster::start(4).await;
    cluster
        .client
        .create_bucket("flap", bucket(2, 1, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            (
                format!("object-{i}"),
                body(SEGMENT + 1000 * i, 80 + i as u8),
            )
        })
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "flap", key, data).await;
    }
    let flapper = cluster.index_of(
        PeerId::from_bytes(
            cluster
                .manifest("flap", &objects[0].0)
                .await
                .holder(0, 0)
                .unwrap(),
        )
        .unwrap(),
    );
    // Down for half of down_after (3 s), up for as long, eight times.
    for _ in 0..8 {
        cluster.reboot(flapper, Duration::from_millis(1500)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let rewritten: u64 = cluster
        .daemons
        .iter()
        .flatten()
        .map(|d| d.repair_status().versions_repaired)
        .sum();
    assert_eq!(rewritten, 0, "a flapping node had its shards moved");
    cluster
        .wait_repaired("flap", &objects, Duration::from_secs(60))
        .await;
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "flap", key).await, data, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_with_m_plus_one_shards_destroyed_report_lost_and_the_rest_read_fine() {
    let cluster = Cluster::start(5).await;
    cluster
        .client
        .create_bucket("lost", bucket(2, 1, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("object-{i}"), body(SEGMENT + 1 + i, i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "lost", key, data).await;
    }
    // m + 1 = 2 shards of segment 0 of objects 1 and 3, deleted from their holders.
    let doomed = [1usize, 3];
    for &o in &doomed {
        let manifest = cluster.manifest("lost", &objects[o].0).await;
        let Body::Segments(segments) = &manifest.body else {
            panic!("object {o} is not segmented");
        };
        for j in 0..2u8 {
            let holder = PeerId::from_bytes(manifest.holder(0, j).unwrap()).unwrap();
            let store = cluster.daemons[cluster.index_of(holder)]
                .as_ref()
                .unwrap()
                .store();
            assert_eq!(
                store
                    .delete(&[segments[0].shard_ids[usize::from(j)]])
                    .unwrap(),
                1
            );
        }
    }

    // Exactly those objects fail, with an error, never other bytes; the rest read fine.
    for (o, (key, data)) in objects.iter().enumerate() {
        match cluster.client.get_object_bytes("lost", key).await {
            Ok(read) => {
                assert!(
                    !doomed.contains(&o),
                    "{key} read back with m + 1 shards gone"
                );
                assert!(&read == data, "{key} read back other bytes");
            }
            Err(error) => {
                assert!(doomed.contains(&o), "{key} failed: {error}");
                assert!(
                    error.to_string().contains("unrecoverable"),
                    "{key}: unclear error {error}"
                );
            }
        }
    }
    // Repair reports exactly those two segments lost, and every other one whole (after
    // its sweeps, which also rebuild nothing it cannot).
    let as_expected = eventually(Duration::from_secs(60), async || {
        let health = reported(&cluster);
        health.lost == 2 && health.full == 6
    })
    .await;
    assert!(as_expected, "health reported: {:?}", reported(&cluster));
    for (o, (key, data)) in objects.iter().enumerate() {
        if !doomed.contains(&o) {
            assert_eq!(&get(&cluster.client, "lost", key).await, data, "{key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_node_takes_no_more_shards_and_nothing_is_lost() {
    // Node 4 has room for two or three shards of these objects only.
    const SMALL: u64 = 400 * 1024;
    let mut cluster = Cluster::start_with(5, |i| if i == 4 { SMALL } else { 1 << 30 }).await;
    cluster
        .client
        .create_bucket("full", bucket(2, 1, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("object-{i}"), body(2 * SEGMENT + 1 + i, i as u8)))
        .collect();
    // Every PUT succeeds: placement avoids the full node once it says so, and until then
    // its refusals send the shards to the next peer in placement order.
    for (key, data) in &objects {
        put(&cluster.client, "full", key, data).await;
    }
    let full = cluster.daemons[4].as_ref().unwrap().store().usage();
    assert!(
        full.used_bytes <= SMALL,
        "the full node went over its capacity"
    );
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "full", key).await, data, "{key}");
    }
    // A node is lost: repair rebuilds its shards on the nodes with room, never on the
    // full one, and every object is back to k + m shards on distinct nodes.
    cluster.stop(2).await;
    cluster
        .wait_repaired("full", &objects, Duration::from_secs(90))
        .await;
    let full = cluster.daemons[4].as_ref().unwrap().store().usage();
    assert!(full.used_bytes <= SMALL, "repair overfilled the full node");
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "full", key).await, data, "{key}");
    }
}
