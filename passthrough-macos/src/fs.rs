//! The backend: [`PassthroughFs`], every FUSE operation over a [`Host`].
//!
//! What the guest sees of a host object is its host `stat` patched by the override xattr
//! (`user.containers.override_stat`, libkrun's format): owner, group and mode live there, the
//! host objects themselves are created `0600`/`0700` and never chowned. Device nodes, FIFOs and
//! sockets are host regular files whose override carries the type (a device's number in
//! `user.virtiofs.rdev`); the guest kernel gives them their behaviour.
//!
//! Every host error is a [`DarwinErrno`] and reaches the guest only through
//! [`DarwinErrno::to_linux`]: a missed translation does not compile.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fuse_abi::{AttrFlags, Errno, InitFlags, OpenOutFlags, RenameFlags, mode};
use fuse_server::limits::Budget;
use fuse_server::{
    AttrReply, Capabilities, Context, CopyFileRangeArgs, CreateArgs, CreateContext, DirEntry,
    DirSink, Entry, FileAttr, FileSystem, FsResult, Handle, HandleTable, Lock, LockArgs, LockOwner,
    Name, Negotiated, NodeId, OpenArgs, OpenReply, ReadArgs, ReleaseArgs, SetAttr, SetxattrArgs,
    StatFs, WriteArgs, XattrReply, ZeroCopyReader, ZeroCopyWriter,
};
use log::{debug, info, warn};

use crate::access;
use crate::capabilities::{self, CapabilityOptions};
use crate::config::{self, CachePolicy, CasePolicy, Config};
use crate::darwin_abi;
use crate::errno::DarwinErrno;
use crate::fallocate::{self, Plan};
use crate::host::{DirStream, DirentRef, Host, HostDirent, HostId, HostResult, Node};
use crate::inode::{Inode, Inodes, ROOT};
use crate::lock::{self, HostFlock};
use crate::open::{self, DirHandle, IoFd};
use crate::open_flags;
use crate::override_stat::{self, OverrideStat};
use crate::ownership::{self, NewObject};
use crate::rename;
use crate::seek;
use crate::stat::{self, HostStat};
use crate::time;
use crate::xattr;

/// The override xattr's name.
const OVERRIDE: &CStr = c"user.containers.override_stat";
/// The emulated device number's xattr name.
const RDEV: &CStr = c"user.virtiofs.rdev";
/// The longest name the host may store (UTF-8 of 255 UTF-16 units).
const STORED_NAME_MAX: usize = 1024;
/// The most one COPY_FILE_RANGE copies (the guest loops for more).
const COPY_MAX: u64 = 8 << 20;
/// The buffer COPY_FILE_RANGE copies through.
const COPY_BUF: usize = 128 * 1024;

/// Zeros written over the unaligned edges of a punched hole.
static ZEROS: [u8; 16 * 1024] = [0; 16 * 1024];

const _: () = {
    assert!(matches!(
        OVERRIDE.to_bytes(),
        b"user.containers.override_stat"
    ));
    assert!(matches!(RDEV.to_bytes(), b"user.virtiofs.rdev"));
};

/// A guest name for the host: one component, never `.` or `..` (the server already refused
/// `/`, NUL, empty and over-long names).
fn component(name: Name<'_>) -> FsResult<&[u8]> {
    if name.is_dot_or_dotdot() {
        return Err(Errno::EINVAL);
    }
    Ok(name.as_bytes())
}

/// The guest's error for a host error.
fn guest(err: DarwinErrno) -> Errno {
    err.to_linux()
}

/// An open file or directory.
#[derive(Debug)]
struct OpenHandle<S> {
    inode: Arc<Inode>,
    fd: IoFd,
    /// The open access mode (Darwin `O_ACCMODE` bits).
    access: i32,
    /// A directory's stream and position (directories only; boxed, so that a file's handle
    /// stays small).
    dir: Option<Box<Mutex<DirState<S>>>>,
}

/// Where a directory handle is in its host directory: a stream of its own, opened on the first
/// READDIR, and the index of the next entry to return. Its memory is the stream's fixed buffer
/// and at most one name, whatever the directory's size.
#[derive(Debug)]
struct DirState<S> {
    /// Boxed: only [`Config::max_dir_streams`] handles keep one.
    stream: Option<Box<DirHandle<S>>>,
    /// The index (since the last rewind) of the next entry to return; the guest's offset of
    /// an entry is its index + 1, so a READDIR at this offset continues the stream.
    position: u64,
    /// The entry at `position`, already read from the kept stream, that did not fit the last
    /// reply (valid when `has_pending`; its name's buffer is reused; only with a kept stream,
    /// so at most [`Config::max_dir_streams`] of them hold a name).
    pending: HostDirent,
    has_pending: bool,
}

impl<S: DirStream> DirState<S> {
    fn new() -> DirState<S> {
        DirState {
            stream: None,
            position: 0,
            pending: HostDirent {
                ino: 0,
                typ: 0,
                name: Vec::new(),
            },
            has_pending: false,
        }
    }

    /// The bytes this state holds: bounded by a constant (the stream's buffer and the longest
    /// name), never by the directory's size.
    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.pending.name.capacity()
            + self.stream.as_ref().map_or(0, |s| s.stream.footprint())
    }
}

/// The descriptors holding a guest lock owner's POSIX locks on one inode (open file
/// description locks on a description of their own, so owners conflict as processes do).
///
/// Each description remembers the guest handles it was used through, and RELEASE of any of
/// them drops it: a guest OFD lock's owner is the guest's open file, which no FLUSH ever names
/// (FLUSH carries the closing process), so RELEASE is the one message that ends it. A process's
/// POSIX locks are never dropped too early by that: the process had the handle open when it
/// locked through it, and closed it (a FLUSH of its owner, which dropped the description)
/// before the handle's RELEASE.
#[derive(Debug, Default)]
struct LockFds {
    by_owner: HashMap<(NodeId, LockOwner), OwnerFd>,
}

/// One owner's lock description and the handles it was used through (live handles only: a
/// release drops the whole description).
#[derive(Debug)]
struct OwnerFd {
    fd: Arc<IoFd>,
    handles: Vec<Handle>,
}

/// A [`FileSystem`] serving the host directory [`Config::root`] through a [`Host`].
#[derive(Debug)]
pub struct PassthroughFs<H: Host> {
    host: H,
    config: Config,
    inodes: Inodes,
    handles: HandleTable<OpenHandle<H::DirStream>>,
    /// The descriptor budget ([`Config::max_fds`]), shared with the host adapter.
    fds: Arc<Budget>,
    /// The directory streams handles may keep ([`Config::max_dir_streams`]).
    dir_streams: Arc<Budget>,
    locks: Mutex<LockFds>,
    /// The negotiated INIT flags.
    negotiated: AtomicU64,
    /// Per volume (`st_dev`): whether names compare case-insensitively.
    case_insensitive: RwLock<HashMap<i32, bool>>,
    capabilities: Capabilities,
}

impl<H: Host> PassthroughFs<H> {
    /// A backend serving `config.root` through `host`. Fails if the root is not a directory
    /// or its volume cannot be served (no volfs, no user xattrs).
    pub fn new(host: H, config: Config) -> io::Result<PassthroughFs<H>> {
        let io_err = |e: DarwinErrno| io::Error::from_raw_os_error(e.to_linux().raw());
        let root = host.root(&config.root).map_err(io_err)?;
        if !root.is_dir() {
            return Err(io::Error::from_raw_os_error(Errno::ENOTDIR.raw()));
        }
        let root_id = HostId::of(&root);
        let statfs = host.statfs(Node::Id(root_id)).map_err(io_err)?;
        if !statfs.supports_volfs() {
            return Err(io::Error::other(format!(
                "{}: the volume ({}) does not resolve /.vol paths",
                config.root.display(),
                statfs.fstypename()
            )));
        }
        if !statfs.user_xattrs() {
            return Err(io::Error::other(format!(
                "{}: the volume ({}) has no extended attributes for the guest's ownership",
                config.root.display(),
                statfs.fstypename()
            )));
        }
        if matches!(statfs.fstypename(), "msdos" | "exfat") {
            warn!(
                "{}: {} has no native extended attributes; macOS keeps the guest's ownership in \
                 AppleDouble ._ files, which the guest will see",
                config.root.display(),
                statfs.fstypename()
            );
        }
        let options = CapabilityOptions {
            writeback_cache: config.writeback,
            readdirplus: false,
            posix_locks: config.posix_locks,
            flock_locks: config.flock_locks,
            killpriv_v2: false,
            security_ctx: config.security_label && config.xattr,
            time_gran: capabilities::time_gran(statfs.fstypename()),
        };
        let fds = Budget::new(config::fd_budget(&config, host.nofile_limit()));
        host.use_fd_budget(&fds);
        let fs = PassthroughFs {
            capabilities: capabilities::capabilities(&options),
            inodes: Inodes::new(root_id, Budget::new(config.max_inodes)),
            fds,
            dir_streams: Budget::new(config.max_dir_streams),
            handles: HandleTable::new(),
            locks: Mutex::new(LockFds::default()),
            negotiated: AtomicU64::new(0),
            case_insensitive: RwLock::new(HashMap::new()),
            host,
            config,
        };
        if fs.config.case == CasePolicy::Exact && fs.is_case_insensitive(root_id) {
            info!(
                "{}: case-insensitive volume; lookups answer only names spelled as stored",
                fs.config.root.display()
            );
        }
        Ok(fs)
    }

    /// The host adapter.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The bytes of memory the directory handle `fh` holds besides its descriptors (its
    /// stream's buffer and at most one name): bounded by a constant, never by the directory's
    /// size. `None` for an unknown handle or a file.
    pub fn dir_handle_footprint(&self, fh: Handle) -> Option<usize> {
        let handle = self.handles.get(fh).ok()?;
        let state = handle.dir.as_ref()?;
        let state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(state.footprint())
    }

    /// The descriptor budget: (units in use, its size).
    pub fn fd_budget(&self) -> (usize, usize) {
        (self.fds.used(), self.fds.limit())
    }

    /// Lock descriptions currently held (one per inode and POSIX lock owner).
    pub fn lock_fds_in_use(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_owner
            .len()
    }

    fn negotiated(&self) -> InitFlags {
        InitFlags::from_bits_truncate(self.negotiated.load(Ordering::Relaxed))
    }

    fn timeouts(&self) -> (Duration, Duration) {
        match self.config.cache {
            CachePolicy::Never => (Duration::ZERO, Duration::ZERO),
            CachePolicy::Auto | CachePolicy::Always => {
                (self.config.entry_timeout, self.config.attr_timeout)
            }
        }
    }

    // --- Attributes -------------------------------------------------------------------------

    /// The override stored on `node`, if any (an unreadable or malformed one counts as none).
    fn read_override(&self, node: Node<'_>) -> Option<OverrideStat> {
        let mut buf = [0u8; override_stat::MAX_LEN];
        let len = self
            .host
            .getxattr(node, OVERRIDE, &mut buf, xattr::HOST_OPTIONS)
            .ok()?;
        OverrideStat::decode(buf.get(..len)?)
    }

    /// The guest's view of `node`, whose host stat is `st`.
    fn attr(&self, node: Node<'_>, st: &HostStat) -> FileAttr {
        let over = self.read_override(node);
        let guest_mode = override_stat::compose_mode(st.mode(), over.and_then(|o| o.mode));
        let rdev = if override_stat::is_emulated_device(st.mode(), guest_mode) {
            let mut buf = [0u8; 16];
            self.host
                .getxattr(node, RDEV, &mut buf, xattr::HOST_OPTIONS)
                .ok()
                .and_then(|len| buf.get(..len))
                .and_then(override_stat::decode_rdev)
        } else {
            None
        };
        st.to_attr(over.as_ref(), rdev)
    }

    /// `lstat` and the guest's view of `node`.
    fn stat(&self, node: Node<'_>) -> FsResult<(HostStat, FileAttr)> {
        let st = self.host.lstat(node).map_err(guest)?;
        let attr = self.attr(node, &st);
        Ok((st, attr))
    }

    /// Writes `over` on `node`. A host file whose owner may not write it refuses xattr writes
    /// on macOS even to its owner (libkrun #769): the owner's write bit is added for the write
    /// and taken away again.
    fn write_override(&self, node: Node<'_>, over: &OverrideStat) -> FsResult<()> {
        let value = over.encode();
        let options = xattr::HOST_OPTIONS;
        let err = match self
            .host
            .setxattr(node, OVERRIDE, value.as_bytes(), options)
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !matches!(err, DarwinErrno::EACCES | DarwinErrno::EPERM) {
            return Err(guest(err));
        }
        let st = self.host.lstat(node).map_err(guest)?;
        if st.is_symlink() || st.mode & 0o200 != 0 {
            return Err(guest(err));
        }
        let host_mode = st.mode & 0o7777;
        self.host.chmod(node, host_mode | 0o200).map_err(guest)?;
        let result = self
            .host
            .setxattr(node, OVERRIDE, value.as_bytes(), options);
        if let Err(restore) = self.host.chmod(node, host_mode) {
            fuse_server::guest_warn!("restoring host mode {host_mode:o}: {}", guest(restore));
        }
        result.map_err(guest)
    }

    // --- Names ------------------------------------------------------------------------------

    /// Whether names on the volume of `dir` compare case-insensitively (asked once per volume).
    fn is_case_insensitive(&self, dir: HostId) -> bool {
        let known = self
            .case_insensitive
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&dir.dev)
            .copied();
        if let Some(known) = known {
            return known;
        }
        let insensitive = match self.host.case_sensitive(dir) {
            Ok(sensitive) => !sensitive,
            Err(e) => {
                debug!("case sensitivity of volume {}: {}", dir.dev, guest(e));
                false
            }
        };
        self.case_insensitive
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(dir.dev, insensitive);
        insensitive
    }

    /// Under [`CasePolicy::Exact`], `ENOENT` unless `dir` stores the entry `name` resolved to
    /// under exactly that name.
    fn check_case(&self, dir: HostId, name: &[u8]) -> FsResult<()> {
        if self.config.case != CasePolicy::Exact || !self.is_case_insensitive(dir) {
            return Ok(());
        }
        let mut stored = [0u8; STORED_NAME_MAX];
        let len = self
            .host
            .stored_name(dir, name, &mut stored)
            .map_err(guest)?;
        if stored.get(..len) == Some(name) {
            Ok(())
        } else {
            Err(Errno::ENOENT)
        }
    }

    /// The entry for `name` in `parent`, counting one more guest reference.
    fn lookup_child(&self, parent: &Inode, name: &[u8]) -> FsResult<Entry> {
        let dir = parent.dir()?;
        let child = Node::Child(dir, name);
        let releases = self.inodes.releases();
        let st = self.host.lstat(child).map_err(guest)?;
        if let Err(e) = self.check_case(dir, name) {
            self.release_unheld(HostId::of(&st));
            return Err(e);
        }
        let mut attr = self.attr(child, &st);
        if st.is_dir()
            && st.dev != parent.id.dev
            && self.negotiated().contains(InitFlags::SUBMOUNTS)
        {
            attr.flags |= AttrFlags::SUBMOUNT;
        }
        let (nodeid, new) = match self.inodes.insert_or_ref(HostId::of(&st), st.file_type()) {
            Ok(inserted) => inserted,
            Err(e) => {
                self.release_unheld(HostId::of(&st));
                return Err(e);
            }
        };
        if new && self.inodes.releases() != releases {
            // A FORGET on another worker may have made the host forget this identity after
            // the lstat above: resolve the name again so that it knows it.
            if let Err(e) = self.host.lstat(child) {
                self.forget(&Context::default(), nodeid, 1);
                return Err(guest(e));
            }
        }
        let (entry_timeout, attr_timeout) = self.timeouts();
        Ok(Entry {
            nodeid,
            generation: 0,
            attr,
            attr_timeout,
            entry_timeout,
        })
    }

    /// What creating `name` in `parent` starts from: the parent, its identity, the checked
    /// name, and the override the new object gets (from the request and the parent's guest
    /// view: set-gid directories pass their group on).
    fn prepare_new<'n>(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'n>,
        kind: NewObject,
        request_mode: u32,
    ) -> FsResult<(Arc<Inode>, HostId, &'n [u8], OverrideStat)> {
        let name = component(name)?;
        let parent = self.inodes.get(parent)?;
        let dir = parent.dir()?;
        let (_, parent_attr) = self.stat(Node::Id(dir))?;
        let over = ownership::for_new(
            kind,
            request_mode,
            cctx.umask,
            (ctx.uid, ctx.gid),
            &parent_attr,
        )?;
        Ok((parent, dir, name, over))
    }

    /// Creates `name` in `dir` as an empty host regular file (`0600`): what every emulated
    /// node (device, FIFO, socket, whiteout) is on the host.
    fn create_host_file(&self, dir: HostId, name: &[u8]) -> FsResult<()> {
        let create = darwin_abi::O_CREAT | darwin_abi::O_EXCL | darwin_abi::O_WRONLY;
        self.open_io(Node::Child(dir, name), create, ownership::HOST_FILE_MODE)
            .map(drop)
    }

    /// The one open path ([`open::open_io`]): a regular file or directory, never blocking,
    /// counted against the descriptor budget.
    fn open_io(&self, node: Node<'_>, flags: i32, mode: u16) -> FsResult<IoFd> {
        open::open_io(&self.host, &self.fds, node, flags, mode)
    }

    /// Stamps the new object `name` in `dir` with its override (and device number); on failure
    /// removes it again, so that no object exists without the ownership the guest asked for.
    /// The guest's security label (SECURITY_CTX) is stored too ([`Self::apply_security_ctx`]).
    fn stamp_new(
        &self,
        cctx: &CreateContext<'_>,
        dir: HostId,
        name: &[u8],
        over: &OverrideStat,
        rdev: Option<u32>,
    ) -> FsResult<()> {
        let node = Node::Child(dir, name);
        let result = self
            .write_override(node, over)
            .and_then(|()| match rdev {
                Some(rdev) => {
                    let value = override_stat::encode_rdev(rdev);
                    self.host
                        .setxattr(node, RDEV, value.as_bytes(), xattr::HOST_OPTIONS)
                        .map_err(guest)
                }
                None => Ok(()),
            })
            .and_then(|()| self.apply_security_ctx(cctx, node));
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Ok(st) = self.host.lstat(node) {
                    self.release_unheld(HostId::of(&st));
                }
                let undo = match over.mode.map(|m| m & mode::S_IFMT) {
                    Some(mode::S_IFDIR) => self.host.rmdir(dir, name),
                    _ => self.host.unlink(dir, name),
                };
                if let Err(undo) = undo {
                    fuse_server::guest_warn!("removing a half-created object: {}", guest(undo));
                }
                Err(e)
            }
        }
    }

    /// Stores the LSM label a guest kernel sent with a creation (SECURITY_CTX) on the new
    /// object `node`, as the extended attribute it names, through the same name handling as
    /// SETXATTR: only with [`Config::security_label`] and [`Config::xattr`], once SECURITY_CTX
    /// is negotiated, and only for a `security.*` name that SETXATTR would accept (then
    /// translated to the host's name like any guest attribute).
    ///
    /// A label outside that policy (another namespace, the server's own names, xattrs off), or
    /// one the volume cannot store (`ENOTSUP`), is ignored and the creation succeeds
    /// unlabelled: that is what the guest's LSM meets on a filesystem without security
    /// xattrs, where it falls back to the mount's context; a kernel never sends a name
    /// outside `security.`, so only a hostile guest loses anything. A host failure to store an
    /// acceptable label (`ENOSPC`, `EIO`...) fails the creation, which is then undone, as
    /// virtiofsd does: the guest's policy chose that label, and an object silently left
    /// without it would be mislabelled.
    fn apply_security_ctx(&self, cctx: &CreateContext<'_>, node: Node<'_>) -> FsResult<()> {
        let Some(sc) = cctx.security_ctx else {
            return Ok(());
        };
        if !self.config.security_label
            || !self.config.xattr
            || !self.negotiated().contains(InitFlags::SECURITY_CTX)
        {
            return Ok(());
        }
        let raw = sc.name.strip_suffix(b"\0").unwrap_or(sc.name);
        let acceptable = raw.starts_with(b"security.")
            && xattr::check_guest_name(raw).is_ok()
            && sc.value.len() <= fuse_abi::limits::XATTR_SIZE_MAX;
        if !acceptable {
            fuse_server::guest_warn!(
                "security context {:?} ignored: not a security.* attribute the guest may set",
                String::from_utf8_lossy(raw)
            );
            return Ok(());
        }
        let name = CString::new(raw).map_err(|_| Errno::EINVAL)?;
        match self
            .host
            .setxattr(node, &name, sc.value, xattr::HOST_OPTIONS)
        {
            Ok(()) | Err(DarwinErrno::ENOTSUP) => Ok(()),
            Err(e) => Err(guest(e)),
        }
    }

    /// Tells the host it may forget `id`, which the backend looked at but the guest does not
    /// hold (the Linux adapter keeps a descriptor per identity it resolved).
    fn release_unheld(&self, id: HostId) {
        self.inodes.release_unheld(id, |id| self.host.forget(id));
    }

    /// Before `name` in `dir` loses its name (unlink, rmdir, rename over it): if the guest
    /// holds its inode and this is its last name, a descriptor to keep reaching it.
    fn prepare_stash(&self, dir: HostId, name: &[u8]) -> Option<(Arc<Inode>, IoFd)> {
        let st = self.host.lstat(Node::Child(dir, name)).ok()?;
        let Some(inode) = self.inodes.find(HostId::of(&st)) else {
            self.release_unheld(HostId::of(&st));
            return None;
        };
        if !st.is_dir() && st.nlink > 1 {
            return None;
        }
        if !inode.stashable() || inode.stashed().is_some() {
            return None;
        }
        let child = Node::Child(dir, name);
        let fd = if inode.is_dir() {
            self.open_io(child, darwin_abi::O_RDONLY | darwin_abi::O_DIRECTORY, 0)
        } else {
            self.open_io(child, darwin_abi::O_RDWR, 0)
                .or_else(|_| self.open_io(child, darwin_abi::O_RDONLY, 0))
        }
        .ok()?;
        // The name may have changed between the two calls.
        let opened = self.host.lstat(Node::Fd(fd.as_fd())).ok()?;
        (HostId::of(&opened) == inode.id).then_some((inode, fd))
    }

    /// Opens `inode` with Darwin `flags`: through its stashed descriptor once it has no name
    /// (a duplicate: same access mode as the stash), else by identity. Only regular files and
    /// directories are ever opened on the host ([`open::open_io`]).
    fn open_inode(&self, inode: &Inode, flags: i32) -> FsResult<IoFd> {
        match inode.typ {
            mode::S_IFREG | mode::S_IFDIR => {}
            mode::S_IFLNK => return Err(Errno::ELOOP),
            _ => return Err(Errno::ENXIO),
        }
        if inode.typ == mode::S_IFREG {
            self.refuse_emulated_special(Node::Id(inode.id))?;
        }
        match inode.stashed() {
            Some(stash) => {
                let fd = stash.try_clone(&self.host, &self.fds)?;
                if flags & darwin_abi::O_TRUNC != 0 {
                    self.host.truncate(fd.as_fd(), 0).map_err(guest)?;
                }
                Ok(fd)
            }
            None => self.open_io(Node::Id(inode.id), flags, 0),
        }
    }

    /// ENXIO when the host regular file `node` stands for a device, FIFO or socket in the
    /// guest's view (its override carries that type): the guest sees a special file, and
    /// opening one through the daemon is refused whatever the host object is, as OPEN of a real
    /// one is ([`open::open_io`]).
    fn refuse_emulated_special(&self, node: Node<'_>) -> FsResult<()> {
        let over = self.read_override(node).and_then(|o| o.mode);
        match override_stat::compose_mode(mode::S_IFREG, over) & mode::S_IFMT {
            mode::S_IFREG => Ok(()),
            _ => Err(Errno::ENXIO),
        }
    }

    /// The host flags for a guest OPEN/CREATE: translated for the guest's architecture; with
    /// the writeback cache the guest may read a write-only file (partial pages) and tracks the
    /// end of file itself, so write-only becomes read-write and `O_APPEND` goes.
    fn host_open_flags(&self, guest_flags: u32) -> FsResult<(i32, bool)> {
        let host = open_flags::to_darwin(guest_flags, self.config.guest_arch)?;
        let mut flags = host.flags & !(darwin_abi::O_CREAT | darwin_abi::O_EXCL);
        if self.negotiated().contains(InitFlags::WRITEBACK_CACHE) {
            if flags & darwin_abi::O_ACCMODE == darwin_abi::O_WRONLY {
                flags = (flags & !darwin_abi::O_ACCMODE) | darwin_abi::O_RDWR;
            }
            flags &= !darwin_abi::O_APPEND;
        }
        Ok((flags, host.nocache))
    }

    fn open_reply(&self, fh: Handle, dir: bool) -> OpenReply {
        let flags = match (self.config.cache, dir) {
            (CachePolicy::Never, false) => OpenOutFlags::DIRECT_IO,
            (CachePolicy::Always, false) => OpenOutFlags::KEEP_CACHE,
            (CachePolicy::Always, true) => OpenOutFlags::CACHE_DIR,
            _ => OpenOutFlags::empty(),
        };
        OpenReply { fh, flags }
    }

    /// The node for GETATTR/SETATTR: the open file if the guest named one, else the inode.
    fn attr_node<'a>(
        &self,
        inode: &'a Inode,
        handle: Option<&'a OpenHandle<H::DirStream>>,
    ) -> Node<'a> {
        match handle {
            Some(h) => Node::Fd(h.fd.as_fd()),
            None => inode.node(),
        }
    }

    fn attr_reply(&self, node: Node<'_>) -> FsResult<AttrReply> {
        let (_, attr) = self.stat(node)?;
        Ok(AttrReply {
            attr,
            timeout: self.timeouts().1,
        })
    }

    // --- Locks ------------------------------------------------------------------------------

    /// The descriptor holding `owner`'s POSIX locks on the inode of `handle`.
    /// The description remembers that it was used through `fh`.
    fn lock_fd(
        &self,
        nodeid: NodeId,
        fh: Handle,
        handle: &OpenHandle<H::DirStream>,
        owner: LockOwner,
    ) -> FsResult<Arc<IoFd>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(o) = locks.by_owner.get_mut(&(nodeid, owner)) {
            if !o.handles.contains(&fh) {
                o.handles.push(fh);
            }
            return Ok(Arc::clone(&o.fd));
        }
        // A description of its own, with the handle's access mode (a write lock needs write
        // access).
        let fd = Arc::new(self.open_inode(&handle.inode, handle.access)?);
        locks.by_owner.insert(
            (nodeid, owner),
            OwnerFd {
                fd: Arc::clone(&fd),
                handles: vec![fh],
            },
        );
        Ok(fd)
    }

    /// RELEASE or RELEASEDIR of `fh`: the lock descriptions used through it go (see
    /// [`LockFds`]).
    fn drop_lock_fds_of(&self, fh: Handle) {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_owner
            .retain(|_, o| !o.handles.contains(&fh));
    }

    /// One attempt of a sleeping request (SETLKW): a conflict is EAGAIN, which the server
    /// turns into a pending request that the transport asks again later (the worker never
    /// blocks in the host kernel).
    fn try_sleeping(attempt: HostResult<()>) -> FsResult<()> {
        match attempt {
            Ok(()) => Ok(()),
            Err(DarwinErrno::EAGAIN | DarwinErrno::EACCES) => Err(Errno::EAGAIN),
            Err(e) => Err(guest(e)),
        }
    }

    // --- Data helpers -----------------------------------------------------------------------

    fn fallocate_fd(&self, fd: BorrowedFd<'_>, plan: Plan) -> FsResult<()> {
        let st = self.host.lstat(Node::Fd(fd)).map_err(guest)?;
        let size = u64::try_from(st.size).unwrap_or(0);
        match plan {
            Plan::Allocate { end, keep_size } => {
                let allocated = u64::try_from(st.blocks).unwrap_or(0).saturating_mul(512);
                if let Some(store) = fallocate::preallocation(allocated, end, true) {
                    if self.host.preallocate(fd, &store).is_err() {
                        if let Some(store) = fallocate::preallocation(allocated, end, false) {
                            self.host.preallocate(fd, &store).map_err(guest)?;
                        }
                    }
                }
                if !keep_size && size < end {
                    self.host.truncate(fd, end).map_err(guest)?;
                }
                Ok(())
            }
            Plan::PunchHole { offset, len } => {
                let block = u64::try_from(st.blksize).unwrap_or(0);
                let ranges = fallocate::punch_ranges(offset, len, size, block);
                if !ranges.middle.is_empty() {
                    self.host
                        .punch_hole(
                            fd,
                            ranges.middle.start,
                            ranges.middle.end - ranges.middle.start,
                        )
                        .map_err(guest)?;
                }
                for range in [ranges.head, ranges.tail] {
                    let mut at = range.start;
                    while at < range.end {
                        let n = usize::try_from(range.end - at)
                            .unwrap_or(ZEROS.len())
                            .min(ZEROS.len());
                        let written = self
                            .host
                            .pwrite(fd, ZEROS.get(..n).unwrap_or(&ZEROS), at)
                            .map_err(guest)?;
                        if written == 0 {
                            return Err(Errno::EIO);
                        }
                        at += written as u64;
                    }
                }
                Ok(())
            }
        }
    }
}

impl<H: Host> FileSystem for PassthroughFs<H> {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn init(&self, negotiated: &Negotiated) -> FsResult<()> {
        self.negotiated
            .store(negotiated.flags.bits(), Ordering::Relaxed);
        // A new session (the guest rebooted): nothing of the old one is valid.
        self.destroy();
        info!(
            "macOS backend: negotiated {:?} (minor {})",
            negotiated.flags, negotiated.minor
        );
        Ok(())
    }

    fn destroy(&self) {
        self.handles.clear();
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_owner
            .clear();
        self.inodes.reset(|id| self.host.forget(id));
    }

    fn lookup(&self, _ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<Entry> {
        let name = component(name)?;
        let parent = self.inodes.get(parent)?;
        self.lookup_child(&parent, name)
    }

    fn forget(&self, _ctx: &Context, nodeid: NodeId, nlookup: u64) {
        self.inodes
            .forget(nodeid, nlookup, |id| self.host.forget(id));
    }

    fn getattr(&self, _ctx: &Context, nodeid: NodeId, fh: Option<Handle>) -> FsResult<AttrReply> {
        let inode = self.inodes.get(nodeid)?;
        let handle = fh.and_then(|fh| self.handles.get(fh).ok());
        self.attr_reply(self.attr_node(&inode, handle.as_deref()))
    }

    fn setattr(&self, _ctx: &Context, nodeid: NodeId, set: &SetAttr) -> FsResult<AttrReply> {
        let inode = self.inodes.get(nodeid)?;
        let handle = set.fh.and_then(|fh| self.handles.get(fh).ok());
        let node = self.attr_node(&inode, handle.as_deref());
        let (_, mut view) = self.stat(node)?;

        // Ownership and mode: the override only, never the host object.
        let mut over = None;
        if set.uid.is_some() || set.gid.is_some() {
            let changed = ownership::chown(&view, set.uid, set.gid);
            (view.uid, view.gid) = (
                changed.uid.unwrap_or(view.uid),
                changed.gid.unwrap_or(view.gid),
            );
            view.mode = changed.mode.unwrap_or(view.mode);
            over = Some(changed);
        }
        if let Some(new_mode) = set.mode {
            over = Some(ownership::chmod(&view, new_mode));
        }
        if let Some(over) = over {
            self.write_override(node, &over)?;
        }

        if let Some(size) = set.size {
            match &handle {
                Some(h) => self.host.truncate(h.fd.as_fd(), size).map_err(guest)?,
                None => {
                    if inode.is_dir() {
                        return Err(Errno::EISDIR);
                    }
                    let fd = self.open_inode(&inode, darwin_abi::O_WRONLY)?;
                    self.host.truncate(fd.as_fd(), size).map_err(guest)?;
                }
            }
        }

        if let Some(times) = time::utimens(set.atime, set.mtime)? {
            self.host.utimens(node, &times).map_err(guest)?;
        }
        self.attr_reply(node)
    }

    fn readlink(&self, _ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<usize> {
        let inode = self.inodes.get(nodeid)?;
        if inode.typ != mode::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        self.host.readlink(inode.node(), buf).map_err(guest)
    }

    fn symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        let (parent, dir, name, over) =
            self.prepare_new(ctx, cctx, parent, name, NewObject::Symlink, 0o777)?;
        self.host.symlink(target, dir, name).map_err(guest)?;
        self.stamp_new(cctx, dir, name, &over, None)?;
        self.lookup_child(&parent, name)
    }

    fn mknod(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        request_mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        let (parent, dir, name, over) =
            self.prepare_new(ctx, cctx, parent, name, NewObject::Node, request_mode)?;
        let is_device = matches!(request_mode & mode::S_IFMT, mode::S_IFCHR | mode::S_IFBLK);
        // Any node is a host regular file; its guest type lives in the override.
        self.create_host_file(dir, name)?;
        self.stamp_new(cctx, dir, name, &over, is_device.then_some(rdev))?;
        self.lookup_child(&parent, name)
    }

    fn mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        request_mode: u32,
    ) -> FsResult<Entry> {
        let (parent, dir, name, over) =
            self.prepare_new(ctx, cctx, parent, name, NewObject::Directory, request_mode)?;
        self.host
            .mkdir(dir, name, ownership::HOST_DIR_MODE)
            .map_err(guest)?;
        self.stamp_new(cctx, dir, name, &over, None)?;
        self.lookup_child(&parent, name)
    }

    fn unlink(&self, _ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        let name = component(name)?;
        let dir = self.inodes.get(parent)?.dir()?;
        let stash = self.prepare_stash(dir, name);
        self.host.unlink(dir, name).map_err(guest)?;
        if let Some((inode, fd)) = stash {
            inode.set_stash(fd);
        }
        Ok(())
    }

    fn rmdir(&self, _ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        let name = component(name)?;
        let dir = self.inodes.get(parent)?.dir()?;
        let stash = self.prepare_stash(dir, name);
        self.host.rmdir(dir, name).map_err(guest)?;
        if let Some((inode, fd)) = stash {
            inode.set_stash(fd);
        }
        Ok(())
    }

    fn rename(
        &self,
        ctx: &Context,
        olddir: NodeId,
        oldname: Name<'_>,
        newdir: NodeId,
        newname: Name<'_>,
        flags: RenameFlags,
    ) -> FsResult<()> {
        let (oldname, newname) = (component(oldname)?, component(newname)?);
        let plan = rename::to_darwin(flags)?;
        let old = self.inodes.get(olddir)?.dir()?;
        let new = self.inodes.get(newdir)?.dir()?;
        let stash = if plan.flags & darwin_abi::RENAME_SWAP == 0 {
            self.prepare_stash(new, newname)
        } else {
            None
        };
        self.host
            .rename(old, oldname, new, newname, plan.flags)
            .map_err(guest)?;
        if let Some((inode, fd)) = stash {
            inode.set_stash(fd);
        }
        if plan.whiteout {
            // The old name becomes a whiteout: a character device 0:0 for the guest.
            self.create_host_file(old, oldname)?;
            let over = OverrideStat::new(ctx.uid, ctx.gid, rename::WHITEOUT_MODE);
            self.stamp_new(&CreateContext::default(), old, oldname, &over, None)?;
        }
        Ok(())
    }

    fn link(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        newparent: NodeId,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        let newname = component(newname)?;
        let inode = self.inodes.get(nodeid)?;
        if inode.is_dir() {
            return Err(Errno::EPERM);
        }
        let source = inode.named()?;
        let parent = self.inodes.get(newparent)?;
        let dir = parent.dir()?;
        self.host.link(source, dir, newname).map_err(guest)?;
        self.lookup_child(&parent, newname)
    }

    fn open(&self, _ctx: &Context, nodeid: NodeId, args: &OpenArgs) -> FsResult<OpenReply> {
        let flags = args.flags;
        let inode = self.inodes.get(nodeid)?;
        let (host_flags, nocache) = self.host_open_flags(flags)?;
        let fd = self.open_inode(&inode, host_flags)?;
        if nocache {
            self.host.set_nocache(fd.as_fd()).map_err(guest)?;
        }
        let dir = inode.is_dir();
        let fh = self.handles.insert(OpenHandle {
            inode,
            fd,
            access: host_flags & darwin_abi::O_ACCMODE,
            dir: None,
        });
        Ok(self.open_reply(fh, dir))
    }

    fn create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &CreateArgs<'_>,
    ) -> FsResult<(Entry, OpenReply)> {
        let CreateArgs {
            name,
            mode: request_mode,
            open: OpenArgs { flags, .. },
            ..
        } = *args;
        let (parent, dir, name, over) =
            self.prepare_new(ctx, cctx, parent, name, NewObject::File, request_mode)?;
        let (host_flags, nocache) = self.host_open_flags(flags)?;
        let child = Node::Child(dir, name);
        let exclusive = darwin_abi::O_CREAT | darwin_abi::O_EXCL;
        let fd = match self.open_io(child, host_flags | exclusive, ownership::HOST_FILE_MODE) {
            Ok(fd) => {
                self.stamp_new(cctx, dir, name, &over, None)?;
                fd
            }
            // It exists (the guest's dentry was stale, or someone created it meanwhile): open
            // it through the same checks as OPEN, unless the guest asked for O_EXCL. A device
            // node, FIFO or socket a host user left there is refused, never opened.
            Err(Errno::EEXIST) if flags & open_flags::linux::O_EXCL == 0 => {
                let fd = self.open_io(child, host_flags, 0).inspect_err(|_| {
                    // What was looked at and refused (a FIFO...) is not the guest's to hold.
                    if let Ok(st) = self.host.lstat(child) {
                        self.release_unheld(HostId::of(&st));
                    }
                })?;
                if fd.is_dir() {
                    // open(2) with O_CREAT of a directory.
                    return Err(Errno::EISDIR);
                }
                self.refuse_emulated_special(child).inspect_err(|_| {
                    if let Ok(st) = self.host.lstat(child) {
                        self.release_unheld(HostId::of(&st));
                    }
                })?;
                fd
            }
            Err(e) => return Err(e),
        };
        if nocache {
            self.host.set_nocache(fd.as_fd()).map_err(guest)?;
        }
        let entry = self.lookup_child(&parent, name)?;
        let inode = self.inodes.get(entry.nodeid)?;
        let fh = self.handles.insert(OpenHandle {
            inode,
            fd,
            access: host_flags & darwin_abi::O_ACCMODE,
            dir: None,
        });
        Ok((entry, self.open_reply(fh, false)))
    }

    fn read(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        args: &ReadArgs,
        w: &mut dyn ZeroCopyWriter,
    ) -> FsResult<usize> {
        let ReadArgs {
            fh, offset, size, ..
        } = *args;
        let handle = self.handles.get(fh)?;
        w.write_from(handle.fd.as_fd(), size as usize, offset)
            .map_err(|e| guest(self.host.io_errno(&e)))
    }

    fn write(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        args: &WriteArgs,
        r: &mut dyn ZeroCopyReader,
    ) -> FsResult<usize> {
        let WriteArgs {
            fh, offset, size, ..
        } = *args;
        let handle = self.handles.get(fh)?;
        r.read_to(handle.fd.as_fd(), size as usize, offset)
            .map_err(|e| guest(self.host.io_errno(&e)))
    }

    fn flush(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        lock_owner: LockOwner,
    ) -> FsResult<()> {
        self.handles.get(fh)?;
        // A close(2) in the guest: the owner's POSIX locks on the file go.
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_owner
            .remove(&(nodeid, lock_owner));
        Ok(())
    }

    fn release(&self, _ctx: &Context, nodeid: NodeId, args: &ReleaseArgs) -> FsResult<()> {
        let ReleaseArgs {
            fh,
            flock_release,
            lock_owner,
            ..
        } = *args;
        let handle = self.handles.remove(fh)?;
        if flock_release {
            // Unlocking cannot block; a failure leaves nothing to undo.
            let _ = self.host.flock(handle.fd.as_fd(), darwin_abi::LOCK_UN);
        }
        if let Some(owner) = lock_owner {
            self.locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .by_owner
                .remove(&(nodeid, owner));
        }
        self.drop_lock_fds_of(fh);
        Ok(())
    }

    fn fsync(&self, _ctx: &Context, _nodeid: NodeId, fh: Handle, _datasync: bool) -> FsResult<()> {
        let handle = self.handles.get(fh)?;
        self.host
            .fsync(handle.fd.as_fd(), self.config.sync)
            .map_err(guest)
    }

    fn opendir(&self, _ctx: &Context, nodeid: NodeId, _flags: u32) -> FsResult<OpenReply> {
        let inode = self.inodes.get(nodeid)?;
        if !inode.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let fd = self.open_inode(&inode, darwin_abi::O_RDONLY | darwin_abi::O_DIRECTORY)?;
        let fh = self.handles.insert(OpenHandle {
            inode,
            fd,
            access: darwin_abi::O_RDONLY,
            dir: Some(Box::new(Mutex::new(DirState::new()))),
        });
        Ok(self.open_reply(fh, true))
    }

    fn readdir(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        let handle = self.handles.get(fh)?;
        let state = handle.dir.as_ref().ok_or(Errno::ENOTDIR)?;
        let mut state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let DirState {
            stream,
            position,
            pending,
            has_pending,
        } = &mut *state;
        // A stream the handle keeps, or, once Config::max_dir_streams are kept, one for this
        // READDIR only (read from the start to the offset: slower, but no memory held).
        let mut transient = None;
        let mut is_transient = false;
        let stream = match stream {
            Some(stream) => stream,
            None => match self.dir_streams.acquire() {
                Ok(kept) => stream.insert(Box::new(open::dir_stream(
                    &self.host,
                    &self.fds,
                    Some(kept),
                    &handle.fd,
                )?)),
                Err(_) => {
                    (*position, *has_pending) = (0, false);
                    is_transient = true;
                    transient.insert(Box::new(open::dir_stream(
                        &self.host, &self.fds, None, &handle.fd,
                    )?))
                }
            },
        };
        let stream = &mut stream.stream;
        // Offsets are an entry's index since the stream's last rewind, plus one. A READDIR at
        // the handle's position continues the stream; offset 0 starts it afresh (a rewinddir
        // in the guest), any other offset rewinds and skips to it.
        if offset == 0 || offset != *position {
            stream.rewind().map_err(guest)?;
            (*position, *has_pending) = (0, false);
            while *position < offset {
                match stream.next_entry().map_err(guest)? {
                    Some(_) => *position += 1,
                    None => return Ok(()),
                }
            }
        }
        // A removed directory has no entries and no name to read overrides through.
        let dir = handle.inode.dir().ok();
        let mut emit = |entry: DirentRef<'_>, offset: u64| {
            // An emulated node is a host regular file: its guest type is in the override.
            let guest_mode = match (entry.typ, dir) {
                (darwin_abi::DT_REG, Some(dir)) => self
                    .read_override(Node::Child(dir, entry.name))
                    .and_then(|o| o.mode)
                    .filter(|m| m & mode::S_IFMT != 0),
                _ => None,
            };
            sink.add(DirEntry {
                ino: entry.ino,
                offset,
                typ: stat::dirent_type(entry.typ, guest_mode),
                name: entry.name,
            })
        };
        let mut added = 0usize;
        loop {
            let next = *position + 1;
            if *has_pending {
                let entry = DirentRef {
                    ino: pending.ino,
                    typ: pending.typ,
                    name: &pending.name,
                };
                if !emit(entry, next) {
                    break;
                }
                *has_pending = false;
            } else {
                let entry = match stream.next_entry() {
                    Ok(Some(entry)) => entry,
                    Ok(None) => break,
                    // What was added stands; the error comes again with the next READDIR.
                    Err(_) if added > 0 => break,
                    Err(e) => return Err(guest(e)),
                };
                if !emit(entry, next) {
                    if is_transient {
                        break;
                    }
                    // Kept for the next READDIR, which continues at this entry.
                    pending.ino = entry.ino;
                    pending.typ = entry.typ;
                    pending.name.clear();
                    pending.name.extend_from_slice(entry.name);
                    *has_pending = true;
                    break;
                }
            }
            *position = next;
            added += 1;
        }
        if is_transient {
            // The stream goes: the next READDIR starts from the directory's start.
            (*position, *has_pending) = (0, false);
        }
        Ok(())
    }

    fn releasedir(&self, _ctx: &Context, _nodeid: NodeId, fh: Handle, _flags: u32) -> FsResult<()> {
        self.handles.remove(fh)?;
        self.drop_lock_fds_of(fh);
        Ok(())
    }

    fn fsyncdir(&self, ctx: &Context, nodeid: NodeId, fh: Handle, datasync: bool) -> FsResult<()> {
        self.fsync(ctx, nodeid, fh, datasync)
    }

    fn statfs(&self, _ctx: &Context, nodeid: NodeId) -> FsResult<StatFs> {
        let inode = self.inodes.get(nodeid)?;
        let node = inode.node();
        let st = self.host.statfs(node).map_err(guest)?;
        Ok(st.to_statfs(self.host.name_max(node).ok()))
    }

    fn setxattr(&self, _ctx: &Context, nodeid: NodeId, args: &SetxattrArgs<'_>) -> FsResult<()> {
        let SetxattrArgs {
            name, value, flags, ..
        } = *args;
        if !self.config.xattr {
            return Err(Errno::ENOSYS);
        }
        xattr::check_guest_name(name.to_bytes())?;
        if value.len() > fuse_abi::limits::XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        let options = xattr::set_options(flags)?;
        let inode = self.inodes.get(nodeid)?;
        self.host
            .setxattr(inode.node(), name, value, options)
            .map_err(guest)
    }

    fn getxattr(
        &self,
        _ctx: &Context,
        nodeid: NodeId,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        if !self.config.xattr {
            return Err(Errno::ENOSYS);
        }
        xattr::check_guest_name(name.to_bytes())?;
        let inode = self.inodes.get(nodeid)?;
        let node = inode.node();
        let len = self
            .host
            .getxattr(node, name, buf, xattr::HOST_OPTIONS)
            .map_err(guest)?;
        if len > fuse_abi::limits::XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        if buf.is_empty() {
            let len = u32::try_from(len).map_err(|_| Errno::E2BIG)?;
            return Ok(XattrReply::Size(len));
        }
        Ok(XattrReply::Data(len))
    }

    fn listxattr(&self, _ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<XattrReply> {
        if !self.config.xattr {
            return Err(Errno::ENOSYS);
        }
        let inode = self.inodes.get(nodeid)?;
        let node = inode.node();
        let mut list = xattr::read_list(|b| self.host.listxattr(node, b, xattr::HOST_OPTIONS))
            .map_err(guest)?;
        let len = xattr::filter_list(&mut list);
        xattr::reply(
            list.get(..len).unwrap_or_default(),
            buf,
            fuse_abi::limits::XATTR_LIST_MAX,
        )
    }

    fn removexattr(&self, _ctx: &Context, nodeid: NodeId, name: &CStr) -> FsResult<()> {
        if !self.config.xattr {
            return Err(Errno::ENOSYS);
        }
        xattr::check_guest_name(name.to_bytes())?;
        let inode = self.inodes.get(nodeid)?;
        self.host
            .removexattr(inode.node(), name, xattr::HOST_OPTIONS)
            .map_err(guest)
    }

    fn access(&self, ctx: &Context, nodeid: NodeId, mask: u32) -> FsResult<()> {
        let inode = self.inodes.get(nodeid)?;
        let (_, attr) = self.stat(inode.node())?;
        access::check(&attr, ctx.uid, ctx.gid, mask)
    }

    fn getlk(&self, _ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<Lock> {
        let LockArgs {
            fh, owner, lock, ..
        } = *args;
        if !self.config.posix_locks {
            return Err(Errno::ENOSYS);
        }
        let handle = self.handles.get(fh)?;
        let fd = self.lock_fd(nodeid, fh, &handle, owner)?;
        let mut host = HostFlock::from_fuse(&lock)?;
        self.host
            .lock(fd.as_fd(), lock::command(true, false, true), &mut host)
            .map_err(guest)?;
        host.to_fuse()
    }

    fn setlk(&self, _ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<()> {
        let LockArgs {
            fh,
            owner,
            lock,
            sleep,
            flock,
            ..
        } = *args;
        let handle = self.handles.get(fh)?;
        if flock {
            if !self.config.flock_locks {
                return Err(Errno::ENOSYS);
            }
            let operation = lock::flock_operation(lock.typ, false)?;
            let fd = handle.fd.as_fd();
            if !sleep {
                return self.host.flock(fd, operation).map_err(guest);
            }
            return Self::try_sleeping(self.host.flock(fd, operation));
        }
        if !self.config.posix_locks {
            return Err(Errno::ENOSYS);
        }
        let fd = self.lock_fd(nodeid, fh, &handle, owner)?;
        let host = HostFlock::from_fuse(&lock)?;
        let cmd = lock::command(false, false, true);
        let attempt = || {
            let mut host = host;
            self.host.lock(fd.as_fd(), cmd, &mut host)
        };
        if sleep {
            Self::try_sleeping(attempt())
        } else {
            attempt().map_err(guest)
        }
    }

    fn fallocate(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        fallocate_mode: u32,
        offset: u64,
        length: u64,
    ) -> FsResult<()> {
        let plan = fallocate::plan(fallocate_mode, offset, length)?;
        let handle = self.handles.get(fh)?;
        self.fallocate_fd(handle.fd.as_fd(), plan)
    }

    fn lseek(
        &self,
        _ctx: &Context,
        _nodeid: NodeId,
        fh: Handle,
        offset: u64,
        whence: u32,
    ) -> FsResult<u64> {
        let whence = seek::to_darwin(whence)?;
        let offset = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let handle = self.handles.get(fh)?;
        self.host
            .lseek(handle.fd.as_fd(), offset, whence)
            .map_err(guest)
    }

    fn copy_file_range(&self, _ctx: &Context, args: &CopyFileRangeArgs) -> FsResult<u64> {
        let CopyFileRangeArgs {
            fh_in,
            off_in,
            fh_out,
            off_out,
            len,
            flags,
            ..
        } = *args;
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let input = self.handles.get(fh_in)?;
        let output = self.handles.get(fh_out)?;
        if output.access == darwin_abi::O_RDONLY || input.access == darwin_abi::O_WRONLY {
            return Err(Errno::EBADF);
        }
        let len = len.min(COPY_MAX);
        let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(len).unwrap_or(COPY_BUF))];
        let mut copied = 0u64;
        while copied < len {
            let want = usize::try_from(len - copied)
                .unwrap_or(buf.len())
                .min(buf.len());
            let chunk = buf.get_mut(..want).ok_or(Errno::EIO)?;
            let read = match self
                .host
                .pread(input.fd.as_fd(), chunk, off_in.saturating_add(copied))
            {
                Ok(n) => n,
                Err(e) if copied == 0 => return Err(guest(e)),
                Err(_) => break,
            };
            if read == 0 {
                break;
            }
            let mut done = 0;
            while done < read {
                let data = chunk.get(done..read).ok_or(Errno::EIO)?;
                match self.host.pwrite(
                    output.fd.as_fd(),
                    data,
                    off_out.saturating_add(copied + done as u64),
                ) {
                    Ok(0) => return Err(Errno::EIO),
                    Ok(n) => done += n,
                    Err(e) if copied == 0 && done == 0 => return Err(guest(e)),
                    Err(_) => return Ok(copied + done as u64),
                }
            }
            copied += read as u64;
        }
        Ok(copied)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::host::LinuxHost;

    /// What a guest-held descriptor costs in memory besides the kernel's file: a file's
    /// handle, a directory's state, an inode (the figures the crate documentation gives).
    #[test]
    fn per_object_memory_is_small() {
        type S = <LinuxHost as Host>::DirStream;
        assert!(
            size_of::<OpenHandle<S>>() <= 48,
            "{}",
            size_of::<OpenHandle<S>>()
        );
        assert!(
            size_of::<DirState<S>>() <= 64,
            "{}",
            size_of::<DirState<S>>()
        );
        assert!(size_of::<Inode>() <= 80, "{}", size_of::<Inode>());
    }
}

/// `ROOT` is the node id the server gives the root.
const _: () = assert!(ROOT.0 == fuse_abi::ROOT_ID);
