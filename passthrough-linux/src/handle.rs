//! Open files and directories, kept in a [`fuse_server::HandleTable`] under the guest's `fh`
//! values.

use std::sync::{Arc, Mutex};

use crate::inode::{FdPermit, Inode, Permit};
use crate::open::IoFd;

/// An open file or directory.
#[derive(Debug)]
pub(crate) struct OpenHandle {
    /// The inode it was opened from.
    pub(crate) inode: Arc<Inode>,
    /// The host descriptor, from the one open path.
    pub(crate) file: IoFd,
    /// The host open flags, for write-permission checks.
    pub(crate) flags: libc::c_int,
    /// Directories only: serialises the seek and the reads of one READDIR on the shared
    /// descriptor. The handle keeps no entries: its position is the descriptor's, and the
    /// getdents64 buffer belongs to the calling thread, so a handle costs the same whatever
    /// the size of its directory.
    pub(crate) dir: Option<Mutex<()>>,
    _permit: FdPermit,
    _dir_permit: Option<Permit>,
}

impl OpenHandle {
    /// A file handle.
    pub(crate) fn file(
        inode: Arc<Inode>,
        file: IoFd,
        flags: libc::c_int,
        permit: FdPermit,
    ) -> OpenHandle {
        OpenHandle {
            inode,
            file,
            flags,
            dir: None,
            _permit: permit,
            _dir_permit: None,
        }
    }

    /// A directory handle, holding its share of the descriptor and directory-handle budgets.
    pub(crate) fn dir(
        inode: Arc<Inode>,
        file: IoFd,
        permit: FdPermit,
        dir_permit: Permit,
    ) -> OpenHandle {
        OpenHandle {
            inode,
            file,
            flags: libc::O_RDONLY,
            dir: Some(Mutex::new(())),
            _permit: permit,
            _dir_permit: Some(dir_permit),
        }
    }

    /// Whether the handle was opened for writing.
    pub(crate) fn writable(&self) -> bool {
        matches!(self.flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
    }
}
