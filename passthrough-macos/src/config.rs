//! The backend's options.

use std::path::PathBuf;
use std::time::Duration;

use crate::host::SyncMode;
use crate::open_flags::GuestArch;

/// How much the guest may cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// No data caching (`FOPEN_DIRECT_IO`), attributes and entries not cached.
    Never,
    /// The guest's default: data cached while the file is open, revalidated on open.
    #[default]
    Auto,
    /// Data and directory contents kept across opens (`FOPEN_KEEP_CACHE`, `FOPEN_CACHE_DIR`).
    Always,
}

/// What LOOKUP does on a case-insensitive host volume (the default on macOS), where `FOO`
/// resolves to the host's `foo`.
///
/// A Linux guest assumes names are exact: if `FOO` and `foo` both resolved, its dentry cache
/// would hold two names for one inode (for a directory, an alias Linux refuses), which shows up
/// as phantom and duplicate entries (Docker for Mac's known bug).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CasePolicy {
    /// On a case-insensitive volume, a name resolves only if it is spelled exactly as stored
    /// (byte for byte, so also in the same Unicode normalisation); any other spelling is
    /// `ENOENT`. Creating a name that differs only in case from an existing one still fails
    /// with `EEXIST` from the host: the guest sees a name that does not exist and cannot be
    /// created, which is the honest answer on such a volume. Costs one host call per LOOKUP
    /// on case-insensitive volumes only.
    #[default]
    Exact,
    /// Pass the host's answer through (libkrun's behaviour): case variants resolve.
    Host,
}

/// The backend's configuration. [`Config::new`] gives libkrun-compatible defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// The shared directory.
    pub root: PathBuf,
    /// The guest's architecture: four open flags differ between x86_64 and aarch64.
    pub guest_arch: GuestArch,
    /// Guest caching.
    pub cache: CachePolicy,
    /// Declare `WRITEBACK_CACHE` (the guest caches writes).
    pub writeback: bool,
    /// Serve extended attributes; without them every xattr request is `ENOSYS` (the guest stops
    /// asking). The override xattr is used either way.
    pub xattr: bool,
    /// How FSYNC reaches the disk ([`SyncMode::Full`]: `F_FULLFSYNC`).
    pub sync: SyncMode,
    /// Case-insensitive volumes.
    pub case: CasePolicy,
    /// Declare `POSIX_LOCKS` and serve GETLK/SETLK/SETLKW with host open-file-description
    /// locks.
    pub posix_locks: bool,
    /// Declare `FLOCK_LOCKS` and serve `flock(2)` with host `flock`.
    pub flock_locks: bool,
    /// How long the guest may cache an entry.
    pub entry_timeout: Duration,
    /// How long the guest may cache attributes.
    pub attr_timeout: Duration,
    /// Most host descriptors the guest can make the backend hold at once: open files and
    /// directories, their directory streams, lock descriptions, descriptors kept for unlinked
    /// inodes, and the Linux adapter's identity registry. Past it, the request that needs one
    /// more answers `ENFILE`. 0 (the default) means three quarters of the process's soft
    /// `RLIMIT_NOFILE` when the backend starts (at least [`Config::MIN_FDS`]; 768 if the limit
    /// is unknown or unlimited), as passthrough-linux's `max_open_fds`: the rest stays for the
    /// daemon itself (the vhost-user channel's descriptors).
    pub max_fds: usize,
    /// Most inodes the guest can hold at once (the root not counted); a LOOKUP (or creation)
    /// past it answers `ENFILE` until the guest FORGETs some. The default,
    /// [`Config::DEFAULT_MAX_INODES`], bounds the table to roughly 40 MiB.
    pub max_inodes: usize,
    /// Most directory streams the guest's directory handles keep open between READDIRs (each
    /// holds a fixed buffer: 4 KiB on Linux, libc's on macOS). A handle that finds them all
    /// taken still lists its directory, through a stream opened for each READDIR and read from
    /// the start to the offset (slower, no memory kept). The default,
    /// [`Config::DEFAULT_MAX_DIR_STREAMS`], bounds their memory to a few MiB whatever the
    /// descriptor budget; each stream is also a descriptor of [`Config::max_fds`].
    pub max_dir_streams: usize,
    /// Declare `SECURITY_CTX` and store the LSM label a guest kernel sends with a creation, as
    /// the extended attribute it names (only a `security.*` name, and only with
    /// [`Config::xattr`]; see `PassthroughFs`'s documentation). Off by default.
    pub security_label: bool,
}

impl Config {
    /// The default of [`Config::max_inodes`]: 2¹⁸ inodes.
    pub const DEFAULT_MAX_INODES: usize = 1 << 18;
    /// The default of [`Config::max_dir_streams`].
    pub const DEFAULT_MAX_DIR_STREAMS: usize = 1024;
    /// The smallest descriptor budget [`Config::max_fds`] derives from the process's limit.
    pub const MIN_FDS: usize = 64;

    /// Defaults for sharing `root`: the guest's architecture is this machine's, cache `Auto`,
    /// no writeback, xattrs on, `fsync`, exact-case lookups, no remote locks, 1 s timeouts,
    /// descriptors budgeted from `RLIMIT_NOFILE`, 2¹⁸ inodes, 1024 kept directory streams, no
    /// security labels.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            guest_arch: if cfg!(target_arch = "aarch64") {
                GuestArch::Aarch64
            } else {
                GuestArch::X86_64
            },
            cache: CachePolicy::Auto,
            writeback: false,
            xattr: true,
            sync: SyncMode::Fsync,
            case: CasePolicy::Exact,
            posix_locks: false,
            flock_locks: false,
            entry_timeout: Duration::from_secs(1),
            attr_timeout: Duration::from_secs(1),
            max_fds: 0,
            max_inodes: Config::DEFAULT_MAX_INODES,
            max_dir_streams: Config::DEFAULT_MAX_DIR_STREAMS,
            security_label: false,
        }
    }
}

/// The descriptor budget for `config` in a process whose soft `RLIMIT_NOFILE` is `nofile`
/// ([`Config::max_fds`]).
pub(crate) fn fd_budget(config: &Config, nofile: Option<u64>) -> usize {
    if config.max_fds != 0 {
        return config.max_fds;
    }
    let limit = nofile.and_then(|n| usize::try_from(n).ok()).unwrap_or(1024);
    (limit / 4).saturating_mul(3).max(Config::MIN_FDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_budget_is_three_quarters_of_the_limit() {
        let config = Config::new("/");
        assert_eq!(fd_budget(&config, Some(1024)), 768);
        assert_eq!(fd_budget(&config, Some(1 << 20)), 786_432);
        assert_eq!(fd_budget(&config, None), 768);
        assert_eq!(fd_budget(&config, Some(16)), Config::MIN_FDS);
        let fixed = Config {
            max_fds: 10,
            ..Config::new("/")
        };
        assert_eq!(fd_budget(&fixed, Some(1024)), 10);
    }
}
