//! Entries and attributes: LOOKUP, FORGET, BATCH_FORGET, GETATTR, SETATTR, STATX, READLINK,
//! the namespace operations (SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR, RENAME, RENAME2, LINK) and
//! the two that create and open (CREATE, TMPFILE).

use fuse_abi::limits::PATH_MAX;
use fuse_abi::{
    BatchForgetIn, CreateIn, Errno, ForgetIn, ForgetOne, GetattrFlags, GetattrIn, LinkIn, MkdirIn,
    MknodIn, OpenInFlags, Rename2In, RenameFlags, RenameIn, SetattrIn, StatxIn, StatxOut, U32, U64,
};
use zerocopy::FromBytes;

use super::Server;
use super::decode::set_attr;
use super::encode::{attr_out, entry_out, open_out, put, put2, split_duration};
use super::frame::{Args, HandlerReply, Out, scratch_buf};
use crate::filesystem::{CreateArgs, FileSystem, FsResult, OpenArgs, TmpfileArgs};
use crate::types::{Handle, NodeId};

impl<F: FileSystem> Server<F> {
    pub(super) fn lookup<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (name, _) = self.name(&a.req, a.args, true)?;
        let e = self.fs.lookup(&a.req.ctx, a.req.nodeid, name)?;
        Ok(HandlerReply::Ok(put(out.fixed, &entry_out(&e))))
    }

    pub(super) fn forget<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (fi, _): (ForgetIn, _) = self.arg(&a.req, a.args)?;
        self.fs.forget(&a.req.ctx, a.req.nodeid, fi.nlookup.get());
        Ok(HandlerReply::None)
    }

    pub(super) fn batch_forget<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (bi, rest): (BatchForgetIn, _) = self.arg(&a.req, a.args)?;
        let count = usize::try_from(bi.count.get()).unwrap_or(usize::MAX);
        let one = std::mem::size_of::<ForgetOne>();
        if count.saturating_mul(one) > rest.len() {
            self.bad(format_args!(
                "BATCH_FORGET of {count} entries in {} bytes",
                rest.len()
            ));
        }
        let mut it = rest
            .chunks_exact(one)
            .take(count)
            .filter_map(|c| ForgetOne::read_from_bytes(c).ok())
            .map(|f| (NodeId(f.nodeid.get()), f.nlookup.get()));
        self.fs.batch_forget(&a.req.ctx, &mut it);
        Ok(HandlerReply::None)
    }

    pub(super) fn getattr<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let fh = if fuse_abi::compat::getattr_in_size(a.req.minor) == 0 {
            None
        } else {
            let (gi, _): (GetattrIn, _) = self.arg(&a.req, a.args)?;
            GetattrFlags::from_bits_retain(gi.getattr_flags.get())
                .contains(GetattrFlags::FH)
                .then(|| Handle(gi.fh.get()))
        };
        let r = self.fs.getattr(&a.req.ctx, a.req.nodeid, fh)?;
        Ok(HandlerReply::Ok(put(out.fixed, &attr_out(&r))))
    }

    pub(super) fn setattr<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (si, _): (SetattrIn, _) = self.arg(&a.req, a.args)?;
        let r = self.fs.setattr(&a.req.ctx, a.req.nodeid, &set_attr(&si))?;
        Ok(HandlerReply::Ok(put(out.fixed, &attr_out(&r))))
    }

    pub(super) fn statx<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (si, _): (StatxIn, _) = self.arg(&a.req, a.args)?;
        let fh = GetattrFlags::from_bits_retain(si.getattr_flags.get())
            .contains(GetattrFlags::FH)
            .then(|| Handle(si.fh.get()));
        let s = self.fs.statx(
            &a.req.ctx,
            a.req.nodeid,
            fh,
            si.sx_flags.get(),
            si.sx_mask.get(),
        )?;
        let (secs, nsecs) = split_duration(s.timeout);
        let so = StatxOut {
            attr_valid: U64::new(secs),
            attr_valid_nsec: U32::new(nsecs),
            stat: s.statx,
            ..StatxOut::default()
        };
        Ok(HandlerReply::Ok(put(out.fixed, &so)))
    }

    pub(super) fn readlink<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let buf = scratch_buf(out.scratch, PATH_MAX);
        let n = self.fs.readlink(&a.req.ctx, a.req.nodeid, buf)?;
        Ok(HandlerReply::Ok(buf.get(..n).ok_or(Errno::EIO)?))
    }

    pub(super) fn symlink<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (name, rest) = self.name(&a.req, a.args, false)?;
        let (target, _) = self.cstr(&a.req, rest)?;
        if target.is_empty() || target.to_bytes_with_nul().len() > PATH_MAX {
            self.bad(format_args!(
                "SYMLINK target of {} bytes",
                target.count_bytes()
            ));
            return Err(if target.is_empty() {
                Errno::EINVAL
            } else {
                Errno::ENAMETOOLONG
            });
        }
        let cctx = self.create_ctx(&a.req, 0, a.ext)?;
        let e = self
            .fs
            .symlink(&a.req.ctx, &cctx, a.req.nodeid, name, target)?;
        Ok(HandlerReply::Ok(put(out.fixed, &entry_out(&e))))
    }

    pub(super) fn mknod<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (mi, rest): (MknodIn, _) = self.arg(&a.req, a.args)?;
        let (name, _) = self.name(&a.req, rest, false)?;
        let cctx = self.create_ctx(&a.req, mi.umask.get(), a.ext)?;
        let e = self.fs.mknod(
            &a.req.ctx,
            &cctx,
            a.req.nodeid,
            name,
            mi.mode.get(),
            mi.rdev.get(),
        )?;
        Ok(HandlerReply::Ok(put(out.fixed, &entry_out(&e))))
    }

    pub(super) fn mkdir<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (mi, rest): (MkdirIn, _) = self.arg(&a.req, a.args)?;
        let (name, _) = self.name(&a.req, rest, false)?;
        let cctx = self.create_ctx(&a.req, mi.umask.get(), a.ext)?;
        let e = self
            .fs
            .mkdir(&a.req.ctx, &cctx, a.req.nodeid, name, mi.mode.get())?;
        Ok(HandlerReply::Ok(put(out.fixed, &entry_out(&e))))
    }

    pub(super) fn unlink<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (name, _) = self.name(&a.req, a.args, false)?;
        self.fs.unlink(&a.req.ctx, a.req.nodeid, name)?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn rmdir<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (name, _) = self.name(&a.req, a.args, false)?;
        self.fs.rmdir(&a.req.ctx, a.req.nodeid, name)?;
        Ok(HandlerReply::Ok(&[]))
    }

    /// RENAME and RENAME2 (RENAME is RENAME2 without flags).
    pub(super) fn rename<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (newdir, flags, rest) = if a.req.op == fuse_abi::Opcode::Rename {
            let (ri, rest): (RenameIn, _) = self.arg(&a.req, a.args)?;
            (NodeId(ri.newdir.get()), RenameFlags::empty(), rest)
        } else {
            let (ri, rest): (Rename2In, _) = self.arg(&a.req, a.args)?;
            let flags = RenameFlags::from_bits(ri.flags.get()).ok_or_else(|| {
                self.bad(format_args!("RENAME2 flags {:#x}", ri.flags.get()));
                Errno::EINVAL
            })?;
            (NodeId(ri.newdir.get()), flags, rest)
        };
        let (oldname, rest) = self.name(&a.req, rest, false)?;
        let (newname, _) = self.name(&a.req, rest, false)?;
        self.fs
            .rename(&a.req.ctx, a.req.nodeid, oldname, newdir, newname, flags)?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn link<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (li, rest): (LinkIn, _) = self.arg(&a.req, a.args)?;
        let (name, _) = self.name(&a.req, rest, false)?;
        let e = self
            .fs
            .link(&a.req.ctx, NodeId(li.oldnodeid.get()), a.req.nodeid, name)?;
        Ok(HandlerReply::Ok(put(out.fixed, &entry_out(&e))))
    }

    pub(super) fn create<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (ci, rest): (CreateIn, _) = self.arg(&a.req, a.args)?;
        let (name, _) = self.name(&a.req, rest, false)?;
        let cctx = self.create_ctx(&a.req, ci.umask.get(), a.ext)?;
        let args = CreateArgs::new(name, ci.mode.get(), create_open(&ci));
        let (e, o) = self.fs.create(&a.req.ctx, &cctx, a.req.nodeid, &args)?;
        Ok(HandlerReply::Ok(put2(
            out.fixed,
            &entry_out(&e),
            &open_out(&o),
        )))
    }

    pub(super) fn tmpfile<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (ci, _): (CreateIn, _) = self.arg(&a.req, a.args)?;
        let cctx = self.create_ctx(&a.req, ci.umask.get(), a.ext)?;
        let args = TmpfileArgs::new(ci.mode.get(), create_open(&ci));
        let (e, o) = self.fs.tmpfile(&a.req.ctx, &cctx, a.req.nodeid, &args)?;
        Ok(HandlerReply::Ok(put2(
            out.fixed,
            &entry_out(&e),
            &open_out(&o),
        )))
    }
}

/// The open part of a CREATE or TMPFILE argument.
fn create_open(ci: &CreateIn) -> OpenArgs {
    OpenArgs::new(ci.flags.get())
        .with_open_flags(OpenInFlags::from_bits_retain(ci.open_flags.get()))
}
