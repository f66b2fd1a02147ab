//! Hybrid logical clocks: timestamps that follow physical time when clocks agree and still
//! order causally related events when they do not.
//!
//! Invariants:
//! - `now()` never returns a timestamp at or below one it returned or observed before.
//! - A timestamp more than `max_drift` ahead of local physical time is refused by
//!   `observe` (a writer with a far-future clock cannot pin a record forever); a local
//!   clock is never moved forward by such a timestamp.
//! - `after(prev)` is strictly greater than `prev` whatever the local clock says, so a new
//!   version always sorts after the one it replaces (a clock behind by 10 minutes does not
//!   make an overwrite lose). Far-future versions are kept out by the replicas, which
//!   refuse records more than the drift ahead of their own clock.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in hybrid logical time: milliseconds since the Unix epoch, then a counter for
/// events within the same millisecond (or while physical time lags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Physical component, ms since the Unix epoch.
    pub wall_ms: u64,
    /// Logical component.
    pub logical: u32,
}

impl Timestamp {
    /// The smallest timestamp strictly greater than `self`.
    pub fn successor(self) -> Self {
        match self.logical.checked_add(1) {
            Some(logical) => Self {
                wall_ms: self.wall_ms,
                logical,
            },
            None => Self {
                wall_ms: self.wall_ms.saturating_add(1),
                logical: 0,
            },
        }
    }
}

/// A remote timestamp was too far ahead of this machine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "timestamp {remote_ms} ms is {ahead_ms} ms ahead of this clock (limit {max_drift_ms} ms): check NTP on the writer"
)]
pub struct ClockDriftError {
    /// The refused timestamp's wall component.
    pub remote_ms: u64,
    /// How far ahead of local physical time it was.
    pub ahead_ms: u64,
    /// The configured limit.
    pub max_drift_ms: u64,
}

/// Where physical time comes from (the system clock, or a test's).
pub trait PhysicalClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock (shifted by `skew_ms` only in clock-skew tests, through
/// [`SystemClock::skewed`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    skew_ms: i64,
}

impl SystemClock {
    /// The system clock read `skew_ms` ahead (negative: behind): a writer whose clock is
    /// wrong, for the clock-skew scenarios.
    pub fn skewed(skew_ms: i64) -> Self {
        Self { skew_ms }
    }
}

impl PhysicalClock for SystemClock {
    fn now_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        now.saturating_add_signed(self.skew_ms)
    }
}

/// A hybrid logical clock. Shared by every writer of one process.
#[derive(Debug)]
pub struct Hlc<C = SystemClock> {
    clock: C,
    max_drift: Duration,
    last: Mutex<Timestamp>,
}

/// Default refusal threshold for timestamps ahead of the local clock.
pub const MAX_DRIFT_DEFAULT: Duration = Duration::from_secs(60);

impl Hlc<SystemClock> {
    /// A clock on the system time, refusing timestamps over a minute ahead.
    pub fn system() -> Self {
        Self::new(SystemClock::default(), MAX_DRIFT_DEFAULT)
    }
}

impl<C: PhysicalClock> Hlc<C> {
    /// A clock reading `clock`, refusing remote timestamps more than `max_drift` ahead.
    pub fn new(clock: C, max_drift: Duration) -> Self {
        Self {
            clock,
            max_drift,
            last: Mutex::new(Timestamp::default()),
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A Timestamp is Copy and always valid: a poisoned lock still holds a usable value.
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A timestamp for a local event, greater than every one returned or observed so far.
    pub fn now(&self) -> Timestamp {
        let physical = self.clock.now_ms();
        let mut last = self.last();
        let next = if physical > last.wall_ms {
            Timestamp {
                wall_ms: physical,
                logical: 0,
            }
        } else {
            last.successor()
        };
        *last = next;
        next
    }

    /// The physical clock as read, ignoring every timestamp seen: the planted
    /// raw-clock bug's versions.
    #[cfg(feature = "fault-injection")]
    pub fn raw(&self) -> Timestamp {
        Timestamp {
            wall_ms: self.clock.now_ms(),
            logical: 0,
        }
    }

    /// Takes a remote timestamp into account, so later local events order after it.
    ///
    /// # Errors
    /// [`ClockDriftError`] if it is more than `max_drift` ahead of local physical time; the
    /// clock is then left unchanged.
    pub fn observe(&self, remote: Timestamp) -> Result<(), ClockDriftError> {
        self.check_drift(remote)?;
        let mut last = self.last();
        if remote > *last {
            *last = remote;
        }
        Ok(())
    }

    /// A timestamp strictly after `previous` (the version a write replaces) and after
    /// every local event. When `previous` is further ahead of this clock than the drift
    /// allowed, this clock is the one behind (replicas refuse far-future versions, so the
    /// record was within their drift): the write follows `previous` directly, without
    /// moving this clock, so that a writer whose clock is behind still replaces it.
    pub fn after(&self, previous: Timestamp) -> Timestamp {
        match self.observe(previous) {
            Ok(()) => self.now(),
            Err(_) => previous.successor(),
        }
    }

    /// Whether `remote` is within `max_drift` of local physical time.
    ///
    /// # Errors
    /// [`ClockDriftError`] otherwise.
    pub fn check_drift(&self, remote: Timestamp) -> Result<(), ClockDriftError> {
        let physical = self.clock.now_ms();
        let max_drift_ms = u64::try_from(self.max_drift.as_millis()).unwrap_or(u64::MAX);
        let ahead_ms = remote.wall_ms.saturating_sub(physical);
        if ahead_ms > max_drift_ms {
            return Err(ClockDriftError {
                remote_ms: remote.wall_ms,
                ahead_ms,
                max_drift_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A clock the test sets by hand.
    #[derive(Debug, Default)]
    struct ManualClock(AtomicU64);

    impl PhysicalClock for &ManualClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn now_is_strictly_increasing_even_when_physical_time_goes_back() {
        let physical = ManualClock(AtomicU64::new(1000));
        let hlc = Hlc::new(&physical, MAX_DRIFT_DEFAULT);
        let a = hlc.now();
        let b = hlc.now();
        physical.0.store(500, Ordering::Relaxed);
        let c = hlc.now();
        physical.0.store(2000, Ordering::Relaxed);
        let d = hlc.now();
        assert!(a < b && b < c && c < d);
        assert_eq!(
            a,
            Timestamp {
                wall_ms: 1000,
                logical: 0
            }
        );
        assert_eq!(
            c,
            Timestamp {
                wall_ms: 1000,
                logical: 2
            }
        );
        assert_eq!(
            d,
            Timestamp {
                wall_ms: 2000,
                logical: 0
            }
        );
    }

    #[test]
    fn a_write_from_a_slow_clock_still_sorts_after_the_one_it_replaces() {
        // Writer A's clock is 10 minutes ahead (within its own drift limit when it wrote);
        // writer B's clock is correct and replaces A's version.
        let correct = ManualClock(AtomicU64::new(1_000_000));
        let ahead = ManualClock(AtomicU64::new(1_000_000 + 600_000));
        let a = Hlc::new(&ahead, MAX_DRIFT_DEFAULT).now();
        let b = Hlc::new(&correct, Duration::from_secs(3600));
        let replacing = b.after(a);
        assert!(replacing > a);
        // With the default one-minute limit, the write still follows it, but this clock
        // is not moved 10 minutes ahead.
        let strict = Hlc::new(&correct, MAX_DRIFT_DEFAULT);
        assert_eq!(strict.after(a), a.successor());
        assert!(
            strict.now().wall_ms == 1_000_000,
            "a far-future timestamp moved the clock"
        );
    }

    #[test]
    fn observe_moves_the_clock_forward_within_the_drift_limit() {
        let physical = ManualClock(AtomicU64::new(10_000));
        let hlc = Hlc::new(&physical, Duration::from_secs(5));
        let remote = Timestamp {
            wall_ms: 14_000,
            logical: 7,
        };
        hlc.observe(remote).unwrap();
        assert_eq!(
            hlc.now(),
            Timestamp {
                wall_ms: 14_000,
                logical: 8
            }
        );
        assert!(
            hlc.observe(Timestamp {
                wall_ms: 15_001,
                logical: 0
            })
            .is_err()
        );
    }

    #[test]
    fn successor_carries_into_the_wall_clock() {
        let t = Timestamp {
            wall_ms: 5,
            logical: u32::MAX,
        };
        assert_eq!(
            t.successor(),
            Timestamp {
                wall_ms: 6,
                logical: 0
            }
        );
        assert!(t.successor() > t);
    }
}
