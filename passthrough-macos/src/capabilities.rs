//! The FUSE features the macOS backend declares: exactly what it honours (reference/macos.md
//! §3).
//!
//! Never declared, whatever the options:
//!
//! * `POSIX_ACL` (and its companions `DONT_MASK`, `SETXATTR_EXT`): macOS stores
//!   `system.posix_acl_*` as opaque blobs; the server would have to keep the mode in sync with
//!   the access ACL and apply default ACLs on create itself. Not done, so not declared.
//! * `ALLOW_IDMAP`: Linux 6.12+ refuses the connection when it comes without
//!   `default_permissions` (which `POSIX_ACL` implies) — the libkrun bug (#568) this project
//!   exists to avoid. The uid/gid obligation is not declared either.
//! * `EXPORT_SUPPORT` (no file handles on macOS); `NO_EXPORT_SUPPORT` is declared instead.
//! * `HANDLE_KILLPRIV` (v1), `CREATE_SUPP_GROUP`, `HAS_IOCTL_DIR`,
//!   `NO_OPEN_SUPPORT`/`NO_OPENDIR_SUPPORT`, `CACHE_SYMLINKS`, DAX (`MAP_ALIGNMENT`,
//!   `HAS_INODE_DAX`), `PASSTHROUGH`, splice: not implemented.
//!
//! Always declared: `ASYNC_READ`, `ATOMIC_O_TRUNC` (open honours `O_TRUNC`), `BIG_WRITES`,
//! `MAX_PAGES`, `AUTO_INVAL_DATA`, `ASYNC_DIO`, `PARALLEL_DIROPS` (the backend is `Sync`),
//! `SUBMOUNTS` (a host mount point inside the share is another `st_dev`), `NO_EXPORT_SUPPORT`.
//!
//! Declared only when the options say so: `WRITEBACK_CACHE` (configured by the operator),
//! `DO_READDIRPLUS`/`READDIRPLUS_AUTO`, `POSIX_LOCKS`, `FLOCK_LOCKS`, `HANDLE_KILLPRIV_V2`
//! (each once the backend implements it) and `SECURITY_CTX` (labels configured, with xattrs). The server still intersects this with the kernel's
//! offer, the transport and its own configuration.

use fuse_abi::InitFlags;
use fuse_server::Capabilities;

/// The backend's choices that change what it declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapabilityOptions {
    /// The operator enabled the guest's writeback cache.
    pub writeback_cache: bool,
    /// The backend answers READDIRPLUS.
    pub readdirplus: bool,
    /// The backend implements remote POSIX locks (GETLK/SETLK/SETLKW through `fcntl`).
    pub posix_locks: bool,
    /// The backend implements remote `flock(2)` locks.
    pub flock_locks: bool,
    /// The backend clears set-uid/set-gid (in the override) on write, truncate and chown when
    /// the request asks (`HANDLE_KILLPRIV_V2`).
    pub killpriv_v2: bool,
    /// The backend stores the LSM label sent with a creation (`SECURITY_CTX`).
    pub security_ctx: bool,
    /// The host filesystem's timestamp granularity in nanoseconds (see [`time_gran`]); 0 for
    /// unknown.
    pub time_gran: u32,
}

/// The largest WRITE the backend takes: 1 MiB, as libkrun.
pub const MAX_WRITE: u32 = 1024 * 1024;
/// `MAX_WRITE` in 4 KiB pages.
pub const MAX_PAGES: u16 = 256;

/// Flags the backend never declares.
pub const NEVER: InitFlags = InitFlags::POSIX_ACL
    .union(InitFlags::ALLOW_IDMAP)
    .union(InitFlags::DONT_MASK)
    .union(InitFlags::SETXATTR_EXT)
    .union(InitFlags::EXPORT_SUPPORT)
    .union(InitFlags::HANDLE_KILLPRIV)
    .union(InitFlags::CREATE_SUPP_GROUP)
    .union(InitFlags::HAS_IOCTL_DIR)
    .union(InitFlags::NO_OPEN_SUPPORT)
    .union(InitFlags::NO_OPENDIR_SUPPORT)
    .union(InitFlags::CACHE_SYMLINKS)
    .union(InitFlags::MAP_ALIGNMENT)
    .union(InitFlags::HAS_INODE_DAX)
    .union(InitFlags::PASSTHROUGH)
    .union(InitFlags::SPLICE_READ)
    .union(InitFlags::SPLICE_WRITE)
    .union(InitFlags::SPLICE_MOVE);

/// Flags the backend always declares.
pub const ALWAYS: InitFlags = InitFlags::ASYNC_READ
    .union(InitFlags::ATOMIC_O_TRUNC)
    .union(InitFlags::BIG_WRITES)
    .union(InitFlags::MAX_PAGES)
    .union(InitFlags::AUTO_INVAL_DATA)
    .union(InitFlags::ASYNC_DIO)
    .union(InitFlags::PARALLEL_DIROPS)
    .union(InitFlags::SUBMOUNTS)
    .union(InitFlags::NO_EXPORT_SUPPORT);

const _: () = assert!(ALWAYS.intersection(NEVER).is_empty());

/// What the macOS backend declares for these options.
pub const fn capabilities(options: &CapabilityOptions) -> Capabilities {
    let mut flags = ALWAYS;
    if options.writeback_cache {
        flags = flags.union(InitFlags::WRITEBACK_CACHE);
    }
    if options.readdirplus {
        flags = flags
            .union(InitFlags::DO_READDIRPLUS)
            .union(InitFlags::READDIRPLUS_AUTO);
    }
    if options.posix_locks {
        flags = flags.union(InitFlags::POSIX_LOCKS);
    }
    if options.flock_locks {
        flags = flags.union(InitFlags::FLOCK_LOCKS);
    }
    if options.killpriv_v2 {
        flags = flags.union(InitFlags::HANDLE_KILLPRIV_V2);
    }
    if options.security_ctx {
        flags = flags.union(InitFlags::SECURITY_CTX);
    }
    Capabilities::new()
        .with_flags(flags.difference(NEVER))
        .with_max_write(MAX_WRITE, MAX_PAGES)
        .with_time_gran(options.time_gran)
}

/// The timestamp granularity of a host filesystem, in nanoseconds, from its `f_fstypename`
/// (reference/macos.md §4): APFS 1 ns, HFS+ 1 s, exFAT 10 ms, FAT 2 s (reported as 1 s, the
/// largest value FUSE takes); 0 (unknown) for anything else (network filesystems, FSKit...).
pub fn time_gran(fstypename: &str) -> u32 {
    match fstypename {
        "apfs" => 1,
        "hfs" => 1_000_000_000,
        "exfat" => 10_000_000,
        "msdos" => 1_000_000_000,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use fuse_server::negotiate::{
        InitReply, KernelOffer, NegotiationConfig, NegotiationError, PosixAcl, TransportFacts,
        negotiate,
    };

    use super::*;

    /// Every combination of the boolean options.
    fn all_options() -> impl Iterator<Item = CapabilityOptions> {
        (0u32..64).flat_map(|bits| {
            [0, 1, 1_000_000_000].map(move |time_gran| CapabilityOptions {
                writeback_cache: bits & 1 != 0,
                readdirplus: bits & 2 != 0,
                posix_locks: bits & 4 != 0,
                flock_locks: bits & 8 != 0,
                killpriv_v2: bits & 16 != 0,
                security_ctx: bits & 32 != 0,
                time_gran,
            })
        })
    }

    #[test]
    fn never_posix_acl_nor_idmap() {
        for options in all_options() {
            let caps = capabilities(&options);
            assert!(!caps.flags.contains(InitFlags::POSIX_ACL), "{options:?}");
            assert!(!caps.flags.contains(InitFlags::ALLOW_IDMAP), "{options:?}");
            assert!(!caps.handles_invalid_uidgid, "{options:?}");
            assert!(caps.flags.intersection(NEVER).is_empty(), "{options:?}");
            assert!(caps.flags.contains(ALWAYS), "{options:?}");
        }
    }

    #[test]
    fn options_add_exactly_their_flags() {
        let base = capabilities(&CapabilityOptions::default());
        assert_eq!(base.flags, ALWAYS);
        assert!(base.flags.contains(InitFlags::SUBMOUNTS));
        assert!(!base.flags.contains(InitFlags::WRITEBACK_CACHE));
        assert_eq!((base.max_write, base.max_pages), (MAX_WRITE, MAX_PAGES));
        let rows = [
            (
                CapabilityOptions {
                    writeback_cache: true,
                    ..CapabilityOptions::default()
                },
                InitFlags::WRITEBACK_CACHE,
            ),
            (
                CapabilityOptions {
                    readdirplus: true,
                    ..CapabilityOptions::default()
                },
                InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO,
            ),
            (
                CapabilityOptions {
                    posix_locks: true,
                    ..CapabilityOptions::default()
                },
                InitFlags::POSIX_LOCKS,
            ),
            (
                CapabilityOptions {
                    flock_locks: true,
                    ..CapabilityOptions::default()
                },
                InitFlags::FLOCK_LOCKS,
            ),
            (
                CapabilityOptions {
                    killpriv_v2: true,
                    ..CapabilityOptions::default()
                },
                InitFlags::HANDLE_KILLPRIV_V2,
            ),
            (
                CapabilityOptions {
                    security_ctx: true,
                    ..CapabilityOptions::default()
                },
                InitFlags::SECURITY_CTX,
            ),
        ];
        for (options, extra) in rows {
            assert_eq!(capabilities(&options).flags, ALWAYS | extra, "{options:?}");
        }
        let gran = CapabilityOptions {
            time_gran: 10_000_000,
            ..CapabilityOptions::default()
        };
        assert_eq!(capabilities(&gran).time_gran, 10_000_000);
    }

    /// Through the server's negotiation: a kernel offering everything, on virtio-fs and on
    /// /dev/fuse with default_permissions, never gets POSIX_ACL or ALLOW_IDMAP, and a
    /// configuration demanding ACLs fails instead of lying.
    #[test]
    fn negotiation_never_yields_acl_or_idmap() {
        let kernel = KernelOffer {
            major: 7,
            minor: 46,
            max_readahead: 128 * 1024,
            flags: InitFlags::all(),
        };
        let transports = [
            TransportFacts::virtio_fs(1024),
            TransportFacts::dev_fuse(true, 1 << 20),
            TransportFacts::dev_fuse(false, 1 << 20),
        ];
        for options in all_options() {
            let caps = capabilities(&options);
            for transport in &transports {
                for posix_acl in [PosixAcl::Never, PosixAcl::Auto] {
                    let config = NegotiationConfig {
                        posix_acl,
                        writeback_cache: true,
                        ..NegotiationConfig::default()
                    };
                    let Ok(InitReply::Accepted(n)) = negotiate(&kernel, &caps, transport, &config)
                    else {
                        panic!("INIT refused for {options:?}");
                    };
                    let flags = n.negotiated.flags;
                    assert!(!flags.contains(InitFlags::POSIX_ACL), "{options:?}");
                    assert!(!flags.contains(InitFlags::ALLOW_IDMAP), "{options:?}");
                    assert_eq!(
                        flags.contains(InitFlags::WRITEBACK_CACHE),
                        options.writeback_cache
                    );
                }
                let always = NegotiationConfig {
                    posix_acl: PosixAcl::Always,
                    ..NegotiationConfig::default()
                };
                assert!(matches!(
                    negotiate(&kernel, &caps, transport, &always),
                    Err(NegotiationError::PosixAclUnavailable { .. })
                ));
            }
        }
    }

    #[test]
    fn time_granularity_by_filesystem() {
        assert_eq!(time_gran("apfs"), 1);
        assert_eq!(time_gran("hfs"), 1_000_000_000);
        assert_eq!(time_gran("exfat"), 10_000_000);
        assert_eq!(time_gran("msdos"), 1_000_000_000);
        assert_eq!(time_gran("smbfs"), 0);
        assert_eq!(time_gran(""), 0);
    }
}
