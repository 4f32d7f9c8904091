//! The mock guest driver of the device's integration tests: the one to use when a new test
//! puts requests on the in-process device's virtqueues (or on a vhost-user daemon's, over
//! guest memory the test shares).
//!
//! - [`Driver`]: guest memory, the driver's side of every queue ([`Ring`]) with its kick and
//!   call eventfds, and FUSE requests on them ([`Driver::put`], [`Driver::reply`], which checks
//!   the reply's framing). Start here:
//!
//!   ```ignore
//!   let mut driver = Driver::new(0x100_0000);
//!   let (queues, kicks) = driver.queues(0, 2, 64, 0x2000); // hiprio and one request queue
//!   device.activate(driver.memory(), driver.call_eventfds(queues)).unwrap();
//!   device.spawn_kick_threads(kicks).unwrap(); // or `process_queue` on the test's thread
//!   let sent = driver.put(1, Opcode::Getattr, 1, &[0u8; 16]);
//!   driver.kick(1);
//!   driver.wait(sent);
//!   let (error, body) = driver.reply(sent);
//!   ```
//!
//! - [`Ring`]: one split virtqueue at a [`Layout`], chain by chain, for tests that write what
//!   the helpers above do not (indirect tables, impossible indices, an unkicked publication).
//! - [`fuse`]: the request arguments several tests build; [`fs`]: backends that answer
//!   nothing or block; [`dev_fuse`]: the host `/dev/fuse` tests' watchdog; [`vhost_user`]:
//!   vhost's frontend connecting to a daemon.
//!
//! The zero-allocation tests keep their own guest (`tests/zero_alloc/guest.rs`): what they
//! count must not include the driver's side, and this driver allocates (reply buffers, the
//! list of used elements).
//!
//! Each test binary declares `mod common;` and uses part of it, so unused items are allowed
//! here rather than marked in every binary.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod dev_fuse;
pub(crate) mod fs;
pub(crate) mod fuse;
#[cfg(target_os = "linux")]
pub(crate) mod vhost_user;

use std::time::{Duration, Instant};

use fuse_abi::{Opcode, OutHeader};
use fuse_server::test_utils::request;
use virtio_queue::desc::{RawDescriptor, split::Descriptor};
use virtio_queue::{Queue, QueueT};
use virtiofs_device::QueueResources;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};
use zerocopy::FromBytes;

/// `VIRTQ_DESC_F_NEXT`: the chain goes on at `next`.
pub(crate) const F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer.
pub(crate) const F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors.
pub(crate) const F_INDIRECT: u16 = 4;
/// `VIRTQ_USED_F_NO_NOTIFY`: the device asks the driver not to kick.
pub(crate) const USED_F_NO_NOTIFY: u16 = 1;
/// The hang guard of every wait here: long enough for a loaded machine, short enough to fail
/// rather than hang. Nothing is timed by it.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);
/// Queue `i` of an activation at `base` has its rings at `base + i * RING_STRIDE`.
pub(crate) const RING_STRIDE: u64 = 0x1_0000;
/// ... and its buffers from `base + BUFFERS + i * size * slot` ([`Layout::nth`]).
pub(crate) const BUFFERS: u64 = 0x10_0000;

/// The guest memory the device is activated with.
pub(crate) type Mem = GuestMemoryAtomic<GuestMemoryMmap>;

/// Where one split virtqueue and its buffers live in guest memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Entries of each ring.
    pub(crate) size: u16,
    /// The descriptor table.
    pub(crate) desc: u64,
    /// The available ring (flags, idx, ring, `used_event`).
    pub(crate) avail: u64,
    /// The used ring (flags, idx, ring, `avail_event`).
    pub(crate) used: u64,
    /// The buffers of the chain whose head is `h` start at `buffers + h * slot`: the request
    /// first, the reply buffer at `slot / 2`.
    pub(crate) buffers: u64,
    /// Bytes of buffers per head.
    pub(crate) slot: u64,
}

impl Layout {
    /// Queue `index` of an activation at `base`: its descriptor table at
    /// `base + index * RING_STRIDE`, the available ring after it, the used ring on the next
    /// 4 KiB boundary (apart: virtio-queue's `MockSplitQueue` lays it over the available
    /// ring's second half), and `size` slots of `slot` bytes from
    /// `base + BUFFERS + index * size * slot`.
    pub(crate) fn nth(base: u64, index: usize, size: u16, slot: u64) -> Layout {
        let index = index as u64;
        let desc = base + index * RING_STRIDE;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).next_multiple_of(0x1000);
        assert!(
            used + 6 + 8 * u64::from(size) <= desc + RING_STRIDE,
            "a queue of {size} does not fit in RING_STRIDE"
        );
        Layout {
            size,
            desc,
            avail,
            used,
            buffers: base + BUFFERS + index * u64::from(size) * slot,
            slot,
        }
    }

    /// The device's side: a ready `Queue` with these addresses, as a driver sets it up.
    pub(crate) fn virtqueue(&self) -> Queue {
        let split = |a: u64| {
            (
                Some(u32::try_from(a & 0xffff_ffff).unwrap()),
                Some(u32::try_from(a >> 32).unwrap()),
            )
        };
        let mut queue = Queue::new(self.size).unwrap();
        queue.set_size(self.size);
        let (low, high) = split(self.desc);
        queue.set_desc_table_address(low, high);
        let (low, high) = split(self.avail);
        queue.set_avail_ring_address(low, high);
        let (low, high) = split(self.used);
        queue.set_used_ring_address(low, high);
        queue.set_ready(true);
        queue
    }
}

/// The driver's side of one split virtqueue: it writes chains and the available ring, and
/// reads the used ring. Chain `n` (counted from the ring's creation) takes descriptors
/// `2n % size` (its head) and `2n % size + 1`, and the head's slot of buffers.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    mem: GuestMemoryMmap,
    /// Where it lives.
    pub(crate) layout: Layout,
    /// Whether the driver negotiated EVENT_IDX on it (what [`Ring::publish`] reads to decide
    /// whether to kick).
    pub(crate) event_idx: bool,
    /// Chains written so far.
    written: u16,
    /// The reply buffer's length of the chain at each head (0: none).
    reply_len: Vec<u32>,
}

impl Ring {
    /// A ring at `layout`, its descriptor table, available and used rings zeroed (as on a
    /// fresh activation at an address used before).
    pub(crate) fn new(mem: &GuestMemoryMmap, layout: Layout) -> Ring {
        let size = u64::from(layout.size);
        for (at, len) in [
            (layout.desc, 16 * size),
            (layout.avail, 6 + 2 * size),
            (layout.used, 6 + 8 * size),
        ] {
            let zeros = vec![0u8; usize::try_from(len).unwrap()];
            mem.write_slice(&zeros, GuestAddress(at)).unwrap();
        }
        Ring {
            mem: mem.clone(),
            layout,
            event_idx: false,
            written: 0,
            reply_len: vec![0; usize::from(layout.size)],
        }
    }

    /// Writes descriptor `i` as given.
    pub(crate) fn desc(&self, i: u16, d: Descriptor) {
        let at = GuestAddress(self.layout.desc + 16 * u64::from(i));
        self.mem.write_obj(RawDescriptor::from(d), at).unwrap();
    }

    /// Where the request of the chain at `head` is written.
    pub(crate) fn request_addr(&self, head: u16) -> GuestAddress {
        GuestAddress(self.layout.buffers + u64::from(head) * self.layout.slot)
    }

    /// Where the device writes the reply of the chain at `head`.
    pub(crate) fn reply_addr(&self, head: u16) -> GuestAddress {
        self.request_addr(head).unchecked_add(self.layout.slot / 2)
    }

    /// Writes the next chain without publishing it: `req` in one readable descriptor, then a
    /// writable reply buffer of `reply_len` bytes (none if 0), filled with 0xAA so that a reply
    /// the device did not write never reads as an earlier one. Returns its head.
    pub(crate) fn write(&mut self, req: &[u8], reply_len: u32) -> u16 {
        assert!(
            req.len() as u64 <= self.layout.slot / 2
                && u64::from(reply_len) <= self.layout.slot / 2,
            "a request or reply larger than half a slot"
        );
        let head = self.written.wrapping_mul(2) % self.layout.size;
        self.written = self.written.wrapping_add(1);
        let (req_at, reply_at) = (self.request_addr(head), self.reply_addr(head));
        self.mem.write_slice(req, req_at).unwrap();
        let len = u32::try_from(req.len()).unwrap();
        if reply_len > 0 {
            self.mem
                .write_slice(&vec![0xAA; reply_len as usize], reply_at)
                .unwrap();
            self.desc(head, Descriptor::new(req_at.0, len, F_NEXT, head + 1));
            self.desc(head + 1, Descriptor::new(reply_at.0, reply_len, F_WRITE, 0));
        } else {
            self.desc(head, Descriptor::new(req_at.0, len, 0, 0));
        }
        self.reply_len[usize::from(head)] = reply_len;
        head
    }

    /// Publishes the chain at `head` (its descriptors already written): the next entry of the
    /// available ring, then its index. Returns whether a driver must kick now, as Linux's
    /// `virtqueue_kick_prepare` decides: VRING_USED_F_NO_NOTIFY clear, or with EVENT_IDX the
    /// device's avail event crossed by this publication.
    pub(crate) fn publish(&self, head: u16) -> bool {
        let old = self.avail_idx();
        let entry = self.layout.avail + 4 + 2 * u64::from(old % self.layout.size);
        self.mem.write_obj(head, GuestAddress(entry)).unwrap();
        let new = old.wrapping_add(1);
        self.set_avail_idx(new);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if self.event_idx {
            // vring_need_event(event, new, old)
            let event = self.avail_event();
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.used_flags() & USED_F_NO_NOTIFY == 0
        }
    }

    /// Writes and publishes the next chain ([`Ring::write`], [`Ring::publish`]) without
    /// kicking; its head.
    pub(crate) fn put(&mut self, req: &[u8], reply_len: u32) -> u16 {
        let head = self.write(req, reply_len);
        self.publish(head);
        head
    }

    /// `avail->idx`.
    pub(crate) fn avail_idx(&self) -> u16 {
        self.mem
            .read_obj(GuestAddress(self.layout.avail + 2))
            .unwrap()
    }

    /// Stores `avail->idx`, whatever it is.
    pub(crate) fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx, GuestAddress(self.layout.avail + 2))
            .unwrap();
    }

    /// Asks for an interrupt at the next completion (EVENT_IDX's `used_event`).
    pub(crate) fn want_interrupt(&self) {
        let at = GuestAddress(self.layout.avail + 4 + 2 * u64::from(self.layout.size));
        self.mem.write_obj(self.used_idx(), at).unwrap();
    }

    /// `used->flags`.
    pub(crate) fn used_flags(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.layout.used)).unwrap()
    }

    /// `used->idx`.
    pub(crate) fn used_idx(&self) -> u16 {
        self.mem
            .read_obj(GuestAddress(self.layout.used + 2))
            .unwrap()
    }

    /// `avail_event`: the device's "kick me when avail->idx passes this" (EVENT_IDX).
    pub(crate) fn avail_event(&self) -> u16 {
        let at = self.layout.used + 4 + 8 * u64::from(self.layout.size);
        self.mem.read_obj(GuestAddress(at)).unwrap()
    }

    /// Used element `n` (counted from the ring's start): (id, length).
    pub(crate) fn used_elem(&self, n: u16) -> (u32, u32) {
        let at = GuestAddress(self.layout.used + 4 + 8 * u64::from(n % self.layout.size));
        let id = self.mem.read_obj(at).unwrap();
        let len = self.mem.read_obj(at.unchecked_add(4)).unwrap();
        (id, len)
    }

    /// The used elements so far, in order, as (head, used length).
    pub(crate) fn used(&self) -> Vec<(u16, u32)> {
        (0..self.used_idx())
            .map(|n| {
                let (id, len) = self.used_elem(n);
                (u16::try_from(id).unwrap(), len)
            })
            .collect()
    }

    /// How many times the chain at `head` is on the used ring (a request is answered once).
    pub(crate) fn times_used(&self, head: u16) -> usize {
        self.used().iter().filter(|&&(h, _)| h == head).count()
    }

    /// Where the chain at `head` first is on the used ring, if it is.
    pub(crate) fn position(&self, head: u16) -> Option<usize> {
        self.used().iter().position(|&(h, _)| h == head)
    }

    /// Waits, under [`TIMEOUT`], until `done` holds; `what` names it in the failure.
    pub(crate) fn wait_for(&self, what: &str, done: impl Fn(&Ring) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done(self) {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Waits until `used->idx` is exactly `idx`.
    pub(crate) fn wait_used(&self, idx: u16) {
        self.wait_for(&format!("no used element {idx}"), |r| r.used_idx() == idx);
    }

    /// The reply the device wrote for the chain at `head`, `len` bytes as its used element
    /// says, at most its reply buffer.
    pub(crate) fn read_reply(&self, head: u16, len: u32) -> Vec<u8> {
        let len = len.min(self.reply_len[usize::from(head)]);
        let mut bytes = vec![0u8; len as usize];
        self.mem
            .read_slice(&mut bytes, self.reply_addr(head))
            .unwrap();
        bytes
    }
}

/// A FUSE request the driver put on a queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    /// The queue's index (0 is hiprio).
    pub(crate) queue: usize,
    /// Its chain's head.
    pub(crate) head: u16,
    /// Its unique.
    pub(crate) unique: u64,
    /// Its opcode (named in failures).
    pub(crate) opcode: Opcode,
}

/// Checks a reply's framing (the out header's length is the used length, the unique is the
/// request's) and splits it: (error, body).
pub(crate) fn check_reply(opcode: Opcode, unique: u64, used: u32, reply: &[u8]) -> (i32, Vec<u8>) {
    let (oh, body) = OutHeader::read_from_prefix(reply).unwrap();
    assert_eq!(
        oh.len.get(),
        used,
        "{opcode:?}: used length == out_header.len"
    );
    assert_eq!(oh.unique.get(), unique, "{opcode:?}: unique echoed");
    (oh.error.get(), body.to_vec())
}

/// A mock guest driver: guest memory from address 0, the driver's side of the device's
/// queues (0 is hiprio), their kick eventfds (the driver's ends) and, when the device
/// interrupts through eventfds, their call eventfds; and the uniques of its FUSE requests.
#[derive(Debug)]
pub(crate) struct Driver {
    /// The guest's memory.
    pub(crate) mem: GuestMemoryMmap,
    /// Queue `i`'s ring.
    pub(crate) rings: Vec<Ring>,
    /// Queue `i`'s kick.
    pub(crate) kicks: Vec<EventNotifier>,
    /// Queue `i`'s interrupts, after [`Driver::call_eventfds`].
    pub(crate) calls: Vec<EventConsumer>,
    unique: u64,
}

impl Driver {
    /// `size` bytes of guest memory from address 0 and no queues yet.
    pub(crate) fn new(size: usize) -> Driver {
        Driver {
            mem: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap(),
            rings: Vec::new(),
            kicks: Vec::new(),
            calls: Vec::new(),
            unique: 0,
        }
    }

    /// The memory to activate the device with.
    pub(crate) fn memory(&self) -> Mem {
        GuestMemoryAtomic::new(self.mem.clone())
    }

    /// Lays out `count` fresh queues of `size` at `base` ([`Layout::nth`], `slot` bytes of
    /// buffers per head), replacing the ones it had (a driver after a device reset), each with
    /// a kick eventfd. Returns the device's side: the queues and the kicks' consumers (for
    /// `spawn_kick_threads`).
    pub(crate) fn queues(
        &mut self,
        base: u64,
        count: usize,
        size: u16,
        slot: u64,
    ) -> (Vec<Queue>, Vec<EventConsumer>) {
        self.rings.clear();
        self.kicks.clear();
        self.calls.clear();
        let mut queues = Vec::new();
        let mut consumers = Vec::new();
        for i in 0..count {
            let layout = Layout::nth(base, i, size, slot);
            queues.push(layout.virtqueue());
            self.rings.push(Ring::new(&self.mem, layout));
            let (consumer, kick) = new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
            consumers.push(consumer);
            self.kicks.push(kick);
        }
        (queues, consumers)
    }

    /// The queues with an eventfd each for their interrupts, as a VMM wires them; the driver
    /// keeps the reading ends ([`Driver::calls`]).
    pub(crate) fn call_eventfds(&mut self, queues: Vec<Queue>) -> Vec<QueueResources> {
        queues
            .into_iter()
            .map(|queue| {
                let (call, notifier) =
                    new_event_consumer_and_notifier(EventFlag::NONBLOCK).unwrap();
                self.calls.push(call);
                QueueResources::new(queue, notifier)
            })
            .collect()
    }

    /// The next unique (even: odd ones are the kernel's interrupts).
    pub(crate) fn next_unique(&mut self) -> u64 {
        self.unique += 2;
        self.unique
    }

    /// Puts a FUSE request on queue `q` with a reply buffer of half a slot, without kicking.
    pub(crate) fn put(&mut self, q: usize, opcode: Opcode, nodeid: u64, args: &[u8]) -> Sent {
        let unique = self.next_unique();
        let req = request(opcode as u32, unique, nodeid, args);
        let ring = &mut self.rings[q];
        let reply_len = u32::try_from(ring.layout.slot / 2).unwrap();
        let head = ring.put(&req, reply_len);
        Sent {
            queue: q,
            head,
            unique,
            opcode,
        }
    }

    /// Kicks queue `q` through its eventfd.
    pub(crate) fn kick(&self, q: usize) {
        self.kicks[q].notify().unwrap();
    }

    /// Whether `s` is on its used ring.
    pub(crate) fn is_done(&self, s: Sent) -> bool {
        self.times_done(s) > 0
    }

    /// How many times `s` is on its used ring (a request is answered once).
    pub(crate) fn times_done(&self, s: Sent) -> usize {
        self.rings[s.queue].times_used(s.head)
    }

    /// Where `s` is on its used ring.
    pub(crate) fn position(&self, s: Sent) -> usize {
        self.rings[s.queue].position(s.head).unwrap()
    }

    /// Waits for `s`'s used element.
    pub(crate) fn wait(&self, s: Sent) {
        self.rings[s.queue].wait_for(&format!("no used element for {s:?}"), |r| {
            r.times_used(s.head) > 0
        });
    }

    /// The reply to `s`, which is on its used ring, framing checked: (error, body).
    pub(crate) fn reply(&self, s: Sent) -> (i32, Vec<u8>) {
        let ring = &self.rings[s.queue];
        let (_, len) = *ring
            .used()
            .iter()
            .find(|&&(h, _)| h == s.head)
            .unwrap_or_else(|| panic!("no used element for {s:?}"));
        check_reply(s.opcode, s.unique, len, &ring.read_reply(s.head, len))
    }

    /// Puts `req` on queue `q` with `reply_len` bytes of reply buffer (none if 0), kicks,
    /// waits for the next used element, which must name its head, and takes the interrupt
    /// (when there are call eventfds): (used length, reply bytes).
    pub(crate) fn submit(&mut self, q: usize, req: &[u8], reply_len: u32) -> (u32, Vec<u8>) {
        let ring = &mut self.rings[q];
        let before = ring.used_idx();
        let head = ring.put(req, reply_len);
        self.kicks[q].notify().unwrap();
        let ring = &self.rings[q];
        ring.wait_for(&format!("queue {q}: no used element"), |r| {
            r.used_idx() != before
        });
        if let Some(call) = self.calls.get(q) {
            let _ = call.consume();
        }
        let (id, len) = ring.used_elem(before);
        assert_eq!(id, u32::from(head), "used element names the chain's head");
        (len, ring.read_reply(head, len))
    }
}
