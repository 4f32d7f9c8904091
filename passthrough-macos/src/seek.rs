//! `lseek(2)` whence values: the guest's (Linux numbering) to the host's (Darwin numbering).
//!
//! `SEEK_SET`, `SEEK_CUR` and `SEEK_END` are 0, 1 and 2 on both systems, but `SEEK_DATA` and
//! `SEEK_HOLE` are swapped: Linux has DATA 3 / HOLE 4, Darwin HOLE 3 / DATA 4 (passing the
//! number through exchanges them, a bug seen in another implementation). Values:
//! reference/macos.md §1.10 and §2.10.

use fuse_abi::Errno;

use crate::darwin_abi;

/// Linux whence values, as `fuse_lseek_in.whence` carries them.
pub mod linux {
    /// Offset from the start.
    pub const SEEK_SET: u32 = 0;
    /// Offset from the current position.
    pub const SEEK_CUR: u32 = 1;
    /// Offset from the end.
    pub const SEEK_END: u32 = 2;
    /// The next data at or after the offset.
    pub const SEEK_DATA: u32 = 3;
    /// The next hole at or after the offset.
    pub const SEEK_HOLE: u32 = 4;
}

/// Translates the guest's whence to the host's; an unknown value is `EINVAL`, as Linux's
/// `lseek` reports it.
pub const fn to_darwin(whence: u32) -> Result<i32, Errno> {
    match whence {
        linux::SEEK_SET => Ok(darwin_abi::SEEK_SET),
        linux::SEEK_CUR => Ok(darwin_abi::SEEK_CUR),
        linux::SEEK_END => Ok(darwin_abi::SEEK_END),
        linux::SEEK_DATA => Ok(darwin_abi::SEEK_DATA),
        linux::SEEK_HOLE => Ok(darwin_abi::SEEK_HOLE),
        _ => Err(Errno::EINVAL),
    }
}

/// Compile-time check of the Linux values against `libc` when built for Linux.
#[cfg(target_os = "linux")]
const _: () = {
    assert!(linux::SEEK_SET == libc::SEEK_SET.unsigned_abs());
    assert!(linux::SEEK_CUR == libc::SEEK_CUR.unsigned_abs());
    assert!(linux::SEEK_END == libc::SEEK_END.unsigned_abs());
    assert!(linux::SEEK_DATA == libc::SEEK_DATA.unsigned_abs());
    assert!(linux::SEEK_HOLE == libc::SEEK_HOLE.unsigned_abs());
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers as in reference/macos.md §2.10, independent of the constants.
    #[test]
    fn table() {
        let rows = [(0, 0), (1, 1), (2, 2), (3, 4), (4, 3)];
        for (guest, host) in rows {
            assert_eq!(to_darwin(guest), Ok(host), "whence {guest}");
        }
    }

    #[test]
    fn data_and_hole_are_swapped() {
        assert_eq!(to_darwin(linux::SEEK_DATA), Ok(darwin_abi::SEEK_DATA));
        assert_eq!(to_darwin(linux::SEEK_HOLE), Ok(darwin_abi::SEEK_HOLE));
        assert_ne!(darwin_abi::SEEK_DATA.unsigned_abs(), linux::SEEK_DATA);
    }

    #[test]
    fn unknown_is_einval() {
        for whence in [5, 6, 100, u32::MAX, 1 << 31] {
            assert_eq!(to_darwin(whence), Err(Errno::EINVAL), "whence {whence}");
        }
    }
}
