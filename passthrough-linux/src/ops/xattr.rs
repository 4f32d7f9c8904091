//! Extended attributes: SETXATTR (with SETXATTR_EXT), GETXATTR, LISTXATTR, REMOVEXATTR, with
//! the configured name map and POSIX ACL policy.

use std::ffi::CStr;
use std::os::fd::AsFd;

use fuse_abi::{Errno, SetxattrFlags, mode};
use fuse_server::{FsResult, XattrReply};

use crate::errno::errno;
use crate::inode::{Inode, PathFd, ProcFdName};
use crate::xattrmap::{self, HostName};
use crate::{PassthroughFs, sys};

const ACL_PREFIX: &[u8] = b"system.posix_acl_";

impl PassthroughFs {
    /// The host name for a guest name, after the enable switches and the map.
    fn host_xattr_name(&self, name: &CStr) -> FsResult<HostName> {
        if !self.cfg.xattr {
            return Err(Errno::EOPNOTSUPP);
        }
        let raw = name.to_bytes();
        if raw.is_empty() {
            return Err(Errno::EINVAL);
        }
        if raw.starts_with(ACL_PREFIX) && !self.cfg.posix_acl {
            return Err(Errno::EOPNOTSUPP);
        }
        match &self.cfg.xattrmap {
            Some(map) => map.to_host(raw),
            None => xattrmap::identity(raw),
        }
    }

    fn xattr_target(&self, nodeid: u64) -> FsResult<(std::sync::Arc<Inode>, OwnedPath)> {
        let inode = self.inodes.get(nodeid)?;
        let fd = inode.path_fd().map_err(errno)?;
        let path = ProcFdName::new(fd.as_fd()).absolute();
        let fd = match fd {
            PathFd::Owned(fd) => Some(fd),
            PathFd::Borrowed(_) => None,
        };
        Ok((inode, OwnedPath { path, _fd: fd }))
    }

    pub(super) fn do_setxattr(
        &self,
        nodeid: u64,
        name: &CStr,
        value: &[u8],
        flags: u32,
        sflags: SetxattrFlags,
    ) -> FsResult<()> {
        self.ro()?;
        let hname = self.host_xattr_name(name)?;
        let flags = libc::c_int::try_from(flags & 0x3).map_err(|_| Errno::EINVAL)?;
        let (inode, t) = self.xattr_target(nodeid)?;
        sys::setxattr(t.path.as_cstr(), hname.as_cstr(), value, flags).map_err(errno)?;
        if sflags.contains(SetxattrFlags::ACL_KILL_SGID)
            && name.to_bytes() == b"system.posix_acl_access"
            && inode.kind != mode::S_IFLNK
        {
            let fd = inode.path_fd().map_err(errno)?;
            let stx = sys::statx(fd.as_fd(), 0, libc::STATX_MODE).map_err(errno)?;
            let m = u32::from(stx.stx_mode);
            if m & mode::S_ISGID != 0 {
                self.chmod_path_fd(fd.as_fd(), m & 0o7777 & !mode::S_ISGID)?;
            }
        }
        Ok(())
    }

    pub(super) fn do_getxattr(
        &self,
        nodeid: u64,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        let hname = self.host_xattr_name(name)?;
        let (_inode, t) = self.xattr_target(nodeid)?;
        let n = sys::getxattr(t.path.as_cstr(), hname.as_cstr(), buf).map_err(errno)?;
        if buf.is_empty() {
            Ok(XattrReply::Size(
                u32::try_from(n).map_err(|_| Errno::E2BIG)?,
            ))
        } else {
            Ok(XattrReply::Data(n))
        }
    }

    pub(super) fn do_listxattr(&self, nodeid: u64, buf: &mut [u8]) -> FsResult<XattrReply> {
        if !self.cfg.xattr {
            return Err(Errno::EOPNOTSUPP);
        }
        let (_inode, t) = self.xattr_target(nodeid)?;
        let reply = |n: usize, query: bool| -> FsResult<XattrReply> {
            if query {
                Ok(XattrReply::Size(
                    u32::try_from(n).map_err(|_| Errno::E2BIG)?,
                ))
            } else {
                Ok(XattrReply::Data(n))
            }
        };
        if self.cfg.xattrmap.is_none() && self.cfg.posix_acl {
            let n = sys::listxattr(t.path.as_cstr(), buf).map_err(errno)?;
            return reply(n, buf.is_empty());
        }
        // Filter (and map) the host's list into the guest's buffer.
        let size = sys::listxattr(t.path.as_cstr(), &mut []).map_err(errno)?;
        let mut host = vec![0u8; size];
        let size = sys::listxattr(t.path.as_cstr(), &mut host).map_err(errno)?;
        let mut out = 0usize;
        for hname in host[..size.min(host.len())]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
        {
            let gname = match &self.cfg.xattrmap {
                Some(map) => map.to_guest(hname),
                None => Some(hname),
            };
            let Some(gname) = gname else { continue };
            if gname.starts_with(ACL_PREFIX) && !self.cfg.posix_acl {
                continue;
            }
            let end = out + gname.len() + 1;
            if !buf.is_empty() {
                let dst = buf.get_mut(out..end).ok_or(Errno::ERANGE)?;
                let (name_part, nul) = dst.split_at_mut(gname.len());
                name_part.copy_from_slice(gname);
                nul[0] = 0;
            }
            out = end;
        }
        reply(out, buf.is_empty())
    }

    pub(super) fn do_removexattr(&self, nodeid: u64, name: &CStr) -> FsResult<()> {
        self.ro()?;
        let hname = self.host_xattr_name(name)?;
        let (_inode, t) = self.xattr_target(nodeid)?;
        sys::removexattr(t.path.as_cstr(), hname.as_cstr()).map_err(errno)
    }
}

/// A `/proc/self/fd/N` path and, when the descriptor was opened for the call, the descriptor.
struct OwnedPath {
    path: crate::inode::ProcFdPath,
    _fd: Option<std::os::fd::OwnedFd>,
}
