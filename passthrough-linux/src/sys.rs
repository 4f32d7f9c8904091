//! Every system call the backend makes, wrapped so that the rest of the crate is safe code.
//!
//! Conventions: file descriptors go in as [`BorrowedFd`] and come out as [`OwnedFd`]; paths are
//! [`CStr`] (callers build them from validated single-component names or from the daemon's own
//! `/proc/self/fd/N` strings); every result is an [`io::Result`] built from `errno`. Nothing here
//! interprets guest data beyond passing it to the kernel.
//!
//! The calls `nix` covers are made through it (its `Errno` is the kernel's number, so the
//! errors are the same); raw `libc` is left for what it lacks or wraps differently: `statx`,
//! file handles, `getdents64`, `faccessat2`, the `*xattrat` calls and the classic xattr calls,
//! `readlinkat` into the caller's buffer, `utimensat` with `AT_EMPTY_PATH`, `renameat2` (nix has
//! it for glibc only), `flock` on a shared descriptor, `fstatvfs` (nix's result hides the libc
//! struct the callers read) and the per-thread credential system calls.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FallocateFlags, FcntlArg, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags, Whence};

use crate::open::OpenToken;

/// Cleared the first time `openat2` answers ENOSYS; the per-component fallback is used after.
static HAVE_OPENAT2: AtomicBool = AtomicBool::new(true);

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_ssize(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by a successful open-like call and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// [`owned`] for a descriptor a `nix` open call returned.
fn owned_nix(fd: nix::Result<RawFd>) -> io::Result<OwnedFd> {
    owned(fd?)
}

fn to_off(off: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(off).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A mode as nix's type, every bit kept (the kernel sees what the caller passed).
fn mode(mode: u32) -> Mode {
    Mode::from_bits_retain(mode)
}

/// The empty path, for `*at(fd, "", AT_EMPTY_PATH)` calls.
pub(crate) const EMPTY: &CStr = c"";

// Opening. Two kinds of functions open descriptors here:
//
// - the `*_path` ones always open `O_PATH` (a reference: no driver `open()` runs, nothing can
//   block, nothing can be read or written through it) and may be called from anywhere;
// - the `*_io` ones open for I/O and take an [`OpenToken`], which only `crate::open` can make:
//   every I/O descriptor of the backend is therefore obtained through that module, which checks
//   the type first (regular files and directories only). The raw openers below are private.

/// Opens the single component `name` beneath `dir`, never following a symlink (a trailing one
/// is opened itself with `O_PATH | O_NOFOLLOW`, refused otherwise) and never leaving `dir`:
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` where the kernel
/// has it, else `openat(O_NOFOLLOW)` after checking that `name` is one component other than
/// `..` (which is the whole per-component walk for a single component).
fn open_beneath_raw(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode_bits: u32,
) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if HAVE_OPENAT2.load(Ordering::Relaxed) {
        let creates = flags & (libc::O_CREAT | libc::O_TMPFILE) != 0;
        let how = OpenHow::new()
            .flags(OFlag::from_bits_retain(flags))
            .mode(mode(if creates { mode_bits } else { 0 }))
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        match nix::fcntl::openat2(dir.as_raw_fd(), name, how) {
            Err(Errno::ENOSYS) => HAVE_OPENAT2.store(false, Ordering::Relaxed),
            r => return owned_nix(r),
        }
    }
    let bytes = name.to_bytes();
    if bytes.contains(&b'/') || bytes == b".." {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    openat_raw(dir, name, flags, mode_bits)
}

/// [`open_beneath_raw`] with `O_PATH`: a reference to whatever `name` is (a trailing symlink
/// is the link itself).
pub(crate) fn open_beneath_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    open_beneath_raw(dir, name, libc::O_PATH, 0)
}

/// [`open_beneath_raw`] for I/O (creation with `O_CREAT | O_EXCL` in practice): only
/// `crate::open` holds the token.
pub(crate) fn open_beneath_io(
    _token: &OpenToken,
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    open_beneath_raw(dir, name, flags & !libc::O_PATH, mode)
}

/// Forces the `openat(O_NOFOLLOW)` fallback of [`open_beneath_raw`] (tests).
#[cfg(test)]
pub(crate) fn disable_openat2_for_tests() {
    HAVE_OPENAT2.store(false, Ordering::Relaxed);
}

/// Plain `openat`.
fn openat_raw(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode_bits: u32,
) -> io::Result<OwnedFd> {
    let flags = OFlag::from_bits_retain(flags | libc::O_CLOEXEC);
    owned_nix(nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags,
        mode(mode_bits),
    ))
}

/// `openat(dir, name, O_PATH)`, for the daemon's own names (`/proc/self/fd/N` relative to the
/// `/proc/self/fd` descriptor: a reference to the same inode).
pub(crate) fn openat_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat_raw(dir, name, libc::O_PATH, 0)
}

/// `openat` for I/O (`/proc/self/fd/N` reopens and `O_TMPFILE`): only `crate::open` holds the
/// token.
pub(crate) fn openat_io(
    _token: &OpenToken,
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    openat_raw(dir, name, flags & !libc::O_PATH, mode)
}

/// `open(path, O_PATH | O_DIRECTORY)` relative to the current directory, for the share's root
/// and `/proc/self/fd` at start-up.
pub(crate) fn open_dir_path(path: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    owned_nix(nix::fcntl::open(path, flags, Mode::empty()))
}

/// The statx fields the backend asks for.
pub(crate) const STATX_WANTED: u32 =
    libc::STATX_BASIC_STATS | libc::STATX_BTIME | libc::STATX_MNT_ID;

/// `statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | sync_flags)`.
pub(crate) fn statx(
    fd: BorrowedFd<'_>,
    sync_flags: libc::c_int,
    mask: u32,
) -> io::Result<libc::statx> {
    let mut stx = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `fd` is live, the path is the empty C string, `stx` points to writable memory of
    // the right type; the result is checked before `stx` is read.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | sync_flags,
            mask,
            stx.as_mut_ptr(),
        )
    };
    check(ret)?;
    // SAFETY: statx succeeded and filled the struct (and it was zeroed before, so any field
    // the kernel did not write is 0, a valid value for every integer field).
    Ok(unsafe { stx.assume_init() })
}

/// `mkdirat`.
pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode_bits: u32) -> io::Result<()> {
    Ok(nix::sys::stat::mkdirat(
        Some(dir.as_raw_fd()),
        name,
        mode(mode_bits),
    )?)
}

/// `mknodat`.
pub(crate) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode_bits: u32,
    dev: libc::dev_t,
) -> io::Result<()> {
    // nix takes the type and the permissions apart and passes `kind | perm`: `mode_bits` again.
    let kind = SFlag::from_bits_retain(mode_bits & libc::S_IFMT);
    let perm = mode(mode_bits & !libc::S_IFMT);
    Ok(nix::sys::stat::mknodat(
        Some(dir.as_raw_fd()),
        name,
        kind,
        perm,
        dev,
    )?)
}

/// `symlinkat(target, dir, name)`: creates the link; the target is never resolved.
pub(crate) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name)?)
}

/// `unlinkat`; `flags` is 0 or `AT_REMOVEDIR` (anything else is EINVAL, as from the kernel).
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    let flag = match flags {
        0 => UnlinkatFlags::NoRemoveDir,
        libc::AT_REMOVEDIR => UnlinkatFlags::RemoveDir,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    Ok(nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, flag)?)
}

/// `renameat2` (raw: nix has it for glibc targets only).
pub(crate) fn renameat2(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
    flags: u32,
) -> io::Result<()> {
    // SAFETY: both fds are live, both names NUL-terminated; result checked.
    let ret = unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            oldname.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
            flags,
        )
    };
    check(ret).map(drop)
}

/// `linkat(olddir, oldname, newdir, newname, flags)`.
pub(crate) fn linkat(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
    flags: libc::c_int,
) -> io::Result<()> {
    Ok(nix::unistd::linkat(
        Some(olddir.as_raw_fd()),
        oldname,
        Some(newdir.as_raw_fd()),
        newname,
        AtFlags::from_bits_retain(flags),
    )?)
}

/// `readlinkat(fd, "")` on an `O_PATH` symlink descriptor, into the caller's buffer (nix's
/// returns a new string).
pub(crate) fn readlink(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `fd` is live, the path is "", `buf` is writable for `buf.len()` bytes.
    let ret = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    check_ssize(ret)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`; `u32::MAX` keeps a field.
pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let uid = (uid != u32::MAX).then(|| Uid::from_raw(uid));
    let gid = (gid != u32::MAX).then(|| Gid::from_raw(gid));
    Ok(nix::unistd::fchownat(
        Some(fd.as_raw_fd()),
        EMPTY,
        uid,
        gid,
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

/// `fchmodat(dir, name, mode, 0)` (used with the `/proc/self/fd` directory and an fd number).
pub(crate) fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode_bits: u32) -> io::Result<()> {
    Ok(nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        mode(mode_bits),
        FchmodatFlags::FollowSymlink,
    )?)
}

/// `fchmod` on an open (non-`O_PATH`) descriptor.
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode_bits: u32) -> io::Result<()> {
    Ok(nix::sys::stat::fchmod(fd.as_raw_fd(), mode(mode_bits))?)
}

/// `utimensat(dir, name, times, flags)` (raw: nix's takes no `AT_EMPTY_PATH`).
pub(crate) fn utimensat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    times: &[libc::timespec; 2],
    flags: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `dir` is live, `name` NUL-terminated, `times` points to two timespecs.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), times.as_ptr(), flags) })
        .map(drop)
}

/// `ftruncate`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    Ok(nix::unistd::ftruncate(fd, to_off(size)?)?)
}

/// `fstatvfs`.
pub(crate) fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st = MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `fd` is live and `st` is writable memory of the right type; checked before use.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatvfs succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

/// `getdents64` into `buf`; returns the bytes filled (0 at the end of the directory).
pub(crate) fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `fd` is live, `buf` writable for `buf.len()` bytes; result checked.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    usize::try_from(check_long(ret)?).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
}

/// `lseek`; `offset` is passed through as the kernel's `loff_t` bit pattern. A `whence` the
/// kernel does not know is EINVAL, as from the kernel.
pub(crate) fn lseek(fd: BorrowedFd<'_>, offset: u64, whence: libc::c_int) -> io::Result<u64> {
    let offset = libc::off_t::from_ne_bytes(offset.to_ne_bytes());
    let whence = match whence {
        libc::SEEK_SET => Whence::SeekSet,
        libc::SEEK_CUR => Whence::SeekCur,
        libc::SEEK_END => Whence::SeekEnd,
        libc::SEEK_DATA => Whence::SeekData,
        libc::SEEK_HOLE => Whence::SeekHole,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    let pos = nix::unistd::lseek(fd.as_raw_fd(), offset, whence)?;
    u64::try_from(pos).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

/// `fsync` or `fdatasync`.
pub(crate) fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> io::Result<()> {
    if datasync {
        Ok(nix::unistd::fdatasync(fd.as_raw_fd())?)
    } else {
        Ok(nix::unistd::fsync(fd.as_raw_fd())?)
    }
}

/// `syncfs`.
pub(crate) fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::unistd::syncfs(fd.as_raw_fd())?)
}

/// `fallocate`.
pub(crate) fn fallocate(fd: BorrowedFd<'_>, mode: u32, offset: u64, len: u64) -> io::Result<()> {
    let mode =
        libc::c_int::try_from(mode).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let (offset, len) = (to_off(offset)?, to_off(len)?);
    let mode = FallocateFlags::from_bits_retain(mode);
    Ok(nix::fcntl::fallocate(fd.as_raw_fd(), mode, offset, len)?)
}

/// `copy_file_range` with explicit offsets (the descriptors' positions are not used). nix
/// passes no flags; the kernel defines none and answers EINVAL to any, and so does this.
pub(crate) fn copy_file_range(
    fd_in: BorrowedFd<'_>,
    off_in: u64,
    fd_out: BorrowedFd<'_>,
    off_out: u64,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    let mut off_in = to_off(off_in)?;
    let mut off_out = to_off(off_out)?;
    if flags != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(nix::fcntl::copy_file_range(
        fd_in,
        Some(&mut off_in),
        fd_out,
        Some(&mut off_out),
        len,
    )?)
}

/// `fcntl(F_OFD_GETLK / F_OFD_SETLK / F_OFD_SETLKW)` with `lock` in and out.
pub(crate) fn ofd_lock(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    lock: &mut libc::flock,
) -> io::Result<()> {
    let arg = match cmd {
        libc::F_OFD_GETLK => FcntlArg::F_OFD_GETLK(lock),
        libc::F_OFD_SETLK => FcntlArg::F_OFD_SETLK(lock),
        libc::F_OFD_SETLKW => FcntlArg::F_OFD_SETLKW(lock),
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    nix::fcntl::fcntl(fd.as_raw_fd(), arg)?;
    Ok(())
}

/// `flock` (raw: nix's `flock` is deprecated for its owning `Flock` guard, which does not fit a
/// descriptor the handle table keeps).
pub(crate) fn flock(fd: BorrowedFd<'_>, op: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is live; result checked.
    check(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

// Extended attributes, with no absolute path: the inode is named `N` relative to the
// backend's `/proc/self/fd` descriptor (held since start-up, valid after a `pivot_root` that
// leaves no `/proc` behind) and reached with the `*xattrat` calls of Linux 6.13. `AT_EMPTY_PATH`
// on the `O_PATH` descriptor itself is EBADF there (the calls want a file opened for I/O), and
// following the `/proc` magic link reaches the inode itself, a symlink included (never its
// target). Where the kernel answers ENOSYS the classic calls on the absolute
// `/proc/self/fd/N` are used from then on (that needs `/proc` mounted).

/// `struct xattr_args` of `linux/xattr.h` (`XATTR_ARGS_SIZE_VER0`).
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// The `*xattrat` system call numbers (the same in the generic and x86 tables); elsewhere -1,
/// which the kernel answers with ENOSYS, so the fallback is taken.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
))]
mod xattrat_nr {
    pub(super) const SET: libc::c_long = 463;
    pub(super) const GET: libc::c_long = 464;
    pub(super) const LIST: libc::c_long = 465;
    pub(super) const REMOVE: libc::c_long = 466;
}
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
)))]
mod xattrat_nr {
    pub(super) const SET: libc::c_long = -1;
    pub(super) const GET: libc::c_long = -1;
    pub(super) const LIST: libc::c_long = -1;
    pub(super) const REMOVE: libc::c_long = -1;
}

/// Cleared the first time a `*xattrat` call answers ENOSYS.
static HAVE_XATTRAT: AtomicBool = AtomicBool::new(true);

#[cfg(test)]
thread_local! {
    /// Tests force the absolute-path fallback on their own thread.
    static FORCE_XATTR_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread's xattr calls take the absolute `/proc/self/fd/N` path (`true`) or the
/// `*xattrat` calls (`false`, the default) (tests).
#[cfg(test)]
pub(crate) fn force_xattr_path_for_tests(on: bool) {
    FORCE_XATTR_PATH.with(|c| c.set(on));
}

fn use_xattrat() -> bool {
    #[cfg(test)]
    if FORCE_XATTR_PATH.with(std::cell::Cell::get) {
        return false;
    }
    HAVE_XATTRAT.load(Ordering::Relaxed)
}

/// Runs a `*xattrat` call; `None` when the kernel lacks it (and remembers that).
fn xattrat(call: impl FnOnce() -> libc::c_long) -> Option<io::Result<libc::c_long>> {
    if !use_xattrat() {
        return None;
    }
    match check_long(call()) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            HAVE_XATTRAT.store(false, Ordering::Relaxed);
            None
        }
        r => Some(r),
    }
}

fn long_to_usize(n: libc::c_long) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EIO))
}

/// How an xattr call names its inode: `rel` (`N`) beneath `proc_dir` (the `/proc/self/fd`
/// descriptor), or the absolute `abs` (`/proc/self/fd/N`) for the fallback.
#[derive(Clone, Copy, Debug)]
pub(crate) struct XattrPath<'a> {
    /// The `/proc/self/fd` descriptor.
    pub(crate) proc_dir: BorrowedFd<'a>,
    /// `N`.
    pub(crate) rel: &'a CStr,
    /// `/proc/self/fd/N`.
    pub(crate) abs: &'a CStr,
}

/// `getxattr`; an empty `buf` asks for the size.
pub(crate) fn getxattr(p: XattrPath<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    {
        let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size,
            flags: 0,
        };
        let r = xattrat(|| {
            // SAFETY: `proc_dir` is live, `rel` and `name` are NUL-terminated, `args` is a valid
            // `xattr_args` of the size passed whose `value` points to `size` writable bytes.
            unsafe {
                libc::syscall(
                    xattrat_nr::GET,
                    p.proc_dir.as_raw_fd(),
                    p.rel.as_ptr(),
                    0,
                    name.as_ptr(),
                    &raw mut args,
                    size_of::<XattrArgs>(),
                )
            }
        });
        if let Some(r) = r {
            return long_to_usize(r?);
        }
    }
    // SAFETY: both strings NUL-terminated; `buf` writable for its length (NULL-safe with 0).
    let ret = unsafe {
        libc::getxattr(
            p.abs.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    check_ssize(ret)
}

/// `setxattr`.
pub(crate) fn setxattr(
    p: XattrPath<'_>,
    name: &CStr,
    value: &[u8],
    flags: libc::c_int,
) -> io::Result<()> {
    {
        let size =
            u32::try_from(value.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
        let args = XattrArgs {
            value: value.as_ptr() as u64,
            size,
            flags: u32::from_ne_bytes(flags.to_ne_bytes()),
        };
        let r = xattrat(|| {
            // SAFETY: `proc_dir` is live, `rel` and `name` are NUL-terminated, `args` is a valid
            // `xattr_args` of the size passed whose `value` points to `size` readable bytes.
            unsafe {
                libc::syscall(
                    xattrat_nr::SET,
                    p.proc_dir.as_raw_fd(),
                    p.rel.as_ptr(),
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
    }
    // SAFETY: both strings NUL-terminated; `value` readable for its length.
    let ret = unsafe {
        libc::setxattr(
            p.abs.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    check(ret).map(drop)
}

/// `listxattr`; an empty `buf` asks for the size.
pub(crate) fn listxattr(p: XattrPath<'_>, buf: &mut [u8]) -> io::Result<usize> {
    {
        let r = xattrat(|| {
            // SAFETY: `proc_dir` is live, `rel` NUL-terminated, `buf` writable for its length.
            unsafe {
                libc::syscall(
                    xattrat_nr::LIST,
                    p.proc_dir.as_raw_fd(),
                    p.rel.as_ptr(),
                    0,
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            }
        });
        if let Some(r) = r {
            return long_to_usize(r?);
        }
    }
    // SAFETY: `abs` NUL-terminated; `buf` writable for its length.
    let ret = unsafe { libc::listxattr(p.abs.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    check_ssize(ret)
}

/// `removexattr`.
pub(crate) fn removexattr(p: XattrPath<'_>, name: &CStr) -> io::Result<()> {
    {
        let r = xattrat(|| {
            // SAFETY: `proc_dir` is live, `rel` and `name` are NUL-terminated.
            unsafe {
                libc::syscall(
                    xattrat_nr::REMOVE,
                    p.proc_dir.as_raw_fd(),
                    p.rel.as_ptr(),
                    0,
                    name.as_ptr(),
                )
            }
        });
        if let Some(r) = r {
            return r.map(drop);
        }
    }
    // SAFETY: both strings NUL-terminated.
    check(unsafe { libc::removexattr(p.abs.as_ptr(), name.as_ptr()) }).map(drop)
}

/// `faccessat2(fd, "", mode, AT_EMPTY_PATH | AT_EACCESS)`: checks with the effective ids.
pub(crate) fn access(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let mode =
        libc::c_int::try_from(mode).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `fd` is live, the path is ""; result checked.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            mode,
            libc::AT_EMPTY_PATH | libc::AT_EACCESS,
        )
    };
    check_long(ret).map(drop)
}

/// Size of the handle buffer (`MAX_HANDLE_SZ`).
pub(crate) const MAX_HANDLE_SZ: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub(crate) struct FileHandleBuf {
    /// Bytes of `f_handle` in use.
    pub(crate) handle_bytes: u32,
    /// Filesystem-specific type.
    pub(crate) handle_type: i32,
    /// The opaque handle.
    pub(crate) f_handle: [u8; MAX_HANDLE_SZ],
}

/// `name_to_handle_at(fd, "", AT_EMPTY_PATH)`; returns the handle and the mount id.
pub(crate) fn name_to_handle(fd: BorrowedFd<'_>) -> io::Result<(FileHandleBuf, i32)> {
    let mut fh = FileHandleBuf {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `fd` is live, the path is ""; `fh` is a `file_handle` header followed by
    // `handle_bytes` writable bytes; `mount_id` is writable. Result checked.
    let ret = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            (&raw mut fh).cast::<libc::file_handle>(),
            &raw mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    check(ret)?;
    Ok((fh, mount_id))
}

/// `open_by_handle_at(mount_fd, handle, flags)`.
fn open_by_handle_raw(
    mount_fd: BorrowedFd<'_>,
    handle: &FileHandleBuf,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    let mut copy = *handle;
    // SAFETY: `mount_fd` is live; `copy` is a valid `file_handle` with `handle_bytes` ≤
    // MAX_HANDLE_SZ bytes behind it (the kernel only reads it). The fd is checked by `owned`.
    owned(unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&raw mut copy).cast::<libc::file_handle>(),
            flags | libc::O_CLOEXEC,
        )
    })
}

/// `open_by_handle_at(mount_fd, handle, O_PATH)`: a reference to the inode.
pub(crate) fn open_by_handle_path(
    mount_fd: BorrowedFd<'_>,
    handle: &FileHandleBuf,
) -> io::Result<OwnedFd> {
    open_by_handle_raw(mount_fd, handle, libc::O_PATH)
}

/// `open_by_handle_at` for I/O: only `crate::open` holds the token.
pub(crate) fn open_by_handle_io(
    _token: &OpenToken,
    mount_fd: BorrowedFd<'_>,
    handle: &FileHandleBuf,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    open_by_handle_raw(mount_fd, handle, flags & !libc::O_PATH)
}

/// `fcntl(F_GETFL)` (tests).
/// `fcntl(F_GETFL)` (tests).
#[cfg(test)]
pub(crate) fn status_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    Ok(nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?)
}

/// `fcntl(F_SETFL, flags)`.
pub(crate) fn set_status_flags(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    let arg = FcntlArg::F_SETFL(OFlag::from_bits_retain(flags));
    nix::fcntl::fcntl(fd.as_raw_fd(), arg)?;
    Ok(())
}

/// Sets this thread's effective uid (`SYS_setresuid(-1, uid, -1)`: the raw system call acts on
/// the calling thread only, unlike libc's process-wide wrapper, which nix calls).
pub(crate) fn set_thread_euid(uid: u32) -> io::Result<()> {
    // SAFETY: a plain system call with integer arguments; result checked.
    let ret = unsafe { libc::syscall(libc::SYS_setresuid, -1, uid, -1) };
    check_long(ret).map(drop)
}

/// Sets this thread's effective gid (`SYS_setresgid(-1, gid, -1)`, thread only).
pub(crate) fn set_thread_egid(gid: u32) -> io::Result<()> {
    // SAFETY: a plain system call with integer arguments; result checked.
    let ret = unsafe { libc::syscall(libc::SYS_setresgid, -1, gid, -1) };
    check_long(ret).map(drop)
}

/// Sets this thread's supplementary groups (`SYS_setgroups`, thread only).
pub(crate) fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` points to `groups.len()` gids; result checked.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    check_long(ret).map(drop)
}

/// `unshare(CLONE_FS)`: gives this thread its own umask (and cwd).
pub(crate) fn unshare_fs() -> io::Result<()> {
    Ok(nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?)
}

/// `umask`; returns the previous mask.
pub(crate) fn umask(mask: u32) -> u32 {
    nix::sys::stat::umask(mode(mask)).bits()
}

/// The soft `RLIMIT_NOFILE`.
pub(crate) fn nofile_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// The thread's effective uid.
pub(crate) fn geteuid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Gives this thread a mount namespace of its own in which `/proc` is lazily unmounted, as
/// after the daemon's `pivot_root` (tests; root only).
#[cfg(test)]
pub(crate) fn hide_proc_on_this_thread_for_tests() -> io::Result<()> {
    use nix::mount::{MntFlags, MsFlags};
    // CLONE_NEWNS (with the implied CLONE_FS) affects this thread only and is allowed in a
    // multi-threaded process.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    // Makes the copy's mounts private so that nothing below propagates back to the host's
    // namespace.
    nix::mount::mount(
        Some(c"none"),
        c"/",
        None::<&CStr>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&CStr>,
    )?;
    Ok(nix::mount::umount2(c"/proc", MntFlags::MNT_DETACH)?)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn open_beneath_fallback_refuses_dotdot_and_slash() {
        // Both resolution paths must confine: force the fallback (process-wide, but the
        // fallback is equally safe for every other test running meanwhile).
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let p = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = open_dir_path(&p).unwrap();
        disable_openat2_for_tests();
        let e = open_beneath_path(d.as_fd(), c"..").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
        let e = open_beneath_path(d.as_fd(), c"a/b").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
        // A trailing symlink opens as the link itself.
        let l = open_beneath_path(d.as_fd(), c"l").unwrap();
        let stx = statx(l.as_fd(), 0, libc::STATX_MODE).unwrap();
        assert_eq!(u32::from(stx.stx_mode) & libc::S_IFMT, libc::S_IFLNK);
        HAVE_OPENAT2.store(true, Ordering::Relaxed);
    }

    #[test]
    fn open_beneath_openat2_refuses_dotdot() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = open_dir_path(&p).unwrap();
        let e = open_beneath_path(d.as_fd(), c"..").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
    }

    #[test]
    fn utimensat_empty_path_works_on_o_path_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("l")).unwrap();
        let p = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = open_dir_path(&p).unwrap();
        let l = open_beneath_path(d.as_fd(), c"l").unwrap();
        let t = [libc::timespec {
            tv_sec: 1000,
            tv_nsec: 0,
        }; 2];
        utimensat(
            l.as_fd(),
            EMPTY,
            &t,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let stx = statx(l.as_fd(), 0, libc::STATX_MTIME).unwrap();
        assert_eq!(stx.stx_mtime.tv_sec, 1000);
    }

    #[test]
    fn xattr_calls_take_xattrat_or_the_absolute_path_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let p = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = open_dir_path(&p).unwrap();
        let f = open_beneath_path(d.as_fd(), c"f").unwrap();
        let proc_dir = open_dir_path(c"/proc/self/fd").unwrap();
        let rel = std::ffi::CString::new(f.as_raw_fd().to_string()).unwrap();
        let abs = std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
        let path = |abs| XattrPath {
            proc_dir: proc_dir.as_fd(),
            rel: &rel,
            abs,
        };
        let roundtrip = |p: XattrPath<'_>| -> io::Result<()> {
            setxattr(p, c"user.t", b"v1", 0)?;
            let mut buf = [0u8; 8];
            assert_eq!(getxattr(p, c"user.t", &mut [])?, 2);
            assert_eq!(getxattr(p, c"user.t", &mut buf)?, 2);
            assert_eq!(&buf[..2], b"v1");
            let n = listxattr(p, &mut [])?;
            let mut list = vec![0u8; n];
            listxattr(p, &mut list)?;
            assert!(list.split(|&b| b == 0).any(|n| n == b"user.t"));
            removexattr(p, c"user.t")?;
            assert_eq!(
                getxattr(p, c"user.t", &mut buf).unwrap_err().raw_os_error(),
                Some(libc::ENODATA)
            );
            Ok(())
        };
        // `*xattrat` beneath the /proc/self/fd descriptor: the absolute path is never used,
        // so a bogus one changes nothing.
        force_xattr_path_for_tests(false);
        roundtrip(path(c"/nonexistent/proc/self/fd/0")).unwrap();
        // The fallback: the absolute path and nothing else.
        force_xattr_path_for_tests(true);
        roundtrip(path(&abs)).unwrap();
        let e = roundtrip(path(c"/nonexistent/proc/self/fd/0")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        force_xattr_path_for_tests(false);
    }
}
