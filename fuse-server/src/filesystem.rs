//! The contract between the server and a backend.

use std::ffi::CStr;

use fuse_abi::{Errno, OpenInFlags, RenameFlags, SetxattrFlags, WriteFlags};

use crate::capabilities::Capabilities;
use crate::io::{ZeroCopyReader, ZeroCopyWriter};
use crate::types::*;

/// The result type of every backend operation: a value, or a Linux errno for the guest.
pub type FsResult<T> = Result<T, Errno>;

/// A FUSE backend: one method per operation.
///
/// Every method takes `&self` and may be called from several worker threads at once. Default
/// bodies answer ENOSYS, which the kernel treats as "not supported" (and stops sending several
/// optional operations). Arguments are validated by the server: names are [`Name`]s, node ids
/// are whatever the backend handed out (the backend must still reject unknown ones with
/// ESTALE or EBADF), SETATTR is decoded into [`SetAttr`].
///
/// Node id [`fuse_abi::ROOT_ID`] is the root directory and exists from `init` on.
#[allow(unused_variables)]
pub trait FileSystem: Send + Sync {
    /// What this backend can honour. Called once per FUSE_INIT, before negotiation.
    fn capabilities(&self) -> Capabilities;

    /// A FUSE_INIT was negotiated. Resets all per-connection state (a guest reboot sends a
    /// second INIT without DESTROY): every node id but the root and every handle is dropped.
    ///
    /// # Errors
    ///
    /// Any errno fails the INIT (the guest's mount then fails).
    fn init(&self, negotiated: &Negotiated) -> FsResult<()> {
        Ok(())
    }

    /// The connection is going away (FUSE_DESTROY, device reset): release all state.
    fn destroy(&self) {}

    /// LOOKUP: finds `name` in directory `parent`; takes one lookup reference on success.
    fn lookup(&self, ctx: &Context, parent: u64, name: Name<'_>) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// FORGET: drops `nlookup` lookup references. No reply.
    fn forget(&self, ctx: &Context, nodeid: u64, nlookup: u64) {}

    /// BATCH_FORGET: several forgets. No reply.
    fn batch_forget(&self, ctx: &Context, forgets: &mut dyn Iterator<Item = (u64, u64)>) {
        for (nodeid, nlookup) in forgets {
            self.forget(ctx, nodeid, nlookup);
        }
    }

    /// GETATTR, optionally through an open handle.
    fn getattr(&self, ctx: &Context, nodeid: u64, fh: Option<u64>) -> FsResult<AttrReply> {
        Err(Errno::ENOSYS)
    }

    /// SETATTR: applies the fields that are set.
    fn setattr(&self, ctx: &Context, nodeid: u64, attr: &SetAttr) -> FsResult<AttrReply> {
        Err(Errno::ENOSYS)
    }

    /// STATX (7.39): `flags` are `AT_STATX_*`/`AT_*` sync flags, `mask` the `STATX_*` wanted.
    fn statx(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: Option<u64>,
        flags: u32,
        mask: u32,
    ) -> FsResult<StatxReply> {
        Err(Errno::ENOSYS)
    }

    /// READLINK: copies the target into `buf` (PATH_MAX bytes) and returns its length.
    fn readlink(&self, ctx: &Context, nodeid: u64, buf: &mut [u8]) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// SYMLINK: creates `name` in `parent` pointing at `target` (never followed on the host).
    fn symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// MKNOD: regular file, FIFO, socket, character or block device.
    fn mknod(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// MKDIR.
    fn mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        mode: u32,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// UNLINK.
    fn unlink(&self, ctx: &Context, parent: u64, name: Name<'_>) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RMDIR.
    fn rmdir(&self, ctx: &Context, parent: u64, name: Name<'_>) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RENAME and RENAME2 (flags empty for RENAME).
    fn rename(
        &self,
        ctx: &Context,
        olddir: u64,
        oldname: Name<'_>,
        newdir: u64,
        newname: Name<'_>,
        flags: RenameFlags,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// LINK: a new name `newname` in `newparent` for `nodeid`; takes a lookup reference.
    fn link(
        &self,
        ctx: &Context,
        nodeid: u64,
        newparent: u64,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// OPEN: `flags` are the guest's open(2) flags (Linux values, O_CREAT/O_EXCL/O_NOCTTY
    /// already removed by the kernel).
    fn open(
        &self,
        ctx: &Context,
        nodeid: u64,
        flags: u32,
        open_flags: OpenInFlags,
    ) -> FsResult<OpenReply> {
        Err(Errno::ENOSYS)
    }

    /// CREATE: atomically creates and opens `name`; takes a lookup reference.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        mode: u32,
        flags: u32,
        open_flags: OpenInFlags,
    ) -> FsResult<(Entry, OpenReply)> {
        Err(Errno::ENOSYS)
    }

    /// TMPFILE (7.37): an unnamed file in `parent`, opened.
    fn tmpfile(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        mode: u32,
        flags: u32,
    ) -> FsResult<(Entry, OpenReply)> {
        Err(Errno::ENOSYS)
    }

    /// READ: moves up to `size` bytes at `offset` into `w` (zero-copy) and returns the count.
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        flags: u32,
    ) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// WRITE: moves `size` bytes from `r` (zero-copy) to `offset` and returns the count.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        write_flags: WriteFlags,
        flags: u32,
    ) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// FLUSH: called on every close(2) of a file descriptor.
    fn flush(&self, ctx: &Context, nodeid: u64, fh: u64, lock_owner: u64) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RELEASE: the last reference to an open handle is gone.
    #[allow(clippy::too_many_arguments)]
    fn release(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        flags: u32,
        flush: bool,
        flock_release: bool,
        lock_owner: Option<u64>,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// FSYNC.
    fn fsync(&self, ctx: &Context, nodeid: u64, fh: u64, datasync: bool) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// OPENDIR.
    fn opendir(&self, ctx: &Context, nodeid: u64, flags: u32) -> FsResult<OpenReply> {
        Err(Errno::ENOSYS)
    }

    /// READDIR: adds entries after `offset` to `sink` until it is full or the directory ends.
    fn readdir(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// READDIRPLUS: like READDIR, with an [`Entry`] (and a lookup reference) per name.
    fn readdirplus(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RELEASEDIR.
    fn releasedir(&self, ctx: &Context, nodeid: u64, fh: u64, flags: u32) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// FSYNCDIR.
    fn fsyncdir(&self, ctx: &Context, nodeid: u64, fh: u64, datasync: bool) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// STATFS.
    fn statfs(&self, ctx: &Context, nodeid: u64) -> FsResult<StatFs> {
        Err(Errno::ENOSYS)
    }

    /// SETXATTR: `flags` are XATTR_CREATE/XATTR_REPLACE (Linux values).
    #[allow(clippy::too_many_arguments)]
    fn setxattr(
        &self,
        ctx: &Context,
        nodeid: u64,
        name: &CStr,
        value: &[u8],
        flags: u32,
        setxattr_flags: SetxattrFlags,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// GETXATTR: with an empty `buf` return [`XattrReply::Size`]; otherwise copy the value
    /// into `buf` (ERANGE if it does not fit).
    fn getxattr(
        &self,
        ctx: &Context,
        nodeid: u64,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        Err(Errno::ENOSYS)
    }

    /// LISTXATTR: NUL-separated names, sized as for GETXATTR.
    fn listxattr(&self, ctx: &Context, nodeid: u64, buf: &mut [u8]) -> FsResult<XattrReply> {
        Err(Errno::ENOSYS)
    }

    /// REMOVEXATTR.
    fn removexattr(&self, ctx: &Context, nodeid: u64, name: &CStr) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// ACCESS: `mask` is R_OK/W_OK/X_OK/F_OK.
    fn access(&self, ctx: &Context, nodeid: u64, mask: u32) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// GETLK: the first lock that would conflict with `lock`, or `lock` with type F_UNLCK.
    fn getlk(&self, ctx: &Context, nodeid: u64, fh: u64, owner: u64, lock: Lock) -> FsResult<Lock> {
        Err(Errno::ENOSYS)
    }

    /// SETLK and SETLKW (`sleep`); `flock` for BSD flock(2) requests. A blocking request must
    /// not block a worker forever.
    #[allow(clippy::too_many_arguments)]
    fn setlk(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        owner: u64,
        lock: Lock,
        sleep: bool,
        flock: bool,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// BMAP (fuseblk only).
    fn bmap(&self, ctx: &Context, nodeid: u64, blocksize: u32, block: u64) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// IOCTL: unrestricted ioctls are refused by the server; `input` is the request's data,
    /// the reply data goes into `out` (at most `out_size` bytes). Returns (result, bytes).
    #[allow(clippy::too_many_arguments)]
    fn ioctl(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        cmd: u32,
        arg: u64,
        input: &[u8],
        out: &mut [u8],
    ) -> FsResult<(i32, usize)> {
        Err(Errno::ENOSYS)
    }

    /// POLL: returns the ready events.
    fn poll(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        kh: u64,
        flags: u32,
        events: u32,
    ) -> FsResult<u32> {
        Err(Errno::ENOSYS)
    }

    /// FALLOCATE: `mode` are Linux FALLOC_FL_* bits.
    fn fallocate(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// LSEEK: SEEK_DATA / SEEK_HOLE (and SET/CUR/END); returns the new offset.
    fn lseek(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        offset: u64,
        whence: u32,
    ) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// COPY_FILE_RANGE and COPY_FILE_RANGE_64: returns the bytes copied (the server caps the
    /// 32-bit variant's length).
    #[allow(clippy::too_many_arguments)]
    fn copy_file_range(
        &self,
        ctx: &Context,
        nodeid_in: u64,
        fh_in: u64,
        off_in: u64,
        nodeid_out: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u64,
    ) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// SETUPMAPPING (virtio-fs DAX). Needs a DAX window, which the device provides; backends
    /// without one keep the default.
    #[allow(clippy::too_many_arguments)]
    fn setupmapping(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        foffset: u64,
        len: u64,
        flags: u64,
        moffset: u64,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// REMOVEMAPPING (virtio-fs DAX): (moffset, len) ranges.
    fn removemapping(
        &self,
        ctx: &Context,
        ranges: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// SYNCFS.
    fn syncfs(&self, ctx: &Context, nodeid: u64) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }
}
