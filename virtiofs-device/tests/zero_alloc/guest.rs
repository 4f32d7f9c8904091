//! No heap allocation per request in steady state (ARCHITECTURE.md, "Performance"), shown on
//! the whole request path: request bytes in guest memory, a split virtqueue, the in-process
//! device serving inline (on this thread, inside `process_queue`), the transport's chain walk,
//! reader and writer, the server, the Linux passthrough backend, and the reply in guest memory
//! with its used element.
//!
//! A counting global allocator (its own test binary, so it sees only this process) counts every
//! allocation and reallocation this thread makes while armed; only `process_queue` runs armed.
//! After a warm-up (the per-thread buffers grow, the inodes exist, a file and a directory are
//! open), each of GETATTR, LOOKUP of a known name, READ of 4 KiB, WRITE of 4 KiB and
//! READDIRPLUS of a small directory whose entries are all known runs [`ROUNDS`] times and must
//! allocate nothing. A failure shows where the first allocation was made.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

#[allow(unsafe_code)]
mod sys;

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use fuse_abi::{
    EntryOut, GetattrIn, InitFlags, Opcode, OpenIn, OpenOut, OutHeader, ReadIn, U32, U64, WriteIn,
};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::{init_payload, request};
use passthrough_linux::{Config, FileHandleMode, PassthroughFs};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use virtiofs_device::{DeviceConfig, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use zerocopy::{FromBytes, IntoBytes};

#[global_allocator]
static ALLOCATOR: sys::Counting = sys::Counting;

thread_local! {
    /// Whether this thread's allocations are counted now.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// This thread's counted allocations.
    static COUNTED: Cell<u64> = const { Cell::new(0) };
    /// Where this thread's first counted allocation was made.
    static FIRST: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Called by the allocator on every allocation and reallocation.
fn record() {
    // Disarmed while recording: the backtrace allocates.
    if ARMED.try_with(|armed| armed.replace(false)) != Ok(true) {
        return;
    }
    let _ = COUNTED.try_with(|n| n.set(n.get() + 1));
    let _ = FIRST.try_with(|first| {
        if let Ok(mut first) = first.try_borrow_mut() {
            if first.is_none() {
                *first = Some(Backtrace::force_capture());
            }
        }
    });
    let _ = ARMED.try_with(|armed| armed.set(true));
}

/// Runs `f` with this thread's allocations counted: what it returned, how many allocations it
/// made, and where it made the first.
fn counting<T>(f: impl FnOnce() -> T) -> (T, u64, Option<Backtrace>) {
    COUNTED.with(|n| n.set(0));
    ARMED.with(|armed| armed.set(true));
    let out = f();
    ARMED.with(|armed| armed.set(false));
    let n = COUNTED.with(Cell::get);
    (out, n, FIRST.with(|first| first.borrow_mut().take()))
}

const SIZE: u16 = 64;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
/// Queue `i` lives at `i * STRIDE`.
const STRIDE: u64 = 0x1_0000;
/// The request buffer; the reply buffer follows at `REPLY`.
const REQUEST: u64 = 0x10_0000;
const REPLY: u64 = 0x20_0000;
const REPLY_LEN: u32 = 0x2_0000;
/// Requests of each kind counted.
const ROUNDS: usize = 100;
/// Bytes of each READ and WRITE.
const IO_SIZE: usize = 4096;

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;
type Device = VirtioFs<PassthroughFs, Mem>;

/// The driver's side of the request queue.
struct Driver {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    avail_idx: u16,
    used_idx: u16,
}

/// The guest: its memory, its view of the request queue, and the device.
struct Guest {
    mem: GuestMemoryMmap,
    device: Device,
    queue: Driver,
    _dir: tempfile::TempDir,
}

/// Interrupts the device sent (an atomic: the interrupt must not allocate either).
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

impl Guest {
    fn new(handles: FileHandleMode) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), vec![0x5a; 4 * IO_SIZE]).unwrap();
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(dir.path().join("dir").join(name), name).unwrap();
        }
        let cfg = Config::builder(dir.path()).file_handles(handles).build();
        let fs = PassthroughFs::new(cfg.unwrap()).unwrap();
        let config = DeviceConfig::builder("zeroalloc")
            .request_queues(1)
            .queue_size(SIZE)
            .inline(true)
            .build()
            .unwrap();
        let mut device = VirtioFs::new(config, fs, NegotiationConfig::default());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let features = device.features();
        device.ack_features(features);
        let mut resources = Vec::new();
        let mut request_queue = None;
        for i in 0..2u64 {
            let at = GuestAddress(i * STRIDE);
            let mock = MockSplitQueue::create(&mem, at, SIZE);
            let mut queue: Queue = mock.create_queue().unwrap();
            let used = at.unchecked_add(0x2000);
            queue.set_used_ring_address(Some(u32::try_from(used.0).unwrap()), Some(0));
            let interrupt = |_queue: usize| -> io::Result<()> {
                INTERRUPTS.fetch_add(1, Ordering::Relaxed);
                Ok(())
            };
            resources.push(QueueResources::new(queue, interrupt));
            request_queue = Some(Driver {
                desc: mock.desc_table_addr(),
                avail: mock.avail_addr(),
                used,
                avail_idx: 0,
                used_idx: 0,
            });
        }
        device
            .activate(GuestMemoryAtomic::new(mem.clone()), resources)
            .unwrap();
        Guest {
            mem,
            device,
            queue: request_queue.unwrap(),
            _dir: dir,
        }
    }

    /// Puts `req` and the reply buffer on the request queue as one chain (head 0) and
    /// publishes it.
    fn publish(&mut self, req: &[u8]) {
        let d = &mut self.queue;
        self.mem.write_slice(req, GuestAddress(REQUEST)).unwrap();
        let len = u32::try_from(req.len()).unwrap();
        let descs = [
            Descriptor::new(REQUEST, len, F_NEXT, 1),
            Descriptor::new(REPLY, REPLY_LEN, F_WRITE, 0),
        ];
        for (i, desc) in (0u64..).zip(descs) {
            self.mem
                .write_obj(RawDescriptor::from(desc), d.desc.unchecked_add(16 * i))
                .unwrap();
        }
        let slot = d.avail.unchecked_add(4 + 2 * u64::from(d.avail_idx % SIZE));
        self.mem.write_obj(0u16, slot).unwrap();
        d.avail_idx = d.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(d.avail_idx, d.avail.unchecked_add(2))
            .unwrap();
    }

    /// Sends `req` and serves it (counted); the reply's out header and the allocations the
    /// device made serving it, with where it made the first.
    fn send(&mut self, req: &[u8]) -> (OutHeader, u64, Option<Backtrace>) {
        self.publish(req);
        let (served, allocations, first) = counting(|| self.device.process_queue(1));
        served.unwrap();
        let d = &mut self.queue;
        d.used_idx = d.used_idx.wrapping_add(1);
        let now: u16 = self.mem.read_obj(d.used.unchecked_add(2)).unwrap();
        assert_eq!(now, d.used_idx, "the request was served inline");
        let elem = d
            .used
            .unchecked_add(4 + 8 * u64::from(d.used_idx.wrapping_sub(1) % SIZE));
        let used: u32 = self.mem.read_obj(elem.unchecked_add(4)).unwrap();
        let mut raw = [0u8; size_of::<OutHeader>()];
        self.mem.read_slice(&mut raw, GuestAddress(REPLY)).unwrap();
        let hdr = OutHeader::read_from_bytes(&raw).unwrap();
        assert_eq!(hdr.len.get(), used, "used length == out_header.len");
        (hdr, allocations, first)
    }

    /// Sends `req`, which must succeed; the reply body.
    fn call(&mut self, req: &[u8]) -> Vec<u8> {
        let (hdr, _, _) = self.send(req);
        assert_eq!(hdr.error.get(), 0, "request failed");
        let mut body = vec![0u8; hdr.len.get() as usize - size_of::<OutHeader>()];
        self.mem
            .read_slice(
                &mut body,
                GuestAddress(REPLY + size_of::<OutHeader>() as u64),
            )
            .unwrap();
        body
    }

    /// Sends `req` [`ROUNDS`] times; each must succeed with a reply of `min_len` bytes at
    /// least. The allocations made serving them, and where the first was made.
    fn rounds(&mut self, req: &[u8], min_len: u32) -> (u64, Option<Backtrace>) {
        let mut total = 0;
        let mut first = None;
        for _ in 0..ROUNDS {
            let (hdr, n, at) = self.send(req);
            assert_eq!(hdr.error.get(), 0, "request failed");
            assert!(
                hdr.len.get() >= min_len,
                "a reply of {} bytes",
                hdr.len.get()
            );
            total += n;
            first = first.or(at);
        }
        (total, first)
    }
}

fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn read_in(fh: U64, size: usize) -> ReadIn {
    ReadIn {
        fh,
        offset: 0.into(),
        size: U32::new(u32::try_from(size).unwrap()),
        ..ReadIn::default()
    }
}

/// Host inodes held by file handle (`Prefer`, when the host allows it) or by `O_PATH`
/// descriptor (`Never`).
fn play(handles: FileHandleMode) {
    let mut guest = Guest::new(handles);
    // What Linux 6.12 offers on virtio-fs, at protocol 7.41.
    let offer = InitFlags::from_wire(0x7bff_fffb, 0x1ff);
    guest.call(&request(
        Opcode::Init as u32,
        1,
        0,
        &init_payload(41, offer, 128 * 1024),
    ));

    let lookup = request(Opcode::Lookup as u32, 2, 1, &name("file"));
    let file = EntryOut::read_from_prefix(&guest.call(&lookup)).unwrap().0;
    let dir_lookup = request(Opcode::Lookup as u32, 3, 1, &name("dir"));
    let dir = EntryOut::read_from_prefix(&guest.call(&dir_lookup))
        .unwrap()
        .0;
    let open = OpenIn {
        flags: U32::new(2), // O_RDWR
        open_flags: U32::new(0),
    };
    let open = request(Opcode::Open as u32, 4, file.nodeid.get(), open.as_bytes());
    let fh = OpenOut::read_from_prefix(&guest.call(&open)).unwrap().0.fh;
    let opendir = request(
        Opcode::Opendir as u32,
        5,
        dir.nodeid.get(),
        OpenIn::default().as_bytes(),
    );
    let dir_fh = OpenOut::read_from_prefix(&guest.call(&opendir))
        .unwrap()
        .0
        .fh;

    let getattr = request(
        Opcode::Getattr as u32,
        6,
        file.nodeid.get(),
        GetattrIn::default().as_bytes(),
    );
    let read = request(
        Opcode::Read as u32,
        7,
        file.nodeid.get(),
        read_in(fh, IO_SIZE).as_bytes(),
    );
    let write_in = WriteIn {
        fh,
        offset: U64::new(IO_SIZE as u64),
        size: U32::new(u32::try_from(IO_SIZE).unwrap()),
        ..WriteIn::default()
    };
    let mut write_args = write_in.as_bytes().to_vec();
    write_args.extend_from_slice(&[0xa5; IO_SIZE]);
    let write = request(Opcode::Write as u32, 8, file.nodeid.get(), &write_args);
    let readdir = request(
        Opcode::Readdir as u32,
        9,
        dir.nodeid.get(),
        read_in(dir_fh, 4096).as_bytes(),
    );
    let readdirplus = request(
        Opcode::Readdirplus as u32,
        10,
        dir.nodeid.get(),
        read_in(dir_fh, 4096).as_bytes(),
    );

    // Warm-up: the buffers grow, the directory's entries become known inodes.
    let cases: [(&str, &[u8], usize); 6] = [
        ("GETATTR", &getattr, size_of::<fuse_abi::AttrOut>()),
        ("LOOKUP of a known name", &lookup, size_of::<EntryOut>()),
        ("READ of 4 KiB", &read, IO_SIZE),
        ("WRITE of 4 KiB", &write, size_of::<fuse_abi::WriteOut>()),
        // ".", "..", "a", "b", "c": 5 records, 32 bytes each (152 with the entry).
        ("READDIR", &readdir, 5 * 32),
        ("READDIRPLUS", &readdirplus, 5 * 152),
    ];
    for (_, req, _) in &cases {
        for _ in 0..3 {
            guest.call(req);
        }
    }

    let mut failures = String::new();
    for (what, req, min_body) in &cases {
        let min_len = u32::try_from(min_body + size_of::<OutHeader>()).unwrap();
        let (n, first) = guest.rounds(req, min_len);
        if n != 0 {
            failures.push_str(&format!(
                "\n{what}: {n} allocations in {ROUNDS} requests; the first at:\n{}\n",
                first.map_or_else(|| "(no backtrace)".to_owned(), |b| b.to_string())
            ));
        }
    }
    assert!(failures.is_empty(), "{failures}");
    assert!(
        INTERRUPTS.load(Ordering::Relaxed) > 0,
        "the device interrupted"
    );
}

#[test]
fn steady_state_requests_allocate_nothing() {
    play(FileHandleMode::Prefer);
}

#[test]
fn steady_state_requests_allocate_nothing_on_o_path_descriptors() {
    play(FileHandleMode::Never);
}
