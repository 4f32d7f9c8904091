//! The guest's node ids and the host identities they stand for (reference/macos.md §1.2).
//!
//! A node id names one host identity `(dev, ino)`; nothing is kept open for it, the host
//! reopens it through volfs. The exception is an inode whose last name went away (unlink,
//! rmdir, rename over it) while the guest still refers to it: volfs cannot reach it any more,
//! so a descriptor opened just before is kept ([`Inode::stash`]) until the guest forgets it.
//!
//! Node ids are allocated, not derived from host inode numbers, so that two volumes (a
//! submount) never collide; the root is node id 1.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fuse_abi::{Errno, mode};
use fuse_server::NodeId;
use fuse_server::limits::{Budget, Permit};

use crate::host::{HostId, Node};
use crate::open::IoFd;

/// The root's node id.
pub(crate) const ROOT: NodeId = NodeId::ROOT;

/// One guest-visible inode.
#[derive(Debug)]
pub(crate) struct Inode {
    /// The host identity.
    pub(crate) id: HostId,
    /// The host file type (`S_IFMT` bits; the same numbers on Darwin and Linux).
    pub(crate) typ: u32,
    /// The guest's lookup count.
    refs: AtomicU64,
    /// A descriptor kept once the inode has no name left on the host.
    stash: OnceLock<IoFd>,
    /// Its entry in the inode table's budget (none for the root).
    _permit: Option<Permit>,
}

impl Inode {
    /// How the host reaches this inode: its stashed descriptor once it has no name left,
    /// otherwise its identity.
    pub(crate) fn node(&self) -> Node<'_> {
        match self.stash.get() {
            Some(fd) => Node::Fd(fd.as_fd()),
            None => Node::Id(self.id),
        }
    }

    /// The identity of a directory to create or resolve names in: `ENOENT` once it has been
    /// removed (volfs cannot name a child of a removed directory, and Linux refuses to
    /// create in one).
    pub(crate) fn dir(&self) -> Result<HostId, Errno> {
        if self.typ != mode::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        if self.stash.get().is_some() {
            return Err(Errno::ENOENT);
        }
        Ok(self.id)
    }

    /// The identity, for calls that need a name on the host (link): `ENOENT` once it has none.
    pub(crate) fn named(&self) -> Result<HostId, Errno> {
        if self.stash.get().is_some() {
            return Err(Errno::ENOENT);
        }
        Ok(self.id)
    }

    /// The stashed descriptor, if the inode has lost its last name.
    pub(crate) fn stashed(&self) -> Option<&IoFd> {
        self.stash.get()
    }

    /// Keeps `fd` as the way to reach the inode from now on (the first one wins).
    pub(crate) fn set_stash(&self, fd: IoFd) {
        let _ = self.stash.set(fd);
    }

    /// Whether the stash is worth keeping for this type: only regular files and directories
    /// are opened on the host.
    pub(crate) fn stashable(&self) -> bool {
        matches!(self.typ, mode::S_IFREG | mode::S_IFDIR)
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.typ == mode::S_IFDIR
    }
}

#[derive(Debug, Default)]
struct Tables {
    by_node: HashMap<NodeId, Arc<Inode>>,
    by_id: HashMap<HostId, NodeId>,
}

/// The inode table, bounded: every inode but the root holds a unit of its [`Budget`]
/// (`Config::max_inodes`), so a LOOKUP past it answers `ENFILE`.
///
/// The host is told to forget an identity ([`Host::forget`](crate::host::Host::forget)) under
/// the table's lock, and every such release bumps [`Inodes::releases`]: a LOOKUP racing with a
/// FORGET (which virtio-fs sends on another queue, so another worker) compares the count around
/// its host call and resolves the name again if the host may have forgotten it meanwhile.
#[derive(Debug)]
pub(crate) struct Inodes {
    tables: RwLock<Tables>,
    next: AtomicU64,
    releases: AtomicU64,
    root: HostId,
    budget: Arc<Budget>,
}

impl Inodes {
    /// A table holding only the root, `root` (a directory), and at most `budget`'s size of
    /// other inodes.
    pub(crate) fn new(root: HostId, budget: Arc<Budget>) -> Inodes {
        let inodes = Inodes {
            tables: RwLock::new(Tables::default()),
            next: AtomicU64::new(ROOT.0 + 1),
            releases: AtomicU64::new(0),
            root,
            budget,
        };
        inodes.reset(|_| {});
        inodes
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many identities have been released so far.
    pub(crate) fn releases(&self) -> u64 {
        self.releases.load(Ordering::Acquire)
    }

    /// Drops every inode but the root (a new FUSE session), releasing each identity.
    pub(crate) fn reset(&self, mut release: impl FnMut(HostId)) {
        let root = Arc::new(Inode {
            id: self.root,
            typ: mode::S_IFDIR,
            // The root is never forgotten: the kernel does not count its lookups.
            refs: AtomicU64::new(u64::MAX / 2),
            stash: OnceLock::new(),
            _permit: None,
        });
        let mut tables = self.write();
        for &id in tables.by_id.keys().filter(|&&id| id != self.root) {
            self.releases.fetch_add(1, Ordering::AcqRel);
            release(id);
        }
        tables.by_node.clear();
        tables.by_id.clear();
        tables.by_node.insert(ROOT, root);
        tables.by_id.insert(self.root, ROOT);
    }

    /// The inode of `nodeid`; `ESTALE` for one the guest does not hold.
    pub(crate) fn get(&self, nodeid: NodeId) -> Result<Arc<Inode>, Errno> {
        self.read()
            .by_node
            .get(&nodeid)
            .cloned()
            .ok_or(Errno::ESTALE)
    }

    /// The inode for `id` if the guest holds one.
    pub(crate) fn find(&self, id: HostId) -> Option<Arc<Inode>> {
        let tables = self.read();
        tables
            .by_id
            .get(&id)
            .and_then(|nodeid| tables.by_node.get(nodeid))
            .cloned()
    }

    /// One more guest reference to `id` (of host type `typ`): its node id, and whether it is
    /// new. `ENFILE` when a new inode would exceed the table's budget.
    pub(crate) fn insert_or_ref(&self, id: HostId, typ: u32) -> Result<(NodeId, bool), Errno> {
        let mut tables = self.write();
        if let Some(&nodeid) = tables.by_id.get(&id) {
            if let Some(inode) = tables.by_node.get(&nodeid) {
                // A stashed inode with the same identity would mean the identity was reused
                // while we hold a descriptor to it, which the host cannot do; an inode whose
                // type changed likewise. Either way, start afresh.
                if inode.typ == typ && inode.stash.get().is_none() {
                    inode.refs.fetch_add(1, Ordering::Relaxed);
                    return Ok((nodeid, false));
                }
            }
        }
        let permit = self.budget.acquire()?;
        let nodeid = NodeId(self.next.fetch_add(1, Ordering::Relaxed));
        let inode = Arc::new(Inode {
            id,
            typ,
            refs: AtomicU64::new(1),
            stash: OnceLock::new(),
            _permit: Some(permit),
        });
        tables.by_node.insert(nodeid, inode);
        tables.by_id.insert(id, nodeid);
        Ok((nodeid, true))
    }

    /// Drops `n` guest references to `nodeid`; when no inode refers to its identity any more,
    /// `release`s it (under the lock). Returns whether the identity was released.
    pub(crate) fn forget(&self, nodeid: NodeId, n: u64, release: impl FnOnce(HostId)) -> bool {
        if nodeid == ROOT {
            return false;
        }
        let mut tables = self.write();
        let Some(inode) = tables.by_node.get(&nodeid) else {
            return false;
        };
        let left = inode.refs.load(Ordering::Relaxed).saturating_sub(n);
        inode.refs.store(left, Ordering::Relaxed);
        if left > 0 {
            return false;
        }
        let id = inode.id;
        tables.by_node.remove(&nodeid);
        if tables.by_id.get(&id) == Some(&nodeid) {
            tables.by_id.remove(&id);
            self.releases.fetch_add(1, Ordering::AcqRel);
            release(id);
            return true;
        }
        false
    }

    /// `release`s `id` (under the lock) unless an inode refers to it.
    pub(crate) fn release_unheld(&self, id: HostId, release: impl FnOnce(HostId)) {
        let tables = self.write();
        if !tables.by_id.contains_key(&id) {
            self.releases.fetch_add(1, Ordering::AcqRel);
            release(id);
        }
        drop(tables);
    }

    /// The number of inodes held (the root included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.read().by_node.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_ID: HostId = HostId { dev: 1, ino: 2 };

    fn id(ino: u64) -> HostId {
        HostId { dev: 1, ino }
    }

    /// `Inodes::forget`, returning the released identity.
    fn forget(t: &Inodes, nodeid: NodeId, n: u64) -> Option<HostId> {
        let mut released = None;
        t.forget(nodeid, n, |id| released = Some(id));
        released
    }

    #[test]
    fn release_unheld_spares_held_identities() {
        let t = Inodes::new(ROOT_ID, Budget::new(100));
        let (a, _) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        let mut released = Vec::new();
        t.release_unheld(id(10), |id| released.push(id));
        t.release_unheld(ROOT_ID, |id| released.push(id));
        t.release_unheld(id(11), |id| released.push(id));
        assert_eq!(released, [id(11)]);
        assert_eq!(forget(&t, a, 1), Some(id(10)));
    }

    #[test]
    fn lookups_count_and_forget_drops() {
        let t = Inodes::new(ROOT_ID, Budget::new(100));
        let (a, new) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        assert!(new);
        assert_ne!(a, ROOT);
        assert_eq!(t.insert_or_ref(id(10), mode::S_IFREG), Ok((a, false)));
        assert_eq!(forget(&t, a, 1), None);
        assert!(t.get(a).is_ok());
        let before = t.releases();
        assert_eq!(forget(&t, a, 1), Some(id(10)));
        assert_eq!(t.releases(), before + 1);
        assert_eq!(t.get(a).unwrap_err(), Errno::ESTALE);
        // A new lookup gets a new node id.
        let (b, new) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        assert!(new);
        assert_ne!(a, b);
    }

    #[test]
    fn forgetting_too_much_drops_once() {
        let t = Inodes::new(ROOT_ID, Budget::new(100));
        let (a, _) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        assert_eq!(forget(&t, a, u64::MAX), Some(id(10)));
        assert_eq!(forget(&t, a, 1), None);
        assert_eq!(forget(&t, NodeId(12345), 1), None);
    }

    #[test]
    fn root_is_never_forgotten_and_reset_keeps_it() {
        let t = Inodes::new(ROOT_ID, Budget::new(100));
        assert_eq!(forget(&t, ROOT, u64::MAX), None);
        assert_eq!(t.get(ROOT).unwrap().id, ROOT_ID);
        t.insert_or_ref(id(10), mode::S_IFDIR).unwrap();
        t.insert_or_ref(id(11), mode::S_IFREG).unwrap();
        let mut dropped = Vec::new();
        t.reset(|id| dropped.push(id));
        dropped.sort();
        assert_eq!(dropped, [id(10), id(11)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.find(ROOT_ID).map(|i| i.id), Some(ROOT_ID));
    }

    #[test]
    fn a_stashed_inode_is_not_shared_with_a_new_name() {
        let t = Inodes::new(ROOT_ID, Budget::new(100));
        let (a, _) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        let fd = std::fs::File::open("/dev/null").unwrap();
        t.get(a)
            .unwrap()
            .set_stash(IoFd::for_test(fd.into(), &Budget::new(1)));
        assert!(matches!(t.get(a).unwrap().node(), Node::Fd(_)));
        assert_eq!(t.get(a).unwrap().named().unwrap_err(), Errno::ENOENT);
        let (b, _) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        assert_ne!(a, b);
        // Forgetting the old node id does not drop the new one's identity.
        assert_eq!(forget(&t, a, 1), None);
        assert!(matches!(t.get(b).unwrap().node(), Node::Id(_)));
        assert_eq!(forget(&t, b, 1), Some(id(10)));
    }

    #[test]
    fn the_table_is_bounded_by_its_budget() {
        let budget = Budget::new(2);
        let t = Inodes::new(ROOT_ID, Arc::clone(&budget));
        let (a, _) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        t.insert_or_ref(id(11), mode::S_IFREG).unwrap();
        // More references to a held inode cost nothing; a third inode is refused.
        assert_eq!(t.insert_or_ref(id(10), mode::S_IFREG), Ok((a, false)));
        assert_eq!(t.insert_or_ref(id(12), mode::S_IFREG), Err(Errno::ENFILE));
        assert_eq!(budget.used(), 2);
        assert_eq!(forget(&t, a, 2), Some(id(10)));
        assert_eq!(budget.used(), 1);
        assert!(t.insert_or_ref(id(12), mode::S_IFREG).is_ok());
        // A new session gives everything back.
        t.reset(|_| {});
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_changed_type_is_a_new_inode() {
        let t = Inodes::new(ROOT_ID, Budget::new(100));
        let (a, _) = t.insert_or_ref(id(10), mode::S_IFREG).unwrap();
        let (b, _) = t.insert_or_ref(id(10), mode::S_IFDIR).unwrap();
        assert_ne!(a, b);
        assert!(t.get(b).unwrap().is_dir());
        assert_eq!(t.get(b).unwrap().dir(), Ok(id(10)));
        assert_eq!(t.get(a).unwrap().dir(), Err(Errno::ENOTDIR));
    }
}
