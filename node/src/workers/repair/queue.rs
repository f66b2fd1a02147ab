//! Which found versions wait: a backoff per version that could not be repaired now, and
//! the versions to look at again once the holders that did not answer are back.

use super::*;

impl RepairWorker {
    pub(super) fn backing_off(&self, key: &RecordKey) -> bool {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff
            .get(key)
            .is_some_and(|(until, _)| Instant::now() < *until)
    }

    pub(super) fn defer(&self, key: &RecordKey) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        if backoff.len() >= BACKOFF_ENTRIES_MAX {
            backoff.clear();
        }
        let delay = backoff.get(key).map_or(BACKOFF_MIN, |(_, d)| {
            (*d * 2).min(self.config.sweep_interval)
        });
        backoff.insert(key.clone(), (Instant::now() + delay, delay));
    }

    pub(super) fn forget(&self, key: &RecordKey) {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Up to `count` versions to assess again because every holder that could not be
    /// asked before answers now. Those with a holder now down are dropped: the holder
    /// index brings them to the down-peer pass.
    pub(super) fn rechecks_due(&self, count: usize) -> Vec<RecordKey> {
        let mut recheck = self.recheck.lock().unwrap_or_else(|e| e.into_inner());
        recheck.retain(|_, (peers, _)| {
            !peers
                .iter()
                .any(|p| self.liveness.state(p) == PeerState::Down)
        });
        recheck
            .iter()
            .filter(|(_, (peers, _))| {
                peers
                    .iter()
                    .all(|p| self.liveness.state(p) == PeerState::Up)
            })
            .map(|(key, _)| key.clone())
            .take(count)
            .collect()
    }
}
