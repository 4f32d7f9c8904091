//! Requests that may block go to the queue's pool, everything else is served by the thread that
//! takes heads off the ring: through the in-process device, its kick threads and the real
//! server with `PassthroughFs`, a SETLKW that waits for a lock held by another owner (parked,
//! see `tests/parked_locks.rs`) does not hold up a GETATTR on the same queue, even with a pool
//! of one worker; and the completions of one batch share one interrupt.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fs::open_share;
use common::fuse::{create, created, init_offering_all, init_offering_none, lock};
use common::{Driver, Mem, Sent};
use fuse_abi::{InitFlags, InitOut, Opcode};
use fuse_server::NegotiationConfig;
use passthrough_linux::{Config, PassthroughFs};
use virtiofs_device::{DeviceConfig, VirtioFs};
use zerocopy::FromBytes;

const QUEUE_SIZE: u16 = 64;
/// Buffers per head: the request, then a reply buffer of 4 KiB.
const SLOT: u64 = 0x2000;

/// A mock guest with the device under test.
struct Guest {
    driver: Driver,
    device: VirtioFs<PassthroughFs, Mem>,
    _dir: tempfile::TempDir,
}

impl Guest {
    /// One request queue; `workers` in its pool, or none at all (inline, no kick threads).
    fn new(workers: Option<usize>) -> Guest {
        let dir = open_share();
        let fs = PassthroughFs::new(Config::builder(dir.path()).build().unwrap()).unwrap();
        let mut config = DeviceConfig::builder("blocking").queue_size(QUEUE_SIZE);
        config = match workers {
            Some(n) => config.workers_per_queue(n),
            None => config.inline(true),
        };
        let mut device = VirtioFs::new(config.build().unwrap(), fs, NegotiationConfig::default());
        let mut driver = Driver::new(0x100_0000);
        let (queues, kicks) = driver.queues(0, 2, QUEUE_SIZE, SLOT);
        let resources = driver.call_eventfds(queues);
        device.activate(driver.memory(), resources).unwrap();
        if workers.is_some() {
            device.spawn_kick_threads(kicks).unwrap();
        }
        Guest {
            driver,
            device,
            _dir: dir,
        }
    }

    /// Puts a request with a 4 KiB reply buffer on request queue 1 without kicking.
    fn put(&mut self, opcode: Opcode, nodeid: u64, args: &[u8]) -> Sent {
        self.driver.put(1, opcode, nodeid, args)
    }

    fn kick(&self) {
        self.driver.kick(1);
    }

    fn is_done(&self, s: Sent) -> bool {
        self.driver.is_done(s)
    }

    fn wait(&self, s: Sent) {
        self.driver.wait(s);
    }

    /// The reply to `s` (checked framing): (error, body).
    fn reply(&self, s: Sent) -> (i32, Vec<u8>) {
        self.driver.reply(s)
    }

    /// Sends a request and waits for its reply.
    fn call(&mut self, opcode: Opcode, nodeid: u64, args: &[u8]) -> (i32, Vec<u8>) {
        let s = self.put(opcode, nodeid, args);
        self.kick();
        self.wait(s);
        self.reply(s)
    }

    fn init(&mut self) {
        let (err, body) = self.call(Opcode::Init, 0, &init_offering_all());
        assert_eq!(err, 0, "INIT");
        let init = InitOut::read_from_prefix(&body).unwrap().0;
        let flags = InitFlags::from_wire(init.flags.get(), init.flags2.get());
        assert!(flags.contains(InitFlags::POSIX_LOCKS), "{flags:?}");
    }
}

#[test]
fn a_waiting_setlkw_does_not_hold_up_a_getattr_on_its_queue() {
    // One pool worker: before requests that may block went to the pool, the GETATTR waited
    // behind the SETLKW on it.
    let mut g = Guest::new(Some(1));
    g.init();
    let (err, body) = g.call(Opcode::Create, 1, &create("locked"));
    assert_eq!(err, 0, "CREATE");
    let (entry, open) = created(&body);
    let fh = open.fh.get();
    let node = entry.nodeid.get();

    // Owner 1 holds the lock; owner 2's SETLKW waits for it.
    let (err, _) = g.call(Opcode::Setlk, node, &lock(fh, 1, 1));
    assert_eq!(err, 0, "SETLK of owner 1");
    let setlkw = g.put(Opcode::Setlkw, node, &lock(fh, 2, 1));
    g.kick();
    std::thread::sleep(Duration::from_millis(20));
    assert!(!g.is_done(setlkw), "the SETLKW waits for owner 1");

    // A GETATTR on the same queue is answered meanwhile.
    let started = Instant::now();
    let getattr = g.put(Opcode::Getattr, node, &[0u8; 16]);
    g.kick();
    g.wait(getattr);
    let delay = started.elapsed();
    assert!(
        !g.is_done(setlkw),
        "the GETATTR was answered only after the SETLKW"
    );
    let (err, _) = g.reply(getattr);
    assert_eq!(err, 0, "GETATTR");
    eprintln!("GETATTR answered in {delay:?} while a SETLKW waits");

    // Owner 1 unlocks (on the serving thread); the SETLKW is granted.
    let (err, _) = g.call(Opcode::Setlk, node, &lock(fh, 1, 2));
    assert_eq!(err, 0, "unlock of owner 1");
    g.wait(setlkw);
    assert_eq!(g.reply(setlkw).0, 0, "SETLKW granted");
    assert!(g.device.stats().parked.load(Ordering::Relaxed) >= 1);
}

#[test]
fn the_completions_of_one_batch_share_one_interrupt() {
    // Inline: the test's own thread serves, so the batch is exactly what it put on the ring.
    let mut g = Guest::new(None);
    let init = g.put(Opcode::Init, 0, &init_offering_none());
    g.device.process_queue(1).unwrap();
    assert_eq!(g.reply(init).0, 0, "INIT");
    let stats = g.device.stats();
    let notified = stats.notifications.load(Ordering::Relaxed);
    let completed = stats.completed.load(Ordering::Relaxed);

    let batch: Vec<Sent> = (0..8)
        .map(|_| g.put(Opcode::Getattr, 1, &[0u8; 16]))
        .collect();
    g.device.process_queue(1).unwrap();
    for &getattr in &batch {
        assert_eq!(g.reply(getattr).0, 0, "GETATTR");
    }
    let stats = g.device.stats();
    assert_eq!(stats.completed.load(Ordering::Relaxed), completed + 8);
    // One interrupt per four completions (the queue's SIGNAL_BATCH) while more are waiting,
    // and the last when the ring is drained: eight completions, two interrupts, not eight.
    assert_eq!(
        stats.notifications.load(Ordering::Relaxed),
        notified + 2,
        "eight completions, two interrupts"
    );
}
