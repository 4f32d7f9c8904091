//! The inode table: node ids handed to the guest, each naming one host inode by an `O_PATH`
//! descriptor or a file handle, with the guest's lookup count.
//!
//! Host inodes are keyed by (device, inode number, mount id), so two names of one file share a
//! node id and a file reached through two mounts does not. Lookup by node id and by key are
//! hash-map hits under one read-write lock. Node ids are never reused within a process; the
//! generation is the connection epoch (bumped by each INIT), so (node id, generation) is
//! unique for the daemon's lifetime. Lookup counts are trusted only within bounds: a FORGET
//! cannot take a count below zero and never frees the root.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use fuse_abi::{Errno, ROOT_ID, mode};
use fuse_server::{Handle, LockOwner, NodeId};

use crate::sys::{self, FileHandleBuf};

/// Descriptors the guest can make the backend hold, counted against a fixed budget (the
/// stack's shared [`Budget`](fuse_server::limits::Budget); exhaustion is ENFILE).
pub(crate) use fuse_server::limits::{Budget as FdBudget, Permit as FdPermit};
/// Any other guest-driven budget (inode table entries, lock descriptions, directory handles).
pub(crate) use fuse_server::limits::{Budget, Permit};

use crate::open::IoFd;

/// A lock description held for one (inode, lock owner): an I/O descriptor with its shares of
/// the descriptor and lock budgets.
#[derive(Debug)]
pub(crate) struct LockFd {
    /// The open file description carrying the owner's OFD locks.
    pub(crate) fd: Arc<IoFd>,
    /// Its descriptor.
    pub(crate) _fd_permit: FdPermit,
    /// Its lock description.
    pub(crate) _lock_permit: Permit,
    /// The guest handles the description was used through (GETLK, SETLK, SETLKW): RELEASE of
    /// any of them drops it (see `ops::lock`). Only live handles are ever listed, since a
    /// release removes the whole description, so it is bounded by the handle table; it
    /// allocates only when the owner uses a handle it has not used before.
    pub(crate) handles: Vec<Handle>,
}

/// What identifies a host inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InodeKey {
    /// `st_dev` (major, minor folded).
    pub(crate) dev: u64,
    /// `st_ino`.
    pub(crate) ino: u64,
    /// Mount id.
    pub(crate) mnt_id: u64,
}

impl InodeKey {
    /// The key of a statx result.
    pub(crate) fn of(stx: &libc::statx) -> InodeKey {
        InodeKey {
            dev: (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor),
            ino: stx.stx_ino,
            mnt_id: stx.stx_mnt_id,
        }
    }
}

/// How an inode is reached.
#[derive(Debug)]
pub(crate) enum InodeRef {
    /// An `O_PATH` descriptor, counted against the budget.
    Fd {
        /// The descriptor.
        fd: OwnedFd,
        /// Its share of the budget.
        _permit: FdPermit,
    },
    /// A file handle and a descriptor on its mount.
    Handle(Box<FileHandleBuf>, Arc<OwnedFd>),
}

impl std::fmt::Debug for FileHandleBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileHandle(type {}, {} bytes)",
            self.handle_type, self.handle_bytes
        )
    }
}

/// A borrowed or temporarily opened `O_PATH` descriptor of an inode.
#[derive(Debug)]
pub(crate) enum PathFd<'a> {
    /// The inode's own descriptor.
    Borrowed(BorrowedFd<'a>),
    /// Opened from a file handle for this call.
    Owned(OwnedFd),
}

impl AsFd for PathFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            PathFd::Borrowed(fd) => *fd,
            PathFd::Owned(fd) => fd.as_fd(),
        }
    }
}

/// One host inode known to the guest.
#[derive(Debug)]
pub(crate) struct Inode {
    /// The guest's node id.
    pub(crate) nodeid: NodeId,
    /// The host identity.
    pub(crate) key: InodeKey,
    /// `S_IFMT` bits: the type never changes.
    pub(crate) kind: u32,
    /// Whether this is a mount point inside the share (a submount root).
    pub(crate) mount_root: bool,
    /// The reference.
    pub(crate) iref: InodeRef,
    /// Open file descriptions carrying POSIX locks, one per lock owner (OFD locks).
    pub(crate) lock_fds: Mutex<HashMap<LockOwner, LockFd>>,
    /// The host inode may carry the guest's `security.capability` under its remapped name:
    /// `true` until a WRITE, truncate or chown has cleared it or found it absent, and again
    /// whenever the guest sets that name (see `drop_remapped_capability`).
    pub(crate) remapped_capability: AtomicBool,
    /// Its entry in the inode table budget.
    _entry: Permit,
}

impl Inode {
    /// An `O_PATH` descriptor for the inode.
    pub(crate) fn path_fd(&self) -> io::Result<PathFd<'_>> {
        match &self.iref {
            InodeRef::Fd { fd, .. } => Ok(PathFd::Borrowed(fd.as_fd())),
            InodeRef::Handle(h, mount) => {
                sys::open_by_handle_path(mount.as_fd(), h).map(PathFd::Owned)
            }
        }
    }

    /// Whether this is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == mode::S_IFDIR
    }
}

/// `N` of `/proc/self/fd/N`, NUL-terminated, without allocating.
#[derive(Debug)]
pub(crate) struct ProcFdName {
    buf: [u8; 40],
    start: usize,
}

impl ProcFdName {
    /// The name of `fd` relative to `/proc/self/fd`.
    pub(crate) fn new(fd: BorrowedFd<'_>) -> ProcFdName {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 40];
        let mut n = fd.as_raw_fd().unsigned_abs();
        let mut i = buf.len() - 1; // buf[39] stays NUL
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        ProcFdName { buf, start: i }
    }

    /// `N`.
    pub(crate) fn as_cstr(&self) -> &std::ffi::CStr {
        std::ffi::CStr::from_bytes_until_nul(&self.buf[self.start..]).unwrap_or(c"")
    }

    /// `/proc/self/fd/N`, for calls that only take a path (xattrs).
    pub(crate) fn absolute(&self) -> ProcFdPath {
        let prefix = b"/proc/self/fd/";
        let digits = &self.buf[self.start..self.buf.len() - 1];
        let mut buf = [0u8; 40];
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()..prefix.len() + digits.len()].copy_from_slice(digits);
        ProcFdPath { buf }
    }
}

/// `/proc/self/fd/N`, NUL-terminated.
#[derive(Debug)]
pub(crate) struct ProcFdPath {
    buf: [u8; 40],
}

impl ProcFdPath {
    /// The path.
    pub(crate) fn as_cstr(&self) -> &std::ffi::CStr {
        std::ffi::CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}

#[derive(Debug)]
struct Slot {
    inode: Arc<Inode>,
    refs: u64,
}

#[derive(Debug)]
struct Inner {
    by_id: HashMap<NodeId, Slot>,
    by_key: HashMap<InodeKey, NodeId>,
    next_id: u64,
    generation: u64,
}

/// The table.
#[derive(Debug)]
pub(crate) struct InodeStore {
    inner: RwLock<Inner>,
}

/// What a caller hands to [`InodeStore::insert_or_ref`] for a newly found host inode.
#[derive(Debug)]
pub(crate) struct NewInode {
    /// The key.
    pub(crate) key: InodeKey,
    /// `S_IFMT` bits.
    pub(crate) kind: u32,
    /// Mount point inside the share.
    pub(crate) mount_root: bool,
    /// The reference to keep.
    pub(crate) iref: InodeRef,
    /// Its entry in the inode table budget.
    pub(crate) entry: Permit,
}

impl InodeStore {
    /// A table holding only the root.
    pub(crate) fn new(root: NewInode) -> InodeStore {
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        by_key.insert(root.key, NodeId::ROOT);
        by_id.insert(
            NodeId::ROOT,
            Slot {
                inode: Arc::new(Inode {
                    nodeid: NodeId::ROOT,
                    key: root.key,
                    kind: root.kind,
                    mount_root: false,
                    iref: root.iref,
                    lock_fds: Mutex::new(HashMap::new()),
                    remapped_capability: AtomicBool::new(true),
                    _entry: root.entry,
                }),
                refs: 1,
            },
        );
        InodeStore {
            inner: RwLock::new(Inner {
                by_id,
                by_key,
                next_id: ROOT_ID + 1,
                generation: 1,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The inode of `nodeid`, or ESTALE.
    pub(crate) fn get(&self, nodeid: NodeId) -> Result<Arc<Inode>, Errno> {
        self.read()
            .by_id
            .get(&nodeid)
            .map(|s| Arc::clone(&s.inode))
            .ok_or(Errno::ESTALE)
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// The node id of `key` with one more lookup reference, or a new node id for `new` (built
    /// only when needed by `make`).
    pub(crate) fn insert_or_ref(
        &self,
        key: InodeKey,
        make: impl FnOnce() -> Result<NewInode, Errno>,
    ) -> Result<Arc<Inode>, Errno> {
        {
            let mut inner = self.write();
            if let Some(&id) = inner.by_key.get(&key) {
                if let Some(slot) = inner.by_id.get_mut(&id) {
                    slot.refs = slot.refs.saturating_add(1);
                    return Ok(Arc::clone(&slot.inode));
                }
            }
        }
        // Build outside the lock (it may open a handle), then insert, re-checking for a racing
        // insert of the same key.
        let new = make()?;
        let mut inner = self.write();
        if let Some(&id) = inner.by_key.get(&key) {
            if let Some(slot) = inner.by_id.get_mut(&id) {
                slot.refs = slot.refs.saturating_add(1);
                return Ok(Arc::clone(&slot.inode));
            }
        }
        let id = NodeId(inner.next_id);
        inner.next_id = inner.next_id.wrapping_add(1);
        let inode = Arc::new(Inode {
            nodeid: id,
            key: new.key,
            kind: new.kind,
            mount_root: new.mount_root,
            iref: new.iref,
            lock_fds: Mutex::new(HashMap::new()),
            remapped_capability: AtomicBool::new(true),
            _entry: new.entry,
        });
        inner.by_id.insert(
            id,
            Slot {
                inode: Arc::clone(&inode),
                refs: 1,
            },
        );
        inner.by_key.insert(key, id);
        Ok(inode)
    }

    /// Drops `n` lookup references; the node goes when none are left. The root never goes.
    pub(crate) fn forget(&self, nodeid: NodeId, n: u64) {
        if nodeid == NodeId::ROOT {
            return;
        }
        let mut inner = self.write();
        let MapEntry::Occupied(mut e) = inner.by_id.entry(nodeid) else {
            return;
        };
        let slot = e.get_mut();
        slot.refs = slot.refs.saturating_sub(n);
        if slot.refs == 0 {
            let key = e.remove().inode.key;
            if inner.by_key.get(&key) == Some(&nodeid) {
                inner.by_key.remove(&key);
            }
        }
    }

    /// Drops every node but the root and starts a new generation (a new connection).
    pub(crate) fn reset(&self) {
        let mut inner = self.write();
        inner.by_id.retain(|&id, _| id == NodeId::ROOT);
        let root_key = inner.by_id.get(&NodeId::ROOT).map(|s| s.inode.key);
        inner.by_key.clear();
        if let Some(k) = root_key {
            inner.by_key.insert(k, NodeId::ROOT);
        }
        inner.generation = inner.generation.wrapping_add(1);
    }

    /// Node ids in the table (root included).
    pub(crate) fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Lookup count of a node (tests and diagnostics).
    pub(crate) fn refs(&self, nodeid: NodeId) -> Option<u64> {
        self.read().by_id.get(&nodeid).map(|s| s.refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> InodeKey {
        InodeKey {
            dev: 1,
            ino,
            mnt_id: 1,
        }
    }

    fn store() -> (InodeStore, Arc<FdBudget>) {
        let budget = FdBudget::new(100);
        let fd = sys::open_dir_path(c"/").unwrap();
        let root = NewInode {
            key: key(2),
            kind: mode::S_IFDIR,
            mount_root: false,
            iref: InodeRef::Fd {
                fd,
                _permit: budget.acquire().unwrap(),
            },
            entry: Budget::new(1).acquire().unwrap(),
        };
        (InodeStore::new(root), budget)
    }

    fn new_inode(budget: &Arc<FdBudget>, ino: u64) -> Result<NewInode, Errno> {
        Ok(NewInode {
            key: key(ino),
            kind: mode::S_IFREG,
            mount_root: false,
            iref: InodeRef::Fd {
                fd: sys::open_dir_path(c"/").unwrap(),
                _permit: budget.acquire()?,
            },
            entry: Budget::new(1).acquire().unwrap(),
        })
    }

    #[test]
    fn forget_root_with_huge_count_keeps_root() {
        let (s, _b) = store();
        s.forget(NodeId::ROOT, u64::MAX);
        assert!(s.get(NodeId::ROOT).is_ok());
    }

    #[test]
    fn forget_more_than_looked_up_removes_once() {
        let (s, b) = store();
        let id = s
            .insert_or_ref(key(10), || new_inode(&b, 10))
            .unwrap()
            .nodeid;
        s.forget(id, 5);
        assert_eq!(s.get(id).unwrap_err(), Errno::ESTALE);
        s.forget(id, 1); // unknown now: ignored, no underflow
        assert_eq!(s.len(), 1);
        assert_eq!(b.used(), 1); // only the root's descriptor is left
    }

    #[test]
    fn insert_same_key_twice_counts_two_lookups() {
        let (s, b) = store();
        let a = s
            .insert_or_ref(key(10), || new_inode(&b, 10))
            .unwrap()
            .nodeid;
        let c = s
            .insert_or_ref(key(10), || new_inode(&b, 10))
            .unwrap()
            .nodeid;
        assert_eq!(a, c);
        assert_eq!(s.refs(a), Some(2));
        s.forget(a, 1);
        assert_eq!(s.refs(a), Some(1));
    }

    #[test]
    fn insert_over_budget_is_enfile() {
        let budget = FdBudget::new(1);
        let fd = sys::open_dir_path(c"/").unwrap();
        let root = NewInode {
            key: key(2),
            kind: mode::S_IFDIR,
            mount_root: false,
            iref: InodeRef::Fd {
                fd,
                _permit: budget.acquire().unwrap(),
            },
            entry: Budget::new(1).acquire().unwrap(),
        };
        let s = InodeStore::new(root);
        let r = s.insert_or_ref(key(3), || new_inode(&budget, 3));
        assert_eq!(r.unwrap_err(), Errno::ENFILE);
    }

    #[test]
    fn reset_keeps_only_root_and_bumps_generation() {
        let (s, b) = store();
        s.insert_or_ref(key(10), || new_inode(&b, 10)).unwrap();
        let g = s.generation();
        s.reset();
        assert_eq!(s.len(), 1);
        assert_eq!(s.generation(), g + 1);
    }

    #[test]
    fn proc_fd_name_formats_digits() {
        let fd = sys::open_dir_path(c"/").unwrap();
        let n = ProcFdName::new(fd.as_fd());
        use std::os::fd::AsRawFd;
        assert_eq!(n.as_cstr().to_str().unwrap(), fd.as_raw_fd().to_string());
        let p = n.absolute();
        assert_eq!(
            p.as_cstr().to_str().unwrap(),
            format!("/proc/self/fd/{}", fd.as_raw_fd())
        );
    }
}
