//! The Darwin (macOS) ABI values this crate relies on, as plain numbers.
//!
//! The table compiles on every OS, so that the translation code (Linux guest values to Darwin
//! host values and back) can be unit-tested on Linux, where the `libc` crate only knows Linux's
//! numbers. Each value has the type the `libc` crate gives it for Apple targets (`c_int` is
//! `i32`, `c_uint` `u32`, `c_short` `i16`, `c_long` `i64`, `mode_t` `u16`).
//!
//! When compiled for macOS, every value is checked at compile time against the `libc` crate's
//! Apple definition (value *and* type): `cargo xtask check-macos` type-checks this crate for
//! `aarch64-apple-darwin` and `x86_64-apple-darwin` on Linux, so a wrong number here fails CI
//! without a Mac. Values the `libc` crate lacks are kept apart, at the end, with their source.

/// Defines `pub const NAME: TYPE = VALUE;` for each entry and, on macOS, a compile-time
/// assertion that `NAME == libc::NAME`, so that no entry can escape the check.
macro_rules! darwin_consts {
    ($($(#[$meta:meta])* $name:ident: $ty:ty = $value:expr;)+) => {
        $(
            $(#[$meta])*
            pub const $name: $ty = $value;
        )+

        // Evaluated by `cargo check --target *-apple-darwin` (`cargo xtask check-macos`).
        #[cfg(target_os = "macos")]
        const _: () = {
            $(
                assert!(
                    $name == libc::$name,
                    concat!("darwin_abi::", stringify!($name), " differs from libc's value")
                );
            )+
        };
    };
}

// errno values (`<sys/errno.h>`). 1 to 34 are the same as Linux except 11 (EDEADLK; Linux's
// EAGAIN); from 35 up they differ.
darwin_consts! {
    /// Operation not permitted.
    EPERM: i32 = 1;
    /// No such file or directory.
    ENOENT: i32 = 2;
    /// No such process.
    ESRCH: i32 = 3;
    /// Interrupted system call.
    EINTR: i32 = 4;
    /// Input/output error.
    EIO: i32 = 5;
    /// Device not configured.
    ENXIO: i32 = 6;
    /// Argument list too long.
    E2BIG: i32 = 7;
    /// Exec format error.
    ENOEXEC: i32 = 8;
    /// Bad file descriptor.
    EBADF: i32 = 9;
    /// No child processes.
    ECHILD: i32 = 10;
    /// Resource deadlock avoided (Linux: 35).
    EDEADLK: i32 = 11;
    /// Cannot allocate memory.
    ENOMEM: i32 = 12;
    /// Permission denied.
    EACCES: i32 = 13;
    /// Bad address.
    EFAULT: i32 = 14;
    /// Block device required.
    ENOTBLK: i32 = 15;
    /// Device or resource busy.
    EBUSY: i32 = 16;
    /// File exists.
    EEXIST: i32 = 17;
    /// Cross-device link.
    EXDEV: i32 = 18;
    /// Operation not supported by device.
    ENODEV: i32 = 19;
    /// Not a directory.
    ENOTDIR: i32 = 20;
    /// Is a directory.
    EISDIR: i32 = 21;
    /// Invalid argument.
    EINVAL: i32 = 22;
    /// Too many open files in system.
    ENFILE: i32 = 23;
    /// Too many open files.
    EMFILE: i32 = 24;
    /// Inappropriate ioctl for device.
    ENOTTY: i32 = 25;
    /// Text file busy.
    ETXTBSY: i32 = 26;
    /// File too large.
    EFBIG: i32 = 27;
    /// No space left on device.
    ENOSPC: i32 = 28;
    /// Illegal seek.
    ESPIPE: i32 = 29;
    /// Read-only file system.
    EROFS: i32 = 30;
    /// Too many links.
    EMLINK: i32 = 31;
    /// Broken pipe.
    EPIPE: i32 = 32;
    /// Numerical argument out of domain.
    EDOM: i32 = 33;
    /// Result too large (also: xattr buffer too small, as on Linux).
    ERANGE: i32 = 34;
    /// Resource temporarily unavailable (Linux: 11).
    EAGAIN: i32 = 35;
    /// Operation would block: the same value as `EAGAIN`.
    EWOULDBLOCK: i32 = 35;
    /// Operation now in progress.
    EINPROGRESS: i32 = 36;
    /// Operation already in progress.
    EALREADY: i32 = 37;
    /// Socket operation on non-socket.
    ENOTSOCK: i32 = 38;
    /// Destination address required.
    EDESTADDRREQ: i32 = 39;
    /// Message too long.
    EMSGSIZE: i32 = 40;
    /// Protocol wrong type for socket.
    EPROTOTYPE: i32 = 41;
    /// Protocol not available.
    ENOPROTOOPT: i32 = 42;
    /// Protocol not supported.
    EPROTONOSUPPORT: i32 = 43;
    /// Socket type not supported.
    ESOCKTNOSUPPORT: i32 = 44;
    /// Operation not supported (distinct from `EOPNOTSUPP` on Darwin; both are 95 on Linux).
    ENOTSUP: i32 = 45;
    /// Protocol family not supported.
    EPFNOSUPPORT: i32 = 46;
    /// Address family not supported by protocol family.
    EAFNOSUPPORT: i32 = 47;
    /// Address already in use.
    EADDRINUSE: i32 = 48;
    /// Can't assign requested address.
    EADDRNOTAVAIL: i32 = 49;
    /// Network is down.
    ENETDOWN: i32 = 50;
    /// Network is unreachable.
    ENETUNREACH: i32 = 51;
    /// Network dropped connection on reset.
    ENETRESET: i32 = 52;
    /// Software caused connection abort.
    ECONNABORTED: i32 = 53;
    /// Connection reset by peer.
    ECONNRESET: i32 = 54;
    /// No buffer space available.
    ENOBUFS: i32 = 55;
    /// Socket is already connected.
    EISCONN: i32 = 56;
    /// Socket is not connected.
    ENOTCONN: i32 = 57;
    /// Can't send after socket shutdown.
    ESHUTDOWN: i32 = 58;
    /// Too many references: can't splice.
    ETOOMANYREFS: i32 = 59;
    /// Operation timed out.
    ETIMEDOUT: i32 = 60;
    /// Connection refused.
    ECONNREFUSED: i32 = 61;
    /// Too many levels of symbolic links (Linux: 40).
    ELOOP: i32 = 62;
    /// File name too long (Linux: 36).
    ENAMETOOLONG: i32 = 63;
    /// Host is down.
    EHOSTDOWN: i32 = 64;
    /// No route to host.
    EHOSTUNREACH: i32 = 65;
    /// Directory not empty (Linux: 39).
    ENOTEMPTY: i32 = 66;
    /// Too many processes (Darwin only).
    EPROCLIM: i32 = 67;
    /// Too many users.
    EUSERS: i32 = 68;
    /// Disc quota exceeded.
    EDQUOT: i32 = 69;
    /// Stale NFS file handle.
    ESTALE: i32 = 70;
    /// Too many levels of remote in path.
    EREMOTE: i32 = 71;
    /// RPC struct is bad (Darwin only).
    EBADRPC: i32 = 72;
    /// RPC version wrong (Darwin only).
    ERPCMISMATCH: i32 = 73;
    /// RPC prog. not avail (Darwin only).
    EPROGUNAVAIL: i32 = 74;
    /// Program version wrong (Darwin only).
    EPROGMISMATCH: i32 = 75;
    /// Bad procedure for program (Darwin only).
    EPROCUNAVAIL: i32 = 76;
    /// No locks available (Linux: 37).
    ENOLCK: i32 = 77;
    /// Function not implemented (Linux: 38).
    ENOSYS: i32 = 78;
    /// Inappropriate file type or format (Darwin only).
    EFTYPE: i32 = 79;
    /// Authentication error (Darwin only).
    EAUTH: i32 = 80;
    /// Need authenticator (Darwin only).
    ENEEDAUTH: i32 = 81;
    /// Device power is off (Darwin only).
    EPWROFF: i32 = 82;
    /// Device error (Darwin only).
    EDEVERR: i32 = 83;
    /// Value too large to be stored in data type (Linux: 75).
    EOVERFLOW: i32 = 84;
    /// Bad executable (Darwin only).
    EBADEXEC: i32 = 85;
    /// Bad CPU type in executable (Darwin only).
    EBADARCH: i32 = 86;
    /// Shared library version mismatch (Darwin only).
    ESHLIBVERS: i32 = 87;
    /// Malformed Mach-o file (Darwin only).
    EBADMACHO: i32 = 88;
    /// Operation canceled.
    ECANCELED: i32 = 89;
    /// Identifier removed.
    EIDRM: i32 = 90;
    /// No message of desired type.
    ENOMSG: i32 = 91;
    /// Illegal byte sequence.
    EILSEQ: i32 = 92;
    /// Attribute not found (Linux reports `ENODATA`, 61, instead).
    ENOATTR: i32 = 93;
    /// Bad message.
    EBADMSG: i32 = 94;
    /// Reserved.
    EMULTIHOP: i32 = 95;
    /// No message available on STREAM.
    ENODATA: i32 = 96;
    /// Reserved.
    ENOLINK: i32 = 97;
    /// No STREAM resources.
    ENOSR: i32 = 98;
    /// Not a STREAM.
    ENOSTR: i32 = 99;
    /// Protocol error.
    EPROTO: i32 = 100;
    /// STREAM ioctl timeout.
    ETIME: i32 = 101;
    /// Operation not supported on socket (Linux: 95, like `ENOTSUP`).
    EOPNOTSUPP: i32 = 102;
    /// No such policy registered (Darwin only).
    ENOPOLICY: i32 = 103;
    /// State not recoverable.
    ENOTRECOVERABLE: i32 = 104;
    /// Previous owner died.
    EOWNERDEAD: i32 = 105;
    /// Interface output queue is full (Darwin only).
    EQFULL: i32 = 106;
    /// Capabilities insufficient (Darwin only).
    ENOTCAPABLE: i32 = 107;
    /// The highest errno value.
    ELAST: i32 = 107;
}

// open(2) flags (`<sys/fcntl.h>`). Build them bit by bit from the guest's: never pass a Linux
// flag word through (Darwin's `O_CREAT` is Linux's `O_TRUNC`, its `O_TRUNC` Linux's `O_APPEND`).
darwin_consts! {
    /// Open for reading only.
    O_RDONLY: i32 = 0;
    /// Open for writing only.
    O_WRONLY: i32 = 1;
    /// Open for reading and writing.
    O_RDWR: i32 = 2;
    /// Mask of the access mode.
    O_ACCMODE: i32 = 3;
    /// Non-blocking.
    O_NONBLOCK: i32 = 0x4;
    /// Append on each write.
    O_APPEND: i32 = 0x8;
    /// Atomically obtain a shared lock.
    O_SHLOCK: i32 = 0x10;
    /// Atomically obtain an exclusive lock.
    O_EXLOCK: i32 = 0x20;
    /// Signal-driven I/O.
    O_ASYNC: i32 = 0x40;
    /// Synchronous writes (file data and metadata).
    O_SYNC: i32 = 0x80;
    /// Don't follow a symlink in the last component.
    O_NOFOLLOW: i32 = 0x100;
    /// Create if nonexistent.
    O_CREAT: i32 = 0x200;
    /// Truncate to zero length.
    O_TRUNC: i32 = 0x400;
    /// Error if already exists.
    O_EXCL: i32 = 0x800;
    /// Descriptor for event notifications only.
    O_EVTONLY: i32 = 0x8000;
    /// Don't assign a controlling terminal.
    O_NOCTTY: i32 = 0x2_0000;
    /// Fail unless a directory.
    O_DIRECTORY: i32 = 0x10_0000;
    /// Open the symlink itself (Linux's `O_PATH` has the same value).
    O_SYMLINK: i32 = 0x20_0000;
    /// Synchronous data writes.
    O_DSYNC: i32 = 0x40_0000;
    /// Close on exec.
    O_CLOEXEC: i32 = 0x100_0000;
    /// Don't follow a symlink in any component of the path.
    O_NOFOLLOW_ANY: i32 = 0x2000_0000;
    /// Open for execute only.
    O_EXEC: i32 = 0x4000_0000;
}

// *at(2) flags (`<sys/fcntl.h>`).
darwin_consts! {
    /// The "current directory" file descriptor (Linux: -100).
    AT_FDCWD: i32 = -2;
    /// Check access with the effective ids (`faccessat`).
    AT_EACCESS: i32 = 0x10;
    /// Act on a symlink itself (Linux: 0x100).
    AT_SYMLINK_NOFOLLOW: i32 = 0x20;
    /// Follow a symlink (`linkat`) (Linux: 0x400).
    AT_SYMLINK_FOLLOW: i32 = 0x40;
    /// `unlinkat` removes a directory (Linux: 0x200).
    AT_REMOVEDIR: i32 = 0x80;
}

// fcntl(2) commands and arguments (`<sys/fcntl.h>`).
darwin_consts! {
    /// Duplicate a file descriptor.
    F_DUPFD: i32 = 0;
    /// Duplicate with close-on-exec set.
    F_DUPFD_CLOEXEC: i32 = 67;
    /// Get the descriptor flags.
    F_GETFD: i32 = 1;
    /// Set the descriptor flags.
    F_SETFD: i32 = 2;
    /// Get the file status flags.
    F_GETFL: i32 = 3;
    /// Set the file status flags.
    F_SETFL: i32 = 4;
    /// The close-on-exec descriptor flag.
    FD_CLOEXEC: i32 = 1;
    /// Get a POSIX record lock (Linux: 5).
    F_GETLK: i32 = 7;
    /// Set a POSIX record lock (Linux: 6).
    F_SETLK: i32 = 8;
    /// Set a POSIX record lock, waiting (Linux: 7).
    F_SETLKW: i32 = 9;
    /// Shared (read) lock type (Linux: 0).
    F_RDLCK: i16 = 1;
    /// Unlock type (Linux: 2).
    F_UNLCK: i16 = 2;
    /// Exclusive (write) lock type (Linux: 1).
    F_WRLCK: i16 = 3;
    /// Set an open-file-description lock (undocumented; Linux: 37).
    F_OFD_SETLK: i32 = 90;
    /// Set an open-file-description lock, waiting (undocumented; Linux: 38).
    F_OFD_SETLKW: i32 = 91;
    /// Get an open-file-description lock (undocumented; Linux: 36).
    F_OFD_GETLK: i32 = 92;
    /// Preallocate storage (`fstore_t` argument).
    F_PREALLOCATE: i32 = 42;
    /// Turn data caching off/on (the stand-in for `O_DIRECT`).
    F_NOCACHE: i32 = 48;
    /// The path of the descriptor's file.
    F_GETPATH: i32 = 50;
    /// Flush the drive's cache to permanent storage.
    F_FULLFSYNC: i32 = 51;
    /// Write barrier: order I/O without flushing the drive's cache.
    F_BARRIERFSYNC: i32 = 85;
    /// Deallocate a range (`fpunchhole_t` argument).
    F_PUNCHHOLE: i32 = 99;
    /// `fstore_t.fst_flags`: allocate contiguous space.
    F_ALLOCATECONTIG: u32 = 0x2;
    /// `fstore_t.fst_flags`: allocate all requested space or none.
    F_ALLOCATEALL: u32 = 0x4;
    /// `fstore_t.fst_flags`: keep the allocation after close.
    F_ALLOCATEPERSIST: u32 = 0x8;
    /// `fstore_t.fst_posmode`: offsets relative to the physical end of file.
    F_PEOFPOSMODE: i32 = 3;
    /// `fstore_t.fst_posmode`: offsets relative to the volume.
    F_VOLPOSMODE: i32 = 4;
}

// flock(2) operations: the same values as Linux.
darwin_consts! {
    /// Shared lock.
    LOCK_SH: i32 = 1;
    /// Exclusive lock.
    LOCK_EX: i32 = 2;
    /// Don't block.
    LOCK_NB: i32 = 4;
    /// Unlock.
    LOCK_UN: i32 = 8;
}

// lseek(2) whence values: note `SEEK_HOLE`/`SEEK_DATA` are swapped relative to Linux (4/3).
darwin_consts! {
    /// Offset from the start.
    SEEK_SET: i32 = 0;
    /// Offset from the current position.
    SEEK_CUR: i32 = 1;
    /// Offset from the end.
    SEEK_END: i32 = 2;
    /// The next hole at or after the offset (Linux: 4).
    SEEK_HOLE: i32 = 3;
    /// The next data at or after the offset (Linux: 3).
    SEEK_DATA: i32 = 4;
}

// renamex_np(2)/renameatx_np(2) flags (Linux renameat2: NOREPLACE 1, EXCHANGE 2, WHITEOUT 4).
darwin_consts! {
    /// Atomically exchange the two names (Linux `RENAME_EXCHANGE`).
    RENAME_SWAP: u32 = 0x2;
    /// Fail if the target exists (Linux `RENAME_NOREPLACE`).
    RENAME_EXCL: u32 = 0x4;
}

// utimensat(2)/futimens(2) special `tv_nsec` values (Linux: (1 << 30) - 1 and (1 << 30) - 2).
darwin_consts! {
    /// Set the time to now.
    UTIME_NOW: i64 = -1;
    /// Leave the time unchanged.
    UTIME_OMIT: i64 = -2;
}

// getxattr(2) family `options` (Linux setxattr flags: CREATE 1, REPLACE 2).
darwin_consts! {
    /// Don't follow a symlink.
    XATTR_NOFOLLOW: i32 = 0x1;
    /// `setxattr`: fail if the attribute exists.
    XATTR_CREATE: i32 = 0x2;
    /// `setxattr`: fail if the attribute does not exist.
    XATTR_REPLACE: i32 = 0x4;
    /// Bypass authorization checks.
    XATTR_NOSECURITY: i32 = 0x8;
    /// Bypass the default extended attribute file (`._` AppleDouble files).
    XATTR_NODEFAULT: i32 = 0x10;
    /// Show HFS+ compression attributes.
    XATTR_SHOWCOMPRESSION: i32 = 0x20;
}

// File type and mode bits (`mode_t` is 16 bits on Darwin): the same values as Linux.
darwin_consts! {
    /// Mask of the file type.
    S_IFMT: u16 = 0o17_0000;
    /// Named pipe.
    S_IFIFO: u16 = 0o1_0000;
    /// Character device.
    S_IFCHR: u16 = 0o2_0000;
    /// Directory.
    S_IFDIR: u16 = 0o4_0000;
    /// Block device.
    S_IFBLK: u16 = 0o6_0000;
    /// Regular file.
    S_IFREG: u16 = 0o10_0000;
    /// Symbolic link.
    S_IFLNK: u16 = 0o12_0000;
    /// Socket.
    S_IFSOCK: u16 = 0o14_0000;
    /// Set user id on execution.
    S_ISUID: u16 = 0o4000;
    /// Set group id on execution.
    S_ISGID: u16 = 0o2000;
    /// Sticky bit.
    S_ISVTX: u16 = 0o1000;
}

// Directory entry types: the same values as Linux.
darwin_consts! {
    /// Unknown type.
    DT_UNKNOWN: u8 = 0;
    /// Named pipe.
    DT_FIFO: u8 = 1;
    /// Character device.
    DT_CHR: u8 = 2;
    /// Directory.
    DT_DIR: u8 = 4;
    /// Block device.
    DT_BLK: u8 = 6;
    /// Regular file.
    DT_REG: u8 = 8;
    /// Symbolic link.
    DT_LNK: u8 = 10;
    /// Socket.
    DT_SOCK: u8 = 12;
}

// statfs(2) `f_flags` and pathconf(2) names used for capability probing.
darwin_consts! {
    /// Read-only file system.
    MNT_RDONLY: i32 = 0x1;
    /// Set-id bits are ignored.
    MNT_NOSUID: i32 = 0x8;
    /// The file system supports volfs (`/.vol/<dev>/<ino>`) lookups.
    MNT_DOVOLFS: i32 = 0x8000;
    /// The file system does not support user extended attributes.
    MNT_NOUSERXATTR: i32 = 0x100_0000;
    /// `pathconf`: the longest file name.
    _PC_NAME_MAX: i32 = 4;
    /// `pathconf`: whether names are case-sensitive.
    _PC_CASE_SENSITIVE: i32 = 11;
    /// `pathconf`: whether the case of names is preserved.
    _PC_CASE_PRESERVING: i32 = 12;
    /// The longest path, including the terminating NUL.
    PATH_MAX: i32 = 1024;
}

// Values the `libc` crate (0.2.191) does not define, from xnu's headers; not checked.

/// Whiteout directory entry type (`<sys/dirent.h>`); Linux has none.
pub const DT_WHT: u8 = 14;
/// Whiteout file type (`<sys/stat.h>`); Linux has none.
pub const S_IFWHT: u16 = 0o16_0000;
/// The longest extended attribute name in bytes, without the NUL (`<sys/xattr.h>`); Linux
/// allows 255.
pub const XATTR_MAXNAMELEN: usize = 127;
