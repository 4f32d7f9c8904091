//! The seam between the backend's logic and the host: [`Host`], one method per host call the
//! backend makes, with Darwin semantics and Darwin error numbers.
//!
//! Two implementations:
//!
//! * `DarwinHost` (`cfg(target_os = "macos")`, in `host/darwin`): a thin `nix`/`libc` layer, one system call per
//!   method, no policy. Objects are named by volfs paths (`/.vol/<dev>/<ino>` and
//!   `/.vol/<dev>/<ino>/<name>`, see [`crate::volfs`]).
//! * `LinuxHost` (`cfg(target_os = "linux")`, in `host/linux`): test infrastructure that behaves like macOS
//!   where the backend could tell the difference: Darwin errno numbers, no `O_PATH` visible to
//!   the backend, identities reachable only while they have a name (as volfs), ownership never
//!   changed on the host, extended attributes on symlinks. It also lets the end-to-end tier serve
//!   a real guest with the macOS backend's logic (`virtiofs-device --backend macos-logic`).
//!
//! Rules every implementation keeps, so that the backend can rely on them:
//!
//! * Nothing follows a symlink: a [`Node::Child`] whose entry is a symlink is never resolved
//!   through it (`O_NOFOLLOW`, `XATTR_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `lstat`); opening one
//!   fails with `ELOOP`.
//! * Names are single components: the backend validates them (no `/`, NUL, `.` or `..`) before
//!   they reach a host method; implementations refuse such a name with `EINVAL` again.
//! * Errors are [`DarwinErrno`]; the backend turns them into guest errors with
//!   [`DarwinErrno::to_linux`] only.
//! * **Only regular files and directories are opened**, and no open blocks: [`Host::open`]
//!   answers `ENXIO` for a device node, FIFO or socket without ever opening it for I/O (a
//!   device's driver is never called, a FIFO never waited on), `ELOOP` for a symlink. The
//!   backend checks the same again around every open (`crate::open`), so a broken adapter
//!   cannot hand it a special file either.
//! * Descriptors an implementation keeps for the guest (the Linux adapter's identity
//!   registry) count against the backend's descriptor budget ([`Host::use_fd_budget`]).

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use fuse_server::limits::Budget;

use crate::errno::DarwinErrno;
use crate::fallocate::HostFstore;
use crate::lock::HostFlock;
use crate::stat::HostStat;
use crate::statfs::HostStatfs;
use crate::time::HostTimespec;

#[cfg(target_os = "macos")]
mod darwin;
#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "macos")]
pub use darwin::DarwinHost;
#[cfg(target_os = "linux")]
pub use linux::LinuxHost;

/// What a host call returns.
pub type HostResult<T> = Result<T, DarwinErrno>;

/// A host object's identity: the `(st_dev, st_ino)` pair that `/.vol/<dev>/<ino>` resolves while
/// the object has at least one name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId {
    /// `st_dev` (Darwin's `dev_t` is an `i32`).
    pub dev: i32,
    /// `st_ino`.
    pub ino: u64,
}

impl HostId {
    /// The identity of a stat result.
    pub const fn of(st: &HostStat) -> HostId {
        HostId {
            dev: st.dev,
            ino: st.ino,
        }
    }
}

/// The object a host call acts on.
#[derive(Clone, Copy, Debug)]
pub enum Node<'a> {
    /// The object itself, by identity (`/.vol/<dev>/<ino>`). Fails with `ENOENT` once it has no
    /// name left.
    Id(HostId),
    /// The entry `name` (one component) of the directory `dir` (`/.vol/<dev>/<ino>/<name>`),
    /// never followed if it is a symlink.
    Child(HostId, &'a [u8]),
    /// An open descriptor: a file the guest opened, or the descriptor kept for an inode that was
    /// unlinked or renamed over while the guest still uses it.
    Fd(BorrowedFd<'a>),
}

/// How FSYNC reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `fsync(2)`: the data reaches the drive, maybe only its cache.
    #[default]
    Fsync,
    /// `fcntl(F_FULLFSYNC)`: the drive flushes its cache too (slow, durable).
    Full,
}

/// One directory entry as the host reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDirent {
    /// `d_ino`.
    pub ino: u64,
    /// `d_type` (Darwin `DT_*`, numerically the same as Linux's).
    pub typ: u8,
    /// The name, without NUL; never `.` or `..`.
    pub name: Vec<u8>,
}

/// One directory entry, borrowed from its [`DirStream`] until the next read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirentRef<'a> {
    /// `d_ino`.
    pub ino: u64,
    /// `d_type` (Darwin `DT_*`).
    pub typ: u8,
    /// The name, without NUL; never `.` or `..`.
    pub name: &'a [u8],
}

impl DirentRef<'_> {
    /// An owned copy.
    pub fn to_dirent(&self) -> HostDirent {
        HostDirent {
            ino: self.ino,
            typ: self.typ,
            name: self.name.to_vec(),
        }
    }
}

/// An open host directory stream (`DIR *` on macOS, `getdents64` on Linux): entries are read
/// one at a time through a buffer of fixed size, so its memory does not grow with the
/// directory.
pub trait DirStream: Send + std::fmt::Debug {
    /// Back to the first entry (`rewinddir`); entries made or removed since then show.
    fn rewind(&mut self) -> HostResult<()>;

    /// The next entry (never `.` or `..`), `None` at the end.
    fn next_entry(&mut self) -> HostResult<Option<DirentRef<'_>>>;

    /// The bytes of memory the stream holds, bounded by a constant of the implementation.
    fn footprint(&self) -> usize;
}

/// The host calls the backend makes. Every method is one host operation with Darwin semantics;
/// policy (translation, ownership, emulation) stays in the backend.
pub trait Host: Send + Sync + std::fmt::Debug + 'static {
    /// A directory stream ([`Host::open_dir`]).
    type DirStream: DirStream;

    /// The identity and attributes of the shared directory at `path` (at start-up only; the only
    /// call that takes a host path).
    fn root(&self, path: &Path) -> HostResult<HostStat>;

    /// `lstat`: never follows a symlink.
    fn lstat(&self, node: Node<'_>) -> HostResult<HostStat>;

    /// `open` with Darwin `flags` (the implementation adds `O_NOFOLLOW` and `O_CLOEXEC`, and
    /// strips `O_EXLOCK`/`O_SHLOCK`); `mode` is used with `O_CREAT`. Not for [`Node::Fd`]
    /// (`EBADF`).
    ///
    /// The result is always a regular file or a directory, and the call never blocks:
    ///
    /// * an existing object is looked at before it is opened (`lstat`, or an `O_PATH`
    ///   descriptor on Linux): a symlink is `ELOOP`; with `O_DIRECTORY` anything but a
    ///   directory is `ENOTDIR`; a device node, FIFO or socket is `ENXIO` and is never
    ///   opened (no driver's `open` runs, no FIFO is waited on);
    /// * the open itself never waits (`O_NONBLOCK` while opening where the object could be
    ///   swapped in between), and what it yields is checked again (`fstat`: a regular file or
    ///   a directory, the object that was looked at), else closed and `ENXIO`;
    /// * `O_CREAT` creates a regular file: with `O_EXCL` an existing name is `EEXIST` and is
    ///   not opened; without it, an existing name is opened under the rules above.
    fn open(&self, node: Node<'_>, flags: i32, mode: u16) -> HostResult<OwnedFd>;

    /// `mkdir` of `name` in `dir` with the host mode `mode`.
    fn mkdir(&self, dir: HostId, name: &[u8], mode: u16) -> HostResult<()>;

    /// `symlink`: creates `name` in `dir` pointing to `target` (stored verbatim).
    fn symlink(&self, target: &CStr, dir: HostId, name: &[u8]) -> HostResult<()>;

    /// `readlink`/`freadlink` into `buf`; returns the length (not NUL-terminated). A target
    /// longer than `buf` is truncated, as `readlink(2)` does.
    fn readlink(&self, node: Node<'_>, buf: &mut [u8]) -> HostResult<usize>;

    /// `unlink` of `name` in `dir` (not a directory).
    fn unlink(&self, dir: HostId, name: &[u8]) -> HostResult<()>;

    /// `rmdir` of `name` in `dir`.
    fn rmdir(&self, dir: HostId, name: &[u8]) -> HostResult<()>;

    /// `renamex_np` with Darwin `flags` (`RENAME_EXCL`, `RENAME_SWAP`; 0 is a plain rename).
    fn rename(
        &self,
        olddir: HostId,
        oldname: &[u8],
        newdir: HostId,
        newname: &[u8],
        flags: u32,
    ) -> HostResult<()>;

    /// `linkat` without `AT_SYMLINK_FOLLOW`: a new name `newname` in `newdir` for the object
    /// `node` (a symlink is linked itself, never its target).
    fn link(&self, node: HostId, newdir: HostId, newname: &[u8]) -> HostResult<()>;

    /// `chmod` of the host mode (never following a symlink).
    fn chmod(&self, node: Node<'_>, mode: u16) -> HostResult<()>;

    /// `utimensat(AT_SYMLINK_NOFOLLOW)`/`futimens`: `[atime, mtime]`, each a time, `UTIME_NOW`
    /// or `UTIME_OMIT` (Darwin values).
    fn utimens(&self, node: Node<'_>, times: &[HostTimespec; 2]) -> HostResult<()>;

    /// `ftruncate`.
    fn truncate(&self, fd: BorrowedFd<'_>, len: u64) -> HostResult<()>;

    /// `getxattr`/`fgetxattr` (position 0). An empty `buf` asks for the size. `options` are
    /// Darwin's (`XATTR_NOFOLLOW`; the implementation drops it for a descriptor, where xnu refuses
    /// it). A missing attribute is `ENOATTR`.
    fn getxattr(
        &self,
        node: Node<'_>,
        name: &CStr,
        buf: &mut [u8],
        options: i32,
    ) -> HostResult<usize>;

    /// `setxattr`/`fsetxattr` (position 0) with Darwin `options` (`XATTR_CREATE`,
    /// `XATTR_REPLACE`, `XATTR_NOFOLLOW`).
    fn setxattr(&self, node: Node<'_>, name: &CStr, value: &[u8], options: i32) -> HostResult<()>;

    /// `listxattr`/`flistxattr`: NUL-terminated names into `buf`; an empty `buf` asks for the
    /// size; `ERANGE` when `buf` is too small.
    fn listxattr(&self, node: Node<'_>, buf: &mut [u8], options: i32) -> HostResult<usize>;

    /// `removexattr`/`fremovexattr`.
    fn removexattr(&self, node: Node<'_>, name: &CStr, options: i32) -> HostResult<()>;

    /// `pread` into `buf` (the backend's own copies: `copy_file_range`, never guest data, which
    /// goes through the zero-copy traits).
    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> HostResult<usize>;

    /// `pwrite` from `buf`.
    fn pwrite(&self, fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> HostResult<usize>;

    /// `lseek` with a Darwin `whence` (`SEEK_HOLE` is 3, `SEEK_DATA` 4 on Darwin).
    fn lseek(&self, fd: BorrowedFd<'_>, offset: i64, whence: i32) -> HostResult<u64>;

    /// `fsync` or `fcntl(F_FULLFSYNC)`.
    fn fsync(&self, fd: BorrowedFd<'_>, mode: SyncMode) -> HostResult<()>;

    /// `fcntl(F_PREALLOCATE)`.
    fn preallocate(&self, fd: BorrowedFd<'_>, store: &HostFstore) -> HostResult<()>;

    /// `fcntl(F_PUNCHHOLE)` over `offset .. offset + len` (block-aligned).
    fn punch_hole(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> HostResult<()>;

    /// `fcntl(F_NOCACHE)`: the guest asked for `O_DIRECT`.
    fn set_nocache(&self, fd: BorrowedFd<'_>) -> HostResult<()>;

    /// A lock `fcntl` with the Darwin command `cmd` (`F_GETLK`, `F_SETLK`, `F_SETLKW` or their
    /// `F_OFD_*` forms); `F_GETLK` writes the conflicting lock (or `F_UNLCK`) back.
    fn lock(&self, fd: BorrowedFd<'_>, cmd: i32, lock: &mut HostFlock) -> HostResult<()>;

    /// `flock` with a Darwin operation (`LOCK_SH`/`LOCK_EX`/`LOCK_UN`, maybe `LOCK_NB`).
    fn flock(&self, fd: BorrowedFd<'_>, operation: i32) -> HostResult<()>;

    /// `statfs`/`fstatfs` (64-bit counts, never the truncating `statvfs`).
    fn statfs(&self, node: Node<'_>) -> HostResult<HostStatfs>;

    /// `pathconf(_PC_NAME_MAX)`.
    fn name_max(&self, node: Node<'_>) -> HostResult<u32>;

    /// `pathconf(_PC_CASE_SENSITIVE)`: whether names in the directory `dir` are compared
    /// case-sensitively.
    fn case_sensitive(&self, dir: HostId) -> HostResult<bool>;

    /// The name under which `dir` stores the entry that `name` resolves to (on a
    /// case-insensitive volume it may differ from `name` in case or Unicode normalisation), into
    /// `buf`; returns its length. `getattrlist(ATTR_CMN_NAME)` on macOS.
    fn stored_name(&self, dir: HostId, name: &[u8], buf: &mut [u8]) -> HostResult<usize>;

    /// A directory stream of its own over the directory open at `fd` (a duplicate descriptor,
    /// one more against the budget; `fd` is not changed), positioned at its first entry.
    fn open_dir(&self, fd: BorrowedFd<'_>) -> HostResult<Self::DirStream>;

    /// `getrlimit(RLIMIT_NOFILE)`: the process's soft descriptor limit (`None` if unknown or
    /// unlimited), from which the backend's default descriptor budget is derived.
    fn nofile_limit(&self) -> Option<u64> {
        None
    }

    /// From now on, count every descriptor the implementation keeps on the guest's behalf
    /// (not those it opens for one call) against `budget`; past it, the call that would keep
    /// one more fails with `ENFILE`. Nothing to do on macOS, where volfs needs no state.
    fn use_fd_budget(&self, budget: &Arc<Budget>) {
        let _ = budget;
    }

    /// The host error behind an `io::Error` from the zero-copy data path or from `std` (its raw
    /// OS error, which is in the host's numbering), or `EIO` if it has none.
    fn io_errno(&self, err: &io::Error) -> DarwinErrno;

    /// The backend no longer refers to `id` (its last guest reference was forgotten). Nothing to
    /// do on macOS, where volfs needs no state; the Linux adapter drops what it kept to resolve
    /// the identity.
    fn forget(&self, id: HostId) {
        let _ = id;
    }
}
