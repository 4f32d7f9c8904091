//! The reply side of a chain: fuse-server's [`Writer`] over device-writable guest buffers.

use std::io;
use std::os::fd::BorrowedFd;

use fuse_server::{Writer, ZeroCopyWriter};
use vm_memory::bitmap::Bitmap;
use vm_memory::volatile_memory::PtrGuardMut;
use vm_memory::{Bytes, GuestMemory, Permissions};

use crate::chain::{Cursor, Segment};
use crate::error::Error;
use crate::sys::IoVecs;

/// Writes a reply into the device-writable part of a descriptor chain.
///
/// Bytes are copied in (`io::Write`, [`Writer::write_at`]) or read from a host file straight
/// into the guest buffers with one `preadv` ([`ZeroCopyWriter::write_from`]). Every byte
/// written is marked dirty in the guest memory's bitmap, when it keeps one (live migration).
///
/// The writer keeps its own copy of the first 16 bytes it wrote (the `fuse_out_header`), and
/// [`ChainRequest::finish`](crate::ChainRequest::finish) checks the reply against that copy:
/// the check judges what the device wrote, never what the guest may have put in the shared
/// buffer since.
pub struct ChainWriter<'a, M: GuestMemory + ?Sized> {
    mem: &'a M,
    segs: &'a [Segment],
    cur: Cursor<'a>,
    capacity: usize,
    iov: &'a mut IoVecs<PtrGuardMut>,
    /// The first [`HEADER_LEN`] bytes of the reply as written (valid up to `bytes_written`).
    header: [u8; HEADER_LEN],
}

/// The bytes of the reply the writer records: `len`, `error`, `unique` of the out header.
const HEADER_LEN: usize = 16;

impl<M: GuestMemory + ?Sized> std::fmt::Debug for ChainWriter<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainWriter")
            .field("written", &self.bytes_written())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<'a, M: GuestMemory + ?Sized> ChainWriter<'a, M> {
    pub(crate) fn new(mem: &'a M, segs: &'a [Segment], iov: &'a mut IoVecs<PtrGuardMut>) -> Self {
        let cur = Cursor::new(segs);
        Self {
            mem,
            segs,
            capacity: cur.remaining(),
            cur,
            iov,
            header: [0; HEADER_LEN],
        }
    }

    /// Bytes of reply space in the chain.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> usize {
        self.capacity - self.cur.remaining()
    }

    /// A cursor at absolute offset `offset` of the reply.
    fn cursor_at(&self, offset: usize) -> Cursor<'a> {
        let mut cur = Cursor::new(self.segs);
        cur.advance(offset);
        cur
    }

    /// The first 16 bytes of the reply as this writer wrote them (the out header), or `None`
    /// while fewer than 16 bytes are written.
    pub(crate) fn written_header(&self) -> Option<[u8; HEADER_LEN]> {
        (self.bytes_written() >= HEADER_LEN).then_some(self.header)
    }

    /// Records the part of `data`, written at reply offset `offset`, that falls in the header.
    fn record(&mut self, offset: usize, data: &[u8]) {
        if let Some(dst) = self.header.get_mut(offset..) {
            let n = dst.len().min(data.len());
            dst[..n].copy_from_slice(&data[..n]);
        }
    }

    /// Records the header bytes among the `n` bytes at `offset` that the host kernel wrote
    /// straight into guest memory (a zero-copy read at the reply's start): guest memory holds
    /// their only copy, so they are copied back once, right after the read.
    fn record_from_guest(&mut self, offset: usize, n: usize) {
        let Some(want) = HEADER_LEN.checked_sub(offset).map(|left| left.min(n)) else {
            return;
        };
        let mut done = offset;
        for (addr, len) in self.cursor_at(offset).pieces(want) {
            // A failed copy leaves zeros, which the reply check refuses.
            let _ = self
                .mem
                .read_slice(&mut self.header[done..done + len], addr);
            done += len;
        }
    }

    /// Copies `data` to the guest ranges starting at `cur`; returns the bytes copied.
    fn copy_in(&self, cur: &Cursor<'a>, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        for (addr, len) in cur.pieces(data.len()) {
            // `write_slice` marks the bytes dirty in the memory's bitmap.
            if let Err(e) = self.mem.write_slice(&data[done..done + len], addr) {
                if done > 0 {
                    break;
                }
                return Err(Error::GuestMemory(e).into());
            }
            done += len;
        }
        Ok(done)
    }

    /// Marks the first `n` bytes after the cursor dirty (bytes the kernel wrote).
    fn mark_dirty(&self, n: usize) {
        for (addr, len) in self.cur.pieces(n) {
            let Ok(slices) = self.mem.get_slices(addr, len, Permissions::Write) else {
                continue;
            };
            for slice in slices.flatten() {
                slice.bitmap().mark_dirty(0, slice.len());
            }
        }
    }
}

impl<M: GuestMemory + ?Sized> io::Write for ChainWriter<'_, M> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.copy_in(&self.cur, data)?;
        self.record(self.bytes_written(), &data[..n]);
        self.cur.advance(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<M: GuestMemory + ?Sized> ZeroCopyWriter for ChainWriter<'_, M> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let mem = self.mem;
        let mut batch = self.iov.batch();
        'pieces: for (addr, len) in self.cur.pieces(count) {
            let slices = mem
                .get_slices(addr, len, Permissions::Write)
                .map_err(Error::GuestMemory)?;
            for slice in slices {
                // Stop at the first failure: the iovecs must stay a contiguous prefix.
                match slice {
                    Ok(slice) if batch.push(&slice) => {}
                    Err(e) if batch.len() == 0 => return Err(Error::GuestMemory(e).into()),
                    _ => break 'pieces,
                }
            }
        }
        if batch.len() == 0 {
            return Ok(0);
        }
        let n = batch.preadv(fd, off)?;
        // A zero-sized bitmap (vm-memory's `()`) records nothing: skip the second walk.
        if size_of::<M::Bitmap>() != 0 {
            self.mark_dirty(n);
        }
        let start = self.bytes_written();
        if start < HEADER_LEN {
            self.record_from_guest(start, n);
        }
        self.cur.advance(n);
        Ok(n)
    }
}

impl<M: GuestMemory + ?Sized> Writer for ChainWriter<'_, M> {
    fn available(&self) -> usize {
        self.cur.remaining()
    }

    fn bytes_written(&self) -> usize {
        ChainWriter::bytes_written(self)
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        let in_bounds = offset
            .checked_add(data.len())
            .is_some_and(|end| end <= self.bytes_written());
        if !in_bounds {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write_at outside the written part of the reply",
            ));
        }
        let cur = self.cursor_at(offset);
        let n = self.copy_in(&cur, data)?;
        self.record(offset, &data[..n]);
        if n == data.len() {
            Ok(())
        } else {
            Err(io::ErrorKind::WriteZero.into())
        }
    }
}
