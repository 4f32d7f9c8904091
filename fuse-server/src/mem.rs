//! [`Reader`] and [`Writer`] over host memory: a request in a byte slice, a reply into a byte
//! slice. Tests, fuzzing and the `/dev/fuse` transport (which `read`s a whole request into a
//! host buffer and `write`s a whole reply from one) use them.
//!
//! The zero-copy methods move file data with one positional read or write (`pread`/`pwrite`,
//! through nix, so this module needs no `unsafe`) between the file and the slice.

use std::io;
use std::os::fd::BorrowedFd;

use nix::libc::off_t;
use nix::sys::uio::{pread, pwrite};

use crate::io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};

/// A file offset as the kernel takes it: beyond `off_t` is EINVAL, as `pread` would say.
fn file_offset(off: u64) -> io::Result<off_t> {
    off_t::try_from(off).map_err(|_| io::Error::from_raw_os_error(nix::libc::EINVAL))
}

/// A request held in host memory.
#[derive(Debug)]
pub struct MemReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> MemReader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> MemReader<'a> {
        MemReader { buf, pos: 0 }
    }

    /// The bytes not yet consumed.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }
}

impl io::Read for MemReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let rest = self.rest();
        let n = rest.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl ZeroCopyReader for MemReader<'_> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let rest = self.rest();
        let data = rest.get(..count.min(rest.len())).unwrap_or(&[]);
        if data.is_empty() {
            return Ok(0);
        }
        let n = pwrite(fd, data, file_offset(off)?)?;
        self.consume(n);
        Ok(n)
    }
}

impl Reader for MemReader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// Reply space in host memory; what was written is [`MemWriter::written`].
#[derive(Debug)]
pub struct MemWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> MemWriter<'a> {
    /// Writes into `buf` from its start; `buf.len()` is the reply space.
    pub fn new(buf: &'a mut [u8]) -> MemWriter<'a> {
        MemWriter { buf, len: 0 }
    }

    /// The reply written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    fn spare(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.get_mut(len..).unwrap_or(&mut [])
    }
}

impl io::Write for MemWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let spare = self.spare();
        let n = spare.len().min(data.len());
        if let (Some(dst), Some(src)) = (spare.get_mut(..n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len = self.len.saturating_add(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ZeroCopyWriter for MemWriter<'_> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let off = file_offset(off)?;
        let spare = self.spare();
        let n = count.min(spare.len());
        let Some(dst) = spare.get_mut(..n) else {
            return Ok(0);
        };
        if dst.is_empty() {
            return Ok(0);
        }
        let got = pread(fd, dst, off)?;
        self.len = self.len.saturating_add(got);
        Ok(got)
    }
}

impl Writer for MemWriter<'_> {
    fn available(&self) -> usize {
        self.buf.len().saturating_sub(self.len)
    }

    fn bytes_written(&self) -> usize {
        self.len
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len())
            .filter(|&end| end <= self.len)
            .ok_or(io::ErrorKind::InvalidInput)?;
        let dst = self
            .buf
            .get_mut(offset..end)
            .ok_or(io::ErrorKind::InvalidInput)?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn reader_and_writer_account_bytes() {
        let mut r = MemReader::new(b"hello");
        let mut two = [0u8; 2];
        assert_eq!(r.read(&mut two).ok(), Some(2));
        assert_eq!(r.remaining(), 3);
        let mut space = [0u8; 4];
        let mut w = MemWriter::new(&mut space);
        assert_eq!(w.write(b"abcdef").ok(), Some(4));
        assert_eq!(w.available(), 0);
        assert!(w.write_at(2, b"XY").is_ok());
        assert!(w.write_at(3, b"XY").is_err());
        assert_eq!(w.written(), b"abXY");
    }

    #[test]
    #[cfg_attr(miri, ignore = "pread/pwrite")]
    fn zero_copy_moves_file_data() -> io::Result<()> {
        let file = tempfile()?;
        let mut r = MemReader::new(b"0123456789");
        assert_eq!(r.read_to(file.as_fd(), 4, 2)?, 4);
        assert_eq!(r.remaining(), 6);
        let mut space = [0u8; 8];
        let mut w = MemWriter::new(&mut space);
        assert_eq!(w.write_from(file.as_fd(), 100, 2)?, 4);
        assert_eq!(w.written(), b"0123");
        Ok(())
    }

    #[test]
    #[cfg_attr(miri, ignore = "pread/pwrite")]
    fn offset_beyond_off_t_is_einval_and_moves_nothing() -> io::Result<()> {
        let file = tempfile()?;
        let mut r = MemReader::new(b"0123");
        let err = r.read_to(file.as_fd(), 4, u64::MAX).err();
        assert_eq!(err.and_then(|e| e.raw_os_error()), Some(nix::libc::EINVAL));
        assert_eq!(r.remaining(), 4);
        let mut space = [0u8; 4];
        let mut w = MemWriter::new(&mut space);
        let err = w.write_from(file.as_fd(), 4, 1 << 63).err();
        assert_eq!(err.and_then(|e| e.raw_os_error()), Some(nix::libc::EINVAL));
        assert_eq!(w.bytes_written(), 0);
        Ok(())
    }

    #[test]
    fn partial_reads_writes_and_write_at_bounds() {
        let req = [1u8, 2, 3, 4, 5];
        let mut r = MemReader::new(&req);
        let mut two = [0; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(two, [1, 2]);
        assert_eq!(r.remaining(), 3);
        let mut buf = [0u8; 8];
        let mut w = MemWriter::new(&mut buf);
        w.write_all(&[9; 6]).unwrap();
        assert_eq!(w.write(&[7; 4]).unwrap(), 2);
        assert_eq!(w.available(), 0);
        w.write_at(1, &[0, 0]).unwrap();
        assert!(w.write_at(7, &[0, 0]).is_err());
        assert_eq!(buf, [9, 0, 0, 9, 9, 9, 7, 7]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "pread/pwrite")]
    fn zero_copy_from_a_consumed_position_and_to_end() {
        let file = tempfile().unwrap();
        let req = [1u8, 2, 3, 4, 5];
        let mut r = MemReader::new(&req);
        r.read_exact(&mut [0]).unwrap();
        assert_eq!(r.read_to(file.as_fd(), 100, 10).unwrap(), 4);
        assert_eq!(r.read_to(file.as_fd(), 100, 10).unwrap(), 0);
        let mut back = [0u8; 4];
        file.read_exact_at(&mut back, 10).unwrap();
        assert_eq!(back, [2, 3, 4, 5]);
        let mut buf = [0u8; 6];
        let mut w = MemWriter::new(&mut buf);
        w.write_all(&[0, 0]).unwrap();
        assert_eq!(w.write_from(file.as_fd(), 100, 10).unwrap(), 4);
        assert_eq!(w.write_from(file.as_fd(), 100, 10).unwrap(), 0);
        assert_eq!(buf, [0, 0, 2, 3, 4, 5]);
    }

    /// An unlinked file of its own: tests run in parallel, so each gets a distinct name.
    fn tempfile() -> io::Result<File> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir();
        let path = dir.join(format!("fuse-server-mem-{}-{n}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }
}
