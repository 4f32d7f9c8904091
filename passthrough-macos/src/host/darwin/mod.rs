//! [`DarwinHost`]: the [`Host`] on macOS, a thin layer over the system calls in [`sys`].
//!
//! Objects are named by volfs paths ([`crate::volfs`], built on the stack: no allocation per
//! call): [`Node::Id`] is `/.vol/<dev>/<ino>`, [`Node::Child`] is `/.vol/<dev>/<ino>/<name>`
//! (the name checked again: one component, no NUL), [`Node::Fd`] uses the `f*` form of the
//! call on the descriptor. No path is followed
//! through a symlink: `lstat`, `open` with `O_NOFOLLOW` (and `O_NOFOLLOW_ANY`), `XATTR_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW` for `utimensat`/`fchmodat`, `linkat` without `AT_SYMLINK_FOLLOW`,
//! `renamex_np`, `getattrlist` with `FSOPT_NOFOLLOW`. The calls that always follow a final
//! symlink (`statfs`, `pathconf`) are never given one by path (see [`DarwinHost::statfs`]).
//!
//! Where the kernel itself differs from the [`Host`] contract, this layer does the nearest
//! correct thing, documented on the method:
//!
//! * xnu refuses `XATTR_NODEFAULT` and `XATTR_NOSECURITY` from user space: every `*xattr`
//!   system call returns `EINVAL` when `options` holds either (they are kernel-internal; see
//!   `getxattr()` and its siblings in xnu's `bsd/vfs/vfs_syscalls.c`), and the `f*` forms also
//!   refuse `XATTR_NOFOLLOW`. Both are dropped here, so the `AppleDouble` (`._name`) fallback on
//!   volumes without native extended attributes cannot be turned off from user space; the
//!   backend can only avoid those volumes (e.g. by their `statfs` flags).
//! * `pathconf` and `statfs` follow a final symlink; see above.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod sys;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use fuse_abi::mode;
use libc::{c_int, c_long};

use super::{DirStream, DirentRef, Host, HostId, HostResult, Node, SyncMode};
use crate::errno::DarwinErrno;
use crate::fallocate::HostFstore;
use crate::lock::HostFlock;
use crate::stat::HostStat;
use crate::statfs::HostStatfs;
use crate::time::HostTimespec;
use crate::volfs::{VolPath, child_path, inode_path};

/// Open flags this layer never passes: `O_EXLOCK`/`O_SHLOCK` would take a `flock` at open
/// time, on the host, that no guest operation releases.
const OPEN_STRIPPED: c_int = libc::O_EXLOCK | libc::O_SHLOCK;

/// Open flags this layer always adds: never follow a final symlink, never leak a descriptor
/// into a child process.
const OPEN_ADDED: c_int = libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// `*xattr` options xnu accepts only from inside the kernel (`EINVAL` from user space).
const XATTR_KERNEL_ONLY: c_int = libc::XATTR_NODEFAULT | libc::XATTR_NOSECURITY;

/// Room for the `getattrlist(ATTR_CMN_NAME)` reply: the `u32` length, the `attrreference_t`
/// (8 bytes) and the longest name Darwin returns (1023 bytes, `struct dirent`'s `d_name` less
/// the NUL) with its NUL, rounded up to 8.
const NAME_REPLY_LEN: usize = 4 + 8 + 1024 + 4;

/// The host layer on macOS: one system call per [`Host`] method, over volfs paths.
#[derive(Debug, Default)]
pub struct DarwinHost {
    /// Set once the kernel refused `O_NOFOLLOW_ANY` (`EINVAL` where the same open without it
    /// succeeds: macOS before 11): later opens pass `O_NOFOLLOW` alone.
    nofollow_any_refused: AtomicBool,
}

impl DarwinHost {
    /// The host layer. It keeps no state but whether the kernel knows `O_NOFOLLOW_ANY`.
    #[must_use]
    pub const fn new() -> DarwinHost {
        DarwinHost {
            nofollow_any_refused: AtomicBool::new(false),
        }
    }

    /// `open(path)` with `O_NOFOLLOW_ANY` added (no symlink in any component), unless the
    /// kernel refused it before; if it refuses it now (`EINVAL`) and the open without it works,
    /// that is remembered. `flags` already hold the rest.
    fn open_path(&self, path: &CStr, flags: c_int, mode: u16) -> HostResult<OwnedFd> {
        if self.nofollow_any_refused.load(Ordering::Relaxed) {
            return sys::open(path, flags, mode);
        }
        match sys::open(path, flags | libc::O_NOFOLLOW_ANY, mode) {
            Err(e) if e == DarwinErrno::EINVAL => {
                let fd = sys::open(path, flags, mode)?;
                log::debug!("the kernel refuses O_NOFOLLOW_ANY: opening with O_NOFOLLOW only");
                self.nofollow_any_refused.store(true, Ordering::Relaxed);
                Ok(fd)
            }
            other => other,
        }
    }
}

/// Whether `st` is a regular file or a directory, the only objects ever opened for I/O.
const fn is_openable(st: &HostStat) -> bool {
    matches!(st.file_type(), mode::S_IFREG | mode::S_IFDIR)
}

/// What a volume-wide query is made on: a path that is not a symlink, or a descriptor.
// A value for one call, on the stack: boxing the path would be the allocation it avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Volume<'a> {
    Path(VolPath),
    Fd(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl Volume<'_> {
    fn statfs(&self) -> HostResult<libc::statfs> {
        match self {
            Volume::Path(path) => sys::statfs(path),
            Volume::Fd(fd) => sys::fstatfs(*fd),
            Volume::Owned(fd) => sys::fstatfs(fd.as_fd()),
        }
    }

    fn pathconf(&self, name: c_int) -> HostResult<Option<c_long>> {
        match self {
            Volume::Path(path) => sys::pathconf(path, name),
            Volume::Fd(fd) => sys::fpathconf(*fd, name),
            Volume::Owned(fd) => sys::fpathconf(fd.as_fd(), name),
        }
    }
}

/// What a volume-wide query (`statfs`, `pathconf`) is made on for `node`. Those calls follow
/// a final symlink, so a symlink is never given to them by path: a [`Node::Child`] symlink
/// is answered for its directory (a symlink is on its directory's volume: it cannot be a
/// mount point), a [`Node::Id`] symlink through a descriptor of the link itself
/// (`O_SYMLINK`; an identity cannot be swapped for another object).
///
/// For a [`Node::Child`] there is a window between the `lstat` and the query in which the
/// entry could be replaced by a symlink; the query then reports the volume the link points
/// to (statistics only: nothing is opened or changed).
fn volume(node: Node<'_>) -> HostResult<Volume<'_>> {
    match node {
        Node::Fd(fd) => Ok(Volume::Fd(fd)),
        Node::Id(id) => {
            let path = inode_path(id.dev, id.ino);
            if is_symlink(&sys::lstat(&path)?) {
                let flags = libc::O_RDONLY | libc::O_SYMLINK | libc::O_CLOEXEC;
                Ok(Volume::Owned(sys::open(&path, flags, 0)?))
            } else {
                Ok(Volume::Path(path))
            }
        }
        Node::Child(dir, name) => {
            let path = child(dir, name)?;
            if is_symlink(&sys::lstat(&path)?) {
                Ok(Volume::Path(inode_path(dir.dev, dir.ino)))
            } else {
                Ok(Volume::Path(path))
            }
        }
    }
}

/// The object a call acts on: a volfs path, or a descriptor.
// A value for one call, on the stack: boxing the path would be the allocation it avoids.
#[allow(clippy::large_enum_variant)]
enum Target<'a> {
    Path(VolPath),
    Fd(BorrowedFd<'a>),
}

fn target(node: Node<'_>) -> HostResult<Target<'_>> {
    match node {
        Node::Id(id) => Ok(Target::Path(inode_path(id.dev, id.ino))),
        Node::Child(dir, name) => child(dir, name).map(Target::Path),
        Node::Fd(fd) => Ok(Target::Fd(fd)),
    }
}

/// `/.vol/<dev>/<ino>/<name>`: `EINVAL` for a name that is not one plain component (empty,
/// `.`, `..`, with `/` or NUL), `ENAMETOOLONG` past `PATH_MAX`.
fn child(dir: HostId, name: &[u8]) -> HostResult<VolPath> {
    child_path(dir.dev, dir.ino, name).map_err(|e| {
        if e == fuse_abi::Errno::ENAMETOOLONG {
            DarwinErrno::ENAMETOOLONG
        } else {
            DarwinErrno::EINVAL
        }
    })
}

const fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// The `*xattr` options for the kernel: the kernel-only ones dropped, `XATTR_NOFOLLOW` forced
/// for a path and dropped for a descriptor (where xnu refuses it).
const fn xattr_options(options: c_int, on_fd: bool) -> c_int {
    let options = options & !XATTR_KERNEL_ONLY;
    if on_fd {
        options & !libc::XATTR_NOFOLLOW
    } else {
        options | libc::XATTR_NOFOLLOW
    }
}

const fn timespec(time: HostTimespec) -> libc::timespec {
    libc::timespec {
        tv_sec: time.sec,
        tv_nsec: time.nsec,
    }
}

/// A file offset for the kernel (`off_t`): `EINVAL` past `i64::MAX`, as the kernel answers a
/// negative one.
fn offset(value: u64) -> HostResult<libc::off_t> {
    libc::off_t::try_from(value).map_err(|_| DarwinErrno::EINVAL)
}

/// The name in a `getattrlist(ATTR_CMN_NAME)` reply: a `u32` with the bytes returned, then the
/// `attrreference_t` (`i32` offset of the data from the reference itself, `u32` length with
/// the NUL), the data after it. Every offset is checked against the bytes returned. `ERANGE`
/// if the name did not fit `reply`, `EIO` for an inconsistent reply.
fn name_attr(reply: &[u8]) -> HostResult<&[u8]> {
    /// Where the `attrreference_t` starts: after the length.
    const REFERENCE_AT: usize = 4;
    let word = |at: usize| -> HostResult<[u8; 4]> {
        reply
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or(DarwinErrno::EIO)
    };
    let returned = usize::try_from(u32::from_ne_bytes(word(0)?)).map_err(|_| DarwinErrno::EIO)?;
    let data_offset = i32::from_ne_bytes(word(REFERENCE_AT)?);
    let length = u32::from_ne_bytes(word(REFERENCE_AT + 4)?);
    let start = usize::try_from(data_offset)
        .ok()
        .and_then(|offset| offset.checked_add(REFERENCE_AT))
        .ok_or(DarwinErrno::EIO)?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| start.checked_add(length))
        .ok_or(DarwinErrno::EIO)?;
    if end > reply.len() {
        // The kernel truncates a name that does not fit the buffer.
        return Err(DarwinErrno::ERANGE);
    }
    let data = reply
        .get(..returned.min(reply.len()))
        .and_then(|returned| returned.get(start..end))
        .ok_or(DarwinErrno::EIO)?;
    // The length counts the NUL.
    Ok(data.split(|&b| b == 0).next().unwrap_or(data))
}

/// A directory stream: a `DIR *` over a descriptor of its own.
#[derive(Debug)]
pub struct DarwinDirStream(sys::Dir);

/// What libc's `DIR` holds besides the structure itself, an upper estimate: its read buffer,
/// which libc allocates once per stream with a size that does not depend on the directory's
/// (a few KiB; only a union mount's directory is read whole, and union mounts are rare on
/// macOS).
const DIR_BUFFER_ESTIMATE: usize = 64 * 1024;

impl DirStream for DarwinDirStream {
    fn rewind(&mut self) -> HostResult<()> {
        self.0.rewind();
        Ok(())
    }

    fn next_entry(&mut self) -> HostResult<Option<DirentRef<'_>>> {
        Ok(self.0.read()?.map(|entry| DirentRef {
            ino: entry.ino,
            typ: entry.typ,
            name: entry.name,
        }))
    }

    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>() + DIR_BUFFER_ESTIMATE
    }
}

/// The reply buffer for `getattrlist`, aligned as the packed attributes are.
#[repr(C, align(8))]
struct AttrReply([u8; NAME_REPLY_LEN]);

impl Host for DarwinHost {
    type DirStream = DarwinDirStream;

    /// `lstat` of `path`; `ENOTDIR` unless it is a directory (a symlink to one is refused too),
    /// `EINVAL` for a path with a NUL byte.
    fn root(&self, path: &Path) -> HostResult<HostStat> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| DarwinErrno::EINVAL)?;
        let st = HostStat::from(&sys::lstat(&path)?);
        if !st.is_dir() {
            return Err(DarwinErrno::ENOTDIR);
        }
        Ok(st)
    }

    /// `lstat` of the volfs path, or `fstat`.
    fn lstat(&self, node: Node<'_>) -> HostResult<HostStat> {
        let st = match target(node)? {
            Target::Path(path) => sys::lstat(&path)?,
            Target::Fd(fd) => sys::fstat(fd)?,
        };
        Ok(HostStat::from(&st))
    }

    /// `open` of the volfs path with `flags` less `O_EXLOCK`/`O_SHLOCK`, plus `O_NOFOLLOW`,
    /// `O_CLOEXEC` and `O_NOFOLLOW_ANY` (dropped for good if the kernel refuses it with
    /// `EINVAL`: macOS before 11). `EBADF` for [`Node::Fd`].
    ///
    /// Only a regular file or a directory, never blocking: an existing object is `lstat`ed
    /// first (`ELOOP` for a symlink, `ENOTDIR` for a non-directory under `O_DIRECTORY`,
    /// `ENXIO` for a device node, FIFO or socket, not opened), then opened with `O_NONBLOCK`
    /// (so that a FIFO swapped in meanwhile cannot block) and `fstat`ed: anything but a regular
    /// file or directory, or another object than the one looked at, is closed and `ENXIO`.
    /// `O_NONBLOCK` is cleared again unless the caller asked for it. `O_CREAT` is tried with
    /// `O_EXCL` first (a new regular file); `EEXIST` unless the caller left `O_EXCL` out, in
    /// which case the existing object is opened as above. (A device node swapped in between
    /// the `lstat` and the `open` would see its driver's `open` called before it is closed:
    /// macOS has no `O_PATH` to pin the object.)
    fn open(&self, node: Node<'_>, flags: i32, mode: u16) -> HostResult<OwnedFd> {
        let Target::Path(path) = target(node)? else {
            return Err(DarwinErrno::EBADF);
        };
        let flags = (flags & !OPEN_STRIPPED) | OPEN_ADDED;
        let nonblock = flags & libc::O_NONBLOCK != 0;
        let finish = |fd: OwnedFd| -> HostResult<OwnedFd> {
            if !nonblock {
                sys::clear_nonblock(fd.as_fd())?;
            }
            Ok(fd)
        };
        if flags & libc::O_CREAT != 0 {
            let create = flags | libc::O_EXCL | libc::O_NONBLOCK;
            match self.open_path(&path, create, mode) {
                Ok(fd) => {
                    if HostStat::from(&sys::fstat(fd.as_fd())?).file_type() != mode::S_IFREG {
                        return Err(DarwinErrno::ENXIO);
                    }
                    return finish(fd);
                }
                Err(e) if e == DarwinErrno::EEXIST && flags & libc::O_EXCL == 0 => {}
                Err(e) => return Err(e),
            }
        }
        let looked_at = HostStat::from(&sys::lstat(&path)?);
        if looked_at.is_symlink() {
            return Err(DarwinErrno::ELOOP);
        }
        if flags & libc::O_DIRECTORY != 0 && !looked_at.is_dir() {
            return Err(DarwinErrno::ENOTDIR);
        }
        if !is_openable(&looked_at) {
            return Err(DarwinErrno::ENXIO);
        }
        let existing = (flags & !(libc::O_CREAT | libc::O_EXCL)) | libc::O_NONBLOCK;
        let fd = self.open_path(&path, existing, 0)?;
        let opened = HostStat::from(&sys::fstat(fd.as_fd())?);
        if !is_openable(&opened) || HostId::of(&opened) != HostId::of(&looked_at) {
            return Err(DarwinErrno::ENXIO);
        }
        finish(fd)
    }

    fn mkdir(&self, dir: HostId, name: &[u8], mode: u16) -> HostResult<()> {
        sys::mkdir(&child(dir, name)?, mode)
    }

    fn symlink(&self, target: &CStr, dir: HostId, name: &[u8]) -> HostResult<()> {
        sys::symlink(target, &child(dir, name)?)
    }

    /// `readlink` of the volfs path (never follows the link it reads), or `freadlink` (macOS 13
    /// and later).
    fn readlink(&self, node: Node<'_>, buf: &mut [u8]) -> HostResult<usize> {
        match target(node)? {
            Target::Path(path) => sys::readlink(&path, buf),
            Target::Fd(fd) => sys::freadlink(fd, buf),
        }
    }

    fn unlink(&self, dir: HostId, name: &[u8]) -> HostResult<()> {
        sys::unlink(&child(dir, name)?)
    }

    fn rmdir(&self, dir: HostId, name: &[u8]) -> HostResult<()> {
        sys::rmdir(&child(dir, name)?)
    }

    fn rename(
        &self,
        olddir: HostId,
        oldname: &[u8],
        newdir: HostId,
        newname: &[u8],
        flags: u32,
    ) -> HostResult<()> {
        let from = child(olddir, oldname)?;
        let to = child(newdir, newname)?;
        sys::renamex_np(&from, &to, flags)
    }

    /// `linkat(AT_FDCWD, "/.vol/<dev>/<ino>", AT_FDCWD, new path, 0)`: a symlink is linked
    /// itself (`link(2)` would follow it).
    fn link(&self, node: HostId, newdir: HostId, newname: &[u8]) -> HostResult<()> {
        let to = child(newdir, newname)?;
        sys::linkat(&inode_path(node.dev, node.ino), &to, 0)
    }

    /// `fchmodat(AT_SYMLINK_NOFOLLOW)` of the volfs path, or `fchmod`.
    fn chmod(&self, node: Node<'_>, mode: u16) -> HostResult<()> {
        match target(node)? {
            Target::Path(path) => sys::fchmodat(&path, mode, libc::AT_SYMLINK_NOFOLLOW),
            Target::Fd(fd) => sys::fchmod(fd, mode),
        }
    }

    fn utimens(&self, node: Node<'_>, times: &[HostTimespec; 2]) -> HostResult<()> {
        let times = times.map(timespec);
        match target(node)? {
            Target::Path(path) => sys::utimensat(&path, &times, libc::AT_SYMLINK_NOFOLLOW),
            Target::Fd(fd) => sys::futimens(fd, &times),
        }
    }

    /// `ftruncate`; `EFBIG` for a length past `off_t`.
    fn truncate(&self, fd: BorrowedFd<'_>, len: u64) -> HostResult<()> {
        let len = libc::off_t::try_from(len).map_err(|_| DarwinErrno::EFBIG)?;
        sys::ftruncate(fd, len)
    }

    /// `getxattr` (with `XATTR_NOFOLLOW`) or `fgetxattr`, position 0. `XATTR_NODEFAULT` and
    /// `XATTR_NOSECURITY` are dropped: xnu refuses them from user space (module doc).
    fn getxattr(
        &self,
        node: Node<'_>,
        name: &CStr,
        buf: &mut [u8],
        options: i32,
    ) -> HostResult<usize> {
        match target(node)? {
            Target::Path(path) => sys::getxattr(&path, name, buf, xattr_options(options, false)),
            Target::Fd(fd) => sys::fgetxattr(fd, name, buf, xattr_options(options, true)),
        }
    }

    /// `setxattr` (with `XATTR_NOFOLLOW`) or `fsetxattr`, position 0; options as for
    /// [`DarwinHost::getxattr`].
    fn setxattr(&self, node: Node<'_>, name: &CStr, value: &[u8], options: i32) -> HostResult<()> {
        match target(node)? {
            Target::Path(path) => sys::setxattr(&path, name, value, xattr_options(options, false)),
            Target::Fd(fd) => sys::fsetxattr(fd, name, value, xattr_options(options, true)),
        }
    }

    /// `listxattr` (with `XATTR_NOFOLLOW`) or `flistxattr`; options as for
    /// [`DarwinHost::getxattr`].
    fn listxattr(&self, node: Node<'_>, buf: &mut [u8], options: i32) -> HostResult<usize> {
        match target(node)? {
            Target::Path(path) => sys::listxattr(&path, buf, xattr_options(options, false)),
            Target::Fd(fd) => sys::flistxattr(fd, buf, xattr_options(options, true)),
        }
    }

    /// `removexattr` (with `XATTR_NOFOLLOW`) or `fremovexattr`; options as for
    /// [`DarwinHost::getxattr`].
    fn removexattr(&self, node: Node<'_>, name: &CStr, options: i32) -> HostResult<()> {
        match target(node)? {
            Target::Path(path) => sys::removexattr(&path, name, xattr_options(options, false)),
            Target::Fd(fd) => sys::fremovexattr(fd, name, xattr_options(options, true)),
        }
    }

    /// `pread`; `EINVAL` for an offset past `off_t`.
    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> HostResult<usize> {
        sys::pread(fd, buf, self::offset(offset)?)
    }

    /// `pwrite`; `EINVAL` for an offset past `off_t`.
    fn pwrite(&self, fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> HostResult<usize> {
        sys::pwrite(fd, buf, self::offset(offset)?)
    }

    fn lseek(&self, fd: BorrowedFd<'_>, offset: i64, whence: i32) -> HostResult<u64> {
        sys::lseek(fd, offset, whence)
    }

    /// `fsync`, or `fcntl(F_FULLFSYNC)`; a filesystem that does not implement `F_FULLFSYNC`
    /// (`ENOTSUP`, `EOPNOTSUPP`, `ENOTTY` or `EINVAL`) gets `fsync` instead, the most it offers.
    fn fsync(&self, fd: BorrowedFd<'_>, mode: SyncMode) -> HostResult<()> {
        match mode {
            SyncMode::Fsync => sys::fsync(fd),
            SyncMode::Full => match sys::fcntl_fullfsync(fd) {
                Err(
                    DarwinErrno::ENOTSUP
                    | DarwinErrno::EOPNOTSUPP
                    | DarwinErrno::ENOTTY
                    | DarwinErrno::EINVAL,
                ) => sys::fsync(fd),
                other => other,
            },
        }
    }

    fn preallocate(&self, fd: BorrowedFd<'_>, store: &HostFstore) -> HostResult<()> {
        let mut fstore = libc::fstore_t {
            fst_flags: store.flags,
            fst_posmode: store.posmode,
            fst_offset: store.offset,
            fst_length: store.length,
            fst_bytesalloc: 0,
        };
        sys::fcntl_preallocate(fd, &mut fstore)
    }

    /// `fcntl(F_PUNCHHOLE)`; `EINVAL` for an offset or length past `off_t`.
    fn punch_hole(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> HostResult<()> {
        let hole = libc::fpunchhole_t {
            fp_flags: 0,
            reserved: 0,
            fp_offset: self::offset(offset)?,
            fp_length: self::offset(len)?,
        };
        sys::fcntl_punchhole(fd, &hole)
    }

    fn set_nocache(&self, fd: BorrowedFd<'_>) -> HostResult<()> {
        sys::fcntl_nocache(fd, true)
    }

    /// `fcntl(cmd)` with a `struct flock` built from `lock` and copied back into it on success.
    /// `EINVAL` for a `cmd` that is not a record-lock command.
    fn lock(&self, fd: BorrowedFd<'_>, cmd: i32, lock: &mut HostFlock) -> HostResult<()> {
        let mut flock = libc::flock {
            l_start: lock.start,
            l_len: lock.len,
            l_pid: lock.pid,
            l_type: lock.typ,
            l_whence: lock.whence,
        };
        sys::fcntl_lock(fd, cmd, &mut flock)?;
        *lock = HostFlock {
            start: flock.l_start,
            len: flock.l_len,
            pid: flock.l_pid,
            typ: flock.l_type,
            whence: flock.l_whence,
        };
        Ok(())
    }

    fn flock(&self, fd: BorrowedFd<'_>, operation: i32) -> HostResult<()> {
        sys::flock(fd, operation)
    }

    /// `statfs` of the volfs path or `fstatfs` (never `statvfs`, which truncates the counts to
    /// 32 bits). `statfs` follows a final symlink, so a symlink is asked through its directory
    /// or a descriptor of the link itself (`volume`).
    fn statfs(&self, node: Node<'_>) -> HostResult<HostStatfs> {
        Ok(HostStatfs::from(&volume(node)?.statfs()?))
    }

    /// `pathconf(_PC_NAME_MAX)` (a symlink asked as for [`DarwinHost::statfs`]). A filesystem
    /// that reports no limit gets `EINVAL`, so that the caller uses its default rather than an
    /// unbounded length.
    fn name_max(&self, node: Node<'_>) -> HostResult<u32> {
        match volume(node)?.pathconf(libc::_PC_NAME_MAX)? {
            Some(max) => u32::try_from(max).map_err(|_| DarwinErrno::EOVERFLOW),
            None => Err(DarwinErrno::EINVAL),
        }
    }

    /// `pathconf(_PC_CASE_SENSITIVE)` of the directory: 0 is case-insensitive, any other value
    /// case-sensitive. A filesystem that does not answer (-1 with no `errno`, or `EINVAL`: the
    /// name is not implemented there) counts as case-sensitive, POSIX's behaviour; Darwin's
    /// case-insensitive filesystems (APFS, HFS+, FAT, exFAT, SMB) answer the query.
    fn case_sensitive(&self, dir: HostId) -> HostResult<bool> {
        match volume(Node::Id(dir))?.pathconf(libc::_PC_CASE_SENSITIVE) {
            Ok(Some(value)) => Ok(value != 0),
            Ok(None) | Err(DarwinErrno::EINVAL) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// `getattrlist(ATTR_CMN_NAME, FSOPT_NOFOLLOW)` of the child path: the name as the
    /// directory stores it. `ERANGE` if it does not fit `buf`.
    fn stored_name(&self, dir: HostId, name: &[u8], buf: &mut [u8]) -> HostResult<usize> {
        let path = child(dir, name)?;
        let mut attrs = libc::attrlist {
            bitmapcount: libc::ATTR_BIT_MAP_COUNT,
            reserved: 0,
            commonattr: libc::ATTR_CMN_NAME,
            volattr: 0,
            dirattr: 0,
            fileattr: 0,
            forkattr: 0,
        };
        let mut reply = AttrReply([0; NAME_REPLY_LEN]);
        sys::getattrlist(&path, &mut attrs, &mut reply.0, libc::FSOPT_NOFOLLOW)?;
        let stored = name_attr(&reply.0)?;
        buf.get_mut(..stored.len())
            .ok_or(DarwinErrno::ERANGE)?
            .copy_from_slice(stored);
        Ok(stored.len())
    }

    /// Duplicates `fd` (`F_DUPFD_CLOEXEC`, a `dup` that is not inherited by child processes),
    /// rewinds it (`lseek` to 0: the duplicate shares `fd`'s offset, and `fdopendir` takes the
    /// offset it finds as the point `rewinddir` returns to) and hands it to `fdopendir` (the
    /// stream owns it: `closedir` closes the duplicate, never `fd`). Entries are read one
    /// `readdir` at a time through libc's buffer of fixed size.
    fn open_dir(&self, fd: BorrowedFd<'_>) -> HostResult<DarwinDirStream> {
        let dup = fd.try_clone_to_owned().map_err(|e| self.io_errno(&e))?;
        sys::lseek(dup.as_fd(), 0, libc::SEEK_SET)?;
        Ok(DarwinDirStream(sys::Dir::from_fd(dup)?))
    }

    /// `getrlimit(RLIMIT_NOFILE)`'s soft limit.
    fn nofile_limit(&self) -> Option<u64> {
        sys::nofile_limit()
    }

    /// The raw OS error, which on macOS is already a Darwin errno; `EIO` without one.
    fn io_errno(&self, err: &io::Error) -> DarwinErrno {
        err.raw_os_error()
            .map_or(DarwinErrno::EIO, DarwinErrno::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as the kernel packs it: length, reference, then the data at `data_offset` from
    /// the reference.
    fn reply(name: &[u8], returned: Option<u32>) -> Vec<u8> {
        let mut out = vec![0u8; NAME_REPLY_LEN];
        let with_nul = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
        let total = 4 + 8 + name.len() + 1;
        let returned = returned.unwrap_or(u32::try_from(total).unwrap_or(u32::MAX));
        out[..4].copy_from_slice(&returned.to_ne_bytes());
        out[4..8].copy_from_slice(&8i32.to_ne_bytes());
        out[8..12].copy_from_slice(&with_nul.to_ne_bytes());
        out[12..12 + name.len()].copy_from_slice(name);
        out
    }

    #[test]
    fn name_reply() {
        assert_eq!(name_attr(&reply(b"Foo.txt", None)), Ok(&b"Foo.txt"[..]));
        let long = vec![b'x'; 1023];
        assert_eq!(name_attr(&reply(&long, None)), Ok(&long[..]));
        // Data claimed past the bytes returned.
        assert_eq!(
            name_attr(&reply(b"Foo.txt", Some(12))),
            Err(DarwinErrno::EIO)
        );
        // A negative offset, and a length past the buffer.
        let mut bad = reply(b"a", None);
        bad[4..8].copy_from_slice(&(-8i32).to_ne_bytes());
        assert_eq!(name_attr(&bad), Err(DarwinErrno::EIO));
        let mut truncated = reply(b"a", None);
        truncated[8..12].copy_from_slice(&2000u32.to_ne_bytes());
        assert_eq!(name_attr(&truncated), Err(DarwinErrno::ERANGE));
        assert_eq!(name_attr(&[0; 6]), Err(DarwinErrno::EIO));
    }

    #[test]
    fn xattr_option_bits() {
        let all = libc::XATTR_NOFOLLOW | libc::XATTR_NODEFAULT | libc::XATTR_CREATE;
        assert_eq!(
            xattr_options(all, false),
            libc::XATTR_NOFOLLOW | libc::XATTR_CREATE
        );
        assert_eq!(xattr_options(all, true), libc::XATTR_CREATE);
        assert_eq!(xattr_options(0, false), libc::XATTR_NOFOLLOW);
    }
}
