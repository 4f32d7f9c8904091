//! Requests served per opcode: one relaxed atomic add per request, no allocation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use fuse_abi::Opcode;

/// Counter slots: the opcodes of `enum fuse_opcode` are 1..=53; CUSE_INIT (4096) is refused
/// before it is counted.
const SLOTS: usize = 64;

/// How many requests of each opcode a [`Server`](super::Server) has served since it was made:
/// those that passed the header checks (a malformed header is counted by
/// [`Server::bad_requests`](super::Server::bad_requests) instead). Monotonic, across INITs and
/// resets. `Display` lists the nonzero counts, the most frequent first (`WRITE 2000, GETATTR
/// 3`), for a log line.
pub struct OpcodeCounts([AtomicU64; SLOTS]);

impl OpcodeCounts {
    pub(super) const fn new() -> OpcodeCounts {
        OpcodeCounts([const { AtomicU64::new(0) }; SLOTS])
    }

    fn slot(&self, op: Opcode) -> Option<&AtomicU64> {
        usize::try_from(u32::from(op))
            .ok()
            .and_then(|i| self.0.get(i))
    }

    pub(super) fn add(&self, op: Opcode) {
        if let Some(slot) = self.slot(op) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests of `op` served so far.
    pub fn get(&self, op: Opcode) -> u64 {
        self.slot(op).map_or(0, |slot| slot.load(Ordering::Relaxed))
    }

    /// Requests of every opcode served so far.
    pub fn total(&self) -> u64 {
        Opcode::ALL.iter().map(|op| self.get(*op)).sum()
    }
}

impl fmt::Debug for OpcodeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpcodeCounts({self})")
    }
}

impl fmt::Display for OpcodeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A snapshot, sorted by count (then opcode) on the stack: 54 opcodes, at most.
        let mut seen = [(0u64, Opcode::Init); SLOTS];
        let mut n = 0;
        for op in Opcode::ALL {
            let count = self.get(*op);
            if let (true, Some(slot)) = (count > 0, seen.get_mut(n)) {
                *slot = (count, *op);
                n += 1;
            }
        }
        let seen = seen.get_mut(..n).unwrap_or(&mut []);
        seen.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if seen.is_empty() {
            return f.write_str("none");
        }
        for (i, (count, op)) in seen.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{op} {count}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lists_the_most_frequent_first() {
        let c = OpcodeCounts::new();
        assert_eq!(c.to_string(), "none");
        for _ in 0..3 {
            c.add(Opcode::Write);
        }
        c.add(Opcode::Getattr);
        c.add(Opcode::Init);
        c.add(Opcode::CopyFileRange64);
        c.add(Opcode::CuseInit);
        assert_eq!(c.get(Opcode::Write), 3);
        assert_eq!(c.get(Opcode::CuseInit), 0);
        assert_eq!(c.total(), 6);
        let shown = c.to_string();
        assert!(
            shown.starts_with(&format!("{} 3, ", Opcode::Write)),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("{} 1", Opcode::CopyFileRange64)),
            "{shown}"
        );
    }
}
