//! The contract between the server and a backend.
//!
//! [`FileSystem`] is what a backend implements; this module documents, method by method, what
//! the server has checked before the call, what the call does to the kernel's lookup counts,
//! which values are Linux's, and which errnos the kernel expects.

use std::ffi::CStr;

use fuse_abi::{Errno, RenameFlags};

use crate::capabilities::Capabilities;
use crate::io::{ZeroCopyReader, ZeroCopyWriter};
use crate::types::*;

mod args;
mod forward;

pub use args::{
    CopyFileRangeArgs, CreateArgs, IoctlArgs, LockArgs, OpenArgs, ReadArgs, ReleaseArgs,
    SetupMappingArgs, SetxattrArgs, TmpfileArgs, WriteArgs,
};

/// The result type of every backend operation: a value, or a Linux errno for the guest.
pub type FsResult<T> = Result<T, Errno>;

#[doc = include_str!("contract.md")]
#[allow(unused_variables)]
pub trait FileSystem: Send + Sync {
    /// What this backend can honour. Called once per FUSE_INIT, before negotiation; nothing
    /// it does not declare is ever negotiated.
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

    /// LOOKUP: finds `name` (which may be `.` or `..`) in directory `parent`.
    ///
    /// Takes one lookup reference on the returned node id on success. ENOENT for a missing
    /// name (or a negative entry, [`NodeId::NONE`] with an `entry_timeout`, which takes none);
    /// ENOTDIR if `parent` is not a directory.
    fn lookup(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// FORGET: drops `nlookup` lookup references on `nodeid`; at zero the node id may be
    /// reused. No reply, so nothing to fail: an unknown node id or a count larger than held is
    /// the guest's error and is ignored (or clamped).
    fn forget(&self, ctx: &Context, nodeid: NodeId, nlookup: u64) {}

    /// BATCH_FORGET: several FORGETs, `(nodeid, nlookup)` pairs. No reply. The default calls
    /// [`forget`](Self::forget) for each.
    fn batch_forget(&self, ctx: &Context, forgets: &mut dyn Iterator<Item = (NodeId, u64)>) {
        for (nodeid, nlookup) in forgets {
            self.forget(ctx, nodeid, nlookup);
        }
    }

    /// GETATTR: the attributes of `nodeid`, through handle `fh` when the kernel names one
    /// (fstat(2) on an open file). The handle is not checked against the node id.
    fn getattr(&self, ctx: &Context, nodeid: NodeId, fh: Option<Handle>) -> FsResult<AttrReply> {
        Err(Errno::ENOSYS)
    }

    /// SETATTR: applies the fields of `attr` that are `Some` (chmod, chown, truncate,
    /// utimes) and returns the new attributes. `attr.fh` is set for ftruncate(2)-style
    /// changes; `kill_suidgid` asks to clear set-id bits as a write would. EPERM/EACCES as the
    /// host decides.
    fn setattr(&self, ctx: &Context, nodeid: NodeId, attr: &SetAttr) -> FsResult<AttrReply> {
        Err(Errno::ENOSYS)
    }

    /// STATX (7.39): `flags` are Linux `AT_STATX_*`/`AT_*` sync flags, `mask` the Linux
    /// `STATX_*` fields wanted; `fh` as for GETATTR. ENOSYS makes the kernel use GETATTR.
    fn statx(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Option<Handle>,
        flags: u32,
        mask: u32,
    ) -> FsResult<StatxReply> {
        Err(Errno::ENOSYS)
    }

    /// READLINK: copies the target, without NUL, into `buf` (`PATH_MAX` bytes) and returns
    /// its length. EINVAL if `nodeid` is not a symlink.
    fn readlink(&self, ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// SYMLINK: creates `name` in `parent` pointing at `target` (stored, never followed on
    /// the host). `cctx` carries the umask rule, the security context and the supplementary
    /// group. Takes one lookup reference on the new node id on success. EEXIST if `name`
    /// exists.
    fn symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// MKNOD: a regular file, FIFO, socket, character or block device; `mode` holds the
    /// Linux `S_IF*` type and permission bits, `rdev` the Linux device number. `cctx` as for
    /// SYMLINK. Takes one lookup reference on the new node id on success. EEXIST if `name`
    /// exists; EPERM for devices the host will not create.
    fn mknod(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// MKDIR: creates directory `name` in `parent` with permission bits `mode`. `cctx` as for
    /// SYMLINK. Takes one lookup reference on the new node id on success. EEXIST if `name`
    /// exists.
    fn mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// UNLINK: removes the non-directory `name` from `parent`. Lookup counts are unchanged:
    /// the node id stays valid until FORGET. EISDIR for a directory.
    fn unlink(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RMDIR: removes the empty directory `name` from `parent`. Lookup counts are unchanged.
    /// ENOTEMPTY, ENOTDIR as the host says.
    fn rmdir(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RENAME and RENAME2: moves `oldname` in `olddir` to `newname` in `newdir`; `flags` are
    /// `RENAME_NOREPLACE`/`EXCHANGE`/`WHITEOUT` (empty for RENAME; unknown bits were refused
    /// by the server). Lookup counts are unchanged. EXDEV across host filesystems; EINVAL for
    /// flags the host cannot honour.
    fn rename(
        &self,
        ctx: &Context,
        olddir: NodeId,
        oldname: Name<'_>,
        newdir: NodeId,
        newname: Name<'_>,
        flags: RenameFlags,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// LINK: a new name `newname` in `newparent` for `nodeid`. Takes one lookup reference on
    /// `nodeid` on success (the reply names the same node). EPERM for directories.
    fn link(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        newparent: NodeId,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        Err(Errno::ENOSYS)
    }

    /// OPEN: opens `nodeid` and returns a handle the guest passes back until RELEASE.
    ///
    /// `args.flags` are the guest's open(2) flags in Linux values (O_CREAT, O_EXCL and
    /// O_NOCTTY already removed by the kernel); `args.open_flags` are FUSE_OPEN_*
    /// (KILL_SUIDGID). Lookup counts are unchanged.
    ///
    /// **O_APPEND under writeback**: with WRITEBACK_CACHE negotiated, the kernel computes
    /// append offsets itself and may read pages around a partial write, so the host file must
    /// be opened *without* O_APPEND (or every WRITE would land at the end, not at its offset)
    /// and with read access even for O_WRONLY. Without writeback, O_APPEND is passed on.
    fn open(&self, ctx: &Context, nodeid: NodeId, args: &OpenArgs) -> FsResult<OpenReply> {
        Err(Errno::ENOSYS)
    }

    /// CREATE: atomically creates (if absent) and opens `args.name` in `parent`;
    /// `args.mode`, `cctx` as for MKNOD, `args.open` as for OPEN (O_CREAT and O_EXCL are
    /// meaningful here). Takes one lookup reference on the node id on success. ENOSYS makes
    /// the kernel use MKNOD + OPEN from then on.
    fn create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &CreateArgs<'_>,
    ) -> FsResult<(Entry, OpenReply)> {
        Err(Errno::ENOSYS)
    }

    /// TMPFILE (7.37): an unnamed regular file in directory `parent`, opened (O_TMPFILE);
    /// `args.mode`, `args.open`, `cctx` as for CREATE. Takes one lookup reference on the new
    /// node id on success, though the file has no name.
    fn tmpfile(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &TmpfileArgs,
    ) -> FsResult<(Entry, OpenReply)> {
        Err(Errno::ENOSYS)
    }

    /// READ: moves up to `args.size` bytes at `args.offset` of handle `args.fh` into `w`
    /// (zero-copy) and returns the count; fewer than `size` is end of file.
    /// `args.lock_owner` is set when the kernel names one (mandatory locking), `args.flags`
    /// are the handle's open flags.
    ///
    /// `w` is bounded to `size` and the reply space. Data already moved into `w` is sent
    /// even if the method then returns an error (a short read).
    fn read(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        args: &ReadArgs,
        w: &mut dyn ZeroCopyWriter,
    ) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// WRITE: moves `args.size` bytes from `r` (zero-copy) to `args.offset` of handle
    /// `args.fh` and returns the count (the server caps it at `size`). `args.write_flags`
    /// carries WRITE_CACHE (a writeback page flush, whose caller is not the writer),
    /// WRITE_LOCKOWNER and WRITE_KILL_SUIDGID (clear set-id bits); `args.lock_owner` is set
    /// with WRITE_LOCKOWNER. `args.flags` are the handle's open flags. `r` holds exactly
    /// `size` bytes.
    fn write(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        args: &WriteArgs,
        r: &mut dyn ZeroCopyReader,
    ) -> FsResult<usize> {
        Err(Errno::ENOSYS)
    }

    /// FLUSH: sent on every close(2) of a file descriptor for handle `fh` (so possibly many
    /// times per handle, from different processes). `lock_owner` identifies the closing
    /// file table: the backend drops the POSIX locks that owner holds on the file, as close(2)
    /// does on the host. ENOSYS makes the kernel stop sending FLUSH.
    fn flush(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        lock_owner: LockOwner,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RELEASE: the last reference to handle `args.fh` is gone; the handle must be dropped,
    /// and any later use of `fh` answered EBADF. `args.flags` are the handle's open flags.
    ///
    /// - `args.flush` (FUSE_RELEASE_FLUSH): the kernel asks for the FLUSH work to be done as
    ///   part of the release (drop `lock_owner`'s POSIX locks);
    /// - `args.flock_release` (FUSE_RELEASE_FLOCK_UNLOCK, with FLOCK_LOCKS): the handle holds
    ///   a flock(2) lock, which the release must drop;
    /// - `args.lock_owner`: the owner for either, `Some` exactly when one of them is set.
    ///
    /// The kernel ignores the reply's errno; lookup counts are unchanged.
    fn release(&self, ctx: &Context, nodeid: NodeId, args: &ReleaseArgs) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// FSYNC: flushes handle `fh`'s data (and metadata unless `datasync`) to stable storage.
    /// ENOSYS makes the kernel stop sending FSYNC (and fsync(2) succeed).
    fn fsync(&self, ctx: &Context, nodeid: NodeId, fh: Handle, datasync: bool) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// OPENDIR: opens directory `nodeid` for READDIR; `flags` are the open(2) flags (Linux
    /// values). ENOTDIR for a non-directory.
    fn opendir(&self, ctx: &Context, nodeid: NodeId, flags: u32) -> FsResult<OpenReply> {
        Err(Errno::ENOSYS)
    }

    /// READDIR: adds the entries after `offset` (0 is the start; otherwise an `offset` a
    /// previous entry carried) of handle `fh` to `sink`, until `sink.add` returns `false` or
    /// the directory ends. Adding nothing is the end of the directory. Entries added are sent
    /// even if the method then returns an error.
    fn readdir(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// READDIRPLUS: like READDIR, with an [`Entry`] per name. **Each entry added takes one
    /// lookup reference** (`.` and `..` included, unless their `nodeid` is [`NodeId::NONE`]): check
    /// [`DirPlusSink::fits`] before looking a name up, so no reference is taken for an entry
    /// that is not sent.
    fn readdirplus(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// RELEASEDIR: the last reference to directory handle `fh` is gone; drop it. The kernel
    /// ignores the reply's errno.
    fn releasedir(&self, ctx: &Context, nodeid: NodeId, fh: Handle, flags: u32) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// FSYNCDIR: as FSYNC for directory handle `fh`. ENOSYS makes the kernel stop sending it.
    fn fsyncdir(&self, ctx: &Context, nodeid: NodeId, fh: Handle, datasync: bool) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// STATFS: statistics of the filesystem holding `nodeid` (statfs(2)).
    fn statfs(&self, ctx: &Context, nodeid: NodeId) -> FsResult<StatFs> {
        Err(Errno::ENOSYS)
    }

    /// SETXATTR: sets attribute `args.name` of `nodeid` to `args.value`; `args.flags` are
    /// Linux XATTR_CREATE/XATTR_REPLACE; `args.setxattr_flags` (SETXATTR_EXT) carry
    /// ACL_KILL_SGID. EEXIST/ENODATA for the flags' conditions, ENOTSUP where the host has no
    /// xattrs, E2BIG or ENOSPC for oversized values. ENOSYS makes the kernel stop sending
    /// xattr requests.
    fn setxattr(&self, ctx: &Context, nodeid: NodeId, args: &SetxattrArgs<'_>) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// GETXATTR: with an empty `buf` (the guest asked for the size) return
    /// [`XattrReply::Size`]; otherwise copy the value into `buf` and return
    /// [`XattrReply::Data`] (ERANGE if it does not fit). Any other pairing is answered EIO.
    /// ENODATA for a missing attribute.
    fn getxattr(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        Err(Errno::ENOSYS)
    }

    /// LISTXATTR: the attribute names of `nodeid`, each NUL-terminated, with the sizing rule
    /// of GETXATTR.
    fn listxattr(&self, ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<XattrReply> {
        Err(Errno::ENOSYS)
    }

    /// REMOVEXATTR: removes attribute `name` of `nodeid`. ENODATA if it does not exist.
    fn removexattr(&self, ctx: &Context, nodeid: NodeId, name: &CStr) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// ACCESS: may the caller (`ctx`) access `nodeid` with Linux `mask` (R_OK 4, W_OK 2,
    /// X_OK 1, F_OK 0)? EACCES if not. Only sent without `default_permissions`; ENOSYS makes
    /// the kernel stop asking (and grant).
    fn access(&self, ctx: &Context, nodeid: NodeId, mask: u32) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// GETLK: the first POSIX lock that would conflict with `args.lock` taken by
    /// `args.owner` through handle `args.fh`, or `lock` with type F_UNLCK if none
    /// (`args.sleep` is `false`). ENOSYS makes locks local to the guest.
    fn getlk(&self, ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<Lock> {
        Err(Errno::ENOSYS)
    }

    /// SETLK and SETLKW (`args.sleep`): takes or releases (type F_UNLCK) `args.lock` for
    /// `args.owner` through handle `args.fh`; `args.flock` for BSD flock(2) requests
    /// (FLOCK_LOCKS), where the lock belongs to the handle rather than the owner. EAGAIN when
    /// a non-blocking request conflicts; EDEADLK for a deadlock.
    ///
    /// A sleeping request (SETLKW, `args.sleep`) should not block either: a backend answers
    /// it **EAGAIN** when the lock is not free now, having changed nothing. The server then
    /// writes no reply and returns [`Completion::Pending`](crate::Completion::Pending): the
    /// transport keeps the request and calls again later (when a request that may free a lock
    /// completes, and on a backoff timer), until the answer is something else. So EAGAIN to
    /// a sleeping request means "ask again", never an error the guest sees; a backend that
    /// blocks instead holds a worker for as long as the lock is held (the guest cannot
    /// interrupt it on virtio-fs).
    fn setlk(&self, ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// BMAP (fuseblk only, never on virtio-fs): the device block for file block `block` of
    /// size `blocksize`.
    fn bmap(&self, ctx: &Context, nodeid: NodeId, blocksize: u32, block: u64) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// IOCTL: restricted ioctl `args.cmd` with `args.arg` on handle `args.fh` (unrestricted
    /// ones are refused by the server; `args.flags` carry the rest of FUSE_IOCTL_*);
    /// `args.input` is the request's data, the reply data goes into `out` (the guest's
    /// `out_size`, capped by the server). Returns (the ioctl's result, bytes of `out` used).
    /// ENOTTY for unknown commands.
    fn ioctl(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        args: &IoctlArgs<'_>,
        out: &mut [u8],
    ) -> FsResult<(i32, usize)> {
        Err(Errno::ENOSYS)
    }

    /// POLL: the ready Linux poll events of handle `fh` among `events`; `kh` and `flags`
    /// (SCHEDULE_NOTIFY) ask for a wake-up notification, which this server cannot send.
    /// ENOSYS makes the kernel treat the file as always ready.
    fn poll(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        kh: u64,
        flags: u32,
        events: u32,
    ) -> FsResult<u32> {
        Err(Errno::ENOSYS)
    }

    /// FALLOCATE: allocates or punches `length` bytes at `offset` of handle `fh`; `mode` are
    /// Linux FALLOC_FL_* bits. EOPNOTSUPP for modes the host lacks; ENOSYS makes the kernel
    /// stop sending it.
    fn fallocate(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// LSEEK: the kernel sends SEEK_DATA (3) and SEEK_HOLE (4) (Linux `whence` values; it
    /// handles SET/CUR/END itself); returns the new offset. ENXIO past the end; ENOSYS makes
    /// the kernel fall back to its generic answer.
    fn lseek(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        offset: u64,
        whence: u32,
    ) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// COPY_FILE_RANGE and COPY_FILE_RANGE_64: copies `args.len` bytes from `args.off_in` of
    /// handle `args.fh_in` (of `args.nodeid_in`, the request's node id) to `args.off_out` of
    /// handle `args.fh_out` (of `args.nodeid_out`, which may be another node); returns the
    /// bytes copied, which the server caps at `len` (and `len` at `u32::MAX` for the 32-bit
    /// variant). `args.flags` are copy_file_range(2)'s, 0 today. EXDEV across host
    /// filesystems (the kernel then copies itself); ENOSYS stops it for good.
    fn copy_file_range(&self, ctx: &Context, args: &CopyFileRangeArgs) -> FsResult<u64> {
        Err(Errno::ENOSYS)
    }

    /// SETUPMAPPING (virtio-fs DAX): maps `args.len` bytes at `args.foffset` of handle
    /// `args.fh` at `args.moffset` of the DAX window, read-only or writable per `args.flags`.
    /// Needs a DAX window, which the device provides; backends without one keep the default.
    fn setupmapping(&self, ctx: &Context, nodeid: NodeId, args: &SetupMappingArgs) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// REMOVEMAPPING (virtio-fs DAX): unmaps the `(moffset, len)` ranges of the DAX window.
    fn removemapping(
        &self,
        ctx: &Context,
        ranges: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }

    /// SYNCFS: flushes the whole filesystem holding `nodeid` (syncfs(2)).
    fn syncfs(&self, ctx: &Context, nodeid: NodeId) -> FsResult<()> {
        Err(Errno::ENOSYS)
    }
}
