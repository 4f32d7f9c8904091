//! The byte-moving traits a transport implements and the server and backends use.
//!
//! File data never passes through a heap buffer: for READ the backend hands a host file
//! descriptor to [`ZeroCopyWriter::write_from`], and the transport fills the reply's buffers
//! with one `preadv`; for WRITE the backend calls [`ZeroCopyReader::read_to`] and the transport
//! drains the request's buffers into the file with one `pwritev`.

use std::io;
use std::os::fd::BorrowedFd;

/// Request data that can be moved into a host file without an intermediate copy.
pub trait ZeroCopyReader {
    /// Writes up to `count` bytes of the remaining request data to `fd` at offset `off`
    /// (`pwritev` over the request's buffers) and consumes them. Returns the bytes written,
    /// which may be fewer than `count` (short write, or less data left); 0 means no data left.
    ///
    /// # Errors
    ///
    /// The host error of the write, or `InvalidData` for a malformed request buffer.
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize>;

    /// Like [`read_to`](Self::read_to) but retries short writes until `count` bytes are
    /// written.
    ///
    /// # Errors
    ///
    /// As `read_to`; `WriteZero` if the file or the request ran out before `count` bytes.
    fn read_exact_to(
        &mut self,
        fd: BorrowedFd<'_>,
        mut count: usize,
        mut off: u64,
    ) -> io::Result<()> {
        while count > 0 {
            match self.read_to(fd, count, off) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    count = count.saturating_sub(n);
                    off = off.saturating_add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Reply space that a host file can be read into without an intermediate copy.
pub trait ZeroCopyWriter {
    /// Reads up to `count` bytes from `fd` at offset `off` into the reply (`preadv` into the
    /// reply's buffers) and accounts them as written. Returns the bytes read; 0 means end of
    /// file (or no reply space left).
    ///
    /// # Errors
    ///
    /// The host error of the read.
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize>;
}

/// The device-readable part of a request, positioned after what has been consumed.
pub trait Reader: io::Read + ZeroCopyReader {
    /// Bytes not yet consumed.
    fn remaining(&self) -> usize;
}

/// The device-writable part of a request: where the reply goes.
///
/// The server writes a reply whose length it knows up front (most replies) as the out header
/// and body, a fixed-size one in a single write. A body streamed in place (READ, READDIR)
/// follows a reserved out header, which the server fills in with [`Writer::write_at`] once the
/// body's length is known. Either way `out_header.len` equals the bytes written.
pub trait Writer: io::Write + ZeroCopyWriter {
    /// Bytes of reply space left.
    fn available(&self) -> usize;

    /// Bytes written so far (the future used length).
    fn bytes_written(&self) -> usize;

    /// Overwrites `data` at absolute offset `offset` of the reply, which must lie within what
    /// has already been written. Does not change [`bytes_written`](Self::bytes_written).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range is not within the written part.
    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()>;
}
