//! A memory budget shared by every encode and decode of one process: each segment's
//! buffers are counted against it *before* they are allocated, so a program serving many
//! requests at once (the S3 gateway) stays within a bound whatever the number and size of
//! the objects in flight. A segment that does not fit waits for others to finish; one
//! segment alone is always let through, so nothing waits forever.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget granularity: permits are KiB.
const UNIT_BYTES: u64 = 1024;

/// Bytes of segment buffers allowed at once, shared by clones.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    units: u32,
}

/// Budget held while a segment's buffers are alive.
#[derive(Debug)]
pub struct BudgetPermit(
    #[allow(dead_code, reason = "held for its drop")] Option<OwnedSemaphorePermit>,
);

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to KiB, at least 1 KiB).
    pub fn new(bytes: u64) -> Self {
        let units = u32::try_from(bytes / UNIT_BYTES)
            .unwrap_or(u32::MAX)
            .clamp(1, u32::MAX >> 3);
        Self {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The whole budget in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.units) * UNIT_BYTES
    }

    /// Bytes not held now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT_BYTES
    }

    /// Waits until `bytes` (at most the whole budget) are free and holds them.
    pub async fn acquire(&self, bytes: u64) -> BudgetPermit {
        let units = u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units);
        // The semaphore is never closed; should it be, nothing is held.
        BudgetPermit(
            Arc::clone(&self.permits)
                .acquire_many_owned(units)
                .await
                .ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holders_wait_for_room_and_one_oversized_request_passes_alone() {
        let budget = MemoryBudget::new(10 * 1024);
        let a = budget.acquire(6 * 1024).await;
        assert_eq!(budget.available(), 4 * 1024);
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(6 * 1024).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        let b = waiting.await.unwrap();
        drop(b);
        // Larger than the whole budget: clamped, so it is let through alone.
        let huge = budget.acquire(1 << 30).await;
        assert_eq!(budget.available(), 0);
        drop(huge);
        assert_eq!(budget.available(), budget.bytes());
    }
}
