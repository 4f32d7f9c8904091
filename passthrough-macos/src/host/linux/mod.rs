//! [`LinuxHost`]: the [`Host`] on Linux, behaving like macOS wherever the backend could tell the
//! difference. It is test infrastructure (the backend's tests run on it) and what
//! `virtiofs-device --backend macos-logic` serves a real guest with.
//!
//! What it emulates, and how:
//!
//! * **Darwin error numbers**: every failure is translated with
//!   [`errno::darwin_from_linux`] (Linux `ENODATA` is `ENOATTR`, `EOPNOTSUPP` is `ENOTSUP`...).
//! * **volfs**: macOS reopens an object by identity through `/.vol/<dev>/<ino>`, which resolves
//!   only while the object has a name. Here a registry maps each [`HostId`] to an `O_PATH`
//!   descriptor: [`Host::root`] and `lstat` of a [`Node::Child`] register what they find;
//!   [`Node::Id`] resolves through the registry and fails with `ENOENT` when the identity is
//!   unknown or the object has no name left (`st_nlink` 0: its entry is then dropped, since an
//!   unlinked object never gets a name back); [`Host::forget`] drops an entry (never a root's).
//!   The backend never sees an `O_PATH` descriptor: [`Host::open`] reopens `/proc/self/fd/<N>`
//!   of one (a "magic link" that lands on the object itself). The `/proc/self/fd` directory is
//!   opened once, by the first [`Host::root`], and every such name is `<N>` beneath that
//!   descriptor, so the adapter keeps working after the daemon's `pivot_root` or `chroot` left
//!   no `/proc` to look up (`/proc` must be mounted when the root is opened; if it is not, the
//!   absolute `/proc/self/fd/<N>` is used each time).
//! * **Only regular files and directories are opened** ([`Host::open`]): the object is pinned
//!   by an `O_PATH` descriptor first (the registry's for a [`Node::Id`], `openat(O_PATH |
//!   O_NOFOLLOW)` for a [`Node::Child`]), its type checked on that descriptor (`ELOOP` for a
//!   symlink, `ENXIO` for a device node, FIFO or socket, which are never opened), and only then
//!   reopened for I/O through `/proc/self/fd/<N>`, which reaches exactly the object checked;
//!   the result is checked again. `O_CREAT` creates with `O_EXCL`; an existing name (without
//!   the caller's `O_EXCL`) goes the same checked way.
//! * **Never following a symlink**: a [`Node::Child`] is opened with `openat(dir, name,
//!   O_PATH | O_NOFOLLOW)`; creation calls work on the parent's descriptor (`mkdirat`,
//!   `symlinkat`, `openat` with `O_NOFOLLOW`, `renameat2`, `linkat(AT_EMPTY_PATH)`); metadata
//!   calls act on the descriptor (`statx`/`utimensat` with `AT_EMPTY_PATH |
//!   AT_SYMLINK_NOFOLLOW`), or on `/proc/self/fd/<N>` for the calls that refuse `O_PATH`
//!   descriptors (`chmod`, the `*xattr` family: the 6.13 `*xattrat` calls answer `EBADF` for an
//!   `O_PATH` descriptor with an empty path).
//! * **Extended attributes like macOS's**: Darwin has no namespaces and allows attributes on
//!   symlinks. A Darwin name `X` is stored as `user.X` on regular files and directories, and as
//!   `trusted.X` on anything else (Linux allows only `trusted.` on a symlink, and only to
//!   `CAP_SYS_ADMIN`). Listings show only that namespace, without the prefix; everything else
//!   the host keeps (`security.selinux`, POSIX ACLs...) is hidden. Darwin's 127-byte name limit
//!   applies (`ENAMETOOLONG`).
//! * **Device numbers**: Linux's 64-bit `st_dev` becomes Darwin's `i32` in Darwin's layout when
//!   it fits (major < 255, minor < 2²⁴), else in the range of the reserved major 255:
//!   arithmetically for major < 2048 and minor < 4096 (NVMe's 259:n), from a table in first-seen
//!   order otherwise (stable for the life of the adapter). The mapping is injective.
//! * **Ownership** never changes on the host (there is no `chown` here); modes are what the
//!   backend asks for, under the process's umask as on macOS.
//! * **Names** are at most 255 bytes (`NAME_MAX`, `ENAMETOOLONG` past it, as on macOS). Names,
//!   attribute names and `/proc/self/fd/<N>` are built in fixed-size buffers
//!   ([`crate::cstr::CStrBuf`]), so that no call on the request path allocates.
//!
//! Each registered identity keeps one `O_PATH` descriptor open until it is forgotten (or found
//! unlinked); those descriptors count against the backend's descriptor budget
//! ([`Host::use_fd_budget`], shared with its handles), so a guest holding many inodes runs into
//! `ENFILE` from the budget, never into the process's `RLIMIT_NOFILE`. Roots are not counted.
//! Directory streams ([`Host::open_dir`]) read `getdents64` through a fixed 4 KiB buffer.
//!
//! Where Linux offers less, the nearest thing: `F_FULLFSYNC` is `fsync`; `F_NOCACHE` is a
//! no-op; `F_PREALLOCATE` (from the physical end of file) is `fallocate(FALLOC_FL_KEEP_SIZE)`
//! from the end of file; `chmod` of a symlink is `ENOTSUP`; `_PC_CASE_SENSITIVE` is the absence
//! of the casefold inode flag; `getattrlist(ATTR_CMN_NAME)` is a directory scan for the entry's
//! inode number.

#![deny(unsafe_code)]

mod errno;
#[allow(unsafe_code)]
mod sys;
mod xlate;

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fuse_server::limits::{Budget, Permit};

use libc::{c_int, c_uint, mode_t, off_t};

use super::{DirStream, DirentRef, Host, HostId, HostResult, Node, SyncMode};
use crate::cstr::CStrBuf;
use crate::darwin_abi;
use crate::errno::DarwinErrno;
use crate::fallocate::HostFstore;
use crate::lock::HostFlock;
use crate::stat::HostStat;
use crate::statfs::HostStatfs;
use crate::time::HostTimespec;

/// What `statx` is asked for: everything `stat` gives, and the birth time.
const STATX_MASK: c_uint = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// Flags of every `O_PATH` descriptor the adapter opens.
const PATH_FLAGS: c_int = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Flags to open a directory for reading (`getdents64`, `ioctl`).
const DIR_FLAGS: c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// The size of a directory stream's buffer, handed to one `getdents64` call (room for at least
/// 14 entries of the longest name).
const DIRENT_BUF: usize = 4096;

/// How many times `listxattr` probes the size again when the list grew in between.
const LIST_RETRIES: usize = 8;

/// The casefold inode flag (`FS_CASEFOLD_FL`, `<linux/fs.h>`): names in the directory compare
/// case-insensitively.
const FS_CASEFOLD_FL: c_int = 0x4000_0000;

/// The `fstore_t.fst_flags` bits Darwin defines.
const FSTORE_FLAGS: u32 =
    darwin_abi::F_ALLOCATECONTIG | darwin_abi::F_ALLOCATEALL | darwin_abi::F_ALLOCATEPERSIST;

/// The host layer on Linux (see the module documentation).
#[derive(Debug, Default)]
pub struct LinuxHost {
    /// The emulated volfs: the identities the backend may name by [`Node::Id`].
    registry: RwLock<Registry>,
    /// The Darwin numbers given to Linux devices [`xlate::dev_direct`] cannot encode.
    devs: Mutex<HashMap<(u32, u32), i32>>,
    /// The backend's descriptor budget, once it shared it: each registered identity but a
    /// root holds a unit.
    budget: OnceLock<Arc<Budget>>,
    /// The `/proc/self/fd` directory, opened by the first [`Host::root`] (`None` when it could
    /// not be opened: absolute paths are used then).
    proc_dir: OnceLock<Option<OwnedFd>>,
}

/// The identities that resolve, each to an `O_PATH` descriptor of the object.
#[derive(Debug, Default)]
struct Registry {
    fds: HashMap<HostId, Registered>,
    /// Shared directories ([`Host::root`]): never forgotten.
    roots: HashSet<HostId>,
}

/// One registered identity: its `O_PATH` descriptor and the budget unit it holds (none for a
/// root, or before the backend shared its budget).
#[derive(Debug)]
struct Registered {
    fd: Arc<OwnedFd>,
    _permit: Option<Permit>,
}

/// A directory stream: `getdents64` on a descriptor of its own, through a fixed buffer.
#[derive(Debug)]
pub struct LinuxDirStream {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// The bytes of `buf` the last `getdents64` filled, and how far they were consumed.
    len: usize,
    pos: usize,
}

impl LinuxDirStream {
    fn new(fd: OwnedFd) -> LinuxDirStream {
        LinuxDirStream {
            fd,
            buf: Vec::new(),
            len: 0,
            pos: 0,
        }
    }
}

impl DirStream for LinuxDirStream {
    fn rewind(&mut self) -> HostResult<()> {
        sys::lseek(self.fd.as_fd(), 0, libc::SEEK_SET)?;
        (self.len, self.pos) = (0, 0);
        Ok(())
    }

    fn next_entry(&mut self) -> HostResult<Option<DirentRef<'_>>> {
        loop {
            if self.pos >= self.len {
                if self.buf.is_empty() {
                    self.buf = vec![0; DIRENT_BUF];
                }
                self.len = sys::getdents64(self.fd.as_fd(), &mut self.buf)?;
                self.pos = 0;
                if self.len == 0 {
                    return Ok(None);
                }
            }
            let start = self.pos;
            let rest = self.buf.get(start..self.len).ok_or(DarwinErrno::EIO)?;
            let (reclen, entry) = xlate::next_dirent(rest)?;
            self.pos = start + reclen;
            if let Some(xlate::RawDirent { ino, typ, name }) = entry {
                let name = self
                    .buf
                    .get(start + name.start..start + name.end)
                    .ok_or(DarwinErrno::EIO)?;
                return Ok(Some(DirentRef { ino, typ, name }));
            }
        }
    }

    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>() + self.buf.capacity()
    }
}

/// A descriptor for one call: from the registry, opened for the call (`O_PATH`), or the
/// caller's.
#[derive(Debug)]
enum Handle<'a> {
    Shared(Arc<OwnedFd>),
    Owned(OwnedFd),
    Borrowed(BorrowedFd<'a>),
}

impl Handle<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Handle::Shared(fd) => fd.as_fd(),
            Handle::Owned(fd) => fd.as_fd(),
            Handle::Borrowed(fd) => *fd,
        }
    }

    /// Whether this is one of the adapter's `O_PATH` descriptors, which the `f*` calls refuse.
    const fn path_only(&self) -> bool {
        !matches!(self, Handle::Borrowed(_))
    }
}

/// A host object reached for one call, with its attributes.
#[derive(Debug)]
struct Object<'a> {
    handle: Handle<'a>,
    st: HostStat,
}

/// Where an `*xattr` call acts: `/proc/self/fd/<N>` for an `O_PATH` descriptor, else the
/// descriptor itself.
enum XattrAt<'a> {
    Proc(ProcName<'a>),
    Fd(BorrowedFd<'a>),
}

/// `/proc/self/fd/<N>` or `<N>` (a descriptor's number has at most 10 digits), in place.
pub(super) type ProcPath = CStrBuf<32>;

/// `/proc/self/fd/<N>`: opening (or `chmod`, `*xattr`) through it reaches the object a
/// descriptor refers to, without following it further even if it is a symlink. Named `<N>`
/// beneath the held `/proc/self/fd` descriptor when there is one, else by the absolute path.
pub(super) struct ProcName<'a> {
    /// The held `/proc/self/fd` descriptor.
    pub(super) dir: Option<BorrowedFd<'a>>,
    /// `<N>`.
    pub(super) rel: ProcPath,
    /// `/proc/self/fd/<N>`.
    pub(super) abs: ProcPath,
}

/// A name of one component with its NUL, in place: at most 255 bytes, `NAME_MAX` of Darwin
/// (which answers `ENAMETOOLONG` for a longer one) and of Linux.
type Component = CStrBuf<256>;

/// `name` as a C string (no allocation): `EINVAL` unless it is one plain component,
/// `ENAMETOOLONG` past 255 bytes.
fn component(name: &[u8]) -> HostResult<Component> {
    if !xlate::is_component(name) {
        return Err(DarwinErrno::EINVAL);
    }
    Component::from_bytes(name).map_err(|_| DarwinErrno::ENAMETOOLONG)
}

/// A file offset or length for the kernel: `EINVAL` past `i64::MAX`.
fn offset(value: u64) -> HostResult<off_t> {
    off_t::try_from(value).map_err(|_| DarwinErrno::EINVAL)
}

impl LinuxHost {
    /// An adapter with nothing registered yet.
    #[must_use]
    pub fn new() -> LinuxHost {
        LinuxHost::default()
    }

    /// The held `/proc/self/fd` descriptor, if [`Host::root`] could open it.
    fn proc_dir(&self) -> Option<BorrowedFd<'_>> {
        self.proc_dir
            .get()
            .and_then(Option::as_ref)
            .map(AsFd::as_fd)
    }

    /// How to name `/proc/self/fd/<N>` of `fd`.
    fn proc_name(&self, fd: BorrowedFd<'_>) -> HostResult<ProcName<'_>> {
        let n = fd.as_raw_fd();
        let mut rel = ProcPath::new();
        let mut abs = ProcPath::new();
        write!(rel, "{n}").map_err(|_| DarwinErrno::EIO)?;
        write!(abs, "/proc/self/fd/{n}").map_err(|_| DarwinErrno::EIO)?;
        Ok(ProcName {
            dir: self.proc_dir(),
            rel,
            abs,
        })
    }

    /// Opens `/proc/self/fd/<N>` of `fd` with `flags`: the object itself, reopened.
    fn open_proc(&self, fd: BorrowedFd<'_>, flags: c_int) -> HostResult<OwnedFd> {
        let name = self.proc_name(fd)?;
        match name.dir {
            Some(dir) => sys::openat(dir, &name.rel, flags, 0),
            None => sys::open(&name.abs, flags, 0),
        }
    }

    /// Where an `*xattr` call on `handle` acts.
    fn xattr_at<'a>(&'a self, handle: &'a Handle<'_>) -> HostResult<XattrAt<'a>> {
        if handle.path_only() {
            self.proc_name(handle.fd()).map(XattrAt::Proc)
        } else {
            Ok(XattrAt::Fd(handle.fd()))
        }
    }

    fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The Darwin `dev_t` for a Linux device (see the module documentation). `EOVERFLOW` once
    /// 2²³ devices needed the table.
    fn darwin_dev(&self, major: u32, minor: u32) -> HostResult<i32> {
        if let Some(dev) = xlate::dev_direct(major, minor) {
            return Ok(dev);
        }
        let mut table = self.devs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&dev) = table.get(&(major, minor)) {
            return Ok(dev);
        }
        let index = u32::try_from(table.len()).map_err(|_| DarwinErrno::EOVERFLOW)?;
        let dev = xlate::dev_from_table(index).ok_or(DarwinErrno::EOVERFLOW)?;
        table.insert((major, minor), dev);
        Ok(dev)
    }

    /// Darwin's `stat` of the object `fd` refers to (never followed).
    fn stat_fd(&self, fd: BorrowedFd<'_>) -> HostResult<HostStat> {
        let stx = sys::statx(fd, STATX_MASK)?;
        let dev = self.darwin_dev(stx.stx_dev_major, stx.stx_dev_minor)?;
        Ok(xlate::host_stat(&stx, dev))
    }

    /// The registered descriptor of `id`, without checking that it still has a name (enough
    /// for a parent directory: an entry cannot be found or made in a removed directory).
    fn dir_fd(&self, dir: HostId) -> HostResult<Arc<OwnedFd>> {
        self.registry()
            .fds
            .get(&dir)
            .map(|r| Arc::clone(&r.fd))
            .ok_or(DarwinErrno::ENOENT)
    }

    /// `/.vol/<dev>/<ino>`: the registered descriptor of `id` and its attributes; `ENOENT` if
    /// the identity is unknown or the object has no name left.
    fn resolve(&self, id: HostId) -> HostResult<(Arc<OwnedFd>, HostStat)> {
        let fd = self.dir_fd(id)?;
        let st = self.stat_fd(fd.as_fd())?;
        if st.nlink == 0 {
            // volfs cannot reach it, and an unlinked object never gets a name back.
            let mut registry = self.registry_mut();
            let current = registry
                .fds
                .get(&id)
                .is_some_and(|cur| Arc::ptr_eq(&cur.fd, &fd));
            if current && !registry.roots.contains(&id) {
                registry.fds.remove(&id);
            }
            return Err(DarwinErrno::ENOENT);
        }
        Ok((fd, st))
    }

    /// `openat(dir, name, O_PATH | O_NOFOLLOW)`: the entry itself, even a symlink.
    fn open_child(&self, dir: HostId, name: &[u8]) -> HostResult<OwnedFd> {
        let dirfd = self.dir_fd(dir)?;
        sys::openat(dirfd.as_fd(), &component(name)?, PATH_FLAGS, 0)
    }

    /// The descriptor a call acts on, without its attributes (a [`Node::Id`] is still checked
    /// to have a name).
    fn handle<'a>(&self, node: Node<'a>) -> HostResult<Handle<'a>> {
        Ok(match node {
            Node::Fd(fd) => Handle::Borrowed(fd),
            Node::Id(id) => Handle::Shared(self.resolve(id)?.0),
            Node::Child(dir, name) => Handle::Owned(self.open_child(dir, name)?),
        })
    }

    /// The descriptor a call acts on, with its attributes.
    fn object<'a>(&self, node: Node<'a>) -> HostResult<Object<'a>> {
        match node {
            Node::Fd(fd) => Ok(Object {
                handle: Handle::Borrowed(fd),
                st: self.stat_fd(fd)?,
            }),
            Node::Id(id) => {
                let (fd, st) = self.resolve(id)?;
                Ok(Object {
                    handle: Handle::Shared(fd),
                    st,
                })
            }
            Node::Child(dir, name) => {
                let fd = self.open_child(dir, name)?;
                let st = self.stat_fd(fd.as_fd())?;
                Ok(Object {
                    handle: Handle::Owned(fd),
                    st,
                })
            }
        }
    }

    /// The Linux name of the Darwin attribute `name` on `object`.
    fn xattr_name(object: &Object<'_>, name: &CStr) -> HostResult<xlate::XattrName> {
        xlate::xattr_name(xlate::xattr_prefix(&object.st), name.to_bytes())
    }

    /// The whole Linux attribute list of `at`, probing its size again (at most
    /// [`LIST_RETRIES`] times) if it grows between the probe and the read.
    fn linux_xattr_list(at: &XattrAt<'_>) -> HostResult<Vec<u8>> {
        let list = |buf: &mut [u8]| match at {
            XattrAt::Proc(name) => sys::listxattr(name, buf),
            XattrAt::Fd(fd) => sys::flistxattr(*fd, buf),
        };
        for _ in 0..LIST_RETRIES {
            let size = list(&mut [])?;
            if size == 0 {
                return Ok(Vec::new());
            }
            let mut buf = vec![0u8; size];
            match list(&mut buf) {
                Ok(len) => {
                    buf.truncate(len);
                    return Ok(buf);
                }
                Err(DarwinErrno::ERANGE) => {}
                Err(e) => return Err(e),
            }
        }
        Err(DarwinErrno::ERANGE)
    }

    /// Registers `fd` as the way to `id` (unless it is registered already), taking a unit of
    /// the shared budget: `ENFILE` when it is spent.
    fn register(&self, id: HostId, fd: OwnedFd) -> HostResult<()> {
        let mut registry = self.registry_mut();
        if registry.fds.contains_key(&id) {
            return Ok(());
        }
        let permit = match self.budget.get() {
            Some(budget) => Some(budget.acquire().map_err(|_| DarwinErrno::ENFILE)?),
            None => None,
        };
        let entry = Registered {
            fd: Arc::new(fd),
            _permit: permit,
        };
        registry.fds.insert(id, entry);
        Ok(())
    }

    /// Opens the object `pinned` (an `O_PATH` descriptor, attributes `st`) for I/O with the
    /// Linux `flags`, if it is a regular file or a directory: reopened through
    /// `/proc/self/fd/<N>`, which lands on exactly that object, and checked again.
    fn reopen(&self, pinned: BorrowedFd<'_>, st: &HostStat, flags: c_int) -> HostResult<OwnedFd> {
        if st.is_symlink() {
            return Err(DarwinErrno::ELOOP);
        }
        if flags & libc::O_DIRECTORY != 0 && !st.is_dir() {
            return Err(DarwinErrno::ENOTDIR);
        }
        if !matches!(st.file_type(), libc::S_IFREG | libc::S_IFDIR) {
            return Err(DarwinErrno::ENXIO);
        }
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW);
        let fd = self.open_proc(pinned, flags)?;
        let opened = sys::statx(fd.as_fd(), libc::STATX_TYPE | libc::STATX_INO)?;
        let same = opened.stx_ino == st.ino
            && matches!(
                u32::from(opened.stx_mode) & libc::S_IFMT,
                libc::S_IFREG | libc::S_IFDIR
            );
        if !same {
            return Err(DarwinErrno::ENXIO);
        }
        Ok(fd)
    }
}

impl Host for LinuxHost {
    type DirStream = LinuxDirStream;

    /// Opens `path` (`O_PATH | O_DIRECTORY | O_NOFOLLOW`: `ENOTDIR` for anything but a
    /// directory, a symlink to one included) and registers it as a root, never forgotten.
    /// `EINVAL` for a path with a NUL byte.
    fn root(&self, path: &Path) -> HostResult<HostStat> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| DarwinErrno::EINVAL)?;
        let fd = sys::open(&path, PATH_FLAGS | libc::O_DIRECTORY, 0)?;
        // Before any sandbox hides /proc (see the module documentation).
        self.proc_dir
            .get_or_init(|| sys::open(c"/proc/self/fd", PATH_FLAGS | libc::O_DIRECTORY, 0).ok());
        let st = self.stat_fd(fd.as_fd())?;
        if !st.is_dir() {
            return Err(DarwinErrno::ENOTDIR);
        }
        let id = HostId::of(&st);
        let mut registry = self.registry_mut();
        // A root holds no budget unit: it is the operator's, not the guest's.
        let root = Registered {
            fd: Arc::new(fd),
            _permit: None,
        };
        registry.fds.entry(id).or_insert(root);
        registry.roots.insert(id);
        Ok(st)
    }

    /// `statx` of the object; a [`Node::Child`] found is registered under its identity (if it
    /// was not already), so that [`Node::Id`] resolves it from then on.
    fn lstat(&self, node: Node<'_>) -> HostResult<HostStat> {
        match node {
            Node::Fd(fd) => self.stat_fd(fd),
            Node::Id(id) => self.resolve(id).map(|(_, st)| st),
            Node::Child(dir, name) => {
                let fd = self.open_child(dir, name)?;
                let st = self.stat_fd(fd.as_fd())?;
                self.register(HostId::of(&st), fd)?;
                Ok(st)
            }
        }
    }

    /// Only a regular file or a directory, never blocking (see the module documentation): the
    /// object is pinned `O_PATH` (a [`Node::Id`]'s registered descriptor, or `openat(dir,
    /// name, O_PATH | O_NOFOLLOW)`), its type checked, then reopened for I/O through
    /// `/proc/self/fd/<N>` with the translated flags and checked again. `O_CREAT` on a
    /// [`Node::Child`] is `openat(O_CREAT | O_EXCL | O_NOFOLLOW)` first (a new regular file);
    /// `EEXIST` unless the caller left out `O_EXCL`, in which case the existing object is
    /// opened as above. `EINVAL` for Darwin flags outside the whitelist.
    fn open(&self, node: Node<'_>, flags: i32, mode: u16) -> HostResult<OwnedFd> {
        let flags = xlate::open_flags(flags)?;
        let mode = mode_t::from(mode);
        let (pinned, st) = match node {
            Node::Fd(_) => return Err(DarwinErrno::EBADF),
            Node::Id(id) => {
                let (fd, st) = self.resolve(id)?;
                (Handle::Shared(fd), st)
            }
            Node::Child(dir, name) => {
                let dirfd = self.dir_fd(dir)?;
                let name = component(name)?;
                if flags & libc::O_CREAT != 0 {
                    match sys::openat(dirfd.as_fd(), &name, flags | libc::O_EXCL, mode) {
                        Ok(fd) => {
                            let st = self.stat_fd(fd.as_fd())?;
                            if st.file_type() != libc::S_IFREG {
                                return Err(DarwinErrno::ENXIO);
                            }
                            return Ok(fd);
                        }
                        Err(DarwinErrno::EEXIST) if flags & libc::O_EXCL == 0 => {}
                        Err(e) => return Err(e),
                    }
                }
                let fd = sys::openat(dirfd.as_fd(), &name, PATH_FLAGS, 0)?;
                let st = self.stat_fd(fd.as_fd())?;
                (Handle::Owned(fd), st)
            }
        };
        self.reopen(pinned.fd(), &st, flags)
    }

    fn mkdir(&self, dir: HostId, name: &[u8], mode: u16) -> HostResult<()> {
        let dirfd = self.dir_fd(dir)?;
        sys::mkdirat(dirfd.as_fd(), &component(name)?, mode_t::from(mode))
    }

    fn symlink(&self, target: &CStr, dir: HostId, name: &[u8]) -> HostResult<()> {
        let dirfd = self.dir_fd(dir)?;
        sys::symlinkat(target, dirfd.as_fd(), &component(name)?)
    }

    /// `readlinkat(fd, "")` on the link's `O_PATH` descriptor; `EINVAL` for anything but a
    /// symlink, as macOS answers.
    fn readlink(&self, node: Node<'_>, buf: &mut [u8]) -> HostResult<usize> {
        let object = self.object(node)?;
        if !object.st.is_symlink() {
            return Err(DarwinErrno::EINVAL);
        }
        sys::readlinkat(object.handle.fd(), c"", buf)
    }

    /// `unlinkat`; a directory is `EPERM`, as on macOS (Linux says `EISDIR`).
    fn unlink(&self, dir: HostId, name: &[u8]) -> HostResult<()> {
        let dirfd = self.dir_fd(dir)?;
        sys::unlinkat(dirfd.as_fd(), &component(name)?, 0).map_err(|e| {
            if e == DarwinErrno::EISDIR {
                DarwinErrno::EPERM
            } else {
                e
            }
        })
    }

    fn rmdir(&self, dir: HostId, name: &[u8]) -> HostResult<()> {
        let dirfd = self.dir_fd(dir)?;
        sys::unlinkat(dirfd.as_fd(), &component(name)?, libc::AT_REMOVEDIR)
    }

    /// `renameat2` with `RENAME_SWAP` as `RENAME_EXCHANGE` and `RENAME_EXCL` as
    /// `RENAME_NOREPLACE`; other flags (or both) are `EINVAL`.
    fn rename(
        &self,
        olddir: HostId,
        oldname: &[u8],
        newdir: HostId,
        newname: &[u8],
        flags: u32,
    ) -> HostResult<()> {
        let flags = xlate::rename_flags(flags)?;
        let oldfd = self.dir_fd(olddir)?;
        let newfd = self.dir_fd(newdir)?;
        sys::renameat2(
            oldfd.as_fd(),
            &component(oldname)?,
            newfd.as_fd(),
            &component(newname)?,
            flags,
        )
    }

    /// `linkat(AT_EMPTY_PATH)` of the registered descriptor: a symlink is linked itself.
    fn link(&self, node: HostId, newdir: HostId, newname: &[u8]) -> HostResult<()> {
        let (fd, _) = self.resolve(node)?;
        let dirfd = self.dir_fd(newdir)?;
        sys::link_fd(fd.as_fd(), dirfd.as_fd(), &component(newname)?)
    }

    /// `fchmod`, or `chmod` of `/proc/self/fd/<N>`; a symlink is `ENOTSUP` (Linux has no mode
    /// on symlinks).
    fn chmod(&self, node: Node<'_>, mode: u16) -> HostResult<()> {
        let mode = mode_t::from(mode & 0o7777);
        if let Node::Fd(fd) = node {
            return sys::fchmod(fd, mode);
        }
        let object = self.object(node)?;
        if object.st.is_symlink() {
            return Err(DarwinErrno::ENOTSUP);
        }
        let name = self.proc_name(object.handle.fd())?;
        match name.dir {
            Some(dir) => sys::fchmodat(dir, &name.rel, mode),
            None => sys::chmod(&name.abs, mode),
        }
    }

    /// `utimensat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`, Darwin's `UTIME_NOW` and
    /// `UTIME_OMIT` translated.
    fn utimens(&self, node: Node<'_>, times: &[HostTimespec; 2]) -> HostResult<()> {
        let times = [xlate::timespec(times[0])?, xlate::timespec(times[1])?];
        let handle = self.handle(node)?;
        sys::utimens_fd(handle.fd(), &times)
    }

    /// `ftruncate`; `EFBIG` for a length past `off_t`.
    fn truncate(&self, fd: BorrowedFd<'_>, len: u64) -> HostResult<()> {
        let len = off_t::try_from(len).map_err(|_| DarwinErrno::EFBIG)?;
        sys::ftruncate(fd, len)
    }

    /// `getxattr` of the namespaced name (see the module documentation).
    fn getxattr(
        &self,
        node: Node<'_>,
        name: &CStr,
        buf: &mut [u8],
        options: i32,
    ) -> HostResult<usize> {
        xlate::xattr_check_options(options)?;
        let object = self.object(node)?;
        let name = Self::xattr_name(&object, name)?;
        match self.xattr_at(&object.handle)? {
            XattrAt::Proc(at) => sys::getxattr(&at, &name, buf),
            XattrAt::Fd(fd) => sys::fgetxattr(fd, &name, buf),
        }
    }

    /// `setxattr` of the namespaced name; `XATTR_CREATE`/`XATTR_REPLACE` translated, both
    /// together `EINVAL`.
    fn setxattr(&self, node: Node<'_>, name: &CStr, value: &[u8], options: i32) -> HostResult<()> {
        let flags = xlate::xattr_set_flags(options)?;
        let object = self.object(node)?;
        let name = Self::xattr_name(&object, name)?;
        match self.xattr_at(&object.handle)? {
            XattrAt::Proc(at) => sys::setxattr(&at, &name, value, flags),
            XattrAt::Fd(fd) => sys::fsetxattr(fd, &name, value, flags),
        }
    }

    /// The names of the object's namespace without its prefix; everything else is hidden.
    fn listxattr(&self, node: Node<'_>, buf: &mut [u8], options: i32) -> HostResult<usize> {
        xlate::xattr_check_options(options)?;
        let object = self.object(node)?;
        let linux = Self::linux_xattr_list(&self.xattr_at(&object.handle)?)?;
        let list = xlate::xattr_list(&linux, xlate::xattr_prefix(&object.st));
        if buf.is_empty() {
            return Ok(list.len());
        }
        buf.get_mut(..list.len())
            .ok_or(DarwinErrno::ERANGE)?
            .copy_from_slice(&list);
        Ok(list.len())
    }

    fn removexattr(&self, node: Node<'_>, name: &CStr, options: i32) -> HostResult<()> {
        xlate::xattr_check_options(options)?;
        let object = self.object(node)?;
        let name = Self::xattr_name(&object, name)?;
        match self.xattr_at(&object.handle)? {
            XattrAt::Proc(at) => sys::removexattr(&at, &name),
            XattrAt::Fd(fd) => sys::fremovexattr(fd, &name),
        }
    }

    /// `pread`; `EINVAL` for an offset past `off_t`.
    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> HostResult<usize> {
        sys::pread(fd, buf, self::offset(offset)?)
    }

    /// `pwrite`; `EINVAL` for an offset past `off_t`.
    fn pwrite(&self, fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> HostResult<usize> {
        sys::pwrite(fd, buf, self::offset(offset)?)
    }

    /// `lseek` with Darwin's `SEEK_HOLE` (3) and `SEEK_DATA` (4) swapped to Linux's.
    fn lseek(&self, fd: BorrowedFd<'_>, offset: i64, whence: i32) -> HostResult<u64> {
        sys::lseek(fd, offset, xlate::whence(whence)?)
    }

    /// `fsync` for both modes: Linux's `fsync` already flushes the drive's cache.
    fn fsync(&self, fd: BorrowedFd<'_>, mode: SyncMode) -> HostResult<()> {
        let _ = mode;
        sys::fsync(fd)
    }

    /// `F_PREALLOCATE` in `F_PEOFPOSMODE` (the only mode the backend uses; `EINVAL` for
    /// another, for a non-zero offset as xnu answers, for a negative length or unknown flags):
    /// `fallocate(FALLOC_FL_KEEP_SIZE)` of `length` bytes from the end of file. The flags
    /// change nothing (`fallocate` allocates all or fails).
    fn preallocate(&self, fd: BorrowedFd<'_>, store: &HostFstore) -> HostResult<()> {
        if store.posmode != darwin_abi::F_PEOFPOSMODE
            || store.offset != 0
            || store.length < 0
            || store.flags & !FSTORE_FLAGS != 0
        {
            return Err(DarwinErrno::EINVAL);
        }
        if store.length == 0 {
            return Ok(());
        }
        let start = self.stat_fd(fd)?.size;
        if start.checked_add(store.length).is_none() {
            return Err(DarwinErrno::EFBIG);
        }
        sys::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, start, store.length)
    }

    /// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`; `EINVAL` past `off_t`.
    fn punch_hole(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> HostResult<()> {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        sys::fallocate(fd, mode, self::offset(offset)?, self::offset(len)?)
    }

    /// Nothing to do: the backend's `O_DIRECT` request is only a caching hint.
    fn set_nocache(&self, fd: BorrowedFd<'_>) -> HostResult<()> {
        let _ = fd;
        Ok(())
    }

    /// `fcntl` with the Linux command and lock type (POSIX commands stay POSIX, `F_OFD_*`
    /// become Linux's `F_OFD_*`); `F_GETLK` results are translated back. `EINVAL` for an
    /// unknown command, type or `whence`.
    fn lock(&self, fd: BorrowedFd<'_>, cmd: i32, lock: &mut HostFlock) -> HostResult<()> {
        let cmd = xlate::lock_cmd(cmd)?;
        if !(0..=2).contains(&lock.whence) {
            return Err(DarwinErrno::EINVAL);
        }
        // SEEK_SET, SEEK_CUR and SEEK_END have the same values; `l_pid` must be 0 for an
        // open-file-description lock and is ignored otherwise.
        let mut flock = libc::flock {
            l_type: xlate::lock_type_to_linux(lock.typ)?,
            l_whence: lock.whence,
            l_start: lock.start,
            l_len: lock.len,
            l_pid: 0,
        };
        sys::fcntl_lock(fd, cmd, &mut flock)?;
        *lock = HostFlock {
            start: flock.l_start,
            len: flock.l_len,
            pid: flock.l_pid,
            typ: xlate::lock_type_to_darwin(flock.l_type)?,
            whence: flock.l_whence,
        };
        Ok(())
    }

    /// `flock`: Darwin's operations have Linux's values; `EINVAL` for another bit.
    fn flock(&self, fd: BorrowedFd<'_>, operation: i32) -> HostResult<()> {
        sys::flock(fd, xlate::flock_operation(operation)?)
    }

    /// `fstatfs` of the object (an `O_PATH` descriptor of a symlink answers for the link's own
    /// filesystem). Flags: `MNT_DOVOLFS` always (volfs is emulated), `MNT_RDONLY`/`MNT_NOSUID`
    /// from Linux's; the type name from the filesystem's magic number ("linux" if unknown).
    fn statfs(&self, node: Node<'_>) -> HostResult<HostStatfs> {
        let handle = self.handle(node)?;
        let sf = sys::fstatfs(handle.fd())?;
        let linux_flags = u64::try_from(sf.f_flags).unwrap_or(0);
        let mut flags = darwin_abi::MNT_DOVOLFS.unsigned_abs();
        if linux_flags & xlate::ST_RDONLY != 0 {
            flags |= darwin_abi::MNT_RDONLY.unsigned_abs();
        }
        if linux_flags & xlate::ST_NOSUID != 0 {
            flags |= darwin_abi::MNT_NOSUID.unsigned_abs();
        }
        let bsize = if sf.f_frsize > 0 {
            sf.f_frsize
        } else {
            sf.f_bsize
        };
        Ok(HostStatfs {
            bsize: u32::try_from(bsize).unwrap_or(0),
            iosize: i32::try_from(sf.f_bsize).unwrap_or(0),
            blocks: sf.f_blocks,
            bfree: sf.f_bfree,
            bavail: sf.f_bavail,
            files: sf.f_files,
            ffree: sf.f_ffree,
            flags,
            fstypename: xlate::fstypename(u64::try_from(sf.f_type).unwrap_or(0)),
        })
    }

    /// `fstatfs`'s `f_namelen`; `EINVAL` if the filesystem reports none.
    fn name_max(&self, node: Node<'_>) -> HostResult<u32> {
        let handle = self.handle(node)?;
        let namelen = sys::fstatfs(handle.fd())?.f_namelen;
        match u32::try_from(namelen) {
            Ok(0) => Err(DarwinErrno::EINVAL),
            Ok(max) => Ok(max),
            Err(_) => Err(DarwinErrno::EOVERFLOW),
        }
    }

    /// Case-insensitive only when the directory has the casefold flag (`FS_IOC_GETFLAGS` on a
    /// descriptor open for reading); a filesystem without inode flags is case-sensitive.
    fn case_sensitive(&self, dir: HostId) -> HostResult<bool> {
        let (fd, st) = self.resolve(dir)?;
        if !st.is_dir() {
            return Err(DarwinErrno::ENOTDIR);
        }
        let reader = self.open_proc(fd.as_fd(), DIR_FLAGS)?;
        match sys::inode_flags(reader.as_fd()) {
            Ok(flags) => Ok(flags & FS_CASEFOLD_FL == 0),
            Err(
                DarwinErrno::ENOTTY
                | DarwinErrno::ENOTSUP
                | DarwinErrno::EINVAL
                | DarwinErrno::ENOSYS,
            ) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Scans `dir` for the entry `name` resolves to (by inode number): `name` itself if an
    /// entry of that name has it, else the first entry that has it, else (a mount point, whose
    /// entry carries the covered inode's number) `name` if it is listed; `ENOENT` otherwise,
    /// `ERANGE` if the name does not fit `buf`.
    fn stored_name(&self, dir: HostId, name: &[u8], buf: &mut [u8]) -> HostResult<usize> {
        let dirfd = self.dir_fd(dir)?;
        let entry = sys::openat(dirfd.as_fd(), &component(name)?, PATH_FLAGS, 0)?;
        let ino = sys::statx(entry.as_fd(), libc::STATX_INO)?.stx_ino;
        let reader = self.open_proc(dirfd.as_fd(), DIR_FLAGS)?;
        let mut stream = LinuxDirStream::new(reader);
        // By preference: `name` with that inode, else the first name with it, else `name`.
        let mut first_with_ino: Option<Vec<u8>> = None;
        let mut listed = false;
        let mut exact = false;
        while let Some(e) = stream.next_entry()? {
            if e.ino == ino && e.name == name {
                exact = true;
                break;
            }
            if e.ino == ino && first_with_ino.is_none() {
                first_with_ino = Some(e.name.to_vec());
            }
            listed |= e.name == name;
        }
        let stored = if exact {
            name
        } else if let Some(first) = first_with_ino.as_deref() {
            first
        } else if listed {
            name
        } else {
            return Err(DarwinErrno::ENOENT);
        };
        let len = stored.len();
        buf.get_mut(..len)
            .ok_or(DarwinErrno::ERANGE)?
            .copy_from_slice(stored);
        Ok(len)
    }

    /// A duplicate of `fd` (`F_DUPFD_CLOEXEC`; it shares the offset, which only the stream
    /// uses), rewound, read with `getdents64` through a 4 KiB buffer; `.` and `..` skipped,
    /// `d_type` as Linux gives it (the same values as Darwin's).
    fn open_dir(&self, fd: BorrowedFd<'_>) -> HostResult<LinuxDirStream> {
        let dup = fd.try_clone_to_owned().map_err(|e| self.io_errno(&e))?;
        let mut stream = LinuxDirStream::new(dup);
        stream.rewind()?;
        Ok(stream)
    }

    /// `getrlimit(RLIMIT_NOFILE)`'s soft limit.
    fn nofile_limit(&self) -> Option<u64> {
        sys::nofile_limit()
    }

    /// Registered identities (not roots) count against `budget` from now on.
    fn use_fd_budget(&self, budget: &Arc<Budget>) {
        let _ = self.budget.set(Arc::clone(budget));
    }

    /// The raw OS error (Linux numbering) translated; `EIO` without one.
    fn io_errno(&self, err: &io::Error) -> DarwinErrno {
        err.raw_os_error()
            .map_or(DarwinErrno::EIO, errno::darwin_from_linux)
    }

    /// Drops the identity from the registry (a root stays).
    fn forget(&self, id: HostId) {
        let mut registry = self.registry_mut();
        if !registry.roots.contains(&id) {
            registry.fds.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests;
