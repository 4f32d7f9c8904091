//! Open files and directories: the guest's `fh` values.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fuse_abi::Errno;

use crate::inode::{FdPermit, Inode};

/// Size of a directory handle's getdents64 buffer.
pub(crate) const DIR_BUF: usize = 32 * 1024;

/// An open file or directory.
#[derive(Debug)]
pub(crate) struct Handle {
    /// The inode it was opened from.
    pub(crate) inode: Arc<Inode>,
    /// The host descriptor (opened for I/O; never `O_PATH`).
    pub(crate) file: OwnedFd,
    /// The host open flags, for write-permission checks.
    pub(crate) flags: libc::c_int,
    /// Directory read state (directories only).
    pub(crate) dir: Option<Mutex<Vec<u8>>>,
    _permit: FdPermit,
}

impl Handle {
    /// A file handle.
    pub(crate) fn file(
        inode: Arc<Inode>,
        file: OwnedFd,
        flags: libc::c_int,
        permit: FdPermit,
    ) -> Handle {
        Handle {
            inode,
            file,
            flags,
            dir: None,
            _permit: permit,
        }
    }

    /// A directory handle with its entry buffer.
    pub(crate) fn dir(inode: Arc<Inode>, file: OwnedFd, permit: FdPermit) -> Handle {
        Handle {
            inode,
            file,
            flags: libc::O_RDONLY,
            dir: Some(Mutex::new(vec![0u8; DIR_BUF])),
            _permit: permit,
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
    map: RwLock<HashMap<u64, Arc<Handle>>>,
    next: AtomicU64,
}

impl HandleTable {
    /// Registers a handle and returns its fh (never 0).
    pub(crate) fn insert(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(fh, Arc::new(h));
        fh
    }

    /// The handle `fh`, or EBADF.
    pub(crate) fn get(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&fh)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    /// Removes `fh` (the descriptor closes when the last in-flight user is done).
    pub(crate) fn remove(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
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
