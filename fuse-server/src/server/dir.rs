//! Directories: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
//!
//! READDIR and READDIRPLUS stream: the out header is reserved, the backend adds entries
//! through a [`DirSink`]/[`DirPlusSink`] that encodes each one straight into the reply, and
//! the handler answers [`HandlerReply::Written`].

use std::io;

use fuse_abi::limits::FUSE_NAME_MAX;
use fuse_abi::{Direntplus, Errno, FsyncFlags, FsyncIn, Opcode, OpenIn, ReadIn, ReleaseIn};
use zerocopy::IntoBytes;

use super::Server;
use super::encode::{dirent, entry_out, open_out, put};
use super::frame::{Args, Fail, HandlerReply, Out};
use crate::filesystem::{FileSystem, FsResult};
use crate::io::Writer;
use crate::types::{DirEntry, DirPlusSink, DirSink, Entry, Handle};

impl<F: FileSystem> Server<F> {
    pub(super) fn opendir<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (oi, _): (OpenIn, _) = self.arg(&a.req, a.args)?;
        let o = self.fs.opendir(&a.req.ctx, a.req.nodeid, oi.flags.get())?;
        Ok(HandlerReply::Ok(put(out.fixed, &open_out(&o))))
    }

    /// READDIR and READDIRPLUS. Entries already added are sent whatever the backend says
    /// afterwards (READDIRPLUS took lookup references for them).
    pub(super) fn readdir<'o, W: Writer + ?Sized>(
        &self,
        a: &Args<'o>,
        w: &mut W,
    ) -> Result<HandlerReply<'o>, Fail> {
        let (ri, _): (ReadIn, _) = self.arg(&a.req, a.args)?;
        self.reserve_header(w)?;
        let room = w.available();
        let mut sink = DirWriter {
            w,
            left: usize::try_from(ri.size.get())
                .unwrap_or(usize::MAX)
                .min(room),
            added: 0,
            bad_name: false,
            io_error: None,
        };
        let (ctx, nodeid, fh, offset) = (
            &a.req.ctx,
            a.req.nodeid,
            Handle(ri.fh.get()),
            ri.offset.get(),
        );
        let result = if a.req.op == Opcode::Readdirplus {
            self.fs.readdirplus(ctx, nodeid, fh, offset, &mut sink)
        } else {
            self.fs.readdir(ctx, nodeid, fh, offset, &mut sink)
        };
        let DirWriter {
            added,
            bad_name,
            io_error,
            ..
        } = sink;
        if let Some(e) = io_error {
            return Err(Fail::Io(super::Error::Write(e)));
        }
        if bad_name {
            self.bad(format_args!(
                "backend produced an invalid directory entry name"
            ));
        }
        let error = match result {
            _ if added > 0 => 0,
            Err(e) => e.to_wire(),
            Ok(()) if bad_name => Errno::EIO.to_wire(),
            Ok(()) => 0,
        };
        Ok(HandlerReply::Written { error })
    }

    pub(super) fn releasedir<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (ri, _): (ReleaseIn, _) = self.arg(&a.req, a.args)?;
        self.fs.releasedir(
            &a.req.ctx,
            a.req.nodeid,
            Handle(ri.fh.get()),
            ri.flags.get(),
        )?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn fsyncdir<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (fi, _): (FsyncIn, _) = self.arg(&a.req, a.args)?;
        let datasync =
            FsyncFlags::from_bits_retain(fi.fsync_flags.get()).contains(FsyncFlags::FDATASYNC);
        self.fs
            .fsyncdir(&a.req.ctx, a.req.nodeid, Handle(fi.fh.get()), datasync)?;
        Ok(HandlerReply::Ok(&[]))
    }
}

/// The READDIR/READDIRPLUS sink: encodes each entry straight into the reply.
struct DirWriter<'w, W: ?Sized> {
    w: &'w mut W,
    left: usize,
    added: usize,
    bad_name: bool,
    io_error: Option<io::Error>,
}

const DIR_RECORD_MAX: usize = std::mem::size_of::<Direntplus>() + FUSE_NAME_MAX + 8;

impl<W: Writer + ?Sized> DirWriter<'_, W> {
    fn valid(&mut self, name: &[u8]) -> bool {
        let ok = !name.is_empty()
            && name.len() <= FUSE_NAME_MAX
            && !name.iter().any(|&b| b == b'/' || b == 0);
        if !ok {
            self.bad_name = true;
        }
        ok
    }

    fn emit(&mut self, parts: &[&[u8]], name: &[u8]) -> bool {
        let fixed: usize = parts.iter().map(|p| p.len()).sum();
        let Some(total) = fuse_abi::dirent::align8(fixed.saturating_add(name.len())) else {
            return false;
        };
        if total > self.left || self.io_error.is_some() {
            return false;
        }
        let mut rec = [0u8; DIR_RECORD_MAX];
        let mut at = 0usize;
        for part in parts.iter().chain(std::iter::once(&name)) {
            let end = at.saturating_add(part.len());
            let Some(dst) = rec.get_mut(at..end) else {
                return false;
            };
            dst.copy_from_slice(part);
            at = end;
        }
        let Some(record) = rec.get(..total) else {
            return false;
        };
        if let Err(e) = self.w.write_all(record) {
            self.io_error = Some(e);
            return false;
        }
        self.left = self.left.saturating_sub(total);
        self.added = self.added.saturating_add(1);
        true
    }
}

impl<W: Writer + ?Sized> DirSink for DirWriter<'_, W> {
    fn add(&mut self, entry: DirEntry<'_>) -> bool {
        if !self.valid(entry.name) {
            return false;
        }
        let d = dirent(&entry);
        self.emit(&[d.as_bytes()], entry.name)
    }
}

impl<W: Writer + ?Sized> DirPlusSink for DirWriter<'_, W> {
    fn fits(&self, namelen: usize) -> bool {
        namelen <= FUSE_NAME_MAX
            && fuse_abi::dirent::direntplus_len(namelen).is_some_and(|n| n <= self.left)
            && self.io_error.is_none()
    }

    fn add(&mut self, dirent_in: DirEntry<'_>, entry: &Entry) -> bool {
        if !self.valid(dirent_in.name) {
            return false;
        }
        let e = entry_out(entry);
        let d = dirent(&dirent_in);
        self.emit(&[e.as_bytes(), d.as_bytes()], dirent_in.name)
    }
}
