//! The operations, by area, and the [`FileSystem`] implementation that dispatches to them.

mod attr;
mod dir;
mod entry;
mod file;
mod lock;
mod xattr;

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use fuse_abi::{AttrFlags, Errno, InitFlags, RenameFlags, mode};
use fuse_server::{
    AttrReply, Capabilities, Context, CopyFileRangeArgs, CreateArgs, CreateContext, DirPlusSink,
    DirSink, Entry, FileAttr, FileSystem, FsResult, Handle, Lock, LockArgs, LockOwner, Name,
    Negotiated, NodeId, OpenArgs, OpenReply, ReadArgs, ReleaseArgs, SetAttr, SetxattrArgs, StatFs,
    StatxReply, Timespec, TmpfileArgs, WriteArgs, XattrReply, ZeroCopyReader, ZeroCopyWriter,
};

use crate::credentials::Caller;
use crate::errno::errno;
use crate::inode::{Inode, InodeKey, InodeRef, NewInode, ProcFdName};
use crate::{PassthroughFs, sys};

/// A guest name as a C string on the stack. `.` and `..` are refused: the kernel never sends
/// them (EXPORT_SUPPORT is not declared), and `..` is the one component that could leave a
/// directory.
pub(crate) struct CName {
    buf: [u8; fuse_abi::limits::NAME_MAX + 1],
}

impl CName {
    pub(crate) fn new(name: Name<'_>) -> Result<CName, Errno> {
        if name.is_dot_or_dotdot() {
            return Err(Errno::EINVAL);
        }
        let bytes = name.as_bytes();
        // `Name` guarantees 1..=NAME_MAX bytes without NUL or '/'; checked again because this
        // is the last line of defence before a system call.
        if bytes.is_empty()
            || bytes.len() > fuse_abi::limits::NAME_MAX
            || bytes.iter().any(|&b| b == 0 || b == b'/')
        {
            return Err(Errno::EINVAL);
        }
        let mut buf = [0u8; fuse_abi::limits::NAME_MAX + 1];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(CName { buf })
    }

    pub(crate) fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}

fn ts(sec: i64, nsec: u32) -> Timespec {
    Timespec { sec, nsec }
}

/// Linux `new_encode_dev`.
pub(crate) fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Linux `new_decode_dev` into a host `dev_t`.
pub(crate) fn decode_dev(rdev: u32) -> libc::dev_t {
    let major = (rdev & 0xfff00) >> 8;
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

impl PassthroughFs {
    fn ro(&self) -> FsResult<()> {
        if self.cfg.readonly {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    fn attr_of(&self, inode: &Inode, stx: &libc::statx) -> FileAttr {
        let mut flags = AttrFlags::empty();
        if inode.mount_root
            && inode.nodeid != NodeId::ROOT
            && inode.is_dir()
            && self.cfg.announce_submounts
            && self.negotiated().contains(InitFlags::SUBMOUNTS)
        {
            flags |= AttrFlags::SUBMOUNT;
        }
        FileAttr {
            ino: stx.stx_ino,
            size: stx.stx_size,
            blocks: stx.stx_blocks,
            atime: ts(stx.stx_atime.tv_sec, stx.stx_atime.tv_nsec),
            mtime: ts(stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec),
            ctime: ts(stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec),
            mode: u32::from(stx.stx_mode),
            nlink: stx.stx_nlink,
            uid: stx.stx_uid,
            gid: stx.stx_gid,
            rdev: encode_dev(stx.stx_rdev_major, stx.stx_rdev_minor),
            blksize: stx.stx_blksize,
            flags,
        }
    }

    fn entry_of(&self, inode: &Inode, stx: &libc::statx) -> Entry {
        let t = self.cfg.cache.timeout();
        Entry {
            nodeid: inode.nodeid,
            generation: self.inodes.generation(),
            attr: self.attr_of(inode, stx),
            attr_timeout: t,
            entry_timeout: t,
        }
    }

    /// Builds the table entry for a host inode found through `fd` (an `O_PATH` descriptor).
    fn make_inode(&self, fd: OwnedFd, stx: &libc::statx) -> FsResult<NewInode> {
        let key = InodeKey::of(stx);
        let kind = u32::from(stx.stx_mode) & mode::S_IFMT;
        let mount_root =
            stx.stx_attributes & u64::from(libc::STATX_ATTR_MOUNT_ROOT.unsigned_abs()) != 0;
        let entry = self.inode_budget.acquire()?;
        if self.use_handles {
            match sys::name_to_handle(fd.as_fd()) {
                Ok((h, _)) => {
                    let mount = {
                        let mut mounts = self
                            .mounts
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        Arc::clone(mounts.entry(key.mnt_id).or_insert_with(|| Arc::new(fd)))
                    };
                    return Ok(NewInode {
                        key,
                        kind,
                        mount_root,
                        iref: InodeRef::Handle(Box::new(h), mount),
                        entry,
                    });
                }
                Err(e) if self.cfg.file_handles == crate::FileHandleMode::Mandatory => {
                    return Err(errno(e));
                }
                Err(_) => {}
            }
        }
        let permit = self.budget.acquire()?;
        Ok(NewInode {
            key,
            kind,
            mount_root,
            iref: InodeRef::Fd {
                fd,
                _permit: permit,
            },
            entry,
        })
    }

    /// Registers the inode behind `fd` (O_PATH) and takes a lookup reference.
    fn register(&self, fd: OwnedFd) -> FsResult<(Arc<Inode>, libc::statx)> {
        let stx = sys::statx(fd.as_fd(), 0, sys::STATX_WANTED).map_err(errno)?;
        let key = InodeKey::of(&stx);
        let inode = self
            .inodes
            .insert_or_ref(key, || self.make_inode(fd, &stx))?;
        Ok((inode, stx))
    }

    /// Finds `name` in the directory `dir` and takes a lookup reference.
    fn lookup_in(&self, dir: BorrowedFd<'_>, name: &CStr) -> FsResult<Entry> {
        let fd = sys::open_beneath_path(dir, name).map_err(errno)?;
        let (inode, stx) = self.register(fd)?;
        Ok(self.entry_of(&inode, &stx))
    }

    /// An `O_PATH` descriptor for an open descriptor (any type), via `/proc/self/fd`.
    fn o_path_of(&self, fd: BorrowedFd<'_>) -> FsResult<OwnedFd> {
        let name = ProcFdName::new(fd);
        sys::openat_path(self.proc_self_fd.as_fd(), name.as_cstr()).map_err(errno)
    }

    /// chmod of an inode by its `O_PATH` descriptor (not for symlinks).
    fn chmod_path_fd(&self, fd: BorrowedFd<'_>, mode: u32) -> FsResult<()> {
        let name = ProcFdName::new(fd);
        sys::fchmodat(self.proc_self_fd.as_fd(), name.as_cstr(), mode).map_err(errno)
    }

    /// Clears set-user-id, and set-group-id when group-executable or, for a write or truncate
    /// (`writer_gid` given), when the file's group is not the writer's: the kernel's rule for a
    /// caller without CAP_FSETID (`setattr_should_drop_sgid`). The guest decided that the
    /// caller lacks CAP_FSETID when it set the kill flag; supplementary groups are unknown
    /// here, so only the caller's gid is compared. A chown (`writer_gid` None) keeps a set-gid
    /// bit without group execute, as the host's own chown does for the daemon.
    fn kill_suidgid(&self, fd: BorrowedFd<'_>, writer_gid: Option<u32>) -> FsResult<()> {
        let stx = sys::statx(fd, 0, libc::STATX_MODE | libc::STATX_GID).map_err(errno)?;
        let m = u32::from(stx.stx_mode);
        if m & mode::S_IFMT != mode::S_IFREG {
            return Ok(());
        }
        let mut new = m & !mode::S_ISUID;
        if m & 0o010 != 0 || writer_gid.is_some_and(|gid| gid != stx.stx_gid) {
            new &= !mode::S_ISGID;
        }
        if new != m {
            self.chmod_path_fd(fd, new & 0o7777)?;
        }
        Ok(())
    }

    fn caller(&self, ctx: &Context, cctx: &CreateContext<'_>) -> Caller {
        let flags = self.negotiated();
        Caller {
            uid: ctx.uid,
            gid: ctx.gid,
            supp_gid: cctx
                .supp_gid
                .filter(|_| flags.contains(InitFlags::CREATE_SUPP_GROUP)),
            umask: if flags.contains(InitFlags::DONT_MASK) {
                cctx.umask
            } else {
                0
            },
        }
    }
}

const BASE_FLAGS: InitFlags = InitFlags::ASYNC_READ
    .union(InitFlags::PARALLEL_DIROPS)
    .union(InitFlags::BIG_WRITES)
    .union(InitFlags::AUTO_INVAL_DATA)
    .union(InitFlags::ASYNC_DIO)
    .union(InitFlags::ATOMIC_O_TRUNC)
    .union(InitFlags::MAX_PAGES)
    .union(InitFlags::DO_READDIRPLUS)
    .union(InitFlags::READDIRPLUS_AUTO)
    .union(InitFlags::POSIX_LOCKS)
    .union(InitFlags::DONT_MASK)
    .union(InitFlags::CREATE_SUPP_GROUP)
    .union(InitFlags::SETXATTR_EXT)
    .union(InitFlags::ALLOW_IDMAP);

impl PassthroughFs {
    /// The INIT flags this configuration declares.
    pub fn declared_flags(&self) -> InitFlags {
        let c = &self.cfg;
        let mut f = BASE_FLAGS;
        if c.writeback {
            f |= InitFlags::WRITEBACK_CACHE;
        }
        if c.posix_acl {
            f |= InitFlags::POSIX_ACL;
        }
        if c.flock_locks {
            f |= InitFlags::FLOCK_LOCKS;
        }
        if c.allow_mmap {
            f |= InitFlags::DIRECT_IO_ALLOW_MMAP;
        }
        if !c.readdirplus {
            f.remove(InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO);
        }
        if c.killpriv_v2 && !c.readonly {
            f |= InitFlags::HANDLE_KILLPRIV_V2;
        }
        if c.security_label && c.xattr {
            f |= InitFlags::SECURITY_CTX;
        }
        if c.announce_submounts {
            f |= InitFlags::SUBMOUNTS;
        }
        if c.cache != crate::CachePolicy::Never {
            f |= InitFlags::CACHE_SYMLINKS;
        }
        f & c.declare_at_most
    }
}

impl FileSystem for PassthroughFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_flags(self.declared_flags())
            .with_invalid_uidgid_handling()
            .with_max_write(1024 * 1024, 256)
            .with_time_gran(1)
    }

    fn init(&self, negotiated: &Negotiated) -> FsResult<()> {
        log::info!(
            "FUSE_INIT 7.{}: negotiated flags {:?}",
            negotiated.minor,
            negotiated.flags
        );
        self.handles.clear();
        self.inodes.reset();
        self.negotiated.store(
            negotiated.flags.bits(),
            std::sync::atomic::Ordering::Release,
        );
        Ok(())
    }

    fn destroy(&self) {
        self.handles.clear();
        self.inodes.reset();
        self.negotiated
            .store(0, std::sync::atomic::Ordering::Release);
    }

    fn lookup(&self, _ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<Entry> {
        self.do_lookup(parent, name)
    }

    fn forget(&self, _ctx: &Context, nodeid: NodeId, nlookup: u64) {
        self.inodes.forget(nodeid, nlookup);
    }

    fn getattr(&self, _ctx: &Context, nodeid: NodeId, fh: Option<Handle>) -> FsResult<AttrReply> {
        self.do_getattr(nodeid, fh)
    }

    fn setattr(&self, ctx: &Context, nodeid: NodeId, attr: &SetAttr) -> FsResult<AttrReply> {
        self.do_setattr(ctx, nodeid, attr)
    }

    fn statx(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        fh: Option<Handle>,
        flags: u32,
        mask: u32,
    ) -> FsResult<StatxReply> {
        self.do_statx(nodeid, fh, flags, mask)
    }

    fn readlink(&self, _ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<usize> {
        self.do_readlink(nodeid, buf)
    }

    fn symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        self.do_symlink(ctx, cctx, parent, name, target)
    }

    fn mknod(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        self.do_mknod(ctx, cctx, parent, name, mode, rdev)
    }

    fn mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
    ) -> FsResult<Entry> {
        self.do_mkdir(ctx, cctx, parent, name, mode)
    }

    fn unlink(&self, _ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        self.do_unlink(parent, name, 0)
    }

    fn rmdir(&self, _ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        self.do_unlink(parent, name, libc::AT_REMOVEDIR)
    }

    fn rename(
        &self,
        _ctx: &Context,
        olddir: NodeId,
        oldname: Name<'_>,
        newdir: NodeId,
        newname: Name<'_>,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.do_rename(olddir, oldname, newdir, newname, flags)
    }

    fn link(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        newparent: NodeId,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        self.do_link(nodeid, newparent, newname)
    }

    fn open(&self, ctx: &Context, nodeid: NodeId, args: &OpenArgs) -> FsResult<OpenReply> {
        self.do_open(ctx, nodeid, args.flags, args.open_flags)
    }

    fn create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &CreateArgs<'_>,
    ) -> FsResult<(Entry, OpenReply)> {
        self.do_create(
            ctx,
            cctx,
            parent,
            Some(args.name),
            args.mode,
            args.open.flags,
        )
    }

    fn tmpfile(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &TmpfileArgs,
    ) -> FsResult<(Entry, OpenReply)> {
        self.do_create(ctx, cctx, parent, None, args.mode, args.open.flags)
    }

    fn read(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        args: &ReadArgs,
        w: &mut dyn ZeroCopyWriter,
    ) -> FsResult<usize> {
        self.do_read(args.fh, w, args.size, args.offset)
    }

    fn write(
        &self,
        ctx: &Context,
        _nodeid: NodeId,
        args: &WriteArgs,
        r: &mut dyn ZeroCopyReader,
    ) -> FsResult<usize> {
        self.do_write(ctx, args.fh, r, args.size, args.offset, args.write_flags)
    }

    fn flush(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        lock_owner: LockOwner,
    ) -> FsResult<()> {
        self.do_flush(nodeid, fh, lock_owner)
    }

    fn release(&self, _ctx: &Context, _nodeid: NodeId, args: &ReleaseArgs) -> FsResult<()> {
        self.do_release(args.fh, args.flock_release)
    }

    fn fsync(&self, _ctx: &Context, _nodeid: NodeId, fh: Handle, datasync: bool) -> FsResult<()> {
        self.do_fsync(fh, datasync)
    }

    fn opendir(&self, _ctx: &Context, nodeid: NodeId, _flags: u32) -> FsResult<OpenReply> {
        self.do_opendir(nodeid)
    }

    fn readdir(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        self.do_readdir(fh, offset, sink)
    }

    fn readdirplus(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> FsResult<()> {
        self.do_readdirplus(fh, offset, sink)
    }

    fn releasedir(&self, _ctx: &Context, _nodeid: NodeId, fh: Handle, _flags: u32) -> FsResult<()> {
        let h = self.handles.remove(fh)?;
        self.drop_lock_fds_of(&h.inode, fh);
        Ok(())
    }

    fn fsyncdir(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        datasync: bool,
    ) -> FsResult<()> {
        self.do_fsync(fh, datasync)
    }

    fn statfs(&self, _ctx: &Context, nodeid: NodeId) -> FsResult<StatFs> {
        self.do_statfs(nodeid)
    }

    fn setxattr(&self, _ctx: &Context, nodeid: NodeId, args: &SetxattrArgs<'_>) -> FsResult<()> {
        self.do_setxattr(
            nodeid,
            args.name,
            args.value,
            args.flags,
            args.setxattr_flags,
        )
    }

    fn getxattr(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        self.do_getxattr(nodeid, name, buf)
    }

    fn listxattr(&self, _ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<XattrReply> {
        self.do_listxattr(nodeid, buf)
    }

    fn removexattr(&self, _ctx: &Context, nodeid: NodeId, name: &CStr) -> FsResult<()> {
        self.do_removexattr(nodeid, name)
    }

    fn access(&self, ctx: &Context, nodeid: NodeId, mask: u32) -> FsResult<()> {
        self.do_access(ctx, nodeid, mask)
    }

    fn getlk(&self, _ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<Lock> {
        self.do_getlk(nodeid, args.fh, args.owner, args.lock)
    }

    fn setlk(&self, _ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<()> {
        self.do_setlk(
            nodeid, args.fh, args.owner, args.lock, args.sleep, args.flock,
        )
    }

    fn fallocate(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> FsResult<()> {
        self.do_fallocate(fh, mode, offset, length)
    }

    fn lseek(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        offset: u64,
        whence: u32,
    ) -> FsResult<u64> {
        self.do_lseek(fh, offset, whence)
    }

    fn copy_file_range(&self, _ctx: &Context, args: &CopyFileRangeArgs) -> FsResult<u64> {
        self.do_copy_file_range(args)
    }

    fn syncfs(&self, _ctx: &Context, nodeid: NodeId) -> FsResult<()> {
        self.do_syncfs(nodeid)
    }
}
