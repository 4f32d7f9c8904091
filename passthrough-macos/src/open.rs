//! The one open path: every host descriptor the backend reads, writes, truncates, locks, seeks,
//! allocates or lists a directory through is an [`IoFd`], and only [`open_io`] (and the
//! duplicates [`IoFd::try_clone`] makes of one) creates an `IoFd`.
//!
//! [`open_io`] can only yield a regular file or a directory and never blocks:
//!
//! 1. an existing object is looked at first (`lstat` of the node, which never opens it): a
//!    symlink is `ELOOP`, anything but a directory under `O_DIRECTORY` is `ENOTDIR`, a device
//!    node, FIFO or socket is `ENXIO`, and nothing is opened;
//! 2. the [`Host`] opens it under its contract ([`Host::open`]: it checks the type again
//!    itself, and never waits in `open`);
//! 3. the descriptor it returns is checked once more (`fstat`: a regular file or a directory,
//!    and for a node named by identity, that identity), else closed and `ENXIO`.
//!
//! `O_CREAT` always goes with `O_EXCL` here: a name that exists is never opened by the
//! creating call; a caller that accepts an existing file (CREATE without `O_EXCL`) calls again
//! without `O_CREAT`, through steps 1–3.
//!
//! Every `IoFd` and every [`DirHandle`] holds one unit of the backend's descriptor budget
//! (`Config::max_fds`) for as long as it lives, so a guest cannot make the backend hold more
//! descriptors than that: past it, opens answer `ENFILE`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use fuse_abi::{Errno, mode};
use fuse_server::FsResult;
use fuse_server::limits::{Budget, Permit};

use crate::darwin_abi;
use crate::errno::DarwinErrno;
use crate::host::{Host, HostId, Node};

/// A host descriptor of a regular file or directory, checked by [`open_io`], holding its share
/// of the descriptor budget.
#[derive(Debug)]
pub(crate) struct IoFd {
    fd: OwnedFd,
    /// Whether it is a directory (else a regular file), as `fstat` said when it was opened.
    dir: bool,
    _permit: Permit,
}

impl IoFd {
    /// A duplicate (`dup`: the same open file description), with a budget unit of its own.
    pub(crate) fn try_clone<H: Host>(&self, host: &H, budget: &Arc<Budget>) -> FsResult<IoFd> {
        let permit = budget.acquire()?;
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| host.io_errno(&e).to_linux())?;
        Ok(IoFd {
            fd,
            dir: self.dir,
            _permit: permit,
        })
    }

    /// Whether this is a directory (else it is a regular file).
    pub(crate) const fn is_dir(&self) -> bool {
        self.dir
    }
}

#[cfg(test)]
impl IoFd {
    /// A descriptor the test vouches for.
    pub(crate) fn for_test(fd: OwnedFd, budget: &Arc<Budget>) -> IoFd {
        IoFd {
            fd,
            dir: false,
            _permit: budget.acquire().unwrap_or_else(|e| panic!("budget: {e:?}")),
        }
    }
}

impl AsFd for IoFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether an object of host file type `typ` (`S_IFMT` bits) may be opened with Darwin
/// `flags`: only a regular file or a directory (`ELOOP` for a symlink, `ENOTDIR` under
/// `O_DIRECTORY`, `ENXIO` otherwise).
pub(crate) fn check_type(typ: u32, flags: i32) -> Result<(), Errno> {
    if typ == mode::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    if flags & darwin_abi::O_DIRECTORY != 0 && typ != mode::S_IFDIR {
        return Err(Errno::ENOTDIR);
    }
    match typ {
        mode::S_IFREG | mode::S_IFDIR => Ok(()),
        _ => Err(Errno::ENXIO),
    }
}

/// Opens `node` (never a [`Node::Fd`]: `EBADF`) with Darwin `flags` for I/O: the only way to an
/// [`IoFd`] (see the [module docs](self)). With `O_CREAT` (always made exclusive) `mode` is the
/// new file's host mode.
pub(crate) fn open_io<H: Host>(
    host: &H,
    budget: &Arc<Budget>,
    node: Node<'_>,
    flags: i32,
    mode: u16,
) -> FsResult<IoFd> {
    if matches!(node, Node::Fd(_)) {
        return Err(Errno::EBADF);
    }
    let permit = budget.acquire()?;
    let guest = |e: DarwinErrno| e.to_linux();
    let create = flags & darwin_abi::O_CREAT != 0;
    let flags = if create {
        flags | darwin_abi::O_EXCL
    } else {
        let st = host.lstat(node).map_err(guest)?;
        check_type(st.file_type(), flags)?;
        flags & !darwin_abi::O_EXCL
    };
    let fd = host.open(node, flags, mode).map_err(guest)?;
    let opened = host.lstat(Node::Fd(fd.as_fd())).map_err(guest)?;
    let expected = if create {
        // A new file is a regular file.
        opened.file_type() == mode::S_IFREG
    } else {
        check_type(opened.file_type(), flags).is_ok()
    };
    if !expected {
        return Err(Errno::ENXIO);
    }
    if let Node::Id(id) = node {
        if HostId::of(&opened) != id {
            return Err(Errno::ENOENT);
        }
    }
    Ok(IoFd {
        fd,
        dir: opened.is_dir(),
        _permit: permit,
    })
}

/// A directory stream over an [`IoFd`] directory, holding its share of the descriptor budget
/// (the stream reads through a duplicate descriptor of its own) and, when a handle keeps it,
/// of the directory-stream budget (its buffer's memory).
#[derive(Debug)]
pub(crate) struct DirHandle<S> {
    pub(crate) stream: S,
    _permit: Permit,
    _kept: Option<Permit>,
}

/// The directory stream of `dir` (a directory [`IoFd`]): one more descriptor against `budget`;
/// `kept` is the directory-stream budget's unit of a stream a handle keeps.
pub(crate) fn dir_stream<H: Host>(
    host: &H,
    budget: &Arc<Budget>,
    kept: Option<Permit>,
    dir: &IoFd,
) -> FsResult<DirHandle<H::DirStream>> {
    if !dir.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let permit = budget.acquire()?;
    let stream = host.open_dir(dir.as_fd()).map_err(|e| e.to_linux())?;
    Ok(DirHandle {
        stream,
        _permit: permit,
        _kept: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_and_directories_pass() {
        let dir = darwin_abi::O_RDONLY | darwin_abi::O_DIRECTORY;
        let rows = [
            (mode::S_IFREG, 0, Ok(())),
            (mode::S_IFDIR, 0, Ok(())),
            (mode::S_IFDIR, dir, Ok(())),
            (mode::S_IFREG, dir, Err(Errno::ENOTDIR)),
            (mode::S_IFLNK, 0, Err(Errno::ELOOP)),
            (mode::S_IFLNK, dir, Err(Errno::ELOOP)),
            (mode::S_IFCHR, 0, Err(Errno::ENXIO)),
            (mode::S_IFBLK, 0, Err(Errno::ENXIO)),
            (mode::S_IFIFO, 0, Err(Errno::ENXIO)),
            (mode::S_IFSOCK, 0, Err(Errno::ENXIO)),
            (mode::S_IFIFO, dir, Err(Errno::ENOTDIR)),
            (0, 0, Err(Errno::ENXIO)),
        ];
        for (typ, flags, want) in rows {
            assert_eq!(check_type(typ, flags), want, "{typ:o} {flags:x}");
        }
    }
}
