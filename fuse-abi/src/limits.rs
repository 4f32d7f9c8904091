//! Kernel size limits that bound what a FUSE request or reply may carry.
//!
//! These are Linux's values (`include/uapi/linux/limits.h`, `fs/fuse/fuse_i.h`); a server uses
//! them to size buffers and to refuse requests the kernel itself would never send.

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
