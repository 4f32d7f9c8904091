//! The open-handle table of the backends: [`HandleTable`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use fuse_abi::Errno;

use crate::{FsResult, Handle};

/// How many independently locked shards a table has.
const SHARDS: usize = 16;

/// One shard of a [`HandleTable`], alone on its cache line.
#[repr(align(64))]
struct Shard<T>(RwLock<HashMap<Handle, Arc<T>>>);

/// The open-handle table a backend keeps: the [`Handle`] (`fh`) values it hands out from OPEN,
/// OPENDIR, CREATE or TMPFILE, each naming an open file or directory until RELEASE or
/// RELEASEDIR, and the value (an `Arc<T>`) each names.
///
/// - Values are never 0 (a zeroed `fh` field names no handle) and never a handle still in
///   the table: they count up from 1, are not reset by [`HandleTable::clear`], and skip 0
///   and live values should the counter ever wrap.
/// - An unknown or released handle is [`EBADF`](Errno::EBADF): the guest chooses the `fh` of
///   every request, so a lookup must never trust it.
/// - Entries are [`Arc`]s: [`remove`](HandleTable::remove) takes the handle out of the table
///   at once, and the value (its descriptor, its budget permits) drops when the last request
///   still using it is done.
///
/// # Locking
///
/// READ, WRITE and most data requests do one [`get`](HandleTable::get): a shared lock on one
/// of 16 shards (chosen by the handle's value, so consecutive handles fall in different
/// shards), a hash lookup and an [`Arc`] clone; nothing is allocated. Inserts and removals
/// take that one shard's lock exclusively, so an OPEN on one queue does not stall the READs
/// of handles in other shards. Each shard sits on a cache line of its own.
///
/// ```
/// use fuse_abi::Errno;
/// use fuse_server::HandleTable;
///
/// let handles = HandleTable::new();
/// let fh = handles.insert("an open file");
/// assert_eq!(*handles.get(fh)?, "an open file");
/// handles.remove(fh)?;
/// assert_eq!(handles.get(fh), Err(Errno::EBADF));
/// # Ok::<(), Errno>(())
/// ```
pub struct HandleTable<T> {
    shards: [Shard<T>; SHARDS],
    /// The next value to hand out.
    next: AtomicU64,
}

impl<T> HandleTable<T> {
    /// An empty table; its first handle is 1.
    pub fn new() -> HandleTable<T> {
        Self::starting_at(1)
    }

    fn starting_at(next: u64) -> HandleTable<T> {
        HandleTable {
            shards: std::array::from_fn(|_| Shard(RwLock::new(HashMap::new()))),
            next: AtomicU64::new(next),
        }
    }

    #[allow(clippy::cast_possible_truncation)] // the remainder is below SHARDS
    fn shard(&self, fh: Handle) -> &RwLock<HashMap<Handle, Arc<T>>> {
        &self.shards[(fh.0 % SHARDS as u64) as usize].0
    }

    /// Adds `value` and returns its handle: never 0, never one already in the table.
    pub fn insert(&self, value: T) -> Handle {
        let value = Arc::new(value);
        loop {
            let fh = Handle(self.next.fetch_add(1, Ordering::Relaxed));
            if fh.0 == 0 {
                // The counter wrapped.
                continue;
            }
            let mut shard = self
                .shard(fh)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Entry::Vacant(slot) = shard.entry(fh) {
                slot.insert(value);
                return fh;
            }
            // Still open since before the counter wrapped: try the next value.
        }
    }

    /// The value of `fh`, or EBADF if `fh` is not in the table.
    pub fn get(&self, fh: Handle) -> FsResult<Arc<T>> {
        self.shard(fh)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fh)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    /// Takes `fh` out of the table and returns its value (which drops when its last in-flight
    /// user is done), or EBADF if `fh` is not in the table.
    pub fn remove(&self, fh: Handle) -> FsResult<Arc<T>> {
        self.shard(fh)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&fh)
            .ok_or(Errno::EBADF)
    }

    /// Drops every handle (a new session: INIT or DESTROY). The counter goes on, so no handle
    /// of the old session names anything in the new one. Shards are cleared one after the
    /// other: a handle inserted meanwhile may stay, so call this with no request in flight.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard
                .0
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// How many handles the table holds (exact when no insert or removal runs meanwhile).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether the table holds no handle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Default for HandleTable<T> {
    fn default() -> HandleTable<T> {
        HandleTable::new()
    }
}

/// The count and the next value, not the entries: a table can hold many thousands.
impl<T> fmt::Debug for HandleTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleTable")
            .field("len", &self.len())
            .field("next", &self.next.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::thread;

    use super::*;

    #[test]
    fn unknown_handles_are_ebadf() {
        let table = HandleTable::<u32>::new();
        assert_eq!(table.get(Handle(0)), Err(Errno::EBADF));
        assert_eq!(table.get(Handle(1)), Err(Errno::EBADF));
        assert_eq!(table.get(Handle(u64::MAX)), Err(Errno::EBADF));
        assert_eq!(table.remove(Handle(1)), Err(Errno::EBADF));
        let fh = table.insert(7);
        assert_eq!(table.get(Handle(fh.0 + 1)), Err(Errno::EBADF));
    }

    #[test]
    fn get_returns_the_inserted_value() {
        let table = HandleTable::new();
        let a = table.insert("a");
        let b = table.insert("b");
        assert_eq!(*table.get(a).unwrap(), "a");
        assert_eq!(*table.get(b).unwrap(), "b");
        assert_eq!(table.len(), 2);
        assert!(!table.is_empty());
    }

    #[test]
    fn removed_handles_are_ebadf_and_in_flight_users_keep_the_value() {
        let table = HandleTable::new();
        let fh = table.insert(String::from("open"));
        let in_flight = table.get(fh).unwrap();
        assert_eq!(*table.remove(fh).unwrap(), "open");
        assert_eq!(table.get(fh), Err(Errno::EBADF));
        assert_eq!(table.remove(fh), Err(Errno::EBADF));
        assert!(table.is_empty());
        // The value lives until its last user drops it.
        assert_eq!(*in_flight, "open");
        assert_eq!(Arc::strong_count(&in_flight), 1);
    }

    #[test]
    fn clear_drops_everything_and_never_reuses_a_value() {
        let table = HandleTable::new();
        let old: Vec<Handle> = (0..40).map(|i| table.insert(i)).collect();
        table.clear();
        assert!(table.is_empty());
        for &fh in &old {
            assert_eq!(table.get(fh), Err(Errno::EBADF));
        }
        let new = table.insert(99);
        assert!(
            !old.contains(&new),
            "{new:?} was handed out before the reset"
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn handles_are_unique_and_never_zero() {
        let table = HandleTable::new();
        assert_eq!(table.insert(()), Handle(1));
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let fh = table.insert(());
            assert_ne!(fh, Handle(0));
            assert!(seen.insert(fh), "{fh:?} handed out twice");
        }
        // Released values are not handed out again either.
        let fh = table.insert(());
        table.remove(fh).unwrap();
        assert_ne!(table.insert(()), fh);
    }

    #[test]
    fn a_wrapped_counter_skips_zero_and_live_handles() {
        let table = HandleTable::starting_at(u64::MAX - 1);
        assert_eq!(table.insert("max-1"), Handle(u64::MAX - 1));
        assert_eq!(table.insert("max"), Handle(u64::MAX));
        // The counter is at 0 now: 0 is skipped, then 1 is free.
        assert_eq!(table.insert("one"), Handle(1));
        // Pretend 2 and 3 survived from before the wrap.
        let table = HandleTable::starting_at(2);
        table.insert("two");
        table.insert("three");
        table.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(table.insert("max"), Handle(u64::MAX));
        assert_eq!(table.insert("one"), Handle(1));
        assert_eq!(table.insert("four"), Handle(4));
        assert_eq!(*table.get(Handle(2)).unwrap(), "two");
        assert_eq!(*table.get(Handle(3)).unwrap(), "three");
    }

    #[test]
    fn concurrent_inserts_gets_and_removes() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 500;
        let table = HandleTable::new();
        let handed_out: Vec<Vec<Handle>> = thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let table = &table;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for i in 0..PER_THREAD {
                            let fh = table.insert((t, i));
                            // Every handle so far still reads back what its thread put in.
                            for (j, &earlier) in mine.iter().enumerate() {
                                if j % 50 == 0 {
                                    assert_eq!(*table.get(earlier).unwrap(), (t, j));
                                }
                            }
                            assert_eq!(*table.get(fh).unwrap(), (t, i));
                            mine.push(fh);
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let all: HashSet<Handle> = handed_out.iter().flatten().copied().collect();
        assert_eq!(
            all.len(),
            THREADS * PER_THREAD,
            "a handle was handed out twice"
        );
        assert!(!all.contains(&Handle(0)));
        assert_eq!(table.len(), THREADS * PER_THREAD);

        thread::scope(|s| {
            for (t, mine) in handed_out.iter().enumerate() {
                let table = &table;
                s.spawn(move || {
                    for (i, &fh) in mine.iter().enumerate() {
                        assert_eq!(*table.remove(fh).unwrap(), (t, i));
                        assert_eq!(table.get(fh), Err(Errno::EBADF));
                    }
                });
            }
        });
        assert!(table.is_empty());
    }

    #[test]
    fn debug_shows_the_count_not_the_entries() {
        let table = HandleTable::new();
        table.insert("secret");
        assert_eq!(format!("{table:?}"), "HandleTable { len: 1, next: 2 }");
    }
}
