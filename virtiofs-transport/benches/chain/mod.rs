//! Chain reader/writer benches.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use criterion::{BenchmarkId, Criterion, Throughput};
use fuse_server::{Writer, ZeroCopyWriter};
use virtio_queue::desc::split::Descriptor;
use virtiofs_transport::{ChainBuffers, DescTable};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const TABLE: DescTable = DescTable {
    addr: GuestAddress(0),
    size: 256,
    indirect: true,
};
const DATA: u64 = 0x1_0000;

fn memory() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap()
}

/// Writes a chain of (addr, len, writable) buffers at table slots 0.. (head 0).
fn install(mem: &GuestMemoryMmap<()>, bufs: &[(u64, u32, bool)]) {
    for (i, &(addr, len, w)) in bufs.iter().enumerate() {
        let last = i + 1 == bufs.len();
        let flags = (if w { F_WRITE } else { 0 }) | (if last { 0 } else { F_NEXT });
        let d = Descriptor::new(addr, len, flags, (i + 1) as u16);
        mem.write_obj(d, GuestAddress(i as u64 * 16)).unwrap();
    }
}

/// `total` bytes split into `n` buffers (the last takes the remainder), 64 bytes apart.
fn split(total: u32, n: u32, writable: bool, next: &mut u64) -> Vec<(u64, u32, bool)> {
    (0..n)
        .map(|i| {
            let len = if i + 1 == n {
                total - (total / n) * (n - 1)
            } else {
                total / n
            };
            let b = (*next, len, writable);
            *next += u64::from(len) + 64;
            b
        })
        .collect()
}

pub(crate) fn request_reply(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain/request_reply");
    for n in [1u32, 4, 64] {
        let mem = memory();
        let mut next = DATA;
        let mut bufs = split(80, n, false, &mut next);
        bufs.extend(split(120, n, true, &mut next));
        install(&mem, &bufs);
        let mut req = [0u8; 80];
        req[..4].copy_from_slice(&80u32.to_le_bytes());
        req[4..8].copy_from_slice(&15u32.to_le_bytes());
        req[8..16].copy_from_slice(&7u64.to_le_bytes());
        let mut off = 0;
        for &(addr, len, w) in &bufs {
            if !w {
                let len = len as usize;
                mem.write_slice(&req[off..off + len], GuestAddress(addr))
                    .unwrap();
                off += len;
            }
        }
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&120u32.to_le_bytes());
        out[8..].copy_from_slice(&7u64.to_le_bytes());
        let body = [0x5au8; 104];
        let mut scratch = ChainBuffers::with_capacity(128);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let mut r = scratch.parse(&mem, TABLE, 0).unwrap();
                let (reader, writer) = r.io();
                let mut header = [0u8; 40];
                let mut args = [0u8; 40];
                reader.read_exact(&mut header).unwrap();
                reader.read_exact(&mut args).unwrap();
                black_box((&header, &args));
                writer.write_all(&[0; 16]).unwrap();
                writer.write_all(&body).unwrap();
                writer.write_at(0, &out).unwrap();
                black_box(r.finish().unwrap().used_len())
            });
        });
    }
    group.finish();
}

pub(crate) fn read_128k(c: &mut Criterion) {
    const SIZE: usize = 128 * 1024;
    let mut group = c.benchmark_group("read_128k");
    group.throughput(Throughput::Bytes(SIZE as u64));

    let file = tempfile::tempfile().unwrap();
    let content: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    file.write_all_at(&content, 0).unwrap();
    // Warm the page cache.
    let mut host = vec![0u8; SIZE];
    file.read_exact_at(&mut host, 0).unwrap();

    // Linux's READ layout: the out header in its own buffer, then one descriptor per page.
    let mem = memory();
    let mut bufs = vec![(DATA - 0x1000, 40, false), (DATA - 0x800, 16, true)];
    bufs.extend((0..32u64).map(|i| (DATA + i * 4096, 4096, true)));
    install(&mem, &bufs);
    let mut scratch = ChainBuffers::with_capacity(64);
    group.bench_function("preadv_into_guest", |b| {
        b.iter(|| {
            let mut r = scratch.parse(&mem, TABLE, 0).unwrap();
            let w = r.writer();
            w.write_all(&[0; 16]).unwrap();
            let n = w.write_from(file.as_fd(), SIZE, 0).unwrap();
            assert_eq!(n, SIZE);
            black_box(w.bytes_written())
        });
    });

    let src = content.clone();
    let mut dst = vec![0u8; SIZE];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        });
    });

    group.bench_function("pread_into_host", |b| {
        b.iter(|| {
            let n = file.read_at(&mut host, 0).unwrap();
            black_box((n, &host));
        });
    });
    group.finish();
}
