//! The guest of the zero-allocation tests, shared by `zero_alloc` (inline serving, this
//! thread counted) and `zero_alloc_pool` (request workers, every thread counted): its memory,
//! the driver's side of a split request queue, the in-process device over a backend, and the
//! requests, each kind served [`ROUNDS`] times after a warm-up while the test's allocator
//! counts.

use std::backtrace::Backtrace;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fuse_abi::{
    EntryOut, FsyncIn, GetattrIn, InitFlags, Opcode, OpenIn, OpenOut, OutHeader, ReadIn, U32, U64,
    WriteIn,
};
use fuse_server::test_utils::{init_payload, request};
use fuse_server::{FileSystem, NegotiationConfig};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use virtiofs_device::{DeviceConfig, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use zerocopy::{FromBytes, IntoBytes};

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
pub(crate) const ROUNDS: usize = 100;
/// Bytes of each READ and WRITE.
const IO_SIZE: usize = 4096;
/// How long a request worker may take to complete one request.
const COMPLETION_DEADLINE: Duration = Duration::from_secs(10);

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// Runs the closure with allocations counted (on this thread, or on every thread): how many
/// were made, and where the first was.
pub(crate) type Measure = fn(&mut dyn FnMut()) -> (u64, Option<Backtrace>);

/// How the device serves its request queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Serving {
    /// On the thread that calls `process_queue`, before it returns.
    Inline,
    /// On this many request workers, which complete the request after `process_queue`
    /// returned.
    Workers(usize),
}

/// The driver's side of the request queue.
struct Driver {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    avail_idx: u16,
    used_idx: u16,
}

/// The guest: its memory, its view of the request queue, and the device.
pub(crate) struct Guest<F: FileSystem> {
    mem: GuestMemoryMmap,
    device: VirtioFs<F, Mem>,
    serving: Serving,
    queue: Driver,
}

/// Interrupts the device sent (an atomic: the interrupt must not allocate either).
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// A shared directory for [`play`]: `file` (16 KiB) and `dir` holding `a`, `b` and `c`.
pub(crate) fn share() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    dir
}

fn populate(root: &Path) {
    std::fs::write(root.join("file"), vec![0x5a; 4 * IO_SIZE]).unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(root.join("dir").join(name), name).unwrap();
    }
}

impl<F: FileSystem + 'static> Guest<F> {
    pub(crate) fn new(fs: F, serving: Serving) -> Guest<F> {
        let builder = DeviceConfig::builder("zeroalloc")
            .request_queues(1)
            .queue_size(SIZE);
        let builder = match serving {
            Serving::Inline => builder.inline(true),
            Serving::Workers(n) => builder.workers_per_queue(n),
        };
        let mut device = VirtioFs::new(builder.build().unwrap(), fs, NegotiationConfig::default());
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
            serving,
            queue: request_queue.unwrap(),
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

    /// Sends `req` and waits for the device to complete it (inline: before `process_queue`
    /// returns); the reply's out header. Allocates nothing of its own.
    fn send(&mut self, req: &[u8]) -> OutHeader {
        self.publish(req);
        self.device.process_queue(1).unwrap();
        let d = &mut self.queue;
        d.used_idx = d.used_idx.wrapping_add(1);
        let used_idx = d.used.unchecked_add(2);
        let deadline = Instant::now() + COMPLETION_DEADLINE;
        loop {
            let now: u16 = self.mem.read_obj(used_idx).unwrap();
            if now == d.used_idx {
                break;
            }
            assert!(
                self.serving != Serving::Inline,
                "the request was served inline"
            );
            assert!(Instant::now() < deadline, "the request was not completed");
            std::thread::yield_now();
        }
        let elem = d
            .used
            .unchecked_add(4 + 8 * u64::from(d.used_idx.wrapping_sub(1) % SIZE));
        let used: u32 = self.mem.read_obj(elem.unchecked_add(4)).unwrap();
        let mut raw = [0u8; size_of::<OutHeader>()];
        self.mem.read_slice(&mut raw, GuestAddress(REPLY)).unwrap();
        let hdr = OutHeader::read_from_bytes(&raw).unwrap();
        assert_eq!(hdr.len.get(), used, "used length == out_header.len");
        hdr
    }

    /// Sends `req`, which must succeed; the reply body.
    fn call(&mut self, req: &[u8]) -> Vec<u8> {
        let hdr = self.send(req);
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

    /// Sends `req` [`ROUNDS`] times under `measure`; each must succeed with a reply of
    /// `min_len` bytes at least. The allocations made serving them, and where the first was
    /// made. With request workers, the count goes on for `settle` after the last reply, for
    /// what a worker does after it completed a request.
    fn rounds(
        &mut self,
        req: &[u8],
        min_len: u32,
        measure: Measure,
        settle: Duration,
    ) -> (u64, Option<Backtrace>) {
        // The first failed reply (error, length), checked once the count stopped: a failed
        // assertion allocates.
        let mut bad = None;
        let (n, first) = measure(&mut || {
            for _ in 0..ROUNDS {
                let hdr = self.send(req);
                if bad.is_none() && (hdr.error.get() != 0 || hdr.len.get() < min_len) {
                    bad = Some((hdr.error.get(), hdr.len.get()));
                }
            }
            std::thread::sleep(settle);
        });
        if let Some((error, len)) = bad {
            panic!("a reply with error {error} and {len} bytes (at least {min_len} expected)");
        }
        (n, first)
    }
}

fn read_in(fh: U64, size: usize) -> ReadIn {
    ReadIn {
        fh,
        offset: 0.into(),
        size: U32::new(u32::try_from(size).unwrap()),
        ..ReadIn::default()
    }
}

fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// After a warm-up (the per-thread buffers grow, the inodes exist, a file and a directory are
/// open), serves each of GETATTR, LOOKUP of a known name, READ of 4 KiB, WRITE of 4 KiB,
/// READDIR and READDIRPLUS of a small directory whose entries are all known [`ROUNDS`] times
/// under `measure`, and fails unless none allocated. `listed` is how many entries the backend
/// lists in `dir` (with `.` and `..` or without them); READDIRPLUS is left out unless `plus` (for a
/// backend that does not answer it).
pub(crate) fn play<F: FileSystem + 'static>(
    mut guest: Guest<F>,
    listed: usize,
    plus: bool,
    measure: Measure,
) {
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

    // FSYNC is one of the requests that may block: a device with workers serves it on its pool
    // (the others are served by the thread that takes them off the ring), so this case is
    // what covers the pool's path.
    let fsync = request(
        Opcode::Fsync as u32,
        11,
        file.nodeid.get(),
        FsyncIn {
            fh,
            ..FsyncIn::default()
        }
        .as_bytes(),
    );

    let mut cases: Vec<(&str, &[u8], usize)> = vec![
        ("FSYNC (served by the pool when there is one)", &fsync, 0),
        ("GETATTR", &getattr, size_of::<fuse_abi::AttrOut>()),
        ("LOOKUP of a known name", &lookup, size_of::<EntryOut>()),
        ("READ of 4 KiB", &read, IO_SIZE),
        ("WRITE of 4 KiB", &write, size_of::<fuse_abi::WriteOut>()),
        // Names of one byte: 32 bytes a record (152 with the entry).
        ("READDIR", &readdir, listed * 32),
        ("READDIRPLUS", &readdirplus, listed * 152),
    ];
    if !plus {
        cases.pop();
    }
    // Warm-up: the buffers grow, the directory's entries become known inodes. Each worker
    // has buffers of its own: enough rounds that every one serves each kind.
    let warm_up = match guest.serving {
        Serving::Inline => 3,
        Serving::Workers(n) => 16 * n,
    };
    // What a worker does after it completed a request is counted too.
    let settle = match guest.serving {
        Serving::Inline => Duration::ZERO,
        Serving::Workers(_) => Duration::from_millis(20),
    };
    // Inline, the count is exact: one attempt. With workers, a thread the machine's load kept
    // from running until the count started makes its one-time allocations then (its start,
    // its first wait on the channel, its first request of a kind); those never recur, so a
    // kind gets up to three attempts, warmed up again in between. An allocation per request
    // fails all three.
    let attempts = match guest.serving {
        Serving::Inline => 1,
        Serving::Workers(_) => 3,
    };
    for (_, req, _) in &cases {
        for _ in 0..warm_up {
            guest.call(req);
        }
    }

    let mut failures = String::new();
    for (what, req, min_body) in &cases {
        let min_len = u32::try_from(min_body + size_of::<OutHeader>()).unwrap();
        let mut counts = Vec::new();
        let mut first = None;
        for attempt in 1..=attempts {
            let (n, at) = guest.rounds(req, min_len, measure, settle);
            counts.push(n);
            if n == 0 {
                if attempt > 1 {
                    eprintln!("{what}: no allocation at attempt {attempt} (before: {counts:?})");
                }
                break;
            }
            first = first.or(at);
            for _ in 0..warm_up {
                guest.call(req);
            }
        }
        if counts.last() != Some(&0) {
            failures.push_str(&format!(
                "\n{what}: {counts:?} allocations in {attempts} times {ROUNDS} requests; the \
                 first at:\n{}\n",
                first.map_or_else(|| "(no backtrace)".to_owned(), |b| b.to_string())
            ));
        }
    }
    assert!(failures.is_empty(), "{failures}");
    if let Serving::Workers(_) = guest.serving {
        assert!(
            guest.device.stats().pooled.load(Ordering::Relaxed) > 0,
            "no request was served by the pool"
        );
    }
    assert!(
        INTERRUPTS.load(Ordering::Relaxed) > 0,
        "the device interrupted"
    );
}
