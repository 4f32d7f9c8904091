//! POSIX record locks: lock types, `fcntl` commands and the lock record, between the guest's
//! Linux numbering (as FUSE carries it) and Darwin's.
//!
//! | item | Linux | Darwin |
//! | --- | --- | --- |
//! | `F_GETLK` / `F_SETLK` / `F_SETLKW` | 5 / 6 / 7 | 7 / 8 / 9 |
//! | `F_OFD_GETLK` / `F_OFD_SETLK` / `F_OFD_SETLKW` | 36 / 37 / 38 | 92 / 90 / 91 |
//! | `F_RDLCK` / `F_WRLCK` / `F_UNLCK` | 0 / 1 / 2 | 1 / 3 / 2 |
//! | `LOCK_SH` / `LOCK_EX` / `LOCK_NB` / `LOCK_UN` | 1 / 2 / 4 / 8 | the same |
//!
//! FUSE describes a lock as `{start, end (inclusive), type, pid}`, with `end` =
//! [`OFFSET_MAX`] for "to the end of file"; `struct flock` has `{start, len, pid, type,
//! whence}` with `len` 0 for "to the end of file". Values: reference/macos.md §2.9.

use fuse_abi::Errno;
use fuse_abi::limits::OFFSET_MAX;
use fuse_server::Lock;

use crate::darwin_abi;

/// Linux lock values (x86_64 and aarch64 share them), as FUSE carries them.
pub mod linux {
    /// Get the first lock that would block this one.
    pub const F_GETLK: u32 = 5;
    /// Set or clear a lock without waiting.
    pub const F_SETLK: u32 = 6;
    /// Set or clear a lock, waiting.
    pub const F_SETLKW: u32 = 7;
    /// Open-file-description `F_GETLK`.
    pub const F_OFD_GETLK: u32 = 36;
    /// Open-file-description `F_SETLK`.
    pub const F_OFD_SETLK: u32 = 37;
    /// Open-file-description `F_SETLKW`.
    pub const F_OFD_SETLKW: u32 = 38;
    /// Shared (read) lock.
    pub const F_RDLCK: u32 = 0;
    /// Exclusive (write) lock.
    pub const F_WRLCK: u32 = 1;
    /// Unlock.
    pub const F_UNLCK: u32 = 2;
}

/// Translates a guest lock type to the host's `l_type`; unknown types are `EINVAL`.
pub const fn type_to_darwin(typ: u32) -> Result<i16, Errno> {
    match typ {
        linux::F_RDLCK => Ok(darwin_abi::F_RDLCK),
        linux::F_WRLCK => Ok(darwin_abi::F_WRLCK),
        linux::F_UNLCK => Ok(darwin_abi::F_UNLCK),
        _ => Err(Errno::EINVAL),
    }
}

/// Translates a host `l_type` back to the guest's; an unknown value from the host is `EIO`.
pub const fn type_from_darwin(typ: i16) -> Result<u32, Errno> {
    match typ {
        darwin_abi::F_RDLCK => Ok(linux::F_RDLCK),
        darwin_abi::F_WRLCK => Ok(linux::F_WRLCK),
        darwin_abi::F_UNLCK => Ok(linux::F_UNLCK),
        _ => Err(Errno::EIO),
    }
}

/// Translates a guest lock `fcntl` command to the host's; any other command is `EINVAL`.
pub const fn cmd_to_darwin(cmd: u32) -> Result<i32, Errno> {
    match cmd {
        linux::F_GETLK => Ok(darwin_abi::F_GETLK),
        linux::F_SETLK => Ok(darwin_abi::F_SETLK),
        linux::F_SETLKW => Ok(darwin_abi::F_SETLKW),
        linux::F_OFD_GETLK => Ok(darwin_abi::F_OFD_GETLK),
        linux::F_OFD_SETLK => Ok(darwin_abi::F_OFD_SETLK),
        linux::F_OFD_SETLKW => Ok(darwin_abi::F_OFD_SETLKW),
        _ => Err(Errno::EINVAL),
    }
}

/// Translates a host lock `fcntl` command back to the guest's, or `None` if it is not one.
pub const fn cmd_from_darwin(cmd: i32) -> Option<u32> {
    match cmd {
        darwin_abi::F_GETLK => Some(linux::F_GETLK),
        darwin_abi::F_SETLK => Some(linux::F_SETLK),
        darwin_abi::F_SETLKW => Some(linux::F_SETLKW),
        darwin_abi::F_OFD_GETLK => Some(linux::F_OFD_GETLK),
        darwin_abi::F_OFD_SETLK => Some(linux::F_OFD_SETLK),
        darwin_abi::F_OFD_SETLKW => Some(linux::F_OFD_SETLKW),
        _ => None,
    }
}

/// The host `fcntl` command for a FUSE GETLK, or SETLK/SETLKW (`sleep`), on POSIX (`ofd` false,
/// owned by the process) or open-file-description locks.
pub const fn command(get: bool, sleep: bool, ofd: bool) -> i32 {
    match (get, sleep, ofd) {
        (true, _, false) => darwin_abi::F_GETLK,
        (true, _, true) => darwin_abi::F_OFD_GETLK,
        (false, false, false) => darwin_abi::F_SETLK,
        (false, true, false) => darwin_abi::F_SETLKW,
        (false, false, true) => darwin_abi::F_OFD_SETLK,
        (false, true, true) => darwin_abi::F_OFD_SETLKW,
    }
}

/// The `flock(2)` operation for a FUSE SETLK with `FUSE_LK_FLOCK`: read lock → `LOCK_SH`,
/// write lock → `LOCK_EX`, unlock → `LOCK_UN`, plus `LOCK_NB` unless the guest waits
/// (`sleep`). Unknown types are `EINVAL`.
pub const fn flock_operation(typ: u32, sleep: bool) -> Result<i32, Errno> {
    let operation = match typ {
        linux::F_RDLCK => darwin_abi::LOCK_SH,
        linux::F_WRLCK => darwin_abi::LOCK_EX,
        linux::F_UNLCK => return Ok(darwin_abi::LOCK_UN),
        _ => return Err(Errno::EINVAL),
    };
    Ok(if sleep {
        operation
    } else {
        operation | darwin_abi::LOCK_NB
    })
}

/// The fields of Darwin's `struct flock` (`l_start`, `l_len`, `l_pid`, `l_type`, `l_whence`),
/// in Darwin numbering, portable so that the translation is testable anywhere. The host layer
/// copies it into a `libc::flock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFlock {
    /// First byte, from `whence`.
    pub start: i64,
    /// Length in bytes; 0 means "to the end of the file".
    pub len: i64,
    /// Owner's pid (GETLK reply only).
    pub pid: i32,
    /// Darwin `F_RDLCK` / `F_WRLCK` / `F_UNLCK`.
    pub typ: i16,
    /// Always `SEEK_SET` here (FUSE offsets are absolute).
    pub whence: i16,
}

impl HostFlock {
    /// The host record for a guest lock. `EINVAL` for an unknown type or a range the kernel
    /// would not send (`start` or `end` beyond [`OFFSET_MAX`], `end < start`).
    pub fn from_fuse(lock: &Lock) -> Result<HostFlock, Errno> {
        let typ = type_to_darwin(lock.typ)?;
        let start = i64::try_from(lock.start).map_err(|_| Errno::EINVAL)?;
        if lock.end < lock.start {
            return Err(Errno::EINVAL);
        }
        // Both "to the end" spellings: OFFSET_MAX, or all ones.
        let len = if lock.end >= OFFSET_MAX {
            0
        } else {
            // end < OFFSET_MAX and start <= end, so this is at most i64::MAX.
            i64::try_from(lock.end - lock.start + 1).map_err(|_| Errno::EINVAL)?
        };
        Ok(HostFlock {
            start,
            len,
            pid: i32::try_from(lock.pid).unwrap_or(0),
            typ,
            whence: seek_set(),
        })
    }

    /// The guest's view of a host record (the answer to GETLK). `EIO` for an unknown type or
    /// a range that cannot be expressed (negative start or length, the host never returns
    /// them for a `SEEK_SET` query).
    pub fn to_fuse(&self) -> Result<Lock, Errno> {
        let typ = type_from_darwin(self.typ)?;
        let start = u64::try_from(self.start).map_err(|_| Errno::EIO)?;
        let end = match self.len {
            0 => OFFSET_MAX,
            len => {
                let len = u64::try_from(len).map_err(|_| Errno::EIO)?;
                start.saturating_add(len - 1).min(OFFSET_MAX)
            }
        };
        Ok(Lock {
            start,
            end,
            typ,
            pid: u32::try_from(self.pid).unwrap_or(0),
        })
    }
}

/// Darwin `SEEK_SET` as `l_whence` (an `i16`); the value is 0.
const fn seek_set() -> i16 {
    const _: () = assert!(darwin_abi::SEEK_SET == 0);
    0
}

/// Compile-time check of the Linux values against `libc` when built for 64-bit Linux.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
const _: () = {
    assert!(linux::F_GETLK == libc::F_GETLK.unsigned_abs());
    assert!(linux::F_SETLK == libc::F_SETLK.unsigned_abs());
    assert!(linux::F_SETLKW == libc::F_SETLKW.unsigned_abs());
    assert!(linux::F_OFD_GETLK == libc::F_OFD_GETLK.unsigned_abs());
    assert!(linux::F_OFD_SETLK == libc::F_OFD_SETLK.unsigned_abs());
    assert!(linux::F_OFD_SETLKW == libc::F_OFD_SETLKW.unsigned_abs());
    assert!(linux::F_RDLCK == libc::F_RDLCK.unsigned_abs());
    assert!(linux::F_WRLCK == libc::F_WRLCK.unsigned_abs());
    assert!(linux::F_UNLCK == libc::F_UNLCK.unsigned_abs());
    assert!(darwin_abi::LOCK_SH == libc::LOCK_SH);
    assert!(darwin_abi::LOCK_EX == libc::LOCK_EX);
    assert!(darwin_abi::LOCK_NB == libc::LOCK_NB);
    assert!(darwin_abi::LOCK_UN == libc::LOCK_UN);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers as in reference/macos.md §2.9, independent of the constants.
    #[test]
    fn type_table_both_ways() {
        for (guest, host) in [(0, 1), (1, 3), (2, 2)] {
            assert_eq!(type_to_darwin(guest), Ok(host), "type {guest}");
            assert_eq!(type_from_darwin(host), Ok(guest), "Darwin type {host}");
        }
        for bad in [3, 4, u32::MAX] {
            assert_eq!(type_to_darwin(bad), Err(Errno::EINVAL));
        }
        for bad in [0, 4, -1, i16::MAX] {
            assert_eq!(type_from_darwin(bad), Err(Errno::EIO));
        }
    }

    #[test]
    fn command_table_both_ways() {
        let rows = [(5, 7), (6, 8), (7, 9), (36, 92), (37, 90), (38, 91)];
        for (guest, host) in rows {
            assert_eq!(cmd_to_darwin(guest), Ok(host), "cmd {guest}");
            assert_eq!(cmd_from_darwin(host), Some(guest), "Darwin cmd {host}");
        }
        for bad in [0, 1, 4, 8, 12, 13, 14, 39, u32::MAX] {
            assert_eq!(cmd_to_darwin(bad), Err(Errno::EINVAL), "cmd {bad}");
        }
        for bad in [0, 5, 6, 10, 42, 93, -1] {
            assert_eq!(cmd_from_darwin(bad), None, "Darwin cmd {bad}");
        }
    }

    #[test]
    fn fuse_request_commands() {
        assert_eq!(command(true, false, false), 7);
        assert_eq!(command(true, true, false), 7);
        assert_eq!(command(false, false, false), 8);
        assert_eq!(command(false, true, false), 9);
        assert_eq!(command(true, false, true), 92);
        assert_eq!(command(false, false, true), 90);
        assert_eq!(command(false, true, true), 91);
    }

    #[test]
    fn flock_operations() {
        assert_eq!(flock_operation(0, true), Ok(1));
        assert_eq!(flock_operation(0, false), Ok(1 | 4));
        assert_eq!(flock_operation(1, true), Ok(2));
        assert_eq!(flock_operation(1, false), Ok(2 | 4));
        assert_eq!(flock_operation(2, false), Ok(8));
        assert_eq!(flock_operation(2, true), Ok(8));
        assert_eq!(flock_operation(7, true), Err(Errno::EINVAL));
    }

    fn lock(start: u64, end: u64, typ: u32) -> Lock {
        Lock {
            start,
            end,
            typ,
            pid: 42,
        }
    }

    #[test]
    fn ranges_to_host() {
        let host = HostFlock::from_fuse(&lock(10, 19, 1)).expect("valid");
        assert_eq!(
            host,
            HostFlock {
                start: 10,
                len: 10,
                pid: 42,
                typ: 3,
                whence: 0
            }
        );
        // One byte.
        assert_eq!(HostFlock::from_fuse(&lock(0, 0, 0)).map(|h| h.len), Ok(1));
        // To the end of the file, both spellings.
        assert_eq!(
            HostFlock::from_fuse(&lock(5, OFFSET_MAX, 2)).map(|h| h.len),
            Ok(0)
        );
        assert_eq!(
            HostFlock::from_fuse(&lock(0, u64::MAX, 2)).map(|h| h.len),
            Ok(0)
        );
        // The largest finite range.
        assert_eq!(
            HostFlock::from_fuse(&lock(0, OFFSET_MAX - 1, 0)).map(|h| h.len),
            Ok(i64::MAX)
        );
        // Invalid ranges and types.
        assert_eq!(HostFlock::from_fuse(&lock(9, 8, 0)), Err(Errno::EINVAL));
        assert_eq!(
            HostFlock::from_fuse(&lock(OFFSET_MAX + 1, u64::MAX, 0)),
            Err(Errno::EINVAL)
        );
        assert_eq!(HostFlock::from_fuse(&lock(0, 1, 9)), Err(Errno::EINVAL));
    }

    #[test]
    fn ranges_round_trip() {
        let ranges = [
            (0, 0),
            (0, 4095),
            (100, 199),
            (0, OFFSET_MAX),
            (7, OFFSET_MAX),
            (OFFSET_MAX - 1, OFFSET_MAX - 1),
        ];
        for (start, end) in ranges {
            for typ in 0..3 {
                let guest = lock(start, end, typ);
                let host = HostFlock::from_fuse(&guest).expect("valid");
                assert_eq!(host.to_fuse(), Ok(guest), "{start}..={end} type {typ}");
            }
        }
    }

    #[test]
    fn host_answers_to_guest() {
        let host = HostFlock {
            start: 0,
            len: 0,
            pid: -1,
            typ: 3,
            whence: 0,
        };
        assert_eq!(
            host.to_fuse(),
            Ok(Lock {
                start: 0,
                end: OFFSET_MAX,
                typ: 1,
                pid: 0
            })
        );
        let negative = HostFlock { start: -1, ..host };
        assert_eq!(negative.to_fuse(), Err(Errno::EIO));
        let bad_len = HostFlock { len: -5, ..host };
        assert_eq!(bad_len.to_fuse(), Err(Errno::EIO));
        let huge = HostFlock {
            start: i64::MAX,
            len: i64::MAX,
            ..host
        };
        assert_eq!(huge.to_fuse().map(|l| l.end), Ok(OFFSET_MAX));
    }
}
