//! Open files: OPEN, CREATE, TMPFILE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK,
//! COPY_FILE_RANGE, SYNCFS.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use fuse_abi::{Errno, InitFlags, OpenInFlags, WriteFlags};
use fuse_server::{
    Context, CopyFileRangeArgs, CreateContext, Entry, FsResult, Handle, LockOwner, Name, NodeId,
    OpenReply, ZeroCopyReader, ZeroCopyWriter,
};

use super::CName;
use crate::credentials::CredGuard;
use crate::errno::errno;
use crate::handle::OpenHandle;
use crate::inode::Inode;
use crate::open::IoFd;
use crate::xattrmap::HostName;
use crate::{PassthroughFs, sys};

/// Guest open flags that are passed to the host (the rest are dropped: O_NOATIME, O_ASYNC,
/// O_PATH, O_NOFOLLOW, O_CLOEXEC, O_CREAT, ... are the backend's business or meaningless here).
const PASSED_FLAGS: libc::c_int = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_TRUNC
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_LARGEFILE;

impl PassthroughFs {
    /// The host flags for a guest's open flags.
    pub(crate) fn host_open_flags(&self, flags: u32) -> libc::c_int {
        let guest = libc::c_int::from_ne_bytes(flags.to_ne_bytes());
        let mut f = guest & PASSED_FLAGS;
        if self.cfg.allow_direct_io {
            f |= guest & libc::O_DIRECT;
        }
        if self.negotiated().contains(InitFlags::WRITEBACK_CACHE) {
            // The kernel reads pages around partial writes and computes append offsets itself.
            if f & libc::O_ACCMODE == libc::O_WRONLY {
                f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
            }
            f &= !libc::O_APPEND;
        }
        f
    }

    fn open_reply(&self, fh: Handle) -> OpenReply {
        OpenReply {
            fh,
            flags: self.cfg.cache.open_flags(),
        }
    }

    fn check_write_access(&self, flags: libc::c_int) -> FsResult<()> {
        if self.cfg.readonly
            && (flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0)
        {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    fn killpriv_v2(&self) -> bool {
        self.cfg.killpriv_v2 && self.negotiated().contains(InitFlags::HANDLE_KILLPRIV_V2)
    }

    pub(super) fn do_open(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        flags: u32,
        open_flags: OpenInFlags,
    ) -> FsResult<OpenReply> {
        let inode = self.inodes.get(nodeid)?;
        let hflags = self.host_open_flags(flags);
        self.check_write_access(hflags)?;
        let permit = self.budget.acquire()?;
        // Devices, FIFOs and sockets are the guest kernel's own business: never opened here.
        let file = self.open_io(&inode, hflags)?;
        if hflags & libc::O_TRUNC != 0
            && open_flags.contains(OpenInFlags::KILL_SUIDGID)
            && self.killpriv_v2()
        {
            self.kill_suidgid(file.as_fd(), Some(ctx.gid))?;
        }
        let fh = self
            .handles
            .insert(OpenHandle::file(inode, file, hflags, permit));
        Ok(self.open_reply(fh))
    }

    /// CREATE (`name` given) and TMPFILE (`name` None), with the guest's open(2) `flags`.
    pub(super) fn do_create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Option<Name<'_>>,
        mode: u32,
        flags: u32,
    ) -> FsResult<(Entry, OpenReply)> {
        self.ro()?;
        let name = name.map(CName::new).transpose()?;
        let dir = self.inodes.get(parent)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let dfd = dir.path_fd().map_err(errno)?;
        let guest = libc::c_int::from_ne_bytes(flags.to_ne_bytes());
        let mut hflags = self.host_open_flags(flags);
        if hflags & libc::O_ACCMODE == libc::O_RDONLY && name.is_none() {
            hflags = (hflags & !libc::O_ACCMODE) | libc::O_RDWR; // O_TMPFILE needs write access
        }
        let permit = self.budget.acquire()?;
        let caller = self.caller(ctx, cctx);
        // CREATE of an existing name without O_EXCL opens what is there, through its node
        // (the one open path); the name may vanish in between, so a few attempts.
        let mut attempts = 0;
        let (file, inode, stx, created) = loop {
            attempts += 1;
            let made = {
                let guard = CredGuard::become_caller(caller, self.switch_creds)?;
                let perm = guard.mask_mode(mode & 0o7777);
                match &name {
                    Some(n) => self.create_io(dfd.as_fd(), n.as_cstr(), hflags, perm),
                    None => self.tmpfile_io(dfd.as_fd(), hflags, guest & libc::O_EXCL != 0, perm),
                }
            };
            match (made, &name) {
                (Ok(file), _) => {
                    let registered = self
                        .o_path_of(file.as_fd())
                        .and_then(|path| self.register(path));
                    match registered {
                        Ok((inode, stx)) => break (file, inode, stx, true),
                        Err(e) => {
                            // E.g. the inode budget is spent: the guest never learns of the
                            // file, so it does not stay behind.
                            if let Some(n) = &name {
                                let _ = sys::unlinkat(dfd.as_fd(), n.as_cstr(), 0);
                            }
                            return Err(e);
                        }
                    }
                }
                (Err(e), Some(n))
                    if e.raw_os_error() == Some(libc::EEXIST) && guest & libc::O_EXCL == 0 =>
                {
                    match self.open_existing(caller, dfd.as_fd(), n, hflags) {
                        Err(Errno::ENOENT) if attempts < 3 => {}
                        Err(e) => return Err(e),
                        Ok((file, inode, stx)) => break (file, inode, stx, false),
                    }
                }
                (Err(e), _) => return Err(errno(e)),
            }
        };
        let entry = self.entry_of(&inode, &stx);
        if created {
            if let Err(e) = self.apply_security_ctx(cctx, entry.nodeid) {
                self.inodes.forget(entry.nodeid, 1);
                if let Some(n) = &name {
                    let _ = sys::unlinkat(dfd.as_fd(), n.as_cstr(), 0);
                }
                return Err(e);
            }
        }
        let fh = self
            .handles
            .insert(OpenHandle::file(inode, file, hflags, permit));
        Ok((entry, self.open_reply(fh)))
    }

    /// The EEXIST half of CREATE: resolves `name` `O_PATH | O_NOFOLLOW`, registers its inode
    /// (a lookup reference for the reply) and opens it through [`PassthroughFs::open_io`],
    /// which refuses anything but a regular file (a directory is EISDIR, a symlink ELOOP, a
    /// device, FIFO or socket EACCES). `O_TRUNC` needs the caller's write permission, checked
    /// with its identity first: the guest kernel checks an existing file only after CREATE
    /// returns, too late for a truncation.
    fn open_existing(
        &self,
        caller: crate::credentials::Caller,
        dir: std::os::fd::BorrowedFd<'_>,
        name: &super::CName,
        hflags: libc::c_int,
    ) -> FsResult<(IoFd, std::sync::Arc<crate::inode::Inode>, libc::statx)> {
        let path = sys::open_beneath_path(dir, name.as_cstr()).map_err(errno)?;
        let (inode, _) = self.register(path)?;
        let opened = (|| {
            if inode.kind == fuse_abi::mode::S_IFDIR {
                return Err(Errno::EISDIR);
            }
            if hflags & libc::O_TRUNC != 0 && inode.kind == fuse_abi::mode::S_IFREG {
                let pfd = inode.path_fd().map_err(errno)?;
                let _guard = CredGuard::become_caller(caller, self.switch_creds)?;
                sys::access(pfd.as_fd(), 0o2).map_err(errno)?;
            }
            let file = self.open_io(&inode, hflags)?;
            let stx = sys::statx(file.as_fd(), 0, sys::STATX_WANTED).map_err(errno)?;
            Ok((file, stx))
        })();
        match opened {
            Ok((file, stx)) => Ok((file, inode, stx)),
            Err(e) => {
                self.inodes.forget(inode.nodeid, 1);
                Err(e)
            }
        }
    }

    pub(super) fn do_read(
        &self,
        fh: Handle,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
    ) -> FsResult<usize> {
        let h = self.handles.get(fh)?;
        let size = size as usize;
        let mut done = 0usize;
        while done < size {
            let off = offset.checked_add(done as u64).ok_or(Errno::EINVAL)?;
            match w.write_from(h.file.as_fd(), size - done, off) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if done > 0 => {
                    log::debug!("short read after {done} bytes: {e}");
                    break;
                }
                Err(e) => return Err(errno(e)),
            }
        }
        Ok(done)
    }

    pub(super) fn do_write(
        &self,
        ctx: &Context,
        fh: Handle,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        write_flags: WriteFlags,
    ) -> FsResult<usize> {
        self.ro()?;
        let h = self.handles.get(fh)?;
        if write_flags.contains(WriteFlags::KILL_SUIDGID) && self.killpriv_v2() {
            self.kill_suidgid(h.file.as_fd(), Some(ctx.gid))?;
        }
        self.drop_remapped_capability(&h.inode, h.file.as_fd())?;
        let size = size as usize;
        let mut done = 0usize;
        while done < size {
            let off = offset.checked_add(done as u64).ok_or(Errno::EFBIG)?;
            match r.read_to(h.file.as_fd(), size - done, off) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if done > 0 => {
                    log::debug!("short write after {done} bytes: {e}");
                    break;
                }
                Err(e) => return Err(errno(e)),
            }
        }
        Ok(done)
    }

    /// The host kernel clears `security.capability` on a write, truncate or chown; when the
    /// xattr map stores the guest's `security.capability` under another name (the default map
    /// does), that name is cleared here instead, on WRITE and on SETATTR of a regular file's
    /// size or owner (the CVE-2021-20263 lesson). `fd` is any descriptor of `inode`.
    ///
    /// One `removexattr` per inode, not per WRITE: once it has cleared the name or found it
    /// absent, the inode is marked clean ([`Inode::remapped_capability`]) until the guest sets
    /// the name again ([`set_guest_xattr`](Self::set_guest_xattr) marks it first, so a WRITE
    /// that races with the SETXATTR orders before it, as in the host kernel, where
    /// `file_remove_privs` runs before the data is copied). A host process that writes the
    /// remapped name behind the daemon's back is not seen until the inode is looked up again;
    /// it could as well have written it after the guest's WRITE (the README's "Extended
    /// attributes"). Per WRITE this was a system call: 12-15% of 4 KiB writes (load generator,
    /// 1 queue, depth 1 and 16: 90 k/s against 102 k/s without `--xattr`).
    pub(super) fn drop_remapped_capability(
        &self,
        inode: &Inode,
        fd: BorrowedFd<'_>,
    ) -> FsResult<()> {
        if !inode.remapped_capability.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(mapped) = self.remapped_capability_name() else {
            return Ok(());
        };
        match self.xattr_remove_fd(fd, mapped.as_cstr()) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) => {}
            Err(e) => return Err(errno(e)),
        }
        // A SETXATTR that marked the inode meanwhile may have set the name after the remove:
        // leave its mark.
        let _ = inode.remapped_capability.compare_exchange(
            true,
            false,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(())
    }

    /// The host name under which the xattr map stores the guest's `security.capability`,
    /// when it is another name (`None` with xattrs off, or a map that keeps or refuses it).
    pub(super) fn remapped_capability_name(&self) -> Option<HostName> {
        let map = self.xattr_map().ok()?;
        let mapped = map.to_host(b"security.capability").ok()?;
        (mapped.as_bytes() != b"security.capability").then_some(mapped)
    }

    pub(super) fn do_flush(
        &self,
        _nodeid: NodeId,
        fh: Handle,
        lock_owner: LockOwner,
    ) -> FsResult<()> {
        let h = self.handles.get(fh)?;
        // close(2) of any descriptor drops the owner's POSIX locks on the file: closing the
        // owner's lock description does exactly that on the host.
        h.inode
            .lock_fds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&lock_owner);
        Ok(())
    }

    pub(super) fn do_release(&self, fh: Handle, flock_release: bool) -> FsResult<()> {
        let h = self.handles.remove(fh)?;
        if flock_release {
            let _ = sys::flock(h.file.as_fd(), libc::LOCK_UN);
        }
        self.drop_lock_fds_of(&h.inode, fh);
        Ok(())
    }

    pub(super) fn do_fsync(&self, fh: Handle, datasync: bool) -> FsResult<()> {
        let h = self.handles.get(fh)?;
        sys::fsync(h.file.as_fd(), datasync).map_err(errno)
    }

    pub(super) fn do_fallocate(
        &self,
        fh: Handle,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> FsResult<()> {
        self.ro()?;
        let h = self.handles.get(fh)?;
        sys::fallocate(h.file.as_fd(), mode, offset, length).map_err(errno)
    }

    pub(super) fn do_lseek(&self, fh: Handle, offset: u64, whence: u32) -> FsResult<u64> {
        let h = self.handles.get(fh)?;
        let whence = match libc::c_int::try_from(whence) {
            Ok(
                w @ (libc::SEEK_SET
                | libc::SEEK_CUR
                | libc::SEEK_END
                | libc::SEEK_DATA
                | libc::SEEK_HOLE),
            ) => w,
            _ => return Err(Errno::EINVAL),
        };
        sys::lseek(h.file.as_fd(), offset, whence).map_err(errno)
    }

    /// COPY_FILE_RANGE between two handles; the node ids are not needed (handles name files).
    pub(super) fn do_copy_file_range(&self, args: &CopyFileRangeArgs) -> FsResult<u64> {
        self.ro()?;
        let hin = self.handles.get(args.fh_in)?;
        let hout = self.handles.get(args.fh_out)?;
        let flags = u32::try_from(args.flags).map_err(|_| Errno::EINVAL)?;
        let len = usize::try_from(args.len).unwrap_or(usize::MAX).min(1 << 30);
        let n = sys::copy_file_range(
            hin.file.as_fd(),
            args.off_in,
            hout.file.as_fd(),
            args.off_out,
            len,
            flags,
        )
        .map_err(errno)?;
        Ok(n as u64)
    }

    pub(super) fn do_syncfs(&self, nodeid: NodeId) -> FsResult<()> {
        let inode = self.inodes.get(nodeid)?;
        let inode = if matches!(
            inode.kind,
            fuse_abi::mode::S_IFREG | fuse_abi::mode::S_IFDIR
        ) {
            inode
        } else {
            self.inodes.get(NodeId::ROOT)?
        };
        let fd = self.open_io(&inode, libc::O_RDONLY)?;
        sys::syncfs(fd.as_fd()).map_err(errno)
    }
}
