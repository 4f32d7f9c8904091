//! How a reply reaches the transport: a fixed-size reply is one write of header and body, so
//! the transport copies it into guest memory once.

use std::io;
use std::os::fd::BorrowedFd;

use fuse_abi::{InitFlags, Opcode, OutHeader};
use zerocopy::FromBytes;

use crate::mem::{MemReader, MemWriter};
use crate::test_utils::{TestFs, all_capabilities, init_payload, request, sample_args};
use crate::{Completion, Server, ServerConfig, Writer, ZeroCopyWriter};

/// A [`MemWriter`] that counts the calls that put bytes into the reply.
struct CountingWriter<'a> {
    inner: MemWriter<'a>,
    writes: usize,
}

impl io::Write for CountingWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.inner.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ZeroCopyWriter for CountingWriter<'_> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        self.writes += 1;
        self.inner.write_from(fd, count, off)
    }
}

impl Writer for CountingWriter<'_> {
    fn available(&self) -> usize {
        self.inner.available()
    }

    fn bytes_written(&self) -> usize {
        self.inner.bytes_written()
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.writes += 1;
        self.inner.write_at(offset, data)
    }
}

/// Sends `msg`; returns the completion, the reply and the number of writes it took.
fn send_counted<F: crate::FileSystem>(
    server: &Server<F>,
    msg: &[u8],
) -> (Completion, Vec<u8>, usize) {
    let mut buf = vec![0u8; 1 << 20];
    let mut w = CountingWriter {
        inner: MemWriter::new(&mut buf),
        writes: 0,
    };
    let completion = server
        .handle_message(&mut MemReader::new(msg), &mut w)
        .expect("a reply");
    let writes = w.writes;
    (completion, w.inner.written().to_vec(), writes)
}

#[test]
fn fixed_size_replies_are_one_write() {
    let s = Server::new(
        TestFs::recording(all_capabilities()),
        ServerConfig::default(),
    );
    let init = request(
        Opcode::Init as u32,
        1,
        0,
        &init_payload(46, InitFlags::all(), 131072),
    );
    let (_, reply, writes) = send_counted(&s, &init);
    assert_eq!((reply.len(), writes), (16 + 64, 1), "INIT");
    for op in [
        Opcode::Lookup,
        Opcode::Getattr,
        Opcode::Open,
        Opcode::Create,
        Opcode::Statfs,
        Opcode::Unlink,
    ] {
        let (completion, reply, writes) =
            send_counted(&s, &request(op as u32, 9, 1, &sample_args(op)));
        let (hdr, _) = OutHeader::read_from_prefix(&reply).expect("an out header");
        assert_eq!(completion, Completion::Replied { len: reply.len() }, "{op}");
        assert_eq!(hdr.len.get() as usize, reply.len(), "{op}");
        assert_eq!((hdr.error.get(), hdr.unique.get()), (0, 9), "{op}");
        assert_eq!(writes, 1, "{op}: header and body in one write");
    }
    // An error reply is its header alone, in one write.
    let (_, reply, writes) = send_counted(&s, &request(0xffff, 10, 1, &[]));
    assert_eq!((reply.len(), writes), (16, 1), "ENOSYS");
}
