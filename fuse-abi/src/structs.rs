//! Every `struct fuse_*` of `linux/fuse.h` (7.46), in the header's order of topics.

// zerocopy's derives emit hidden helper types; through `wire_struct!`'s spans they trip this
// lint. Every wire struct itself derives `Debug` (the macro guarantees it).
#![allow(missing_debug_implementations)]

use crate::{I32, I64, U16, U32, U64};

// ---------------------------------------------------------------------------------------------
// Headers.

wire_struct! {
    /// Starts every request. `len` counts the header, the arguments and any request extensions
    /// (`total_extlen` × 8 bytes at the end).
    "fuse_in_header" InHeader = 40 {
        len: U32,
        opcode: U32,
        unique: U64,
        nodeid: U64,
        uid: U32,
        gid: U32,
        pid: U32,
        /// Length of the request extensions in 8-byte units (7.38+).
        total_extlen: U16,
        padding: U16,
    }
}

wire_struct! {
    /// Starts every reply. `error` is 0 or a negative errno above −512; `len` must equal the
    /// bytes written (and, on virtio-fs 7.1+, the used length).
    "fuse_out_header" OutHeader = 16 {
        len: U32,
        error: I32,
        unique: U64,
    }
}

/// The first 16 bytes of a [`InHeader`] (`len`, `opcode`, `unique`): what a transport reads to
/// route a request and match its reply, and the least a request must carry to be answered (a
/// reply names the request by `unique`). Not a kernel struct: the kernel has no name for it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
    zerocopy::Unaligned,
)]
#[repr(C)]
pub struct InHeaderPrefix {
    /// `fuse_in_header.len`.
    pub len: U32,
    /// `fuse_in_header.opcode`.
    pub opcode: U32,
    /// `fuse_in_header.unique`.
    pub unique: U64,
}
const _: () = assert!(core::mem::size_of::<InHeaderPrefix>() == 16);
const _: () =
    assert!(core::mem::offset_of!(InHeaderPrefix, len) == core::mem::offset_of!(InHeader, len));
const _: () = assert!(
    core::mem::offset_of!(InHeaderPrefix, opcode) == core::mem::offset_of!(InHeader, opcode)
);
const _: () = assert!(
    core::mem::offset_of!(InHeaderPrefix, unique) == core::mem::offset_of!(InHeader, unique)
);

// ---------------------------------------------------------------------------------------------
// Attributes and entries.

wire_struct! {
    /// File attributes as the kernel caches them.
    "fuse_attr" Attr = 88 {
        ino: U64,
        size: U64,
        blocks: U64,
        atime: U64,
        mtime: U64,
        ctime: U64,
        atimensec: U32,
        mtimensec: U32,
        ctimensec: U32,
        mode: U32,
        nlink: U32,
        uid: U32,
        gid: U32,
        rdev: U32,
        blksize: U32,
        /// [`AttrFlags`](crate::AttrFlags).
        flags: U32,
    }
}

wire_struct! {
    /// A timestamp inside [`Statx`].
    "fuse_sx_time" SxTime = 16 {
        tv_sec: I64,
        tv_nsec: U32,
        reserved: I32,
    }
}

wire_struct! {
    /// Extended attributes for STATX (7.39).
    "fuse_statx" Statx = 256 {
        mask: U32,
        blksize: U32,
        attributes: U64,
        nlink: U32,
        uid: U32,
        gid: U32,
        mode: U16,
        spare0: [U16; 1],
        ino: U64,
        size: U64,
        blocks: U64,
        attributes_mask: U64,
        atime: SxTime,
        btime: SxTime,
        ctime: SxTime,
        mtime: SxTime,
        rdev_major: U32,
        rdev_minor: U32,
        dev_major: U32,
        dev_minor: U32,
        spare2: [U64; 14],
    }
}

wire_struct! {
    /// Filesystem statistics.
    "fuse_kstatfs" Kstatfs = 80 {
        blocks: U64,
        bfree: U64,
        bavail: U64,
        files: U64,
        ffree: U64,
        bsize: U32,
        namelen: U32,
        frsize: U32,
        padding: U32,
        spare: [U32; 6],
    }
}

wire_struct! {
    /// A POSIX lock range.
    "fuse_file_lock" FileLock = 24 {
        start: U64,
        end: U64,
        /// `F_RDLCK`, `F_WRLCK` or `F_UNLCK` (Linux values 0, 1, 2).
        typ: U32,
        /// The owning process (tgid).
        pid: U32,
    }
}

wire_struct! {
    /// Reply to LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK, TMPFILE.
    "fuse_entry_out" EntryOut = 128 {
        nodeid: U64,
        generation: U64,
        entry_valid: U64,
        attr_valid: U64,
        entry_valid_nsec: U32,
        attr_valid_nsec: U32,
        attr: Attr,
    }
}

wire_struct! {
    /// FORGET argument.
    "fuse_forget_in" ForgetIn = 8 {
        nlookup: U64,
    }
}

wire_struct! {
    /// One element of a BATCH_FORGET.
    "fuse_forget_one" ForgetOne = 16 {
        nodeid: U64,
        nlookup: U64,
    }
}

wire_struct! {
    /// BATCH_FORGET argument; `count` [`ForgetOne`] follow.
    "fuse_batch_forget_in" BatchForgetIn = 8 {
        count: U32,
        dummy: U32,
    }
}

wire_struct! {
    /// GETATTR argument (7.9+).
    "fuse_getattr_in" GetattrIn = 16 {
        /// [`GetattrFlags`](crate::GetattrFlags).
        getattr_flags: U32,
        dummy: U32,
        fh: U64,
    }
}

wire_struct! {
    /// Reply to GETATTR and SETATTR.
    "fuse_attr_out" AttrOut = 104 {
        attr_valid: U64,
        attr_valid_nsec: U32,
        dummy: U32,
        attr: Attr,
    }
}

wire_struct! {
    /// STATX argument (7.39).
    "fuse_statx_in" StatxIn = 24 {
        getattr_flags: U32,
        reserved: U32,
        fh: U64,
        sx_flags: U32,
        sx_mask: U32,
    }
}

wire_struct! {
    /// Reply to STATX (7.39).
    "fuse_statx_out" StatxOut = 288 {
        attr_valid: U64,
        attr_valid_nsec: U32,
        flags: U32,
        spare: [U64; 2],
        stat: Statx,
    }
}

// ---------------------------------------------------------------------------------------------
// Creating, renaming and linking.

wire_struct! {
    /// MKNOD argument, followed by the name (16 bytes since 7.12, 8 before).
    "fuse_mknod_in" MknodIn = 16 {
        mode: U32,
        rdev: U32,
        umask: U32,
        padding: U32,
    }
}

wire_struct! {
    /// MKDIR argument, followed by the name.
    "fuse_mkdir_in" MkdirIn = 8 {
        mode: U32,
        umask: U32,
    }
}

wire_struct! {
    /// RENAME argument, followed by the old and the new name.
    "fuse_rename_in" RenameIn = 8 {
        newdir: U64,
    }
}

wire_struct! {
    /// RENAME2 argument, followed by the old and the new name.
    "fuse_rename2_in" Rename2In = 16 {
        newdir: U64,
        /// [`RenameFlags`](crate::RenameFlags).
        flags: U32,
        padding: U32,
    }
}

wire_struct! {
    /// LINK argument, followed by the new name.
    "fuse_link_in" LinkIn = 8 {
        oldnodeid: U64,
    }
}

wire_struct! {
    /// SETATTR argument; `valid` ([`SetattrValid`](crate::SetattrValid)) says which fields count.
    "fuse_setattr_in" SetattrIn = 88 {
        valid: U32,
        padding: U32,
        fh: U64,
        size: U64,
        lock_owner: U64,
        atime: U64,
        mtime: U64,
        ctime: U64,
        atimensec: U32,
        mtimensec: U32,
        ctimensec: U32,
        mode: U32,
        unused4: U32,
        uid: U32,
        gid: U32,
        unused5: U32,
    }
}

// ---------------------------------------------------------------------------------------------
// Open files.

wire_struct! {
    /// OPEN and OPENDIR argument.
    "fuse_open_in" OpenIn = 8 {
        /// The open(2) flags in Linux numbering.
        flags: U32,
        /// [`OpenInFlags`](crate::OpenInFlags).
        open_flags: U32,
    }
}

wire_struct! {
    /// CREATE (and TMPFILE) argument, followed by the name (16 bytes since 7.12).
    "fuse_create_in" CreateIn = 16 {
        flags: U32,
        mode: U32,
        umask: U32,
        open_flags: U32,
    }
}

wire_struct! {
    /// Reply to OPEN and OPENDIR; CREATE replies with [`EntryOut`] then this.
    "fuse_open_out" OpenOut = 16 {
        fh: U64,
        /// [`OpenOutFlags`](crate::OpenOutFlags).
        open_flags: U32,
        /// Passthrough backing id (7.40; `padding` before).
        backing_id: I32,
    }
}

wire_struct! {
    /// RELEASE and RELEASEDIR argument.
    "fuse_release_in" ReleaseIn = 24 {
        fh: U64,
        flags: U32,
        /// [`ReleaseFlags`](crate::ReleaseFlags).
        release_flags: U32,
        lock_owner: U64,
    }
}

wire_struct! {
    /// FLUSH argument.
    "fuse_flush_in" FlushIn = 24 {
        fh: U64,
        unused: U32,
        padding: U32,
        lock_owner: U64,
    }
}

wire_struct! {
    /// READ, READDIR and READDIRPLUS argument.
    "fuse_read_in" ReadIn = 40 {
        fh: U64,
        offset: U64,
        size: U32,
        /// [`ReadFlags`](crate::ReadFlags).
        read_flags: U32,
        lock_owner: U64,
        flags: U32,
        padding: U32,
    }
}

wire_struct! {
    /// WRITE argument, followed by the data (40 bytes since 7.9, 24 before).
    "fuse_write_in" WriteIn = 40 {
        fh: U64,
        offset: U64,
        size: U32,
        /// [`WriteFlags`](crate::WriteFlags).
        write_flags: U32,
        lock_owner: U64,
        flags: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Reply to WRITE, and to COPY_FILE_RANGE (the 32-bit opcode).
    "fuse_write_out" WriteOut = 8 {
        size: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Reply to STATFS.
    "fuse_statfs_out" StatfsOut = 80 {
        st: Kstatfs,
    }
}

wire_struct! {
    /// FSYNC and FSYNCDIR argument.
    "fuse_fsync_in" FsyncIn = 16 {
        fh: U64,
        /// [`FsyncFlags`](crate::FsyncFlags).
        fsync_flags: U32,
        padding: U32,
    }
}

// ---------------------------------------------------------------------------------------------
// Extended attributes.

wire_struct! {
    /// SETXATTR argument with SETXATTR_EXT (7.33), followed by the name and the value.
    "fuse_setxattr_in" SetxattrIn = 16 {
        size: U32,
        /// `XATTR_CREATE` (1) or `XATTR_REPLACE` (2).
        flags: U32,
        /// [`SetxattrFlags`](crate::SetxattrFlags).
        setxattr_flags: U32,
        padding: U32,
    }
}

/// SETXATTR argument without SETXATTR_EXT: the first 8 bytes of [`SetxattrIn`]
/// (`FUSE_COMPAT_SETXATTR_IN_SIZE`). Not a C struct of its own.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
    zerocopy::Unaligned,
)]
#[repr(C)]
pub struct SetxattrInCompat {
    /// Size of the value.
    pub size: U32,
    /// `XATTR_CREATE` (1) or `XATTR_REPLACE` (2).
    pub flags: U32,
}
const _: () = assert!(core::mem::size_of::<SetxattrInCompat>() == 8);

wire_struct! {
    /// GETXATTR and LISTXATTR argument; GETXATTR is followed by the name.
    "fuse_getxattr_in" GetxattrIn = 8 {
        size: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Reply to GETXATTR and LISTXATTR when the request's `size` was 0.
    "fuse_getxattr_out" GetxattrOut = 8 {
        size: U32,
        padding: U32,
    }
}

// ---------------------------------------------------------------------------------------------
// Locks, access, init.

wire_struct! {
    /// GETLK, SETLK and SETLKW argument.
    "fuse_lk_in" LkIn = 48 {
        fh: U64,
        owner: U64,
        lk: FileLock,
        /// [`LkFlags`](crate::LkFlags).
        lk_flags: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Reply to GETLK.
    "fuse_lk_out" LkOut = 24 {
        lk: FileLock,
    }
}

wire_struct! {
    /// ACCESS argument.
    "fuse_access_in" AccessIn = 8 {
        mask: U32,
        padding: U32,
    }
}

wire_struct! {
    /// FUSE_INIT argument (64 bytes since 7.36; 16 bytes for 7.6..7.35, 8 before). Parse any
    /// payload of at least 8 bytes, zero-filled.
    "fuse_init_in" InitIn = 64 {
        major: U32,
        minor: U32,
        max_readahead: U32,
        flags: U32,
        /// Bits 32..63 of [`InitFlags`](crate::InitFlags); valid only with INIT_EXT.
        flags2: U32,
        unused: [U32; 11],
    }
}

wire_struct! {
    /// FUSE_INIT reply (64 bytes since 7.23; see [`compat::init_out_size`](crate::compat)).
    "fuse_init_out" InitOut = 64 {
        major: U32,
        minor: U32,
        max_readahead: U32,
        flags: U32,
        max_background: U16,
        congestion_threshold: U16,
        max_write: U32,
        time_gran: U32,
        max_pages: U16,
        map_alignment: U16,
        flags2: U32,
        max_stack_depth: U32,
        request_timeout: U16,
        unused: [U16; 11],
    }
}

wire_struct! {
    /// CUSE_INIT argument.
    "cuse_init_in" CuseInitIn = 16 {
        major: U32,
        minor: U32,
        unused: U32,
        flags: U32,
    }
}

wire_struct! {
    /// CUSE_INIT reply.
    "cuse_init_out" CuseInitOut = 72 {
        major: U32,
        minor: U32,
        unused: U32,
        flags: U32,
        max_read: U32,
        max_write: U32,
        dev_major: U32,
        dev_minor: U32,
        spare: [U32; 10],
    }
}

wire_struct! {
    /// INTERRUPT argument (never sent on virtio-fs).
    "fuse_interrupt_in" InterruptIn = 8 {
        unique: U64,
    }
}

wire_struct! {
    /// BMAP argument.
    "fuse_bmap_in" BmapIn = 16 {
        block: U64,
        blocksize: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Reply to BMAP.
    "fuse_bmap_out" BmapOut = 8 {
        block: U64,
    }
}

// ---------------------------------------------------------------------------------------------
// ioctl and poll.

wire_struct! {
    /// IOCTL argument, followed by `in_size` bytes of input.
    "fuse_ioctl_in" IoctlIn = 32 {
        fh: U64,
        /// [`IoctlFlags`](crate::IoctlFlags).
        flags: U32,
        cmd: U32,
        arg: U64,
        in_size: U32,
        out_size: U32,
    }
}

wire_struct! {
    /// One iovec of an unrestricted ioctl retry.
    "fuse_ioctl_iovec" IoctlIovec = 16 {
        base: U64,
        len: U64,
    }
}

wire_struct! {
    /// Reply to IOCTL.
    "fuse_ioctl_out" IoctlOut = 16 {
        result: I32,
        flags: U32,
        in_iovs: U32,
        out_iovs: U32,
    }
}

wire_struct! {
    /// POLL argument.
    "fuse_poll_in" PollIn = 24 {
        fh: U64,
        kh: U64,
        /// [`PollFlags`](crate::PollFlags).
        flags: U32,
        events: U32,
    }
}

wire_struct! {
    /// Reply to POLL.
    "fuse_poll_out" PollOut = 8 {
        revents: U32,
        padding: U32,
    }
}

wire_struct! {
    /// NOTIFY_POLL payload.
    "fuse_notify_poll_wakeup_out" NotifyPollWakeupOut = 8 {
        kh: U64,
    }
}

wire_struct! {
    /// FALLOCATE argument.
    "fuse_fallocate_in" FallocateIn = 32 {
        fh: U64,
        offset: U64,
        length: U64,
        /// fallocate(2) mode bits, Linux values.
        mode: U32,
        padding: U32,
    }
}

// ---------------------------------------------------------------------------------------------
// Directory entries.

wire_struct! {
    /// Fixed part of a READDIR entry; `namelen` name bytes follow, then zero padding to a
    /// multiple of 8 (see [`dirent`](crate::dirent)).
    "fuse_dirent" Dirent = 24 {
        ino: U64,
        off: U64,
        namelen: U32,
        /// The `DT_*` type, which is the file type bits of the mode shifted right by 12.
        typ: U32,
    }
}

wire_struct! {
    /// Fixed part of a READDIRPLUS entry; the name and padding follow as for [`Dirent`].
    "fuse_direntplus" Direntplus = 152 {
        entry_out: EntryOut,
        dirent: Dirent,
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications (server → kernel, /dev/fuse only).

wire_struct! {
    /// NOTIFY_INVAL_INODE payload.
    "fuse_notify_inval_inode_out" NotifyInvalInodeOut = 24 {
        ino: U64,
        off: I64,
        len: I64,
    }
}

wire_struct! {
    /// NOTIFY_INVAL_ENTRY payload, followed by the name and a NUL.
    "fuse_notify_inval_entry_out" NotifyInvalEntryOut = 16 {
        parent: U64,
        namelen: U32,
        /// [`NotifyInvalEntryFlags`](crate::NotifyInvalEntryFlags).
        flags: U32,
    }
}

wire_struct! {
    /// NOTIFY_DELETE payload, followed by the name and a NUL.
    "fuse_notify_delete_out" NotifyDeleteOut = 24 {
        parent: U64,
        child: U64,
        namelen: U32,
        padding: U32,
    }
}

wire_struct! {
    /// NOTIFY_STORE payload, followed by the data.
    "fuse_notify_store_out" NotifyStoreOut = 24 {
        nodeid: U64,
        offset: U64,
        size: U32,
        padding: U32,
    }
}

wire_struct! {
    /// NOTIFY_RETRIEVE payload.
    "fuse_notify_retrieve_out" NotifyRetrieveOut = 32 {
        notify_unique: U64,
        nodeid: U64,
        offset: U64,
        size: U32,
        padding: U32,
    }
}

wire_struct! {
    /// The NOTIFY_REPLY request argument that answers a retrieve, followed by the data.
    "fuse_notify_retrieve_in" NotifyRetrieveIn = 40 {
        dummy1: U64,
        offset: U64,
        size: U32,
        dummy2: U32,
        dummy3: U64,
        dummy4: U64,
    }
}

wire_struct! {
    /// NOTIFY_PRUNE payload (7.45), followed by `count` node ids.
    "fuse_notify_prune_out" NotifyPruneOut = 16 {
        count: U32,
        padding: U32,
        spare: U64,
    }
}

wire_struct! {
    /// Argument of the `FUSE_DEV_IOC_BACKING_OPEN` ioctl (7.40, passthrough).
    "fuse_backing_map" BackingMap = 16 {
        fd: I32,
        flags: U32,
        padding: U64,
    }
}

// ---------------------------------------------------------------------------------------------
// lseek, copy_file_range, DAX mappings, syncfs.

wire_struct! {
    /// LSEEK argument.
    "fuse_lseek_in" LseekIn = 24 {
        fh: U64,
        offset: U64,
        /// `SEEK_SET`..`SEEK_HOLE`, Linux values (0..4).
        whence: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Reply to LSEEK.
    "fuse_lseek_out" LseekOut = 8 {
        offset: U64,
    }
}

wire_struct! {
    /// COPY_FILE_RANGE and COPY_FILE_RANGE_64 argument.
    "fuse_copy_file_range_in" CopyFileRangeIn = 56 {
        fh_in: U64,
        off_in: U64,
        nodeid_out: U64,
        fh_out: U64,
        off_out: U64,
        len: U64,
        flags: U64,
    }
}

wire_struct! {
    /// Reply to COPY_FILE_RANGE_64 (7.45).
    "fuse_copy_file_range_out" CopyFileRangeOut = 8 {
        bytes_copied: U64,
    }
}

wire_struct! {
    /// SETUPMAPPING argument (virtio-fs DAX).
    "fuse_setupmapping_in" SetupmappingIn = 40 {
        /// 0xFFFF_FFFF_FFFF_FFFF from Linux: the kernel passes no open handle.
        fh: U64,
        foffset: U64,
        len: U64,
        /// [`SetupmappingFlags`](crate::SetupmappingFlags).
        flags: U64,
        moffset: U64,
    }
}

wire_struct! {
    /// REMOVEMAPPING argument: 4 bytes, **not padded**; `count` [`RemovemappingOne`] follow.
    "fuse_removemapping_in" RemovemappingIn = 4 {
        count: U32,
    }
}

wire_struct! {
    /// One range of a REMOVEMAPPING.
    "fuse_removemapping_one" RemovemappingOne = 16 {
        moffset: U64,
        len: U64,
    }
}

wire_struct! {
    /// SYNCFS argument.
    "fuse_syncfs_in" SyncfsIn = 8 {
        padding: U64,
    }
}

// ---------------------------------------------------------------------------------------------
// Request extensions (7.36+): security contexts and supplementary groups.

wire_struct! {
    /// Header of one security context; the NUL-terminated name and the context follow,
    /// padded to 8 bytes.
    "fuse_secctx" Secctx = 8 {
        size: U32,
        padding: U32,
    }
}

wire_struct! {
    /// Starts the security-context extension; `nr_secctx` [`Secctx`] entries follow.
    "fuse_secctx_header" SecctxHeader = 8 {
        size: U32,
        nr_secctx: U32,
    }
}

wire_struct! {
    /// Header of each request extension; `size` counts this header and is a multiple of 8.
    "fuse_ext_header" ExtHeader = 8 {
        size: U32,
        /// 0..=31: security context; 32: [`ext::EXT_GROUPS`](crate::ext::EXT_GROUPS).
        typ: U32,
    }
}

wire_struct! {
    /// The supplementary-groups extension: `nr_groups` u32 gids follow.
    "fuse_supp_groups" SuppGroups = 4 {
        nr_groups: U32,
    }
}

// ---------------------------------------------------------------------------------------------
// io_uring transport (7.42); described for completeness, never used over virtio-fs.

wire_struct! {
    /// Per-entry ring metadata.
    "fuse_uring_ent_in_out" UringEntInOut = 32 {
        flags: U64,
        commit_id: U64,
        payload_sz: U32,
        /// Offset into the buffer pool, if pools are used (7.46; `padding` before).
        offset: U32,
        reserved: U64,
    }
}

/// The kernel's `struct fuse_uring_req_header` (288 bytes): a request header area, an
/// opcode-specific area and [`UringEntInOut`].
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
    zerocopy::Unaligned,
)]
#[repr(C)]
pub struct UringReqHeader {
    /// `fuse_uring_req_header.in_out`: the in or out header.
    pub in_out: [u8; crate::URING_IN_OUT_HEADER_SZ],
    /// `fuse_uring_req_header.op_in`: the opcode's fixed argument.
    pub op_in: [u8; crate::URING_OP_IN_OUT_SZ],
    /// `fuse_uring_req_header.ring_ent_in_out`.
    pub ring_ent_in_out: UringEntInOut,
}
const _: () = assert!(core::mem::size_of::<UringReqHeader>() == 288);

wire_struct! {
    /// The io_uring command payload.
    "fuse_uring_cmd_req" UringCmdReq = 40 {
        flags: U64,
        commit_id: U64,
        qid: U16,
        padding: [u8; 6],
        /// The anonymous union of 7.46: the buffer pool (`bufpool`), or, in its first two
        /// bytes, `ent_zero_copy_buf_index` for zero-copy registrations.
        bufpool: UringBufpool,
    }
}

wire_struct! {
    /// The `bufpool` member of [`UringCmdReq`]'s union (7.46), an unnamed struct in C.
    "fuse_uring_cmd_req.bufpool" UringBufpool = 16 {
        uaddr: U64,
        len: U32,
        reserved: U32,
    }
}
