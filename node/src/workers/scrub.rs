//! The scrubber: re-hashes every stored shard at a bounded byte rate and quarantines any
//! that no longer match their id (DESIGN.md, "Shard store"). A quarantined shard is simply
//! missing; repair (with the cluster) restores it from the other shards of its segment.
//!
//! One pass walks the index in pages, so it never holds more than a page of ids; passes
//! repeat every `interval`, starting after a random jitter so nodes do not scrub in step.

use std::time::Duration;

use andromede_proto::ShardId;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::rate::RateLimiter;
use super::runner::{StatusHandle, WorkerContext};
use crate::error::StoreError;
use crate::store::{ShardStore, VerifyOutcome};

/// Shards listed per index page.
const SCRUB_PAGE: usize = 256;

/// Settings of the scrub worker.
#[derive(Debug, Clone)]
pub struct ScrubConfig {
    /// Bytes re-hashed per second at most.
    pub rate_bytes_per_sec: u64,
    /// Pause between the end of a pass and the start of the next.
    pub interval: Duration,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            rate_bytes_per_sec: 32 * 1024 * 1024,
            interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Shards re-hashed and found intact.
    pub intact: u64,
    /// Shards quarantined.
    pub quarantined: u64,
    /// Index entries whose file had vanished.
    pub missing: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Whether the pass was stopped before the end.
    pub cancelled: bool,
}

/// Runs one full pass over `store`. `on_progress` is told the bytes of each shard checked.
///
/// # Errors
/// I/O or index errors other than a missing or corrupt shard (those are counted).
pub async fn scrub_pass(
    store: &ShardStore,
    rate: &mut RateLimiter,
    cancel: &CancellationToken,
    mut on_progress: impl FnMut(u64),
) -> Result<ScrubReport, StoreError> {
    let mut report = ScrubReport::default();
    let mut after: Option<ShardId> = None;
    loop {
        let page = {
            let store = store.clone();
            let after = after;
            spawn_store(move || store.list(after.as_ref(), SCRUB_PAGE)).await?
        };
        let Some((last, _)) = page.last() else {
            return Ok(report);
        };
        after = Some(*last);
        for (id, meta) in page {
            tokio::select! {
                () = cancel.cancelled() => {
                    report.cancelled = true;
                    return Ok(report);
                }
                () = rate.acquire(meta.size_bytes) => {}
            }
            let store = store.clone();
            match spawn_store(move || store.verify(&id)).await? {
                VerifyOutcome::Intact => report.intact += 1,
                VerifyOutcome::Quarantined => report.quarantined += 1,
                VerifyOutcome::Missing => report.missing += 1,
            }
            report.bytes += meta.size_bytes;
            on_progress(meta.size_bytes);
        }
    }
}

async fn spawn_store<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Io {
            op: "scrub task",
            path: std::path::PathBuf::new(),
            error: std::io::Error::other(e.to_string()),
        })?
}

/// A delay in [0, interval / 10), capped at an hour, that differs between processes, so
/// that nodes started together do not scrub their disks in step.
fn first_pass_jitter(interval: Duration) -> Duration {
    let spread = (interval / 10).min(Duration::from_secs(3600));
    let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX).max(1);
    let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_millis(seed % spread_ms)
}

/// The scrub worker: passes forever, until `cancel` fires.
#[derive(Debug)]
pub struct ScrubWorker {
    store: ShardStore,
    config: ScrubConfig,
}

impl ScrubWorker {
    /// A worker over this node's shard store.
    pub fn new(ctx: &WorkerContext, config: ScrubConfig) -> Self {
        Self {
            store: ctx.store.clone(),
            config,
        }
    }

    /// Runs passes until cancelled. Errors of a pass are logged and the next pass still
    /// runs: a failing disk must not stop the scrubbing of the rest.
    pub async fn run(self, cancel: CancellationToken, status: StatusHandle) {
        async move {
            let mut rate = RateLimiter::new(self.config.rate_bytes_per_sec);
            // Jitter the first pass over a tenth of the interval (at most an hour).
            let mut wait = first_pass_jitter(self.config.interval);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                let started = tokio::time::Instant::now();
                let result = scrub_pass(&self.store, &mut rate, &cancel, |_| {}).await;
                status.pass_done(
                    started,
                    result
                        .as_ref()
                        .map_or(0, |r| r.intact + r.quarantined + r.missing),
                    result.as_ref().err().map(ToString::to_string),
                );
                match result {
                    Ok(report) if report.cancelled => return,
                    Ok(report) => info!(?report, "scrub pass finished"),
                    Err(error) => warn!(%error, "scrub pass failed; retrying next interval"),
                }
                wait = self.config.interval;
            }
        }
        .await;
    }
}
