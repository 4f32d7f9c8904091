//! Property tests over random chain layouts: split points, zero-length descriptors, many
//! descriptors, direct and indirect. Bytes in equal bytes out, invalid chains are rejected
//! with the right error, and arbitrary descriptor tables never panic.
#![cfg(not(miri))]
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::io::{Read, Write};

use common::*;
use fuse_server::{Reader, Writer};
use proptest::prelude::*;
use virtio_queue::desc::split::Descriptor;
use virtiofs_transport::{ChainBuffers, Error};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM_SIZE: usize = 0x10_0000;

fn memory() -> GuestMemoryMmap<()> {
    // Two adjacent regions, so buffers may straddle a region boundary.
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), 0x8000),
        (GuestAddress(0x8000), MEM_SIZE - 0x8000),
    ])
    .unwrap()
}

#[derive(Clone, Debug)]
struct Layout {
    readable: Vec<u32>,
    writable: Vec<u32>,
    gap: u64,
    indirect: bool,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        prop::collection::vec(prop_oneof![Just(0u32), 1u32..64, 64u32..1500], 1..24),
        prop::collection::vec(prop_oneof![Just(0u32), 1u32..64, 64u32..1500], 0..24),
        0u64..40,
        any::<bool>(),
    )
        .prop_map(|(readable, writable, gap, indirect)| Layout {
            readable,
            writable,
            gap,
            indirect,
        })
}

/// Installs `l` in `mem`; returns the head and both buffer lists.
fn install_layout(mem: &GuestMemoryMmap<()>, l: &Layout) -> (u16, Vec<Buf>, Vec<Buf>) {
    // Starts just below the region boundary so some layouts straddle it.
    let mut next = 0x7800;
    let rd = place(&l.readable, false, &mut next, l.gap);
    let wr = place(&l.writable, true, &mut next, l.gap);
    let all: Vec<Buf> = rd.iter().chain(&wr).copied().collect();
    (install(mem, &all, l.indirect), rd, wr)
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..700, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever the split points, the reader yields exactly the bytes the driver put in.
    #[test]
    fn bytes_in_equal_bytes_read(l in layout(), sizes in chunks(), seed in any::<u8>()) {
        let mem = memory();
        let (head, rd, _) = install_layout(&mem, &l);
        let total: usize = l.readable.iter().map(|&n| n as usize).sum();
        let data: Vec<u8> = (0..total).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        fill(&mem, &rd, &data);
        let mut bufs = ChainBuffers::new();
        let mut req = bufs.parse(&mem, TABLE, head).unwrap();
        let r = req.reader();
        prop_assert_eq!(Reader::remaining(r), total);
        let mut got = Vec::new();
        for &n in sizes.iter().cycle().take(total + 1) {
            let mut chunk = vec![0u8; n];
            let k = r.read(&mut chunk).unwrap();
            got.extend_from_slice(&chunk[..k]);
            if k == 0 {
                break;
            }
        }
        prop_assert_eq!(Reader::remaining(r), 0);
        prop_assert_eq!(got, data);
    }

    /// Whatever the split points, the bytes written land in order in the writable buffers,
    /// up to their capacity, and write_at rewrites exactly its range.
    #[test]
    fn bytes_written_equal_bytes_out(
        l in layout(),
        sizes in chunks(),
        extra in 0usize..300,
        at in any::<prop::sample::Index>(),
    ) {
        let mem = memory();
        let (head, _, wr) = install_layout(&mem, &l);
        let capacity: usize = l.writable.iter().map(|&n| n as usize).sum();
        let data: Vec<u8> = (0..capacity + extra).map(|i| (i % 253) as u8).collect();
        let mut bufs = ChainBuffers::new();
        let mut req = bufs.parse(&mem, TABLE, head).unwrap();
        let w = req.writer();
        prop_assert_eq!(w.available(), capacity);
        let mut off = 0;
        for &n in sizes.iter().cycle() {
            let end = (off + n).min(data.len());
            let k = w.write(&data[off..end]).unwrap();
            off += k;
            if k == 0 || off == data.len() {
                break;
            }
        }
        prop_assert_eq!(off, capacity);
        prop_assert_eq!(Writer::bytes_written(w), capacity);
        prop_assert_eq!(w.available(), 0);
        let mut expect = data[..capacity].to_vec();
        if capacity > 0 {
            let pos = at.index(capacity);
            let patch = vec![0xA5u8; (capacity - pos).min(37)];
            w.write_at(pos, &patch).unwrap();
            expect[pos..pos + patch.len()].copy_from_slice(&patch);
        }
        prop_assert!(w.write_at(capacity, &[1]).is_err());
        prop_assert_eq!(collect(&mem, &wr, capacity), expect);
    }

    /// A used length is produced exactly when the reply header matches what was written.
    #[test]
    fn used_length_matches_header(l in layout(), body in 0usize..3000, lie in -2i64..=2) {
        let mem = memory();
        let (head, rd, _) = install_layout(&mem, &l);
        let total: usize = l.readable.iter().map(|&n| n as usize).sum();
        let req_bytes = request_bytes(15, 0x1234, &vec![0; total.saturating_sub(16)]);
        fill(&mem, &rd, &req_bytes[..total.min(req_bytes.len())]);
        let mut bufs = ChainBuffers::new();
        let mut req = bufs.parse(&mem, TABLE, head).unwrap();
        let w = req.writer();
        let len = 16 + body.min(w.available().saturating_sub(16));
        let claimed = u32::try_from(i64::try_from(len).unwrap() + lie).unwrap();
        let fits = w.available() >= 16;
        if fits {
            w.write_all(&out_header(claimed, 0, 0x1234)).unwrap();
            w.write_all(&vec![1u8; len - 16]).unwrap();
        }
        let result = req.finish();
        match (total >= 16, fits, lie) {
            (true, true, 0) => prop_assert_eq!(result.unwrap().used_len() as usize, len),
            (true, true, _) => {
                let is_length_error = matches!(result, Err(Error::ReplyLength { .. }));
                prop_assert!(is_length_error);
            }
            (true, false, _) => {
                let is_missing = matches!(result, Err(Error::MissingReply { .. }));
                prop_assert!(is_missing);
            }
            (false, true, _) => {
                let is_orphan = matches!(result, Err(Error::ReplyWithoutRequest));
                prop_assert!(is_orphan);
            }
            (false, false, _) => prop_assert_eq!(result.unwrap().used_len(), 0),
        }
    }

    /// Breaking a valid chain in one way is rejected with the matching error.
    #[test]
    fn invalid_chains_are_rejected(
        l in layout(),
        which in any::<prop::sample::Index>(),
        mutation in 0u8..4,
    ) {
        let mem = memory();
        let (head, rd, wr) = install_layout(&mem, &l);
        let n = rd.len() + wr.len();
        let i = which.index(n);
        let (table, index) = if l.indirect { (INDIRECT, i as u16) } else { (0, slot(i)) };
        let size = if l.indirect { n as u32 } else { 256 };
        let addr = GuestAddress(table + u64::from(index) * 16);
        let mut d: Descriptor = mem.read_obj(addr).unwrap();
        let expect_ok = match mutation {
            // A `next` outside the table.
            0 => {
                d.set_flags(d.flags() | F_NEXT);
                d.set_next(size as u16);
                false
            }
            // A loop back to the first descriptor.
            1 => {
                d.set_flags(d.flags() | F_NEXT);
                d.set_next(if l.indirect { 0 } else { slot(0) });
                false
            }
            // A buffer past the end of guest memory.
            2 => {
                d.set_addr(MEM_SIZE as u64 - u64::from(d.len()) / 2);
                d.len() == 0
            }
            // A readable descriptor after a writable one.
            _ => {
                d.set_flags(d.flags() & !F_WRITE);
                // Only an error when a writable descriptor (even an empty one) precedes it.
                i <= rd.len()
            }
        };
        mem.write_obj(d, addr).unwrap();
        let mut bufs = ChainBuffers::new();
        let result = bufs.parse(&mem, TABLE, head).map(|_| ());
        match mutation {
            0 => {
                let ok = matches!(result, Err(Error::DescriptorIndex { .. }));
                prop_assert!(ok, "{:?}", result);
            }
            1 => {
                // Looping back from the writable part first meets a readable descriptor.
                let ok = matches!(result, Err(Error::ChainTooLong { .. }))
                    || (i >= rd.len() && matches!(result, Err(Error::ReadableAfterWritable)));
                prop_assert!(ok, "{:?}", result);
            }
            2 if !expect_ok => {
                let ok = matches!(result, Err(Error::OutsideMemory { .. }));
                prop_assert!(ok, "{:?}", result);
            }
            3 if !expect_ok => {
                let ok = matches!(result, Err(Error::ReadableAfterWritable));
                prop_assert!(ok, "{:?}", result);
            }
            _ => prop_assert!(result.is_ok(), "{:?}", result),
        }
    }

    /// Arbitrary bytes as a descriptor table (and indirect table) never panic, and whatever
    /// parses can be read and written to the end.
    #[test]
    fn arbitrary_tables_never_panic(
        table in prop::collection::vec(any::<u8>(), 16..512),
        head in 0u16..40,
        size in 1u16..=32,
    ) {
        let mem = memory();
        // Keep addresses mostly inside memory so some tables parse.
        let mut table = table;
        for entry in table.chunks_mut(16) {
            if entry.len() == 16 {
                entry[2..8].fill(0);
                entry[1] &= 0x0f;
                entry[10..12].fill(0);
                entry[12] &= 0x7;
                entry[13] = 0;
                entry[14] %= 40;
                entry[15] = 0;
            }
        }
        mem.write_slice(&table, GuestAddress(0)).unwrap();
        mem.write_slice(&table, GuestAddress(INDIRECT)).unwrap();
        let desc_table = virtiofs_transport::DescTable { addr: GuestAddress(0), size, indirect: true };
        let mut bufs = ChainBuffers::new();
        match bufs.parse(&mem, desc_table, head) {
            Ok(mut req) => {
                let (r, w) = req.io();
                let n = Reader::remaining(r);
                let mut sink = Vec::new();
                prop_assert_eq!(r.read_to_end(&mut sink).unwrap(), n);
                let cap = w.available();
                prop_assert_eq!(w.write(&vec![0; cap + 1]).unwrap(), cap);
                let _ = req.finish();
            }
            Err(e) => prop_assert!(e.is_malformed_chain(), "{e}"),
        }
    }
}
