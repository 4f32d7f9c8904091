//! What the backend serves and how: built with [`Config::builder`], validated once.

use std::path::PathBuf;
use std::time::Duration;

use fuse_abi::{InitFlags, OpenOutFlags};

use crate::xattrmap::XattrMap;

/// How much the guest may cache (virtiofsd's `--cache`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// No caching: zero timeouts, every open is `FOPEN_DIRECT_IO`.
    Never,
    /// Metadata cached for a day, data never (`FOPEN_DIRECT_IO`).
    Metadata,
    /// Metadata cached for one second; data cached and revalidated on open.
    #[default]
    Auto,
    /// Everything cached for a day; data kept across opens (`FOPEN_KEEP_CACHE`).
    Always,
}

impl CachePolicy {
    /// Entry and attribute timeout.
    pub fn timeout(self) -> Duration {
        match self {
            CachePolicy::Never => Duration::ZERO,
            CachePolicy::Auto => Duration::from_secs(1),
            CachePolicy::Metadata | CachePolicy::Always => Duration::from_secs(86_400),
        }
    }

    /// FOPEN flags for an opened regular file.
    pub fn open_flags(self) -> OpenOutFlags {
        match self {
            CachePolicy::Never | CachePolicy::Metadata => OpenOutFlags::DIRECT_IO,
            CachePolicy::Auto => OpenOutFlags::empty(),
            CachePolicy::Always => OpenOutFlags::KEEP_CACHE,
        }
    }

    /// FOPEN flags for an opened directory.
    pub fn opendir_flags(self) -> OpenOutFlags {
        match self {
            CachePolicy::Always => OpenOutFlags::KEEP_CACHE | OpenOutFlags::CACHE_DIR,
            _ => OpenOutFlags::empty(),
        }
    }
}

/// How inodes are referenced (virtiofsd's `--inode-file-handles`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileHandleMode {
    /// An `O_PATH` descriptor per inode.
    Never,
    /// A file handle where the filesystem supports one (needs `CAP_DAC_READ_SEARCH`), else an
    /// `O_PATH` descriptor.
    #[default]
    Prefer,
    /// File handles only: starting fails without `CAP_DAC_READ_SEARCH`, lookups of inodes
    /// without a handle fail.
    Mandatory,
}

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// POSIX ACLs are stored as xattrs.
    #[error("posix_acl needs xattr support enabled")]
    AclWithoutXattr,
    /// An xattrmap that applies to nothing when xattrs are off.
    #[error("an xattr map was given but xattrs are disabled")]
    XattrMapWithoutXattr,
    /// The fd budget is too small to work.
    #[error("max_open_fds must be at least 16, got {0}")]
    TooFewFds(usize),
    /// The inode table budget is too small to work.
    #[error("max_inodes must be at least 16, got {0}")]
    TooFewInodes(usize),
    /// Writeback caching makes no sense on a read-only share.
    #[error("writeback needs a writable share")]
    WritebackReadonly,
}

/// Default of [`Config::max_inodes`].
pub const DEFAULT_MAX_INODES: usize = 1 << 18;

/// The backend's configuration. Fields are public for reading; build through [`ConfigBuilder`].
///
/// # Budgets
///
/// Everything a guest can make the backend hold is bounded, and running out is an errno for
/// the request, never a panic: host descriptors ([`max_open_fds`](Self::max_open_fds),
/// ENFILE), inode table entries ([`max_inodes`](Self::max_inodes), ENFILE), directory handles
/// ([`max_dir_handles`](Self::max_dir_handles), ENFILE) and lock descriptions
/// ([`max_lock_fds`](Self::max_lock_fds), ENOLCK). Releasing the handle (RELEASE,
/// RELEASEDIR), the lock (FLUSH) or the node (FORGET) gives the share back. Memory follows
/// from these: no handle buffers directory entries (READDIR reads into a per-thread buffer).
#[derive(Clone, Debug)]
pub struct Config {
    /// The host directory served as the root.
    pub root: PathBuf,
    /// Cache policy.
    pub cache: CachePolicy,
    /// Declare WRITEBACK_CACHE.
    pub writeback: bool,
    /// Serve extended attributes.
    pub xattr: bool,
    /// Declare POSIX_ACL (needs `xattr`).
    pub posix_acl: bool,
    /// Name mapping for xattrs. `None` with xattrs on is [`XattrMap::default_for_guest`]
    /// (the guest's `trusted.*` and `security.capability` stored under `user.virtiofs.`),
    /// which [`PassthroughFs::new`](crate::PassthroughFs::new) puts in.
    pub xattrmap: Option<XattrMap>,
    /// Refuse every change with EROFS.
    pub readonly: bool,
    /// Inode references.
    pub file_handles: FileHandleMode,
    /// Mark mount points inside the share with FUSE_ATTR_SUBMOUNT (declares SUBMOUNTS).
    pub announce_submounts: bool,
    /// Pass the guest's `O_DIRECT` to the host (otherwise it is dropped).
    pub allow_direct_io: bool,
    /// Declare DIRECT_IO_ALLOW_MMAP: the guest may map files opened with FOPEN_DIRECT_IO
    /// (cache `never`) shared. Their pages then live in the guest's page cache, which
    /// nothing keeps coherent with host writers: only for a share no one else writes.
    pub allow_mmap: bool,
    /// Declare DO_READDIRPLUS and READDIRPLUS_AUTO (on by default). Off, the guest sends
    /// plain READDIR and a LOOKUP for each name it needs.
    pub readdirplus: bool,
    /// Declare HANDLE_KILLPRIV_V2 (the backend then clears suid/sgid and capabilities itself).
    pub killpriv_v2: bool,
    /// Declare SECURITY_CTX (set the guest's LSM label on new inodes).
    pub security_label: bool,
    /// Declare FLOCK_LOCKS: the guest's flock(2) locks are taken on the host file (coherent
    /// with host processes and other guests). Off by default, as in virtiofsd: the guest
    /// kernel then keeps flock locks itself, and they show in the guest's `/proc/locks` (a
    /// remote lock does not; fstests generic/504). POSIX locks are always remote.
    pub flock_locks: bool,
    /// Most host descriptors the guest can make the backend hold: `O_PATH` inode references,
    /// open files and directories, lock descriptions. Default: 3/4 of the soft
    /// `RLIMIT_NOFILE` at [`ConfigBuilder::build`] (the rest is the daemon's reserve, e.g. for
    /// the descriptors a vhost-user frontend sends). Past it: ENFILE.
    pub max_open_fds: usize,
    /// Most node ids in the inode table, the root included (an entry referenced by a file
    /// handle holds no descriptor, so [`max_open_fds`](Self::max_open_fds) does not bound it).
    /// Default: [`DEFAULT_MAX_INODES`] (262 144; 230 to 400 bytes each, ~100 MiB at the limit).
    /// Past it:
    /// ENFILE on LOOKUP and the creating requests; READDIRPLUS sends plain names; the guest's
    /// FORGETs make room.
    pub max_inodes: usize,
    /// Most open directory handles. Each holds one descriptor (counted in `max_open_fds` too)
    /// and a few hundred bytes, whatever the directory's size. Default: half of
    /// `max_open_fds`. Past it: ENFILE.
    pub max_dir_handles: usize,
    /// Most lock descriptions (one per inode and guest lock owner holding POSIX locks). Each
    /// holds one descriptor (counted in `max_open_fds` too). Default: a quarter of
    /// `max_open_fds`. Past it: ENOLCK.
    pub max_lock_fds: usize,
    /// The INIT flags the backend may declare at most: [`crate::PassthroughFs::declared_flags`]
    /// is intersected with it (all flags by default).
    pub declare_at_most: InitFlags,
}

impl Config {
    /// Whether a guest can set file capabilities on host files under their real name,
    /// `security.capability`: xattrs on, with a map that passes that name through unchanged
    /// (virtiofsd's usual `:ok:all:::`). The default map stores it as
    /// `user.virtiofs.security.capability` instead, so a daemon that would keep CAP_SETFCAP
    /// only for this does not need it then.
    #[must_use]
    pub fn passes_file_capabilities(&self) -> bool {
        self.xattr
            && !self.readonly
            && self
                .xattrmap
                .as_ref()
                .is_some_and(|map| map.passes_through(b"security.capability"))
    }

    /// A builder for the share rooted at `root`, with the defaults: cache `auto`, no writeback,
    /// xattrs on, no ACLs, writable, file handles `prefer`, no submounts, no direct I/O, no
    /// shared mmap of direct-I/O files, READDIRPLUS, no killpriv_v2, no security labels, remote POSIX locks but guest-local flock locks, and the
    /// budgets described on
    /// [`Config`].
    pub fn builder(root: impl Into<PathBuf>) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                root: root.into(),
                cache: CachePolicy::default(),
                writeback: false,
                xattr: true,
                posix_acl: false,
                xattrmap: None,
                readonly: false,
                file_handles: FileHandleMode::default(),
                announce_submounts: false,
                allow_direct_io: false,
                allow_mmap: false,
                readdirplus: true,
                killpriv_v2: false,
                security_label: false,
                flock_locks: false,
                max_open_fds: 0,
                max_inodes: DEFAULT_MAX_INODES,
                max_dir_handles: 0,
                max_lock_fds: 0,
                declare_at_most: InitFlags::all(),
            },
        }
    }
}

/// Builds a validated [`Config`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Cache policy.
    #[must_use]
    pub fn cache(mut self, cache: CachePolicy) -> Self {
        self.config.cache = cache;
        self
    }

    /// Writeback caching.
    #[must_use]
    pub fn writeback(mut self, on: bool) -> Self {
        self.config.writeback = on;
        self
    }

    /// Extended attributes.
    #[must_use]
    pub fn xattr(mut self, on: bool) -> Self {
        self.config.xattr = on;
        self
    }

    /// POSIX ACLs.
    #[must_use]
    pub fn posix_acl(mut self, on: bool) -> Self {
        self.config.posix_acl = on;
        self
    }

    /// An xattr name map, replacing the default ([`XattrMap::default_for_guest`]) entirely.
    #[must_use]
    pub fn xattrmap(mut self, map: XattrMap) -> Self {
        self.config.xattrmap = Some(map);
        self
    }

    /// Read-only share.
    #[must_use]
    pub fn readonly(mut self, on: bool) -> Self {
        self.config.readonly = on;
        self
    }

    /// Inode references.
    #[must_use]
    pub fn file_handles(mut self, mode: FileHandleMode) -> Self {
        self.config.file_handles = mode;
        self
    }

    /// Announce submounts.
    #[must_use]
    pub fn announce_submounts(mut self, on: bool) -> Self {
        self.config.announce_submounts = on;
        self
    }

    /// Honour the guest's `O_DIRECT`.
    #[must_use]
    pub fn allow_direct_io(mut self, on: bool) -> Self {
        self.config.allow_direct_io = on;
        self
    }

    /// DIRECT_IO_ALLOW_MMAP (see [`Config::allow_mmap`]).
    #[must_use]
    pub fn allow_mmap(mut self, on: bool) -> Self {
        self.config.allow_mmap = on;
        self
    }

    /// DO_READDIRPLUS and READDIRPLUS_AUTO (see [`Config::readdirplus`]).
    #[must_use]
    pub fn readdirplus(mut self, on: bool) -> Self {
        self.config.readdirplus = on;
        self
    }

    /// HANDLE_KILLPRIV_V2.
    #[must_use]
    pub fn killpriv_v2(mut self, on: bool) -> Self {
        self.config.killpriv_v2 = on;
        self
    }

    /// SECURITY_CTX.
    #[must_use]
    pub fn security_label(mut self, on: bool) -> Self {
        self.config.security_label = on;
        self
    }

    /// FLOCK_LOCKS (see [`Config::flock_locks`]).
    pub fn flock_locks(mut self, on: bool) -> Self {
        self.config.flock_locks = on;
        self
    }

    /// Descriptor budget (0: 3/4 of the soft `RLIMIT_NOFILE`).
    #[must_use]
    pub fn max_open_fds(mut self, n: usize) -> Self {
        self.config.max_open_fds = n;
        self
    }

    /// Inode table budget (at least 16).
    #[must_use]
    pub fn max_inodes(mut self, n: usize) -> Self {
        self.config.max_inodes = n;
        self
    }

    /// Directory handle budget (0: half of the descriptor budget).
    #[must_use]
    pub fn max_dir_handles(mut self, n: usize) -> Self {
        self.config.max_dir_handles = n;
        self
    }

    /// Lock description budget (0: a quarter of the descriptor budget).
    #[must_use]
    pub fn max_lock_fds(mut self, n: usize) -> Self {
        self.config.max_lock_fds = n;
        self
    }

    /// Declares at most `mask`: the flags this configuration would declare, intersected with
    /// `mask` (e.g. to test guests against a backend that honours less, like the macOS
    /// one). A backend may always declare less than it honours; the server negotiates only
    /// what was declared.
    #[must_use]
    pub fn declare_at_most(mut self, mask: InitFlags) -> Self {
        self.config.declare_at_most = mask;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the conflicting options.
    pub fn build(mut self) -> Result<Config, ConfigError> {
        let c = &mut self.config;
        if c.posix_acl && !c.xattr {
            return Err(ConfigError::AclWithoutXattr);
        }
        if c.xattrmap.is_some() && !c.xattr {
            return Err(ConfigError::XattrMapWithoutXattr);
        }
        if c.writeback && c.readonly {
            return Err(ConfigError::WritebackReadonly);
        }
        if c.max_open_fds == 0 {
            let limit = usize::try_from(crate::sys::nofile_limit()).unwrap_or(usize::MAX);
            c.max_open_fds = (limit / 4).saturating_mul(3).max(16);
        }
        if c.max_open_fds < 16 {
            return Err(ConfigError::TooFewFds(c.max_open_fds));
        }
        if c.max_inodes < 16 {
            return Err(ConfigError::TooFewInodes(c.max_inodes));
        }
        if c.max_dir_handles == 0 {
            c.max_dir_handles = c.max_open_fds / 2;
        }
        if c.max_lock_fds == 0 {
            c.max_lock_fds = c.max_open_fds / 4;
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_acl_without_xattr_fails() {
        let r = Config::builder("/").xattr(false).posix_acl(true).build();
        assert!(matches!(r, Err(ConfigError::AclWithoutXattr)));
    }

    #[test]
    fn file_capabilities_reach_the_host_only_through_a_map_that_passes_them() {
        let config = |xattr: bool, map: Option<&str>, readonly: bool| {
            let mut b = Config::builder("/").xattr(xattr).readonly(readonly);
            if let Some(rules) = map {
                b = b.xattrmap(XattrMap::parse(rules).unwrap());
            }
            b.build().unwrap().passes_file_capabilities()
        };
        assert!(!config(false, None, false), "xattrs off");
        assert!(!config(true, None, false), "the default map remaps it");
        assert!(config(true, Some(":ok:all:::"), false));
        assert!(!config(true, Some(":ok:all:::"), true), "read-only");
        assert!(!config(
            true,
            Some(":bad:all:security.capability:: :ok:all:::"),
            false
        ));
    }

    #[test]
    fn build_default_fd_budget_is_positive() {
        let c = Config::builder("/").build().unwrap();
        assert!(c.max_open_fds >= 16);
        assert_eq!(c.max_inodes, DEFAULT_MAX_INODES);
        assert_eq!(c.max_dir_handles, c.max_open_fds / 2);
        assert_eq!(c.max_lock_fds, c.max_open_fds / 4);
        let r = Config::builder("/").max_inodes(3).build();
        assert!(matches!(r, Err(ConfigError::TooFewInodes(3))));
    }

    #[test]
    fn declare_at_most_masks_the_declared_flags() {
        let dir = tempfile::tempdir().unwrap();
        let full = Config::builder(dir.path())
            .writeback(true)
            .posix_acl(true)
            .announce_submounts(true);
        let fs = crate::PassthroughFs::new(full.clone().build().unwrap()).unwrap();
        let all = fs.declared_flags();
        assert!(all.contains(InitFlags::POSIX_ACL | InitFlags::ALLOW_IDMAP));
        let mask = InitFlags::WRITEBACK_CACHE | InitFlags::SUBMOUNTS | InitFlags::ASYNC_READ;
        let config = full.declare_at_most(mask).build().unwrap();
        assert_eq!(config.declare_at_most, mask);
        let fs = crate::PassthroughFs::new(config).unwrap();
        assert_eq!(fs.declared_flags(), all & mask);
        assert_eq!(fs.declared_flags(), mask);
    }

    #[test]
    fn cache_never_is_direct_io_with_zero_timeouts() {
        assert_eq!(CachePolicy::Never.timeout(), Duration::ZERO);
        assert_eq!(CachePolicy::Never.open_flags(), OpenOutFlags::DIRECT_IO);
        assert_eq!(CachePolicy::Always.open_flags(), OpenOutFlags::KEEP_CACHE);
    }
}
