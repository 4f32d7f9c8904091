//! The system calls [`super::DarwinHost`] makes, as safe functions over the `nix` and `libc`
//! crates' Apple definitions: one function per call, no policy, every failure returned as the
//! thread's `errno` in Darwin numbering (nix's `Errno`, or read through `__error()`).
//!
//! `nix` makes the calls it covers with the same arguments; `libc` is left for what it lacks:
//! `statfs` (nix's result hides the libc struct), `pathconf` (its "no limit" answer is told from
//! an error by `errno`), `getattrlist`, `readlink`/`freadlink` into the caller's buffer,
//! `rmdir`, `renamex_np`, `utimensat`/`futimens` on raw timespecs, the xattr calls, `lseek`
//! (nix's `Whence` has no `SEEK_HOLE`/`SEEK_DATA` on Apple targets), `F_PREALLOCATE`,
//! `F_PUNCHHOLE`, `F_NOCACHE` and the lock commands of `fcntl`, `flock`, and the directory
//! stream.
//!
//! Every `unsafe` block holds one unsafe operation and says why it is sound. The recurring
//! arguments:
//!
//! * a `&CStr` is a valid NUL-terminated string for the whole call;
//! * a slice's pointer and length describe memory that is valid (and, for `&mut`, writable and
//!   not aliased) for the whole call; an empty slice is passed as a null pointer with length 0;
//! * a `BorrowedFd` is an open descriptor for the whole call, and no call here closes it;
//! * a structure passed by pointer is a live, correctly laid out `libc` value that the kernel
//!   reads or fills within the call only.

use std::ffi::CStr;
use std::mem::{MaybeUninit, offset_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::ptr::{self, NonNull};

use libc::{c_char, c_int, c_long, c_uint, c_void, mode_t, off_t};
use nix::fcntl::{AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode};

use crate::errno::DarwinErrno;
use crate::host::HostResult;

/// The calling thread's `errno`.
pub(super) fn errno() -> DarwinErrno {
    // SAFETY: `__error` has no preconditions; it returns the address of the calling thread's
    // `errno`.
    let location = unsafe { libc::__error() };
    // SAFETY: that address is valid, aligned and initialised for as long as this thread runs,
    // and only this thread uses it.
    DarwinErrno::from_raw(unsafe { location.read() })
}

/// Sets the calling thread's `errno` to 0, for the calls whose failure is only visible there
/// (`readdir`, `pathconf`).
fn clear_errno() {
    // SAFETY: as in `errno`.
    let location = unsafe { libc::__error() };
    // SAFETY: as in `errno`; the location is writable.
    unsafe { location.write(0) };
}

/// A `nix` result with its errno as a [`DarwinErrno`].
fn nx<T>(r: nix::Result<T>) -> HostResult<T> {
    r.map_err(|e| DarwinErrno::from_raw(e as i32))
}

/// `Ok` for a call's 0 (or any non-negative) result, `errno` for -1.
fn check(ret: c_int) -> HostResult<()> {
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// The byte count a call returned, or `errno` for -1.
fn check_len<T>(ret: T) -> HostResult<usize>
where
    usize: TryFrom<T>,
{
    usize::try_from(ret).map_err(|_| errno())
}

/// A buffer to fill, as the kernel wants it: null for an empty slice (a size probe).
const fn out_ptr(buf: &mut [u8]) -> *mut c_void {
    if buf.is_empty() {
        ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    }
}

/// A buffer to read, as the kernel wants it: null for an empty slice.
const fn in_ptr(buf: &[u8]) -> *const c_void {
    if buf.is_empty() {
        ptr::null()
    } else {
        buf.as_ptr().cast()
    }
}

// --- Metadata ---------------------------------------------------------------------------------

/// `lstat(2)`.
pub(super) fn lstat(path: &CStr) -> HostResult<libc::stat> {
    nx(nix::sys::stat::lstat(path))
}

/// `fstat(2)`.
pub(super) fn fstat(fd: BorrowedFd<'_>) -> HostResult<libc::stat> {
    nx(nix::sys::stat::fstat(fd.as_raw_fd()))
}

/// `statfs(2)` (64-bit counts; `statfs$INODE64` on `x86_64`, as the `libc` crate links it).
pub(super) fn statfs(path: &CStr) -> HostResult<libc::statfs> {
    let mut st = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `path` is NUL-terminated; `st` is writable memory of `struct statfs`'s size.
    check(unsafe { libc::statfs(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: `struct statfs` holds only integers and integer arrays (all zeroes is valid), and
    // the kernel wrote only valid values over them.
    Ok(unsafe { st.assume_init() })
}

/// `fstatfs(2)`.
pub(super) fn fstatfs(fd: BorrowedFd<'_>) -> HostResult<libc::statfs> {
    let mut st = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `fd` is open; `st` is writable memory of `struct statfs`'s size.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: `struct statfs` holds only integers and integer arrays (all zeroes is valid), and
    // the kernel wrote only valid values over them.
    Ok(unsafe { st.assume_init() })
}

/// A `pathconf` result: `Some(value)`, `None` for "no limit / no answer" (-1 with `errno`
/// untouched), or the error.
fn conf_value(ret: c_long) -> HostResult<Option<c_long>> {
    if ret != -1 {
        return Ok(Some(ret));
    }
    let err = errno();
    if err.raw() == 0 { Ok(None) } else { Err(err) }
}

/// `pathconf(2)`.
pub(super) fn pathconf(path: &CStr, name: c_int) -> HostResult<Option<c_long>> {
    clear_errno();
    // SAFETY: `path` is NUL-terminated.
    conf_value(unsafe { libc::pathconf(path.as_ptr(), name) })
}

/// `fpathconf(2)`.
pub(super) fn fpathconf(fd: BorrowedFd<'_>, name: c_int) -> HostResult<Option<c_long>> {
    clear_errno();
    // SAFETY: `fd` is open.
    conf_value(unsafe { libc::fpathconf(fd.as_raw_fd(), name) })
}

/// `getattrlist(2)`: the attributes `attrs` asks for, packed into `buf`.
pub(super) fn getattrlist(
    path: &CStr,
    attrs: &mut libc::attrlist,
    buf: &mut [u8],
    options: u32,
) -> HostResult<()> {
    let attrs: *mut libc::attrlist = attrs;
    // SAFETY: `path` is NUL-terminated; `attrs` is a valid `struct attrlist` (the kernel only
    // reads it); `buf` is writable for `buf.len()` bytes, and the kernel never writes more.
    check(unsafe {
        libc::getattrlist(
            path.as_ptr(),
            attrs.cast(),
            out_ptr(buf),
            buf.len(),
            options,
        )
    })
}

// --- Opening, creating, removing --------------------------------------------------------------

/// `open(2)`; `mode` is used with `O_CREAT`.
pub(super) fn open(path: &CStr, flags: c_int, mode: mode_t) -> HostResult<OwnedFd> {
    // nix passes the variadic mode promoted to `unsigned int`, as C passes a `mode_t`.
    let flags = OFlag::from_bits_retain(flags);
    let fd = nx(nix::fcntl::open(path, flags, Mode::from_bits_retain(mode)))?;
    // SAFETY: `open` returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdir(2)`.
pub(super) fn mkdir(path: &CStr, mode: mode_t) -> HostResult<()> {
    nx(nix::unistd::mkdir(path, Mode::from_bits_retain(mode)))
}

/// `symlink(2)`: creates `path` pointing to `target` (as `symlinkat(target, AT_FDCWD, path)`).
pub(super) fn symlink(target: &CStr, path: &CStr) -> HostResult<()> {
    nx(nix::unistd::symlinkat(target, None, path))
}

/// `readlink(2)` into `buf`; the length read (no NUL is added).
pub(super) fn readlink(path: &CStr, buf: &mut [u8]) -> HostResult<usize> {
    // SAFETY: `path` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
    check_len(unsafe { libc::readlink(path.as_ptr(), out_ptr(buf).cast(), buf.len()) })
}

/// `freadlink(2)` (macOS 13 and later) into `buf`; the length read.
pub(super) fn freadlink(fd: BorrowedFd<'_>, buf: &mut [u8]) -> HostResult<usize> {
    // SAFETY: `fd` is open; `buf` is writable for `buf.len()` bytes.
    check_len(unsafe { libc::freadlink(fd.as_raw_fd(), out_ptr(buf).cast(), buf.len()) })
}

/// `unlink(2)`.
pub(super) fn unlink(path: &CStr) -> HostResult<()> {
    nx(nix::unistd::unlink(path))
}

/// `rmdir(2)`.
pub(super) fn rmdir(path: &CStr) -> HostResult<()> {
    // SAFETY: `path` is NUL-terminated.
    check(unsafe { libc::rmdir(path.as_ptr()) })
}

/// `renamex_np(2)` with Darwin `RENAME_*` flags.
pub(super) fn renamex_np(from: &CStr, to: &CStr, flags: c_uint) -> HostResult<()> {
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::renamex_np(from.as_ptr(), to.as_ptr(), flags) })
}

/// `linkat(AT_FDCWD, src, AT_FDCWD, dst, flags)`.
pub(super) fn linkat(src: &CStr, dst: &CStr, flags: c_int) -> HostResult<()> {
    let flags = AtFlags::from_bits_retain(flags);
    nx(nix::unistd::linkat(None, src, None, dst, flags))
}

// --- Attributes -------------------------------------------------------------------------------

/// `fchmodat(AT_FDCWD, path, mode, flags)`; `flags` is 0 or `AT_SYMLINK_NOFOLLOW` (anything
/// else is EINVAL, as from the kernel).
pub(super) fn fchmodat(path: &CStr, mode: mode_t, flags: c_int) -> HostResult<()> {
    let flag = match flags {
        0 => FchmodatFlags::FollowSymlink,
        libc::AT_SYMLINK_NOFOLLOW => FchmodatFlags::NoFollowSymlink,
        _ => return Err(DarwinErrno::EINVAL),
    };
    let mode = Mode::from_bits_retain(mode);
    nx(nix::sys::stat::fchmodat(None, path, mode, flag))
}

/// `fchmod(2)`.
pub(super) fn fchmod(fd: BorrowedFd<'_>, mode: mode_t) -> HostResult<()> {
    nx(nix::sys::stat::fchmod(
        fd.as_raw_fd(),
        Mode::from_bits_retain(mode),
    ))
}

/// `utimensat(AT_FDCWD, path, times, flags)`.
pub(super) fn utimensat(path: &CStr, times: &[libc::timespec; 2], flags: c_int) -> HostResult<()> {
    // SAFETY: `path` is NUL-terminated; `times` points to the two timespecs the call reads.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), flags) })
}

/// `futimens(2)`.
pub(super) fn futimens(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> HostResult<()> {
    // SAFETY: `fd` is open; `times` points to the two timespecs the call reads.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

// --- Extended attributes ----------------------------------------------------------------------

/// `getxattr(2)` at position 0; an empty `buf` asks for the size.
pub(super) fn getxattr(
    path: &CStr,
    name: &CStr,
    buf: &mut [u8],
    options: c_int,
) -> HostResult<usize> {
    // SAFETY: `path` and `name` are NUL-terminated; `buf` is writable for `buf.len()` bytes
    // (null and 0 for a size probe).
    check_len(unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            out_ptr(buf),
            buf.len(),
            0,
            options,
        )
    })
}

/// `fgetxattr(2)` at position 0; an empty `buf` asks for the size.
pub(super) fn fgetxattr(
    fd: BorrowedFd<'_>,
    name: &CStr,
    buf: &mut [u8],
    options: c_int,
) -> HostResult<usize> {
    // SAFETY: `fd` is open; `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes
    // (null and 0 for a size probe).
    check_len(unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            out_ptr(buf),
            buf.len(),
            0,
            options,
        )
    })
}

/// `setxattr(2)` at position 0.
pub(super) fn setxattr(path: &CStr, name: &CStr, value: &[u8], options: c_int) -> HostResult<()> {
    // SAFETY: `path` and `name` are NUL-terminated; `value` is readable for `value.len()` bytes
    // (null and 0 for an empty value).
    check(unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            in_ptr(value),
            value.len(),
            0,
            options,
        )
    })
}

/// `fsetxattr(2)` at position 0.
pub(super) fn fsetxattr(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    options: c_int,
) -> HostResult<()> {
    // SAFETY: `fd` is open; `name` is NUL-terminated; `value` is readable for `value.len()`
    // bytes (null and 0 for an empty value).
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            in_ptr(value),
            value.len(),
            0,
            options,
        )
    })
}

/// `listxattr(2)`; an empty `buf` asks for the size.
pub(super) fn listxattr(path: &CStr, buf: &mut [u8], options: c_int) -> HostResult<usize> {
    // SAFETY: `path` is NUL-terminated; `buf` is writable for `buf.len()` bytes (null and 0 for
    // a size probe).
    check_len(unsafe {
        libc::listxattr(
            path.as_ptr(),
            out_ptr(buf).cast::<c_char>(),
            buf.len(),
            options,
        )
    })
}

/// `flistxattr(2)`; an empty `buf` asks for the size.
pub(super) fn flistxattr(fd: BorrowedFd<'_>, buf: &mut [u8], options: c_int) -> HostResult<usize> {
    // SAFETY: `fd` is open; `buf` is writable for `buf.len()` bytes (null and 0 for a size
    // probe).
    check_len(unsafe {
        libc::flistxattr(
            fd.as_raw_fd(),
            out_ptr(buf).cast::<c_char>(),
            buf.len(),
            options,
        )
    })
}

/// `removexattr(2)`.
pub(super) fn removexattr(path: &CStr, name: &CStr, options: c_int) -> HostResult<()> {
    // SAFETY: `path` and `name` are NUL-terminated.
    check(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr(), options) })
}

/// `fremovexattr(2)`.
pub(super) fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr, options: c_int) -> HostResult<()> {
    // SAFETY: `fd` is open; `name` is NUL-terminated.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr(), options) })
}

// --- Data -------------------------------------------------------------------------------------

/// `pread(2)`.
pub(super) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: off_t) -> HostResult<usize> {
    nx(nix::sys::uio::pread(fd, buf, offset))
}

/// `pwrite(2)`.
pub(super) fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: off_t) -> HostResult<usize> {
    nx(nix::sys::uio::pwrite(fd, buf, offset))
}

/// `lseek(2)`: the new offset.
pub(super) fn lseek(fd: BorrowedFd<'_>, offset: off_t, whence: c_int) -> HostResult<u64> {
    // SAFETY: `fd` is open.
    let ret = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    u64::try_from(ret).map_err(|_| errno())
}

/// `ftruncate(2)`.
pub(super) fn ftruncate(fd: BorrowedFd<'_>, len: off_t) -> HostResult<()> {
    nx(nix::unistd::ftruncate(fd, len))
}

/// `fsync(2)`.
pub(super) fn fsync(fd: BorrowedFd<'_>) -> HostResult<()> {
    nx(nix::unistd::fsync(fd.as_raw_fd()))
}

/// `fcntl(F_FULLFSYNC)`.
pub(super) fn fcntl_fullfsync(fd: BorrowedFd<'_>) -> HostResult<()> {
    nx(nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_FULLFSYNC)).map(drop)
}

/// `fcntl(F_PREALLOCATE)`; the kernel writes `fst_bytesalloc` back into `store`.
pub(super) fn fcntl_preallocate(fd: BorrowedFd<'_>, store: &mut libc::fstore_t) -> HostResult<()> {
    let store: *mut libc::fstore_t = store;
    // SAFETY: `fd` is open; `F_PREALLOCATE` reads and writes one `fstore_t`, which `store`
    // points to and which is not otherwise used during the call.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_PREALLOCATE, store) })
}

/// `fcntl(F_PUNCHHOLE)`.
pub(super) fn fcntl_punchhole(fd: BorrowedFd<'_>, hole: &libc::fpunchhole_t) -> HostResult<()> {
    let hole: *const libc::fpunchhole_t = hole;
    // SAFETY: `fd` is open; `F_PUNCHHOLE` only reads the one `fpunchhole_t` `hole` points to.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_PUNCHHOLE, hole) })
}

/// `fcntl(F_NOCACHE, on)`.
pub(super) fn fcntl_nocache(fd: BorrowedFd<'_>, on: bool) -> HostResult<()> {
    // SAFETY: `fd` is open; `F_NOCACHE` takes an `int`.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_NOCACHE, c_int::from(on)) })
}

/// A record-lock `fcntl`: `cmd` must be `F_GETLK`, `F_SETLK`, `F_SETLKW` or one of their
/// `F_OFD_*` forms (`EINVAL` otherwise: any other command would read or write something else
/// than a `struct flock` through the pointer). `F_GETLK` writes the result back into `lock`.
pub(super) fn fcntl_lock(fd: BorrowedFd<'_>, cmd: c_int, lock: &mut libc::flock) -> HostResult<()> {
    let lock_cmds = [
        libc::F_GETLK,
        libc::F_SETLK,
        libc::F_SETLKW,
        libc::F_OFD_GETLK,
        libc::F_OFD_SETLK,
        libc::F_OFD_SETLKW,
    ];
    if !lock_cmds.contains(&cmd) {
        return Err(DarwinErrno::EINVAL);
    }
    let lock: *mut libc::flock = lock;
    // SAFETY: `fd` is open; `cmd` is a lock command, which reads and writes exactly one
    // `struct flock`, the one `lock` points to, not otherwise used during the call.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lock) })
}

/// Clears `O_NONBLOCK` on the open file description of `fd` (`fcntl(F_GETFL)`, then
/// `fcntl(F_SETFL)` without it).
pub(super) fn clear_nonblock(fd: BorrowedFd<'_>) -> HostResult<()> {
    let flags = nx(nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL))?;
    let flags = OFlag::from_bits_retain(flags & !libc::O_NONBLOCK);
    nx(nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))).map(drop)
}

/// `getrlimit(RLIMIT_NOFILE)`'s soft limit; `None` if unlimited or unknown.
pub(super) fn nofile_limit() -> Option<u64> {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != libc::RLIM_INFINITY).then_some(soft)
}

/// `flock(2)`.
pub(super) fn flock(fd: BorrowedFd<'_>, operation: c_int) -> HostResult<()> {
    // SAFETY: `fd` is open.
    check(unsafe { libc::flock(fd.as_raw_fd(), operation) })
}

// --- Directories ------------------------------------------------------------------------------

/// A directory stream (`DIR *`) that owns its descriptor; `closedir` when dropped.
#[derive(Debug)]
pub(super) struct Dir(NonNull<libc::DIR>);

// SAFETY: a `DIR *` is not tied to the thread that opened it; every use goes through `&mut
// self` or ownership, so one thread at a time touches it.
unsafe impl Send for Dir {}

/// One entry as `readdir` returned it, borrowed from the stream until the next read.
#[derive(Debug)]
pub(super) struct DirEntry<'a> {
    /// `d_ino`.
    pub(super) ino: u64,
    /// `d_type`.
    pub(super) typ: u8,
    /// `d_name`, `d_namlen` bytes (no NUL).
    pub(super) name: &'a [u8],
}

/// The size of `struct dirent`'s `d_name` array: the longest name is one byte shorter.
const D_NAME_LEN: usize = 1024;
const _: () = assert!(offset_of!(libc::dirent, d_name) + D_NAME_LEN <= size_of::<libc::dirent>());

impl Dir {
    /// `fdopendir(3)`: the stream takes `fd` over (closing the stream closes it). On failure
    /// `fd` is closed here.
    pub(super) fn from_fd(fd: OwnedFd) -> HostResult<Dir> {
        // SAFETY: `fd` is an open descriptor owned here; on success the stream owns it from
        // now on (given up below), on failure it is still ours and dropped.
        let dir = unsafe { libc::fdopendir(fd.as_raw_fd()) };
        match NonNull::new(dir) {
            Some(dir) => {
                // The stream closes it in `closedir`.
                let _ = fd.into_raw_fd();
                Ok(Dir(dir))
            }
            // `errno` is read before `fd` is dropped (closed).
            None => Err(errno()),
        }
    }

    /// `rewinddir(3)`: back to the first entry.
    pub(super) fn rewind(&mut self) {
        // SAFETY: `self.0` is an open stream (closed only by `Drop`), used by one thread at a
        // time (`&mut self`).
        unsafe { libc::rewinddir(self.0.as_ptr()) };
    }

    /// `readdir(3)`: the next entry but `.` and `..`, `None` at the end (told from an error by
    /// `errno`).
    pub(super) fn read(&mut self) -> HostResult<Option<DirEntry<'_>>> {
        loop {
            clear_errno();
            // SAFETY: `self.0` is an open stream (closed only by `Drop`), used by one thread at a
            // time (`&mut self`).
            let entry = unsafe { libc::readdir(self.0.as_ptr()) };
            let Some(entry) = NonNull::new(entry) else {
                let err = errno();
                return if err.raw() == 0 { Ok(None) } else { Err(err) };
            };
            // The record lives in the stream's buffer until the next `readdir` or `closedir`, both
            // of which need `&mut self` / ownership, so it outlives the returned borrow. It is only
            // `d_reclen` bytes long (the fixed fields, `d_namlen` name bytes and a NUL), which may
            // be less than `size_of::<dirent>()`, so no reference to a whole `dirent` is made: each
            // field is read on its own, within the record.
            let base = entry.as_ptr().cast::<u8>().cast_const();
            let field = |offset: usize| base.wrapping_add(offset);
            // SAFETY: `d_ino` lies within the record (see above); read unaligned so as not to rely
            // on the buffer's alignment.
            let ino = unsafe {
                field(offset_of!(libc::dirent, d_ino))
                    .cast::<u64>()
                    .read_unaligned()
            };
            // SAFETY: as for `d_ino`.
            let namlen = unsafe {
                field(offset_of!(libc::dirent, d_namlen))
                    .cast::<u16>()
                    .read_unaligned()
            };
            // SAFETY: as for `d_ino`.
            let typ = unsafe { field(offset_of!(libc::dirent, d_type)).read() };
            // Never past `d_name`, whatever the record says.
            let len = usize::from(namlen).min(D_NAME_LEN - 1);
            // SAFETY: the record holds `d_namlen` initialised name bytes at `d_name`, readable and
            // not written until the next `readdir`/`closedir` (which the borrow of `self` excludes).
            let name =
                unsafe { std::slice::from_raw_parts(field(offset_of!(libc::dirent, d_name)), len) };
            if name == b"." || name == b".." {
                continue;
            }
            return Ok(Some(DirEntry { ino, typ, name }));
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream is open and closed exactly once, here; nothing borrows from it any
        // more. This also closes the descriptor the stream owns. An error here leaves nothing
        // to undo.
        let _ = unsafe { libc::closedir(self.0.as_ptr()) };
    }
}
