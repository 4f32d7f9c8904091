//! The in-process device over mock queues (virtio-queue's `MockSplitQueue`) for the ring
//! cases: impossible indices break one queue without a spinning worker, a reset never waits for
//! a stuck request (whose completion is then discarded), a request stuck on the thread that
//! serves the ring does not stop its queue, indirect descriptors need the feature,
//! and a flood of bad hiprio messages costs at most the shared rate limit's burst of log lines.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use fuse_abi::{Errno, InitFlags, Opcode};
use fuse_server::test_utils::{init_payload, request};
use fuse_server::{
    AttrReply, Capabilities, Context, FileSystem, FsResult, Handle, NegotiationConfig, NodeId,
};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use virtiofs_device::{DeviceConfig, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::{EventFlag, EventNotifier, new_event_consumer_and_notifier};

const SIZE: u16 = 16;
const TIMEOUT: Duration = Duration::from_secs(10);
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// GETATTR blocks until the test lets it go; everything else is the trait's default.
struct StuckFs {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl FileSystem for StuckFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    fn getattr(&self, _ctx: &Context, _nodeid: NodeId, _fh: Option<Handle>) -> FsResult<AttrReply> {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
        Err(Errno::EIO)
    }
}

/// The driver's side of one queue at `base`.
struct Driver {
    base: u64,
    avail: GuestAddress,
    used: GuestAddress,
    kick: EventNotifier,
    next: u16,
}

struct Guest {
    mem: GuestMemoryMmap,
    device: Option<VirtioFs<StuckFs, Mem>>,
    queues: Vec<Driver>,
    release: Sender<()>,
    entered: Receiver<()>,
}

impl Guest {
    fn new() -> Guest {
        let (entered_tx, entered) = channel();
        let (release, release_rx) = channel();
        let fs = StuckFs {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        };
        let config = DeviceConfig::builder("rings")
            .request_queues(2)
            .queue_size(64)
            .build()
            .unwrap();
        let device = VirtioFs::new(config, fs, NegotiationConfig::default());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        Guest {
            mem,
            device: Some(device),
            queues: Vec::new(),
            release,
            entered,
        }
    }

    fn device(&mut self) -> &mut VirtioFs<StuckFs, Mem> {
        self.device.as_mut().unwrap()
    }

    /// Activates with fresh queues at `base + i * 0x1_0000`.
    fn activate(&mut self, base: u64) {
        let mut resources = Vec::new();
        let mut kicks = Vec::new();
        self.queues.clear();
        for i in 0..3u64 {
            let at = base + i * 0x1_0000;
            let mock = MockSplitQueue::create(&self.mem, GuestAddress(at), SIZE);
            let mut queue: Queue = mock.create_queue().unwrap();
            // The mock lays the used ring over the avail ring's second half: move it.
            let used = GuestAddress(at + 0x1000);
            queue.set_used_ring_address(Some(u32::try_from(used.0).unwrap()), Some(0));
            let (kick_consumer, kick) =
                new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            let (_call, call) = new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            resources.push(QueueResources::new(queue, call));
            kicks.push(kick_consumer);
            self.queues.push(Driver {
                base: at,
                avail: mock.avail_addr(),
                used,
                kick,
                next: 0,
            });
        }
        let mem = GuestMemoryAtomic::new(self.mem.clone());
        self.device().activate(mem, resources).unwrap();
        self.device().spawn_kick_threads(kicks).unwrap();
    }

    fn avail(&self, q: usize) -> GuestAddress {
        self.queues[q].avail
    }

    fn used_idx(&self, q: usize) -> u16 {
        let used = self.queues[q].used;
        self.mem.read_obj(used.unchecked_add(2)).unwrap()
    }

    fn used_len(&self, q: usize, n: u16) -> u32 {
        let used = self.queues[q].used;
        self.mem
            .read_obj(used.unchecked_add(4 + 8 * u64::from(n % SIZE) + 4))
            .unwrap()
    }

    /// Publishes the chain at `head` (its descriptors already written) and kicks.
    fn publish(&mut self, q: usize, head: u16) {
        let avail = self.avail(q);
        let n = self.queues[q].next;
        self.mem
            .write_obj(head, avail.unchecked_add(4 + 2 * u64::from(n % SIZE)))
            .unwrap();
        self.queues[q].next = n.wrapping_add(1);
        self.mem
            .write_obj(n.wrapping_add(1), avail.unchecked_add(2))
            .unwrap();
        self.queues[q].kick.notify().unwrap();
    }

    fn desc(&self, q: usize, i: u16, d: Descriptor) {
        let at = GuestAddress(self.queues[q].base + 16 * u64::from(i));
        self.mem.write_obj(RawDescriptor::from(d), at).unwrap();
    }

    /// A request and a 4 KiB reply buffer at descriptors `2n`, `2n + 1`.
    fn submit(&mut self, q: usize, req: &[u8]) {
        let n = self.queues[q].next;
        let head = (n * 2) % SIZE;
        let data = 0x80_0000 + (q as u64) * 0x10_0000 + u64::from(head) * 0x2000;
        self.mem.write_slice(req, GuestAddress(data)).unwrap();
        let len = u32::try_from(req.len()).unwrap();
        self.desc(q, head, Descriptor::new(data, len, F_NEXT, head + 1));
        self.desc(
            q,
            head + 1,
            Descriptor::new(data + 0x1000, 0x1000, F_WRITE, 0),
        );
        self.publish(q, head);
    }

    fn wait_used(&self, q: usize, idx: u16) {
        let deadline = Instant::now() + TIMEOUT;
        while self.used_idx(q) != idx {
            assert!(
                Instant::now() < deadline,
                "queue {q}: no used element {idx}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn init(&mut self, q: usize) {
        let before = self.used_idx(q);
        let payload = init_payload(46, InitFlags::empty(), 0x2_0000);
        self.submit(q, &request(Opcode::Init as u32, 2, 0, &payload));
        self.wait_used(q, before.wrapping_add(1));
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // A failed test must not hang on a worker that the failure left running.
        if std::thread::panicking() {
            std::mem::forget(self.device.take());
        }
    }
}

/// CPU time this process used, in clock ticks (`/proc/self/stat` utime + stime).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn impossible_avail_index_breaks_one_queue_without_spinning_until_reset() {
    let mut g = Guest::new();
    g.activate(0);
    g.init(1);
    // Queue 2: one 16-bit store puts avail->idx 17 entries ahead on a 16-entry queue.
    let avail = g.avail(2);
    g.mem.write_obj(SIZE + 1, avail.unchecked_add(2)).unwrap();
    g.queues[2].kick.notify().unwrap();
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu_ticks() - before;
    assert!(spent < 20, "{spent} ticks of CPU in 500 ms: a worker spins");
    // Kicking a broken queue again costs nothing either; queue 1 is still served.
    g.queues[2].kick.notify().unwrap();
    g.init(1);
    assert_eq!(g.used_idx(2), 0);
    // After a reset and a new activation the queue serves again.
    g.device().reset();
    g.activate(0x40_0000);
    g.init(2);
}

#[test]
fn reset_never_waits_for_a_stuck_request_and_its_completion_is_discarded() {
    let mut g = Guest::new();
    g.activate(0);
    g.init(1);
    g.submit(1, &request(Opcode::Getattr as u32, 4, 1, &[0u8; 16]));
    g.entered
        .recv_timeout(TIMEOUT)
        .expect("GETATTR reaches the backend");

    let mut device = g.device.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        device.reset();
        let _ = tx.send(device);
    });
    g.device = Some(
        rx.recv_timeout(TIMEOUT)
            .expect("reset returns while a request is stuck"),
    );

    // The guest comes back on new rings; queue 1 is served by its other workers.
    let old_used = g.used_idx(1);
    let old_used_ring = g.queues[1].used;
    g.activate(0x40_0000);
    g.init(1);
    // The stuck request ends now: its completion never reaches the old ring.
    g.release.send(()).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while g.device().stats().discarded.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the stale completion was not discarded"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let now: u16 = g.mem.read_obj(old_used_ring.unchecked_add(2)).unwrap();
    assert_eq!(
        now, old_used,
        "a completion was written to the ring of a reset device"
    );
}

#[test]
fn a_request_stuck_on_the_serving_thread_does_not_stop_its_queue() {
    let mut g = Guest::new();
    g.activate(0);
    g.init(1);
    // GETATTR is not known to block: the kick thread serves it, and it gets stuck there.
    g.submit(1, &request(Opcode::Getattr as u32, 4, 1, &[0u8; 16]));
    g.entered
        .recv_timeout(TIMEOUT)
        .expect("GETATTR reaches the backend");
    // The watchdog hands what comes next to the pool.
    g.submit(1, &request(Opcode::Statfs as u32, 6, 1, &[]));
    g.wait_used(1, 2);
    g.release.send(()).unwrap();
    g.wait_used(1, 3);
}

#[test]
fn indirect_descriptors_need_the_negotiated_feature() {
    for negotiated in [false, true] {
        let mut g = Guest::new();
        if negotiated {
            let features = g.device().features();
            g.device().ack_features(features);
        }
        g.activate(0);
        // INIT through an indirect table of two descriptors.
        let payload = init_payload(46, InitFlags::empty(), 0x2_0000);
        let req = request(Opcode::Init as u32, 2, 0, &payload);
        let data = 0x80_0000;
        g.mem.write_slice(&req, GuestAddress(data)).unwrap();
        let table = GuestAddress(0xA0_0000);
        let len = u32::try_from(req.len()).unwrap();
        let entries = [
            Descriptor::new(data, len, F_NEXT, 1),
            Descriptor::new(data + 0x1000, 0x1000, F_WRITE, 0),
        ];
        for (i, d) in entries.into_iter().enumerate() {
            g.mem
                .write_obj(RawDescriptor::from(d), table.unchecked_add(16 * i as u64))
                .unwrap();
        }
        g.desc(1, 0, Descriptor::new(table.0, 32, F_INDIRECT, 0));
        g.publish(1, 0);
        g.wait_used(1, 1);
        let used_len = g.used_len(1, 0);
        if negotiated {
            assert!(used_len > 16, "INIT through an indirect table: {used_len}");
        } else {
            assert_eq!(
                used_len, 0,
                "an indirect descriptor without the feature was served"
            );
            assert_eq!(g.device().stats().malformed.load(Ordering::Relaxed), 1);
        }
    }
}

static HIPRIO_LINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts the warnings about the hiprio queue (the other tests here log none).
struct Counter;

impl log::Log for Counter {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) && r.args().to_string().contains("hiprio queue") {
            HIPRIO_LINES.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}

static COUNTER: Counter = Counter;

#[test]
fn a_flood_of_bad_hiprio_messages_is_rate_limited() {
    log::set_logger(&COUNTER).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let mut g = Guest::new();
    g.activate(0);
    g.init(1);
    // 200 GETATTRs on the hiprio queue, which takes FORGET only.
    for n in 1..=200u16 {
        g.submit(0, &request(Opcode::Getattr as u32, 4, 1, &[0u8; 16]));
        g.wait_used(0, n);
    }
    assert_eq!(g.device().stats().dropped.load(Ordering::Relaxed), 200);
    let lines = HIPRIO_LINES.load(Ordering::Relaxed);
    let burst = usize::try_from(fuse_server::limits::RateLimit::BURST).unwrap();
    assert!(lines > 0, "the first ones are logged");
    assert!(
        lines <= burst + 2,
        "{lines} log lines for 200 bad hiprio messages"
    );
}
