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

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::fs::NullFs;
use common::fuse::init_offering_none;
use common::{Driver, Mem, Ring, TIMEOUT, USED_F_NO_NOTIFY};
use fuse_abi::Opcode;
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::request;
use virtio_queue::QueueT;
use virtiofs_device::{DeviceConfig, Interrupt, QueueResources, VirtioFs};
use vmm_sys_util::event::EventNotifier;

const SIZE: u16 = 16;
/// Buffers per head: the request, then a reply buffer of 4 KiB.
const SLOT: u64 = 0x2000;

/// What the interrupt of the request queue does: on its first call once armed, publishes a
/// prepared head without kicking and records whether a driver would have had to kick.
#[derive(Default)]
struct Plan {
    head: Option<u16>,
    must_kick: Option<bool>,
}

struct Guest {
    device: VirtioFs<NullFs, Mem>,
    /// The request queue's ring; the interrupt publishes through a clone of it.
    ring: Ring,
    plan: Arc<Mutex<Plan>>,
    kick: Option<EventNotifier>,
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
        let mut driver = Driver::new(0x100_0000);
        let plan = Arc::new(Mutex::new(Plan::default()));
        let (queues, kicks) = driver.queues(0, 2, SIZE, SLOT);
        let mut ring = driver.rings[1].clone();
        ring.event_idx = event_idx;
        let mut resources = Vec::new();
        for (i, mut queue) in queues.into_iter().enumerate() {
            queue.set_event_idx(event_idx && i == 1);
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
        }
        device.activate(driver.memory(), resources).unwrap();
        let kick = if kick_threads {
            device.spawn_kick_threads(kicks).unwrap();
            driver.kicks.pop()
        } else {
            None
        };
        let mut g = Guest {
            device,
            ring,
            plan,
            kick,
        };
        let init = request(Opcode::Init as u32, 2, 0, &init_offering_none());
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
        let head = self.ring.write(req, 0x1000);
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
        self.ring.wait_for(&format!("no used element {idx}"), |r| {
            r.used_idx().wrapping_sub(idx) < 0x8000
        });
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
