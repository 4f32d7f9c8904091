//! The system calls [`super::LinuxHost`] makes, as safe functions: one function per call, no
//! policy, every failure returned as the thread's `errno` translated to Darwin's numbering
//! ([`super::errno::darwin_from_linux`]).
//!
//! The calls `nix` covers go through it (its `Errno` is the kernel's number); raw `libc` is left
//! for what it lacks or wraps differently: `statx`, `readlinkat` into the caller's buffer,
//! `renameat2` (nix has it for glibc only), `utimensat` with `AT_EMPTY_PATH`, the `*xattrat`,
//! classic and `f*xattr` calls, `flock` (deprecated in nix for an owning guard), `fstatfs64`,
//! the `FS_IOC_GETFLAGS` ioctl and `getdents64`.
//!
//! Every `unsafe` block holds one unsafe operation and says why it is sound. The recurring
//! arguments:
//!
//! * a `&CStr` is a valid NUL-terminated string for the whole call;
//! * a slice's pointer and length describe memory that is valid (and, for `&mut`, writable and
//!   not aliased) for the whole call; an empty slice is passed as a null pointer with length 0
//!   where the call treats that as a size probe;
//! * a `BorrowedFd` is an open descriptor for the whole call, and no call here closes it;
//! * a structure passed by pointer is a live, correctly laid out `libc` value that the kernel
//!   reads or fills within the call only.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use libc::{c_int, c_uint, c_void, mode_t, off_t};
use nix::fcntl::{AtFlags, FallocateFlags, FcntlArg, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode};
use nix::unistd::{UnlinkatFlags, Whence};

use std::sync::atomic::{AtomicBool, Ordering};

use super::ProcName;
use super::errno::darwin_from_linux;
use crate::errno::DarwinErrno;
use crate::host::HostResult;

/// The calling thread's `errno`, in Darwin numbering.
pub(super) fn errno() -> DarwinErrno {
    io::Error::last_os_error()
        .raw_os_error()
        .map_or(DarwinErrno::EIO, darwin_from_linux)
}

/// A `nix` result with its errno in Darwin numbering.
fn nx<T>(r: nix::Result<T>) -> HostResult<T> {
    r.map_err(|e| darwin_from_linux(e as i32))
}

/// A descriptor a `nix` open call returned.
fn nix_fd(r: nix::Result<c_int>) -> HostResult<OwnedFd> {
    check_fd(nx(r)?)
}

/// `Ok` for a call's 0 (or any non-negative) result, `errno` for -1.
fn check(ret: c_int) -> HostResult<()> {
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// The count a call returned, or `errno` for -1.
fn check_len<T>(ret: T) -> HostResult<usize>
where
    usize: TryFrom<T>,
{
    usize::try_from(ret).map_err(|_| errno())
}

/// A new descriptor a call returned, or `errno` for -1.
fn check_fd(ret: c_int) -> HostResult<OwnedFd> {
    if ret < 0 {
        return Err(errno());
    }
    // SAFETY: `ret` is a descriptor the kernel just opened for this process; nothing else owns
    // it, so the `OwnedFd` is its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// A buffer to fill, as the kernel wants it: null for an empty slice (a size probe).
fn out_ptr(buf: &mut [u8]) -> *mut c_void {
    if buf.is_empty() {
        ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    }
}

/// `open(path, flags, mode)`.
pub(super) fn open(path: &CStr, flags: c_int, mode: mode_t) -> HostResult<OwnedFd> {
    let (flags, mode) = (OFlag::from_bits_retain(flags), Mode::from_bits_retain(mode));
    nix_fd(nix::fcntl::open(path, flags, mode))
}

/// `openat(dir, name, flags, mode)`.
pub(super) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: c_int,
    mode: mode_t,
) -> HostResult<OwnedFd> {
    let (flags, mode) = (OFlag::from_bits_retain(flags), Mode::from_bits_retain(mode));
    nix_fd(nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, mode))
}

/// `statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, mask)`: the object `fd` refers to (an
/// `O_PATH` descriptor of a symlink included), never followed.
pub(super) fn statx(fd: BorrowedFd<'_>, mask: c_uint) -> HostResult<libc::statx> {
    let mut out = MaybeUninit::<libc::statx>::zeroed();
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT;
    // SAFETY: `fd` is open; the path is the empty NUL-terminated string; `out` points to a
    // writable `statx` the kernel fills within the call.
    check(unsafe { libc::statx(fd.as_raw_fd(), c"".as_ptr(), flags, mask, out.as_mut_ptr()) })?;
    // SAFETY: the call succeeded, so the kernel wrote the structure; it was zeroed before, and
    // all-zero bytes are a valid `statx` (integers only) for any field it left alone.
    Ok(unsafe { out.assume_init() })
}

/// `mkdirat(dir, name, mode)`.
pub(super) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: mode_t) -> HostResult<()> {
    let mode = Mode::from_bits_retain(mode);
    nx(nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, mode))
}

/// `symlinkat(target, dir, name)`.
pub(super) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> HostResult<()> {
    nx(nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name))
}

/// `readlinkat(fd, name, buf)`: the length written (not NUL-terminated).
pub(super) fn readlinkat(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> HostResult<usize> {
    // SAFETY: `fd` is open; `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
    check_len(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// `unlinkat(dir, name, flags)`; `flags` is 0 or `AT_REMOVEDIR` (anything else is EINVAL, as
/// from the kernel).
pub(super) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: c_int) -> HostResult<()> {
    let flag = match flags {
        0 => UnlinkatFlags::NoRemoveDir,
        libc::AT_REMOVEDIR => UnlinkatFlags::RemoveDir,
        _ => return Err(DarwinErrno::EINVAL),
    };
    nx(nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, flag))
}

/// `renameat2(olddir, oldname, newdir, newname, flags)`.
pub(super) fn renameat2(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
    flags: c_uint,
) -> HostResult<()> {
    // SAFETY: both descriptors are open; both names are NUL-terminated.
    check(unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            oldname.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
            flags,
        )
    })
}

/// `linkat(fd, "", newdir, newname, AT_EMPTY_PATH)`: a new name for the object `fd` refers to
/// (a symlink itself, never its target).
pub(super) fn link_fd(
    fd: BorrowedFd<'_>,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
) -> HostResult<()> {
    nx(nix::unistd::linkat(
        Some(fd.as_raw_fd()),
        c"",
        Some(newdir.as_raw_fd()),
        newname,
        AtFlags::AT_EMPTY_PATH,
    ))
}

/// `chmod(path, mode)`, as `fchmodat(AT_FDCWD, path, mode, 0)` (nix has no `chmod`; the kernel
/// implements both alike).
pub(super) fn chmod(path: &CStr, mode: mode_t) -> HostResult<()> {
    let mode = Mode::from_bits_retain(mode);
    nx(nix::sys::stat::fchmodat(
        None,
        path,
        mode,
        FchmodatFlags::FollowSymlink,
    ))
}

/// `fchmodat(dir, name, mode, 0)` (follows a final magic link: used on `<N>` beneath
/// `/proc/self/fd` only).
pub(super) fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: mode_t) -> HostResult<()> {
    let (dir, mode) = (Some(dir.as_raw_fd()), Mode::from_bits_retain(mode));
    nx(nix::sys::stat::fchmodat(
        dir,
        name,
        mode,
        FchmodatFlags::FollowSymlink,
    ))
}

/// `fchmod(fd, mode)`.
pub(super) fn fchmod(fd: BorrowedFd<'_>, mode: mode_t) -> HostResult<()> {
    nx(nix::sys::stat::fchmod(
        fd.as_raw_fd(),
        Mode::from_bits_retain(mode),
    ))
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`: the object `fd` refers to
/// (an `O_PATH` descriptor of a symlink included), never followed.
pub(super) fn utimens_fd(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> HostResult<()> {
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: `fd` is open; the path is the empty NUL-terminated string; `times` points to two
    // `timespec`s the kernel only reads.
    check(unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), times.as_ptr(), flags) })
}

/// `ftruncate(fd, len)`.
pub(super) fn ftruncate(fd: BorrowedFd<'_>, len: off_t) -> HostResult<()> {
    nx(nix::unistd::ftruncate(fd, len))
}

// Extended attributes of `/proc/self/fd/<N>` (which lands on the object itself, a symlink
// included): `<N>` beneath the held `/proc/self/fd` descriptor with the `*xattrat` calls of
// Linux 6.13 (valid after a `pivot_root` or `chroot` that left no `/proc`), else, on a kernel
// that answers ENOSYS (remembered) or without the descriptor, the classic calls on the
// absolute path.

/// `struct xattr_args` of `linux/xattr.h` (`XATTR_ARGS_SIZE_VER0`).
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// The `*xattrat` system call numbers (the same in the generic and x86 tables); elsewhere -1,
/// which the kernel answers with ENOSYS.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
))]
mod nr {
    pub(super) const SETXATTRAT: libc::c_long = 463;
    pub(super) const GETXATTRAT: libc::c_long = 464;
    pub(super) const LISTXATTRAT: libc::c_long = 465;
    pub(super) const REMOVEXATTRAT: libc::c_long = 466;
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
)))]
mod nr {
    pub(super) const SETXATTRAT: libc::c_long = -1;
    pub(super) const GETXATTRAT: libc::c_long = -1;
    pub(super) const LISTXATTRAT: libc::c_long = -1;
    pub(super) const REMOVEXATTRAT: libc::c_long = -1;
}

/// Cleared the first time a `*xattrat` call answers ENOSYS.
static HAVE_XATTRAT: AtomicBool = AtomicBool::new(true);

/// Runs the `*xattrat` call `call` when `at` has the `/proc/self/fd` descriptor and the
/// kernel has the calls; `None` means: use the absolute path.
fn xattrat(
    at: &ProcName<'_>,
    call: impl FnOnce(c_int) -> libc::c_long,
) -> Option<HostResult<usize>> {
    let dir = at.dir?;
    if !HAVE_XATTRAT.load(Ordering::Relaxed) {
        return None;
    }
    let ret = call(dir.as_raw_fd());
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOSYS) {
            HAVE_XATTRAT.store(false, Ordering::Relaxed);
            return None;
        }
        return Some(Err(err
            .raw_os_error()
            .map_or(DarwinErrno::EIO, darwin_from_linux)));
    }
    Some(usize::try_from(ret).map_err(|_| DarwinErrno::EIO))
}

/// `getxattr` of `/proc/self/fd/<N>`; an empty `buf` asks for the size.
pub(super) fn getxattr(at: &ProcName<'_>, name: &CStr, buf: &mut [u8]) -> HostResult<usize> {
    let len = buf.len();
    let value = out_ptr(buf);
    let mut args = XattrArgs {
        value: value as u64,
        size: u32::try_from(len).unwrap_or(u32::MAX),
        flags: 0,
    };
    let r = xattrat(at, |dir| {
        // SAFETY: `dir` is open; `rel` and `name` are NUL-terminated; `args` is a live
        // `xattr_args` of the size passed, whose `value` is null with size 0 or writable for
        // `size` bytes.
        unsafe {
            libc::syscall(
                nr::GETXATTRAT,
                dir,
                at.rel.as_ptr(),
                0,
                name.as_ptr(),
                &raw mut args,
                size_of::<XattrArgs>(),
            )
        }
    });
    if let Some(r) = r {
        return r;
    }
    // SAFETY: both strings are NUL-terminated; `value` is null with length 0, or writable for
    // `len` bytes.
    check_len(unsafe { libc::getxattr(at.abs.as_ptr(), name.as_ptr(), value, len) })
}

/// `setxattr` of `/proc/self/fd/<N>`.
pub(super) fn setxattr(
    at: &ProcName<'_>,
    name: &CStr,
    value: &[u8],
    flags: c_int,
) -> HostResult<()> {
    let args = XattrArgs {
        value: value.as_ptr() as u64,
        size: u32::try_from(value.len()).map_err(|_| DarwinErrno::E2BIG)?,
        flags: u32::from_ne_bytes(flags.to_ne_bytes()),
    };
    let r = xattrat(at, |dir| {
        // SAFETY: `dir` is open; `rel` and `name` are NUL-terminated; `args` is a live
        // `xattr_args` of the size passed, whose `value` is readable for `size` bytes.
        unsafe {
            libc::syscall(
                nr::SETXATTRAT,
                dir,
                at.rel.as_ptr(),
                0,
                name.as_ptr(),
                &raw const args,
                size_of::<XattrArgs>(),
            )
        }
    });
    if let Some(r) = r {
        return r.map(drop);
    }
    // SAFETY: both strings are NUL-terminated; `value` is readable for `value.len()` bytes.
    check(unsafe {
        libc::setxattr(
            at.abs.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// `listxattr` of `/proc/self/fd/<N>`; an empty `buf` asks for the size.
pub(super) fn listxattr(at: &ProcName<'_>, buf: &mut [u8]) -> HostResult<usize> {
    let len = buf.len();
    let list: *mut libc::c_char = out_ptr(buf).cast();
    let r = xattrat(at, |dir| {
        // SAFETY: `dir` is open; `rel` is NUL-terminated; `list` is null with length 0, or
        // writable for `len` bytes.
        unsafe { libc::syscall(nr::LISTXATTRAT, dir, at.rel.as_ptr(), 0, list, len) }
    });
    if let Some(r) = r {
        return r;
    }
    // SAFETY: `abs` is NUL-terminated; `list` as above.
    check_len(unsafe { libc::listxattr(at.abs.as_ptr(), list, len) })
}

/// `removexattr` of `/proc/self/fd/<N>`.
pub(super) fn removexattr(at: &ProcName<'_>, name: &CStr) -> HostResult<()> {
    let r = xattrat(at, |dir| {
        // SAFETY: `dir` is open; `rel` and `name` are NUL-terminated.
        unsafe { libc::syscall(nr::REMOVEXATTRAT, dir, at.rel.as_ptr(), 0, name.as_ptr()) }
    });
    if let Some(r) = r {
        return r.map(drop);
    }
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::removexattr(at.abs.as_ptr(), name.as_ptr()) })
}

/// `fgetxattr(fd, name, buf)`; an empty `buf` asks for the size.
pub(super) fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> HostResult<usize> {
    let len = buf.len();
    let value = out_ptr(buf);
    // SAFETY: `fd` is open; `name` is NUL-terminated; `value` as in `getxattr`.
    check_len(unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), value, len) })
}

/// `fsetxattr(fd, name, value, flags)`.
pub(super) fn fsetxattr(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    flags: c_int,
) -> HostResult<()> {
    // SAFETY: `fd` is open; `name` is NUL-terminated; `value` is readable for its length.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// `flistxattr(fd, buf)`; an empty `buf` asks for the size.
pub(super) fn flistxattr(fd: BorrowedFd<'_>, buf: &mut [u8]) -> HostResult<usize> {
    let len = buf.len();
    let list = out_ptr(buf).cast();
    // SAFETY: `fd` is open; `list` as in `listxattr`.
    check_len(unsafe { libc::flistxattr(fd.as_raw_fd(), list, len) })
}

/// `fremovexattr(fd, name)`.
pub(super) fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> HostResult<()> {
    // SAFETY: `fd` is open; `name` is NUL-terminated.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) })
}

/// `pread(fd, buf, offset)`.
pub(super) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: off_t) -> HostResult<usize> {
    nx(nix::sys::uio::pread(fd, buf, offset))
}

/// `pwrite(fd, buf, offset)`.
pub(super) fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: off_t) -> HostResult<usize> {
    nx(nix::sys::uio::pwrite(fd, buf, offset))
}

/// `lseek(fd, offset, whence)`: the new offset. A `whence` the kernel does not know is
/// EINVAL, as from the kernel.
pub(super) fn lseek(fd: BorrowedFd<'_>, offset: off_t, whence: c_int) -> HostResult<u64> {
    let whence = match whence {
        libc::SEEK_SET => Whence::SeekSet,
        libc::SEEK_CUR => Whence::SeekCur,
        libc::SEEK_END => Whence::SeekEnd,
        libc::SEEK_DATA => Whence::SeekData,
        libc::SEEK_HOLE => Whence::SeekHole,
        _ => return Err(DarwinErrno::EINVAL),
    };
    let pos = nx(nix::unistd::lseek(fd.as_raw_fd(), offset, whence))?;
    u64::try_from(pos).map_err(|_| DarwinErrno::EOVERFLOW)
}

/// `fsync(fd)`.
pub(super) fn fsync(fd: BorrowedFd<'_>) -> HostResult<()> {
    nx(nix::unistd::fsync(fd.as_raw_fd()))
}

/// `fallocate(fd, mode, offset, len)`.
pub(super) fn fallocate(
    fd: BorrowedFd<'_>,
    mode: c_int,
    offset: off_t,
    len: off_t,
) -> HostResult<()> {
    let mode = FallocateFlags::from_bits_retain(mode);
    nx(nix::fcntl::fallocate(fd.as_raw_fd(), mode, offset, len))
}

/// `fcntl(fd, cmd, lock)` for a record-lock command (POSIX or open file description); the
/// kernel may write `lock` back. EINVAL for any other command.
pub(super) fn fcntl_lock(fd: BorrowedFd<'_>, cmd: c_int, lock: &mut libc::flock) -> HostResult<()> {
    let arg = match cmd {
        libc::F_GETLK => FcntlArg::F_GETLK(lock),
        libc::F_SETLK => FcntlArg::F_SETLK(lock),
        libc::F_SETLKW => FcntlArg::F_SETLKW(lock),
        libc::F_OFD_GETLK => FcntlArg::F_OFD_GETLK(lock),
        libc::F_OFD_SETLK => FcntlArg::F_OFD_SETLK(lock),
        libc::F_OFD_SETLKW => FcntlArg::F_OFD_SETLKW(lock),
        _ => return Err(DarwinErrno::EINVAL),
    };
    nx(nix::fcntl::fcntl(fd.as_raw_fd(), arg)).map(drop)
}

/// `flock(fd, operation)`.
pub(super) fn flock(fd: BorrowedFd<'_>, operation: c_int) -> HostResult<()> {
    // SAFETY: `fd` is open.
    check(unsafe { libc::flock(fd.as_raw_fd(), operation) })
}

/// `fstatfs64(fd)` (works on `O_PATH` descriptors).
pub(super) fn fstatfs(fd: BorrowedFd<'_>) -> HostResult<libc::statfs64> {
    let mut out = MaybeUninit::<libc::statfs64>::zeroed();
    // SAFETY: `fd` is open; `out` points to a writable `statfs64` the kernel fills.
    check(unsafe { libc::fstatfs64(fd.as_raw_fd(), out.as_mut_ptr()) })?;
    // SAFETY: the call succeeded, so the structure was written; it was zeroed before, and
    // all-zero bytes are a valid `statfs64` (integers only).
    Ok(unsafe { out.assume_init() })
}

/// `ioctl(fd, FS_IOC_GETFLAGS)`: the inode flags (`FS_*_FL`). The kernel writes an `int`,
/// whatever the request's encoded size says.
pub(super) fn inode_flags(fd: BorrowedFd<'_>) -> HostResult<c_int> {
    let mut flags: c_int = 0;
    let out: *mut c_int = &mut flags;
    // SAFETY: `fd` is open; `FS_IOC_GETFLAGS` writes one `int` through its pointer argument,
    // and `out` points to a writable `c_int` that outlives the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, out) })?;
    Ok(flags)
}

/// `getdents64(fd, buf)`: the bytes of `struct linux_dirent64` records written, 0 at the end.
pub(super) fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> HostResult<usize> {
    // SAFETY: `fd` is open; `buf` is writable for `buf.len()` bytes, which the kernel fills
    // with whole records only.
    check_len(unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    })
}

/// `getrlimit(RLIMIT_NOFILE)`'s soft limit; `None` if unlimited or unknown.
pub(super) fn nofile_limit() -> Option<u64> {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != libc::RLIM_INFINITY).then_some(soft)
}
