//! The whole stack in one process: a mock guest driver puts FUSE requests on split virtqueues
//! in guest memory (virtio-queue's `MockSplitQueue`), the device's workers serve them with the
//! real server and `PassthroughFs` on a temporary directory, and the test reads the replies
//! back from the used rings.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::time::{Duration, Instant};

use fuse_abi::{
    CreateIn, EntryOut, ForgetIn, InitFlags, InitOut, Opcode, OpenOut, OutHeader, ReadIn, WriteIn,
    WriteOut,
};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::{init_payload, request};
use passthrough_linux::{Config, PassthroughFs};
use virtio_queue::Queue;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtiofs_device::{DeviceConfig, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};
use zerocopy::{FromBytes, IntoBytes};

const QUEUE_SIZE: u16 = 64;
const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;
/// Where queue `i`'s rings live: `i * RING_STRIDE`.
const RING_STRIDE: u64 = 0x1_0000;
/// Where request and reply buffers live.
const DATA_BASE: u64 = 0x10_0000;
const DATA_SLOT: u64 = 0x1_0000;

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// The driver's side of one virtqueue.
struct DriverQueue {
    desc_table: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    kick: EventNotifier,
    call: EventConsumer,
    next_desc: u16,
    last_used: u16,
}

/// A mock guest: memory, queues, and the device under test.
struct Guest {
    mem: GuestMemoryMmap,
    queues: Vec<DriverQueue>,
    device: VirtioFs<PassthroughFs, Mem>,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    unique: u64,
}

impl Guest {
    fn new(request_queues: u16) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.txt"), b"from the host").unwrap();
        // Requests carry uid/gid 1000: let them create files in the share.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let fs = PassthroughFs::new(Config::builder(dir.path()).build().unwrap()).unwrap();
        let config = DeviceConfig::builder("e2e")
            .request_queues(request_queues)
            .queue_size(QUEUE_SIZE)
            .build()
            .unwrap();
        let mut device = VirtioFs::new(config, fs, NegotiationConfig::default());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let mut queues = Vec::new();
        let mut resources = Vec::new();
        let mut kicks = Vec::new();
        for i in 0..=u64::from(request_queues) {
            let mock = MockSplitQueue::create(&mem, GuestAddress(i * RING_STRIDE), QUEUE_SIZE);
            let queue: Queue = mock.create_queue().unwrap();
            let (kick_consumer, kick) =
                new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            let (call, call_notifier) =
                new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            resources.push(QueueResources::new(queue, call_notifier));
            kicks.push(kick_consumer);
            queues.push(DriverQueue {
                desc_table: mock.desc_table_addr(),
                avail: mock.avail_addr(),
                used: mock.used_addr(),
                kick,
                call,
                next_desc: 0,
                last_used: 0,
            });
        }
        device
            .activate(GuestMemoryAtomic::new(mem.clone()), resources)
            .unwrap();
        device.spawn_kick_threads(kicks).unwrap();
        let path = dir.path().to_owned();
        Guest {
            mem,
            queues,
            device,
            _dir: dir,
            dir: path,
            unique: 0,
        }
    }

    fn next_unique(&mut self) -> u64 {
        self.unique += 2;
        self.unique
    }

    /// Puts `req` on queue `q` with `reply_len` bytes of reply space (none if 0), kicks, and
    /// waits for the used element: returns (used length, reply bytes).
    fn submit(&mut self, q: usize, req: &[u8], reply_len: u32) -> (u32, Vec<u8>) {
        let slot = self.queues[q].next_desc;
        let req_addr = DATA_BASE + (q as u64 * u64::from(QUEUE_SIZE) + u64::from(slot)) * DATA_SLOT;
        let reply_addr = req_addr + DATA_SLOT / 2;
        self.mem.write_slice(req, GuestAddress(req_addr)).unwrap();
        self.mem
            .write_slice(&vec![0xAAu8; reply_len as usize], GuestAddress(reply_addr))
            .unwrap();
        let req_len = u32::try_from(req.len()).unwrap();
        let mut descs = vec![];
        if reply_len > 0 {
            descs.push(Descriptor::new(
                req_addr,
                req_len,
                VRING_DESC_F_NEXT,
                slot + 1,
            ));
            descs.push(Descriptor::new(
                reply_addr,
                reply_len,
                VRING_DESC_F_WRITE,
                0,
            ));
        } else {
            descs.push(Descriptor::new(req_addr, req_len, 0, 0));
        }
        let dq = &mut self.queues[q];
        for (i, desc) in (slot..).zip(descs) {
            let raw = RawDescriptor::from(desc);
            self.mem
                .write_obj(raw, dq.desc_table.unchecked_add(16 * u64::from(i)))
                .unwrap();
        }
        let avail_idx: u16 = self.mem.read_obj(dq.avail.unchecked_add(2)).unwrap();
        let entry = dq
            .avail
            .unchecked_add(4 + 2 * u64::from(avail_idx % QUEUE_SIZE));
        self.mem.write_obj(slot, entry).unwrap();
        self.mem
            .write_obj(avail_idx.wrapping_add(1), dq.avail.unchecked_add(2))
            .unwrap();
        dq.next_desc = (slot + 2) % (QUEUE_SIZE - 1);
        dq.kick.notify().unwrap();

        let used_idx_addr = dq.used.unchecked_add(2);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let idx: u16 = self.mem.read_obj(used_idx_addr).unwrap();
            if idx != dq.last_used {
                break;
            }
            assert!(Instant::now() < deadline, "queue {q}: no used element");
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = dq.call.consume();
        let elem = dq
            .used
            .unchecked_add(4 + 8 * u64::from(dq.last_used % QUEUE_SIZE));
        dq.last_used = dq.last_used.wrapping_add(1);
        let id: u32 = self.mem.read_obj(elem).unwrap();
        let len: u32 = self.mem.read_obj(elem.unchecked_add(4)).unwrap();
        assert_eq!(id, u32::from(slot), "used element names the chain's head");
        let mut reply = vec![0u8; len.min(reply_len) as usize];
        self.mem
            .read_slice(&mut reply, GuestAddress(reply_addr))
            .unwrap();
        (len, reply)
    }

    /// Sends a request on request queue `q` and checks the reply's framing; returns
    /// (error, body).
    fn call(&mut self, q: usize, opcode: Opcode, nodeid: u64, args: &[u8]) -> (i32, Vec<u8>) {
        let unique = self.next_unique();
        let req = request(opcode as u32, unique, nodeid, args);
        let (used, reply) = self.submit(q, &req, 16 * 1024);
        let (oh, body) = OutHeader::read_from_prefix(&reply).unwrap();
        assert_eq!(
            oh.len.get(),
            used,
            "{opcode:?}: used length == out_header.len"
        );
        assert_eq!(oh.unique.get(), unique, "{opcode:?}: unique echoed");
        (oh.error.get(), body.to_vec())
    }

    fn init(&mut self) -> InitOut {
        let offer = InitFlags::all().difference(InitFlags::INIT_RESERVED);
        let (err, body) = self.call(1, Opcode::Init, 0, &init_payload(46, offer, 128 * 1024));
        assert_eq!(err, 0, "INIT");
        InitOut::read_from_prefix(&body).unwrap().0
    }
}

fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn init_lookup_create_write_read_readdir_forget() {
    let mut g = Guest::new(2);
    let init = g.init();
    assert_eq!((init.major.get(), init.minor.get()), (7, 46));
    let flags = InitFlags::from_wire(init.flags.get(), init.flags2.get());
    assert!(!flags.contains(InitFlags::ALLOW_IDMAP) || flags.contains(InitFlags::INIT_EXT));
    assert!(!flags.contains(InitFlags::PASSTHROUGH));
    assert!(!flags.contains(InitFlags::OVER_IO_URING));
    assert!(
        u32::from(init.max_pages.get()) + 4 <= u32::from(QUEUE_SIZE)
            || !flags.contains(InitFlags::MAX_PAGES)
    );
    // Background requests (async direct I/O, readahead) up to what the queue holds, not
    // the kernel's default 12: fio at iodepth 16 otherwise sleeps in io_submit.
    assert_eq!(init.max_background.get(), QUEUE_SIZE);
    assert_eq!(init.congestion_threshold.get(), QUEUE_SIZE / 4 * 3);

    // LOOKUP a file the host created.
    let (err, body) = g.call(1, Opcode::Lookup, 1, &name("seed.txt"));
    assert_eq!(err, 0);
    let seed = EntryOut::read_from_prefix(&body).unwrap().0;
    assert_eq!(seed.attr.size.get(), 13);

    // CREATE on request queue 2: the reply comes back on queue 2.
    let create = CreateIn {
        flags: (libc_o_rdwr()).into(),
        mode: 0o100_644.into(),
        umask: 0o022.into(),
        open_flags: 0.into(),
    };
    let mut args = create.as_bytes().to_vec();
    args.extend_from_slice(&name("new.txt"));
    let (err, body) = g.call(2, Opcode::Create, 1, &args);
    assert_eq!(err, 0, "CREATE");
    let (entry, rest) = EntryOut::read_from_prefix(&body).unwrap();
    let open = OpenOut::read_from_prefix(rest).unwrap().0;
    let nodeid = entry.nodeid.get();

    // WRITE then READ through the handle.
    let data = b"written by the guest";
    let write = WriteIn {
        fh: open.fh,
        offset: 0.into(),
        size: u32::try_from(data.len()).unwrap().into(),
        ..WriteIn::default()
    };
    let mut args = write.as_bytes().to_vec();
    args.extend_from_slice(data);
    let (err, body) = g.call(1, Opcode::Write, nodeid, &args);
    assert_eq!(err, 0, "WRITE");
    assert_eq!(
        WriteOut::read_from_prefix(&body).unwrap().0.size.get() as usize,
        data.len()
    );
    assert_eq!(std::fs::read(g.dir.join("new.txt")).unwrap(), data);

    let read = ReadIn {
        fh: open.fh,
        offset: 8.into(),
        size: 100.into(),
        ..ReadIn::default()
    };
    let (err, body) = g.call(2, Opcode::Read, nodeid, read.as_bytes());
    assert_eq!(err, 0, "READ");
    assert_eq!(body, &data[8..]);

    // READDIR of the root lists both files.
    let (err, body) = g.call(1, Opcode::Opendir, 1, &[0u8; 8]);
    assert_eq!(err, 0, "OPENDIR");
    let dir_fh = OpenOut::read_from_prefix(&body).unwrap().0.fh;
    let readdir = ReadIn {
        fh: dir_fh,
        offset: 0.into(),
        size: 4096.into(),
        ..ReadIn::default()
    };
    let (err, body) = g.call(1, Opcode::Readdir, 1, readdir.as_bytes());
    assert_eq!(err, 0, "READDIR");
    let listing = String::from_utf8_lossy(&body);
    assert!(
        listing.contains("seed.txt") && listing.contains("new.txt"),
        "{listing}"
    );

    // FORGET on hiprio: no reply, used length 0.
    let unique = g.next_unique();
    let forget = request(
        Opcode::Forget as u32,
        unique,
        seed.nodeid.get(),
        ForgetIn { nlookup: 1.into() }.as_bytes(),
    );
    let (used, _) = g.submit(0, &forget, 0);
    assert_eq!(used, 0);

    // A non-FORGET request on hiprio is dropped, never executed.
    let unique = g.next_unique();
    let unlink = request(Opcode::Unlink as u32, unique, 1, &name("new.txt"));
    let (used, _) = g.submit(0, &unlink, 64);
    assert_eq!(used, 0);
    assert!(
        g.dir.join("new.txt").exists(),
        "UNLINK on hiprio must not run"
    );

    // Counters are updated when a worker's pass ends, just after the used ring.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = g.device.stats();
    while stats.completed.load(std::sync::atomic::Ordering::Relaxed) < 8 {
        assert!(Instant::now() < deadline, "{stats:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn libc_o_rdwr() -> u32 {
    2
}

#[test]
fn reset_clears_state_and_a_second_init_succeeds() {
    let mut g = Guest::new(1);
    g.init();
    let (err, _) = g.call(1, Opcode::Lookup, 1, &name("seed.txt"));
    assert_eq!(err, 0);
    assert!(g.device.server().negotiated().is_some());
    assert_eq!(g.device.server().filesystem().inode_count(), 2);

    // A guest reboot without DESTROY: INIT again on the live device.
    g.init();
    assert_eq!(
        g.device.server().filesystem().inode_count(),
        1,
        "second INIT drops inodes"
    );

    // Device reset: workers stop, backend state cleared, negotiation forgotten.
    g.device.reset();
    assert!(!g.device.is_active());
    assert!(g.device.server().negotiated().is_none());
}

#[test]
fn malformed_chain_is_returned_with_used_length_zero() {
    let mut g = Guest::new(1);
    g.init();
    // A request header claiming more bytes than the chain holds: an errno, never a panic.
    let unique = g.next_unique();
    let mut req = request(Opcode::Getattr as u32, unique, 1, &[0u8; 16]);
    req[0] = 200;
    let (used, reply) = g.submit(1, &req, 256);
    let oh = OutHeader::read_from_prefix(&reply).unwrap().0;
    assert_eq!(used, 16);
    assert!(oh.error.get() < 0);
    // Still serving.
    let (err, _) = g.call(1, Opcode::Lookup, 1, &name("seed.txt"));
    assert_eq!(err, 0);
}

#[test]
fn activation_checks_the_queue_count() {
    let config = DeviceConfig::builder("x")
        .request_queues(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fs = PassthroughFs::new(Config::builder(dir.path()).build().unwrap()).unwrap();
    let mut device: VirtioFs<PassthroughFs, Mem> =
        VirtioFs::new(config, fs, NegotiationConfig::default());
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let err = device
        .activate(GuestMemoryAtomic::new(mem), Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("1 to 2 request queues"), "{err}");
    let mut space = [0u8; 44];
    device.read_config(0, &mut space);
    assert_eq!(&space[..1], b"x");
    assert_eq!(&space[36..40], &2u32.to_le_bytes());
    assert_eq!(&space[40..], &[0; 4]);
}
