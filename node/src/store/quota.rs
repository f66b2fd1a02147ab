//! Capacity accounting: bytes used against the configured capacity. Space is reserved
//! before a write starts and released if it fails, so concurrent writes cannot overshoot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;

#[derive(Debug)]
pub(crate) struct Quota {
    capacity_bytes: u64,
    used_bytes: AtomicU64,
}

impl Quota {
    pub(crate) fn new(capacity_bytes: u64, used_bytes: u64) -> Self {
        Self {
            capacity_bytes,
            used_bytes: AtomicU64::new(used_bytes),
        }
    }

    /// Reserves `bytes`, or refuses with how much is available.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), StoreError> {
        self.used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&after| after <= self.capacity_bytes)
            })
            .map(|_| ())
            .map_err(|used| StoreError::QuotaExceeded {
                needed: bytes,
                available: self.capacity_bytes.saturating_sub(used),
            })
    }

    pub(crate) fn release(&self, bytes: u64) {
        // Saturating: a release never makes the count wrap.
        let _ = self
            .used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    pub(crate) fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Acquire)
    }

    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_refuses_beyond_capacity_and_release_frees() {
        let quota = Quota::new(100, 60);
        assert!(matches!(
            quota.reserve(41),
            Err(StoreError::QuotaExceeded {
                needed: 41,
                available: 40
            })
        ));
        quota.reserve(40).unwrap();
        assert_eq!(quota.used_bytes(), 100);
        quota.release(50);
        assert_eq!(quota.used_bytes(), 50);
        quota.release(500);
        assert_eq!(quota.used_bytes(), 0);
    }
}
