//! What a backend declares it can honour. The server never puts a flag in the INIT reply that
//! is not declared here (and offered by the kernel, and allowed by the transport).

use fuse_abi::InitFlags;

/// A backend's declaration of the FUSE features it supports, and the obligations it meets.
///
/// Build it with [`Capabilities::new`] and the `with_*` methods; a flag not declared is never
/// negotiated. Flags with obligations carry an explicit second declaration, so that a flag
/// cannot be switched on by accident (the reason this project exists: a server advertised
/// ALLOW_IDMAP for a backend that could not honour it, and Linux 6.12+ refused the mount).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// INIT flags the backend can honour.
    pub flags: InitFlags,
    /// The backend handles uid/gid [`fuse_abi::INVALID_UIDGID`] on every request that does not
    /// create an inode (required, together with the flag, for ALLOW_IDMAP).
    pub handles_invalid_uidgid: bool,
    /// Largest WRITE the backend takes, in bytes (≥ 4096).
    pub max_write: u32,
    /// Largest request in pages the backend wants (MAX_PAGES), 1..=256 useful.
    pub max_pages: u16,
    /// Timestamp granularity of the backing store in nanoseconds (1..=1_000_000_000), or 0
    /// for "unknown".
    pub time_gran: u32,
}

impl Capabilities {
    /// A backend that declares nothing beyond the baseline protocol: no flags, 128 KiB writes.
    pub const fn new() -> Capabilities {
        Capabilities {
            flags: InitFlags::empty(),
            handles_invalid_uidgid: false,
            max_write: 128 * 1024,
            max_pages: 32,
            time_gran: 0,
        }
    }

    /// Declares more INIT flags.
    #[must_use]
    pub const fn with_flags(mut self, flags: InitFlags) -> Capabilities {
        self.flags = self.flags.union(flags);
        self
    }

    /// Declares that uid/gid 0xFFFFFFFF on non-creating requests are handled (ALLOW_IDMAP's
    /// obligation).
    #[must_use]
    pub const fn with_invalid_uidgid_handling(mut self) -> Capabilities {
        self.handles_invalid_uidgid = true;
        self
    }

    /// Sets the write size and the page count together (`max_write` ≤ `max_pages` × 4096).
    #[must_use]
    pub const fn with_max_write(mut self, max_write: u32, max_pages: u16) -> Capabilities {
        self.max_write = max_write;
        self.max_pages = max_pages;
        self
    }

    /// Sets the timestamp granularity.
    #[must_use]
    pub const fn with_time_gran(mut self, nanos: u32) -> Capabilities {
        self.time_gran = nanos;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::new()
    }
}
