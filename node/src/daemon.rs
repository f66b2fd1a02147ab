//! The composition root: opens the store, starts the swarm, the shard service and the
//! scrubber, in that order, and stops them in reverse (Garage's `run_server` idea).

use andromede_cluster::authority::AuthorityKey;
use andromede_cluster::net::{self, Multiaddr, NetConfig, NetHandle, PeerId, PeerRole};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use std::sync::Arc;

use crate::admin::{self, AdminState};
use crate::data_dir::DataDir;
use andromede_cluster::admin::{DrainProgress, RepairStatus};

use crate::drain::Drain;
use crate::error::DaemonError;
use crate::meta::MetaStore;
use crate::meta::replica::SledMetaStore;
use crate::service::dispatch::{self, NodeTags};
use crate::service::meta::LocalMeta;
use crate::store::{IndexOptions, ShardStore};
use crate::workers::anti_entropy::{AntiEntropyConfig, AntiEntropyWorker};
use crate::workers::catch_up::{CatchUp, CatchUpWorker};
use crate::workers::gc::{GcConfig, GcWorker};
use crate::workers::liveness::Liveness;
use crate::workers::orphans::{OrphanConfig, OrphanWorker};
use crate::workers::repair::{RepairConfig, RepairStatusHandle, RepairWorker};
use crate::workers::runner::{WorkerContext, Workers};
use crate::workers::scrub::{ScrubConfig, ScrubWorker};
use crate::workers::shard_calls::ShardCalls;
use andromede_cluster::meta::hlc::Hlc;
use andromede_cluster::meta::seal::{RecordSigner, RecordVerifier};
use andromede_cluster::{Membership, MembershipConfig, MetaQuorum};

/// Time the workers have to finish their current step when the node stops (then they
/// are aborted; every step is safe to cut, this only avoids redoing work).
const WORKER_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// Pause between rounds of dials to the bootstrap peers this node is not connected to
/// (see `andromede_cluster::net::join`).
const BOOTSTRAP_REDIAL_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Data directory (created if missing).
    pub data: DataDir,
    /// Most bytes of shards kept.
    pub capacity_bytes: u64,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through.
    pub bootstrap: Vec<Multiaddr>,
    /// Background scrubbing.
    pub scrub: ScrubConfig,
    /// Metadata anti-entropy.
    pub anti_entropy: AntiEntropyConfig,
    /// Garbage collection of replaced and deleted versions.
    pub gc: GcConfig,
    /// A peer unreachable this long is down: its shards are repaired.
    pub down_after: std::time::Duration,
    /// Repair of lost shards.
    pub repair: RepairConfig,
    /// Collection of shards no manifest references.
    pub orphans: OrphanConfig,
    /// The cluster's authority (the node's zone and jurisdiction are those of its
    /// certificate, `DIR/certificate`).
    pub authority: AuthorityKey,
    /// Where the admin endpoint listens (loopback), if anywhere.
    pub admin: Option<std::net::SocketAddr>,
    /// How the node's view of the cluster is kept fresh.
    pub membership: MembershipConfig,
    /// Time a metadata replica has to answer.
    pub meta_request_timeout: std::time::Duration,
    /// Time a shard holder has to answer.
    pub shard_request_timeout: std::time::Duration,
    /// The cluster's minimum redundancy: this replica refuses a bucket policy with fewer
    /// parity shards.
    pub min_parity: u8,
}

/// A running node.
#[derive(Debug)]
pub struct Daemon {
    store: ShardStore,
    meta: Arc<dyn MetaStore>,
    drain: Drain,
    catch_up: CatchUp,
    admin_state: AdminState,
    membership: Membership,
    net: NetHandle,
    repair: RepairStatusHandle,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    workers: Workers,
}

impl Daemon {
    /// Starts a node from its data directory: identity, certificate (required: see
    /// `andromede-node init`), revocations, stores.
    ///
    /// # Errors
    /// [`DaemonError`] if the keys, the store or the network cannot be set up.
    pub async fn start(config: DaemonConfig) -> Result<Self, DaemonError> {
        #[cfg(feature = "fault-injection")]
        if let Some(bug) = crate::store::power::planted_bug().map_err(DaemonError::Task)? {
            tracing::warn!(%bug, "PLANTED BUG: this node runs with a deliberate mistake, for tests only");
        }
        let data = config.data.clone();
        let authority = config.authority.clone();
        let (store, meta, identity, admission, drain, catch_up) =
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(data.root()).map_err(|error| {
                    DaemonError::Store(crate::error::StoreError::Io {
                        op: "create data directory",
                        path: data.root().to_owned(),
                        error,
                    })
                })?;
                let identity = net::load_or_create_identity(&data.identity_key())?;
                let admission = crate::credentials::load_admission(
                    &data,
                    &authority,
                    &PeerId::from(identity.public()),
                )?;
                let (store, _report) = ShardStore::open(&data.store_config(config.capacity_bytes))?;
                let fresh_meta = !data.meta().exists();
                let catch_up = CatchUp::load(data.catch_up_marker(), fresh_meta)
                    .map_err(|e| DaemonError::Task(e.to_string()))?;
                let meta = SledMetaStore::open(&data.meta(), IndexOptions::default())?;
                let drain = Drain::load(data.drain_marker())
                    .map_err(|e| DaemonError::Task(e.to_string()))?;
                Ok::<_, DaemonError>((store, meta, identity, admission, drain, catch_up))
            })
            .await
            .map_err(|e| DaemonError::Task(e.to_string()))??;

        let certificate = admission.certificate().clone();
        let tags = NodeTags {
            zone: certificate.zone().to_owned(),
            jurisdiction: certificate.jurisdiction().to_owned(),
        };
        let mut net_config = NetConfig::new(PeerRole::Node);
        net_config.listen = config.listen.clone();
        let signer = RecordSigner::new(identity.clone(), &certificate);
        let verifier = Arc::new(RecordVerifier::new(admission.trust().authority().clone()));
        let (net, inbound) = net::spawn(identity, admission, net_config)?;
        info!(
            peer = %net.local_peer_id(),
            name = certificate.name(),
            zone = certificate.zone(),
            jurisdiction = certificate.jurisdiction(),
            "node identity (certified)"
        );

        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let membership = Membership::start_node(
            net.clone(),
            config.membership.clone(),
            config.data.roster(),
            !config.bootstrap.is_empty(),
        )
        .await?;
        let meta: Arc<dyn MetaStore> = Arc::new(meta);
        let local = net.local_peer_id();
        let local_meta = LocalMeta {
            peer: local,
            store: Arc::clone(&meta),
            shards: store.clone(),
            tags: tags.clone(),
            membership: membership.clone(),
            drain: drain.clone(),
            catch_up: catch_up.clone(),
            verifier: Arc::clone(&verifier),
            min_parity: config.min_parity,
        };
        tasks.spawn(dispatch::serve(
            store.clone(),
            local_meta.clone(),
            net.clone(),
            inbound,
        ));
        let quorum = MetaQuorum::new(
            net.clone(),
            membership.clone(),
            Arc::new(Hlc::system()),
            signer,
            verifier,
            config.meta_request_timeout,
        )
        .map_err(|e| DaemonError::Task(e.to_string()))?
        .with_local(Arc::new(local_meta));
        let ctx = WorkerContext {
            local,
            net: net.clone(),
            meta: Arc::clone(&meta),
            store: store.clone(),
            quorum: quorum.clone(),
            membership: membership.clone(),
            calls: ShardCalls::new(net.clone(), store.clone(), config.shard_request_timeout),
            drain: drain.clone(),
            catch_up: catch_up.clone(),
            tags: tags.clone(),
            lock: crate::workers::MaintenanceLock::default(),
        };
        let mut workers = Workers::new(cancel.child_token());
        let scrub = ScrubWorker::new(&ctx, config.scrub.clone());
        workers.spawn("scrub", |cancel, status| scrub.run(cancel, status));
        let anti_entropy = AntiEntropyWorker::new(&ctx, config.anti_entropy.clone());
        workers.spawn("anti_entropy", |cancel, status| {
            anti_entropy.run(cancel, status)
        });
        let catching_up = CatchUpWorker::new(&ctx, !config.bootstrap.is_empty());
        workers.spawn("catch_up", |cancel, status| catching_up.run(cancel, status));
        let gc = GcWorker::new(&ctx, config.gc.clone());
        workers.spawn("gc", |cancel, status| gc.run(cancel, status));
        let orphans = OrphanWorker::new(&ctx, config.data.orphans_roster(), config.orphans.clone());
        workers.spawn("orphans", |cancel, status| orphans.run(cancel, status));
        let liveness = Liveness::new(membership.clone(), local, config.down_after);
        let repair = RepairWorker::new(&ctx, liveness, config.repair.clone());
        let repair_status = repair.status();
        workers.spawn("repair", |cancel, status| repair.run(cancel, status));
        let admin_state = AdminState {
            net: net.clone(),
            store: store.clone(),
            membership: membership.clone(),
            tags: tags.clone(),
            repair: Arc::clone(&repair_status),
            drain: drain.clone(),
            quorum,
            catch_up: catch_up.clone(),
            workers: workers.status_handles(),
        };
        if let Some(addr) = config.admin {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                DaemonError::Admin(format!(
                    "cannot listen on {addr} ({e}): another node may use it; change `admin` in config.toml"
                ))
            })?;
            info!(%addr, "admin endpoint listening");
            tasks.spawn(admin::serve(listener, admin_state.clone()));
        }

        tasks.spawn(crate::credentials::keep_credentials(
            config.data.clone(),
            net.clone(),
            certificate,
            cancel.child_token(),
        ));
        if !config.bootstrap.is_empty() {
            tasks.spawn(andromede_cluster::net::join::keep_joined(
                net.clone(),
                config.bootstrap,
                BOOTSTRAP_REDIAL_EVERY,
            ));
        }
        Ok(Self {
            store,
            meta,
            drain,
            catch_up,
            admin_state,
            membership,
            net,
            repair: repair_status,
            cancel,
            tasks,
            workers,
        })
    }

    /// The node's network handle.
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    /// Its metadata quorum access (as its workers use it).
    pub fn quorum(&self) -> &MetaQuorum {
        &self.admin_state.quorum
    }

    /// The nodes this node knows.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The node's shard store.
    pub fn store(&self) -> &ShardStore {
        &self.store
    }

    /// The node's metadata replica store (what this node holds, not a quorum read).
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// Whether its metadata store is new and still being filled from the other replicas
    /// (see [`crate::workers::catch_up`]).
    pub fn is_catching_up(&self) -> bool {
        self.catch_up.is_pending()
    }

    /// Starts draining this node (see [`crate::drain`]); returns when the drain began.
    ///
    /// # Errors
    /// The drain could not be recorded durably; nothing changed.
    pub fn start_drain(&self) -> Result<u64, crate::drain::DrainError> {
        self.drain.start()
    }

    /// How far the drain has come (asks every member).
    pub async fn drain_progress(&self) -> DrainProgress {
        self.admin_state.drain_progress().await
    }

    /// How each background worker's passes go.
    pub fn worker_statuses(&self) -> Vec<andromede_cluster::admin::WorkerStatus> {
        self.workers.statuses()
    }

    /// What repair has done and sees.
    pub fn repair_status(&self) -> RepairStatus {
        self.repair
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the workers, the service and the swarm, then flushes the index.
    ///
    /// # Errors
    /// [`DaemonError::Store`] if the final flush fails.
    pub async fn stop(mut self) -> Result<(), DaemonError> {
        self.cancel.cancel();
        // The admin endpoint, the bootstrap loop and the dispatcher with the requests it
        // serves: abort rather than wait on peers (an unanswered request is retried).
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        // The workers finish the step they are in (a manifest rewrite, a shard write).
        self.workers.stop(WORKER_STOP_GRACE).await;
        drop(self.membership);
        drop(self.net);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| DaemonError::Task(e.to_string()))??;
        Ok(())
    }
}
