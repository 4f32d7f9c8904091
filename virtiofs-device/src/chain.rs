//! Reader and writer over a descriptor chain, implementing the server's I/O traits.
//!
//! Interim adapter on top of `virtio_queue::{Reader, Writer}` until `virtiofs-transport`'s
//! zero-copy chain reader and writer land; file data takes a bounce buffer here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use fuse_server::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use virtio_queue::DescriptorChain;
use vm_memory::GuestMemory;
use vm_memory::bitmap::{BitmapSlice, WithBitmapSlice};

fn file_of(fd: BorrowedFd<'_>) -> io::Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

/// The device-readable part of a chain.
pub(crate) struct ChainReader<'a, B> {
    inner: virtio_queue::Reader<'a, B>,
}

impl<'a, B: BitmapSlice> ChainReader<'a, B> {
    /// Wraps the readable descriptors of `chain`.
    pub(crate) fn new<M>(
        mem: &'a M,
        chain: DescriptorChain<&'a M>,
    ) -> Result<ChainReader<'a, B>, virtio_queue::Error>
    where
        M: GuestMemory,
        M::Bitmap: WithBitmapSlice<'a, S = B>,
    {
        Ok(ChainReader {
            inner: virtio_queue::Reader::new(mem, chain)?,
        })
    }

    /// Copies the next `buf.len()` bytes without consuming them.
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.clone().read_exact(buf)
    }
}

impl<B: BitmapSlice> Read for ChainReader<'_, B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<B: BitmapSlice> ZeroCopyReader for ChainReader<'_, B> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let n = count.min(self.inner.available_bytes());
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        file_of(fd)?.write_all_at(&buf, off)?;
        Ok(n)
    }
}

impl<B: BitmapSlice> Reader for ChainReader<'_, B> {
    fn remaining(&self) -> usize {
        self.inner.available_bytes()
    }
}

/// The device-writable part of a chain.
pub(crate) struct ChainWriter<'a, B> {
    start: virtio_queue::Writer<'a, B>,
    inner: virtio_queue::Writer<'a, B>,
}

impl<'a, B: BitmapSlice> ChainWriter<'a, B> {
    /// Wraps the writable descriptors of `chain`.
    pub(crate) fn new<M>(
        mem: &'a M,
        chain: DescriptorChain<&'a M>,
    ) -> Result<ChainWriter<'a, B>, virtio_queue::Error>
    where
        M: GuestMemory,
        M::Bitmap: WithBitmapSlice<'a, S = B>,
    {
        let inner = virtio_queue::Writer::new(mem, chain)?;
        Ok(ChainWriter {
            start: inner.clone(),
            inner,
        })
    }
}

impl<B: BitmapSlice> Write for ChainWriter<'_, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<B: BitmapSlice> ZeroCopyWriter for ChainWriter<'_, B> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let n = count.min(self.inner.available_bytes());
        let mut buf = vec![0u8; n];
        let got = file_of(fd)?.read_at(&mut buf, off)?;
        self.inner.write_all(buf.get(..got).unwrap_or_default())?;
        Ok(got)
    }
}

impl<B: BitmapSlice> Writer for ChainWriter<'_, B> {
    fn available(&self) -> usize {
        self.inner.available_bytes()
    }

    fn bytes_written(&self) -> usize {
        self.inner.bytes_written()
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len())
            .filter(|&end| end <= self.inner.bytes_written())
            .ok_or(io::ErrorKind::InvalidInput)?;
        let _ = end;
        let mut head = self.start.clone();
        let mut tail = head.split_at(offset).map_err(io::Error::other)?;
        tail.write_all(data)
    }
}
