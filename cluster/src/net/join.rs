//! Staying joined to the cluster through its bootstrap addresses, for nodes and clients.
//!
//! Each bootstrap address not connected is dialed at start (its node may start later),
//! again with a backoff while this process has no peer at all, and every `every`
//! otherwise. The last matters after a partition heals (each side's routing table has
//! dropped the other, and only a dial across brings the DHT back together) and after a
//! dial that failed once under load (an admission that timed out bans the peer for a
//! while, and nothing else would dial it again).

use std::collections::HashMap;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::NetHandle;

/// First pause between rounds of dials while this process has no peer; it doubles up to
/// the caller's `every`.
const ALONE_RETRY_FIRST: Duration = Duration::from_secs(1);

/// Dials `bootstrap` as the module says, forever; abort the task to stop it.
pub async fn keep_joined(net: NetHandle, bootstrap: Vec<Multiaddr>, every: Duration) {
    let mut pause = ALONE_RETRY_FIRST.min(every);
    // The peer behind each bootstrap address, once dialed.
    let mut behind: HashMap<Multiaddr, PeerId> = HashMap::new();
    loop {
        let admitted = net.admitted_peers().await.unwrap_or_default();
        let alone = admitted.is_empty();
        let mut joined = false;
        for addr in &bootstrap {
            if behind.get(addr).is_some_and(|peer| admitted.contains(peer)) {
                continue;
            }
            match net.dial(addr.clone()).await {
                Ok(peer) => {
                    if !admitted.contains(&peer) {
                        info!(%peer, %addr, "joined through bootstrap peer");
                    }
                    behind.insert(addr.clone(), peer);
                    joined = true;
                }
                Err(error) if alone => {
                    warn!(%addr, %error, retry_in = ?pause, "bootstrap peer unreachable");
                }
                Err(error) => debug!(%addr, %error, "bootstrap peer unreachable"),
            }
        }
        pause = if !alone {
            every
        } else if joined {
            ALONE_RETRY_FIRST.min(every)
        } else {
            (pause * 2).min(every)
        };
        tokio::time::sleep(pause).await;
    }
}

/// [`keep_joined`] on its own task, for a process that has just dialed its bootstrap
/// addresses itself (a client connecting); stopped when this is dropped.
#[derive(Debug)]
pub struct JoinKeeper(JoinHandle<()>);

impl JoinKeeper {
    /// Keeps `net` joined through `bootstrap` (see [`keep_joined`]), the first round after
    /// `every`.
    pub fn spawn(net: NetHandle, bootstrap: Vec<Multiaddr>, every: Duration) -> Self {
        Self(tokio::spawn(async move {
            tokio::time::sleep(every).await;
            keep_joined(net, bootstrap, every).await;
        }))
    }
}

impl Drop for JoinKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}
