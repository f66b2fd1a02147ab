//! The S3-like API: [`Client::connect`] joins the cluster as a Kademlia client, then
//! buckets ([`bucket`]) and objects ([`object`], [`list`]) are read and written straight on
//! the nodes: shards to and from their placement peers, metadata on each bucket's
//! replicas with quorums.
//!
//! Where things live (DESIGN.md, "Metadata"): bucket records in the bucket directory,
//! replicated on the nodes closest to a fixed id; a bucket's object index, manifests and
//! garbage records on the nodes closest to the bucket's id.

mod audit;
mod bucket;
mod error;
mod list;
mod multipart;
mod names;
mod object;
mod private;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libp2p::identity::Keypair;
use tracing::{info, warn};

pub use audit::{AuditReport, AuditSummary, ObjectAudit, ShardPlace};
pub use bucket::BucketOptions;
pub use error::ClientError;
pub use list::{ListOptions, ListPage, ObjectSummary};
pub use multipart::{
    CompletedPart, MULTIPART_EXPIRY_DEFAULT, PART_BYTES_MAX, PART_BYTES_MIN, PART_NUMBER_MAX,
    PartInfo, UploadSummary,
};
pub use names::{validate_bucket_name, validate_key};
pub use object::{GetObject, ObjectInfo, ObjectReader, PutObjectOptions};
pub use private::PRIVATE_VALUE_BYTES_MAX;

use crate::codec::CodecConfig;
use crate::keys::MasterKey;
use andromede_cluster::authority::Rights;
use andromede_cluster::meta::hlc::Hlc;
use andromede_cluster::meta::seal::{RecordSigner, RecordVerifier};
use andromede_cluster::net::join::JoinKeeper;
use andromede_cluster::net::{
    self, Admission, Multiaddr, NetConfig, NetError, NetHandle, PeerRole,
};
use andromede_cluster::{Member, Membership, MembershipConfig, MetaQuorum};

/// Everything a client needs to reach a cluster and read its objects.
#[derive(Debug)]
pub struct ClientConfig {
    /// Nodes to join through (at least one must answer).
    pub bootstrap: Vec<Multiaddr>,
    /// This client's identity (its peer id is what its certificate names).
    pub identity: Keypair,
    /// Its certificate and the cluster's authority.
    pub admission: Admission,
    /// The tenant master key: objects are sealed under it and only readable with it.
    pub master: MasterKey,
    /// Codec tuning.
    pub codec: CodecConfig,
    /// How long replaced and deleted versions' shards are kept before collection.
    pub gc_grace: Duration,
    /// How long an incomplete multipart upload is kept before its parts are collected.
    pub multipart_expiry: Duration,
    /// Time a metadata request may take.
    pub request_timeout: Duration,
    /// Time `connect` waits for a first node.
    pub connect_timeout: Duration,
    /// Longest a write waits for enough of the roster's members to be reachable to put
    /// every shard of a segment on its own node (a cluster just started, a client just
    /// connected): after it, shards are doubled up on the members reachable and the
    /// answer says how many node failures the object survives.
    pub placement_wait: Duration,
    /// How this client's view of the cluster is kept fresh: keep `refresh_every` equal
    /// to the nodes' `membership_refresh`, since replica-set hand-offs last a number of
    /// refreshes of every view.
    pub membership: MembershipConfig,
    /// Milliseconds this client's clock is read ahead (negative: behind), for the
    /// clock-skew scenarios; only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub clock_skew_ms: i64,
    /// A planted bug this client runs with; only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub planted_bug: Option<andromede_cluster::faults::PlantedBug>,
}

impl ClientConfig {
    /// Defaults around the four things that have none.
    pub fn new(
        bootstrap: Vec<Multiaddr>,
        identity: Keypair,
        admission: Admission,
        master: MasterKey,
    ) -> Self {
        Self {
            bootstrap,
            identity,
            admission,
            master,
            codec: CodecConfig::default(),
            gc_grace: Duration::from_secs(15 * 60),
            multipart_expiry: MULTIPART_EXPIRY_DEFAULT,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            placement_wait: Duration::from_secs(10),
            membership: MembershipConfig::default(),
            #[cfg(feature = "fault-injection")]
            clock_skew_ms: 0,
            #[cfg(feature = "fault-injection")]
            planted_bug: None,
        }
    }
}

/// A connection to an Andromède cluster. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    net: NetHandle,
    membership: Membership,
    meta: MetaQuorum,
    master: Arc<MasterKey>,
    codec: CodecConfig,
    gc_grace: Duration,
    multipart_expiry: Duration,
    placement_wait: Duration,
    /// Redials bootstrap addresses this client is not connected to; stops with the last
    /// clone of the client.
    _joined: Arc<JoinKeeper>,
}

/// Pause between redials of the bootstrap addresses a client is not connected to (one
/// that failed under load, one that came back): a node missing from the view is a
/// replica or holder the client cannot use.
const BOOTSTRAP_REDIAL_EVERY: Duration = Duration::from_secs(5);

impl Client {
    /// Joins the cluster through `config.bootstrap` and waits until a node answers.
    ///
    /// # Errors
    /// [`ClientError::Net`]: no bootstrap node reachable, or the certificates were refused
    /// (reported as such); [`ClientError::InvalidArgument`] for a bad codec config.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        config.codec.validate()?;
        if config.bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no bootstrap address: give the address of at least one node".into(),
            ));
        }
        let mut net_config = NetConfig::new(PeerRole::Client);
        net_config.request_timeout = config.request_timeout.max(Duration::from_secs(30));
        let signer = RecordSigner::new(config.identity.clone(), config.admission.certificate());
        let verifier = Arc::new(RecordVerifier::new(
            config.admission.trust().authority().clone(),
        ));
        let (net, _inbound) = net::spawn(config.identity, config.admission, net_config)?;
        let mut joined = 0;
        let mut last_error = None;
        for addr in &config.bootstrap {
            match net.dial(addr.clone()).await {
                Ok(peer) => {
                    info!(%peer, %addr, "connected to bootstrap node");
                    joined += 1;
                }
                Err(error) => {
                    warn!(%addr, %error, "bootstrap node unreachable");
                    last_error = Some(error);
                }
            }
        }
        if joined == 0 {
            return Err(ClientError::Net(last_error.unwrap_or(NetError::Shutdown)));
        }
        let joined = JoinKeeper::spawn(
            net.clone(),
            config.bootstrap.clone(),
            BOOTSTRAP_REDIAL_EVERY,
        );
        let membership = Membership::start(net.clone(), config.membership.clone());
        membership.wait_for(1, config.connect_timeout).await?;
        if !membership.wait_settled(config.connect_timeout).await {
            warn!(
                nodes = membership.live().len(),
                "some nodes the cluster knows are not reachable from here yet"
            );
        }
        #[cfg(not(feature = "fault-injection"))]
        let hlc = Hlc::system();
        #[cfg(feature = "fault-injection")]
        let hlc = Hlc::new(
            andromede_cluster::meta::hlc::SystemClock::skewed(config.clock_skew_ms),
            andromede_cluster::meta::hlc::MAX_DRIFT_DEFAULT,
        );
        let meta = MetaQuorum::new(
            net.clone(),
            membership.clone(),
            Arc::new(hlc),
            signer,
            verifier,
            config.request_timeout,
        )?;
        #[cfg(feature = "fault-injection")]
        let meta = meta.with_planted_bug(config.planted_bug);
        Ok(Self {
            net,
            membership,
            meta,
            master: Arc::new(config.master),
            codec: config.codec,
            gc_grace: config.gc_grace,
            multipart_expiry: config.multipart_expiry,
            placement_wait: config.placement_wait,
            _joined: Arc::new(joined),
        })
    }

    /// Waits until at least `count` nodes are live (a cluster still forming).
    ///
    /// # Errors
    /// [`ClientError::Net`] saying how many were found when `timeout` passes first.
    pub async fn wait_for_nodes(&self, count: usize, timeout: Duration) -> Result<(), ClientError> {
        Ok(self.membership.wait_for(count, timeout).await?)
    }

    /// Refuses, before any byte moves, what this client's certificate does not allow on
    /// `bucket` (`what`: the verb the error says); every node would refuse it anyway.
    ///
    /// # Errors
    /// [`ClientError::Forbidden`].
    pub(crate) fn may(&self, bucket: &str, wanted: Rights, what: &str) -> Result<(), ClientError> {
        if self.net.certificate().rights_on(bucket).contains(wanted) {
            Ok(())
        } else {
            Err(ClientError::Forbidden(format!(
                "this client may not {what} bucket {bucket}"
            )))
        }
    }

    /// The nodes known now, live or not.
    pub fn nodes(&self) -> Vec<Member> {
        self.membership.all()
    }

    /// Nodes that left the roster and still hold their place in replica sets, in this
    /// client's view, until every member has handed off for them.
    pub fn departed_nodes(&self) -> Vec<Member> {
        self.membership.departed()
    }

    /// The id of the master key this client seals with (not secret: manifests carry it).
    pub fn master_key_id(&self) -> [u8; crate::keys::MASTER_KEY_ID_BYTES] {
        self.master.id()
    }

    /// The network handle (for tools that speak the protocols directly).
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    /// Metadata access as this client: records it applies are signed with its key and
    /// certificate, records it reads are believed only if they verify (for tools that
    /// read or write records directly).
    pub fn meta(&self) -> &MetaQuorum {
        &self.meta
    }

    /// Test hook: refuses every connection with `peers` (an empty list lifts it), as the
    /// node's partition hook does, and looks at the cluster again: the client is then on
    /// the other side of a partition from them.
    ///
    /// # Errors
    /// [`ClientError::Net`] for more peers than a hook blocks.
    #[cfg(feature = "fault-injection")]
    pub async fn block_peers(
        &self,
        peers: Vec<andromede_cluster::net::PeerId>,
    ) -> Result<(), ClientError> {
        self.net.set_blocked(peers).await?;
        self.membership.refresh().await;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
