//! `passthrough-linux`: a [`fuse_server::FileSystem`] serving a host directory on Linux, confined
//! to that directory.
//!
//! ```text
//! fuse-abi  ◄──  fuse-server  ◄──  passthrough-linux  ◄──  virtiofs-device
//! ```
//!
//! # Design
//!
//! - **Inodes** ([`inode`](crate)): every node id names one host inode by an `O_PATH` descriptor
//!   or a file handle (`name_to_handle_at`), keyed by (dev, ino, mount id), with a bounded
//!   lookup count.
//! - **Confinement**: a guest name is one component, never `.` or `..`, and is only ever
//!   resolved relative to its parent's descriptor with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` and `O_NOFOLLOW`
//!   (or `openat(O_NOFOLLOW)` where `openat2` is missing), or passed to a `*at` call that does
//!   not follow a trailing symlink (`mkdirat`, `unlinkat`, `renameat2`, `symlinkat`, ...).
//!   Paths are never joined. Symlinks are created and read, never followed.
//! - **One open path** ([`open`](crate)): every descriptor opened for I/O (OPEN, OPENDIR,
//!   CREATE, TMPFILE, SETATTR size, lock descriptions, SYNCFS; READ, WRITE, FSYNC, FALLOCATE,
//!   LSEEK, COPY_FILE_RANGE and locks then use those) is an `IoFd`, which only the `open`
//!   module makes, and the opening calls of `sys` that do not force `O_PATH` need a token only
//!   that module has. It opens regular files and directories only, never blocking: an
//!   existing inode by its type, known from an `O_PATH` reference, before any open (a
//!   symlink is ELOOP, a directory for writing EISDIR, a device node, FIFO or socket EACCES,
//!   as on a `nodev` mount), with `O_NONBLOCK`; a name only with `O_CREAT | O_EXCL` (CREATE
//!   of an existing name resolves it `O_PATH` and opens the inode as above). Device nodes and
//!   FIFOs can still be created (MKNOD), renamed, linked, removed and chmod'ed. The rule for
//!   new code: never open anything but `O_PATH` outside `open.rs` (`unsafe` is denied outside
//!   `sys.rs`, and the crate's `clippy.toml` disallows `std::fs::File`/`OpenOptions` opens).
//! - **Extended attributes** never open a descriptor and never use an absolute path: they
//!   name the inode relative to the `/proc/self/fd` descriptor held since start-up with the
//!   `*xattrat` calls (Linux 6.13), so they work after the daemon's `pivot_root` left no
//!   `/proc`; on older kernels (ENOSYS) the absolute `/proc/self/fd/N` is used. Without an
//!   xattr map given, the default one stores the guest's `trusted.*` and `security.capability`
//!   as `user.virtiofs.trusted.*` and `user.virtiofs.security.capability` (names the host
//!   kernel never acts on) and refuses the guest's own `user.virtiofs.*` (see `ops::xattr`);
//!   SECURITY_CTX labels must be `security.*` and are set as
//!   SETXATTR sets them (xattrs on, through the map).
//! - **Budgets** (see [`Config`]): host descriptors ([`Config::max_open_fds`], default 3/4 of
//!   `RLIMIT_NOFILE`), inode table entries ([`Config::max_inodes`], default
//!   [`DEFAULT_MAX_INODES`]), directory handles ([`Config::max_dir_handles`], default half the
//!   descriptors) and lock descriptions ([`Config::max_lock_fds`], default a quarter), each a
//!   [`fuse_server::limits::Budget`]; past one the request gets ENFILE (ENOLCK for locks),
//!   the daemon never runs out. A directory handle holds a descriptor and nothing that grows
//!   with the directory (READDIR reads into a per-thread buffer).
//! - **The share's mount**: [`share_mount_warnings`] says when it lacks `nosuid` or `nodev`
//!   (a guest root can leave set-user-id programs and device nodes there for host users).
//! - **Identity**: creating requests run with the caller's fsuid/fsgid on the worker thread
//!   (raw `setresuid`/`setresgid`), its supplementary group (CREATE_SUPP_GROUP) and its umask
//!   (DONT_MASK, per-thread umask after `unshare(CLONE_FS)`). Other requests run as the
//!   daemon: the guest kernel checks permissions (virtio-fs and `default_permissions` mounts).
//!   uid/gid 0xFFFFFFFF (ALLOW_IDMAP) is never used as an identity: creating requests carrying
//!   it fail with EOVERFLOW, which is what the kernel itself does.
//! - **Errors**: every failure is an errno for the guest; nothing a request carries can make the
//!   backend panic or exit.
//!
//! Unsafe code lives in `sys.rs` only.
//!
//! # Tests
//!
//! `tests/*.rs` call the backend directly on temp directories (`tests/server.rs` through
//! `fuse_server::Server` with raw request bytes). They run as root in this project. The older
//! tests that need root (device nodes, whiteouts, chown to other ids, `security.*` xattrs,
//! identity switching, mounts) pass with a "skipped: needs root" note otherwise; the hostile-
//! guest ones (device nodes and loop devices behind CREATE, `trusted.*`/`security.*` policy,
//! mounts, xattrs without `/proc`) are `#[ignore = "needs root ..."]` and run with
//! `cargo test -p passthrough-linux -- --ignored`. `PASSTHROUGH_TEST_FILE_HANDLES=
//! never|prefer|mandatory` runs the suite with that inode reference mode (default `prefer`).
//!
//! Mounted through `/dev/fuse` (`default_permissions,allow_other`) on a 6.18 host with ext4,
//! pjdfstest 0.2.2 with `posix_fallocate`, `utime_now` and `utimensat` enabled passes 375 cases
//! with 0 failures and 23 skipped (ext4 itself: 376 passed, 22 skipped; the extra skip is
//! `link::link_count_max`, because glibc's `pathconf(_PC_LINK_MAX)` answers the default 127 for
//! a FUSE filesystem), in both the default configuration and with O_PATH inodes, POSIX ACLs
//! and writeback; fsx 0.3.2 with every operation weighted in runs 20 000 operations clean.
#![cfg(target_os = "linux")]
#![deny(unsafe_code)]

mod config;
mod credentials;
mod errno;
mod handle;
mod inode;
mod open;
mod ops;
#[allow(unsafe_code)]
mod sys;
mod xattrmap;

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuse_abi::InitFlags;
use fuse_server::HandleTable;

pub use config::{
    CachePolicy, Config, ConfigBuilder, ConfigError, DEFAULT_MAX_INODES, FileHandleMode,
};
pub use xattrmap::{XattrMap, XattrMapError};

use handle::OpenHandle;
use inode::{Budget, FdBudget, InodeKey, InodeRef, InodeStore, NewInode};

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The shared directory cannot be opened.
    #[error("cannot open the shared directory {}", path.display())]
    OpenRoot {
        /// The configured root.
        path: PathBuf,
        /// The host error.
        source: io::Error,
    },
    /// `/proc/self/fd` is needed to reopen inodes.
    #[error("cannot open /proc/self/fd: {0}")]
    OpenProc(io::Error),
    /// File handles were made mandatory but cannot be used.
    #[error("file handles are mandatory but unusable (CAP_DAC_READ_SEARCH?): {0}")]
    FileHandles(io::Error),
}

/// What an operator should know about the mount that holds the shared directory `root`: one
/// line each when it lacks `nosuid` (a guest root can leave set-user-id-root programs in the
/// share that the host would honour) or `nodev` (a guest root can create device nodes in the
/// share that host processes could open; the backend itself never opens them), or when it
/// cannot be checked. Empty when the mount has both. The daemon logs these at start.
pub fn share_mount_warnings(root: &std::path::Path) -> Vec<String> {
    let checked = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
        .and_then(|p| sys::open_dir_path(&p))
        .and_then(|fd| sys::fstatvfs(fd.as_fd()));
    let st = match checked {
        Ok(st) => st,
        Err(e) => {
            return vec![format!(
                "cannot check the mount options of {}: {e}",
                root.display()
            )];
        }
    };
    let mut out = Vec::new();
    if st.f_flag & libc::ST_NOSUID == 0 {
        out.push(format!(
            "the mount holding {} lacks nosuid: set-user-id files a guest creates there are \
             honoured by the host (mount it nosuid, or bind-mount the share with nosuid)",
            root.display()
        ));
    }
    if st.f_flag & libc::ST_NODEV == 0 {
        out.push(format!(
            "the mount holding {} lacks nodev: device nodes a guest creates there can be \
             opened by host processes (mount it nodev, or bind-mount the share with nodev)",
            root.display()
        ));
    }
    out
}

/// The Linux passthrough backend.
#[derive(Debug)]
pub struct PassthroughFs {
    cfg: Config,
    inodes: InodeStore,
    handles: HandleTable<OpenHandle>,
    budget: Arc<FdBudget>,
    /// Inode table entries.
    inode_budget: Arc<Budget>,
    /// Open directory handles.
    dir_budget: Arc<Budget>,
    /// Lock descriptions.
    lock_budget: Arc<Budget>,
    proc_self_fd: OwnedFd,
    /// The flags in force, as negotiated at the last FUSE_INIT.
    negotiated: AtomicU64,
    /// Whether identities can be switched (the daemon runs as root).
    switch_creds: bool,
    /// Whether inodes are referenced by file handles.
    use_handles: bool,
    /// One descriptor per mount seen, for `open_by_handle_at`.
    mounts: Mutex<HashMap<u64, Arc<OwnedFd>>>,
}

impl PassthroughFs {
    /// Opens the shared directory and prepares the backend.
    ///
    /// # Errors
    ///
    /// [`Error`] when the root or `/proc/self/fd` cannot be opened, or file handles are
    /// mandatory and unusable.
    pub fn new(mut cfg: Config) -> Result<PassthroughFs, Error> {
        if cfg.xattr && cfg.xattrmap.is_none() {
            cfg.xattrmap = Some(XattrMap::default_for_guest());
        }
        let open_root_err = |source| Error::OpenRoot {
            path: cfg.root.clone(),
            source,
        };
        let path = CString::new(cfg.root.as_os_str().as_bytes())
            .map_err(|_| open_root_err(io::Error::from_raw_os_error(libc::EINVAL)))?;
        let root_fd = sys::open_dir_path(&path).map_err(open_root_err)?;
        let stx = sys::statx(root_fd.as_fd(), 0, sys::STATX_WANTED).map_err(open_root_err)?;
        let proc_self_fd = sys::open_dir_path(c"/proc/self/fd").map_err(Error::OpenProc)?;
        let budget = FdBudget::new(cfg.max_open_fds);
        let inode_budget = Budget::new(cfg.max_inodes);
        let dir_budget = Budget::new(cfg.max_dir_handles);
        let lock_budget = Budget::with_errno(cfg.max_lock_fds, fuse_abi::Errno::ENOLCK);

        let mut use_handles = cfg.file_handles != FileHandleMode::Never;
        if use_handles {
            let probe = sys::name_to_handle(root_fd.as_fd())
                .and_then(|(h, _)| sys::open_by_handle_path(root_fd.as_fd(), &h));
            if let Err(e) = probe {
                if cfg.file_handles == FileHandleMode::Mandatory {
                    return Err(Error::FileHandles(e));
                }
                log::warn!("file handles unusable ({e}); using O_PATH descriptors");
                use_handles = false;
            }
        }
        let permit = budget
            .acquire()
            .map_err(|_| open_root_err(io::Error::from_raw_os_error(libc::ENFILE)))?;
        let root = NewInode {
            key: InodeKey::of(&stx),
            kind: u32::from(stx.stx_mode) & fuse_abi::mode::S_IFMT,
            mount_root: false,
            iref: InodeRef::Fd {
                fd: root_fd,
                _permit: permit,
            },
            entry: inode_budget
                .acquire()
                .map_err(|_| open_root_err(io::Error::from_raw_os_error(libc::ENFILE)))?,
        };
        Ok(PassthroughFs {
            inodes: InodeStore::new(root),
            handles: HandleTable::default(),
            budget,
            inode_budget,
            dir_budget,
            lock_budget,
            proc_self_fd,
            negotiated: AtomicU64::new(0),
            switch_creds: sys::geteuid() == 0,
            use_handles,
            mounts: Mutex::new(HashMap::new()),
            cfg,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Host descriptors currently held on the guest's behalf.
    pub fn fds_in_use(&self) -> usize {
        self.budget.used()
    }

    /// Node ids currently known (the root included).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Open file and directory handles.
    pub fn handle_count(&self) -> usize {
        self.handles.len()
    }

    /// Lock descriptions currently held.
    pub fn lock_fds_in_use(&self) -> usize {
        self.lock_budget.used()
    }

    /// Directory handles currently open.
    pub fn dir_handles_in_use(&self) -> usize {
        self.dir_budget.used()
    }

    /// The lookup count of a node id, if it is known.
    pub fn lookup_count(&self, nodeid: fuse_server::NodeId) -> Option<u64> {
        self.inodes.refs(nodeid)
    }

    fn negotiated(&self) -> InitFlags {
        InitFlags::from_bits_retain(self.negotiated.load(Ordering::Acquire))
    }
}
