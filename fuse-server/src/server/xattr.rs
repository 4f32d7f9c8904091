//! Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.

use fuse_abi::limits::XATTR_SIZE_MAX;
use fuse_abi::{
    Errno, GetxattrIn, GetxattrOut, InitFlags, Opcode, SetxattrFlags, SetxattrIn, SetxattrInCompat,
    U32,
};

use super::Server;
use super::encode::put;
use super::frame::{Args, HandlerReply, Out, scratch_buf};
use crate::filesystem::{FileSystem, FsResult, SetxattrArgs};
use crate::types::XattrReply;

impl<F: FileSystem> Server<F> {
    /// SETXATTR, in its SETXATTR_EXT form when that was negotiated.
    pub(super) fn setxattr<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (size, flags, sflags, rest) = if a.req.flags.contains(InitFlags::SETXATTR_EXT) {
            let (si, rest): (SetxattrIn, _) = self.arg(&a.req, a.args)?;
            let sf = SetxattrFlags::from_bits_retain(si.setxattr_flags.get());
            (si.size.get(), si.flags.get(), sf, rest)
        } else {
            let (si, rest): (SetxattrInCompat, _) = self.arg(&a.req, a.args)?;
            (si.size.get(), si.flags.get(), SetxattrFlags::empty(), rest)
        };
        let (name, rest) = self.xattr_name(&a.req, rest)?;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let value = rest.get(..size).ok_or_else(|| {
            self.bad(format_args!("SETXATTR value of {size} bytes overruns"));
            Errno::EINVAL
        })?;
        let args = SetxattrArgs::new(name, value)
            .with_flags(flags)
            .with_setxattr_flags(sflags);
        self.fs.setxattr(&a.req.ctx, a.req.nodeid, &args)?;
        Ok(HandlerReply::Ok(&[]))
    }

    /// GETXATTR and LISTXATTR: size 0 asks for the size, otherwise for the data.
    pub(super) fn getxattr<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (gi, rest): (GetxattrIn, _) = self.arg(&a.req, a.args)?;
        let size = usize::try_from(gi.size.get()).unwrap_or(usize::MAX);
        let len = if size == 0 {
            0
        } else {
            size.min(XATTR_SIZE_MAX).min(out.avail)
        };
        let buf = scratch_buf(out.scratch, len);
        let got = if a.req.op == Opcode::Getxattr {
            let (name, _) = self.xattr_name(&a.req, rest)?;
            self.fs.getxattr(&a.req.ctx, a.req.nodeid, name, buf)?
        } else {
            self.fs.listxattr(&a.req.ctx, a.req.nodeid, buf)?
        };
        match got {
            XattrReply::Size(s) if size == 0 => {
                let go = GetxattrOut {
                    size: U32::new(s),
                    padding: U32::new(0),
                };
                Ok(HandlerReply::Ok(put(out.fixed, &go)))
            }
            XattrReply::Data(n) if size != 0 => {
                Ok(HandlerReply::Ok(buf.get(..n).ok_or(Errno::EIO)?))
            }
            _ => Err(Errno::EIO),
        }
    }

    pub(super) fn removexattr<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (name, _) = self.xattr_name(&a.req, a.args)?;
        self.fs.removexattr(&a.req.ctx, a.req.nodeid, name)?;
        Ok(HandlerReply::Ok(&[]))
    }
}
