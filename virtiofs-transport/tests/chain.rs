//! Descriptor chains: parsing, every malformed layout, reader/writer byte accounting, the
//! used-length invariant, zero-copy file I/O with dirty tracking, and the queue loop.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;

use common::*;
use fuse_server::Completion;
use fuse_server::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use virtio_queue::desc::split::Descriptor;
use virtiofs_transport::{ChainBuffers, DescTable, Error};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM_SIZE: usize = 0x10_0000;

fn memory() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

fn parse_err(mem: &GuestMemoryMmap<()>, head: u16) -> Error {
    let mut bufs = ChainBuffers::new();
    bufs.parse(mem, TABLE, head).unwrap_err()
}

#[test]
fn request_and_reply_cross_descriptors() {
    for indirect in [false, true] {
        let mem = memory();
        let mut next = DATA;
        let rd = place(&[10, 0, 7, 40], false, &mut next, 3);
        let wr = place(&[5, 0, 11, 100], true, &mut next, 1);
        let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
        let head = install(&mem, &chain, indirect);
        let body: Vec<u8> = (0..41u8).collect();
        let req = request_bytes(3, 0x77, &body);
        fill(&mem, &rd, &req);

        let mut bufs = ChainBuffers::new();
        let mut r = bufs.parse(&mem, TABLE, head).unwrap();
        assert_eq!(r.head_index(), head);
        let (reader, writer) = r.io();
        assert_eq!(Reader::remaining(reader), 57);
        assert_eq!(writer.available(), 116);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, req);
        assert_eq!(Reader::remaining(reader), 0);

        let payload: Vec<u8> = (0..30u8).map(|b| b ^ 0x5a).collect();
        writer.write_all(&[0; 16]).unwrap();
        writer.write_all(&payload).unwrap();
        writer.write_at(0, &out_header(46, 0, 0x77)).unwrap();
        assert_eq!(Writer::bytes_written(writer), 46);
        let done = r.finish().unwrap();
        assert_eq!(done.used_len(), 46);

        let reply = collect(&mem, &wr, 46);
        assert_eq!(&reply[..16], &out_header(46, 0, 0x77));
        assert_eq!(&reply[16..], &payload[..]);
    }
}

#[test]
fn reply_space_runs_out_cleanly() {
    let mem = memory();
    let mut next = DATA;
    let rd = place(&[16], false, &mut next, 0);
    let wr = place(&[8, 8], true, &mut next, 0);
    let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    let head = install(&mem, &chain, false);
    let mut bufs = ChainBuffers::new();
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let w = r.writer();
    assert_eq!(w.write(&[1; 20]).unwrap(), 16);
    assert_eq!(w.write(&[1; 4]).unwrap(), 0);
    assert!(w.write_all(&[1]).is_err());
    assert!(w.write_at(10, &[0; 7]).is_err(), "past the written part");
    assert!(
        w.write_at(usize::MAX, &[0; 2]).is_err(),
        "overflowing offset"
    );
    w.write_at(6, &[9; 4]).unwrap();
    assert_eq!(collect(&mem, &wr, 16)[6..10], [9; 4]);
}

#[test]
fn readable_only_and_writable_only_chains() {
    let mem = memory();
    let mut next = DATA;
    // hiprio FORGET: readable only, no reply.
    let rd = place(&[48], false, &mut next, 0);
    let head = install(&mem, &rd, false);
    fill(&mem, &rd, &request_bytes(2, 9, &[0; 32]));
    let mut bufs = ChainBuffers::new();
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    assert_eq!(r.writer().available(), 0);
    let mut hdr = [0u8; 40];
    r.reader().read_exact(&mut hdr).unwrap();
    assert_eq!(r.finish().unwrap().completion(), Completion::NoReply);

    // No readable part: nothing to answer.
    let wr = place(&[64], true, &mut next, 0);
    let head = install(&mem, &wr, false);
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    assert_eq!(Reader::remaining(r.reader()), 0);
    assert_eq!(r.finish().unwrap().completion(), Completion::NoReply);
}

/// The used length can only come from a finished reply, and only when it equals the bytes
/// written, equals `out_header.len`, and the reply echoes the request's unique.
#[test]
fn used_length_is_bytes_written_and_header_len() {
    let mem = memory();
    let mut next = DATA;
    let rd = place(&[40], false, &mut next, 0);
    let wr = place(&[64, 64], true, &mut next, 0);
    let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    let head = install(&mem, &chain, false);
    fill(&mem, &rd, &request_bytes(3, 0xabcd, &[0; 24]));
    let mut bufs = ChainBuffers::new();

    let reply = |bufs: &mut ChainBuffers, hdr: [u8; 16], body: usize| {
        let mut r = bufs.parse(&mem, TABLE, head).unwrap();
        let w = r.writer();
        w.write_all(&hdr).unwrap();
        w.write_all(&vec![0xee; body]).unwrap();
        r.finish()
    };

    // Correct: header spans descriptors' worth of body.
    let c = reply(&mut bufs, out_header(16 + 100, 0, 0xabcd), 100).unwrap();
    assert_eq!(c.used_len(), 116);
    // Header len differs from the bytes written.
    assert!(matches!(
        reply(&mut bufs, out_header(16 + 99, 0, 0xabcd), 100),
        Err(Error::ReplyLength {
            header: 115,
            written: 116
        })
    ));
    // Unique not echoed.
    assert!(matches!(
        reply(&mut bufs, out_header(16, 0, 0xabce), 0),
        Err(Error::ReplyUnique {
            request: 0xabcd,
            reply: 0xabce
        })
    ));
    // Error out of range.
    assert!(matches!(
        reply(&mut bufs, out_header(16, -600, 0xabcd), 0),
        Err(Error::ReplyErrno { error: -600 })
    ));
    // A GETATTR with no reply at all.
    let r = bufs.parse(&mem, TABLE, head).unwrap();
    assert!(matches!(r.finish(), Err(Error::MissingReply { opcode: 3 })));
    // A reply shorter than the header.
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    r.writer().write_all(&[0; 8]).unwrap();
    assert!(matches!(
        r.finish(),
        Err(Error::ReplyTooShort { written: 8 })
    ));
    // The header rewritten in place with write_at is what counts.
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let w = r.writer();
    w.write_all(&[0; 16 + 20]).unwrap();
    w.write_at(0, &out_header(36, -2, 0xabcd)).unwrap();
    assert_eq!(r.finish().unwrap().used_len(), 36);
}

/// The reply is judged by the header the device wrote, not by what guest memory holds when
/// the request finishes: the guest shares that memory and may rewrite it meanwhile.
#[test]
#[cfg_attr(miri, ignore = "preadv")]
fn the_reply_check_uses_the_header_as_written() {
    let mem = memory();
    let mut next = DATA;
    let rd = place(&[40], false, &mut next, 0);
    // The out header straddles two descriptors.
    let wr = place(&[6, 64], true, &mut next, 0);
    let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    let head = install(&mem, &chain, false);
    fill(&mem, &rd, &request_bytes(3, 0xabcd, &[0; 24]));
    let mut bufs = ChainBuffers::new();

    // A good reply that the guest then overwrites with a bad header: still good.
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let w = r.writer();
    w.write_all(&out_header(36, 0, 0xabcd)).unwrap();
    w.write_all(&[0xee; 20]).unwrap();
    fill(&mem, &wr, &out_header(16, -600, 0x1111));
    assert_eq!(r.finish().unwrap().used_len(), 36);

    // A bad reply that the guest then "repairs": still refused.
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let w = r.writer();
    w.write_all(&out_header(36, 0, 0xabce)).unwrap();
    w.write_all(&[0xee; 20]).unwrap();
    fill(&mem, &wr, &out_header(36, 0, 0xabcd));
    assert!(matches!(
        r.finish(),
        Err(Error::ReplyUnique {
            request: 0xabcd,
            reply: 0xabce
        })
    ));

    // The header patched with `write_at`, in pieces, is recorded as well.
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let w = r.writer();
    w.write_all(&[0; 16 + 20]).unwrap();
    let hdr = out_header(36, -2, 0xabcd);
    w.write_at(0, &hdr[..3]).unwrap();
    w.write_at(3, &hdr[3..]).unwrap();
    fill(&mem, &wr, &[0; 16]);
    assert_eq!(r.finish().unwrap().used_len(), 36);

    // Header bytes read straight from a file into guest memory count as written then.
    let file = tempfile::tempfile().unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &out_header(20, 0, 0xabcd), 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[7; 4], 16).unwrap();
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let w = r.writer();
    let mut got = 0;
    while got < 20 {
        got += w.write_from(file.as_fd(), 20 - got, got as u64).unwrap();
    }
    fill(&mem, &wr, &out_header(16, 0, 0xabcd));
    assert_eq!(r.finish().unwrap().used_len(), 20);
}

#[test]
fn index_outside_the_table() {
    let mem = memory();
    put(&mem, 0, 5, Descriptor::new(DATA, 16, F_NEXT, 256));
    assert!(matches!(
        parse_err(&mem, 5),
        Error::DescriptorIndex {
            index: 256,
            size: 256
        }
    ));
    assert!(matches!(
        parse_err(&mem, 300),
        Error::DescriptorIndex { index: 300, .. }
    ));
}

#[test]
fn loops_and_overlong_chains() {
    let mem = memory();
    // 0 -> 1 -> 0 ...
    put(&mem, 0, 0, Descriptor::new(DATA, 16, F_NEXT, 1));
    put(&mem, 0, 1, Descriptor::new(DATA, 16, F_NEXT, 0));
    assert!(matches!(
        parse_err(&mem, 0),
        Error::ChainTooLong { max: 256 }
    ));
    // A self-loop.
    put(&mem, 0, 9, Descriptor::new(DATA, 0, F_NEXT, 9));
    assert!(matches!(parse_err(&mem, 9), Error::ChainTooLong { .. }));
    // A loop inside an indirect table.
    put(&mem, INDIRECT, 0, Descriptor::new(DATA, 8, F_NEXT, 1));
    put(&mem, INDIRECT, 1, Descriptor::new(DATA, 8, F_NEXT, 0));
    put(&mem, 0, 20, Descriptor::new(INDIRECT, 32, F_INDIRECT, 0));
    assert!(matches!(
        parse_err(&mem, 20),
        Error::ChainTooLong { max: 2 }
    ));
    // A chain of exactly the table size is fine; one more is not.
    let small = DescTable {
        addr: GuestAddress(0),
        size: 4,
        indirect: true,
    };
    for i in 0..4u16 {
        put(&mem, 0, i, Descriptor::new(DATA, 1, F_NEXT, i + 1));
    }
    put(&mem, 0, 3, Descriptor::new(DATA, 1, 0, 0));
    let mut bufs = ChainBuffers::new();
    assert_eq!(
        Reader::remaining(bufs.parse(&mem, small, 0).unwrap().reader()),
        4
    );
    put(&mem, 0, 3, Descriptor::new(DATA, 1, F_NEXT, 0));
    assert!(matches!(
        bufs.parse(&mem, small, 0).unwrap_err(),
        Error::ChainTooLong { max: 4 }
    ));
}

#[test]
fn readable_after_writable() {
    let mem = memory();
    put(&mem, 0, 0, Descriptor::new(DATA, 16, F_NEXT, 1));
    put(
        &mem,
        0,
        1,
        Descriptor::new(DATA + 16, 16, F_NEXT | F_WRITE, 2),
    );
    put(&mem, 0, 2, Descriptor::new(DATA + 32, 16, 0, 0));
    assert!(matches!(parse_err(&mem, 0), Error::ReadableAfterWritable));
}

#[test]
fn bad_indirect_descriptors() {
    let mem = memory();
    // Nested.
    put(
        &mem,
        INDIRECT,
        0,
        Descriptor::new(INDIRECT, 16, F_INDIRECT, 0),
    );
    put(&mem, 0, 0, Descriptor::new(INDIRECT, 16, F_INDIRECT, 0));
    assert!(matches!(parse_err(&mem, 0), Error::NestedIndirect));
    // With NEXT.
    put(
        &mem,
        0,
        0,
        Descriptor::new(INDIRECT, 16, F_INDIRECT | F_NEXT, 1),
    );
    assert!(matches!(parse_err(&mem, 0), Error::IndirectWithNext));
    // Bad lengths.
    for len in [0, 15, 17, 16 * 65536] {
        put(&mem, 0, 0, Descriptor::new(INDIRECT, len, F_INDIRECT, 0));
        assert!(
            matches!(parse_err(&mem, 0), Error::IndirectTableLength { len: l } if l == len),
            "{len}"
        );
    }
    // Table outside memory.
    put(
        &mem,
        0,
        0,
        Descriptor::new(MEM_SIZE as u64 - 16, 32, F_INDIRECT, 0),
    );
    assert!(matches!(parse_err(&mem, 0), Error::OutsideMemory { .. }));
    // Table that wraps the address space.
    put(
        &mem,
        0,
        0,
        Descriptor::new(u64::MAX - 15, 32, F_INDIRECT, 0),
    );
    assert!(matches!(parse_err(&mem, 0), Error::AddressOverflow { .. }));
}

#[test]
fn buffers_outside_memory_or_overflowing() {
    let mem = memory();
    let end = MEM_SIZE as u64;
    for (addr, len) in [(end - 4, 8), (end, 1), (1 << 40, 16)] {
        put(&mem, 0, 0, Descriptor::new(addr, len, 0, 0));
        assert!(
            matches!(parse_err(&mem, 0), Error::OutsideMemory { .. }),
            "{addr:#x}+{len}"
        );
        put(&mem, 0, 0, Descriptor::new(addr, len, F_WRITE, 0));
        assert!(matches!(parse_err(&mem, 0), Error::OutsideMemory { .. }));
    }
    put(&mem, 0, 0, Descriptor::new(u64::MAX - 2, 8, 0, 0));
    assert!(matches!(parse_err(&mem, 0), Error::AddressOverflow { .. }));
    // Zero-length descriptors are not buffers and are never dereferenced.
    put(&mem, 0, 0, Descriptor::new(u64::MAX, 0, F_NEXT, 1));
    put(&mem, 0, 1, Descriptor::new(1 << 50, 0, 0, 0));
    let mut bufs = ChainBuffers::new();
    assert_eq!(
        Reader::remaining(bufs.parse(&mem, TABLE, 0).unwrap().reader()),
        0
    );
}

#[test]
fn descriptor_table_outside_memory() {
    let mem = memory();
    let far = DescTable {
        addr: GuestAddress(1 << 40),
        size: 16,
        indirect: true,
    };
    let mut bufs = ChainBuffers::new();
    assert!(matches!(
        bufs.parse(&mem, far, 0).unwrap_err(),
        Error::ReadDescriptor { .. }
    ));
    let wrap = DescTable {
        addr: GuestAddress(u64::MAX - 8),
        size: 16,
        indirect: true,
    };
    assert!(bufs.parse(&mem, wrap, 3).unwrap_err().is_malformed_chain());
}

#[test]
#[cfg_attr(miri, ignore = "maps 3 GiB")]
fn chain_longer_than_4_gib() {
    let mem: GuestMemoryMmap<()> =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0xc000_0000)]).unwrap();
    put(
        &mem,
        0,
        0,
        Descriptor::new(0x10_0000, 0x9000_0000, F_NEXT, 1),
    );
    put(&mem, 0, 1, Descriptor::new(0x10_0000, 0x9000_0000, 0, 0));
    assert!(matches!(parse_err(&mem, 0), Error::ChainLengthOverflow));
}

#[test]
#[cfg_attr(miri, ignore = "preadv/pwritev")]
fn zero_copy_file_io() {
    use vm_memory::bitmap::AtomicBitmap;
    let mem: GuestMemoryMmap<AtomicBitmap> =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let mut next = DATA;
    let rd = place(&[16, 1000, 3000, 97], false, &mut next, 4096);
    let wr = place(&[16, 4096, 5, 8000], true, &mut next, 4096);
    let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    let head = install(&mem, &chain, true);
    let data: Vec<u8> = (0..4097u32).map(|i| (i * 31 % 251) as u8).collect();
    let req = request_bytes(16, 5, &data);
    fill(&mem, &rd, &req);

    let file = tempfile::tempfile().unwrap();
    let mut bufs = ChainBuffers::new();
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let (reader, writer) = r.io();
    let mut hdr = [0u8; 16];
    reader.read_exact(&mut hdr).unwrap();
    reader.read_exact_to(file.as_fd(), 4097, 10).unwrap();
    assert_eq!(reader.read_to(file.as_fd(), 10, 0).unwrap(), 0, "drained");
    let mut on_disk = vec![0u8; 4107];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut on_disk, 0).unwrap();
    assert_eq!(&on_disk[10..], &data[..]);

    // Reset the bitmap, then read the file into the reply.
    for region in mem.iter() {
        (**region).bitmap().reset();
    }
    writer.write_all(&[0; 16]).unwrap();
    let mut got = 0;
    while got < 4107 {
        let n = writer
            .write_from(file.as_fd(), 4107 - got, got as u64)
            .unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(
        writer.write_from(file.as_fd(), 100, 4107).unwrap(),
        0,
        "EOF"
    );
    writer.write_at(0, &out_header(16 + 4107, 0, 5)).unwrap();
    assert_eq!(r.finish().unwrap().used_len(), 16 + 4107);
    let reply = collect(&mem, &wr, 16 + 4107);
    assert_eq!(&reply[16..], &on_disk[..]);
    // Every page the reply touched is dirty; the gap pages between buffers are not.
    let page_dirty = |addr: u64| {
        mem.iter().any(|reg| {
            let start = reg.start_addr().0;
            addr >= start && reg.bitmap().dirty_at((addr - start) as usize)
        })
    };
    use vm_memory::bitmap::Bitmap;
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    for b in &wr {
        assert!(page_dirty(b.addr), "{:#x}", b.addr);
        assert!(page_dirty(b.addr + u64::from(b.len) - 1) || b.len > 4096);
    }
    let last = wr[3];
    // 16 + 4096 + 5 = 4117 bytes before the last buffer; 4123 - 4117 = 6 bytes land in it.
    assert!(!page_dirty(last.addr + 4096), "beyond the reply");
}

#[test]
#[cfg_attr(miri, ignore = "preadv/pwritev")]
fn zero_copy_counts_are_bounded_by_the_chain() {
    let mem = memory();
    let mut next = DATA;
    let rd = place(&[16, 100], false, &mut next, 0);
    let wr = place(&[16, 50], true, &mut next, 0);
    let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    let head = install(&mem, &chain, false);
    let file = tempfile::tempfile().unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 500], 0).unwrap();
    let mut bufs = ChainBuffers::new();
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    let (reader, writer) = r.io();
    assert_eq!(reader.read_to(file.as_fd(), 1000, 0).unwrap(), 116);
    assert_eq!(writer.write_from(file.as_fd(), 1000, 0).unwrap(), 66);
    assert_eq!(writer.available(), 0);
    assert_eq!(writer.write_from(file.as_fd(), 1000, 0).unwrap(), 0);
    // Offsets the kernel cannot take are an error, not a wrap.
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    assert!(r.writer().write_from(file.as_fd(), 10, u64::MAX).is_err());
}

#[test]
fn writes_mark_pages_dirty() {
    use vm_memory::bitmap::{AtomicBitmap, Bitmap};
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let mem: GuestMemoryMmap<AtomicBitmap> =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
    let wr = [Buf {
        addr: 0x8000,
        len: 0x2000,
        writable: true,
    }];
    let head = install(&mem, &wr, false);
    for region in mem.iter() {
        (**region).bitmap().reset();
    }
    let mut bufs = ChainBuffers::new();
    let mut r = bufs.parse(&mem, TABLE, head).unwrap();
    r.writer().write_all(&[1; 0x1001]).unwrap();
    let region = mem.iter().next().unwrap();
    assert!(region.bitmap().dirty_at(0x8000));
    assert!(region.bitmap().dirty_at(0x9000));
    assert!(!region.bitmap().dirty_at(0x7000));
    let _ = region.len();
}

#[test]
fn buffers_are_reused_without_growing() {
    let mem = memory();
    let mut next = DATA;
    let rd = place(&[1; 40], false, &mut next, 0);
    let wr = place(&[1; 40], true, &mut next, 0);
    let chain: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    let head = install(&mem, &chain, false);
    let mut bufs = ChainBuffers::with_capacity(80);
    let before = format!("{bufs:?}");
    for _ in 0..3 {
        let mut r = bufs.parse(&mem, TABLE, head).unwrap();
        assert_eq!(Reader::remaining(r.reader()), 40);
    }
    assert_eq!(before, format!("{bufs:?}"));
}

mod queue {
    use super::*;
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::{Queue, QueueOwnedT, QueueT};
    use virtiofs_transport::{Pop, QueueStats, RingState, process_queue};

    fn add(mq: &MockSplitQueue<'_, GuestMemoryMmap<()>>, chains: &[Vec<Descriptor>], at: u16) {
        let raw: Vec<_> = chains.iter().flatten().map(|d| (*d).into()).collect();
        mq.add_desc_chains(&raw, at).unwrap();
    }

    /// A request (40-byte header) and a 64-byte reply buffer at table slots `at`, `at + 1`.
    fn request(mem: &GuestMemoryMmap<()>, at: u16, opcode: u32, unique: u64) -> Vec<Descriptor> {
        let base = 0x4_0000 + u64::from(at) * 0x100;
        mem.write_slice(&request_bytes(opcode, unique, &[0; 24]), GuestAddress(base))
            .unwrap();
        vec![
            Descriptor::new(base, 40, F_NEXT, at + 1),
            Descriptor::new(base + 0x80, 64, F_WRITE, 0),
        ]
    }

    fn answer(r: &mut dyn Reader, w: &mut dyn Writer) {
        let mut hdr = [0u8; 40];
        if r.read_exact(&mut hdr).is_err() {
            return;
        }
        let opcode = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        let unique = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        if opcode == 2 {
            return; // FORGET
        }
        // Opcode 99 plays a buggy server that writes the wrong length.
        let len = if opcode == 99 { 17 } else { 16 };
        w.write_all(&out_header(len, -38, unique)).unwrap();
    }

    #[test]
    fn serves_replies_drops_and_counts() {
        let mem = memory();
        let mq = MockSplitQueue::new(&mem, 16);
        let mut q: Queue = mq.create_queue().unwrap();
        let mut chains = vec![
            request(&mem, 0, 3, 100),
            request(&mem, 2, 2, 101),
            request(&mem, 4, 99, 102),
        ];
        // A malformed chain: readable after writable.
        chains.push(vec![
            Descriptor::new(0x5_0000, 16, F_WRITE | F_NEXT, 7),
            Descriptor::new(0x5_0100, 16, 0, 0),
        ]);
        add(&mq, &chains, 0);

        let mut bufs = ChainBuffers::new();
        let mut notified = 0;
        let stats = process_queue(
            &mut q,
            &mem,
            &mut RingState::new(true),
            &mut bufs,
            |r, w| answer(r, w),
            || {
                notified += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            stats,
            QueueStats {
                completed: 2,
                malformed: 1,
                bad_replies: 1,
                notifications: notified,
            }
        );
        assert_eq!(notified, 4, "no EVENT_IDX: every used buffer notifies");
        let used: Vec<(u32, u32)> = (0..4)
            .map(|i| {
                let e = mq.used().ring().ref_at(i).unwrap().load();
                (e.id(), e.len())
            })
            .collect();
        assert_eq!(used, vec![(0, 16), (2, 0), (4, 0), (6, 0)]);
        assert_eq!(q.next_used(), 4);
    }

    #[test]
    fn event_idx_suppresses_notifications() {
        let mem = memory();
        let mq = MockSplitQueue::new(&mem, 16);
        let mut q: Queue = mq.create_queue().unwrap();
        // The mock puts the used ring over the avail ring's used_event field: move it.
        q.set_used_ring_address(Some(0x1000), Some(0));
        q.set_event_idx(true);
        let chains: Vec<_> = (0..4)
            .map(|i| request(&mem, i * 2, 3, u64::from(i)))
            .collect();
        add(&mq, &chains, 0);
        // used_event = 2: the driver wants an interrupt once the third buffer is used.
        let used_event = mq.avail_addr().unchecked_add(4 + 2 * 16);
        mem.write_obj(2u16, used_event).unwrap();
        let mut bufs = ChainBuffers::new();
        let mut notified = 0;
        let stats = process_queue(
            &mut q,
            &mem,
            &mut RingState::new(true),
            &mut bufs,
            |r, w| answer(r, w),
            || {
                notified += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(stats.completed, 4);
        assert_eq!(notified, 1);
        // With EVENT_IDX enabled, re-enabling notifications publishes avail_event.
        let avail_event = GuestAddress(0x1000 + 4 + 8 * 16);
        assert_eq!(mem.read_obj::<u16>(avail_event).unwrap(), 4);
        let _ = q.iter(&mem).unwrap().count();
    }

    /// `avail->idx` as the driver would store it.
    fn set_avail_idx(
        mem: &GuestMemoryMmap<()>,
        mq: &MockSplitQueue<'_, GuestMemoryMmap<()>>,
        idx: u16,
    ) {
        mem.write_obj(idx, mq.avail_addr().unchecked_add(2))
            .unwrap();
    }

    /// The used ring's flags (VRING_USED_F_NO_NOTIFY = 1).
    fn used_flags(mem: &GuestMemoryMmap<()>, q: &Queue) -> u16 {
        mem.read_obj(GuestAddress(q.used_ring())).unwrap()
    }

    #[test]
    fn avail_index_beyond_the_queue_size_breaks_the_queue_until_reset() {
        let mem = memory();
        let mq = MockSplitQueue::new(&mem, 16);
        let mut q: Queue = mq.create_queue().unwrap();
        // One 16-bit store: the driver claims 17 chains on a 16-entry queue.
        set_avail_idx(&mem, &mq, 17);
        // On its own thread, so that a livelock fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_mem = mem.clone();
        std::thread::spawn(move || {
            let mut ring = RingState::new(true);
            let mut handled = 0;
            let stats = process_queue(
                &mut q,
                &thread_mem,
                &mut ring,
                &mut ChainBuffers::new(),
                |_, _| handled += 1,
                || Ok(()),
            );
            let _ = tx.send((q, ring, stats.unwrap(), handled));
        });
        let (mut q, mut ring, stats, handled) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("process_queue returns promptly");
        let mut bufs = ChainBuffers::new();
        assert_eq!(stats, QueueStats::default());
        assert_eq!(handled, 0);
        assert!(ring.is_broken(&q));
        assert_eq!(used_flags(&mem, &q), 0, "notifications left disabled");
        assert_eq!(ring.pop(&mut q, &mem), Pop::Broken);

        // The driver now publishes a valid chain: a broken queue is not polled ...
        set_avail_idx(&mem, &mq, 0);
        add(&mq, &[request(&mem, 0, 3, 7)], 0);
        let stats = process_queue(
            &mut q,
            &mem,
            &mut ring,
            &mut bufs,
            |r, w| answer(r, w),
            || Ok(()),
        )
        .unwrap();
        assert_eq!(stats.completed, 0);
        assert_eq!(q.next_used(), 0);
        // ... until it is reset.
        ring.reset();
        let stats = process_queue(
            &mut q,
            &mem,
            &mut ring,
            &mut bufs,
            |r, w| answer(r, w),
            || Ok(()),
        )
        .unwrap();
        assert_eq!(stats.completed, 1);
        assert!(!ring.is_broken(&q));
    }

    #[test]
    fn a_queue_set_up_anew_is_no_longer_broken() {
        let mem = memory();
        let mq = MockSplitQueue::new(&mem, 16);
        let mut q: Queue = mq.create_queue().unwrap();
        set_avail_idx(&mem, &mq, 40);
        let mut ring = RingState::new(true);
        assert_eq!(ring.pop(&mut q, &mem), Pop::Broken);
        // The driver re-activates the queue with another size.
        q.set_size(8);
        set_avail_idx(&mem, &mq, 0);
        assert_eq!(ring.pop(&mut q, &mem), Pop::Empty);
    }

    #[test]
    fn head_index_beyond_the_queue_size_breaks_the_queue_with_notifications_enabled() {
        for event_idx in [false, true] {
            let mem = memory();
            let mq = MockSplitQueue::new(&mem, 16);
            let mut q: Queue = mq.create_queue().unwrap();
            if event_idx {
                q.set_used_ring_address(Some(0x1000), Some(0));
                q.set_event_idx(true);
            }
            // One good chain, then a head of 16 in a 16-entry queue.
            add(&mq, &[request(&mem, 0, 3, 7)], 0);
            mem.write_obj(16u16, mq.avail_addr().unchecked_add(4 + 2))
                .unwrap();
            set_avail_idx(&mem, &mq, 2);
            let mut ring = RingState::new(true);
            let mut bufs = ChainBuffers::new();
            let stats = process_queue(
                &mut q,
                &mem,
                &mut ring,
                &mut bufs,
                |r, w| answer(r, w),
                || Ok(()),
            )
            .unwrap();
            assert_eq!(stats.completed, 1);
            assert!(ring.is_broken(&q));
            assert_eq!(used_flags(&mem, &q), 0, "VRING_USED_F_NO_NOTIFY left set");
            assert_eq!(q.next_avail(), 1, "the bad head is not consumed");
        }
    }

    #[test]
    fn indirect_descriptors_only_when_negotiated() {
        let mem = memory();
        let mq = MockSplitQueue::new(&mem, 16);
        let base = 0x4_0000;
        mem.write_slice(&request_bytes(3, 9, &[0; 24]), GuestAddress(base))
            .unwrap();
        // An indirect table of two descriptors at 0x3000: the request and the reply buffer.
        put(&mem, 0x3000, 0, Descriptor::new(base, 40, F_NEXT, 1));
        put(
            &mem,
            0x3000,
            1,
            Descriptor::new(base + 0x80, 64, F_WRITE, 0),
        );
        for negotiated in [false, true] {
            let mut q: Queue = mq.create_queue().unwrap();
            set_avail_idx(&mem, &mq, 0);
            add(&mq, &[vec![Descriptor::new(0x3000, 32, F_INDIRECT, 0)]], 0);
            let mut ring = RingState::new(negotiated);
            let mut bufs = ChainBuffers::new();
            let stats = process_queue(
                &mut q,
                &mem,
                &mut ring,
                &mut bufs,
                |r, w| answer(r, w),
                || Ok(()),
            )
            .unwrap();
            let used = mq.used().ring().ref_at(0).unwrap().load();
            if negotiated {
                assert_eq!((stats.completed, used.len()), (1, 16));
            } else {
                assert_eq!((stats.malformed, used.len()), (1, 0));
            }
        }
    }

    use vm_memory::Address;
}

#[test]
fn indirect_descriptor_without_the_feature_is_malformed() {
    let mem = memory();
    let head = install(
        &mem,
        &[Buf {
            addr: DATA,
            len: 40,
            writable: false,
        }],
        true,
    );
    let mut table = TABLE;
    assert!(ChainBuffers::new().parse(&mem, table, head).is_ok());
    table.indirect = false;
    let err = ChainBuffers::new().parse(&mem, table, head).unwrap_err();
    assert!(matches!(err, Error::IndirectNotNegotiated), "{err}");
    assert!(err.is_malformed_chain());
}
