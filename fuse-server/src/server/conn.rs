//! The connection state INIT establishes, readable on every request without a lock.
//!
//! Workers read it once per request; only INIT, DESTROY and a device reset change it, each
//! under the server's INIT mutex. It is a sequence lock over atomics: a writer makes the
//! sequence odd, stores the fields and makes it even again; a reader copies the fields
//! between two reads of an equal, even sequence, and tries again otherwise. A reader never
//! blocks a writer and never waits for a lock; it only retries while a write is under way,
//! which is three stores long.

use std::hint;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use fuse_abi::InitFlags;

/// The connection state INIT establishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Conn {
    pub(super) minor: u32,
    pub(super) flags: InitFlags,
    pub(super) max_request_len: usize,
}

/// Bit of [`ConnCell::minor`] that says a connection is set up.
const PRESENT: u64 = 1 << 32;

/// An `Option<Conn>` behind a sequence lock (see the module docs).
#[derive(Debug, Default)]
pub(super) struct ConnCell {
    /// Even: the fields are stable; odd: a write is under way.
    seq: AtomicU64,
    /// [`PRESENT`] | the negotiated minor; 0 without a connection.
    minor: AtomicU64,
    flags: AtomicU64,
    max_request_len: AtomicU64,
}

impl ConnCell {
    /// No connection (before INIT).
    pub(super) fn new() -> ConnCell {
        ConnCell::default()
    }

    /// A consistent copy of the state, without a lock.
    pub(super) fn load(&self) -> Option<Conn> {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let minor = self.minor.load(Ordering::Relaxed);
                let flags = self.flags.load(Ordering::Relaxed);
                let max_request_len = self.max_request_len.load(Ordering::Relaxed);
                // Orders the field loads before the second sequence load.
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return decode(minor, flags, max_request_len);
                }
            }
            hint::spin_loop();
        }
    }

    /// Replaces the state and returns the previous one. Writers are serialised by the INIT
    /// mutex, whose guard the caller shows.
    pub(super) fn store(&self, _writer: &MutexGuard<'_, ()>, conn: Option<Conn>) -> Option<Conn> {
        // The only writer: these loads see its own last stores.
        let seq = self.seq.load(Ordering::Relaxed);
        let was = decode(
            self.minor.load(Ordering::Relaxed),
            self.flags.load(Ordering::Relaxed),
            self.max_request_len.load(Ordering::Relaxed),
        );
        let (minor, flags, max_request_len) = match conn {
            Some(c) => (
                PRESENT | u64::from(c.minor),
                c.flags.bits(),
                u64::try_from(c.max_request_len).unwrap_or(u64::MAX),
            ),
            None => (0, 0, 0),
        };
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd sequence before the field stores.
        fence(Ordering::Release);
        self.minor.store(minor, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        self.max_request_len
            .store(max_request_len, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
        was
    }
}

fn decode(minor: u64, flags: u64, max_request_len: u64) -> Option<Conn> {
    (minor & PRESENT != 0).then(|| Conn {
        minor: u32::try_from(minor & !PRESENT).unwrap_or(u32::MAX),
        flags: InitFlags::from_bits_retain(flags),
        max_request_len: usize::try_from(max_request_len).unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use super::*;

    const A: Conn = Conn {
        minor: 31,
        flags: InitFlags::ASYNC_READ,
        max_request_len: 4096,
    };
    const B: Conn = Conn {
        minor: 46,
        flags: InitFlags::all(),
        max_request_len: 1 << 20,
    };

    #[test]
    fn store_returns_the_previous_state() {
        let lock = Mutex::new(());
        let cell = ConnCell::new();
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(cell.load(), None);
        assert_eq!(cell.store(&guard, Some(A)), None);
        assert_eq!(cell.load(), Some(A));
        assert_eq!(cell.store(&guard, Some(B)), Some(A));
        assert_eq!(cell.store(&guard, None), Some(B));
        assert_eq!(cell.load(), None);
    }

    /// Readers racing a writer see one whole state, never fields of two.
    #[test]
    #[cfg_attr(miri, ignore = "slow under miri")]
    fn readers_never_see_a_torn_state() {
        let lock = Mutex::new(());
        let cell = ConnCell::new();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        let seen = cell.load();
                        assert!(matches!(seen, None | Some(A) | Some(B)), "{seen:?}");
                    }
                });
            }
            for i in 0..20_000 {
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                cell.store(&guard, [None, Some(A), Some(B)][i % 3]);
            }
            done.store(true, Ordering::Relaxed);
        });
    }
}
