//! The whole stack in one process: a mock guest driver puts FUSE requests on split virtqueues
//! in guest memory (virtio-queue's `MockSplitQueue`), the device's workers serve them with the
//! real server and `PassthroughFs` on a temporary directory, and the test reads the replies
//! back from the used rings.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::time::{Duration, Instant};

use common::fs::seeded_share;
use common::fuse::{create, created, init_offering_all, name};
use common::{Driver, Mem, check_reply};
use fuse_abi::{
    EntryOut, ForgetIn, InitFlags, InitOut, Opcode, OpenOut, OutHeader, ReadIn, WriteIn, WriteOut,
};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::request;
use passthrough_linux::{Config, PassthroughFs};
use virtiofs_device::{DeviceConfig, VirtioFs};
use vm_memory::{GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use zerocopy::{FromBytes, IntoBytes};

const QUEUE_SIZE: u16 = 64;
/// Buffers per head: the request, then up to 16 KiB of reply.
const SLOT: u64 = 0x8000;

/// A mock guest: the driver and the device under test.
struct Guest {
    driver: Driver,
    device: VirtioFs<PassthroughFs, Mem>,
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Guest {
    fn new(request_queues: u16) -> Guest {
        // Requests carry uid/gid 1000: the share lets them create files.
        let dir = seeded_share();
        let fs = PassthroughFs::new(Config::builder(dir.path()).build().unwrap()).unwrap();
        let config = DeviceConfig::builder("e2e")
            .request_queues(request_queues)
            .queue_size(QUEUE_SIZE)
            .build()
            .unwrap();
        let mut device = VirtioFs::new(config, fs, NegotiationConfig::default());
        let mut driver = Driver::new(0x100_0000);
        let (queues, kicks) = driver.queues(0, usize::from(request_queues) + 1, QUEUE_SIZE, SLOT);
        let resources = driver.call_eventfds(queues);
        device.activate(driver.memory(), resources).unwrap();
        device.spawn_kick_threads(kicks).unwrap();
        let path = dir.path().to_owned();
        Guest {
            driver,
            device,
            _dir: dir,
            dir: path,
        }
    }

    fn next_unique(&mut self) -> u64 {
        self.driver.next_unique()
    }

    /// Puts `req` on queue `q` with `reply_len` bytes of reply space (none if 0), kicks, and
    /// waits for the used element: returns (used length, reply bytes).
    fn submit(&mut self, q: usize, req: &[u8], reply_len: u32) -> (u32, Vec<u8>) {
        self.driver.submit(q, req, reply_len)
    }

    /// Sends a request on request queue `q` and checks the reply's framing; returns
    /// (error, body).
    fn call(&mut self, q: usize, opcode: Opcode, nodeid: u64, args: &[u8]) -> (i32, Vec<u8>) {
        let unique = self.next_unique();
        let req = request(opcode as u32, unique, nodeid, args);
        let (used, reply) = self.submit(q, &req, 16 * 1024);
        check_reply(opcode, unique, used, &reply)
    }

    fn init(&mut self) -> InitOut {
        let (err, body) = self.call(1, Opcode::Init, 0, &init_offering_all());
        assert_eq!(err, 0, "INIT");
        InitOut::read_from_prefix(&body).unwrap().0
    }
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
    let (err, body) = g.call(2, Opcode::Create, 1, &create("new.txt"));
    assert_eq!(err, 0, "CREATE");
    let (entry, open) = created(&body);
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
