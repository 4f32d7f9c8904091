//! A queue's watchdog: while the thread that serves a queue's ring is inside one request for a
//! whole tick (a request not known to block turned out to, e.g. on a hung host filesystem),
//! the watchdog takes the heads that are waiting on the ring and hands them to the pool, so a
//! wedged request never stops its queue.
//!
//! It costs nothing while the queue is idle: the first kick after a quiet spell arms it (one
//! wake-up), it ticks while requests come, and it disarms itself after [`IDLE_TICKS`] quiet
//! ticks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How long the serving thread may be inside one request before the watchdog serves the ring
/// beside it (and how often it looks while armed).
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Quiet ticks (no kick, no inline request running) after which the watchdog disarms.
const IDLE_TICKS: u32 = 50;

/// What the serving threads and the watchdog share.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Kicks so far (the watchdog looks for a change).
    kicks: AtomicU64,
    /// Inline requests begun so far, and how many are running now.
    begun: AtomicU64,
    running: AtomicU64,
    /// The watchdog ticks (set by a kick, cleared by the watchdog when the queue is quiet).
    armed: AtomicBool,
    /// `true` once the queue is gone: the watchdog ends.
    gone: Mutex<bool>,
    wake: Condvar,
}

impl Watch {
    fn gone(&self) -> std::sync::MutexGuard<'_, bool> {
        self.gone.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A serving thread starts on the ring (`pool`: the queue has a pool, hence a watchdog).
    pub(crate) fn kicked(&self, pool: bool) {
        if !pool {
            return;
        }
        self.kicks.fetch_add(1, Ordering::SeqCst);
        if !self.armed.load(Ordering::SeqCst) {
            self.armed.store(true, Ordering::SeqCst);
            let _gone = self.gone();
            self.wake.notify_one();
        }
    }

    /// The serving thread begins a request on its own thread.
    pub(crate) fn inline_begins(&self) {
        self.begun.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    /// ... and is done with it.
    pub(crate) fn inline_ends(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// The queue is gone: the watchdog ends.
    pub(crate) fn stop(&self) {
        *self.gone() = true;
        self.wake.notify_one();
    }

    /// The watchdog's thread: calls `take_over` whenever an inline request has been running
    /// for a whole tick with no other inline request begun meanwhile.
    pub(crate) fn run(&self, mut take_over: impl FnMut()) {
        loop {
            // Disarmed: sleep until a kick arms it.
            {
                let mut gone = self.gone();
                loop {
                    if *gone {
                        return;
                    }
                    if self.armed.load(Ordering::SeqCst) {
                        break;
                    }
                    gone = self.wake.wait(gone).unwrap_or_else(PoisonError::into_inner);
                }
            }
            let mut begun = self.begun.load(Ordering::SeqCst);
            let mut kicks = self.kicks.load(Ordering::SeqCst);
            let mut quiet = 0u32;
            loop {
                {
                    let gone = self.gone();
                    let (gone, _) = self
                        .wake
                        .wait_timeout(gone, TICK)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *gone {
                        return;
                    }
                }
                let now_begun = self.begun.load(Ordering::SeqCst);
                let running = self.running.load(Ordering::SeqCst) > 0;
                if running && now_begun == begun {
                    take_over();
                }
                let now_kicks = self.kicks.load(Ordering::SeqCst);
                if running || now_kicks != kicks {
                    quiet = 0;
                } else {
                    quiet += 1;
                }
                begun = now_begun;
                kicks = now_kicks;
                if quiet >= IDLE_TICKS {
                    self.armed.store(false, Ordering::SeqCst);
                    // A kick that saw the watchdog still armed has counted itself first.
                    if self.kicks.load(Ordering::SeqCst) == kicks {
                        break;
                    }
                    self.armed.store(true, Ordering::SeqCst);
                    quiet = 0;
                }
            }
        }
    }
}
