//! Fuzzing entry point: arbitrary descriptor chains in mock guest memory, run through the
//! chain walk, the reader and the writer. The `transport_chain` cargo-fuzz target calls
//! [`fuzz_chain`]; regression tests can call it with a saved input.
//!
//! # Input format
//!
//! | bytes | meaning |
//! |---|---|
//! | 0..2 | queue size − 1 (le16, taken mod 256) |
//! | 2 | head index |
//! | 3 | chunk size for reads and writes (0 means 1) |
//! | 4.. | 8-byte descriptors: addr/16 (le16), len (le16), flags, next, len high (le16) |
//!
//! Descriptor flags keep their low three bits (NEXT, WRITE, INDIRECT); bit 3 moves the buffer
//! to the top of the address space (overflow). The first `size` descriptors fill the queue's
//! table at guest address 0, the rest an indirect area at 0x1000. Guest memory is two adjacent
//! regions (0..64 KiB) and a third after a hole (128..144 KiB), so buffers may straddle a
//! region boundary or fall into the hole.

use std::io::{Read, Write};

use fuse_server::{Reader, Writer};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::chain::{ChainBuffers, DescTable};

/// Where descriptors past the queue's table go (an indirect table may point here).
const INDIRECT_AREA: u64 = 0x1000;
/// The most descriptors taken from one input.
const MAX_DESCRIPTORS: usize = 512;

/// Builds the chain described by `data` and exercises it. Panics only on a broken invariant.
pub fn fuzz_chain(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let size = (u16::from_le_bytes([head[0], head[1]]) % 256) + 1;
    let head_index = u16::from(head[2]);
    let chunk = usize::from(head[3].max(1));

    let Ok(mem) = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(0), 0x8000),
        (GuestAddress(0x8000), 0x8000),
        (GuestAddress(0x2_0000), 0x4000),
    ]) else {
        return;
    };
    for (i, raw) in rest.chunks_exact(8).take(MAX_DESCRIPTORS).enumerate() {
        let mut addr = u64::from(u16::from_le_bytes([raw[0], raw[1]])) * 16;
        if raw[4] & 8 != 0 {
            addr = u64::MAX - addr;
        }
        let len = u32::from(u16::from_le_bytes([raw[2], raw[3]]))
            | (u32::from(u16::from_le_bytes([raw[6], raw[7]])) << 16);
        let desc = Descriptor::new(addr, len, u16::from(raw[4] & 7), u16::from(raw[5]));
        let slot = i as u64;
        let at = if slot < u64::from(size) {
            slot * 16
        } else {
            INDIRECT_AREA + (slot - u64::from(size)) * 16
        };
        if mem.write_obj(desc, GuestAddress(at)).is_err() {
            return;
        }
    }

    let table = DescTable {
        addr: GuestAddress(0),
        size,
        indirect: true,
    };
    let mut buffers = ChainBuffers::new();
    let mut request = match buffers.parse(&mem, table, head_index) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.is_malformed_chain(), "unexpected error kind: {e}");
            return;
        }
    };
    let (reader, writer) = request.io();

    let total = Reader::remaining(reader);
    let mut buf = vec![0u8; chunk];
    let mut read = 0;
    loop {
        let n = reader.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        read += n;
    }
    assert_eq!(read, total, "reader lost or invented bytes");
    assert_eq!(Reader::remaining(reader), 0);

    let capacity = writer.available();
    let mut written = 0;
    loop {
        let n = writer.write(&buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        written += n;
    }
    assert_eq!(written, capacity, "writer lost or invented bytes");
    assert_eq!(Writer::bytes_written(writer), capacity);
    if capacity >= 16 {
        assert!(writer.write_at(capacity - 16, &[0; 16]).is_ok());
    }
    assert!(writer.write_at(capacity, &[0]).is_err());
    let _ = request.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_inputs_run() {
        fuzz_chain(&[]);
        fuzz_chain(&[0; 4]);
        // size 16, head 0, chunk 7: a readable and a writable buffer.
        let mut input = vec![15, 0, 0, 7];
        input.extend_from_slice(&[0x00, 0x02, 40, 0, 1, 1, 0, 0]);
        input.extend_from_slice(&[0x00, 0x03, 64, 0, 2, 0, 0, 0]);
        fuzz_chain(&input);
        // The same through an indirect table at 0x1000.
        let mut input = vec![0, 0, 0, 3];
        input.extend_from_slice(&[0x00, 0x01, 32, 0, 4, 0, 0, 0]);
        input.extend_from_slice(&[0x00, 0x02, 40, 0, 1, 1, 0, 0]);
        input.extend_from_slice(&[0x00, 0x03, 64, 0, 2, 0, 0, 0]);
        fuzz_chain(&input);
        // Overflowing and huge buffers.
        let mut input = vec![3, 0, 0, 1];
        input.extend_from_slice(&[0x01, 0x00, 0xff, 0xff, 8 | 1, 1, 0xff, 0xff]);
        input.extend_from_slice(&[0x00, 0x02, 0xff, 0xff, 0, 0, 0xff, 0xff]);
        fuzz_chain(&input);
    }
}
