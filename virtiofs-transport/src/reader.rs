//! The request side of a chain: fuse-server's [`Reader`] over device-readable guest buffers.

use std::io;
use std::os::fd::BorrowedFd;

use fuse_abi::InHeaderPrefix;
use fuse_server::{Reader, ZeroCopyReader};
use vm_memory::volatile_memory::PtrGuard;
use vm_memory::{Bytes, GuestMemory, Permissions};

use crate::chain::{Cursor, Segment};
use crate::error::Error;
use crate::reply::decode_head;
use crate::sys::IoVecs;

/// Reads a request out of the device-readable part of a descriptor chain.
///
/// Bytes are copied out of guest memory (`io::Read`), or moved straight into a host file with
/// one `pwritev` over the guest buffers ([`ZeroCopyReader::read_to`]). No reference into guest
/// memory is ever formed.
pub struct ChainReader<'a, M: GuestMemory + ?Sized> {
    mem: &'a M,
    cur: Cursor<'a>,
    iov: &'a mut IoVecs<PtrGuard>,
    /// The first 16 bytes, copied when the chain was walked (`None`: shorter or unreadable).
    head: Option<InHeaderPrefix>,
    /// The header's `nodeid` (bytes 16..24), copied with them.
    nodeid: Option<u64>,
}

impl<M: GuestMemory + ?Sized> std::fmt::Debug for ChainReader<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainReader")
            .field("remaining", &self.cur.remaining())
            .finish_non_exhaustive()
    }
}

impl<'a, M: GuestMemory + ?Sized> ChainReader<'a, M> {
    pub(crate) fn new(mem: &'a M, segs: &'a [Segment], iov: &'a mut IoVecs<PtrGuard>) -> Self {
        let mut reader = Self {
            mem,
            cur: Cursor::new(segs),
            iov,
            head: None,
            nodeid: None,
        };
        (reader.head, reader.nodeid) = reader.peek_head();
        reader
    }

    /// The request's first 16 bytes (`len`, `opcode`, `unique`) as the transport copied them
    /// when it walked the chain — the copy [`ChainRequest::finish`](crate::ChainRequest::finish)
    /// checks the reply against — or `None` if the request is shorter. Reading does not
    /// consume them; the guest may have changed its buffer since, so a caller that acts on the
    /// opcode must see to it that the server reads these bytes too.
    pub fn request_head(&self) -> Option<InHeaderPrefix> {
        self.head
    }

    /// The header's `nodeid` as copied with [`request_head`](Self::request_head), or `None` if
    /// the request is shorter than 24 bytes. A hint for the device (which parked requests a
    /// completion may concern); the server reads its own copy.
    pub fn request_nodeid(&self) -> Option<u64> {
        self.nodeid
    }

    /// Copies the first 24 bytes (`len`, `opcode`, `unique`, `nodeid`) without consuming them:
    /// the first 16 if there are that many, the node id if there are 24.
    fn peek_head(&self) -> (Option<InHeaderPrefix>, Option<u64>) {
        let mut head = [0u8; 24];
        let mut done = 0;
        for (addr, len) in self.cur.pieces(24) {
            let Some(dst) = head.get_mut(done..done + len) else {
                break;
            };
            if self.mem.read_slice(dst, addr).is_err() {
                break;
            }
            done += len;
        }
        let prefix = head
            .first_chunk::<16>()
            .filter(|_| done >= 16)
            .map(|h| decode_head(*h));
        let nodeid = head
            .last_chunk::<8>()
            .filter(|_| done == 24)
            .map(|n| u64::from_le_bytes(*n));
        (prefix, nodeid)
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.cur.remaining()
    }
}

impl<M: GuestMemory + ?Sized> io::Read for ChainReader<'_, M> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        for (addr, len) in self.cur.pieces(buf.len()) {
            let dst = &mut buf[done..done + len];
            if let Err(e) = self.mem.read_slice(dst, addr) {
                if done > 0 {
                    break;
                }
                return Err(Error::GuestMemory(e).into());
            }
            done += len;
        }
        self.cur.advance(done);
        Ok(done)
    }
}

impl<M: GuestMemory + ?Sized> ZeroCopyReader for ChainReader<'_, M> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let mem = self.mem;
        let mut batch = self.iov.batch();
        'pieces: for (addr, len) in self.cur.pieces(count) {
            let slices = mem
                .get_slices(addr, len, Permissions::Read)
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
        let n = batch.pwritev(fd, off)?;
        self.cur.advance(n);
        Ok(n)
    }
}

impl<M: GuestMemory + ?Sized> Reader for ChainReader<'_, M> {
    fn remaining(&self) -> usize {
        self.cur.remaining()
    }
}
