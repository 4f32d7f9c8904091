//! Guest open flags (Linux numbering, which depends on the guest's architecture) to host open
//! flags (Darwin numbering).
//!
//! The Darwin flag word is built bit by bit from a whitelist; the Linux word is never passed
//! through, because the same bits mean different things (Linux `O_TRUNC` 0x200 is Darwin's
//! `O_CREAT`, Linux `O_APPEND` 0x400 is Darwin's `O_TRUNC`, Linux `O_PATH` is Darwin's
//! `O_SYMLINK`). Linux bits with no Darwin meaning are dropped: `O_LARGEFILE` (set on every
//! 64-bit open), `O_NOATIME`, `O_ASYNC` (signal-driven I/O would signal the server, not the
//! guest), the guest's `O_CLOEXEC` (the server always sets its own), and anything unknown (e.g.
//! the kernel-internal `__FMODE_EXEC`). `O_DIRECT` becomes a request for `F_NOCACHE`.
//!
//! Values: reference/macos.md §2.2; the Linux values of the architecture this is compiled for
//! are checked at compile time against the `libc` crate.

use fuse_abi::Errno;

use crate::darwin_abi;

/// The guest's CPU architecture. Four Linux open flags have other values on aarch64 than on
/// x86_64: `O_DIRECT`, `O_LARGEFILE`, `O_DIRECTORY` and `O_NOFOLLOW`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuestArch {
    /// x86_64 (the generic Linux values).
    X86_64,
    /// aarch64 (arm64's own `asm/fcntl.h`).
    Aarch64,
}

impl GuestArch {
    /// Linux `O_DIRECT` for this architecture.
    pub const fn o_direct(self) -> u32 {
        match self {
            GuestArch::X86_64 => 0x4000,
            GuestArch::Aarch64 => 0x1_0000,
        }
    }

    /// Linux `O_LARGEFILE` (the kernel's value; glibc defines it as 0 on 64-bit).
    pub const fn o_largefile(self) -> u32 {
        match self {
            GuestArch::X86_64 => 0x8000,
            GuestArch::Aarch64 => 0x2_0000,
        }
    }

    /// Linux `O_DIRECTORY` for this architecture.
    pub const fn o_directory(self) -> u32 {
        match self {
            GuestArch::X86_64 => 0x1_0000,
            GuestArch::Aarch64 => 0x4000,
        }
    }

    /// Linux `O_NOFOLLOW` for this architecture.
    pub const fn o_nofollow(self) -> u32 {
        match self {
            GuestArch::X86_64 => 0x2_0000,
            GuestArch::Aarch64 => 0x8000,
        }
    }
}

/// Linux open flags that have the same value on x86_64 and aarch64.
pub mod linux {
    /// Mask of the access mode.
    pub const O_ACCMODE: u32 = 3;
    /// Open for reading only.
    pub const O_RDONLY: u32 = 0;
    /// Open for writing only.
    pub const O_WRONLY: u32 = 1;
    /// Open for reading and writing.
    pub const O_RDWR: u32 = 2;
    /// Create if nonexistent (FUSE sends it only in `FUSE_CREATE`).
    pub const O_CREAT: u32 = 0x40;
    /// Error if it exists.
    pub const O_EXCL: u32 = 0x80;
    /// Don't assign a controlling terminal (the kernel strips it before FUSE).
    pub const O_NOCTTY: u32 = 0x100;
    /// Truncate to zero length.
    pub const O_TRUNC: u32 = 0x200;
    /// Append on each write.
    pub const O_APPEND: u32 = 0x400;
    /// Non-blocking.
    pub const O_NONBLOCK: u32 = 0x800;
    /// Synchronous data writes.
    pub const O_DSYNC: u32 = 0x1000;
    /// Signal-driven I/O (`FASYNC`).
    pub const O_ASYNC: u32 = 0x2000;
    /// Don't update the access time.
    pub const O_NOATIME: u32 = 0x4_0000;
    /// Close on exec.
    pub const O_CLOEXEC: u32 = 0x8_0000;
    /// The bit `O_SYNC` adds to `O_DSYNC` (`__O_SYNC`).
    pub const O_SYNC_BIT: u32 = 0x10_0000;
    /// Synchronous writes of data and metadata: `__O_SYNC | O_DSYNC`.
    pub const O_SYNC: u32 = O_SYNC_BIT | O_DSYNC;
    /// A path-only descriptor: the guest's VFS handles it, FUSE never sees it.
    pub const O_PATH: u32 = 0x20_0000;
    /// The bit of `O_TMPFILE` besides `O_DIRECTORY` (`__O_TMPFILE`).
    pub const O_TMPFILE_BIT: u32 = 0x40_0000;
}

/// How to open a file on the host for a guest's open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostOpen {
    /// Darwin `open(2)` flags; always include `O_CLOEXEC`.
    pub flags: i32,
    /// The guest asked for `O_DIRECT`: set `F_NOCACHE` on the new descriptor.
    pub nocache: bool,
}

/// Translates the guest's open flags (`fuse_open_in.flags`, `fuse_create_in.flags`) for a guest
/// of architecture `arch`.
///
/// Errors: `EINVAL` for the access mode 3 and for `O_PATH` (neither reaches a file system from a
/// Linux guest), `EOPNOTSUPP` for `O_TMPFILE` (not negotiated).
pub fn to_darwin(guest: u32, arch: GuestArch) -> Result<HostOpen, Errno> {
    let access = match guest & linux::O_ACCMODE {
        linux::O_RDONLY => darwin_abi::O_RDONLY,
        linux::O_WRONLY => darwin_abi::O_WRONLY,
        linux::O_RDWR => darwin_abi::O_RDWR,
        _ => return Err(Errno::EINVAL),
    };
    if guest & linux::O_TMPFILE_BIT != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if guest & linux::O_PATH != 0 {
        return Err(Errno::EINVAL);
    }
    let mut flags = access | darwin_abi::O_CLOEXEC;
    let direct: [(u32, i32); 8] = [
        (linux::O_CREAT, darwin_abi::O_CREAT),
        (linux::O_EXCL, darwin_abi::O_EXCL),
        (linux::O_NOCTTY, darwin_abi::O_NOCTTY),
        (linux::O_TRUNC, darwin_abi::O_TRUNC),
        (linux::O_APPEND, darwin_abi::O_APPEND),
        (linux::O_NONBLOCK, darwin_abi::O_NONBLOCK),
        (arch.o_directory(), darwin_abi::O_DIRECTORY),
        (arch.o_nofollow(), darwin_abi::O_NOFOLLOW),
    ];
    for (linux_bit, darwin_bit) in direct {
        if guest & linux_bit != 0 {
            flags |= darwin_bit;
        }
    }
    // Linux O_SYNC is O_DSYNC plus a bit of its own; Darwin's O_SYNC covers data and metadata.
    if guest & linux::O_SYNC_BIT != 0 {
        flags |= darwin_abi::O_SYNC;
    } else if guest & linux::O_DSYNC != 0 {
        flags |= darwin_abi::O_DSYNC;
    }
    Ok(HostOpen {
        flags,
        nocache: guest & arch.o_direct() != 0,
    })
}

/// Compile-time check of the Linux values of the architecture being built against `libc`.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
const _: () = {
    const ARCH: GuestArch = if cfg!(target_arch = "aarch64") {
        GuestArch::Aarch64
    } else {
        GuestArch::X86_64
    };
    /// `libc`'s (non-negative) `c_int` flag as the wire's `u32`.
    const fn wire(flag: i32) -> u32 {
        flag.unsigned_abs()
    }
    assert!(ARCH.o_direct() == wire(libc::O_DIRECT));
    assert!(ARCH.o_directory() == wire(libc::O_DIRECTORY));
    assert!(ARCH.o_nofollow() == wire(libc::O_NOFOLLOW));
    assert!(linux::O_ACCMODE == wire(libc::O_ACCMODE));
    assert!(linux::O_WRONLY == wire(libc::O_WRONLY));
    assert!(linux::O_RDWR == wire(libc::O_RDWR));
    assert!(linux::O_CREAT == wire(libc::O_CREAT));
    assert!(linux::O_EXCL == wire(libc::O_EXCL));
    assert!(linux::O_NOCTTY == wire(libc::O_NOCTTY));
    assert!(linux::O_TRUNC == wire(libc::O_TRUNC));
    assert!(linux::O_APPEND == wire(libc::O_APPEND));
    assert!(linux::O_NONBLOCK == wire(libc::O_NONBLOCK));
    assert!(linux::O_DSYNC == wire(libc::O_DSYNC));
    assert!(linux::O_ASYNC == wire(libc::O_ASYNC));
    assert!(linux::O_NOATIME == wire(libc::O_NOATIME));
    assert!(linux::O_CLOEXEC == wire(libc::O_CLOEXEC));
    assert!(linux::O_SYNC == wire(libc::O_SYNC));
    assert!(linux::O_PATH == wire(libc::O_PATH));
    assert!(linux::O_TMPFILE_BIT | ARCH.o_directory() == wire(libc::O_TMPFILE));
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::darwin_abi as d;

    const ARCHES: [GuestArch; 2] = [GuestArch::X86_64, GuestArch::Aarch64];

    fn darwin(guest: u32, arch: GuestArch) -> i32 {
        to_darwin(guest, arch).expect("valid flags").flags
    }

    #[test]
    fn access_modes() {
        for arch in ARCHES {
            assert_eq!(darwin(0, arch), d::O_RDONLY | d::O_CLOEXEC);
            assert_eq!(darwin(1, arch), d::O_WRONLY | d::O_CLOEXEC);
            assert_eq!(darwin(2, arch), d::O_RDWR | d::O_CLOEXEC);
            assert_eq!(to_darwin(3, arch), Err(Errno::EINVAL));
        }
    }

    /// One Linux flag at a time, per architecture: (guest bit, Darwin bits besides O_CLOEXEC,
    /// F_NOCACHE).
    #[test]
    fn single_flags_per_arch() {
        let common: [(u32, i32, bool); 12] = [
            (0x40, d::O_CREAT, false),
            (0x80, d::O_EXCL, false),
            (0x100, d::O_NOCTTY, false),
            (0x200, d::O_TRUNC, false),
            (0x400, d::O_APPEND, false),
            (0x800, d::O_NONBLOCK, false),
            (0x1000, d::O_DSYNC, false),
            (0x10_1000, d::O_SYNC, false),
            (0x2000, 0, false),   // O_ASYNC: dropped
            (0x4_0000, 0, false), // O_NOATIME: dropped
            (0x8_0000, 0, false), // O_CLOEXEC: the server's own is always set
            (0x20, 0, false),     // __FMODE_EXEC: unknown, dropped
        ];
        let x86_64: [(u32, i32, bool); 4] = [
            (0x4000, 0, true),  // O_DIRECT
            (0x8000, 0, false), // O_LARGEFILE
            (0x1_0000, d::O_DIRECTORY, false),
            (0x2_0000, d::O_NOFOLLOW, false),
        ];
        let aarch64: [(u32, i32, bool); 4] = [
            (0x4000, d::O_DIRECTORY, false),
            (0x8000, d::O_NOFOLLOW, false),
            (0x1_0000, 0, true),  // O_DIRECT
            (0x2_0000, 0, false), // O_LARGEFILE
        ];
        for (arch, specific) in [(GuestArch::X86_64, x86_64), (GuestArch::Aarch64, aarch64)] {
            for (guest, expected, nocache) in common.iter().chain(specific.iter()) {
                assert_eq!(
                    to_darwin(*guest, arch),
                    Ok(HostOpen {
                        flags: expected | d::O_CLOEXEC,
                        nocache: *nocache
                    }),
                    "{arch:?} guest flag {guest:#x}"
                );
            }
        }
    }

    #[test]
    fn unsupported_opens() {
        for arch in ARCHES {
            assert_eq!(to_darwin(0x20_0000, arch), Err(Errno::EINVAL), "O_PATH");
            let tmpfile = linux::O_TMPFILE_BIT | arch.o_directory() | linux::O_RDWR;
            assert_eq!(
                to_darwin(tmpfile, arch),
                Err(Errno::EOPNOTSUPP),
                "O_TMPFILE"
            );
        }
    }

    #[test]
    fn typical_opens() {
        // open("f", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) from a 64-bit guest.
        let x86 = 0x1 | 0x40 | 0x200 | 0x8_0000 | 0x8000;
        assert_eq!(
            darwin(x86, GuestArch::X86_64),
            d::O_WRONLY | d::O_CREAT | d::O_TRUNC | d::O_CLOEXEC
        );
        let arm = 0x1 | 0x40 | 0x200 | 0x8_0000 | 0x2_0000;
        assert_eq!(
            darwin(arm, GuestArch::Aarch64),
            d::O_WRONLY | d::O_CREAT | d::O_TRUNC | d::O_CLOEXEC
        );
        // opendir: O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_LARGEFILE.
        assert_eq!(
            darwin(0x1_0000 | 0x800 | 0x8000, GuestArch::X86_64),
            d::O_RDONLY | d::O_DIRECTORY | d::O_NONBLOCK | d::O_CLOEXEC
        );
        assert_eq!(
            darwin(0x4000 | 0x800 | 0x2_0000, GuestArch::Aarch64),
            d::O_RDONLY | d::O_DIRECTORY | d::O_NONBLOCK | d::O_CLOEXEC
        );
        // Append, not truncate; truncate, not create.
        assert_eq!(
            darwin(0x400 | 0x1, GuestArch::X86_64),
            d::O_WRONLY | d::O_APPEND | d::O_CLOEXEC
        );
        assert_eq!(
            darwin(0x200 | 0x1, GuestArch::X86_64),
            d::O_WRONLY | d::O_TRUNC | d::O_CLOEXEC
        );
    }

    /// No combination of guest bits turns into a Darwin-only flag (`O_SYMLINK`, `O_EXLOCK`,
    /// `O_EXEC`...), and translation is bitwise: flags(a | b) == flags(a) | flags(b).
    #[test]
    fn every_pair_of_bits() {
        let darwin_only = d::O_SHLOCK
            | d::O_EXLOCK
            | d::O_ASYNC
            | d::O_EVTONLY
            | d::O_SYMLINK
            | d::O_NOFOLLOW_ANY
            | d::O_EXEC;
        let refused = linux::O_PATH | linux::O_TMPFILE_BIT;
        for arch in ARCHES {
            let bits = (2..32).map(|n| 1u32 << n).filter(|bit| bit & refused == 0);
            for a in bits.clone() {
                for b in bits.clone() {
                    let both = to_darwin(a | b, arch).expect("valid flags");
                    assert_eq!(both.flags & darwin_only, 0, "{arch:?} {a:#x}|{b:#x}");
                    let one = to_darwin(a, arch).expect("valid flags");
                    let other = to_darwin(b, arch).expect("valid flags");
                    let union = one.flags | other.flags;
                    // The one non-bitwise rule: O_SYNC supersedes O_DSYNC.
                    let union = if union & d::O_SYNC != 0 {
                        union & !d::O_DSYNC
                    } else {
                        union
                    };
                    assert_eq!(both.flags, union, "{arch:?} {a:#x}|{b:#x}");
                    assert_eq!(both.nocache, one.nocache || other.nocache);
                }
            }
        }
    }
}
