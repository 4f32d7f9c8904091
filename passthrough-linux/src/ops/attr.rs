//! Attributes: GETATTR, SETATTR, STATX, READLINK, ACCESS, STATFS.

use std::os::fd::{AsFd, BorrowedFd};

use fuse_abi::{Errno, INVALID_UIDGID, SxTime, mode};
use fuse_abi::{I32, I64, U16, U32, U64};
use fuse_server::{
    AttrReply, Context, CreateContext, FsResult, Handle, NodeId, SetAttr, StatFs, StatxReply,
    TimeOrNow,
};

use crate::credentials::CredGuard;
use crate::errno::errno;
use crate::inode::ProcFdName;
use crate::{PassthroughFs, sys};

fn sx_time(t: libc::statx_timestamp) -> SxTime {
    SxTime {
        tv_sec: I64::new(t.tv_sec),
        tv_nsec: U32::new(t.tv_nsec),
        reserved: I32::new(0),
    }
}

fn to_timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::Time(t)) => libc::timespec {
            tv_sec: t.sec,
            tv_nsec: i64::from(t.nsec.min(999_999_999)),
        },
    }
}

impl PassthroughFs {
    pub(super) fn do_getattr(&self, nodeid: NodeId, fh: Option<Handle>) -> FsResult<AttrReply> {
        let inode = self.inodes.get(nodeid)?;
        let stx = match fh.map(|fh| self.handles.get(fh)).transpose()? {
            Some(h) => sys::statx(h.file.as_fd(), 0, sys::STATX_WANTED),
            None => {
                let fd = inode.path_fd().map_err(errno)?;
                sys::statx(fd.as_fd(), 0, sys::STATX_WANTED)
            }
        }
        .map_err(errno)?;
        Ok(AttrReply {
            attr: self.attr_of(&inode, &stx),
            timeout: self.cfg.cache.timeout(),
        })
    }

    pub(super) fn do_setattr(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        attr: &SetAttr,
    ) -> FsResult<AttrReply> {
        self.ro()?;
        let inode = self.inodes.get(nodeid)?;
        let handle = attr.fh.map(|fh| self.handles.get(fh)).transpose()?;
        let pfd = inode.path_fd().map_err(errno)?;
        let pfd = pfd.as_fd();
        let is_symlink = inode.kind == mode::S_IFLNK;

        if let Some(m) = attr.mode {
            if is_symlink {
                return Err(Errno::EOPNOTSUPP);
            }
            match &handle {
                Some(h) => sys::fchmod(h.file.as_fd(), m & 0o7777).map_err(errno)?,
                None => self.chmod_path_fd(pfd, m & 0o7777)?,
            }
        }
        if attr.uid.is_some() || attr.gid.is_some() {
            let uid = attr.uid.unwrap_or(INVALID_UIDGID);
            let gid = attr.gid.unwrap_or(INVALID_UIDGID);
            sys::fchown(pfd, uid, gid).map_err(errno)?;
        }
        if let Some(size) = attr.size {
            match inode.kind {
                mode::S_IFREG => {}
                mode::S_IFDIR => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
            match handle.as_ref().filter(|h| h.writable()) {
                Some(h) => sys::ftruncate(h.file.as_fd(), size).map_err(errno)?,
                None => {
                    let f = self.open_io(&inode, libc::O_WRONLY)?;
                    sys::ftruncate(f.as_fd(), size).map_err(errno)?;
                }
            }
        }
        if inode.kind == mode::S_IFREG
            && (attr.size.is_some() || attr.uid.is_some() || attr.gid.is_some())
        {
            self.drop_remapped_capability(&inode, pfd)?;
        }
        if attr.kill_suidgid
            && (attr.size.is_some() || attr.uid.is_some() || attr.gid.is_some())
            && attr.mode.is_none()
        {
            // A chown keeps the chown rule; a truncate alone is the writer's.
            let chown = attr.uid.is_some() || attr.gid.is_some();
            self.kill_suidgid(pfd, (!chown).then_some(ctx.gid))?;
        }
        if attr.atime.is_some() || attr.mtime.is_some() {
            let times = [to_timespec(attr.atime), to_timespec(attr.mtime)];
            self.utimens(pfd, is_symlink, &times)?;
        }
        // ctime cannot be set on Linux; any change above already moved it.
        let stx = sys::statx(pfd, 0, sys::STATX_WANTED).map_err(errno)?;
        Ok(AttrReply {
            attr: self.attr_of(&inode, &stx),
            timeout: self.cfg.cache.timeout(),
        })
    }

    fn utimens(
        &self,
        pfd: BorrowedFd<'_>,
        is_symlink: bool,
        times: &[libc::timespec; 2],
    ) -> FsResult<()> {
        if is_symlink {
            sys::utimensat(
                pfd,
                sys::EMPTY,
                times,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(errno)
        } else {
            let name = ProcFdName::new(pfd);
            sys::utimensat(self.proc_self_fd.as_fd(), name.as_cstr(), times, 0).map_err(errno)
        }
    }

    pub(super) fn do_statx(
        &self,
        nodeid: NodeId,
        fh: Option<Handle>,
        flags: u32,
        mask: u32,
    ) -> FsResult<StatxReply> {
        let inode = self.inodes.get(nodeid)?;
        let sync = libc::c_int::try_from(flags).unwrap_or(0) & libc::AT_STATX_SYNC_TYPE;
        let mask = mask | sys::STATX_WANTED;
        let stx = match fh.map(|fh| self.handles.get(fh)).transpose()? {
            Some(h) => sys::statx(h.file.as_fd(), sync, mask),
            None => {
                let fd = inode.path_fd().map_err(errno)?;
                sys::statx(fd.as_fd(), sync, mask)
            }
        }
        .map_err(errno)?;
        let a = self.attr_of(&inode, &stx);
        let statx = fuse_abi::Statx {
            mask: U32::new(stx.stx_mask & !libc::STATX_MNT_ID),
            blksize: U32::new(stx.stx_blksize),
            attributes: U64::new(stx.stx_attributes),
            nlink: U32::new(stx.stx_nlink),
            uid: U32::new(stx.stx_uid),
            gid: U32::new(stx.stx_gid),
            mode: U16::new(stx.stx_mode),
            spare0: [U16::new(0)],
            ino: U64::new(stx.stx_ino),
            size: U64::new(stx.stx_size),
            blocks: U64::new(stx.stx_blocks),
            attributes_mask: U64::new(stx.stx_attributes_mask),
            atime: sx_time(stx.stx_atime),
            btime: sx_time(stx.stx_btime),
            ctime: sx_time(stx.stx_ctime),
            mtime: sx_time(stx.stx_mtime),
            rdev_major: U32::new(stx.stx_rdev_major),
            rdev_minor: U32::new(stx.stx_rdev_minor),
            dev_major: U32::new(stx.stx_dev_major),
            dev_minor: U32::new(stx.stx_dev_minor),
            spare2: [U64::new(0); 14],
        };
        debug_assert_eq!(a.ino, stx.stx_ino);
        Ok(StatxReply {
            statx,
            timeout: self.cfg.cache.timeout(),
        })
    }

    pub(super) fn do_readlink(&self, nodeid: NodeId, buf: &mut [u8]) -> FsResult<usize> {
        let inode = self.inodes.get(nodeid)?;
        if inode.kind != mode::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        let fd = inode.path_fd().map_err(errno)?;
        sys::readlink(fd.as_fd(), buf).map_err(errno)
    }

    pub(super) fn do_access(&self, ctx: &Context, nodeid: NodeId, mask: u32) -> FsResult<()> {
        let inode = self.inodes.get(nodeid)?;
        let fd = inode.path_fd().map_err(errno)?;
        if mask & 0o2 != 0 && self.cfg.readonly {
            return Err(Errno::EROFS);
        }
        if ctx.uid == fuse_abi::INVALID_UIDGID || ctx.gid == fuse_abi::INVALID_UIDGID {
            // An unmapped caller (ALLOW_IDMAP) is nobody: existence only.
            return if mask == 0 {
                Ok(())
            } else {
                Err(Errno::EACCES)
            };
        }
        let caller = self.caller(ctx, &CreateContext::default());
        let _guard = CredGuard::become_caller(caller, self.switch_creds)?;
        sys::access(fd.as_fd(), mask & 0o7).map_err(errno)
    }

    pub(super) fn do_statfs(&self, nodeid: NodeId) -> FsResult<StatFs> {
        let inode = self.inodes.get(nodeid)?;
        let fd = inode.path_fd().map_err(errno)?;
        let st = sys::fstatvfs(fd.as_fd()).map_err(errno)?;
        Ok(StatFs {
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: st.f_files,
            ffree: st.f_ffree,
            bsize: u32::try_from(st.f_bsize).unwrap_or(u32::MAX),
            namelen: u32::try_from(st.f_namemax).unwrap_or(255),
            frsize: u32::try_from(st.f_frsize).unwrap_or(u32::MAX),
        })
    }
}
