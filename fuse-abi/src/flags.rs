//! Flag words of the protocol, as `bitflags` types with the kernel's names (without `FUSE_`).

use bitflags::bitflags;

bitflags! {
    /// The 64-bit FUSE_INIT flag word: bits 0..31 travel in `flags`, bits 32..63 in `flags2`,
    /// and `flags2` counts only when [`InitFlags::INIT_EXT`] is set in `flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    #[repr(transparent)]
    pub struct InitFlags: u64 {
        /// Several READs per file may run at once, readahead included.
        const ASYNC_READ = 1 << 0;
        /// The server implements POSIX byte-range locks.
        const POSIX_LOCKS = 1 << 1;
        /// Never implemented; never offered, never to be set.
        const FILE_OPS = 1 << 2;
        /// The server handles O_TRUNC inside OPEN.
        const ATOMIC_O_TRUNC = 1 << 3;
        /// The server can LOOKUP "." and "..".
        const EXPORT_SUPPORT = 1 << 4;
        /// Writes larger than 4 KiB (historic).
        const BIG_WRITES = 1 << 5;
        /// The kernel does not apply the umask; the server does.
        const DONT_MASK = 1 << 6;
        /// `/dev/fuse` accepts splice writes.
        const SPLICE_WRITE = 1 << 7;
        /// `/dev/fuse` can move pages on splice.
        const SPLICE_MOVE = 1 << 8;
        /// `/dev/fuse` supports splice reads.
        const SPLICE_READ = 1 << 9;
        /// The server implements BSD flock().
        const FLOCK_LOCKS = 1 << 10;
        /// The kernel forwards ioctls on directories.
        const HAS_IOCTL_DIR = 1 << 11;
        /// Cached pages are dropped when mtime or size change.
        const AUTO_INVAL_DATA = 1 << 12;
        /// The kernel uses READDIRPLUS.
        const DO_READDIRPLUS = 1 << 13;
        /// Adaptive READDIR/READDIRPLUS (only with DO_READDIRPLUS).
        const READDIRPLUS_AUTO = 1 << 14;
        /// Direct I/O may be submitted asynchronously.
        const ASYNC_DIO = 1 << 15;
        /// The kernel buffers writes and trusts its own mtime and size.
        const WRITEBACK_CACHE = 1 << 16;
        /// The kernel accepts ENOSYS on OPEN as "opens not needed".
        const NO_OPEN_SUPPORT = 1 << 17;
        /// Parallel LOOKUP/READDIR in one directory.
        const PARALLEL_DIROPS = 1 << 18;
        /// The server clears suid/sgid/caps on write, chown and truncate (v1 semantics).
        const HANDLE_KILLPRIV = 1 << 19;
        /// The server stores POSIX ACLs; implies `default_permissions`.
        const POSIX_ACL = 1 << 20;
        /// After an abort, reads return ECONNABORTED instead of ENODEV.
        const ABORT_ERROR = 1 << 21;
        /// `init_out.max_pages` is valid.
        const MAX_PAGES = 1 << 22;
        /// The kernel caches READLINK results.
        const CACHE_SYMLINKS = 1 << 23;
        /// The kernel accepts ENOSYS on OPENDIR as "not needed".
        const NO_OPENDIR_SUPPORT = 1 << 24;
        /// Drop cached data only on explicit notification.
        const EXPLICIT_INVAL_DATA = 1 << 25;
        /// `init_out.map_alignment` is valid (DAX).
        const MAP_ALIGNMENT = 1 << 26;
        /// The kernel auto-mounts directories marked FUSE_ATTR_SUBMOUNT (virtio-fs).
        const SUBMOUNTS = 1 << 27;
        /// The server clears suid/sgid/caps with VFS semantics (v2).
        const HANDLE_KILLPRIV_V2 = 1 << 28;
        /// The server understands the 16-byte `fuse_setxattr_in`.
        const SETXATTR_EXT = 1 << 29;
        /// `fuse_init_in` is the 64-byte form and `flags2` is valid.
        const INIT_EXT = 1 << 30;
        /// Reserved; never set.
        const INIT_RESERVED = 1 << 31;
        /// LSM security contexts on creation requests.
        const SECURITY_CTX = 1 << 32;
        /// Per-inode DAX (FUSE_ATTR_DAX).
        const HAS_INODE_DAX = 1 << 33;
        /// One supplementary group on creation requests.
        const CREATE_SUPP_GROUP = 1 << 34;
        /// NOTIFY_INVAL_ENTRY supports "expire only".
        const HAS_EXPIRE_ONLY = 1 << 35;
        /// Shared mmap of FOPEN_DIRECT_IO files (was DIRECT_IO_RELAX).
        const DIRECT_IO_ALLOW_MMAP = 1 << 36;
        /// File I/O passthrough to backing files (`/dev/fuse` only).
        const PASSTHROUGH = 1 << 37;
        /// Explicitly disable NFS export support.
        const NO_EXPORT_SUPPORT = 1 << 38;
        /// The kernel can resend pending requests.
        const HAS_RESEND = 1 << 39;
        /// Idmapped mounts; non-creating requests then carry uid/gid 0xFFFFFFFF.
        const ALLOW_IDMAP = 1 << 40;
        /// Requests over io_uring on `/dev/fuse`.
        const OVER_IO_URING = 1 << 41;
        /// `init_out.request_timeout` is valid.
        const REQUEST_TIMEOUT = 1 << 42;
        /// The kernel supports io_uring buffer pools.
        const HAS_IO_URING_BUFPOOL = 1 << 43;
    }
}

/// INIT_EXT as it appears in the low wire word.
const INIT_EXT_LOW: u32 = 1 << 30;
const _: () = assert!(InitFlags::INIT_EXT.bits() == INIT_EXT_LOW as u64);

impl InitFlags {
    /// Old name of [`InitFlags::DIRECT_IO_ALLOW_MMAP`].
    pub const DIRECT_IO_RELAX: InitFlags = InitFlags::DIRECT_IO_ALLOW_MMAP;

    /// Joins the two wire words. `flags2` counts only when `flags` has INIT_EXT, as in every
    /// kernel since 6.5 (and 6.1.y by backport). Undefined bits are kept, not dropped, so a
    /// caller can see what a peer really sent.
    pub const fn from_wire(flags: u32, flags2: u32) -> InitFlags {
        let high = if flags & INIT_EXT_LOW != 0 {
            flags2 as u64
        } else {
            0
        };
        InitFlags::from_bits_retain((flags as u64) | (high << 32))
    }

    /// Splits into the wire words `(flags, flags2)`. If any bit ≥ 32 is set, INIT_EXT is set
    /// in `flags` so the peer reads `flags2`; otherwise `flags2` is 0.
    pub const fn to_wire(self) -> (u32, u32) {
        let bits = self.bits();
        let [l0, l1, l2, l3, h0, h1, h2, h3] = bits.to_le_bytes();
        let high = u32::from_le_bytes([h0, h1, h2, h3]);
        let mut low = u32::from_le_bytes([l0, l1, l2, l3]);
        if high != 0 {
            low |= INIT_EXT_LOW;
        }
        (low, high)
    }

    /// The protocol minor that introduced each defined flag; `None` for undefined bits.
    pub const fn since_minor(self) -> Option<u32> {
        // Ordered by bit number; the table is the one in kernel-fuse.md §1.
        const MINORS: [u32; 44] = [
            6, 7, 9, 9, 10, 9, 12, 14, 14, 14, 17, 18, 20, 21, 21, 22, 23, 23, 25, 26, 26, 27, 28,
            28, 29, 30, 31, 32, 33, 33, 36, 36, 36, 36, 38, 38, 39, 40, 40, 40, 41, 42, 43, 46,
        ];
        let bits = self.bits();
        if bits.count_ones() != 1 {
            return None;
        }
        let bit = bits.trailing_zeros() as usize;
        if bit < MINORS.len() {
            // Clippy's indexing lint cannot see the bound check in a const fn.
            #[allow(clippy::indexing_slicing)]
            Some(MINORS[bit])
        } else {
            None
        }
    }
}

bitflags! {
    /// `fuse_open_in.open_flags` / `fuse_create_in.open_flags` (`FUSE_OPEN_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct OpenInFlags: u32 {
        /// Clear suid/sgid on open with O_TRUNC (HANDLE_KILLPRIV_V2).
        const KILL_SUIDGID = 1 << 0;
    }
}

bitflags! {
    /// `fuse_open_out.open_flags` (`FOPEN_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct OpenOutFlags: u32 {
        /// Bypass the page cache for this open file.
        const DIRECT_IO = 1 << 0;
        /// Do not invalidate cached data on open.
        const KEEP_CACHE = 1 << 1;
        /// The file is not seekable.
        const NONSEEKABLE = 1 << 2;
        /// Allow caching this directory.
        const CACHE_DIR = 1 << 3;
        /// The file is stream-like (no file position).
        const STREAM = 1 << 4;
        /// Do not send FLUSH on close.
        const NOFLUSH = 1 << 5;
        /// Allow concurrent direct writes on the same inode.
        const PARALLEL_DIRECT_WRITES = 1 << 6;
        /// Passthrough file I/O (`backing_id` valid).
        const PASSTHROUGH = 1 << 7;
    }
}

bitflags! {
    /// `fuse_setattr_in.valid` (`FATTR_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct SetattrValid: u32 {
        /// `mode` is set.
        const MODE = 1 << 0;
        /// `uid` is set.
        const UID = 1 << 1;
        /// `gid` is set.
        const GID = 1 << 2;
        /// `size` is set.
        const SIZE = 1 << 3;
        /// `atime` is set.
        const ATIME = 1 << 4;
        /// `mtime` is set.
        const MTIME = 1 << 5;
        /// `fh` is valid.
        const FH = 1 << 6;
        /// Set atime to now.
        const ATIME_NOW = 1 << 7;
        /// Set mtime to now.
        const MTIME_NOW = 1 << 8;
        /// `lock_owner` is valid.
        const LOCKOWNER = 1 << 9;
        /// `ctime` is set.
        const CTIME = 1 << 10;
        /// Clear suid/sgid (HANDLE_KILLPRIV_V2).
        const KILL_SUIDGID = 1 << 11;
    }
}

bitflags! {
    /// `fuse_attr.flags` (`FUSE_ATTR_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct AttrFlags: u32 {
        /// The directory is the root of a submount.
        const SUBMOUNT = 1 << 0;
        /// Use DAX for this inode.
        const DAX = 1 << 1;
    }
}

bitflags! {
    /// `fuse_getattr_in.getattr_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct GetattrFlags: u32 {
        /// `fh` is valid.
        const FH = 1 << 0;
    }
}

bitflags! {
    /// `fuse_release_in.release_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct ReleaseFlags: u32 {
        /// Flush before release.
        const FLUSH = 1 << 0;
        /// Drop the flock held through this handle.
        const FLOCK_UNLOCK = 1 << 1;
    }
}

bitflags! {
    /// `fuse_fsync_in.fsync_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct FsyncFlags: u32 {
        /// Only the data (fdatasync).
        const FDATASYNC = 1 << 0;
    }
}

bitflags! {
    /// `fuse_write_in.write_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct WriteFlags: u32 {
        /// A delayed write from the page cache (writeback).
        const CACHE = 1 << 0;
        /// `lock_owner` is valid.
        const LOCKOWNER = 1 << 1;
        /// Clear suid/sgid (and caps) after the write.
        const KILL_SUIDGID = 1 << 2;
    }
}

bitflags! {
    /// `fuse_read_in.read_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct ReadFlags: u32 {
        /// `lock_owner` is valid.
        const LOCKOWNER = 1 << 1;
    }
}

bitflags! {
    /// `fuse_lk_in.lk_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct LkFlags: u32 {
        /// A BSD flock rather than a POSIX lock.
        const FLOCK = 1 << 0;
    }
}

bitflags! {
    /// `fuse_ioctl_in.flags` and `fuse_ioctl_out.flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct IoctlFlags: u32 {
        /// A 32-bit compat ioctl on a 64-bit machine.
        const COMPAT = 1 << 0;
        /// Not restricted to well-formed ioctls (CUSE only).
        const UNRESTRICTED = 1 << 1;
        /// Retry with new iovecs.
        const RETRY = 1 << 2;
        /// 32-bit ioctl.
        const IOCTL_32BIT = 1 << 3;
        /// The ioctl is on a directory.
        const DIR = 1 << 4;
        /// x32 compat ioctl.
        const COMPAT_X32 = 1 << 5;
    }
}

bitflags! {
    /// `fuse_poll_in.flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct PollFlags: u32 {
        /// Send a NOTIFY_POLL when the handle becomes ready.
        const SCHEDULE_NOTIFY = 1 << 0;
    }
}

bitflags! {
    /// `fuse_setxattr_in.setxattr_flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct SetxattrFlags: u32 {
        /// Clear SGID when setting an ACL, as the kernel would.
        const ACL_KILL_SGID = 1 << 0;
    }
}

bitflags! {
    /// `fuse_notify_inval_entry_out.flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct NotifyInvalEntryFlags: u32 {
        /// Only expire the entry, do not drop it.
        const EXPIRE_ONLY = 1 << 0;
    }
}

bitflags! {
    /// `fuse_setupmapping_in.flags`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct SetupmappingFlags: u64 {
        /// Map writable.
        const WRITE = 1 << 0;
        /// Map readable.
        const READ = 1 << 1;
    }
}

bitflags! {
    /// RENAME2 flags (Linux `RENAME_*` values from `linux/fs.h`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[repr(transparent)]
    pub struct RenameFlags: u32 {
        /// Fail if the target exists.
        const NOREPLACE = 1 << 0;
        /// Atomically exchange source and target.
        const EXCHANGE = 1 << 1;
        /// Leave a whiteout at the source.
        const WHITEOUT = 1 << 2;
    }
}

/// Notification codes (`enum fuse_notify_code`), server → kernel with `unique` 0, `/dev/fuse`
/// only (virtio-fs has no notification queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum NotifyCode {
    /// `FUSE_NOTIFY_POLL`.
    Poll = 1,
    /// `FUSE_NOTIFY_INVAL_INODE`.
    InvalInode = 2,
    /// `FUSE_NOTIFY_INVAL_ENTRY`.
    InvalEntry = 3,
    /// `FUSE_NOTIFY_STORE`.
    Store = 4,
    /// `FUSE_NOTIFY_RETRIEVE`.
    Retrieve = 5,
    /// `FUSE_NOTIFY_DELETE`.
    Delete = 6,
    /// `FUSE_NOTIFY_RESEND` (7.40).
    Resend = 7,
    /// `FUSE_NOTIFY_INC_EPOCH` (7.44).
    IncEpoch = 8,
    /// `FUSE_NOTIFY_PRUNE` (7.45).
    Prune = 9,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_flags_define_44_bits() {
        assert_eq!(InitFlags::all().bits().count_ones(), 44);
        assert_eq!(InitFlags::all().bits(), (1u64 << 44) - 1);
    }

    #[test]
    fn from_wire_ignores_flags2_without_init_ext() {
        let joined = InitFlags::from_wire(InitFlags::ASYNC_READ.to_wire().0, 1 << 8);
        assert_eq!(joined, InitFlags::ASYNC_READ);
    }

    #[test]
    fn from_wire_reads_flags2_with_init_ext() {
        let low = (InitFlags::ASYNC_READ | InitFlags::INIT_EXT).to_wire().0;
        let joined = InitFlags::from_wire(low, 1 << 8);
        assert!(joined.contains(InitFlags::ALLOW_IDMAP));
    }

    #[test]
    fn to_wire_sets_init_ext_only_for_high_bits() {
        assert_eq!(InitFlags::ASYNC_READ.to_wire(), (1, 0));
        let (low, high) = InitFlags::ALLOW_IDMAP.to_wire();
        assert_eq!(low, INIT_EXT_LOW);
        assert_eq!(high, 1 << 8);
    }

    #[test]
    fn since_minor_matches_reference_table() {
        assert_eq!(InitFlags::WRITEBACK_CACHE.since_minor(), Some(23));
        assert_eq!(InitFlags::ALLOW_IDMAP.since_minor(), Some(41));
        assert_eq!(InitFlags::HAS_IO_URING_BUFPOOL.since_minor(), Some(46));
        assert_eq!(InitFlags::from_bits_retain(1 << 50).since_minor(), None);
    }
}
