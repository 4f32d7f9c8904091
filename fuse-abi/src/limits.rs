//! Kernel limits that bound what a FUSE request or reply may carry.
//!
//! These are Linux's values (`include/uapi/linux/limits.h`, `include/linux/fs.h`,
//! `fs/fuse/fuse_i.h`, `fs/fuse/virtio_fs.c`, `linux/fuse.h`); a server uses them to size
//! buffers and to refuse requests the kernel itself would never send. They live here and
//! nowhere else: the crates above take them from this module, and keep only their own *policy*
//! limits (budgets, buffer sizes with room to spare).

/// `PATH_MAX`: the longest path, NUL included; bounds READLINK replies and symlink targets.
pub const PATH_MAX: usize = 4096;

/// `NAME_MAX`: the longest file name a Linux filesystem accepts, without NUL.
pub const NAME_MAX: usize = 255;

/// `FUSE_NAME_MAX`: the longest name the kernel accepts in a FUSE directory entry (it checks
/// names against this, not [`NAME_MAX`]).
pub const FUSE_NAME_MAX: usize = 1024;

/// `XATTR_NAME_MAX`: the longest extended attribute name, without NUL.
pub const XATTR_NAME_MAX: usize = 255;

/// `XATTR_SIZE_MAX`: the largest extended attribute value (and the largest GETXATTR/LISTXATTR
/// buffer the kernel asks for).
pub const XATTR_SIZE_MAX: usize = 65536;

/// `XATTR_LIST_MAX`: the largest LISTXATTR name list.
pub const XATTR_LIST_MAX: usize = 65536;

/// `OFFSET_MAX`: the largest file offset, and a lock's `end` for "to the end of file" (the
/// kernel rejects a GETLK reply with a larger `end`).
pub const OFFSET_MAX: u64 = i64::MAX.unsigned_abs();

/// The page size the kernel counts `max_pages` in, and the least `max_write` it uses.
pub const PAGE_SIZE: u32 = 4096;

/// `FUSE_DEFAULT_MAX_PAGES_PER_REQ`: pages per request when the INIT reply does not set
/// MAX_PAGES.
pub const DEFAULT_MAX_PAGES: u16 = 32;

/// `FUSE_HEADER_OVERHEAD` of the virtio-fs driver: the descriptors of a request beyond its data
/// pages (in header, in arguments, out header, out arguments), so a queue of size N carries at
/// most N − 4 pages per request.
pub const VIRTIO_FS_HEADER_OVERHEAD: u32 = 4;

/// `FUSE_MIN_READ_BUFFER`: the smallest buffer a `/dev/fuse` reader may pass to `read()`.
pub const MIN_READ_BUFFER: usize = 8192;

/// `FUSE_IOCTL_MAX_IOV`: the most iovecs an ioctl reply may name.
pub const IOCTL_MAX_IOV: usize = 256;

/// `CUSE_INIT_INFO_MAX`: the largest CUSE device-info string.
pub const CUSE_INIT_INFO_MAX: usize = 4096;

/// The fixed alignment of DAX mappings, as log2 (2 MiB chunks): the kernel fails a connection
/// whose `map_alignment` is larger while a DAX window is active.
pub const DAX_MAP_ALIGNMENT_MAX: u16 = 21;
