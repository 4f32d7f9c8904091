//! Every unsafe operation of the crate: vectored file I/O on guest memory (portable), and for
//! `dev_fuse` (Linux, feature `dev-fuse`) positional I/O on host buffers and the `/dev/fuse`
//! mount, unmount and clone calls.
//!
//! Each function is a safe wrapper around one system call; the host-buffer and mount calls go
//! through `nix` (its `Errno` is the kernel's number), the guest-memory iovecs and the clone
//! ioctl through `libc`. Guest memory reaches a system call
//! only as an iovec built from a [`VolatileSlice`] (through vm-memory's pointer guards), never
//! as a Rust reference.

#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
use std::ffi::CStr;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};

use vm_memory::VolatileSlice;
use vm_memory::bitmap::BitmapSlice;
use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};

/// The most iovecs one `preadv`/`pwritev` accepts (`UIO_MAXIOV` on Linux).
pub(crate) const IOV_MAX: usize = 1024;

/// [`fuse_abi::DEV_IOC_CLONE`] as `ioctl` takes it.
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
const FUSE_DEV_IOC_CLONE: libc::c_ulong = fuse_abi::DEV_IOC_CLONE as libc::c_ulong;

/// Reusable storage for the iovecs of one vectored call, and the vm-memory guards that keep
/// their memory mapped while the call runs. `G` is [`PtrGuard`] (guest memory is read: the
/// request side, `pwritev`) or [`PtrGuardMut`] (guest memory is written: the reply side,
/// `preadv`).
///
/// The vectors keep their capacity between calls, so a steady state allocates nothing. They
/// are only filled through a [`Batch`], which empties them first.
pub(crate) struct IoVecs<G> {
    // INVARIANTS: outside a live `Batch`, the pointers here are never passed to the kernel;
    // a `Batch` clears both vectors before it hands out any way to add to them.
    iovs: Vec<libc::iovec>,
    guards: Vec<G>,
}

// SAFETY: the raw pointers held in `iovs` (and in the guards, which hold the same kind of
// pointer) are never dereferenced by Rust code. They are only handed to the kernel by
// `Batch::preadv`/`Batch::pwritev`, on the thread that owns the `Batch`, while the `'m` borrow
// of the guest memory that made them valid is alive; every `Batch` clears the vectors before
// use, so pointers left over from an earlier batch are never used. Moving the (possibly stale)
// pointer values to another thread is therefore harmless.
unsafe impl<G> Send for IoVecs<G> {}

impl<G> Default for IoVecs<G> {
    fn default() -> Self {
        Self {
            iovs: Vec::new(),
            guards: Vec::new(),
        }
    }
}

impl<G> fmt::Debug for IoVecs<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoVecs")
            .field("capacity", &self.iovs.capacity())
            .finish()
    }
}

impl<G> IoVecs<G> {
    /// Starts a batch over guest memory borrowed for `'m`, emptying the vectors first.
    pub(crate) fn batch<'m>(&mut self) -> Batch<'_, 'm, G> {
        self.iovs.clear();
        self.guards.clear();
        Batch {
            bufs: self,
            _mem: PhantomData,
        }
    }
}

/// The iovecs of one vectored call over guest memory borrowed for `'m`.
pub(crate) struct Batch<'s, 'm, G> {
    bufs: &'s mut IoVecs<G>,
    _mem: PhantomData<&'m ()>,
}

impl<G> Batch<'_, '_, G> {
    /// Whether no more iovecs fit in one call.
    pub(crate) fn is_full(&self) -> bool {
        self.bufs.iovs.len() >= IOV_MAX
    }

    /// The number of iovecs so far.
    pub(crate) fn len(&self) -> usize {
        self.bufs.iovs.len()
    }
}

impl<G> Drop for Batch<'_, '_, G> {
    fn drop(&mut self) {
        self.bufs.iovs.clear();
        self.bufs.guards.clear();
    }
}

impl<'m> Batch<'_, 'm, PtrGuard> {
    /// Adds `slice` as the source of the next iovec. Returns `false` (and adds nothing) when the
    /// batch is full.
    pub(crate) fn push<B: BitmapSlice>(&mut self, slice: &VolatileSlice<'m, B>) -> bool {
        if self.is_full() {
            return false;
        }
        let guard = slice.ptr_guard();
        self.bufs.iovs.push(libc::iovec {
            iov_base: guard.as_ptr().cast_mut().cast(),
            iov_len: guard.len(),
        });
        self.bufs.guards.push(guard);
        true
    }

    /// `pwritev(fd, iovecs, off)`: moves the batch's guest memory into the file. Returns the
    /// bytes written.
    pub(crate) fn pwritev(self, fd: BorrowedFd<'_>, off: u64) -> io::Result<usize> {
        let off = file_offset(off)?;
        let cnt = iov_count(self.len())?;
        // SAFETY: `fd` is a borrowed, open descriptor for the whole call. `iovs` holds `cnt`
        // initialised iovecs; each names `iov_len` bytes of guest memory taken from a
        // `VolatileSlice<'m>` whose guard is held in `guards` until the batch drops, and the
        // `'m` borrow of the guest memory outlives the batch, so every range stays mapped for
        // the call. The kernel only reads these ranges. The result is checked below.
        let ret = unsafe { libc::pwritev(fd.as_raw_fd(), self.bufs.iovs.as_ptr(), cnt, off) };
        byte_count(ret)
    }
}

impl<'m> Batch<'_, 'm, PtrGuardMut> {
    /// Adds `slice` as the destination of the next iovec. Returns `false` (and adds nothing)
    /// when the batch is full. The caller marks the bytes it reports as written dirty.
    pub(crate) fn push<B: BitmapSlice>(&mut self, slice: &VolatileSlice<'m, B>) -> bool {
        if self.is_full() {
            return false;
        }
        let guard = slice.ptr_guard_mut();
        self.bufs.iovs.push(libc::iovec {
            iov_base: guard.as_ptr().cast(),
            iov_len: guard.len(),
        });
        self.bufs.guards.push(guard);
        true
    }

    /// `preadv(fd, iovecs, off)`: fills the batch's guest memory from the file. Returns the
    /// bytes read.
    pub(crate) fn preadv(self, fd: BorrowedFd<'_>, off: u64) -> io::Result<usize> {
        let off = file_offset(off)?;
        let cnt = iov_count(self.len())?;
        // SAFETY: `fd` is a borrowed, open descriptor for the whole call. `iovs` holds `cnt`
        // initialised iovecs; each names `iov_len` writable bytes of guest memory taken from a
        // `VolatileSlice<'m>` (through `ptr_guard_mut`) whose guard is held in `guards` until
        // the batch drops, and the `'m` borrow of the guest memory outlives the batch, so every
        // range stays mapped for the call. Guest memory is never aliased by a Rust reference,
        // so the kernel's writes break no Rust aliasing rule. The result is checked below.
        let ret = unsafe { libc::preadv(fd.as_raw_fd(), self.bufs.iovs.as_ptr(), cnt, off) };
        byte_count(ret)
    }
}

/// A file offset as the kernel takes it, or `EINVAL`.
fn file_offset(off: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(off).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An iovec count as the kernel takes it.
fn iov_count(len: usize) -> io::Result<libc::c_int> {
    libc::c_int::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The byte count of a read/write-like call, or the `errno` it set.
fn byte_count(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `mount(source, target, fstype, flags, data)`.
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
pub(crate) fn mount(
    source: &CStr,
    target: &CStr,
    fstype: &CStr,
    flags: libc::c_ulong,
    data: &CStr,
) -> io::Result<()> {
    let flags = nix::mount::MsFlags::from_bits_retain(flags);
    Ok(nix::mount::mount(
        Some(source),
        target,
        Some(fstype),
        flags,
        Some(data),
    )?)
}

/// `umount2(target, flags)`.
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
pub(crate) fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    let flags = nix::mount::MntFlags::from_bits_retain(flags);
    Ok(nix::mount::umount2(target, flags)?)
}

/// `ioctl(clone, FUSE_DEV_IOC_CLONE, &session)`: attaches the freshly opened `/dev/fuse`
/// descriptor `clone` to the connection of `session`.
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
pub(crate) fn fuse_dev_clone(clone: BorrowedFd<'_>, session: BorrowedFd<'_>) -> io::Result<()> {
    let Ok(session_fd) = u32::try_from(session.as_raw_fd()) else {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    };
    // SAFETY: `clone` is open for the call; FUSE_DEV_IOC_CLONE reads one `uint32_t` through the
    // pointer, which points to `session_fd`, a live local. The result is checked.
    let ret = unsafe {
        libc::ioctl(
            clone.as_raw_fd(),
            FUSE_DEV_IOC_CLONE,
            std::ptr::from_ref(&session_fd),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The effective user id of this process.
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
pub(crate) fn geteuid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The effective group id of this process.
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
pub(crate) fn getegid() -> u32 {
    nix::unistd::getegid().as_raw()
}
