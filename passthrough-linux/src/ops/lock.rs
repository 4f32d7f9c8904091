//! Locks: GETLK, SETLK, SETLKW (POSIX, as open file description locks) and flock.
//!
//! POSIX locks belong to a lock owner (a guest process), not to an open file. Each (inode,
//! owner) pair gets its own host open file description, and the owner's locks are OFD locks on
//! it: owners conflict with each other exactly as processes do, one owner's locks through
//! several guest `fh`s merge, and FLUSH (a `close(2)` in the guest) closes the description,
//! which drops all of the owner's locks on the file as POSIX requires. flock locks (only with
//! [`Config::flock_locks`](crate::Config)) belong to the open file and are taken on the handle's
//! own descriptor.
//!
//! A sleeping request (SETLKW) never blocks the worker in the host kernel: it tries the
//! non-blocking form once and answers EAGAIN when the lock is held, which the server turns
//! into a pending request that the transport asks again later (see `FileSystem::setlk`).
//!
//! Lock descriptions are bounded by [`Config::max_lock_fds`](crate::Config) (ENOLCK past it)
//! and count against the descriptor budget; FLUSH of the owner, RELEASE of a handle the
//! description was used through, or FORGET of the node gives them back.
//!
//! # Why RELEASE drops descriptions
//!
//! A guest OFD lock (`F_OFD_SETLK`) has the guest's open file as its lock owner, and the guest
//! kernel never tells us when such a lock ends with its file: `fuse_flush` carries the closing
//! process's `files_struct` as the owner (never the file), and the last `fput` runs
//! `locks_remove_file` → `locks_remove_posix(filp, filp)`, which sends nothing because a FUSE
//! file's remote locks are not recorded in the guest inode's lock context. RELEASE of the
//! handle is the one message that says the open file is gone. So each description remembers
//! the handles it was used through, and RELEASE of any of them drops it.
//!
//! That never drops a process's POSIX locks too early: a process that locked through `fh` had
//! `fh` open then, and RELEASE of `fh` comes only after the last descriptor of that open file
//! is closed, including the process's own; that `close(2)` sent a FLUSH for the process (the
//! kernel flushes on every close), which already dropped the description and all its locks,
//! as POSIX requires. A lock the process takes afterwards through another handle makes a new
//! description that remembers only that handle.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use fuse_abi::Errno;
use fuse_abi::limits::OFFSET_MAX;
use fuse_server::{FsResult, Handle, Lock, LockOwner, NodeId};

use crate::errno::errno;
use crate::inode::{Inode, LockFd};
use crate::{PassthroughFs, sys};

fn to_flock(lock: &Lock) -> FsResult<libc::flock> {
    let typ = match lock.typ {
        0 => libc::F_RDLCK,
        1 => libc::F_WRLCK,
        2 => libc::F_UNLCK,
        _ => return Err(Errno::EINVAL),
    };
    if lock.end < lock.start {
        return Err(Errno::EINVAL);
    }
    let start = i64::try_from(lock.start).map_err(|_| Errno::EINVAL)?;
    let len = if lock.end >= OFFSET_MAX {
        0
    } else {
        i64::try_from(lock.end - lock.start + 1).map_err(|_| Errno::EINVAL)?
    };
    Ok(libc::flock {
        l_type: libc::c_short::try_from(typ).map_err(|_| Errno::EINVAL)?,
        l_whence: 0, // SEEK_SET
        l_start: start,
        l_len: len,
        l_pid: 0,
    })
}

/// One attempt of a sleeping request: a conflict (EAGAIN, or EACCES as F_SETLK may report
/// it) is EAGAIN, "ask again later".
fn try_sleeping(attempt: std::io::Result<()>) -> FsResult<()> {
    match attempt {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
            Err(Errno::EAGAIN)
        }
        Err(e) => Err(errno(e)),
    }
}

impl PassthroughFs {
    /// Runs `f` on the lock description of (`inode`, `owner`), creating it if `create`; the
    /// description remembers that it was used through `fh`.
    fn with_owner_fd<T>(
        &self,
        inode: &Inode,
        owner: LockOwner,
        fh: Handle,
        create: bool,
        f: impl FnOnce(Option<BorrowedFd<'_>>) -> FsResult<T>,
    ) -> FsResult<T> {
        let fd = {
            let mut fds = inode
                .lock_fds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if create && !fds.contains_key(&owner) {
                let lock_permit = self.lock_budget.acquire()?;
                let fd_permit = self.budget.acquire()?;
                let fd = if inode.is_dir() {
                    self.open_io(inode, libc::O_RDONLY | libc::O_DIRECTORY)
                } else {
                    self.open_io(inode, libc::O_RDWR)
                        .or_else(|_| self.open_io(inode, libc::O_RDONLY))
                }?;
                fds.insert(
                    owner,
                    LockFd {
                        fd: Arc::new(fd),
                        _fd_permit: fd_permit,
                        _lock_permit: lock_permit,
                        handles: Vec::new(),
                    },
                );
            }
            fds.get_mut(&owner).map(|l| {
                if !l.handles.contains(&fh) {
                    l.handles.push(fh);
                }
                Arc::clone(&l.fd)
            })
        };
        // The table is not locked while `f` runs: a SETLKW waiting here must not keep the
        // owner of the conflicting lock from unlocking.
        f(fd.as_deref().map(AsFd::as_fd))
    }

    pub(super) fn do_getlk(
        &self,
        _nodeid: NodeId,
        fh: Handle,
        owner: LockOwner,
        lock: Lock,
    ) -> FsResult<Lock> {
        let h = self.handles.get(fh)?;
        let mut fl = to_flock(&lock)?;
        self.with_owner_fd(&h.inode, owner, fh, true, |fd| {
            let fd = fd.ok_or(Errno::EBADF)?;
            sys::ofd_lock(fd, libc::F_OFD_GETLK, &mut fl).map_err(errno)
        })?;
        if i32::from(fl.l_type) == libc::F_UNLCK {
            return Ok(Lock { typ: 2, ..lock });
        }
        let start = u64::try_from(fl.l_start).unwrap_or(0);
        let end = match u64::try_from(fl.l_len) {
            Ok(0) | Err(_) => OFFSET_MAX,
            Ok(len) => start.saturating_add(len - 1).min(OFFSET_MAX),
        };
        Ok(Lock {
            start,
            end,
            typ: if i32::from(fl.l_type) == libc::F_WRLCK {
                1
            } else {
                0
            },
            pid: 0,
        })
    }

    pub(super) fn do_setlk(
        &self,
        _nodeid: NodeId,
        fh: Handle,
        owner: LockOwner,
        lock: Lock,
        sleep: bool,
        flock: bool,
    ) -> FsResult<()> {
        let h = self.handles.get(fh)?;
        if flock {
            if !self.cfg.flock_locks {
                // Not declared: the kernel keeps flock locks itself and never sends one.
                return Err(Errno::ENOSYS);
            }
            let op = match lock.typ {
                0 => libc::LOCK_SH,
                1 => libc::LOCK_EX,
                2 => libc::LOCK_UN,
                _ => return Err(Errno::EINVAL),
            };
            let try_once = || sys::flock(h.file.as_fd(), op | libc::LOCK_NB);
            return if sleep {
                try_sleeping(try_once())
            } else {
                try_once().map_err(errno)
            };
        }
        let fl = to_flock(&lock)?;
        let unlock = lock.typ == 2;
        self.with_owner_fd(&h.inode, owner, fh, !unlock, |fd| {
            let Some(fd) = fd else { return Ok(()) }; // unlock without any lock: nothing to do
            let try_once = || sys::ofd_lock(fd, libc::F_OFD_SETLK, &mut { fl });
            if sleep && !unlock {
                try_sleeping(try_once())
            } else {
                try_once().map_err(errno)
            }
        })
    }

    /// RELEASE (or RELEASEDIR) of `fh` on `inode`: drops the lock descriptions used through it
    /// (see the module docs for why that is right for OFD and POSIX locks alike).
    pub(super) fn drop_lock_fds_of(&self, inode: &Inode, fh: Handle) {
        inode
            .lock_fds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, l| !l.handles.contains(&fh));
    }
}
