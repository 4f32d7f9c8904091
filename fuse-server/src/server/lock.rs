//! POSIX and BSD locks: GETLK, SETLK, SETLKW.

use fuse_abi::{FileLock, LkFlags, LkIn, LkOut, Opcode, U32, U64};

use super::Server;
use super::decode::lock;
use super::encode::put;
use super::frame::{Args, HandlerReply, Out};
use crate::filesystem::{FileSystem, FsResult, LockArgs};
use crate::types::{Handle, LockOwner};

impl<F: FileSystem> Server<F> {
    pub(super) fn getlk<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (li, _): (LkIn, _) = self.arg(&a.req, a.args)?;
        let args = LockArgs::new(Handle(li.fh.get()), LockOwner(li.owner.get()), lock(&li.lk));
        let l = self.fs.getlk(&a.req.ctx, a.req.nodeid, &args)?;
        let lo = LkOut {
            lk: FileLock {
                start: U64::new(l.start),
                end: U64::new(l.end),
                typ: U32::new(l.typ),
                pid: U32::new(l.pid),
            },
        };
        Ok(HandlerReply::Ok(put(out.fixed, &lo)))
    }

    /// SETLK and SETLKW (which may sleep: EAGAIN from the backend makes it pending);
    /// FUSE_LK_FLOCK marks a flock(2) request.
    pub(super) fn setlk<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (li, _): (LkIn, _) = self.arg(&a.req, a.args)?;
        let flock = LkFlags::from_bits_retain(li.lk_flags.get()).contains(LkFlags::FLOCK);
        let sleep = a.req.op == Opcode::Setlkw;
        let args = LockArgs::new(Handle(li.fh.get()), LockOwner(li.owner.get()), lock(&li.lk))
            .with_sleep(sleep)
            .with_flock(flock);
        match self.fs.setlk(&a.req.ctx, a.req.nodeid, &args) {
            // A sleeping request whose lock is held: the transport asks again later.
            Err(fuse_abi::Errno::EAGAIN) if sleep => Ok(HandlerReply::Pending),
            Err(e) => Err(e),
            Ok(()) => Ok(HandlerReply::Ok(&[])),
        }
    }
}
