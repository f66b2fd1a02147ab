//! The node's standing in its cluster: its certificate and the revocations it knows, read
//! from the data directory at start ([`load_admission`]) and kept current while it runs
//! ([`keep_credentials`]): a certificate file replaced by `andromede-node renew` is
//! presented to every peer without a restart, and every newer revocation list the node
//! takes is written back, so a restarted node refuses what it refused before.

use std::time::Duration;

use andromede_cluster::authority::{
    AuthorityKey, Certificate, PeerRole, RevocationList, Trust, unix_now,
};
use andromede_cluster::net::{Admission, NetHandle, PeerId};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::data_dir::DataDir;
use crate::error::DaemonError;

/// How often the certificate file is looked at for a renewal.
const RENEWAL_CHECK_EVERY: Duration = Duration::from_secs(5);
/// A certificate this close to its end is warned about at every check.
const EXPIRY_WARNING_SECS: u64 = 14 * 86_400;

/// The node's admission, from `DIR/certificate` and `DIR/revocations`, checked against
/// `authority` for `peer`.
///
/// # Errors
/// [`DaemonError::Credentials`]: no certificate (with the commands that make one), or one
/// that does not admit this node (another cluster's, another peer's, expired, revoked).
pub fn load_admission(
    data: &DataDir,
    authority: &AuthorityKey,
    peer: &PeerId,
) -> Result<Admission, DaemonError> {
    let path = data.certificate();
    if !path.exists() {
        return Err(DaemonError::Credentials(format!(
            "{} has no certificate: where the cluster's authority key is, run `andromede-node invite --node NAME`, then here `andromede-node init --data {} --join TOKEN` (or `renew`)",
            data.root().display(),
            data.root().display()
        )));
    }
    let certificate =
        Certificate::read_file(&path).map_err(|e| DaemonError::Credentials(e.to_string()))?;
    let revocations = RevocationList::read_file(&data.revocations(), authority)
        .map_err(|e| DaemonError::Credentials(e.to_string()))?;
    let mut trust = Trust::new(authority.clone());
    trust.update(revocations);
    Admission::new(certificate, trust, peer, PeerRole::Node).map_err(|e| {
        DaemonError::Credentials(format!(
            "{}: {e}; get a new one with `andromede-node invite --peer {peer}` where the authority key is",
            path.display()
        ))
    })
}

/// Presents a renewed certificate file to the cluster, and writes every newer revocation
/// list to disk, until `cancel`.
pub async fn keep_credentials(
    data: DataDir,
    net: NetHandle,
    mut current: Certificate,
    cancel: CancellationToken,
) {
    let mut revocations = net.revocations();
    let mut check = tokio::time::interval(RENEWAL_CHECK_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = revocations.changed() => {
                if changed.is_err() {
                    return;
                }
                let list = revocations.borrow_and_update().clone();
                let path = data.revocations();
                match tokio::task::spawn_blocking(move || list.write_file(&path)).await {
                    Ok(Ok(())) => info!(path = %data.revocations().display(), "revocation list saved"),
                    Ok(Err(error)) => warn!(%error, "cannot save the revocation list; it is kept in memory"),
                    Err(error) => warn!(%error, "saving the revocation list failed"),
                }
            }
            _ = check.tick() => {
                let path = data.certificate();
                let read = tokio::task::spawn_blocking(move || Certificate::read_file(&path)).await;
                match read {
                    Ok(Ok(renewed)) if renewed != current => match net.renew(renewed.clone()).await {
                        Ok(()) => current = renewed,
                        Err(error) => warn!(%error, "the certificate file changed but does not admit this node; still using the old one"),
                    },
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => warn!(%error, "cannot read the certificate file; still using the one loaded"),
                    Err(error) => warn!(%error, "reading the certificate file failed"),
                }
                let left = current.not_after_unix().saturating_sub(unix_now());
                if left < EXPIRY_WARNING_SECS {
                    warn!(
                        days_left = left / 86_400,
                        "this node's certificate expires soon: renew it with `andromede-node invite --peer {}` where the authority key is, then `andromede-node renew` here",
                        current.peer()
                    );
                }
            }
        }
    }
}
