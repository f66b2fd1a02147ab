//! The commands run where the authority key is: `invite` (certify a node or client and
//! print its join token), `revoke` (sign a newer revocation list and hand it to a member),
//! and, on a node, `renew` (install a renewed certificate).
//!
//! Next to the key file (`authority.key`) the authority keeps `authority.issued` (one JSON
//! line per certificate signed: who, what, until when; `revoke NAME` looks names up there)
//! and `authority.revocations` (the newest list it signed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use andromede_cluster::authority::{
    Authority, Certificate, CertificateSpec, JoinToken, PeerRole, RevocationList, Trust, unix_now,
};
use andromede_cluster::net::{self, Admission, Keypair, Multiaddr, NetConfig, PeerId};
use andromede_node::config::NodeConfig;
use andromede_node::data_dir::DataDir;
use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::cli::{AuthorityArgs, InviteArgs, RevokeArgs};

/// One certificate the authority signed, as kept in `authority.issued`.
#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    peer: String,
    role: PeerRole,
    name: String,
    zone: String,
    jurisdiction: String,
    not_after_unix: u64,
    serial: String,
}

/// The authority key with its bookkeeping files, and where tokens send new members.
struct AuthorityPlace {
    authority: Authority,
    key_path: PathBuf,
    bootstrap: Vec<Multiaddr>,
}

impl AuthorityPlace {
    fn open(args: &AuthorityArgs) -> anyhow::Result<Self> {
        let data = DataDir::new(&args.data);
        let key_path = args
            .authority
            .clone()
            .unwrap_or_else(|| data.authority_key());
        if !key_path.exists() {
            bail!(
                "no authority key at {}: run this where the cluster was created (its first node's --data), or give --authority FILE",
                key_path.display()
            );
        }
        let authority = Authority::load_file(&key_path)?;
        let bootstrap = if args.bootstrap.is_empty() {
            node_addresses(&data)?
        } else {
            args.bootstrap.clone()
        };
        Ok(Self {
            authority,
            key_path,
            bootstrap,
        })
    }

    fn issued_log(&self) -> PathBuf {
        self.key_path.with_extension("issued")
    }

    fn revocations_file(&self) -> PathBuf {
        self.key_path.with_extension("revocations")
    }

    fn record(&self, certificate: &Certificate) -> anyhow::Result<()> {
        let line = serde_json::to_string(&Issued {
            peer: certificate.peer().to_string(),
            role: certificate.role(),
            name: certificate.name().to_owned(),
            zone: certificate.zone().to_owned(),
            jurisdiction: certificate.jurisdiction().to_owned(),
            not_after_unix: certificate.not_after_unix(),
            serial: certificate.serial(),
        })?;
        let path = self.issued_log();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{line}")?;
        file.sync_all()?;
        Ok(())
    }

    /// The peer `who` names: a peer id, or a name from the issued log (the latest).
    /// The role `peer` was invited in, as the issued log says (none: not invited here).
    fn issued_role(&self, peer: &PeerId) -> Option<PeerRole> {
        let text = std::fs::read_to_string(self.issued_log()).unwrap_or_default();
        text.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Issued>(line).ok())
            .find(|issued| issued.peer == peer.to_string())
            .map(|issued| issued.role)
    }

    fn resolve(&self, who: &str) -> anyhow::Result<PeerId> {
        if let Ok(peer) = who.parse::<PeerId>() {
            return Ok(peer);
        }
        let path = self.issued_log();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let peers: Vec<PeerId> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Issued>(line).ok())
            .filter(|issued| issued.name == who)
            .filter_map(|issued| issued.peer.parse().ok())
            .collect();
        match peers.as_slice() {
            [] => bail!(
                "no peer id or invited name {who:?} (names are looked up in {}); give the peer id",
                path.display()
            ),
            [peer] => Ok(*peer),
            _ => bail!(
                "{} peers were invited as {who:?}: give the peer id ({})",
                peers.len(),
                peers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The `--data` node's listen addresses, with its peer id: where new members join.
fn node_addresses(data: &DataDir) -> anyhow::Result<Vec<Multiaddr>> {
    if !data.config().exists() {
        bail!(
            "{} has no config.toml to take the cluster's address from: give --bootstrap ADDR",
            data.root().display()
        );
    }
    let config = NodeConfig::load(&data.config())?;
    let identity = net::load_or_create_identity(&data.identity_key())?;
    let peer = PeerId::from(identity.public());
    Ok(config
        .listen
        .iter()
        .map(|addr| addr.clone().with_p2p(peer).unwrap_or_else(|addr| addr))
        .collect())
}

pub(crate) fn invite(args: &InviteArgs) -> anyhow::Result<()> {
    let place = AuthorityPlace::open(&args.authority)?;
    let (role, name) = match (&args.node, &args.client) {
        (Some(name), None) => (PeerRole::Node, name),
        (None, Some(name)) => (PeerRole::Client, name),
        _ => bail!("give exactly one of --node NAME and --client NAME"),
    };
    let (identity, peer) = match args.peer {
        Some(peer) => (None, peer),
        None => {
            let keypair = Keypair::generate_ed25519();
            let peer = keypair.public().to_peer_id();
            (Some(keypair), peer)
        }
    };
    if role == PeerRole::Client && args.grant.is_empty() {
        bail!(
            "a client needs at least one --grant BUCKET:RIGHTS (e.g. photos:read+write, \
             backup-*:read; '*:all' for every right on every bucket)"
        );
    }
    let spec = CertificateSpec::new(peer, role, name, args.valid)
        .placed(&args.zone, &args.jurisdiction)
        .granted(args.grant.clone());
    let certificate = place.authority.certify(spec)?;
    place.record(&certificate)?;
    let token = JoinToken::new(certificate, identity.as_ref(), place.bootstrap.clone())?;
    println!("{}", token.encode());
    let days = args.valid.as_secs() / 86_400;
    let next = match (role, args.peer) {
        (_, Some(_)) => "on that peer: andromede-node renew --data DIR TOKEN (a node; no restart), or andromede init --join TOKEN --out client.toml again (a client)".to_owned(),
        (PeerRole::Node, None) => "on the new node: andromede-node run --data DIR --join TOKEN (add --listen and --admin when it shares a machine)".to_owned(),
        (PeerRole::Client, None) => "on the client: andromede init --join TOKEN --out client.toml".to_owned(),
    };
    let granted = args
        .grant
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!(
        "certified {role} {name:?} as {peer} for {days} day(s){}{}",
        if granted.is_empty() {
            String::new()
        } else {
            format!(" with {granted}")
        },
        if identity.is_some() {
            "; the token carries its identity key: hand it over like a password"
        } else {
            ""
        }
    );
    eprintln!("{next}");
    Ok(())
}

/// Time the revoke command waits to reach a member.
const REVOKE_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) async fn revoke(args: &RevokeArgs) -> anyhow::Result<()> {
    let place = AuthorityPlace::open(&args.authority)?;
    let peer = place.resolve(&args.who)?;
    revoke_peer(&place, peer).await?;
    println!("revoked {peer}; every node refuses it within seconds");
    Ok(())
}

/// Retires a node for good (DESIGN.md, "Metadata": roster changes are explicit): a
/// revocation, so it leaves every roster at once; the members that take its metadata
/// partitions over copy them before they count, and its shards are rebuilt elsewhere.
pub(crate) async fn retire(args: &RevokeArgs) -> anyhow::Result<()> {
    let place = AuthorityPlace::open(&args.authority)?;
    let peer = place.resolve(&args.who)?;
    if place.issued_role(&peer) == Some(PeerRole::Client) {
        bail!(
            "{} is a client, not a node: use `andromede-node revoke` for it",
            args.who
        );
    }
    revoke_peer(&place, peer).await?;
    println!(
        "retired {peer}: it has left the roster (and is refused from now on); the nodes that take its metadata roles over copy them before they count (`andromede-node status` shows the roster), and its shards are rebuilt elsewhere"
    );
    Ok(())
}

/// Adds `peer` to the revocation list (once) and hands the list to the cluster.
async fn revoke_peer(place: &AuthorityPlace, peer: PeerId) -> anyhow::Result<()> {
    let public = place.authority.public();
    let path = place.revocations_file();
    let previous = RevocationList::read_file(&path, &public)?;
    let list = if previous.revokes(&peer) {
        eprintln!(
            "{peer} was already revoked (list version {}); handing the list to the cluster again",
            previous.version()
        );
        previous
    } else {
        let list = place.authority.revoke(&previous, peer, unix_now())?;
        list.write_file(&path)?;
        list
    };
    let version = list.version();
    publish(place, list).await?;
    eprintln!("revocation list version {version} handed to the cluster");
    Ok(())
}

/// Hands `list` to the first member that takes it, as a short-lived client certified on
/// the spot; the members pass it on to each other.
async fn publish(place: &AuthorityPlace, list: RevocationList) -> anyhow::Result<()> {
    let key = Keypair::generate_ed25519();
    let spec = CertificateSpec::new(
        key.public().to_peer_id(),
        PeerRole::Client,
        "authority",
        Duration::from_secs(600),
    );
    let admission = Admission::issued(&place.authority, spec)?;
    let (net, _inbound) = net::spawn(key, admission, NetConfig::new(PeerRole::Client))?;
    let signed = list
        .signed()
        .cloned()
        .ok_or_else(|| anyhow!("an empty revocation list cannot be published"))?;
    net.publish_revocations(signed)
        .await?
        .map_err(|e| anyhow!(e))?;
    let mut last_error = None;
    for addr in &place.bootstrap {
        let pushed = tokio::time::timeout(REVOKE_CONNECT_TIMEOUT, async {
            let peer = net.dial(addr.clone()).await?;
            net.push_revocations(peer).await
        })
        .await;
        match pushed {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => last_error = Some(error.to_string()),
            Err(_) => last_error = Some(format!("no answer from {addr} in time")),
        }
    }
    Err(anyhow!(
        "the list is saved in {} but no member took it ({}): run `andromede-node revoke` again once one is reachable",
        place.revocations_file().display(),
        last_error.unwrap_or_else(|| "no bootstrap address".into())
    ))
}

pub(crate) fn renew(dir: &Path, token: &str) -> anyhow::Result<()> {
    let data = DataDir::new(dir);
    let config = NodeConfig::load(&data.config())
        .with_context(|| format!("{} is not an initialised node directory", dir.display()))?;
    let token = JoinToken::decode(token)?;
    let identity = net::load_or_create_identity(&data.identity_key())?;
    let peer = PeerId::from(identity.public());
    let certificate = token.certificate();
    Trust::new(config.authority.clone())
        .verify_role(certificate, &peer, PeerRole::Node, unix_now())
        .map_err(|e| anyhow!("the token's certificate does not fit this node: {e}"))?;
    certificate.write_file(&data.certificate())?;
    println!(
        "certificate renewed until {} (Unix time); a running node presents it within seconds",
        certificate.not_after_unix()
    );
    Ok(())
}
