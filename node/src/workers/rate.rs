//! A byte-rate limiter (GCRA): callers ask for `n` bytes and are delayed so that the
//! long-run rate stays at `bytes_per_sec`, with at most `BURST` worth of bytes let through
//! at once after idling.

use std::time::Duration;

use tokio::time::Instant;

/// How much unused budget an idle limiter accumulates.
const BURST: Duration = Duration::from_secs(1);

/// Paces byte-consuming work.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: u64,
    /// When everything charged so far is paid for.
    paid_until: Instant,
}

impl RateLimiter {
    /// A limiter allowing `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            paid_until: Instant::now(),
        }
    }

    /// Waits until `bytes` may be consumed.
    ///
    /// # Cancel safety
    /// Cancelling while waiting keeps the charge: the limiter errs on the slow side.
    pub async fn acquire(&mut self, bytes: u64) {
        let now = Instant::now();
        let floor = now.checked_sub(BURST).unwrap_or(now);
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        self.paid_until = self.paid_until.max(floor) + cost;
        if self.paid_until > now {
            tokio::time::sleep_until(self.paid_until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn long_run_rate_is_respected() {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut limiter = RateLimiter::new(1000);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire(100).await;
        }
        // 10 000 bytes at 1000 B/s: 10 s, minus at most the 1 s burst (virtual time).
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(9), "{elapsed:?}");
        assert!(elapsed <= Duration::from_secs(10), "{elapsed:?}");
    }
}
