//! Test-only fault hooks, compiled in with the `fault-injection` feature and absent from a
//! normal build: the testnet cuts nodes apart and slows them down through the admin
//! endpoint (DESIGN.md, "Testnet": this kernel has no netem, so delays come from here).
//!
//! Requests (one line on the admin endpoint):
//! - `fault block PEER,PEER,...` — refuse connections with these peers (an empty list
//!   lifts the partition);
//! - `fault delay MS` — hold every inbound shard and metadata request `MS` ms before
//!   serving it, as a slow link would: the request does not hold one of the node's service
//!   slots while it waits (0 lifts it);
//! - `fault powercut` — undo every shard write that was not durable yet, as a power loss
//!   would ([`crate::store::power`]), and end the process at once, unanswered.
//!
//! A planted bug (`ANDROMEDE_PLANTED_BUG`, see `andromede_cluster::faults`) is read once at
//! start; `Daemon::start` refuses an unknown name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use andromede_cluster::net::{NetHandle, PeerId};

/// Longest injected delay.
pub const DELAY_MS_MAX: u64 = 60_000;

/// The injected delay, for every request this process serves.
static DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// Waits the injected delay, if any.
pub async fn delay() {
    let ms = DELAY_MS.load(Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Carries out a `fault ...` request; the answer says what was done.
///
/// # Errors
/// A message for a malformed request or a network failure.
pub async fn apply(request: &str, net: &NetHandle) -> Result<String, String> {
    let mut words = request.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("block"), peers, None, None) => {
            let peers: Vec<PeerId> = peers
                .unwrap_or_default()
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse()
                        .map_err(|e| format!("{p:?} is not a peer id: {e}"))
                })
                .collect::<Result<_, _>>()?;
            let count = peers.len();
            net.set_blocked(peers).await.map_err(|e| e.to_string())?;
            Ok(format!("{count} peer(s) blocked"))
        }
        (Some("delay"), Some(ms), None, None) => {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("{ms:?} is not a number of milliseconds"))?;
            if ms > DELAY_MS_MAX {
                return Err(format!("a delay of at most {DELAY_MS_MAX} ms"));
            }
            DELAY_MS.store(ms, Ordering::Relaxed);
            Ok(format!("requests delayed by {ms} ms"))
        }
        (Some("powercut"), None, None, None) => {
            let undone = crate::store::power::cut();
            tracing::warn!(
                undone,
                "power cut: writes not yet durable are undone; exiting"
            );
            // Like SIGKILL: nothing else runs, nothing is flushed.
            std::process::exit(137)
        }
        _ => Err(format!(
            "unknown fault {request:?}: `fault block PEER,...`, `fault delay MS` or `fault powercut`"
        )),
    }
}
