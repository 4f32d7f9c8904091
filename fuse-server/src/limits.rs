//! What a hostile guest may make a server hold or print: budgets for host resources and one
//! rate-limit policy for every log line a guest can trigger.
//!
//! Every crate of the stack uses these two and nothing else: a backend counts each descriptor,
//! directory stream or table entry it holds on a guest's behalf against a [`Budget`], and every
//! `warn!` a guest can provoke goes through [`guest_warn!`](crate::guest_warn).
//!
//! # The rate-limit policy
//!
//! Each call site of [`guest_warn!`](crate::guest_warn) has its own [`RateLimit`]: a burst of
//! [`RateLimit::BURST`] lines, then at most one line per [`RateLimit::INTERVAL`]; the line that
//! ends a quiet period says how many were suppressed before it. A guest flooding one malformed
//! request therefore costs at most a few hundred bytes of log per second per call site.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fuse_abi::Errno;

/// A fixed budget of some host resource the guest can make the server hold (descriptors,
/// directory streams, inode table entries, bytes). Permits return their share on drop.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    exhausted: Errno,
}

/// A share of a [`Budget`], returned when dropped.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
    units: usize,
}

impl Budget {
    /// A budget of `limit` units whose exhaustion is ENFILE (descriptors, handles, inodes).
    pub fn new(limit: usize) -> Arc<Budget> {
        Self::with_errno(limit, Errno::ENFILE)
    }

    /// A budget of `limit` units whose exhaustion is `exhausted` (ENOMEM for memory).
    pub fn with_errno(limit: usize, exhausted: Errno) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
            exhausted,
        })
    }

    /// Takes one unit, or the budget's errno when it is spent.
    pub fn acquire(self: &Arc<Self>) -> Result<Permit, Errno> {
        self.acquire_n(1)
    }

    /// Takes `units` at once, or the budget's errno when fewer are left.
    pub fn acquire_n(self: &Arc<Self>, units: usize) -> Result<Permit, Errno> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(units).filter(|&n| n <= self.limit)
            })
            .map_err(|_| self.exhausted)?;
        Ok(Permit {
            budget: Arc::clone(self),
            units,
        })
    }

    /// Units in use.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The budget's size.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Permit {
    /// Units this permit holds.
    pub fn units(&self) -> usize {
        self.units
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.units, Ordering::AcqRel);
    }
}

/// One log call site's rate limit (see the [module docs](self) for the policy). Usually made by
/// [`guest_warn!`](crate::guest_warn), one `static` per call site.
#[derive(Debug)]
pub struct RateLimit {
    /// Lines admitted in the current burst.
    burst: AtomicU64,
    /// When the last line past the burst was admitted, in nanoseconds since [`epoch`].
    last: AtomicU64,
    /// Lines suppressed since the last admitted one.
    suppressed: AtomicU64,
}

/// The process-wide origin of [`RateLimit`] timestamps.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl RateLimit {
    /// Lines logged before the limit applies.
    pub const BURST: u64 = 10;
    /// At most one line per this interval after the burst.
    pub const INTERVAL: Duration = Duration::from_secs(1);

    /// A fresh limit (usable in a `static`).
    pub const fn new() -> RateLimit {
        RateLimit {
            burst: AtomicU64::new(0),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now; `Some(n)` says yes, with `n` lines suppressed since the
    /// last one that was.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(epoch().elapsed())
    }

    /// [`admit`](Self::admit) at `now` since the epoch (tests drive the clock).
    pub fn admit_at(&self, now: Duration) -> Option<u64> {
        if self
            .burst
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b < Self::BURST).then_some(b + 1)
            })
            .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX).max(1);
        let interval = u64::try_from(Self::INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::Acquire);
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::AcqRel);
        None
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

#[doc(hidden)]
pub use log as __log;

/// `log::warn!` under the shared rate-limit policy, with a limit of its own per call site. Use
/// it for every line a guest (or a VMM frontend) can trigger.
///
/// ```
/// fuse_server::guest_warn!("malformed request: {} bytes", 3);
/// ```
#[macro_export]
macro_rules! guest_warn {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::limits::RateLimit = $crate::limits::RateLimit::new();
        if let Some(suppressed) = LIMIT.admit() {
            if suppressed == 0 {
                $crate::limits::__log::warn!($($arg)+);
            } else {
                $crate::limits::__log::warn!(
                    "{} ({} similar lines suppressed)",
                    format_args!($($arg)+),
                    suppressed
                );
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_its_limit_and_returns_on_drop() {
        let b = Budget::new(2);
        let p1 = b.acquire().unwrap();
        let _p2 = b.acquire().unwrap();
        assert_eq!(b.acquire().unwrap_err(), Errno::ENFILE);
        drop(p1);
        assert_eq!(b.used(), 1);
        assert!(b.acquire().is_ok());
    }

    #[test]
    fn budget_of_units_uses_its_errno_and_never_overflows() {
        let b = Budget::with_errno(100, Errno::ENOMEM);
        let p = b.acquire_n(60).unwrap();
        assert_eq!(p.units(), 60);
        assert_eq!(b.acquire_n(41).unwrap_err(), Errno::ENOMEM);
        assert_eq!(b.acquire_n(usize::MAX).unwrap_err(), Errno::ENOMEM);
        let _q = b.acquire_n(40).unwrap();
        drop(p);
        assert_eq!(b.used(), 40);
    }

    #[test]
    fn rate_limit_bursts_then_one_per_interval_and_counts_the_rest() {
        let r = RateLimit::new();
        let t0 = Duration::from_secs(5);
        for _ in 0..RateLimit::BURST {
            assert_eq!(r.admit_at(t0), Some(0));
        }
        // The first line past the burst opens the first interval.
        assert_eq!(r.admit_at(t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(r.admit_at(t0 + Duration::from_millis(500)), None);
        }
        assert_eq!(r.admit_at(t0 + RateLimit::INTERVAL), Some(1000));
        assert_eq!(r.admit_at(t0 + RateLimit::INTERVAL), None);
    }
}
