//! The sizes the kernel uses for a negotiated protocol minor (`kernel-fuse.md` §3).
//!
//! The kernel believes the minor of the INIT reply and picks these sizes from it, on both
//! transports. A server must encode replies and decode arguments with the same sizes.

use core::mem::size_of;

use crate::{AttrOut, CreateIn, EntryOut, GetattrIn, InitIn, InitOut, MknodIn, StatfsOut, WriteIn};

/// `FUSE_COMPAT_ENTRY_OUT_SIZE`: [`EntryOut`] before 7.9.
pub const ENTRY_OUT_SIZE_7_8: usize = 120;
/// `FUSE_COMPAT_ATTR_OUT_SIZE`: [`AttrOut`] before 7.9.
pub const ATTR_OUT_SIZE_7_8: usize = 96;
/// `FUSE_COMPAT_WRITE_IN_SIZE`: [`WriteIn`] before 7.9.
pub const WRITE_IN_SIZE_7_8: usize = 24;
/// `FUSE_COMPAT_MKNOD_IN_SIZE`: [`MknodIn`] before 7.12.
pub const MKNOD_IN_SIZE_7_11: usize = 8;
/// `FUSE_COMPAT_STATFS_SIZE`: [`StatfsOut`] before 7.4.
pub const STATFS_OUT_SIZE_7_3: usize = 48;
/// `FUSE_COMPAT_INIT_OUT_SIZE`: [`InitOut`] before 7.5.
pub const INIT_OUT_SIZE_7_4: usize = 8;
/// `FUSE_COMPAT_22_INIT_OUT_SIZE`: [`InitOut`] for 7.5..=7.22.
pub const INIT_OUT_SIZE_7_22: usize = 24;
/// `FUSE_COMPAT_SETXATTR_IN_SIZE`: [`SetxattrIn`](crate::SetxattrIn) without SETXATTR_EXT.
pub const SETXATTR_IN_SIZE_COMPAT: usize = 8;

/// The size of the entry reply (LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK, TMPFILE).
pub const fn entry_out_size(minor: u32) -> usize {
    if minor < 9 {
        ENTRY_OUT_SIZE_7_8
    } else {
        size_of::<EntryOut>()
    }
}

/// The size of the attribute reply (GETATTR, SETATTR).
pub const fn attr_out_size(minor: u32) -> usize {
    if minor < 9 {
        ATTR_OUT_SIZE_7_8
    } else {
        size_of::<AttrOut>()
    }
}

/// The size of the WRITE argument.
pub const fn write_in_size(minor: u32) -> usize {
    if minor < 9 {
        WRITE_IN_SIZE_7_8
    } else {
        size_of::<WriteIn>()
    }
}

/// The size of the MKNOD argument.
pub const fn mknod_in_size(minor: u32) -> usize {
    if minor < 12 {
        MKNOD_IN_SIZE_7_11
    } else {
        size_of::<MknodIn>()
    }
}

/// The size of the CREATE argument: an 8-byte `fuse_open_in` before 7.12.
pub const fn create_in_size(minor: u32) -> usize {
    if minor < 12 {
        size_of::<crate::OpenIn>()
    } else {
        size_of::<CreateIn>()
    }
}

/// The size of the GETATTR argument: none before 7.9.
pub const fn getattr_in_size(minor: u32) -> usize {
    if minor < 9 { 0 } else { size_of::<GetattrIn>() }
}

/// The size of the STATFS reply.
pub const fn statfs_out_size(minor: u32) -> usize {
    if minor < 4 {
        STATFS_OUT_SIZE_7_3
    } else {
        size_of::<StatfsOut>()
    }
}

/// The size of the SETXATTR argument, 16 bytes with SETXATTR_EXT in force, 8 otherwise.
pub const fn setxattr_in_size(setxattr_ext: bool) -> usize {
    if setxattr_ext {
        size_of::<crate::SetxattrIn>()
    } else {
        SETXATTR_IN_SIZE_COMPAT
    }
}

/// The size of the INIT reply a server sends for a negotiated minor.
pub const fn init_out_size(minor: u32) -> usize {
    if minor < 5 {
        INIT_OUT_SIZE_7_4
    } else if minor < 23 {
        INIT_OUT_SIZE_7_22
    } else {
        size_of::<InitOut>()
    }
}

/// The size of the INIT argument a kernel of this minor sends.
pub const fn init_in_size(kernel_minor: u32) -> usize {
    if kernel_minor < 6 {
        8
    } else if kernel_minor < 36 {
        16
    } else {
        size_of::<InitIn>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_kernel_thresholds() {
        assert_eq!((entry_out_size(8), entry_out_size(9)), (120, 128));
        assert_eq!((attr_out_size(8), attr_out_size(9)), (96, 104));
        assert_eq!((write_in_size(8), write_in_size(9)), (24, 40));
        assert_eq!((mknod_in_size(11), mknod_in_size(12)), (8, 16));
        assert_eq!((create_in_size(11), create_in_size(12)), (8, 16));
        assert_eq!((statfs_out_size(3), statfs_out_size(4)), (48, 80));
        assert_eq!((init_out_size(4), init_out_size(5)), (8, 24));
        assert_eq!((init_out_size(22), init_out_size(23)), (24, 64));
        assert_eq!(
            (init_in_size(5), init_in_size(35), init_in_size(36)),
            (8, 16, 64)
        );
    }
}
