//! Open files and directories: the guest's `fh` values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fuse_abi::Errno;
use fuse_server::Handle;

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

/// The table of open handles.
#[derive(Debug, Default)]
pub(crate) struct HandleTable {
    map: RwLock<HashMap<Handle, Arc<OpenHandle>>>,
    next: AtomicU64,
}

impl HandleTable {
    /// Registers a handle and returns its fh (never 0).
    pub(crate) fn insert(&self, h: OpenHandle) -> Handle {
        let fh = Handle(self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1));
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(fh, Arc::new(h));
        fh
    }

    /// The handle `fh`, or EBADF.
    pub(crate) fn get(&self, fh: Handle) -> Result<Arc<OpenHandle>, Errno> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&fh)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    /// Removes `fh` (the descriptor closes when the last in-flight user is done).
    pub(crate) fn remove(&self, fh: Handle) -> Result<Arc<OpenHandle>, Errno> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&fh)
            .ok_or(Errno::EBADF)
    }

    /// Drops every handle (a new connection).
    pub(crate) fn clear(&self) {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Open handles.
    pub(crate) fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}
