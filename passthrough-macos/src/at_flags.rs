//! `*at(2)` flags: Linux numbering to Darwin numbering.
//!
//! FUSE does not carry `AT_*` flags; they matter where the backend builds `*at` calls from
//! Linux-flavoured code or from tests written against Linux. Values (reference/macos.md §2.10):
//!
//! | flag | Linux | Darwin |
//! | --- | --- | --- |
//! | `AT_FDCWD` | −100 | −2 |
//! | `AT_SYMLINK_NOFOLLOW` | 0x100 | 0x20 |
//! | `AT_REMOVEDIR` | 0x200 | 0x80 |
//! | `AT_SYMLINK_FOLLOW` | 0x400 | 0x40 |
//! | `AT_NO_AUTOMOUNT` | 0x800 | — (no automounts through `/.vol`: dropped) |
//! | `AT_EMPTY_PATH` | 0x1000 | — (unsupported: use the `f*` call on the descriptor) |
//!
//! Linux's `AT_EACCESS` (`faccessat`) shares 0x200 with `AT_REMOVEDIR`; this table reads 0x200
//! as `AT_REMOVEDIR`; `faccessat` callers use [`darwin_abi::AT_EACCESS`] directly.

use fuse_abi::Errno;

use crate::darwin_abi;

/// Linux `AT_*` values.
pub mod linux {
    /// The "current directory" descriptor.
    pub const AT_FDCWD: i32 = -100;
    /// Act on a symlink itself.
    pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
    /// `unlinkat` removes a directory.
    pub const AT_REMOVEDIR: u32 = 0x200;
    /// `linkat` follows a symlink.
    pub const AT_SYMLINK_FOLLOW: u32 = 0x400;
    /// Don't trigger an automount on the last component.
    pub const AT_NO_AUTOMOUNT: u32 = 0x800;
    /// An empty path names the descriptor itself.
    pub const AT_EMPTY_PATH: u32 = 0x1000;
}

/// Translates Linux `*at` flags to Darwin's. `EOPNOTSUPP` for `AT_EMPTY_PATH` (Darwin has no
/// equivalent), `EINVAL` for any bit not in the table above.
pub const fn to_darwin(flags: u32) -> Result<i32, Errno> {
    if flags & linux::AT_EMPTY_PATH != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let known = linux::AT_SYMLINK_NOFOLLOW
        | linux::AT_REMOVEDIR
        | linux::AT_SYMLINK_FOLLOW
        | linux::AT_NO_AUTOMOUNT;
    if flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let mut darwin = 0;
    if flags & linux::AT_SYMLINK_NOFOLLOW != 0 {
        darwin |= darwin_abi::AT_SYMLINK_NOFOLLOW;
    }
    if flags & linux::AT_REMOVEDIR != 0 {
        darwin |= darwin_abi::AT_REMOVEDIR;
    }
    if flags & linux::AT_SYMLINK_FOLLOW != 0 {
        darwin |= darwin_abi::AT_SYMLINK_FOLLOW;
    }
    Ok(darwin)
}

/// Translates a Linux directory descriptor argument: `AT_FDCWD` becomes Darwin's, any other
/// value (a real descriptor) is kept.
pub const fn dirfd_to_darwin(fd: i32) -> i32 {
    if fd == linux::AT_FDCWD {
        darwin_abi::AT_FDCWD
    } else {
        fd
    }
}

/// Compile-time check of the Linux values against `libc` when built for Linux.
#[cfg(target_os = "linux")]
const _: () = {
    assert!(linux::AT_FDCWD == libc::AT_FDCWD);
    assert!(linux::AT_SYMLINK_NOFOLLOW == libc::AT_SYMLINK_NOFOLLOW.unsigned_abs());
    assert!(linux::AT_REMOVEDIR == libc::AT_REMOVEDIR.unsigned_abs());
    assert!(linux::AT_SYMLINK_FOLLOW == libc::AT_SYMLINK_FOLLOW.unsigned_abs());
    assert!(linux::AT_NO_AUTOMOUNT == libc::AT_NO_AUTOMOUNT.unsigned_abs());
    assert!(linux::AT_EMPTY_PATH == libc::AT_EMPTY_PATH.unsigned_abs());
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers as in reference/macos.md §2.10, independent of the constants.
    #[test]
    fn table() {
        let rows = [
            (0, 0),
            (0x100, 0x20),
            (0x200, 0x80),
            (0x400, 0x40),
            (0x800, 0),
            (0x100 | 0x200, 0x20 | 0x80),
            (0x400 | 0x800, 0x40),
        ];
        for (guest, host) in rows {
            assert_eq!(to_darwin(guest), Ok(host), "{guest:#x}");
        }
    }

    #[test]
    fn empty_path_is_unsupported() {
        assert_eq!(to_darwin(0x1000), Err(Errno::EOPNOTSUPP));
        assert_eq!(to_darwin(0x1000 | 0x100), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn unknown_bits_are_einval() {
        for bit in (0..32).map(|n| 1u32 << n) {
            let expected = match bit {
                0x100 | 0x200 | 0x400 | 0x800 => true,
                0x1000 => continue,
                _ => false,
            };
            assert_eq!(to_darwin(bit).is_ok(), expected, "{bit:#x}");
            if !expected {
                assert_eq!(to_darwin(bit), Err(Errno::EINVAL), "{bit:#x}");
            }
        }
    }

    #[test]
    fn dirfd() {
        assert_eq!(dirfd_to_darwin(-100), -2);
        assert_eq!(dirfd_to_darwin(3), 3);
        assert_eq!(dirfd_to_darwin(0), 0);
    }
}
