//! Extended attributes: SETXATTR (with SETXATTR_EXT), GETXATTR, LISTXATTR, REMOVEXATTR, with
//! the configured name map and POSIX ACL policy.
//!
//! Every guest name goes through an [`XattrMap`](crate::XattrMap): the one given
//! (`--xattrmap`), or, with none given, the default [`XattrMap::DEFAULT_RULES`](crate::XattrMap::DEFAULT_RULES):
//!
//! ```text
//! :prefix:all:trusted.:user.virtiofs.:
//! :prefix:all:security.capability:user.virtiofs.:
//! :bad:client:user.virtiofs.::
//! :ok:all:::
//! ```
//!
//! The guest's `trusted.X` is stored on the host as `user.virtiofs.trusted.X`, its
//! `security.capability` as `user.virtiofs.security.capability`, names the host kernel never
//! acts on; the guest's own `user.virtiofs.*` is refused (SETXATTR, GETXATTR and REMOVEXATTR
//! answer EPERM); LISTXATTR shows a host name only under a guest name that maps back to it, so
//! it hides the host's real `trusted.*` and `security.capability` and any `user.virtiofs.*`
//! no rule produced. Guests so get file capabilities (`setcap`, package installs) and
//! overlayfs with an upper directory on the share (`trusted.overlay.*`) without planting
//! host-trusted metadata in host files, as virtiofsd's recommended map does. An explicit map
//! replaces the default entirely.
//!
//! Security review of the default:
//!
//! - The guest cannot reach `user.virtiofs.*` directly: were it able to, an unprivileged guest
//!   user (who may set `user.*` on its own files) could write
//!   `user.virtiofs.security.capability` on a file it owns and exec it with capabilities in
//!   the guest. The `bad` rule refuses it, and a host name such as
//!   `user.virtiofs.user.virtiofs.x` is not listed (it would map to a refused name).
//!   `security.capability` and `trusted.*` themselves are guarded by the guest kernel
//!   (CAP_SETFCAP, CAP_SYS_ADMIN) before a request is sent.
//! - The host never receives a real `security.capability` or `trusted.*` from a guest: both
//!   are rewritten before any host call, SECURITY_CTX labels included (they go through the
//!   same map, and must be `security.*` anyway).
//! - Clearing: the host kernel drops a real `security.capability` on write, truncate and
//!   chown, not the remapped name. The guest kernel asks for the capability itself
//!   (GETXATTR, then REMOVEXATTR, in `file_remove_privs` and `setattr_prepare`) when it does
//!   not hand that job to the server (no HANDLE_KILLPRIV_V2); the backend clears the remapped
//!   name too, on every WRITE and on every SETATTR that changes the size or owner of a regular
//!   file, whatever the guest kernel did (writeback of mmap'd pages, killpriv_v2, a hostile
//!   guest): see `drop_remapped_capability`. It costs one `removexattr` (ENODATA) per inode:
//!   the inode is then known clean until the guest sets the name again.
//! - A host file carrying a real `security.capability` (or `trusted.*`) shows the guest no
//!   such attribute: GETXATTR reads the remapped name (ENODATA), LISTXATTR hides the real one.
//!   Before, the default refused the name and answered ENODATA: the same for the guest.
//! - Host users who can write a file's `user.*` attributes (its owner, for one) can now give
//!   guests file capabilities on it, by writing `user.virtiofs.security.capability`: they
//!   already choose the file's contents and mode bits, and the README says so.
//! - Symlinks and special files: the host refuses `user.*` on them (set and remove EPERM, get
//!   ENODATA), so the guest's `trusted.*` and `security.capability` on a symlink, FIFO or
//!   device node are EPERM to set and ENODATA to get. Before the default changed they were
//!   refused on every file; virtiofsd's same map behaves the same.
//!
//! Every call names the inode relative to the backend's `/proc/self/fd` descriptor (no
//! absolute path, so it works after `pivot_root`; see `sys`), and none opens a descriptor.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use fuse_abi::{Errno, SetxattrFlags, mode};
use fuse_server::{FsResult, NodeId, XattrReply};

use crate::errno::errno;
use crate::inode::{Inode, ProcFdName};
use crate::xattrmap::{HostName, XattrMap};
use crate::{PassthroughFs, sys};

const ACL_PREFIX: &[u8] = b"system.posix_acl_";

impl PassthroughFs {
    /// The four xattr requests without `--xattr`: ENOSYS, which the guest kernel remembers for
    /// the connection (`no_getxattr` and its siblings) and answers EOPNOTSUPP itself from then
    /// on. EOPNOTSUPP from here would not be remembered: the kernel would ask again on every
    /// write (the file-capability check before each WRITE is a GETXATTR of
    /// `security.capability`), a round trip per write for nothing.
    fn xattr_enabled(&self) -> FsResult<()> {
        if self.cfg.xattr {
            Ok(())
        } else {
            Err(Errno::ENOSYS)
        }
    }

    /// The xattr map in force: the given one or the default (`PassthroughFs::new` puts it in
    /// whenever xattrs are on); EOPNOTSUPP with xattrs off.
    pub(super) fn xattr_map(&self) -> FsResult<&XattrMap> {
        match &self.cfg.xattrmap {
            Some(map) if self.cfg.xattr => Ok(map),
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// The host name for a guest name, after the enable switches and the map.
    pub(super) fn host_xattr_name(&self, name: &CStr) -> FsResult<HostName> {
        let map = self.xattr_map()?;
        let raw = name.to_bytes();
        if raw.is_empty() {
            return Err(Errno::EINVAL);
        }
        if raw.starts_with(ACL_PREFIX) && !self.cfg.posix_acl {
            return Err(Errno::EOPNOTSUPP);
        }
        map.to_host(raw)
    }

    /// Runs `f` with the xattr path of `fd` (any descriptor of the inode, `O_PATH` included).
    fn with_xattr_path<T>(
        &self,
        fd: BorrowedFd<'_>,
        f: impl FnOnce(sys::XattrPath<'_>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let name = ProcFdName::new(fd);
        let abs = name.absolute();
        f(sys::XattrPath {
            proc_dir: self.proc_self_fd.as_fd(),
            rel: name.as_cstr(),
            abs: abs.as_cstr(),
        })
    }

    /// `setxattr` on the inode of `fd` (a host name).
    pub(super) fn xattr_set_fd(
        &self,
        fd: BorrowedFd<'_>,
        hname: &CStr,
        value: &[u8],
        flags: libc::c_int,
    ) -> std::io::Result<()> {
        self.with_xattr_path(fd, |p| sys::setxattr(p, hname, value, flags))
    }

    /// `getxattr` on the inode of `fd`.
    pub(super) fn xattr_get_fd(
        &self,
        fd: BorrowedFd<'_>,
        hname: &CStr,
        buf: &mut [u8],
    ) -> std::io::Result<usize> {
        self.with_xattr_path(fd, |p| sys::getxattr(p, hname, buf))
    }

    /// `listxattr` on the inode of `fd`.
    pub(super) fn xattr_list_fd(
        &self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> std::io::Result<usize> {
        self.with_xattr_path(fd, |p| sys::listxattr(p, buf))
    }

    /// `removexattr` on the inode of `fd`.
    pub(super) fn xattr_remove_fd(&self, fd: BorrowedFd<'_>, hname: &CStr) -> std::io::Result<()> {
        self.with_xattr_path(fd, |p| sys::removexattr(p, hname))
    }

    /// Sets the guest xattr `name` on `nodeid` as SETXATTR does (switches, map, policy).
    pub(super) fn set_guest_xattr(
        &self,
        inode: &Inode,
        name: &CStr,
        value: &[u8],
        flags: libc::c_int,
    ) -> FsResult<()> {
        let hname = self.host_xattr_name(name)?;
        if self
            .remapped_capability_name()
            .is_some_and(|cap| cap.as_bytes() == hname.as_bytes())
        {
            // Before the set: a WRITE from now on clears it again.
            inode.remapped_capability.store(true, Ordering::Release);
        }
        let fd = inode.path_fd().map_err(errno)?;
        self.xattr_set_fd(fd.as_fd(), hname.as_cstr(), value, flags)
            .map_err(errno)
    }

    pub(super) fn do_setxattr(
        &self,
        nodeid: NodeId,
        name: &CStr,
        value: &[u8],
        flags: u32,
        sflags: SetxattrFlags,
    ) -> FsResult<()> {
        self.xattr_enabled()?;
        self.ro()?;
        let flags = libc::c_int::try_from(flags & 0x3).map_err(|_| Errno::EINVAL)?;
        let inode = self.inodes.get(nodeid)?;
        self.set_guest_xattr(&inode, name, value, flags)?;
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
        nodeid: NodeId,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        self.xattr_enabled()?;
        let hname = self.host_xattr_name(name)?;
        let inode = self.inodes.get(nodeid)?;
        let fd = inode.path_fd().map_err(errno)?;
        let n = self
            .xattr_get_fd(fd.as_fd(), hname.as_cstr(), buf)
            .map_err(errno)?;
        if buf.is_empty() {
            Ok(XattrReply::Size(
                u32::try_from(n).map_err(|_| Errno::E2BIG)?,
            ))
        } else {
            Ok(XattrReply::Data(n))
        }
    }

    pub(super) fn do_listxattr(&self, nodeid: NodeId, buf: &mut [u8]) -> FsResult<XattrReply> {
        self.xattr_enabled()?;
        let map = self.xattr_map()?;
        let inode = self.inodes.get(nodeid)?;
        let fd = inode.path_fd().map_err(errno)?;
        let reply = |n: usize, query: bool| -> FsResult<XattrReply> {
            if query {
                Ok(XattrReply::Size(
                    u32::try_from(n).map_err(|_| Errno::E2BIG)?,
                ))
            } else {
                Ok(XattrReply::Data(n))
            }
        };
        // Filter (and map) the host's list into the guest's buffer.
        let size = self.xattr_list_fd(fd.as_fd(), &mut []).map_err(errno)?;
        let mut host = vec![0u8; size];
        let size = self.xattr_list_fd(fd.as_fd(), &mut host).map_err(errno)?;
        let mut out = 0usize;
        for hname in host[..size.min(host.len())]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
        {
            let Some(gname) = map.to_guest(hname) else {
                continue;
            };
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

    pub(super) fn do_removexattr(&self, nodeid: NodeId, name: &CStr) -> FsResult<()> {
        self.xattr_enabled()?;
        self.ro()?;
        let hname = self.host_xattr_name(name)?;
        let inode = self.inodes.get(nodeid)?;
        let fd = inode.path_fd().map_err(errno)?;
        self.xattr_remove_fd(fd.as_fd(), hname.as_cstr())
            .map_err(errno)
    }
}

#[cfg(test)]
mod tests {
    use fuse_abi::Errno;
    use fuse_server::{
        Context, CreateArgs, CreateContext, FileSystem, Name, Negotiated, NodeId, OpenArgs,
        SetxattrArgs, XattrReply,
    };

    use crate::{Config, PassthroughFs, sys};

    fn ctx() -> Context {
        Context {
            unique: 1,
            uid: 0,
            gid: 0,
            pid: 1,
        }
    }

    #[test]
    #[ignore = "needs root (a mount namespace without /proc)"]
    fn xattrs_work_without_proc_mounted() {
        if sys::geteuid() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let fs = PassthroughFs::new(Config::builder(dir.path()).build().unwrap()).unwrap();
        fs.init(&Negotiated {
            minor: 46,
            flags: fs.declared_flags(),
            max_write: 1 << 20,
        })
        .unwrap();
        let root = NodeId::ROOT;
        std::thread::scope(|s| {
            s.spawn(|| {
                // As after the daemon's pivot_root: no /proc at all on this thread.
                sys::hide_proc_on_this_thread_for_tests().unwrap();
                assert!(std::fs::metadata("/proc/self/fd").is_err());
                let args = CreateArgs::new(
                    Name::new(b"f").unwrap(),
                    0o644,
                    OpenArgs::new(libc::O_RDWR as u32),
                );
                let (e, _) = fs
                    .create(&ctx(), &CreateContext::default(), root, &args)
                    .unwrap();
                let set = || fs.setxattr(&ctx(), e.nodeid, &SetxattrArgs::new(c"user.k", b"v"));
                // The absolute /proc/self/fd/N path (the only one before) is gone...
                sys::force_xattr_path_for_tests(true);
                assert_eq!(set().unwrap_err(), Errno::ENOENT);
                // ... the *xattrat calls beneath the held /proc/self/fd descriptor are not.
                sys::force_xattr_path_for_tests(false);
                set().unwrap();
                let mut buf = [0u8; 4];
                assert_eq!(
                    fs.getxattr(&ctx(), e.nodeid, c"user.k", &mut buf).unwrap(),
                    XattrReply::Data(1)
                );
                assert_eq!(
                    fs.listxattr(&ctx(), e.nodeid, &mut []).unwrap(),
                    XattrReply::Size(7)
                );
                fs.removexattr(&ctx(), e.nodeid, c"user.k").unwrap();
                assert_eq!(
                    fs.getxattr(&ctx(), e.nodeid, c"user.k", &mut buf)
                        .unwrap_err(),
                    Errno::ENODATA
                );
            });
        });
    }
}
