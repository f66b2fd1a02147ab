//! The worker runner: every background worker starts here, from one shared
//! [`WorkerContext`], publishes its passes in one [`WorkerStatus`] shape, and stops
//! through [`Workers::stop`] — cancelled, given a grace period to finish the step it is
//! in, then aborted. No worker task outlives the daemon (and so none keeps sled open).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use andromede_cluster::admin::WorkerStatus;
use andromede_cluster::net::{NetHandle, PeerId};
use andromede_cluster::{Membership, MetaQuorum};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use super::MaintenanceLock;
use super::catch_up::CatchUp;
use super::shard_calls::ShardCalls;
use crate::drain::Drain;
use crate::meta::MetaStore;
use crate::service::dispatch::NodeTags;
use crate::store::ShardStore;

/// What the workers share: the node's stores, its view of the cluster and the ways to
/// reach its peers. Built once by the daemon; each worker keeps a clone.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// This node.
    pub local: PeerId,
    /// The swarm.
    pub net: NetHandle,
    /// This node's metadata replica.
    pub meta: Arc<dyn MetaStore>,
    /// This node's shard store.
    pub store: ShardStore,
    /// Quorum reads and writes of metadata.
    pub quorum: MetaQuorum,
    /// The known nodes.
    pub membership: Membership,
    /// Shard calls to any holder, this node included.
    pub calls: ShardCalls,
    /// Whether this node drains.
    pub drain: Drain,
    /// Whether this node's metadata store is still catching up.
    pub catch_up: CatchUp,
    /// This node's zone and jurisdiction.
    pub tags: NodeTags,
    /// Held while a manifest is read and rewritten (repair, garbage collection).
    pub lock: MaintenanceLock,
}

/// Where one worker publishes its passes.
#[derive(Debug, Clone)]
pub struct StatusHandle(Arc<Mutex<WorkerStatus>>);

impl StatusHandle {
    fn new(name: &str) -> Self {
        Self(Arc::new(Mutex::new(WorkerStatus {
            name: name.to_owned(),
            ..WorkerStatus::default()
        })))
    }

    /// Records a pass that began at `started` and did `items` things, or stopped with
    /// `error`.
    pub fn pass_done(&self, started: Instant, items: u64, error: Option<String>) {
        let mut status = self.0.lock().unwrap_or_else(|e| e.into_inner());
        status.passes += 1;
        status.last_pass_end_ms = super::now_ms();
        status.last_pass_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        status.last_items = items;
        status.last_error = error;
    }

    /// The status as last published.
    pub fn get(&self) -> WorkerStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    statuses: Vec<StatusHandle>,
}

impl Workers {
    /// No workers yet; `cancel` (a child of the daemon's token) stops them all.
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            tasks: JoinSet::new(),
            statuses: Vec::new(),
        }
    }

    /// Starts the worker `name`: `run` gets the stop token and its status handle, and
    /// runs in a `worker` span.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: FnOnce(CancellationToken, StatusHandle) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let status = StatusHandle::new(name);
        self.statuses.push(status.clone());
        self.tasks.spawn(
            run(self.cancel.clone(), status).instrument(info_span!("worker", worker = name)),
        );
    }

    /// Every worker's status, in start order.
    pub fn statuses(&self) -> Vec<WorkerStatus> {
        self.statuses.iter().map(StatusHandle::get).collect()
    }

    /// A shared view of the statuses, for the admin endpoint.
    pub fn status_handles(&self) -> Vec<StatusHandle> {
        self.statuses.clone()
    }

    /// Stops every worker: cancels them, waits up to `grace` for them to return between
    /// steps, then aborts the rest. Returns once no worker task is left.
    pub async fn stop(mut self, grace: Duration) {
        self.cancel.cancel();
        let deadline = Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => {
                    warn!(
                        left = self.tasks.len(),
                        ?grace,
                        "workers did not stop in time; aborting them"
                    );
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_workers_between_steps_and_aborts_stragglers() {
        let mut workers = Workers::new(CancellationToken::new());
        workers.spawn("polite", |cancel, status| async move {
            loop {
                let started = Instant::now();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                status.pass_done(started, 3, None);
            }
        });
        workers.spawn("stubborn", |_cancel, _status| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let statuses = workers.statuses();
        assert_eq!(statuses[0].name, "polite");
        assert_eq!(statuses[0].passes, 2);
        assert_eq!(statuses[0].last_items, 3);
        assert_eq!(statuses[1].passes, 0);
        let before = Instant::now();
        workers.stop(Duration::from_secs(5)).await;
        // The stubborn one held the stop for the whole grace period, then was aborted.
        assert_eq!(before.elapsed(), Duration::from_secs(5));
    }
}
