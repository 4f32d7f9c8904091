//! A SETLKW whose lock is held waits without a thread: the device parks its chain and serves it
//! again when a request that may free a lock completes (on any queue), or on its backoff timer
//! for holders it cannot see. Through the in-process device and the real server with
//! `PassthroughFs`, on mock rings: the order of used elements is asserted, never a duration.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fs::open_share;
use common::fuse::{UN, WR, create, created, init_offering_all, lock};
use common::{Driver, Mem, Sent, TIMEOUT};
use fuse_abi::{FlushIn, Opcode};
use fuse_server::NegotiationConfig;
use passthrough_linux::{Config, PassthroughFs};
use virtiofs_device::{DeviceConfig, VirtioFs};
use zerocopy::IntoBytes;

/// Room for a thousand requests of two descriptors in flight.
const QUEUE_SIZE: u16 = 2048;
/// Buffers per head: the request, then a reply buffer of 2 KiB.
const SLOT: u64 = 0x1000;

/// A mock guest with the device under test: `queues` request queues (1..=queues).
struct Guest {
    driver: Driver,
    device: VirtioFs<PassthroughFs, Mem>,
    _dir: tempfile::TempDir,
    inline: bool,
}

impl Guest {
    /// `workers` in each queue's pool (and kick threads), or none at all: inline, served by
    /// the test's own calls to `process_queue`.
    fn new(workers: Option<usize>, queues: usize) -> Guest {
        // The requests run as uid 0 with the daemon's credentials; the share is open to all.
        let dir = open_share();
        let fs = PassthroughFs::new(
            Config::builder(dir.path())
                .max_lock_fds(4096)
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut config = DeviceConfig::builder("parked")
            .queue_size(QUEUE_SIZE)
            .request_queues(u16::try_from(queues).unwrap());
        config = match workers {
            Some(n) => config.workers_per_queue(n),
            None => config.inline(true),
        };
        let mut device = VirtioFs::new(config.build().unwrap(), fs, NegotiationConfig::default());
        let mut driver = Driver::new(0x400_0000);
        let (rings, kicks) = driver.queues(0, queues + 1, QUEUE_SIZE, SLOT);
        let resources = driver.call_eventfds(rings);
        device.activate(driver.memory(), resources).unwrap();
        if workers.is_some() {
            device.spawn_kick_threads(kicks).unwrap();
        }
        Guest {
            driver,
            device,
            _dir: dir,
            inline: workers.is_none(),
        }
    }

    /// Puts a request on request queue `queue` without kicking.
    fn put_on(&mut self, queue: usize, opcode: Opcode, nodeid: u64, args: &[u8]) -> Sent {
        self.driver.put(queue, opcode, nodeid, args)
    }

    fn put(&mut self, opcode: Opcode, nodeid: u64, args: &[u8]) -> Sent {
        self.put_on(1, opcode, nodeid, args)
    }

    /// Has the device look at `queue`: a kick, or (inline) a `process_queue` on this thread.
    fn kick(&self, queue: usize) {
        if self.inline {
            self.device.process_queue(queue).unwrap();
        } else {
            self.driver.kick(queue);
        }
    }

    /// How many times `p` is on its used ring (a request is answered once).
    fn times_done(&self, p: Sent) -> usize {
        self.driver.times_done(p)
    }

    fn is_done(&self, p: Sent) -> bool {
        self.driver.is_done(p)
    }

    /// Where `p` is on its used ring.
    fn position(&self, p: Sent) -> usize {
        self.driver.position(p)
    }

    fn wait(&self, p: Sent) {
        self.driver.wait(p);
    }

    /// The reply to `p` (checked framing): its error.
    fn error(&self, p: Sent) -> i32 {
        self.driver.reply(p).0
    }

    /// Sends a request on `queue` and waits for its reply: its error.
    fn call_on(&mut self, queue: usize, opcode: Opcode, nodeid: u64, args: &[u8]) -> i32 {
        let p = self.put_on(queue, opcode, nodeid, args);
        self.kick(queue);
        self.wait(p);
        self.error(p)
    }

    fn init(&mut self) {
        let p = self.put(Opcode::Init, 0, &init_offering_all());
        self.kick(1);
        self.wait(p);
        assert_eq!(self.error(p), 0, "INIT");
    }

    /// Creates a file: (node id, handle).
    fn create(&mut self, name: &str) -> (u64, u64) {
        let p = self.put(Opcode::Create, 1, &create(name));
        self.kick(1);
        self.wait(p);
        let (error, body) = self.driver.reply(p);
        assert_eq!(error, 0, "CREATE");
        let (entry, open) = created(&body);
        (entry.nodeid.get(), open.fh.get())
    }
}

/// Inline: owner 2's SETLKW parks behind owner 1's lock; a GETATTR behind it is answered
/// first; unrelated requests (a GETATTR, a SETLK of another node, retries due or not) never
/// answer it; owner 1's unlock on the same queue grants it, once.
#[test]
fn a_parked_setlkw_is_granted_by_the_unlock_on_its_queue_and_answered_once() {
    let mut g = Guest::new(None, 1);
    g.init();
    let (node, fh) = g.create("f");
    let (other, other_fh) = g.create("g");
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 1, WR)), 0);

    let setlkw = g.put(Opcode::Setlkw, node, &lock(fh, 2, WR));
    let getattr = g.put(Opcode::Getattr, node, &[0u8; 16]);
    g.kick(1);
    assert!(
        g.is_done(getattr),
        "the GETATTR behind the SETLKW is answered"
    );
    assert!(!g.is_done(setlkw), "the SETLKW waits for owner 1");
    assert_eq!(g.device.parked(), 1);
    assert_eq!(g.device.stats().parked.load(Ordering::Relaxed), 1);

    // Unrelated requests and retries leave it parked.
    assert_eq!(
        g.call_on(1, Opcode::Setlk, other, &lock(other_fh, 3, WR)),
        0
    );
    for _ in 0..3 {
        g.device.retry_parked();
    }
    assert!(!g.is_done(setlkw));
    assert!(g.device.next_retry().is_some());

    // Owner 1 unlocks: the SETLKW is granted at once, on this thread, before the unlock's
    // own completion goes on the ring.
    let unlock = g.put(Opcode::Setlk, node, &lock(fh, 1, UN));
    g.kick(1);
    assert!(g.is_done(setlkw), "granted by the unlock");
    assert_eq!(g.error(setlkw), 0);
    assert_eq!(g.error(unlock), 0);
    assert!(g.position(getattr) < g.position(setlkw));
    assert_eq!(g.device.parked(), 0);
    assert_eq!(g.device.next_retry(), None);

    // More requests and retries never answer it again.
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 2, UN)), 0);
    g.device.retry_parked();
    assert_eq!(g.times_done(setlkw), 1);
}

/// Inline, two request queues: the SETLKW parked on queue 1 is granted by the unlock on
/// queue 2.
#[test]
fn the_unlock_on_another_queue_grants_it() {
    let mut g = Guest::new(None, 2);
    g.init();
    let (node, fh) = g.create("f");
    assert_eq!(g.call_on(2, Opcode::Setlk, node, &lock(fh, 1, WR)), 0);
    let setlkw = g.put_on(1, Opcode::Setlkw, node, &lock(fh, 2, WR));
    g.kick(1);
    assert!(!g.is_done(setlkw));
    assert_eq!(g.device.parked(), 1);
    assert_eq!(g.call_on(2, Opcode::Setlk, node, &lock(fh, 1, UN)), 0);
    assert!(g.is_done(setlkw), "granted by the unlock on queue 2");
    assert_eq!(g.error(setlkw), 0);
    assert_eq!(g.times_done(setlkw), 1);
}

/// FLUSH of the holder (a `close(2)` in the guest) grants it too.
#[test]
fn the_holders_flush_grants_it() {
    let mut g = Guest::new(None, 1);
    g.init();
    let (node, fh) = g.create("f");
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 1, WR)), 0);
    let setlkw = g.put(Opcode::Setlkw, node, &lock(fh, 2, WR));
    g.kick(1);
    assert!(!g.is_done(setlkw));
    let flush = FlushIn {
        fh: fh.into(),
        lock_owner: 1.into(),
        ..FlushIn::default()
    };
    assert_eq!(g.call_on(1, Opcode::Flush, node, flush.as_bytes()), 0);
    assert!(g.is_done(setlkw));
    assert_eq!(g.error(setlkw), 0);
}

/// A device reset drops the parked request: never answered, counted as discarded.
#[test]
fn reset_drops_it() {
    let mut g = Guest::new(None, 1);
    g.init();
    let (node, fh) = g.create("f");
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 1, WR)), 0);
    let setlkw = g.put(Opcode::Setlkw, node, &lock(fh, 2, WR));
    g.kick(1);
    assert_eq!(g.device.parked(), 1);
    let discarded = g.device.stats().discarded.load(Ordering::Relaxed);
    g.device.reset();
    assert_eq!(g.device.parked(), 0);
    assert_eq!(
        g.device.stats().discarded.load(Ordering::Relaxed),
        discarded + 1
    );
    assert_eq!(g.device.retry_parked(), None);
    assert!(!g.is_done(setlkw));
}

/// With pools: an unlock that names another node (so it wakes nothing: the backend keys
/// locks by handle) is found by the backoff timer of the queue's retry thread, the path a
/// host process's lock takes.
#[test]
fn the_timer_grants_it_when_no_wake_up_comes() {
    let mut g = Guest::new(Some(1), 1);
    g.init();
    let (node, fh) = g.create("f");
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 1, WR)), 0);
    let setlkw = g.put(Opcode::Setlkw, node, &lock(fh, 2, WR));
    g.kick(1);
    let deadline = Instant::now() + TIMEOUT;
    while g.device.stats().reparked.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the timer retries it");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!g.is_done(setlkw));
    assert_eq!(g.call_on(1, Opcode::Setlk, 999_999, &lock(fh, 1, UN)), 0);
    g.wait(setlkw);
    assert_eq!(g.error(setlkw), 0);
    assert_eq!(g.times_done(setlkw), 1);
}

/// A hostile guest parks a thousand SETLKW on a lock it never frees: the queue goes on
/// answering, the parked set stays at what the ring holds, and each parked request is tried
/// at the timer's pace (1 ms doubling to 200 ms), not in a loop.
#[test]
fn a_thousand_parked_setlkw_do_not_stop_the_queue() {
    const N: usize = 1000;
    let mut g = Guest::new(Some(1), 1);
    g.init();
    let (node, fh) = g.create("f");
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 1, WR)), 0);
    let parked: Vec<Sent> = (0..N as u64)
        .map(|owner| g.put(Opcode::Setlkw, node, &lock(fh, 100 + owner, WR)))
        .collect();
    let since = Instant::now();
    g.kick(1);
    let deadline = Instant::now() + TIMEOUT;
    while g.device.stats().parked.load(Ordering::Relaxed) < N as u64 {
        assert!(Instant::now() < deadline, "all parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..10 {
        let getattr = g.put(Opcode::Getattr, node, &[0u8; 16]);
        g.kick(1);
        g.wait(getattr);
        assert_eq!(g.error(getattr), 0);
    }
    // (One may be out of the set right now, being tried by the retry thread.)
    assert!(g.device.parked() <= N);
    assert_eq!(g.device.stats().parked.load(Ordering::Relaxed), N as u64);
    assert!(parked.iter().all(|&p| !g.is_done(p)));
    std::thread::sleep(Duration::from_millis(300));
    // Each request is tried at most once per pause, and the pauses double to 200 ms: in
    // `elapsed` since parking, at most 9 attempts (1 + 2 + ... + 128 ms) and one per 200 ms
    // after that. A slow machine only makes fewer.
    let retried = g.device.stats().reparked.load(Ordering::Relaxed);
    let elapsed = since.elapsed();
    eprintln!("{retried} attempts for {N} parked requests in {elapsed:?}");
    let per_request = 10 + u64::try_from(elapsed.as_millis() / 200).unwrap();
    assert!(
        retried <= N as u64 * per_request,
        "{retried} attempts in {elapsed:?}: the backoff is not applied"
    );
    // The holder's unlock grants the first in line (the others conflict with it, then).
    assert_eq!(g.call_on(1, Opcode::Setlk, node, &lock(fh, 1, UN)), 0);
    let deadline = Instant::now() + TIMEOUT;
    let granted = loop {
        let done: Vec<Sent> = parked.iter().copied().filter(|&p| g.is_done(p)).collect();
        if !done.is_empty() {
            break done;
        }
        assert!(Instant::now() < deadline, "one of them is granted");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(granted.len(), 1, "the one granted holds the lock now");
    assert_eq!(g.error(granted[0]), 0);
}
