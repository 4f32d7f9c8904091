//! The in-process device over mock queues (virtio-queue's `MockSplitQueue`) for the ring
//! cases: impossible indices break one queue without a spinning worker, a reset never waits for
//! a stuck request (whose completion is then discarded), a request stuck on the thread that
//! serves the ring does not stop its queue, indirect descriptors need the feature,
//! and a flood of bad hiprio messages costs at most the shared rate limit's burst of log lines.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use common::fs::StuckFs;
use common::fuse::init_offering_none;
use common::{Driver, F_INDIRECT, F_NEXT, F_WRITE, Mem, TIMEOUT};
use fuse_abi::Opcode;
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::request;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtiofs_device::{DeviceConfig, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress};

const SIZE: u16 = 16;
/// Buffers per head: the request, then a reply buffer of 4 KiB.
const SLOT: u64 = 0x2000;

struct Guest {
    driver: Driver,
    device: Option<VirtioFs<StuckFs, Mem>>,
    release: Sender<()>,
    entered: Receiver<()>,
}

impl Guest {
    fn new() -> Guest {
        let (fs, entered, release) = StuckFs::new();
        let config = DeviceConfig::builder("rings")
            .request_queues(2)
            .queue_size(64)
            .build()
            .unwrap();
        let device = VirtioFs::new(config, fs, NegotiationConfig::default());
        Guest {
            driver: Driver::new(0x100_0000),
            device: Some(device),
            release,
            entered,
        }
    }

    fn device(&mut self) -> &mut VirtioFs<StuckFs, Mem> {
        self.device.as_mut().unwrap()
    }

    /// Activates with fresh queues at `base + i * 0x1_0000`.
    fn activate(&mut self, base: u64) {
        let (queues, kicks) = self.driver.queues(base, 3, SIZE, SLOT);
        let resources = self.driver.call_eventfds(queues);
        let mem = self.driver.memory();
        self.device().activate(mem, resources).unwrap();
        self.device().spawn_kick_threads(kicks).unwrap();
    }

    fn used_idx(&self, q: usize) -> u16 {
        self.driver.rings[q].used_idx()
    }

    fn used_len(&self, q: usize, n: u16) -> u32 {
        self.driver.rings[q].used_elem(n).1
    }

    /// Publishes the chain at `head` (its descriptors already written) and kicks.
    fn publish(&mut self, q: usize, head: u16) {
        self.driver.rings[q].publish(head);
        self.driver.kick(q);
    }

    fn desc(&self, q: usize, i: u16, d: Descriptor) {
        self.driver.rings[q].desc(i, d);
    }

    /// A request and a 4 KiB reply buffer at descriptors `2n`, `2n + 1`, kicked.
    fn submit(&mut self, q: usize, req: &[u8]) {
        self.driver.rings[q].put(req, 0x1000);
        self.driver.kick(q);
    }

    fn wait_used(&self, q: usize, idx: u16) {
        self.driver.rings[q].wait_for(&format!("queue {q}: no used element {idx}"), |r| {
            r.used_idx() == idx
        });
    }

    fn init(&mut self, q: usize) {
        let before = self.used_idx(q);
        self.submit(
            q,
            &request(Opcode::Init as u32, 2, 0, &init_offering_none()),
        );
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
    g.driver.rings[2].set_avail_idx(SIZE + 1);
    g.driver.kick(2);
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu_ticks() - before;
    assert!(spent < 20, "{spent} ticks of CPU in 500 ms: a worker spins");
    // Kicking a broken queue again costs nothing either; queue 1 is still served.
    g.driver.kick(2);
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
    let old_ring = g.driver.rings[1].clone();
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
    let now = old_ring.used_idx();
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
        let req = request(Opcode::Init as u32, 2, 0, &init_offering_none());
        let data = 0x80_0000;
        g.driver.mem.write_slice(&req, GuestAddress(data)).unwrap();
        let table = GuestAddress(0xA0_0000);
        let len = u32::try_from(req.len()).unwrap();
        let entries = [
            Descriptor::new(data, len, F_NEXT, 1),
            Descriptor::new(data + 0x1000, 0x1000, F_WRITE, 0),
        ];
        for (i, d) in entries.into_iter().enumerate() {
            g.driver
                .mem
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
