//! The rest: STATFS, ACCESS, INTERRUPT, BMAP, IOCTL, POLL, NOTIFY_REPLY, SYNCFS.

use fuse_abi::limits::XATTR_SIZE_MAX;
use fuse_abi::{
    AccessIn, BmapIn, BmapOut, Errno, I32, IoctlFlags, IoctlIn, IoctlOut, Kstatfs, PollIn, PollOut,
    StatfsOut, U32, U64,
};
use zerocopy::IntoBytes;

use super::Server;
use super::encode::put;
use super::frame::{Args, HandlerReply, Out, scratch_buf};
use crate::filesystem::{FileSystem, FsResult, IoctlArgs};
use crate::types::Handle;

impl<F: FileSystem> Server<F> {
    pub(super) fn statfs<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let s = self.fs.statfs(&a.req.ctx, a.req.nodeid)?;
        let so = StatfsOut {
            st: Kstatfs {
                blocks: U64::new(s.blocks),
                bfree: U64::new(s.bfree),
                bavail: U64::new(s.bavail),
                files: U64::new(s.files),
                ffree: U64::new(s.ffree),
                bsize: U32::new(s.bsize),
                namelen: U32::new(s.namelen),
                frsize: U32::new(s.frsize),
                ..Kstatfs::default()
            },
        };
        Ok(HandlerReply::Ok(put(out.fixed, &so)))
    }

    pub(super) fn access<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (ai, _): (AccessIn, _) = self.arg(&a.req, a.args)?;
        self.fs.access(&a.req.ctx, a.req.nodeid, ai.mask.get())?;
        Ok(HandlerReply::Ok(&[]))
    }

    /// INTERRUPT: never sent on virtio-fs; on `/dev/fuse`, ENOSYS makes the kernel stop
    /// sending it. Requests are never interrupted.
    pub(super) fn interrupt<'o>(&self) -> HandlerReply<'o> {
        HandlerReply::Err(Errno::ENOSYS)
    }

    pub(super) fn bmap<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (bi, _): (BmapIn, _) = self.arg(&a.req, a.args)?;
        let block = self
            .fs
            .bmap(&a.req.ctx, a.req.nodeid, bi.blocksize.get(), bi.block.get())?;
        let bo = BmapOut {
            block: U64::new(block),
        };
        Ok(HandlerReply::Ok(put(out.fixed, &bo)))
    }

    /// IOCTL: restricted ioctls only (unrestricted ones are CUSE's); the reply data follows
    /// the `fuse_ioctl_out` in the scratch buffer.
    pub(super) fn ioctl<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (ii, rest): (IoctlIn, _) = self.arg(&a.req, a.args)?;
        let flags = IoctlFlags::from_bits_retain(ii.flags.get());
        if flags.contains(IoctlFlags::UNRESTRICTED) {
            return Err(Errno::ENOSYS);
        }
        let in_size = usize::try_from(ii.in_size.get()).unwrap_or(usize::MAX);
        let input = rest.get(..in_size).ok_or_else(|| {
            self.bad(format_args!("IOCTL input of {in_size} bytes overruns"));
            Errno::EINVAL
        })?;
        let out_size = usize::try_from(ii.out_size.get()).unwrap_or(usize::MAX);
        let io_len = std::mem::size_of::<IoctlOut>();
        let room = out_size
            .min(XATTR_SIZE_MAX)
            .min(out.avail.saturating_sub(io_len));
        let buf = scratch_buf(out.scratch, io_len.saturating_add(room));
        let (head, data) = buf.split_at_mut(io_len);
        let args = IoctlArgs::new(Handle(ii.fh.get()), ii.cmd.get(), ii.arg.get(), input)
            .with_flags(flags);
        let (result, n) = self.fs.ioctl(&a.req.ctx, a.req.nodeid, &args, data)?;
        if n > data.len() {
            return Err(Errno::EIO);
        }
        let io = IoctlOut {
            result: I32::new(result),
            ..IoctlOut::default()
        };
        head.copy_from_slice(io.as_bytes());
        let total = io_len.saturating_add(n);
        Ok(HandlerReply::Ok(buf.get(..total).ok_or(Errno::EIO)?))
    }

    pub(super) fn poll<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (pi, _): (PollIn, _) = self.arg(&a.req, a.args)?;
        let revents = self.fs.poll(
            &a.req.ctx,
            a.req.nodeid,
            Handle(pi.fh.get()),
            pi.kh.get(),
            pi.flags.get(),
            pi.events.get(),
        )?;
        let po = PollOut {
            revents: U32::new(revents),
            padding: U32::new(0),
        };
        Ok(HandlerReply::Ok(put(out.fixed, &po)))
    }

    /// NOTIFY_REPLY: the answer to a NOTIFY_RETRIEVE, which this server never sends; dropped.
    pub(super) fn notify_reply<'o>(&self) -> HandlerReply<'o> {
        HandlerReply::None
    }

    pub(super) fn syncfs<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        self.fs.syncfs(&a.req.ctx, a.req.nodeid)?;
        Ok(HandlerReply::Ok(&[]))
    }
}
