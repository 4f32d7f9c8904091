//! FUSE_INIT negotiation as a pure function of (kernel offer, backend capabilities, transport
//! facts, configuration).
//!
//! [`negotiate`] computes the INIT reply. It holds the invariants of `DESIGN.md` ("FUSE_INIT
//! negotiation: the invariants") and the server invariants of `reference/kernel-fuse.md`:
//!
//! - the reply's flags (apart from the framing bit INIT_EXT) are a subset of what the kernel
//!   offered ∩ what the backend declared ∩ what the transport allows ∩ what the configuration
//!   permits; nothing is on by server default;
//! - INIT_EXT is set exactly when a bit ≥ 32 is set (and the kernel offered INIT_EXT, which is
//!   the only way it can offer such a bit);
//! - ALLOW_IDMAP needs `default_permissions` guaranteed (virtio-fs always; `/dev/fuse` with the
//!   mount option or POSIX_ACL in the same reply) and [`Capabilities::handles_invalid_uidgid`];
//! - POSIX_ACL needs DONT_MASK and SETXATTR_EXT ([`PosixAcl::Auto`] drops ACLs otherwise);
//! - MAP_ALIGNMENT needs a DAX window and an alignment ≤ 21; MAX_PAGES needs `max_pages` ≥ 1
//!   and chains of `max_pages + 4` descriptors; `max_write` is in 4096..=`max_pages` × 4096;
//! - PASSTHROUGH, OVER_IO_URING, REQUEST_TIMEOUT, HAS_IO_URING_BUFPOOL, FILE_OPS,
//!   INIT_RESERVED and undefined bits are never set;
//! - SECURITY_CTX / CREATE_SUPP_GROUP only at a negotiated minor ≥ 38 (the request-extension
//!   format the server parses; 7.36/7.37 kernels sent security contexts differently);
//! - WRITEBACK_CACHE ⇒ no HANDLE_KILLPRIV (v1); NO_OPEN_SUPPORT ⇒ no ATOMIC_O_TRUNC;
//!   READDIRPLUS_AUTO ⇒ DO_READDIRPLUS;
//! - minor = min(kernel minor, 46); kernels below [`MIN_KERNEL_MINOR`] are refused with a clear
//!   error; a kernel major above 7 gets our version only.
//!
//! # Protocol floor
//!
//! The server speaks 7.23 (Linux 3.15) and newer. From 7.23 on, every argument and reply layout
//! the server uses has its current size (see `fuse_abi::compat`), the INIT reply is 64 bytes,
//! and RENAME2 exists. An INIT from an older kernel gets [`NegotiationError::MinorTooOld`].

use fuse_abi::limits::{
    DAX_MAP_ALIGNMENT_MAX, DEFAULT_MAX_PAGES, PAGE_SIZE, VIRTIO_FS_HEADER_OVERHEAD, XATTR_SIZE_MAX,
};
use fuse_abi::{InitFlags, InitOut, U16, U32};

use crate::Capabilities;
use crate::types::Negotiated;

/// The protocol minor the server speaks.
pub const SERVER_MINOR: u32 = fuse_abi::KERNEL_MINOR_VERSION;
/// The oldest kernel protocol minor the server serves.
pub const MIN_KERNEL_MINOR: u32 = 23;
/// The minor that introduced the request-extension format (`total_extlen`) the server parses.
pub const EXTENSIONS_MINOR: u32 = 38;
/// Bytes of a request beyond its data: header, fixed argument and names or extensions, with
/// room to spare.
pub const REQUEST_OVERHEAD: u32 = 8192;

/// Flags the server never sets whatever the backend declares: the transport cannot honour them
/// (PASSTHROUGH needs backing-file ioctls, OVER_IO_URING a registered ring, REQUEST_TIMEOUT a
/// guaranteed answer time), or they are not flags at all.
pub const NEVER: InitFlags = InitFlags::PASSTHROUGH
    .union(InitFlags::OVER_IO_URING)
    .union(InitFlags::REQUEST_TIMEOUT)
    .union(InitFlags::HAS_IO_URING_BUFPOOL)
    .union(InitFlags::FILE_OPS)
    .union(InitFlags::INIT_RESERVED);

/// What a kernel offered in FUSE_INIT, parsed from any `fuse_init_in` payload of 8 bytes or more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffer {
    /// Protocol major.
    pub major: u32,
    /// Protocol minor.
    pub minor: u32,
    /// The kernel's readahead (0 for payloads without it).
    pub max_readahead: u32,
    /// The offered flags; `flags2` counted only with INIT_EXT and a payload of ≥ 20 bytes.
    /// Undefined bits are kept as sent.
    pub flags: InitFlags,
}

impl KernelOffer {
    /// Parses an INIT payload (after the in-header). Trailing bytes are ignored; a short
    /// payload reads as zero-filled.
    ///
    /// # Errors
    ///
    /// [`NegotiationError::Truncated`] below 8 bytes.
    pub fn parse(payload: &[u8]) -> Result<KernelOffer, NegotiationError> {
        let word = |i: usize| -> Option<u32> {
            let bytes = payload.get(i..i.checked_add(4)?)?;
            Some(u32::from_le_bytes(bytes.try_into().ok()?))
        };
        let (Some(major), Some(minor)) = (word(0), word(4)) else {
            return Err(NegotiationError::Truncated { len: payload.len() });
        };
        let flags = word(12).unwrap_or(0);
        let flags2 = word(16).unwrap_or(0);
        Ok(KernelOffer {
            major,
            minor,
            max_readahead: word(8).unwrap_or(0),
            flags: InitFlags::from_wire(flags, flags2),
        })
    }
}

/// Which channel the requests come over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// virtio-fs: `default_permissions` is always on; no splice, no notifications.
    VirtioFs,
    /// The host kernel's `/dev/fuse`.
    DevFuse,
}

/// What the transport guarantees or limits. Negotiation never accepts a flag the transport
/// cannot honour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportFacts {
    /// The channel.
    pub kind: TransportKind,
    /// `/dev/fuse` only: the mount has `default_permissions` (virtio-fs always has it).
    pub default_permissions: bool,
    /// virtio-fs only: a DAX window (shared-memory region 0) exists.
    pub dax_window: bool,
    /// log2 of the alignment DAX mappings need (the host page shift, 12 for 4 KiB pages).
    pub map_alignment: u16,
    /// The longest descriptor chain the device accepts (virtio: the queue size); a request
    /// with `n` data pages needs `n + 4`.
    pub max_chain_len: u32,
    /// The largest request message the transport can receive, in bytes (`/dev/fuse`: the read
    /// buffer size; virtio-fs: `u32::MAX`).
    pub max_request_size: u32,
}

impl TransportFacts {
    /// virtio-fs with request queues of `queue_size` descriptors, no DAX window.
    pub const fn virtio_fs(queue_size: u16) -> TransportFacts {
        TransportFacts {
            kind: TransportKind::VirtioFs,
            default_permissions: true,
            dax_window: false,
            map_alignment: 12,
            max_chain_len: queue_size as u32,
            max_request_size: u32::MAX,
        }
    }

    /// `/dev/fuse`, reading requests into buffers of `buffer_size` bytes.
    pub const fn dev_fuse(default_permissions: bool, buffer_size: u32) -> TransportFacts {
        TransportFacts {
            kind: TransportKind::DevFuse,
            default_permissions,
            dax_window: false,
            map_alignment: 12,
            max_chain_len: u32::MAX,
            max_request_size: buffer_size,
        }
    }

    /// Adds a DAX window whose mappings need `2^map_alignment` alignment (virtio-fs only).
    #[must_use]
    pub const fn with_dax_window(mut self, map_alignment: u16) -> TransportFacts {
        self.dax_window = true;
        self.map_alignment = map_alignment;
        self
    }

    /// Whether the kernel applies `default_permissions` whatever the reply says.
    pub const fn guarantees_default_permissions(&self) -> bool {
        match self.kind {
            TransportKind::VirtioFs => true,
            TransportKind::DevFuse => self.default_permissions,
        }
    }

    /// The flags this transport can honour at all.
    pub fn allowed_flags(&self) -> InitFlags {
        let mut allowed = InitFlags::all().difference(NEVER);
        let dax = self.dax_window && self.kind == TransportKind::VirtioFs;
        if !dax {
            allowed.remove(InitFlags::MAP_ALIGNMENT | InitFlags::HAS_INODE_DAX);
        }
        // The server never splices, and virtio-fs has no notification queue.
        allowed.remove(InitFlags::SPLICE_READ | InitFlags::SPLICE_WRITE | InitFlags::SPLICE_MOVE);
        match self.kind {
            TransportKind::VirtioFs => {
                allowed.remove(InitFlags::HAS_RESEND | InitFlags::HAS_EXPIRE_ONLY);
            }
            TransportKind::DevFuse => allowed.remove(InitFlags::SUBMOUNTS),
        }
        allowed
    }
}

impl Default for TransportFacts {
    fn default() -> Self {
        TransportFacts::virtio_fs(1024)
    }
}

/// POSIX ACL policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PosixAcl {
    /// Never negotiate POSIX_ACL.
    Never,
    /// Negotiate it when the kernel, the backend and the transport allow it together with its
    /// companions DONT_MASK and SETXATTR_EXT; otherwise go without ACLs.
    #[default]
    Auto,
    /// Require it: an INIT that cannot get POSIX_ACL (with DONT_MASK and SETXATTR_EXT) fails.
    Always,
}

/// READDIRPLUS policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Readdirplus {
    /// Plain READDIR only.
    Never,
    /// DO_READDIRPLUS with READDIRPLUS_AUTO (the kernel chooses).
    #[default]
    Auto,
    /// DO_READDIRPLUS without READDIRPLUS_AUTO.
    Always,
}

/// Cache policy, as far as it touches negotiation (timeouts and FOPEN flags are the backend's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CachePolicy {
    /// No kernel-side caching features: no WRITEBACK_CACHE, no CACHE_SYMLINKS.
    Never,
    /// Whatever the backend declared.
    #[default]
    Auto,
    /// Whatever the backend declared (the backend uses long timeouts and KEEP_CACHE).
    Always,
}

/// The operator's choices. They can only remove flags, never add one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiationConfig {
    /// POSIX ACLs.
    pub posix_acl: PosixAcl,
    /// Allow WRITEBACK_CACHE (if declared and offered).
    pub writeback_cache: bool,
    /// READDIRPLUS.
    pub readdirplus: Readdirplus,
    /// Cache policy.
    pub cache: CachePolicy,
    /// Upper bound for `max_pages` (on top of the backend's and the transport's).
    pub max_pages: u16,
    /// `max_background` for the reply (0: the kernel default, 12).
    pub max_background: u16,
    /// `congestion_threshold` for the reply (0: the kernel default, 9).
    pub congestion_threshold: u16,
    /// Upper bound for `max_readahead` (the kernel's offer is the other bound).
    pub max_readahead: u32,
}

impl Default for NegotiationConfig {
    fn default() -> Self {
        NegotiationConfig {
            posix_acl: PosixAcl::Auto,
            writeback_cache: false,
            readdirplus: Readdirplus::Auto,
            cache: CachePolicy::Auto,
            max_pages: 256,
            max_background: 0,
            congestion_threshold: 0,
            max_readahead: u32::MAX,
        }
    }
}

/// Why an INIT cannot be accepted. The server answers with [`NegotiationError::errno`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The INIT payload is shorter than 8 bytes.
    #[error("FUSE_INIT payload of {len} bytes is shorter than 8")]
    Truncated {
        /// Payload length.
        len: usize,
    },
    /// A protocol major below 7.
    #[error("kernel speaks FUSE {major}.x; this server needs 7.{MIN_KERNEL_MINOR} or newer")]
    MajorTooOld {
        /// The kernel's major.
        major: u32,
    },
    /// A kernel older than the server's floor.
    #[error(
        "kernel speaks FUSE 7.{minor}; this server needs 7.{MIN_KERNEL_MINOR} (Linux 3.15) or newer"
    )]
    MinorTooOld {
        /// The kernel's minor.
        minor: u32,
    },
    /// `posix_acl = always`, but POSIX_ACL with DONT_MASK and SETXATTR_EXT is not possible.
    #[error(
        "posix_acl=always, but POSIX_ACL+DONT_MASK+SETXATTR_EXT is not available (missing: {missing:?})"
    )]
    PosixAclUnavailable {
        /// Which of the three flags the kernel did not offer, the backend did not declare or
        /// the transport does not allow.
        missing: InitFlags,
    },
    /// The transport cannot take a request with 4096 bytes of data.
    #[error(
        "transport takes requests of at most {max_request_size} bytes, too small for 4 KiB writes"
    )]
    TransportTooSmall {
        /// The transport's limit.
        max_request_size: u32,
    },
}

impl NegotiationError {
    /// The errno the INIT reply carries (the kernel then fails the connection).
    pub const fn errno(&self) -> fuse_abi::Errno {
        match self {
            NegotiationError::Truncated { .. } => fuse_abi::Errno::EINVAL,
            NegotiationError::PosixAclUnavailable { .. }
            | NegotiationError::TransportTooSmall { .. } => fuse_abi::Errno::EOPNOTSUPP,
            NegotiationError::MajorTooOld { .. } | NegotiationError::MinorTooOld { .. } => {
                fuse_abi::Errno::EPROTO
            }
        }
    }
}

/// A successful negotiation: the reply and the settings in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiation {
    /// The reply payload; only the first [`reply_len`](Self::reply_len) bytes are sent.
    pub out: InitOut,
    /// `compat::init_out_size(minor)`.
    pub reply_len: usize,
    /// What the backend is told.
    pub negotiated: Negotiated,
    /// Pages per request in force: the reply's `max_pages` with MAX_PAGES, 32 without.
    pub max_pages: u16,
}

impl Negotiation {
    /// The largest request the kernel may send under this negotiation, in bytes.
    pub fn max_request_len(&self) -> u32 {
        let data = u32::from(self.max_pages)
            .saturating_mul(PAGE_SIZE)
            .max(self.negotiated.max_write)
            // SETXATTR carries up to XATTR_SIZE_MAX bytes of value.
            .max(u32::try_from(XATTR_SIZE_MAX).unwrap_or(u32::MAX));
        data.saturating_add(REQUEST_OVERHEAD)
    }
}

/// The outcome of an INIT that is not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitReply {
    /// The connection is set up with these settings.
    Accepted(Negotiation),
    /// The kernel's major is above 7: reply with our version only (`major` 7, `minor` 46,
    /// everything else zero, [`reply_len`](Self::reply_len) bytes) and wait for another INIT.
    VersionOnly(InitOut),
}

impl InitReply {
    /// The reply payload's length in bytes.
    pub fn reply_len(&self) -> usize {
        match self {
            InitReply::Accepted(n) => n.reply_len,
            InitReply::VersionOnly(_) => fuse_abi::compat::init_out_size(SERVER_MINOR),
        }
    }

    /// The reply payload.
    pub fn out(&self) -> &InitOut {
        match self {
            InitReply::Accepted(n) => &n.out,
            InitReply::VersionOnly(out) => out,
        }
    }
}

/// Computes the INIT reply. Pure: same inputs, same reply.
///
/// # Errors
///
/// See [`NegotiationError`]: an old protocol, `posix_acl = always` that cannot be met, a
/// transport too small for 4 KiB writes.
pub fn negotiate(
    kernel: &KernelOffer,
    caps: &Capabilities,
    transport: &TransportFacts,
    config: &NegotiationConfig,
) -> Result<InitReply, NegotiationError> {
    if kernel.major > fuse_abi::KERNEL_VERSION {
        let out = InitOut {
            major: U32::new(fuse_abi::KERNEL_VERSION),
            minor: U32::new(SERVER_MINOR),
            ..InitOut::default()
        };
        return Ok(InitReply::VersionOnly(out));
    }
    if kernel.major < fuse_abi::KERNEL_VERSION {
        return Err(NegotiationError::MajorTooOld {
            major: kernel.major,
        });
    }
    if kernel.minor < MIN_KERNEL_MINOR {
        return Err(NegotiationError::MinorTooOld {
            minor: kernel.minor,
        });
    }
    let minor = kernel.minor.min(SERVER_MINOR);

    // Rule 2: offered ∩ declared ∩ transport-allowed. INIT_EXT is framing, set by `to_wire`.
    let available = kernel
        .flags
        .intersection(caps.flags)
        .intersection(transport.allowed_flags())
        .difference(InitFlags::INIT_EXT);
    let mut flags = available;

    // Flags whose request format the parser needs a minimum minor for.
    if minor < EXTENSIONS_MINOR {
        flags.remove(InitFlags::SECURITY_CTX | InitFlags::CREATE_SUPP_GROUP);
    }

    // Configuration: it only removes.
    if config.cache == CachePolicy::Never {
        flags.remove(InitFlags::WRITEBACK_CACHE | InitFlags::CACHE_SYMLINKS);
    }
    if !config.writeback_cache {
        flags.remove(InitFlags::WRITEBACK_CACHE);
    }
    match config.readdirplus {
        Readdirplus::Never => {
            flags.remove(InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO);
        }
        Readdirplus::Always => flags.remove(InitFlags::READDIRPLUS_AUTO),
        Readdirplus::Auto => {}
    }

    // Rule 5: POSIX_ACL needs DONT_MASK and SETXATTR_EXT.
    let acl_set = InitFlags::POSIX_ACL | InitFlags::DONT_MASK | InitFlags::SETXATTR_EXT;
    match config.posix_acl {
        PosixAcl::Never => flags.remove(InitFlags::POSIX_ACL),
        PosixAcl::Auto => {
            if !flags.contains(acl_set) {
                flags.remove(InitFlags::POSIX_ACL);
            }
        }
        PosixAcl::Always => {
            if !flags.contains(acl_set) {
                return Err(NegotiationError::PosixAclUnavailable {
                    missing: acl_set.difference(flags),
                });
            }
        }
    }

    // Rule 4: ALLOW_IDMAP needs default_permissions and the backend's uid/gid obligation.
    let default_permissions =
        transport.guarantees_default_permissions() || flags.contains(InitFlags::POSIX_ACL);
    if !(default_permissions && caps.handles_invalid_uidgid) {
        flags.remove(InitFlags::ALLOW_IDMAP);
    }

    // Rule 9: combinations the kernel (or the backend) cannot honour together.
    if flags.contains(InitFlags::WRITEBACK_CACHE) {
        flags.remove(InitFlags::HANDLE_KILLPRIV);
    }
    if flags.contains(InitFlags::NO_OPEN_SUPPORT) {
        flags.remove(InitFlags::ATOMIC_O_TRUNC);
    }
    if !flags.contains(InitFlags::DO_READDIRPLUS) {
        flags.remove(InitFlags::READDIRPLUS_AUTO);
    }

    // Rule 6: DAX alignment.
    let mut map_alignment = 0;
    if flags.contains(InitFlags::MAP_ALIGNMENT) {
        if transport.dax_window && transport.map_alignment <= DAX_MAP_ALIGNMENT_MAX {
            map_alignment = transport.map_alignment;
        } else {
            flags.remove(InitFlags::MAP_ALIGNMENT);
        }
    }

    // Rule 6: pages and write size.
    let chain_pages = transport
        .max_chain_len
        .saturating_sub(VIRTIO_FS_HEADER_OVERHEAD);
    let buffer_pages = transport.max_request_size.saturating_sub(REQUEST_OVERHEAD) / PAGE_SIZE;
    let page_limit = u32::from(caps.max_pages.min(config.max_pages))
        .min(chain_pages)
        .min(buffer_pages);
    let mut max_pages = 0u16;
    if flags.contains(InitFlags::MAX_PAGES) {
        match u16::try_from(page_limit) {
            Ok(0) => flags.remove(InitFlags::MAX_PAGES),
            Ok(pages) => max_pages = pages,
            Err(_) => max_pages = u16::MAX,
        }
    }
    let pages_in_force = if flags.contains(InitFlags::MAX_PAGES) {
        max_pages
    } else {
        DEFAULT_MAX_PAGES
    };
    let write_limit = u32::from(pages_in_force)
        .saturating_mul(PAGE_SIZE)
        .min(transport.max_request_size.saturating_sub(REQUEST_OVERHEAD));
    if write_limit < PAGE_SIZE {
        return Err(NegotiationError::TransportTooSmall {
            max_request_size: transport.max_request_size,
        });
    }
    let max_write = caps.max_write.clamp(PAGE_SIZE, write_limit);

    let time_gran = if (1..=1_000_000_000).contains(&caps.time_gran) {
        caps.time_gran
    } else {
        0
    };

    let (wire_flags, wire_flags2) = flags.to_wire();
    let out = InitOut {
        major: U32::new(fuse_abi::KERNEL_VERSION),
        minor: U32::new(minor),
        max_readahead: U32::new(kernel.max_readahead.min(config.max_readahead)),
        flags: U32::new(wire_flags),
        max_background: U16::new(config.max_background),
        congestion_threshold: U16::new(config.congestion_threshold),
        max_write: U32::new(max_write),
        time_gran: U32::new(time_gran),
        max_pages: U16::new(max_pages),
        map_alignment: U16::new(map_alignment),
        flags2: U32::new(wire_flags2),
        ..InitOut::default()
    };
    Ok(InitReply::Accepted(Negotiation {
        out,
        reply_len: fuse_abi::compat::init_out_size(minor),
        negotiated: Negotiated {
            minor,
            flags: InitFlags::from_wire(wire_flags, wire_flags2),
            max_write,
        },
        max_pages: pages_in_force,
    }))
}

#[cfg(test)]
mod tests;
