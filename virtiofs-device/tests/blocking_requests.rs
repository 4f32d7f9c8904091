//! Requests that may block go to the queue's pool, everything else is served by the thread that
//! takes heads off the ring: through the in-process device, its kick threads and the real
//! server with `PassthroughFs`, a SETLKW that waits for a lock held by another owner (parked,
//! see `tests/parked_locks.rs`) does not hold up a GETATTR on the same queue, even with a pool
//! of one worker; and the completions of one batch share one interrupt.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fuse_abi::{
    CreateIn, EntryOut, FileLock, InitFlags, InitOut, LkIn, Opcode, OpenOut, OutHeader,
};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::{init_payload, request};
use passthrough_linux::{Config, PassthroughFs};
use virtio_queue::Queue;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtiofs_device::{DeviceConfig, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::{EventFlag, EventNotifier, new_event_consumer_and_notifier};
use zerocopy::{FromBytes, IntoBytes};

const QUEUE_SIZE: u16 = 64;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const RING_STRIDE: u64 = 0x1_0000;
const DATA_BASE: u64 = 0x10_0000;
const DATA_SLOT: u64 = 0x2000;
/// Long enough for a loaded machine, short enough to fail rather than hang.
const TIMEOUT: Duration = Duration::from_secs(10);

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// The driver's side of one virtqueue.
struct Ring {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    kick: EventNotifier,
    next: u16,
}

/// A mock guest with the device under test.
struct Guest {
    mem: GuestMemoryMmap,
    rings: Vec<Ring>,
    device: VirtioFs<PassthroughFs, Mem>,
    _dir: tempfile::TempDir,
    unique: u64,
}

impl Guest {
    /// One request queue; `workers` in its pool, or none at all (inline, no kick threads).
    fn new(workers: Option<usize>) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let fs = PassthroughFs::new(Config::builder(dir.path()).build().unwrap()).unwrap();
        let mut config = DeviceConfig::builder("blocking").queue_size(QUEUE_SIZE);
        config = match workers {
            Some(n) => config.workers_per_queue(n),
            None => config.inline(true),
        };
        let mut device = VirtioFs::new(config.build().unwrap(), fs, NegotiationConfig::default());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let mut rings = Vec::new();
        let mut resources = Vec::new();
        let mut kicks = Vec::new();
        for i in 0..2u64 {
            let mock = MockSplitQueue::create(&mem, GuestAddress(i * RING_STRIDE), QUEUE_SIZE);
            let queue: Queue = mock.create_queue().unwrap();
            let (kick_consumer, kick) =
                new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            let (_call, call) = new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            resources.push(QueueResources::new(queue, call));
            kicks.push(kick_consumer);
            rings.push(Ring {
                desc: mock.desc_table_addr(),
                avail: mock.avail_addr(),
                used: mock.used_addr(),
                kick,
                next: 0,
            });
        }
        device
            .activate(GuestMemoryAtomic::new(mem.clone()), resources)
            .unwrap();
        if workers.is_some() {
            device.spawn_kick_threads(kicks).unwrap();
        }
        Guest {
            mem,
            rings,
            device,
            _dir: dir,
            unique: 0,
        }
    }

    /// Puts a request with a 4 KiB reply buffer on request queue 1 without kicking; returns
    /// its head and unique.
    fn put(&mut self, opcode: Opcode, nodeid: u64, args: &[u8]) -> (u16, u64) {
        self.unique += 2;
        let unique = self.unique;
        let req = request(opcode as u32, unique, nodeid, args);
        let ring = &mut self.rings[1];
        let n = ring.next;
        let head = (n * 2) % QUEUE_SIZE;
        let data = DATA_BASE + u64::from(head) * DATA_SLOT;
        self.mem.write_slice(&req, GuestAddress(data)).unwrap();
        let descs = [
            Descriptor::new(data, u32::try_from(req.len()).unwrap(), F_NEXT, head + 1),
            Descriptor::new(data + DATA_SLOT / 2, 0x1000, F_WRITE, 0),
        ];
        for (i, d) in (head..).zip(descs) {
            self.mem
                .write_obj(
                    RawDescriptor::from(d),
                    ring.desc.unchecked_add(16 * u64::from(i)),
                )
                .unwrap();
        }
        self.mem
            .write_obj(
                head,
                ring.avail.unchecked_add(4 + 2 * u64::from(n % QUEUE_SIZE)),
            )
            .unwrap();
        ring.next = n.wrapping_add(1);
        self.mem
            .write_obj(ring.next, ring.avail.unchecked_add(2))
            .unwrap();
        (head, unique)
    }

    fn kick(&self) {
        self.rings[1].kick.notify().unwrap();
    }

    /// The used elements so far, as (head, used length).
    fn used(&self) -> Vec<(u16, u32)> {
        let ring = &self.rings[1];
        let idx: u16 = self.mem.read_obj(ring.used.unchecked_add(2)).unwrap();
        (0..idx)
            .map(|n| {
                let elem = ring.used.unchecked_add(4 + 8 * u64::from(n % QUEUE_SIZE));
                let id: u32 = self.mem.read_obj(elem).unwrap();
                let len: u32 = self.mem.read_obj(elem.unchecked_add(4)).unwrap();
                (u16::try_from(id).unwrap(), len)
            })
            .collect()
    }

    fn is_done(&self, head: u16) -> bool {
        self.used().iter().any(|&(h, _)| h == head)
    }

    fn wait(&self, head: u16) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.is_done(head) {
            assert!(Instant::now() < deadline, "no used element for head {head}");
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// The reply to the request at `head` (checked framing): (error, body).
    fn reply(&self, head: u16, unique: u64) -> (i32, Vec<u8>) {
        let (_, len) = *self.used().iter().find(|&&(h, _)| h == head).unwrap();
        let mut reply = vec![0u8; len as usize];
        let at = DATA_BASE + u64::from(head) * DATA_SLOT + DATA_SLOT / 2;
        self.mem.read_slice(&mut reply, GuestAddress(at)).unwrap();
        let (oh, body) = OutHeader::read_from_prefix(&reply).unwrap();
        assert_eq!(oh.unique.get(), unique);
        assert_eq!(oh.len.get(), len);
        (oh.error.get(), body.to_vec())
    }

    /// Sends a request and waits for its reply.
    fn call(&mut self, opcode: Opcode, nodeid: u64, args: &[u8]) -> (i32, Vec<u8>) {
        let (head, unique) = self.put(opcode, nodeid, args);
        self.kick();
        self.wait(head);
        self.reply(head, unique)
    }

    fn init(&mut self) {
        let offer = InitFlags::all().difference(InitFlags::INIT_RESERVED);
        let (err, body) = self.call(Opcode::Init, 0, &init_payload(46, offer, 128 * 1024));
        assert_eq!(err, 0, "INIT");
        let init = InitOut::read_from_prefix(&body).unwrap().0;
        let flags = InitFlags::from_wire(init.flags.get(), init.flags2.get());
        assert!(flags.contains(InitFlags::POSIX_LOCKS), "{flags:?}");
    }
}

fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A write lock on the whole file for `owner` (`typ` 2 unlocks).
fn lock(fh: u64, owner: u64, typ: u32) -> Vec<u8> {
    LkIn {
        fh: fh.into(),
        owner: owner.into(),
        lk: FileLock {
            start: 0.into(),
            end: u64::MAX.into(),
            typ: typ.into(),
            pid: 1.into(),
        },
        ..LkIn::default()
    }
    .as_bytes()
    .to_vec()
}

#[test]
fn a_waiting_setlkw_does_not_hold_up_a_getattr_on_its_queue() {
    // One pool worker: before requests that may block went to the pool, the GETATTR waited
    // behind the SETLKW on it.
    let mut g = Guest::new(Some(1));
    g.init();
    let create = CreateIn {
        flags: 2.into(), // O_RDWR
        mode: 0o100_644.into(),
        umask: 0o022.into(),
        open_flags: 0.into(),
    };
    let mut args = create.as_bytes().to_vec();
    args.extend_from_slice(&name("locked"));
    let (err, body) = g.call(Opcode::Create, 1, &args);
    assert_eq!(err, 0, "CREATE");
    let (entry, rest) = EntryOut::read_from_prefix(&body).unwrap();
    let fh = OpenOut::read_from_prefix(rest).unwrap().0.fh.get();
    let node = entry.nodeid.get();

    // Owner 1 holds the lock; owner 2's SETLKW waits for it.
    let (err, _) = g.call(Opcode::Setlk, node, &lock(fh, 1, 1));
    assert_eq!(err, 0, "SETLK of owner 1");
    let (setlkw, setlkw_unique) = g.put(Opcode::Setlkw, node, &lock(fh, 2, 1));
    g.kick();
    std::thread::sleep(Duration::from_millis(20));
    assert!(!g.is_done(setlkw), "the SETLKW waits for owner 1");

    // A GETATTR on the same queue is answered meanwhile.
    let started = Instant::now();
    let (getattr, getattr_unique) = g.put(Opcode::Getattr, node, &[0u8; 16]);
    g.kick();
    g.wait(getattr);
    let delay = started.elapsed();
    assert!(
        !g.is_done(setlkw),
        "the GETATTR was answered only after the SETLKW"
    );
    let (err, _) = g.reply(getattr, getattr_unique);
    assert_eq!(err, 0, "GETATTR");
    eprintln!("GETATTR answered in {delay:?} while a SETLKW waits");

    // Owner 1 unlocks (on the serving thread); the SETLKW is granted.
    let (err, _) = g.call(Opcode::Setlk, node, &lock(fh, 1, 2));
    assert_eq!(err, 0, "unlock of owner 1");
    g.wait(setlkw);
    assert_eq!(g.reply(setlkw, setlkw_unique).0, 0, "SETLKW granted");
    assert!(g.device.stats().parked.load(Ordering::Relaxed) >= 1);
}

#[test]
fn the_completions_of_one_batch_share_one_interrupt() {
    // Inline: the test's own thread serves, so the batch is exactly what it put on the ring.
    let mut g = Guest::new(None);
    let (head, unique) = g.put(
        Opcode::Init,
        0,
        &init_payload(46, InitFlags::empty(), 128 * 1024),
    );
    g.device.process_queue(1).unwrap();
    assert_eq!(g.reply(head, unique).0, 0, "INIT");
    let stats = g.device.stats();
    let notified = stats.notifications.load(Ordering::Relaxed);
    let completed = stats.completed.load(Ordering::Relaxed);

    let batch: Vec<(u16, u64)> = (0..8)
        .map(|_| g.put(Opcode::Getattr, 1, &[0u8; 16]))
        .collect();
    g.device.process_queue(1).unwrap();
    for &(head, unique) in &batch {
        assert_eq!(g.reply(head, unique).0, 0, "GETATTR");
    }
    let stats = g.device.stats();
    assert_eq!(stats.completed.load(Ordering::Relaxed), completed + 8);
    assert_eq!(
        stats.notifications.load(Ordering::Relaxed),
        notified + 1,
        "eight completions, one interrupt"
    );
}
