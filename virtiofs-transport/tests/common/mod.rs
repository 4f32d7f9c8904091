//! Builds descriptor chains in guest memory, as a driver would.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use virtio_queue::desc::split::Descriptor;
use virtiofs_transport::DescTable;
use vm_memory::{Bytes, GuestAddress, GuestMemory};

/// `VRING_DESC_F_NEXT`.
pub const F_NEXT: u16 = 1;
/// `VRING_DESC_F_WRITE`.
pub const F_WRITE: u16 = 2;
/// `VRING_DESC_F_INDIRECT`.
pub const F_INDIRECT: u16 = 4;

/// The queue's descriptor table: 256 entries at guest address 0.
pub const TABLE: DescTable = DescTable {
    addr: GuestAddress(0),
    size: 256,
    indirect: true,
};
/// Where an indirect table goes (room for 256 entries).
pub const INDIRECT: u64 = 0x1000;
/// The first address free for buffers.
pub const DATA: u64 = 0x2000;

/// One buffer of a chain.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub writable: bool,
}

/// The table slot of the chain's `i`-th descriptor: scattered, so `next` really matters.
pub fn slot(i: usize) -> u16 {
    ((i * 7 + 3) % 256) as u16
}

/// Writes one raw descriptor.
pub fn put<M: GuestMemory>(mem: &M, table: u64, index: u16, d: Descriptor) {
    mem.write_obj(d, GuestAddress(table + u64::from(index) * 16))
        .unwrap();
}

/// Writes `bufs` as one chain (through an indirect table if `indirect`) and returns its head.
pub fn install<M: GuestMemory>(mem: &M, bufs: &[Buf], indirect: bool) -> u16 {
    let flags = |b: &Buf, last: bool| {
        (if b.writable { F_WRITE } else { 0 }) | (if last { 0 } else { F_NEXT })
    };
    if indirect {
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            put(
                mem,
                INDIRECT,
                i as u16,
                Descriptor::new(b.addr, b.len, flags(b, last), (i + 1) as u16),
            );
        }
        let head = slot(0);
        put(
            mem,
            0,
            head,
            Descriptor::new(INDIRECT, (bufs.len() * 16) as u32, F_INDIRECT, 0),
        );
        head
    } else {
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            put(
                mem,
                0,
                slot(i),
                Descriptor::new(b.addr, b.len, flags(b, last), slot(i + 1)),
            );
        }
        slot(0)
    }
}

/// Lays `lens` out from `*next` with a gap of `gap` bytes after each, advancing `*next`.
pub fn place(lens: &[u32], writable: bool, next: &mut u64, gap: u64) -> Vec<Buf> {
    lens.iter()
        .map(|&len| {
            let b = Buf {
                addr: *next,
                len,
                writable,
            };
            *next += u64::from(len) + gap;
            b
        })
        .collect()
}

/// A FUSE-like request: a 16-byte in-header prefix with `opcode` and `unique`, then `body`.
pub fn request_bytes(opcode: u32, unique: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((16 + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&opcode.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// A `fuse_out_header` for a reply of `len` bytes.
pub fn out_header(len: u32, error: i32, unique: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&len.to_le_bytes());
    b[4..8].copy_from_slice(&error.to_le_bytes());
    b[8..].copy_from_slice(&unique.to_le_bytes());
    b
}

/// Writes `data` across `bufs` in order (the driver filling the readable part).
pub fn fill<M: GuestMemory>(mem: &M, bufs: &[Buf], data: &[u8]) {
    let mut off = 0;
    for b in bufs {
        let n = (b.len as usize).min(data.len() - off);
        mem.write_slice(&data[off..off + n], GuestAddress(b.addr))
            .unwrap();
        off += n;
    }
}

/// Reads `total` bytes back across `bufs` in order (the driver reading the reply).
pub fn collect<M: GuestMemory>(mem: &M, bufs: &[Buf], total: usize) -> Vec<u8> {
    let mut v = vec![0u8; total];
    let mut off = 0;
    for b in bufs {
        let n = (b.len as usize).min(total - off);
        mem.read_slice(&mut v[off..off + n], GuestAddress(b.addr))
            .unwrap();
        off += n;
    }
    v
}
