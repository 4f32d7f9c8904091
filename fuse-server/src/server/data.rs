//! File data: OPEN, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE(_64)
//! and the DAX mappings (SETUPMAPPING, REMOVEMAPPING).
//!
//! READ and WRITE data never enter a server buffer: READ reserves the out header and lets the
//! backend fill the reply through a [`ZeroCopyWriter`] bounded to the READ's size
//! ([`HandlerReply::Written`]); WRITE hands the backend the request's reader, bounded to the WRITE's
//! size.

use std::io;

use fuse_abi::{
    CopyFileRangeIn, CopyFileRangeOut, Errno, FallocateIn, FlushIn, FsyncFlags, FsyncIn, LseekIn,
    LseekOut, Opcode, OpenIn, OpenInFlags, ReadFlags, ReadIn, ReleaseFlags, ReleaseIn,
    RemovemappingIn, RemovemappingOne, SetupmappingIn, U32, U64, WriteFlags, WriteIn, WriteOut,
};
use zerocopy::FromBytes;

use super::Server;
use super::encode::{open_out, put};
use super::frame::{Args, Fail, HandlerReply, OUT_HEADER_LEN, Out};
use crate::filesystem::{
    CopyFileRangeArgs, FileSystem, FsResult, OpenArgs, ReadArgs, ReleaseArgs, SetupMappingArgs,
    WriteArgs,
};
use crate::io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use crate::types::{Handle, LockOwner, NodeId};

impl<F: FileSystem> Server<F> {
    pub(super) fn open<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (oi, _): (OpenIn, _) = self.arg(&a.req, a.args)?;
        let args = OpenArgs::new(oi.flags.get())
            .with_open_flags(OpenInFlags::from_bits_retain(oi.open_flags.get()));
        let o = self.fs.open(&a.req.ctx, a.req.nodeid, &args)?;
        Ok(HandlerReply::Ok(put(out.fixed, &open_out(&o))))
    }

    /// READ: the data goes straight into the reply; data already there is a short read,
    /// whatever the backend says after it.
    pub(super) fn read<'o, W: Writer + ?Sized>(
        &self,
        a: &Args<'o>,
        w: &mut W,
        start: usize,
    ) -> Result<HandlerReply<'o>, Fail> {
        let (ri, _): (ReadIn, _) = self.arg(&a.req, a.args)?;
        self.reserve_header(w)?;
        let size = ri.size.get();
        let room = w.available();
        let mut limited = LimitedWriter {
            inner: w,
            left: usize::try_from(size).unwrap_or(usize::MAX).min(room),
        };
        let args = ReadArgs {
            lock_owner: ReadFlags::from_bits_retain(ri.read_flags.get())
                .contains(ReadFlags::LOCKOWNER)
                .then(|| LockOwner(ri.lock_owner.get())),
            flags: ri.flags.get(),
            ..ReadArgs::new(Handle(ri.fh.get()), ri.offset.get(), size)
        };
        let result = self.fs.read(&a.req.ctx, a.req.nodeid, &args, &mut limited);
        let data = w
            .bytes_written()
            .saturating_sub(start)
            .saturating_sub(OUT_HEADER_LEN);
        let error = match result {
            Err(e) if data == 0 => e.to_wire(),
            _ => 0,
        };
        Ok(HandlerReply::Written { error })
    }

    /// WRITE: the argument is read from the request here (its data stays in the reader).
    pub(super) fn write<'o, R: Reader + ?Sized>(
        &self,
        a: &Args<'o>,
        out: Out<'o>,
        r: &mut R,
    ) -> Result<HandlerReply<'o>, Fail> {
        let mut arg = [0u8; std::mem::size_of::<WriteIn>()];
        let arg_len = fuse_abi::compat::write_in_size(a.req.minor).min(arg.len());
        if a.body_len < arg_len {
            self.bad(format_args!("WRITE argument of {} bytes", a.body_len));
            return Err(Errno::EINVAL.into());
        }
        let dst = arg.get_mut(..arg_len).unwrap_or(&mut []);
        r.read_exact(dst).map_err(super::Error::Read)?;
        let wi = WriteIn::read_from_bytes(&arg).unwrap_or_default();
        let data_len = a.body_len.saturating_sub(arg_len).saturating_sub(a.ext_len);
        let size = wi.size.get();
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        if size_usize > data_len {
            self.bad(format_args!(
                "WRITE of {size} bytes carries {data_len} bytes of data"
            ));
            return Err(Errno::EINVAL.into());
        }
        let write_flags = WriteFlags::from_bits_retain(wi.write_flags.get());
        let args = WriteArgs {
            lock_owner: write_flags
                .contains(WriteFlags::LOCKOWNER)
                .then(|| LockOwner(wi.lock_owner.get())),
            write_flags,
            flags: wi.flags.get(),
            ..WriteArgs::new(Handle(wi.fh.get()), wi.offset.get(), size)
        };
        let mut limited = LimitedReader {
            inner: r,
            left: size_usize,
        };
        let n = self
            .fs
            .write(&a.req.ctx, a.req.nodeid, &args, &mut limited)?;
        let n = u32::try_from(n.min(size_usize)).unwrap_or(size);
        let wo = WriteOut {
            size: U32::new(n),
            padding: U32::new(0),
        };
        Ok(HandlerReply::Ok(put(out.fixed, &wo)))
    }

    pub(super) fn flush<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (fi, _): (FlushIn, _) = self.arg(&a.req, a.args)?;
        self.fs.flush(
            &a.req.ctx,
            a.req.nodeid,
            Handle(fi.fh.get()),
            LockOwner(fi.lock_owner.get()),
        )?;
        Ok(HandlerReply::Ok(&[]))
    }

    /// RELEASE: the lock owner is passed when the kernel asks for a flush or a flock release.
    pub(super) fn release<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (ri, _): (ReleaseIn, _) = self.arg(&a.req, a.args)?;
        let rf = ReleaseFlags::from_bits_retain(ri.release_flags.get());
        let flush = rf.contains(ReleaseFlags::FLUSH);
        let flock_release = rf.contains(ReleaseFlags::FLOCK_UNLOCK);
        let args = ReleaseArgs {
            flags: ri.flags.get(),
            flush,
            flock_release,
            lock_owner: (flush || flock_release).then(|| LockOwner(ri.lock_owner.get())),
            ..ReleaseArgs::new(Handle(ri.fh.get()))
        };
        self.fs.release(&a.req.ctx, a.req.nodeid, &args)?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn fsync<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (fi, _): (FsyncIn, _) = self.arg(&a.req, a.args)?;
        let datasync =
            FsyncFlags::from_bits_retain(fi.fsync_flags.get()).contains(FsyncFlags::FDATASYNC);
        self.fs
            .fsync(&a.req.ctx, a.req.nodeid, Handle(fi.fh.get()), datasync)?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn fallocate<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (fi, _): (FallocateIn, _) = self.arg(&a.req, a.args)?;
        self.fs.fallocate(
            &a.req.ctx,
            a.req.nodeid,
            Handle(fi.fh.get()),
            fi.mode.get(),
            fi.offset.get(),
            fi.length.get(),
        )?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn lseek<'o>(&self, a: &Args<'o>, out: Out<'o>) -> FsResult<HandlerReply<'o>> {
        let (li, _): (LseekIn, _) = self.arg(&a.req, a.args)?;
        let off = self.fs.lseek(
            &a.req.ctx,
            a.req.nodeid,
            Handle(li.fh.get()),
            li.offset.get(),
            li.whence.get(),
        )?;
        let lo = LseekOut {
            offset: U64::new(off),
        };
        Ok(HandlerReply::Ok(put(out.fixed, &lo)))
    }

    /// COPY_FILE_RANGE (its length capped to 32 bits, a WRITE-style reply) and
    /// COPY_FILE_RANGE_64.
    pub(super) fn copy_file_range<'o>(
        &self,
        a: &Args<'o>,
        out: Out<'o>,
    ) -> FsResult<HandlerReply<'o>> {
        let (ci, _): (CopyFileRangeIn, _) = self.arg(&a.req, a.args)?;
        let wide = a.req.op == Opcode::CopyFileRange64;
        let len = if wide {
            ci.len.get()
        } else {
            ci.len.get().min(u64::from(u32::MAX))
        };
        let args = CopyFileRangeArgs::new(
            a.req.nodeid,
            Handle(ci.fh_in.get()),
            ci.off_in.get(),
            NodeId(ci.nodeid_out.get()),
            Handle(ci.fh_out.get()),
            ci.off_out.get(),
            len,
        )
        .with_flags(ci.flags.get());
        let n = self.fs.copy_file_range(&a.req.ctx, &args)?.min(len);
        Ok(HandlerReply::Ok(if wide {
            let co = CopyFileRangeOut {
                bytes_copied: U64::new(n),
            };
            put(out.fixed, &co)
        } else {
            let wo = WriteOut {
                size: U32::new(u32::try_from(n).unwrap_or(u32::MAX)),
                padding: U32::new(0),
            };
            put(out.fixed, &wo)
        }))
    }

    pub(super) fn setupmapping<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (si, _): (SetupmappingIn, _) = self.arg(&a.req, a.args)?;
        let args = SetupMappingArgs::new(
            Handle(si.fh.get()),
            si.foffset.get(),
            si.len.get(),
            si.moffset.get(),
        )
        .with_flags(si.flags.get());
        self.fs.setupmapping(&a.req.ctx, a.req.nodeid, &args)?;
        Ok(HandlerReply::Ok(&[]))
    }

    pub(super) fn removemapping<'o>(&self, a: &Args<'o>) -> FsResult<HandlerReply<'o>> {
        let (ri, rest): (RemovemappingIn, _) = self.arg(&a.req, a.args)?;
        let count = usize::try_from(ri.count.get()).unwrap_or(usize::MAX);
        let one = std::mem::size_of::<RemovemappingOne>();
        if count.saturating_mul(one) > rest.len() {
            self.bad(format_args!(
                "REMOVEMAPPING of {count} ranges in {} bytes",
                rest.len()
            ));
            return Err(Errno::EINVAL);
        }
        let mut it = rest
            .chunks_exact(one)
            .take(count)
            .filter_map(|c| RemovemappingOne::read_from_bytes(c).ok())
            .map(|m| (m.moffset.get(), m.len.get()));
        self.fs.removemapping(&a.req.ctx, &mut it)?;
        Ok(HandlerReply::Ok(&[]))
    }
}

/// Request data bounded to the WRITE's `size`.
struct LimitedReader<'r, R: ?Sized> {
    inner: &'r mut R,
    left: usize,
}

impl<R: Reader + ?Sized> ZeroCopyReader for LimitedReader<'_, R> {
    fn read_to(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        count: usize,
        off: u64,
    ) -> io::Result<usize> {
        let n = self.inner.read_to(fd, count.min(self.left), off)?;
        self.left = self.left.saturating_sub(n);
        Ok(n)
    }
}

/// Reply space bounded to the READ's `size`.
struct LimitedWriter<'w, W: ?Sized> {
    inner: &'w mut W,
    left: usize,
}

impl<W: Writer + ?Sized> ZeroCopyWriter for LimitedWriter<'_, W> {
    fn write_from(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        count: usize,
        off: u64,
    ) -> io::Result<usize> {
        let n = self.inner.write_from(fd, count.min(self.left), off)?;
        self.left = self.left.saturating_sub(n);
        Ok(n)
    }
}
