//! [`FileSystem`] for `Box<F>` and `Arc<F>`: every method forwards to `F`, so a backend can be
//! shared, type-erased (`Box<dyn FileSystem>`) or wrapped without a hand-written adapter.

use std::ffi::CStr;
use std::sync::Arc;

use fuse_abi::RenameFlags;

use super::{
    CopyFileRangeArgs, CreateArgs, FileSystem, FsResult, IoctlArgs, LockArgs, OpenArgs, ReadArgs,
    ReleaseArgs, SetupMappingArgs, SetxattrArgs, TmpfileArgs, WriteArgs,
};
use crate::capabilities::Capabilities;
use crate::io::{ZeroCopyReader, ZeroCopyWriter};
use crate::types::*;

/// Implements `FileSystem` for each smart pointer by forwarding every method, defaults
/// included (a forwarding impl that kept a default would hide the backend's own method).
macro_rules! forward_filesystem {
    ($($pointer:ident),*) => {$(
        impl<F: FileSystem + ?Sized> FileSystem for $pointer<F> {
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }

            fn init(&self, negotiated: &Negotiated) -> FsResult<()> {
                (**self).init(negotiated)
            }

            fn destroy(&self) {
                (**self).destroy()
            }

            fn lookup(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<Entry> {
                (**self).lookup(ctx, parent, name)
            }

            fn forget(&self, ctx: &Context, nodeid: NodeId, nlookup: u64) {
                (**self).forget(ctx, nodeid, nlookup)
            }

            fn batch_forget(
                &self,
                ctx: &Context,
                forgets: &mut dyn Iterator<Item = (NodeId, u64)>,
            ) {
                (**self).batch_forget(ctx, forgets)
            }

            fn getattr(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Option<Handle>,
            ) -> FsResult<AttrReply> {
                (**self).getattr(ctx, nodeid, fh)
            }

            fn setattr(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                attr: &SetAttr,
            ) -> FsResult<AttrReply> {
                (**self).setattr(ctx, nodeid, attr)
            }

            fn statx(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Option<Handle>,
                flags: u32,
                mask: u32,
            ) -> FsResult<StatxReply> {
                (**self).statx(ctx, nodeid, fh, flags, mask)
            }

            fn readlink(&self, ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<usize> {
                (**self).readlink(ctx, nodeid, buf)
            }

            fn symlink(
                &self,
                ctx: &Context,
                cctx: &CreateContext<'_>,
                parent: NodeId,
                name: Name<'_>,
                target: &CStr,
            ) -> FsResult<Entry> {
                (**self).symlink(ctx, cctx, parent, name, target)
            }

            fn mknod(
                &self,
                ctx: &Context,
                cctx: &CreateContext<'_>,
                parent: NodeId,
                name: Name<'_>,
                mode: u32,
                rdev: u32,
            ) -> FsResult<Entry> {
                (**self).mknod(ctx, cctx, parent, name, mode, rdev)
            }

            fn mkdir(
                &self,
                ctx: &Context,
                cctx: &CreateContext<'_>,
                parent: NodeId,
                name: Name<'_>,
                mode: u32,
            ) -> FsResult<Entry> {
                (**self).mkdir(ctx, cctx, parent, name, mode)
            }

            fn unlink(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
                (**self).unlink(ctx, parent, name)
            }

            fn rmdir(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
                (**self).rmdir(ctx, parent, name)
            }

            fn rename(
                &self,
                ctx: &Context,
                olddir: NodeId,
                oldname: Name<'_>,
                newdir: NodeId,
                newname: Name<'_>,
                flags: RenameFlags,
            ) -> FsResult<()> {
                (**self).rename(ctx, olddir, oldname, newdir, newname, flags)
            }

            fn link(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                newparent: NodeId,
                newname: Name<'_>,
            ) -> FsResult<Entry> {
                (**self).link(ctx, nodeid, newparent, newname)
            }

            fn open(&self, ctx: &Context, nodeid: NodeId, args: &OpenArgs) -> FsResult<OpenReply> {
                (**self).open(ctx, nodeid, args)
            }

            fn create(
                &self,
                ctx: &Context,
                cctx: &CreateContext<'_>,
                parent: NodeId,
                args: &CreateArgs<'_>,
            ) -> FsResult<(Entry, OpenReply)> {
                (**self).create(ctx, cctx, parent, args)
            }

            fn tmpfile(
                &self,
                ctx: &Context,
                cctx: &CreateContext<'_>,
                parent: NodeId,
                args: &TmpfileArgs,
            ) -> FsResult<(Entry, OpenReply)> {
                (**self).tmpfile(ctx, cctx, parent, args)
            }

            fn read(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                args: &ReadArgs,
                w: &mut dyn ZeroCopyWriter,
            ) -> FsResult<usize> {
                (**self).read(ctx, nodeid, args, w)
            }

            fn write(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                args: &WriteArgs,
                r: &mut dyn ZeroCopyReader,
            ) -> FsResult<usize> {
                (**self).write(ctx, nodeid, args, r)
            }

            fn flush(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                lock_owner: LockOwner,
            ) -> FsResult<()> {
                (**self).flush(ctx, nodeid, fh, lock_owner)
            }

            fn release(&self, ctx: &Context, nodeid: NodeId, args: &ReleaseArgs) -> FsResult<()> {
                (**self).release(ctx, nodeid, args)
            }

            fn fsync(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                datasync: bool,
            ) -> FsResult<()> {
                (**self).fsync(ctx, nodeid, fh, datasync)
            }

            fn opendir(&self, ctx: &Context, nodeid: NodeId, flags: u32) -> FsResult<OpenReply> {
                (**self).opendir(ctx, nodeid, flags)
            }

            fn readdir(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                offset: u64,
                sink: &mut dyn DirSink,
            ) -> FsResult<()> {
                (**self).readdir(ctx, nodeid, fh, offset, sink)
            }

            fn readdirplus(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                offset: u64,
                sink: &mut dyn DirPlusSink,
            ) -> FsResult<()> {
                (**self).readdirplus(ctx, nodeid, fh, offset, sink)
            }

            fn releasedir(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                flags: u32,
            ) -> FsResult<()> {
                (**self).releasedir(ctx, nodeid, fh, flags)
            }

            fn fsyncdir(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                datasync: bool,
            ) -> FsResult<()> {
                (**self).fsyncdir(ctx, nodeid, fh, datasync)
            }

            fn statfs(&self, ctx: &Context, nodeid: NodeId) -> FsResult<StatFs> {
                (**self).statfs(ctx, nodeid)
            }

            fn setxattr(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                args: &SetxattrArgs<'_>,
            ) -> FsResult<()> {
                (**self).setxattr(ctx, nodeid, args)
            }

            fn getxattr(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                name: &CStr,
                buf: &mut [u8],
            ) -> FsResult<XattrReply> {
                (**self).getxattr(ctx, nodeid, name, buf)
            }

            fn listxattr(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                buf: &mut [u8],
            ) -> FsResult<XattrReply> {
                (**self).listxattr(ctx, nodeid, buf)
            }

            fn removexattr(&self, ctx: &Context, nodeid: NodeId, name: &CStr) -> FsResult<()> {
                (**self).removexattr(ctx, nodeid, name)
            }

            fn access(&self, ctx: &Context, nodeid: NodeId, mask: u32) -> FsResult<()> {
                (**self).access(ctx, nodeid, mask)
            }

            fn getlk(&self, ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<Lock> {
                (**self).getlk(ctx, nodeid, args)
            }

            fn setlk(&self, ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<()> {
                (**self).setlk(ctx, nodeid, args)
            }

            fn bmap(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                blocksize: u32,
                block: u64,
            ) -> FsResult<u64> {
                (**self).bmap(ctx, nodeid, blocksize, block)
            }

            fn ioctl(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                args: &IoctlArgs<'_>,
                out: &mut [u8],
            ) -> FsResult<(i32, usize)> {
                (**self).ioctl(ctx, nodeid, args, out)
            }

            fn poll(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                kh: u64,
                flags: u32,
                events: u32,
            ) -> FsResult<u32> {
                (**self).poll(ctx, nodeid, fh, kh, flags, events)
            }

            fn fallocate(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                mode: u32,
                offset: u64,
                length: u64,
            ) -> FsResult<()> {
                (**self).fallocate(ctx, nodeid, fh, mode, offset, length)
            }

            fn lseek(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                fh: Handle,
                offset: u64,
                whence: u32,
            ) -> FsResult<u64> {
                (**self).lseek(ctx, nodeid, fh, offset, whence)
            }

            fn copy_file_range(&self, ctx: &Context, args: &CopyFileRangeArgs) -> FsResult<u64> {
                (**self).copy_file_range(ctx, args)
            }

            fn setupmapping(
                &self,
                ctx: &Context,
                nodeid: NodeId,
                args: &SetupMappingArgs,
            ) -> FsResult<()> {
                (**self).setupmapping(ctx, nodeid, args)
            }

            fn removemapping(
                &self,
                ctx: &Context,
                ranges: &mut dyn Iterator<Item = (u64, u64)>,
            ) -> FsResult<()> {
                (**self).removemapping(ctx, ranges)
            }

            fn syncfs(&self, ctx: &Context, nodeid: NodeId) -> FsResult<()> {
                (**self).syncfs(ctx, nodeid)
            }
        }
    )*};
}

forward_filesystem!(Box, Arc);
