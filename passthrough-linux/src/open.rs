//! The one open path: every descriptor the backend opens for I/O comes from here.
//!
//! An [`IoFd`] is a host descriptor opened for I/O on a regular file or a directory. Only this
//! module can make one, and every holder of an I/O descriptor takes an `IoFd`: open files and
//! directory handles ([`OpenHandle`](crate::handle::OpenHandle)), lock descriptions, the
//! descriptors of SETATTR size and SYNCFS. READ, WRITE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE and locks act
//! on those. The opening calls of `sys` that do not force `O_PATH` take an [`OpenToken`], which
//! only this module can construct, so a new open elsewhere does not compile.
//!
//! The rule, for every entry point:
//!
//! - an existing inode is opened only through its node ([`PassthroughFs::open_io`]): the type
//!   recorded when it was looked up (an `O_PATH` reference, `fstat`ed: no driver `open()` ran)
//!   must be a regular file or a directory before anything is opened. A symlink is ELOOP, a
//!   directory opened for writing EISDIR, and a device node, FIFO or socket EACCES, the errno
//!   of opening a device on a `nodev` mount, which is what the share is to the guest: its
//!   kernel serves those itself (`init_special_inode`), so only a raw frontend asks, and no
//!   host open can be allowed to reach a driver or block on a FIFO. The open itself is
//!   `O_NONBLOCK | O_NOCTTY` (a lease break or anything else that would wait answers
//!   EWOULDBLOCK instead); `O_NONBLOCK` is cleared afterwards unless the guest asked for it;
//! - a name is opened only to create a regular file, `O_CREAT | O_EXCL` beneath its parent
//!   ([`PassthroughFs::create_io`]), which never opens what already exists; CREATE of an
//!   existing name without the guest's `O_EXCL` resolves the name `O_PATH | O_NOFOLLOW`,
//!   registers the inode and goes through [`PassthroughFs::open_io`];
//! - `O_TMPFILE` makes a new unnamed regular file ([`PassthroughFs::tmpfile_io`]);
//! - whatever comes back is `fstat`ed and must be a regular file or a directory (of the type
//!   expected) before it is wrapped.
//!
//! Extended attributes never open anything: they name the inode through the `/proc/self/fd`
//! descriptor (see `sys`). Device nodes, FIFOs and sockets can still be created (MKNOD),
//! renamed, linked, removed and have their attributes changed through `O_PATH`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use fuse_abi::{Errno, mode};

use crate::errno::errno;
use crate::inode::{Inode, InodeRef, ProcFdName};
use crate::{PassthroughFs, sys};

/// The permission to call the opening functions of `sys` that do not force `O_PATH`. Its field
/// is private to this module: nothing else can make one.
#[derive(Debug)]
pub(crate) struct OpenToken(());

/// A host descriptor opened for I/O on a regular file or a directory (never `O_PATH`, never
/// anything else). Made only by this module.
#[derive(Debug)]
pub(crate) struct IoFd {
    fd: OwnedFd,
}

impl AsFd for IoFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Host open flags that may reach an I/O open (the callers filter the guest's flags already;
/// this is the last line: no `O_CREAT`, `O_PATH`, `O_TMPFILE`, `O_NOATIME`, `O_ASYNC`, ...).
const OPEN_FLAGS: libc::c_int = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_TRUNC
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_LARGEFILE
    | libc::O_DIRECT
    | libc::O_DIRECTORY;

/// Wraps `fd` after checking that it is of type `kind` (`S_IFREG` or `S_IFDIR`).
fn seal(fd: OwnedFd, kind: u32) -> io::Result<IoFd> {
    let stx = sys::statx(fd.as_fd(), 0, libc::STATX_TYPE)?;
    let got = u32::from(stx.stx_mode) & mode::S_IFMT;
    if got != kind || !(kind == mode::S_IFREG || kind == mode::S_IFDIR) {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    Ok(IoFd { fd })
}

/// The errno for opening an inode of type `kind` with `flags`, or `None` if it may be opened.
fn refusal(kind: u32, flags: libc::c_int) -> Option<Errno> {
    match kind {
        mode::S_IFREG => None,
        mode::S_IFDIR => (flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0)
            .then_some(Errno::EISDIR),
        mode::S_IFLNK => Some(Errno::ELOOP),
        // Devices, FIFOs, sockets (and any type a future kernel invents).
        _ => Some(Errno::EACCES),
    }
}

impl PassthroughFs {
    /// Opens the inode for I/O with `flags`: through its file handle, or by reopening its
    /// `O_PATH` descriptor through `/proc/self/fd`. Regular files and directories only, never
    /// blocking (see the [module docs](self)).
    pub(crate) fn open_io(&self, inode: &Inode, flags: libc::c_int) -> Result<IoFd, Errno> {
        if let Some(e) = refusal(inode.kind, flags) {
            return Err(e);
        }
        let mut flags = flags & OPEN_FLAGS;
        if inode.kind == mode::S_IFDIR {
            flags |= libc::O_DIRECTORY;
        } else {
            flags &= !libc::O_DIRECTORY;
        }
        let wanted_nonblock = flags & libc::O_NONBLOCK != 0;
        let open_flags = flags | libc::O_NONBLOCK | libc::O_NOCTTY;
        let token = OpenToken(());
        let fd = match &inode.iref {
            InodeRef::Fd { fd, .. } => {
                let name = ProcFdName::new(fd.as_fd());
                sys::openat_io(
                    &token,
                    self.proc_self_fd.as_fd(),
                    name.as_cstr(),
                    open_flags,
                    0,
                )
            }
            InodeRef::Handle(h, mount) => {
                sys::open_by_handle_io(&token, mount.as_fd(), h, open_flags)
            }
        }
        .map_err(errno)?;
        let fd = seal(fd, inode.kind).map_err(errno)?;
        if !wanted_nonblock {
            // F_SETFL looks at O_APPEND, O_DIRECT, O_NOATIME, O_ASYNC and O_NONBLOCK only: the
            // flags just opened with, less O_NONBLOCK.
            sys::set_status_flags(fd.as_fd(), flags).map_err(errno)?;
        }
        Ok(fd)
    }

    /// Creates the regular file `name` beneath `dir` and opens it (`O_CREAT | O_EXCL`: an
    /// existing name is EEXIST, whatever it is). Runs with the caller's identity, which the
    /// caller has switched to.
    pub(crate) fn create_io(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        flags: libc::c_int,
        perm: u32,
    ) -> io::Result<IoFd> {
        let flags = (flags & OPEN_FLAGS & !libc::O_DIRECTORY) | libc::O_NOCTTY;
        let fd = sys::open_beneath_io(
            &OpenToken(()),
            dir,
            name,
            flags | libc::O_CREAT | libc::O_EXCL,
            perm,
        )?;
        seal(fd, mode::S_IFREG)
    }

    /// Makes an unnamed regular file in `dir` (`O_TMPFILE`; `exclusive` is the guest's
    /// `O_EXCL`: it can never be linked).
    pub(crate) fn tmpfile_io(
        &self,
        dir: BorrowedFd<'_>,
        flags: libc::c_int,
        exclusive: bool,
        perm: u32,
    ) -> io::Result<IoFd> {
        let mut flags = (flags & OPEN_FLAGS & !libc::O_DIRECTORY) | libc::O_TMPFILE;
        if exclusive {
            flags |= libc::O_EXCL;
        }
        let fd = sys::openat_io(&OpenToken(()), dir, c".", flags, perm)?;
        seal(fd, mode::S_IFREG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_allows_only_files_and_read_only_directories() {
        assert_eq!(refusal(mode::S_IFREG, libc::O_RDWR | libc::O_TRUNC), None);
        assert_eq!(refusal(mode::S_IFDIR, libc::O_RDONLY), None);
        assert_eq!(refusal(mode::S_IFDIR, libc::O_WRONLY), Some(Errno::EISDIR));
        assert_eq!(refusal(mode::S_IFLNK, libc::O_RDONLY), Some(Errno::ELOOP));
        for kind in [
            mode::S_IFIFO,
            mode::S_IFCHR,
            mode::S_IFBLK,
            mode::S_IFSOCK,
            0,
        ] {
            assert_eq!(refusal(kind, libc::O_RDONLY), Some(Errno::EACCES));
        }
    }

    #[test]
    fn seal_refuses_a_descriptor_of_another_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = sys::open_dir_path(&p).unwrap();
        assert_eq!(
            seal(d, mode::S_IFREG).unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
    }

    #[test]
    fn io_open_beneath_a_trailing_symlink_is_eloop() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let p = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        let d = sys::open_dir_path(&p).unwrap();
        let e =
            sys::open_beneath_io(&OpenToken(()), d.as_fd(), c"l", libc::O_RDONLY, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn open_io_is_nonblocking_only_when_asked() {
        use fuse_server::{Context, FileSystem, Name, Negotiated, NodeId};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let fs = PassthroughFs::new(crate::Config::builder(dir.path()).build().unwrap()).unwrap();
        fs.init(&Negotiated {
            minor: 46,
            flags: fs.declared_flags(),
            max_write: 1 << 20,
        })
        .unwrap();
        let ctx = Context {
            unique: 1,
            uid: 0,
            gid: 0,
            pid: 1,
        };
        let e = fs
            .lookup(&ctx, NodeId::ROOT, Name::new(b"f").unwrap())
            .unwrap();
        let inode = fs.inodes.get(e.nodeid).unwrap();
        for (asked, append) in [(0, 0), (libc::O_NONBLOCK, 0), (0, libc::O_APPEND)] {
            let fd = fs.open_io(&inode, libc::O_RDWR | asked | append).unwrap();
            let fl = sys::status_flags(fd.as_fd()).unwrap();
            assert_eq!(fl & libc::O_NONBLOCK, asked);
            assert_eq!(fl & libc::O_APPEND, append);
            assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);
        }
    }
}
