//! Names: LOOKUP, the creation operations (MKNOD, MKDIR, SYMLINK, LINK), UNLINK, RMDIR, RENAME.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

use fuse_abi::{Errno, InitFlags, RenameFlags, mode};
use fuse_server::{Context, CreateContext, Entry, FsResult, Name, NodeId};

use super::{CName, decode_dev};
use crate::credentials::CredGuard;
use crate::errno::errno;
use crate::inode::ProcFdName;
use crate::{PassthroughFs, sys};

impl PassthroughFs {
    pub(super) fn do_lookup(&self, parent: NodeId, name: Name<'_>) -> FsResult<Entry> {
        let name = CName::new(name)?;
        let dir = self.inodes.get(parent)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let dfd = dir.path_fd().map_err(errno)?;
        self.lookup_in(dfd.as_fd(), name.as_cstr())
    }

    /// Runs `make` in `parent` as the caller, then looks the new name up and applies the
    /// security context. `make` gets the parent descriptor, the name and the guard (for the
    /// umask fallback).
    fn create_node(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        make: impl FnOnce(BorrowedFd<'_>, &CStr, &CredGuard) -> std::io::Result<()>,
    ) -> FsResult<Entry> {
        self.ro()?;
        let name = CName::new(name)?;
        let dir = self.inodes.get(parent)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let dfd = dir.path_fd().map_err(errno)?;
        {
            let guard = CredGuard::become_caller(self.caller(ctx, cctx), self.switch_creds)?;
            make(dfd.as_fd(), name.as_cstr(), &guard).map_err(errno)?;
        }
        let entry = self.lookup_in(dfd.as_fd(), name.as_cstr());
        let entry = entry?;
        if let Err(e) = self.apply_security_ctx(cctx, entry.nodeid) {
            self.inodes.forget(entry.nodeid, 1);
            let flags = if entry.attr.mode & mode::S_IFMT == mode::S_IFDIR {
                libc::AT_REMOVEDIR
            } else {
                0
            };
            let _ = sys::unlinkat(dfd.as_fd(), name.as_cstr(), flags);
            return Err(e);
        }
        Ok(entry)
    }

    /// Sets the LSM label the guest sent with a creation (SECURITY_CTX). The name must be a
    /// `security.*` one (anything else is EPERM: the extension is no back door to other
    /// namespaces), and it is set exactly as SETXATTR would set it: refused when xattrs are
    /// off, through the xattr map and the default refusals.
    pub(super) fn apply_security_ctx(
        &self,
        cctx: &CreateContext<'_>,
        nodeid: NodeId,
    ) -> FsResult<()> {
        let Some(sc) = cctx.security_ctx else {
            return Ok(());
        };
        if !self.cfg.security_label
            || !self.cfg.xattr
            || !self.negotiated().contains(InitFlags::SECURITY_CTX)
        {
            return Ok(());
        }
        let raw = sc.name.strip_suffix(b"\0").unwrap_or(sc.name);
        if !raw.starts_with(b"security.") || raw.len() == b"security.".len() {
            return Err(Errno::EPERM);
        }
        let name = std::ffi::CString::new(raw).map_err(|_| Errno::EINVAL)?;
        let inode = self.inodes.get(nodeid)?;
        self.set_guest_xattr(&inode, &name, sc.value, 0)
    }

    pub(super) fn do_mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
    ) -> FsResult<Entry> {
        self.create_node(ctx, cctx, parent, name, |dir, name, guard| {
            sys::mkdirat(dir, name, guard.mask_mode(mode & 0o7777))
        })
    }

    pub(super) fn do_mknod(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        let kind = mode & mode::S_IFMT;
        let kind = if kind == 0 { mode::S_IFREG } else { kind };
        if ![
            mode::S_IFREG,
            mode::S_IFIFO,
            mode::S_IFSOCK,
            mode::S_IFCHR,
            mode::S_IFBLK,
        ]
        .contains(&kind)
        {
            return Err(Errno::EINVAL);
        }
        self.create_node(ctx, cctx, parent, name, |dir, name, guard| {
            let perm = guard.mask_mode(mode & 0o7777);
            sys::mknodat(dir, name, kind | perm, decode_dev(rdev))
        })
    }

    pub(super) fn do_symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.create_node(ctx, cctx, parent, name, |dir, name, _| {
            sys::symlinkat(target, dir, name)
        })
    }

    pub(super) fn do_link(
        &self,
        nodeid: NodeId,
        newparent: NodeId,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        self.ro()?;
        let name = CName::new(newname)?;
        let inode = self.inodes.get(nodeid)?;
        if inode.is_dir() {
            return Err(Errno::EPERM);
        }
        let dir = self.inodes.get(newparent)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let fd = inode.path_fd().map_err(errno)?;
        let dfd = dir.path_fd().map_err(errno)?;
        let linked = sys::linkat(
            fd.as_fd(),
            sys::EMPTY,
            dfd.as_fd(),
            name.as_cstr(),
            libc::AT_EMPTY_PATH,
        );
        if let Err(e) = linked {
            // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc magic link is the fallback (it
            // names the inode itself: a symlink is linked, not followed).
            if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) {
                return Err(errno(e));
            }
            let pname = ProcFdName::new(fd.as_fd());
            sys::linkat(
                self.proc_self_fd.as_fd(),
                pname.as_cstr(),
                dfd.as_fd(),
                name.as_cstr(),
                libc::AT_SYMLINK_FOLLOW,
            )
            .map_err(errno)?;
        }
        self.lookup_in(dfd.as_fd(), name.as_cstr())
    }

    pub(super) fn do_unlink(
        &self,
        parent: NodeId,
        name: Name<'_>,
        flags: libc::c_int,
    ) -> FsResult<()> {
        self.ro()?;
        let name = CName::new(name)?;
        let dir = self.inodes.get(parent)?;
        let dfd = dir.path_fd().map_err(errno)?;
        sys::unlinkat(dfd.as_fd(), name.as_cstr(), flags).map_err(errno)
    }

    pub(super) fn do_rename(
        &self,
        olddir: NodeId,
        oldname: Name<'_>,
        newdir: NodeId,
        newname: Name<'_>,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.ro()?;
        if RenameFlags::from_bits(flags.bits()).is_none() {
            return Err(Errno::EINVAL);
        }
        let oldname = CName::new(oldname)?;
        let newname = CName::new(newname)?;
        let od = self.inodes.get(olddir)?;
        let nd = self.inodes.get(newdir)?;
        let ofd = od.path_fd().map_err(errno)?;
        let nfd = nd.path_fd().map_err(errno)?;
        sys::renameat2(
            ofd.as_fd(),
            oldname.as_cstr(),
            nfd.as_fd(),
            newname.as_cstr(),
            flags.bits(),
        )
        .map_err(errno)
    }
}
