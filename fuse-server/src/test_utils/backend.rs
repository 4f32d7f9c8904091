//! [`TestFs`]'s answers: a plausible success for every operation, each call recorded.

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fuse_abi::{Errno, RenameFlags};

use super::{DIR, REG, TestFs, opened, xattr_value};
use crate::io::{ZeroCopyReader, ZeroCopyWriter};
use crate::types::*;
use crate::{
    Capabilities, CopyFileRangeArgs, CreateArgs, FileSystem, FsResult, IoctlArgs, LockArgs,
    OpenArgs, ReadArgs, ReleaseArgs, SetupMappingArgs, SetxattrArgs, TmpfileArgs, WriteArgs,
};

impl FileSystem for TestFs {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn init(&self, negotiated: &Negotiated) -> FsResult<()> {
        self.inits.fetch_add(1, Ordering::Relaxed);
        self.rec(
            "init",
            &Context::default(),
            NodeId::NONE,
            format_args!("{negotiated:?}"),
        );
        Ok(())
    }

    fn destroy(&self) {
        self.destroys.fetch_add(1, Ordering::Relaxed);
        self.rec(
            "destroy",
            &Context::default(),
            NodeId::NONE,
            format_args!(""),
        );
    }

    fn lookup(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<Entry> {
        self.rec("lookup", ctx, parent, format_args!("{name:?}"));
        Ok(self.entry(REG))
    }

    fn forget(&self, ctx: &Context, nodeid: NodeId, nlookup: u64) {
        self.rec("forget", ctx, nodeid, format_args!("{nlookup}"));
    }

    fn batch_forget(&self, ctx: &Context, forgets: &mut dyn Iterator<Item = (NodeId, u64)>) {
        // Recorded as wire values, `[(nodeid, nlookup), ..]`.
        let all: Vec<(u64, u64)> = if self.record {
            forgets.map(|(nodeid, n)| (nodeid.0, n)).collect()
        } else {
            Vec::new()
        };
        self.rec("batch_forget", ctx, NodeId::NONE, format_args!("{all:?}"));
    }

    fn getattr(&self, ctx: &Context, nodeid: NodeId, fh: Option<Handle>) -> FsResult<AttrReply> {
        self.rec("getattr", ctx, nodeid, format_args!("{fh:?}"));
        Ok(AttrReply {
            attr: self.entry(DIR).attr,
            timeout: Duration::from_secs(1),
        })
    }

    fn setattr(&self, ctx: &Context, nodeid: NodeId, attr: &SetAttr) -> FsResult<AttrReply> {
        self.rec("setattr", ctx, nodeid, format_args!("{attr:?}"));
        Ok(AttrReply {
            attr: self.entry(REG).attr,
            timeout: Duration::from_secs(1),
        })
    }

    fn statx(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Option<Handle>,
        flags: u32,
        mask: u32,
    ) -> FsResult<StatxReply> {
        self.rec(
            "statx",
            ctx,
            nodeid,
            format_args!("{fh:?} {flags:#x} {mask:#x}"),
        );
        Ok(StatxReply::default())
    }

    fn readlink(&self, ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<usize> {
        self.rec("readlink", ctx, nodeid, format_args!(""));
        let target = b"target";
        let dst = buf.get_mut(..target.len()).ok_or(Errno::ERANGE)?;
        dst.copy_from_slice(target);
        Ok(target.len())
    }

    fn symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        self.rec(
            "symlink",
            ctx,
            parent,
            format_args!("{name:?} {target:?} {cctx:?}"),
        );
        Ok(self.entry(fuse_abi::mode::S_IFLNK | 0o777))
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
        self.rec(
            "mknod",
            ctx,
            parent,
            format_args!("{name:?} {mode:o} {rdev} {cctx:?}"),
        );
        Ok(self.entry(mode))
    }

    fn mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        name: Name<'_>,
        mode: u32,
    ) -> FsResult<Entry> {
        self.rec(
            "mkdir",
            ctx,
            parent,
            format_args!("{name:?} {mode:o} {cctx:?}"),
        );
        Ok(self.entry(DIR))
    }

    fn unlink(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        self.rec("unlink", ctx, parent, format_args!("{name:?}"));
        Ok(())
    }

    fn rmdir(&self, ctx: &Context, parent: NodeId, name: Name<'_>) -> FsResult<()> {
        self.rec("rmdir", ctx, parent, format_args!("{name:?}"));
        Ok(())
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
        self.rec(
            "rename",
            ctx,
            olddir,
            format_args!("{oldname:?} {newdir} {newname:?} {flags:?}"),
        );
        Ok(())
    }

    fn link(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        newparent: NodeId,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        self.rec("link", ctx, nodeid, format_args!("{newparent} {newname:?}"));
        Ok(self.entry(REG))
    }

    fn open(&self, ctx: &Context, nodeid: NodeId, args: &OpenArgs) -> FsResult<OpenReply> {
        let OpenArgs { flags, open_flags } = *args;
        self.rec(
            "open",
            ctx,
            nodeid,
            format_args!("{flags:#o} {open_flags:?}"),
        );
        Ok(opened(7))
    }

    fn create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &CreateArgs<'_>,
    ) -> FsResult<(Entry, OpenReply)> {
        let CreateArgs { name, mode, .. } = *args;
        let OpenArgs { flags, open_flags } = args.open;
        self.rec(
            "create",
            ctx,
            parent,
            format_args!("{name:?} {mode:o} {flags:#o} {open_flags:?} {cctx:?}"),
        );
        Ok((self.entry(REG), opened(8)))
    }

    fn tmpfile(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: NodeId,
        args: &TmpfileArgs,
    ) -> FsResult<(Entry, OpenReply)> {
        let (mode, flags) = (args.mode, args.open.flags);
        self.rec(
            "tmpfile",
            ctx,
            parent,
            format_args!("{mode:o} {flags:#o} {cctx:?}"),
        );
        Ok((self.entry(REG), opened(9)))
    }

    fn read(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        args: &ReadArgs,
        w: &mut dyn ZeroCopyWriter,
    ) -> FsResult<usize> {
        let ReadArgs {
            fh,
            offset,
            size,
            lock_owner,
            flags,
        } = *args;
        self.rec(
            "read",
            ctx,
            nodeid,
            format_args!("{fh} {size} {offset} {lock_owner:?} {flags:#o}"),
        );
        match &self.file {
            Some(f) => w
                .write_from(
                    f.as_fd(),
                    usize::try_from(size).unwrap_or(usize::MAX),
                    offset,
                )
                .map_err(|_| Errno::EIO),
            None => Ok(0),
        }
    }

    fn write(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        args: &WriteArgs,
        r: &mut dyn ZeroCopyReader,
    ) -> FsResult<usize> {
        let WriteArgs {
            fh,
            offset,
            size,
            lock_owner,
            write_flags,
            flags,
        } = *args;
        self.rec(
            "write",
            ctx,
            nodeid,
            format_args!("{fh} {size} {offset} {lock_owner:?} {write_flags:?} {flags:#o}"),
        );
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        match &self.file {
            Some(f) => r.read_to(f.as_fd(), size, offset).map_err(|_| Errno::EIO),
            None => Ok(size),
        }
    }

    fn flush(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        lock_owner: LockOwner,
    ) -> FsResult<()> {
        self.rec("flush", ctx, nodeid, format_args!("{fh} {lock_owner}"));
        Ok(())
    }

    fn release(&self, ctx: &Context, nodeid: NodeId, args: &ReleaseArgs) -> FsResult<()> {
        let ReleaseArgs {
            fh,
            flags,
            flush,
            flock_release,
            lock_owner,
        } = *args;
        self.rec(
            "release",
            ctx,
            nodeid,
            format_args!("{fh} {flags:#o} {flush} {flock_release} {lock_owner:?}"),
        );
        Ok(())
    }

    fn fsync(&self, ctx: &Context, nodeid: NodeId, fh: Handle, datasync: bool) -> FsResult<()> {
        self.rec("fsync", ctx, nodeid, format_args!("{fh} {datasync}"));
        Ok(())
    }

    fn opendir(&self, ctx: &Context, nodeid: NodeId, flags: u32) -> FsResult<OpenReply> {
        self.rec("opendir", ctx, nodeid, format_args!("{flags:#o}"));
        Ok(opened(10))
    }

    fn readdir(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        self.rec("readdir", ctx, nodeid, format_args!("{fh} {offset}"));
        self.fill_dir(offset, sink)
    }

    fn readdirplus(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> FsResult<()> {
        self.rec("readdirplus", ctx, nodeid, format_args!("{fh} {offset}"));
        self.fill_dirplus(offset, sink)
    }

    fn releasedir(&self, ctx: &Context, nodeid: NodeId, fh: Handle, flags: u32) -> FsResult<()> {
        self.rec("releasedir", ctx, nodeid, format_args!("{fh} {flags:#o}"));
        Ok(())
    }

    fn fsyncdir(&self, ctx: &Context, nodeid: NodeId, fh: Handle, datasync: bool) -> FsResult<()> {
        self.rec("fsyncdir", ctx, nodeid, format_args!("{fh} {datasync}"));
        Ok(())
    }

    fn statfs(&self, ctx: &Context, nodeid: NodeId) -> FsResult<StatFs> {
        self.rec("statfs", ctx, nodeid, format_args!(""));
        Ok(StatFs {
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..StatFs::default()
        })
    }

    fn setxattr(&self, ctx: &Context, nodeid: NodeId, args: &SetxattrArgs<'_>) -> FsResult<()> {
        let SetxattrArgs {
            name,
            value,
            flags,
            setxattr_flags,
        } = *args;
        self.rec(
            "setxattr",
            ctx,
            nodeid,
            format_args!("{name:?} {value:?} {flags} {setxattr_flags:?}"),
        );
        Ok(())
    }

    fn getxattr(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        self.rec(
            "getxattr",
            ctx,
            nodeid,
            format_args!("{name:?} {}", buf.len()),
        );
        xattr_value(b"value", buf)
    }

    fn listxattr(&self, ctx: &Context, nodeid: NodeId, buf: &mut [u8]) -> FsResult<XattrReply> {
        self.rec("listxattr", ctx, nodeid, format_args!("{}", buf.len()));
        xattr_value(b"user.a\0", buf)
    }

    fn removexattr(&self, ctx: &Context, nodeid: NodeId, name: &CStr) -> FsResult<()> {
        self.rec("removexattr", ctx, nodeid, format_args!("{name:?}"));
        Ok(())
    }

    fn access(&self, ctx: &Context, nodeid: NodeId, mask: u32) -> FsResult<()> {
        self.rec("access", ctx, nodeid, format_args!("{mask:#o}"));
        Ok(())
    }

    fn getlk(&self, ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<Lock> {
        let LockArgs {
            fh, owner, lock, ..
        } = *args;
        self.rec("getlk", ctx, nodeid, format_args!("{fh} {owner} {lock:?}"));
        Ok(Lock { typ: 2, ..lock })
    }

    fn setlk(&self, ctx: &Context, nodeid: NodeId, args: &LockArgs) -> FsResult<()> {
        let LockArgs {
            fh,
            owner,
            lock,
            sleep,
            flock,
        } = *args;
        let method = if sleep { "setlkw" } else { "setlk" };
        self.rec(
            method,
            ctx,
            nodeid,
            format_args!("{fh} {owner} {lock:?} {flock}"),
        );
        Ok(())
    }

    fn bmap(&self, ctx: &Context, nodeid: NodeId, blocksize: u32, block: u64) -> FsResult<u64> {
        self.rec("bmap", ctx, nodeid, format_args!("{blocksize} {block}"));
        Ok(block)
    }

    fn ioctl(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        args: &IoctlArgs<'_>,
        out: &mut [u8],
    ) -> FsResult<(i32, usize)> {
        let IoctlArgs {
            fh,
            cmd,
            arg,
            input,
            ..
        } = *args;
        self.rec(
            "ioctl",
            ctx,
            nodeid,
            format_args!("{fh} {cmd:#x} {arg:#x} {input:?}"),
        );
        let n = input.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), input.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok((0, n))
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
        self.rec(
            "poll",
            ctx,
            nodeid,
            format_args!("{fh} {kh} {flags:#x} {events:#x}"),
        );
        Ok(events)
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
        self.rec(
            "fallocate",
            ctx,
            nodeid,
            format_args!("{fh} {mode:#x} {offset} {length}"),
        );
        Ok(())
    }

    fn lseek(
        &self,
        ctx: &Context,
        nodeid: NodeId,
        fh: Handle,
        offset: u64,
        whence: u32,
    ) -> FsResult<u64> {
        self.rec("lseek", ctx, nodeid, format_args!("{fh} {offset} {whence}"));
        Ok(offset)
    }

    fn copy_file_range(&self, ctx: &Context, args: &CopyFileRangeArgs) -> FsResult<u64> {
        let CopyFileRangeArgs {
            nodeid_in,
            fh_in,
            off_in,
            nodeid_out,
            fh_out,
            off_out,
            len,
            flags,
        } = *args;
        self.rec(
            "copy_file_range",
            ctx,
            nodeid_in,
            format_args!("{fh_in} {off_in} {nodeid_out} {fh_out} {off_out} {len} {flags:#x}"),
        );
        Ok(len)
    }

    fn setupmapping(&self, ctx: &Context, nodeid: NodeId, args: &SetupMappingArgs) -> FsResult<()> {
        let SetupMappingArgs {
            fh,
            foffset,
            len,
            flags,
            moffset,
        } = *args;
        self.rec(
            "setupmapping",
            ctx,
            nodeid,
            format_args!("{:#x} {foffset} {len} {flags:#x} {moffset}", fh.0),
        );
        Ok(())
    }

    fn removemapping(
        &self,
        ctx: &Context,
        ranges: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> FsResult<()> {
        let all: Vec<(u64, u64)> = if self.record {
            ranges.collect()
        } else {
            Vec::new()
        };
        self.rec("removemapping", ctx, NodeId::NONE, format_args!("{all:?}"));
        Ok(())
    }

    fn syncfs(&self, ctx: &Context, nodeid: NodeId) -> FsResult<()> {
        self.rec("syncfs", ctx, nodeid, format_args!(""));
        Ok(())
    }
}
