//! `fallocate(2)` on a host without it: the guest's mode to a plan of Darwin operations.
//!
//! Darwin has `F_PREALLOCATE` (only at the physical end of file, `F_PEOFPOSMODE`) and
//! `F_PUNCHHOLE`; Linux's modes map as follows (reference/macos.md §1.8, §2.10):
//!
//! | Linux mode | plan |
//! | --- | --- |
//! | 0 | allocate up to `offset + len`, then extend the size to it if shorter (never shrink) |
//! | `KEEP_SIZE` | allocate up to `offset + len`, size unchanged |
//! | `PUNCH_HOLE \| KEEP_SIZE` | deallocate the range (zeros where it is not block aligned) |
//! | `PUNCH_HOLE` alone | `EINVAL` (Linux's rule) |
//! | `ZERO_RANGE`, `COLLAPSE_RANGE`, `INSERT_RANGE`, `UNSHARE_RANGE`, `NO_HIDE_STALE` | `EOPNOTSUPP` |

use core::ops::Range;

use fuse_abi::Errno;

use crate::darwin_abi;

/// Linux `FALLOC_FL_*` values.
pub mod linux {
    /// Don't change the file size.
    pub const KEEP_SIZE: u32 = 0x1;
    /// Deallocate the range.
    pub const PUNCH_HOLE: u32 = 0x2;
    /// Reserved; refused by most filesystems.
    pub const NO_HIDE_STALE: u32 = 0x4;
    /// Remove the range, shifting the rest down.
    pub const COLLAPSE_RANGE: u32 = 0x8;
    /// Zero the range.
    pub const ZERO_RANGE: u32 = 0x10;
    /// Insert a hole, shifting the rest up.
    pub const INSERT_RANGE: u32 = 0x20;
    /// Unshare shared blocks.
    pub const UNSHARE_RANGE: u32 = 0x40;
}

/// What to do on the host for a guest FALLOCATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Make sure the file has storage up to `end` ([`preallocation`]), then, unless
    /// `keep_size`, `ftruncate` to `end` if the file is shorter.
    Allocate {
        /// `offset + len`.
        end: u64,
        /// `FALLOC_FL_KEEP_SIZE`.
        keep_size: bool,
    },
    /// Deallocate `offset .. offset + len`, keeping the size ([`punch_ranges`]).
    PunchHole {
        /// First byte.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

/// Plans a guest FALLOCATE. `EINVAL` for a zero length or `PUNCH_HOLE` without `KEEP_SIZE`,
/// `EFBIG` when `offset + len` exceeds the largest file offset, `EOPNOTSUPP` for the modes
/// Darwin cannot do.
pub const fn plan(mode: u32, offset: u64, len: u64) -> Result<Plan, Errno> {
    const SUPPORTED: u32 = linux::KEEP_SIZE | linux::PUNCH_HOLE;
    if mode & !SUPPORTED != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let end = match offset.checked_add(len) {
        Some(end) if end <= i64::MAX.unsigned_abs() => end,
        _ => return Err(Errno::EFBIG),
    };
    if mode & linux::PUNCH_HOLE != 0 {
        if mode & linux::KEEP_SIZE == 0 {
            return Err(Errno::EINVAL);
        }
        return Ok(Plan::PunchHole { offset, len });
    }
    Ok(Plan::Allocate {
        end,
        keep_size: mode & linux::KEEP_SIZE != 0,
    })
}

/// Darwin's `fstore_t` for `F_PREALLOCATE`, portable; the host layer copies it into a
/// `libc::fstore_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFstore {
    /// `fst_flags`: `F_ALLOCATEALL` (and `F_ALLOCATECONTIG` for the first attempt).
    pub flags: u32,
    /// `fst_posmode`: `F_PEOFPOSMODE` (relative to the physical end of file).
    pub posmode: i32,
    /// `fst_offset`: 0 (from the physical end of file).
    pub offset: i64,
    /// `fst_length`: the bytes missing.
    pub length: i64,
}

/// The `F_PREALLOCATE` request that makes storage reach `end`, for a file with `allocated`
/// bytes of storage (`st_blocks * 512`), or `None` if it already does. Try it with
/// `contiguous` first, then without, as microsandbox does.
pub fn preallocation(allocated: u64, end: u64, contiguous: bool) -> Option<HostFstore> {
    let missing = end.checked_sub(allocated).filter(|&missing| missing > 0)?;
    let flags = if contiguous {
        darwin_abi::F_ALLOCATEALL | darwin_abi::F_ALLOCATECONTIG
    } else {
        darwin_abi::F_ALLOCATEALL
    };
    Some(HostFstore {
        flags,
        posmode: darwin_abi::F_PEOFPOSMODE,
        offset: 0,
        length: i64::try_from(missing).ok()?,
    })
}

/// A hole punch split for a filesystem with `block`-byte blocks: the unaligned head and tail
/// to overwrite with zeros, and the aligned middle to hand to `F_PUNCHHOLE` (empty ranges when
/// there is nothing of that kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PunchRanges {
    /// Zeros to write before the aligned part.
    pub head: Range<u64>,
    /// The block-aligned part for `F_PUNCHHOLE`.
    pub middle: Range<u64>,
    /// Zeros to write after the aligned part.
    pub tail: Range<u64>,
}

/// Splits `offset .. offset + len` (clipped to the file's `size`: punching never extends a
/// file) for a `block`-byte block size (a `block` of 0 is treated as 1).
pub fn punch_ranges(offset: u64, len: u64, size: u64, block: u64) -> PunchRanges {
    let block = block.max(1);
    let start = offset.min(size);
    let end = offset.saturating_add(len).min(size);
    let aligned_start = start.div_ceil(block).saturating_mul(block).min(end);
    let aligned_end = (end / block * block).max(aligned_start);
    PunchRanges {
        head: start..aligned_start,
        middle: aligned_start..aligned_end,
        tail: aligned_end..end,
    }
}

/// Compile-time check of the Linux values against `libc` when built for Linux.
#[cfg(target_os = "linux")]
const _: () = {
    assert!(linux::KEEP_SIZE == libc::FALLOC_FL_KEEP_SIZE.unsigned_abs());
    assert!(linux::PUNCH_HOLE == libc::FALLOC_FL_PUNCH_HOLE.unsigned_abs());
    assert!(linux::COLLAPSE_RANGE == libc::FALLOC_FL_COLLAPSE_RANGE.unsigned_abs());
    assert!(linux::ZERO_RANGE == libc::FALLOC_FL_ZERO_RANGE.unsigned_abs());
    assert!(linux::INSERT_RANGE == libc::FALLOC_FL_INSERT_RANGE.unsigned_abs());
    assert!(linux::UNSHARE_RANGE == libc::FALLOC_FL_UNSHARE_RANGE.unsigned_abs());
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(
            plan(0, 10, 20),
            Ok(Plan::Allocate {
                end: 30,
                keep_size: false
            })
        );
        assert_eq!(
            plan(1, 10, 20),
            Ok(Plan::Allocate {
                end: 30,
                keep_size: true
            })
        );
        assert_eq!(
            plan(1 | 2, 10, 20),
            Ok(Plan::PunchHole {
                offset: 10,
                len: 20
            })
        );
        assert_eq!(plan(2, 10, 20), Err(Errno::EINVAL));
        for mode in [4, 8, 0x10, 0x20, 0x40, 0x10 | 1, 0x80] {
            assert_eq!(plan(mode, 0, 1), Err(Errno::EOPNOTSUPP), "{mode:#x}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(plan(0, 0, 0), Err(Errno::EINVAL));
        assert_eq!(plan(0, u64::MAX, 1), Err(Errno::EFBIG));
        assert_eq!(plan(0, i64::MAX.unsigned_abs(), 1), Err(Errno::EFBIG));
        assert_eq!(
            plan(0, i64::MAX.unsigned_abs() - 1, 1),
            Ok(Plan::Allocate {
                end: i64::MAX.unsigned_abs(),
                keep_size: false
            })
        );
    }

    #[test]
    fn preallocation_requests() {
        assert_eq!(preallocation(4096, 4096, true), None);
        assert_eq!(preallocation(8192, 4096, true), None);
        assert_eq!(
            preallocation(4096, 10_000, true),
            Some(HostFstore {
                flags: 0x4 | 0x2,
                posmode: 3,
                offset: 0,
                length: 10_000 - 4096
            })
        );
        assert_eq!(preallocation(0, 1, false).map(|f| f.flags), Some(0x4));
    }

    #[test]
    fn punch_splits() {
        let p = |offset, len, size| punch_ranges(offset, len, size, 4096);
        // Aligned.
        assert_eq!(
            p(4096, 8192, 1 << 20),
            PunchRanges {
                head: 4096..4096,
                middle: 4096..12288,
                tail: 12288..12288
            }
        );
        // Unaligned both ends.
        assert_eq!(
            p(100, 10_000, 1 << 20),
            PunchRanges {
                head: 100..4096,
                middle: 4096..8192,
                tail: 8192..10_100
            }
        );
        // Inside one block: all head, nothing to punch.
        let inside = p(100, 200, 1 << 20);
        assert_eq!(inside.head, 100..300);
        assert!(inside.middle.is_empty() && inside.tail.is_empty());
        // Clipped at the end of file; beyond it, nothing.
        assert_eq!(
            p(0, 1 << 30, 5000),
            PunchRanges {
                head: 0..0,
                middle: 0..4096,
                tail: 4096..5000
            }
        );
        let beyond = p(6000, 100, 5000);
        assert!(beyond.head.is_empty() && beyond.middle.is_empty() && beyond.tail.is_empty());
        // Overflowing length saturates.
        assert_eq!(p(4096, u64::MAX, 8192).middle, 4096..8192);
        // Degenerate block size.
        assert_eq!(punch_ranges(3, 5, 100, 0).middle, 3..8);
    }

    /// The three parts always tile the clipped range, in order.
    #[test]
    fn punch_parts_tile_the_range() {
        for block in [1, 512, 4096, 16_384] {
            for offset in [0, 1, 511, 512, 4095, 4096, 5000] {
                for len in [1, 2, 511, 4096, 10_000] {
                    for size in [0, 4096, 9000, 1 << 20] {
                        let r = punch_ranges(offset, len, size, block);
                        let start = offset.min(size);
                        let end = (offset + len).min(size);
                        assert_eq!(r.head.start, start);
                        assert_eq!(r.head.end, r.middle.start);
                        assert_eq!(r.middle.end, r.tail.start);
                        assert_eq!(r.tail.end, end);
                        if !r.middle.is_empty() {
                            assert_eq!(r.middle.start % block, 0);
                            assert_eq!(r.middle.end % block, 0);
                        }
                    }
                }
            }
        }
    }
}
