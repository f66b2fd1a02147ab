//! Per-key write locks: a write to `bucket/key` (PUT, DELETE, a copy's destination)
//! holds its key's lock from its precondition check to its commit, so `If-Match` and
//! `If-None-Match: *` are atomic among the writes of one gateway. Across gateways a
//! condition is checked against a quorum read just before the write and is not atomic
//! (README says so). Locks exist only while held or awaited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

type Lock = Arc<tokio::sync::Mutex<()>>;

/// The locks of the keys being written.
#[derive(Debug, Default)]
pub(crate) struct KeyLocks {
    held: Mutex<HashMap<(String, String), Lock>>,
}

/// Held while a key is written; releases (and forgets the lock when no one else waits
/// for it) on drop.
#[derive(Debug)]
pub(crate) struct KeyGuard {
    locks: Arc<KeyLocks>,
    name: (String, String),
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits for `bucket/key`'s lock.
    pub(crate) async fn lock(self: &Arc<Self>, bucket: &str, key: &str) -> KeyGuard {
        let name = (bucket.to_owned(), key.to_owned());
        let lock = match self.held.lock() {
            Ok(mut held) => Arc::clone(held.entry(name.clone()).or_default()),
            Err(poisoned) => Arc::clone(poisoned.into_inner().entry(name.clone()).or_default()),
        };
        let guard = lock.lock_owned().await;
        KeyGuard {
            locks: Arc::clone(self),
            name,
            guard: Some(guard),
        }
    }

    /// Locks currently known (held or awaited).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().map_or(0, |h| h.len())
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let Ok(mut held) = self.locks.held.lock() else {
            return;
        };
        // Only the map holds it now: nobody waits, forget it.
        if held
            .get(&self.name)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            held.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_writer_per_key_and_locks_are_forgotten() {
        let locks = Arc::new(KeyLocks::default());
        let first = locks.lock("b", "k").await;
        let other_key = locks.lock("b", "other").await;
        let waiting = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move { locks.lock("b", "k").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.unwrap();
        drop(second);
        drop(other_key);
        assert_eq!(locks.len(), 0);
    }
}
