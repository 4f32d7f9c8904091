//! The poll window (`DeviceConfigBuilder::poll_us`, the daemon's `--poll-us`) over mock queues:
//! a request the driver adds while the serving thread polls, without kicking (the device told
//! it not to), is answered; after the window notifications are on again, and a kicked request
//! is answered; with no window, the same unkicked request waits for a kick.
//!
//! No timing: the driver adds the unkicked request from inside the device's interrupt, which
//! the serving thread calls right after it found the ring empty and before it polls (or
//! returns). At that moment the test reads what a driver reads to decide whether to kick
//! (VRING_USED_F_NO_NOTIFY, or with EVENT_IDX the avail event) and asserts it.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuse_abi::{InitFlags, Opcode};
use fuse_server::test_utils::{init_payload, request};
use fuse_server::{Capabilities, FileSystem, NegotiationConfig};
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use virtiofs_device::{DeviceConfig, Interrupt, QueueResources, VirtioFs};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::{EventFlag, EventNotifier, new_event_consumer_and_notifier};

const SIZE: u16 = 16;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const USED_F_NO_NOTIFY: u16 = 1;
/// A hang guard only: nothing here is timed.
const TIMEOUT: Duration = Duration::from_secs(10);

type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// Answers INIT and nothing else (ENOSYS): every request gets a reply.
struct NullFs;

impl FileSystem for NullFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
}

/// The driver's view of one split ring at `base` (used ring moved off the mock's layout).
#[derive(Clone)]
struct Ring {
    mem: GuestMemoryMmap,
    base: u64,
    avail: GuestAddress,
    used: GuestAddress,
    event_idx: bool,
}

impl Ring {
    fn avail_idx(&self) -> u16 {
        self.mem.read_obj(self.avail.unchecked_add(2)).unwrap()
    }

    fn used_idx(&self) -> u16 {
        self.mem.read_obj(self.used.unchecked_add(2)).unwrap()
    }

    fn used_flags(&self) -> u16 {
        self.mem.read_obj(self.used).unwrap()
    }

    /// `avail_event`: the device's "kick me when avail->idx passes this" (EVENT_IDX).
    fn avail_event(&self) -> u16 {
        self.mem
            .read_obj(self.used.unchecked_add(4 + 8 * u64::from(SIZE)))
            .unwrap()
    }

    /// Asks for an interrupt at the next completion (EVENT_IDX's `used_event`).
    fn want_interrupt(&self) {
        let at = self.avail.unchecked_add(4 + 2 * u64::from(SIZE));
        self.mem.write_obj(self.used_idx(), at).unwrap();
    }

    /// Writes request `n` (descriptors `2n % SIZE`, `+1`) without publishing it; its head.
    fn prepare(&self, n: u16, req: &[u8]) -> u16 {
        let head = (n * 2) % SIZE;
        let data = 0x80_0000 + u64::from(head) * 0x2000;
        self.mem.write_slice(req, GuestAddress(data)).unwrap();
        let len = u32::try_from(req.len()).unwrap();
        self.desc(head, Descriptor::new(data, len, F_NEXT, head + 1));
        self.desc(head + 1, Descriptor::new(data + 0x1000, 0x1000, F_WRITE, 0));
        head
    }

    fn desc(&self, i: u16, d: Descriptor) {
        let at = GuestAddress(self.base + 16 * u64::from(i));
        self.mem.write_obj(RawDescriptor::from(d), at).unwrap();
    }

    /// Publishes `head` (advances avail->idx) and returns whether a driver must kick now, as
    /// Linux's `virtqueue_kick_prepare` decides: VRING_USED_F_NO_NOTIFY clear, or with
    /// EVENT_IDX the avail event crossed by this publication.
    fn publish(&self, head: u16) -> bool {
        let old = self.avail_idx();
        self.mem
            .write_obj(
                head,
                self.avail.unchecked_add(4 + 2 * u64::from(old % SIZE)),
            )
            .unwrap();
        let new = old.wrapping_add(1);
        self.mem
            .write_obj(new, self.avail.unchecked_add(2))
            .unwrap();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if self.event_idx {
            // vring_need_event(event, new, old)
            let event = self.avail_event();
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.used_flags() & USED_F_NO_NOTIFY == 0
        }
    }
}

/// What the interrupt of the request queue does: on its first call once armed, publishes a
/// prepared head without kicking and records whether a driver would have had to kick.
#[derive(Default)]
struct Plan {
    head: Option<u16>,
    must_kick: Option<bool>,
}

struct Guest {
    device: VirtioFs<NullFs, Mem>,
    ring: Ring,
    plan: Arc<Mutex<Plan>>,
    kick: Option<EventNotifier>,
    sent: u16,
}

impl Guest {
    /// An active device with one request queue, a poll window of `poll_us`, EVENT_IDX on the
    /// request queue or not; served by kick threads, or inline by the test's `kick` calls.
    fn new(poll_us: u32, event_idx: bool, kick_threads: bool) -> Guest {
        let config = DeviceConfig::builder("poll")
            .queue_size(64)
            .inline(!kick_threads)
            .poll_us(poll_us)
            .build()
            .unwrap();
        let mut device = VirtioFs::new(config, NullFs, NegotiationConfig::default());
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let mut resources = Vec::new();
        let mut kicks = Vec::new();
        let mut notifiers = Vec::new();
        let mut rings = Vec::new();
        for i in 0..2u64 {
            let at = i * 0x1_0000;
            let mock = MockSplitQueue::create(&mem, GuestAddress(at), SIZE);
            let mut queue: Queue = mock.create_queue().unwrap();
            let used = GuestAddress(at + 0x1000);
            queue.set_used_ring_address(Some(u32::try_from(used.0).unwrap()), Some(0));
            queue.set_event_idx(event_idx && i == 1);
            let ring = Ring {
                mem: mem.clone(),
                base: at,
                avail: mock.avail_addr(),
                used,
                event_idx: event_idx && i == 1,
            };
            let interrupt: Arc<dyn Interrupt> = if i == 1 {
                let (ring, plan) = (ring.clone(), Arc::clone(&plan));
                Arc::new(move |_queue: usize| {
                    let mut plan = plan.lock().unwrap();
                    if let Some(head) = plan.head.take() {
                        plan.must_kick = Some(ring.publish(head));
                    }
                    Ok::<(), std::io::Error>(())
                })
            } else {
                Arc::new(|_queue: usize| Ok::<(), std::io::Error>(()))
            };
            resources.push(QueueResources { queue, interrupt });
            let (consumer, notifier) =
                new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            kicks.push(consumer);
            notifiers.push(notifier);
            rings.push(ring);
        }
        device
            .activate(GuestMemoryAtomic::new(mem), resources)
            .unwrap();
        let kick = if kick_threads {
            device.spawn_kick_threads(kicks).unwrap();
            notifiers.pop()
        } else {
            None
        };
        let mut g = Guest {
            device,
            ring: rings.pop().unwrap(),
            plan,
            kick,
            sent: 0,
        };
        let init = request(
            Opcode::Init as u32,
            2,
            0,
            &init_payload(46, InitFlags::empty(), 0x2_0000),
        );
        g.send(&init, true);
        g.wait_used(1);
        g
    }

    /// The driver kicked: the kick thread's eventfd, or `process_queue` on this thread.
    fn kick(&self) {
        match &self.kick {
            Some(kick) => kick.notify().unwrap(),
            None => self.device.process_queue(1).unwrap(),
        }
    }

    /// Writes the next request; publishes it (and kicks if the ring says so) with `publish`.
    fn send(&mut self, req: &[u8], publish: bool) -> u16 {
        let head = self.ring.prepare(self.sent, req);
        self.sent += 1;
        if publish {
            self.ring.want_interrupt();
            if self.ring.publish(head) {
                self.kick();
            }
        }
        head
    }

    fn getattr(&self, unique: u64) -> Vec<u8> {
        request(Opcode::Getattr as u32, unique, 1, &[0u8; 16])
    }

    /// Waits (a hang guard, not a timed assertion) until the used index reaches `idx`.
    fn wait_used(&self, idx: u16) {
        let deadline = Instant::now() + TIMEOUT;
        while self.ring.used_idx().wrapping_sub(idx) >= 0x8000 {
            assert!(Instant::now() < deadline, "no used element {idx}");
            std::thread::yield_now();
        }
    }

    /// Whether the driver must kick for a request published now (the poll window is over).
    fn notifications_on(&self) -> bool {
        if self.ring.event_idx {
            // The avail event is where the next publication will cross it.
            self.ring.avail_event() == self.ring.avail_idx()
        } else {
            self.ring.used_flags() & USED_F_NO_NOTIFY == 0
        }
    }

    /// The driver sends request A with a kick; the device's interrupt for A's completion
    /// publishes request B without a kick. Returns whether the driver would have had to kick
    /// for B.
    fn a_then_unkicked_b(&mut self) -> bool {
        let b = self.getattr(11);
        let b = self.send(&b, false);
        self.plan.lock().unwrap().head = Some(b);
        let a = self.getattr(10);
        self.send(&a, true);
        self.wait_used(2);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(must_kick) = self.plan.lock().unwrap().must_kick {
                return must_kick;
            }
            assert!(Instant::now() < deadline, "no interrupt for A");
            std::thread::yield_now();
        }
    }
}

#[test]
fn an_unkicked_request_during_the_window_is_answered_then_notifications_come_back() {
    for event_idx in [false, true] {
        let mut g = Guest::new(1000, event_idx, false);
        // `process_queue` returns once the window is over: B was served inside it.
        assert!(
            !g.a_then_unkicked_b(),
            "event_idx {event_idx}: the driver was not told to skip the kick while the device polls"
        );
        assert_eq!(g.ring.used_idx(), 3, "event_idx {event_idx}: B unanswered");
        assert!(
            g.notifications_on(),
            "event_idx {event_idx}: notifications are still off after the window"
        );
        // After the window: the driver must kick, and the kicked request is answered.
        let c = g.getattr(12);
        g.send(&c, true);
        assert_eq!(g.ring.used_idx(), 4, "event_idx {event_idx}: C unanswered");
    }
}

#[test]
fn without_a_window_the_unkicked_request_waits_for_a_kick() {
    for event_idx in [false, true] {
        let mut g = Guest::new(0, event_idx, false);
        assert!(
            g.a_then_unkicked_b(),
            "event_idx {event_idx}: without polling the driver must be told to kick"
        );
        // `process_queue` has returned: nothing is serving the ring, and B is still there.
        assert_eq!(
            g.ring.used_idx(),
            2,
            "event_idx {event_idx}: B served unkicked"
        );
        g.kick();
        assert_eq!(
            g.ring.used_idx(),
            3,
            "event_idx {event_idx}: B unanswered after a kick"
        );
    }
}

#[test]
fn kick_threads_poll_too() {
    for event_idx in [false, true] {
        let mut g = Guest::new(1000, event_idx, true);
        assert!(!g.a_then_unkicked_b(), "event_idx {event_idx}");
        g.wait_used(3);
        // The window ends (an event, waited for under the hang guard) with notifications on.
        let deadline = Instant::now() + TIMEOUT;
        while !g.notifications_on() {
            assert!(Instant::now() < deadline, "notifications stay off");
            std::thread::yield_now();
        }
        let c = g.getattr(12);
        g.send(&c, true);
        g.wait_used(4);
    }
}

#[test]
fn a_reset_ends_the_window() {
    // The longest window, and a reset from another thread while the kick thread polls: the
    // reset returns (it never waits for a poller) and the device can be activated again.
    let mut g = Guest::new(1000, false, true);
    assert!(!g.a_then_unkicked_b());
    g.wait_used(3);
    g.device.reset();
    assert!(!g.device.is_active());
}
