//! Parked requests: a SETLKW whose lock is held waits on no thread.
//!
//! The backend tries a sleeping lock request once and answers EAGAIN when the lock is held; the
//! server then writes nothing and returns [`Completion::Pending`](fuse_server::Completion).
//! The queue keeps the chain's head (it stays owned by the device: nothing goes on the used
//! ring) in its [`ParkedSet`], and serves the chain again later, from the start — it is still in
//! guest memory, and the transport walks and checks it again as if it were new:
//!
//! - **at once** when a request that can free a lock completes on any queue of the device
//!   (SETLK or SETLKW, FLUSH, RELEASE, RELEASEDIR, FORGET): the [`Hub`] wakes the parked
//!   requests of the same node id on every queue. BATCH_FORGET wakes nothing: a node the guest
//!   forgets has no open handle left, so no guest request waits on its locks;
//! - **on a timer** with per-request backoff, for holders outside this guest (host processes):
//!   [`FIRST_DELAY`] (1 ms), doubled after each attempt up to [`MAX_DELAY`] (200 ms), so a
//!   request parked on a lock that is never freed costs at most five attempts a second.
//!
//! Who drives the timer: a queue with a pool (the vhost-user daemon, an in-process device with
//! workers) has a retry thread of its own ([`Timer`]), asleep while nothing is parked. A queue
//! without one (an inline in-process device) is driven by whoever serves it: the kick threads
//! wait no longer than the next retry, and a VMM that calls `process_queue` itself asks
//! `VirtioFs::next_retry` and calls `VirtioFs::retry_parked` when it is due.
//!
//! Bounds: a parked request holds one of the queue's heads, so a queue never has more parked
//! requests than its size; the set is allocated once, at the queue's size, when the queue is
//! made. A device reset, a disconnect or a stopped queue drops them with the queue's
//! generation (as it discards late completions): the guest that reset does not want them
//! answered.

use std::sync::{Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use virtiofs_transport::{ChainBuffers, DescTable};

/// The first pause before a parked request is tried again.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(1);
/// The longest pause between two attempts of a parked request.
pub(crate) const MAX_DELAY: Duration = Duration::from_millis(200);

/// One parked request: where its chain is, and when to try it again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parked {
    pub(crate) head: u16,
    pub(crate) table: DescTable,
    /// The queue's generation when it was parked: a restart drops it.
    pub(crate) generation: u64,
    /// The request's node id (the transport's copy of the header), for wake-ups.
    pub(crate) nodeid: Option<u64>,
    /// The pause before the next attempt.
    pub(crate) delay: Duration,
    /// When the next attempt is due.
    pub(crate) due: Instant,
}

impl Parked {
    /// A request parked for the first time, at `now`.
    pub(crate) fn new(
        head: u16,
        table: DescTable,
        generation: u64,
        nodeid: Option<u64>,
        now: Instant,
    ) -> Parked {
        Parked {
            head,
            table,
            generation,
            nodeid,
            delay: FIRST_DELAY,
            due: now + FIRST_DELAY,
        }
    }

    /// The same request after another attempt at `now` that found the lock held: the pause
    /// doubles, up to [`MAX_DELAY`].
    pub(crate) fn again(self, now: Instant) -> Parked {
        let delay = self.delay.saturating_mul(2).min(MAX_DELAY);
        Parked {
            delay,
            due: now + delay,
            ..self
        }
    }
}

/// A queue's parked requests.
#[derive(Debug)]
pub(crate) struct ParkedSet {
    entries: Vec<Parked>,
}

impl ParkedSet {
    /// Room for `capacity` requests (the queue's size), allocated now.
    pub(crate) fn with_capacity(capacity: usize) -> ParkedSet {
        ParkedSet {
            entries: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn park(&mut self, p: Parked) {
        self.entries.push(p);
    }

    /// Takes out one request due at `now`, if any.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Parked> {
        let i = self.entries.iter().position(|p| p.due <= now)?;
        Some(self.entries.swap_remove(i))
    }

    /// Makes the requests of `nodeid` due at `now`; whether there was one.
    pub(crate) fn wake(&mut self, nodeid: u64, now: Instant) -> bool {
        let mut any = false;
        for p in self.entries.iter_mut().filter(|p| p.nodeid == Some(nodeid)) {
            p.due = p.due.min(now);
            any = true;
        }
        any
    }

    /// When the next attempt is due, if anything is parked.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.entries.iter().map(|p| p.due).min()
    }

    /// Drops everything (the queue restarted); how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What the [`Hub`] asks of a queue.
pub(crate) trait Wake: Send + Sync {
    /// A request that may have freed a lock of `nodeid` completed: try the queue's parked
    /// requests of that node now (on this thread with `chains` if the queue has no retry
    /// thread).
    fn wake(&self, nodeid: u64, chains: &mut ChainBuffers);
}

/// The device's queues, for wake-ups across them (a lock freed through one queue grants a
/// SETLKW parked on another).
#[derive(Default)]
pub(crate) struct Hub {
    queues: Mutex<Vec<Weak<dyn Wake>>>,
}

impl Hub {
    /// Adds a queue (when the device makes it).
    pub(crate) fn register(&self, queue: Weak<dyn Wake>) {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(queue);
    }

    /// See [`Wake::wake`]; every queue of the device.
    pub(crate) fn wake(&self, nodeid: u64, chains: &mut ChainBuffers) {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for queue in queues.iter().filter_map(Weak::upgrade) {
            queue.wake(nodeid, chains);
        }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// A queue's retry thread's alarm clock (queues with a pool).
#[derive(Debug, Default)]
pub(crate) struct Timer {
    state: Mutex<TimerState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct TimerState {
    due: Option<Instant>,
    gone: bool,
}

impl Timer {
    /// Something is due at `at` (an earlier alarm stays).
    pub(crate) fn arm(&self, at: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.due.is_none_or(|due| at < due) {
            state.due = Some(at);
            self.wake.notify_one();
        }
    }

    /// The queue is gone: the thread ends.
    pub(crate) fn stop(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .gone = true;
        self.wake.notify_one();
    }

    /// The retry thread: sleeps until the alarm, calls `fire`, which answers when the next
    /// attempt is due, and so on until [`stop`](Self::stop).
    pub(crate) fn run(&self, mut fire: impl FnMut() -> Option<Instant>) {
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if state.gone {
                        return;
                    }
                    let now = Instant::now();
                    match state.due {
                        Some(due) if due <= now => {
                            state.due = None;
                            break;
                        }
                        Some(due) => {
                            state = self
                                .wake
                                .wait_timeout(state, due - now)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        None => {
                            state = self
                                .wake
                                .wait(state)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                }
            }
            if let Some(next) = fire() {
                self.arm(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DescTable {
        DescTable {
            addr: vm_memory::GuestAddress(0),
            size: 16,
            indirect: false,
        }
    }

    #[test]
    fn the_pause_doubles_up_to_the_cap() {
        let t0 = Instant::now();
        let mut p = Parked::new(3, table(), 0, Some(9), t0);
        let mut pauses = vec![p.delay];
        for _ in 0..10 {
            p = p.again(t0);
            pauses.push(p.delay);
        }
        let ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [1, 2, 4, 8, 16, 32, 64, 128, 200, 200, 200]);
        assert_eq!(p.due, t0 + MAX_DELAY);
    }

    #[test]
    fn only_due_or_woken_requests_come_out() {
        let t0 = Instant::now();
        let mut set = ParkedSet::with_capacity(4);
        set.park(Parked::new(1, table(), 0, Some(7), t0));
        set.park(Parked::new(2, table(), 0, Some(8), t0).again(t0).again(t0));
        assert!(set.take_due(t0).is_none(), "nothing is due at once");
        assert_eq!(set.next_due(), Some(t0 + FIRST_DELAY));
        assert!(set.wake(8, t0));
        assert!(!set.wake(5, t0));
        assert_eq!(set.take_due(t0).map(|p| p.head), Some(2));
        assert!(set.take_due(t0).is_none());
        assert_eq!(set.take_due(t0 + FIRST_DELAY).map(|p| p.head), Some(1));
        assert_eq!(set.len(), 0);
        assert_eq!(set.next_due(), None);
    }
}
