//! Split virtqueues laid out by this frontend in guest RAM, as a guest driver does.
//!
//! Each queue owns a contiguous area of guest RAM ([`QueueLayout`]): the descriptor table, the
//! available ring, the used ring, one buffer ("slot") per descriptor, and a scratch area for
//! whatever a hostile test wants to place (indirect tables, fake requests). The ordinary path,
//! [`Queue::send`] then [`Queue::wait`], builds a well-formed chain (readable request, writable
//! reply) from free descriptors and matches the used-ring entry by head index, so replies may
//! come in any order. The raw path ([`Queue::write_descriptor`], [`Queue::push_head`],
//! [`Queue::set_avail_idx`], ...) writes whatever the test says, impossible values included;
//! descriptors a raw test uses come from [`Queue::reserve_descriptors`] so the ordinary path
//! never hands them out.
//!
//! # Notifications, as Linux's `virtio_ring` handles them
//!
//! A queue can model the guest driver's side of notification suppression
//! ([`Queue::set_event_idx`] once VIRTIO_RING_F_EVENT_IDX is negotiated):
//!
//! - [`Queue::kick_if_needed`] decides like `virtqueue_kick_prepare_split`: with EVENT_IDX it
//!   kicks only when the device's `avail_event` (`used->ring[size]`) lies among the entries
//!   published since the last decision (`vring_need_event`), otherwise unless the device set
//!   VRING_USED_F_NO_NOTIFY; a full fence after publishing `avail->idx` in both cases.
//! - [`Queue::disable_interrupts`] and [`Queue::enable_interrupts`] are
//!   `virtqueue_disable_cb` and `virtqueue_enable_cb`: while the driver drains the used ring it
//!   asks for no interrupt (with EVENT_IDX by leaving `used_event`, `avail->ring[size]`,
//!   behind, or writing 0 when no interrupt came since the last re-arm; without it with
//!   VRING_AVAIL_F_NO_INTERRUPT), and re-arming writes `used_event` = the last used index
//!   seen, then re-reads `used->idx` after a full fence, so an entry the device published in
//!   between is drained instead of slept on (the lost-wakeup rule).
//!
//! Without [`Queue::set_event_idx`] nothing changes for a caller that never calls those two
//! methods: the hostile tier writes the rings as it pleases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::Error;
use crate::fuse::{Reply, Request};
use crate::memory::GuestRam;

/// `VIRTQ_DESC_F_NEXT`: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer.
pub const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors.
pub const DESC_F_INDIRECT: u16 = 4;
/// `VIRTQ_USED_F_NO_NOTIFY`: the device asks the driver not to kick.
pub const USED_F_NO_NOTIFY: u16 = 1;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver asks the device not to interrupt (without
/// EVENT_IDX).
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// The virtio spec's `vring_need_event`: whether an index moving from `old` to `new` passed
/// `event` (the other side asked to be notified once the entry at `event` is published).
/// Wrapping 16-bit arithmetic, as the ring indices are.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

const PAGE: u64 = 4096;

fn align_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// One split-ring descriptor (`struct virtq_desc`), any values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest physical address of the buffer.
    pub addr: u64,
    /// Its length.
    pub len: u32,
    /// `DESC_F_*`.
    pub flags: u16,
    /// The next descriptor's index when `flags` has [`DESC_F_NEXT`].
    pub next: u16,
}

impl Descriptor {
    /// A device-readable buffer.
    pub fn readable(addr: u64, len: u32) -> Descriptor {
        Descriptor {
            addr,
            len,
            flags: 0,
            next: 0,
        }
    }

    /// A device-writable buffer.
    pub fn writable(addr: u64, len: u32) -> Descriptor {
        Descriptor {
            addr,
            len,
            flags: DESC_F_WRITE,
            next: 0,
        }
    }

    /// The same descriptor, continued at `next`.
    pub fn then(mut self, next: u16) -> Descriptor {
        self.flags |= DESC_F_NEXT;
        self.next = next;
        self
    }

    /// The 16 bytes of `struct virtq_desc` (little-endian).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..].copy_from_slice(&self.next.to_le_bytes());
        b
    }
}

/// Where one queue's parts lie in guest RAM (guest physical addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    /// Number of descriptors (a power of two).
    pub size: u16,
    /// Descriptor table (16 × size bytes).
    pub desc: u64,
    /// Available ring (6 + 2 × size bytes).
    pub avail: u64,
    /// Used ring (6 + 8 × size bytes).
    pub used: u64,
    /// First slot; slot `i` belongs to descriptor `i`.
    pub slots: u64,
    /// Bytes per slot.
    pub slot_size: u64,
    /// The scratch area, for raw tests.
    pub scratch: u64,
    /// Its length.
    pub scratch_len: u64,
    /// The first address after this queue's area.
    pub end: u64,
}

impl QueueLayout {
    /// The layout of a queue of `size` descriptors starting at `base` (page-aligned parts).
    pub fn new(base: u64, size: u16, slot_size: u64, scratch_len: u64) -> QueueLayout {
        let n = u64::from(size);
        let desc = base;
        let avail = desc + 16 * n;
        let used = align_up(avail + 6 + 2 * n, PAGE);
        let slots = align_up(used + 6 + 8 * n, PAGE);
        let scratch = slots + n * slot_size;
        let end = align_up(scratch + scratch_len, PAGE);
        QueueLayout {
            size,
            desc,
            avail,
            used,
            slots,
            slot_size,
            scratch,
            scratch_len,
            end,
        }
    }

    /// The slot of descriptor `index`.
    pub fn slot(&self, index: u16) -> u64 {
        self.slots + u64::from(index) * self.slot_size
    }
}

/// A request on the ring whose reply has not been collected yet. Plain data (no allocation):
/// the chain's links are kept by the queue, per descriptor, as Linux keeps `desc_extra`.
#[derive(Debug)]
#[must_use = "a pending request holds descriptors until it is waited for"]
pub struct Pending {
    head: u16,
    /// Descriptors in the chain: `readable` device-readable ones, then the writable ones.
    count: u16,
    readable: u16,
    /// Bytes of the writable part.
    reply_capacity: usize,
    unique: u64,
    sent: Instant,
}

impl Pending {
    /// The chain's head descriptor index (the used-ring id of its reply).
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The request's `unique`.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// When it was made available to the device: read from the clock by [`Queue::push`] and
    /// [`Queue::push_bytes`], the caller's reading for [`Queue::push_encoded`].
    pub fn sent(&self) -> Instant {
        self.sent
    }
}

/// One virtqueue of the frontend: its memory, its kick and call eventfds, and the driver-side
/// state (free descriptors, the next available index, used entries seen).
#[derive(Debug)]
pub struct Queue {
    index: usize,
    ram: Arc<GuestRam>,
    layout: QueueLayout,
    kick: EventFd,
    call: EventFd,
    epoll: Epoll,
    /// Free descriptors, a stack (the next chain is taken from its end).
    free: Vec<u16>,
    /// Per descriptor, the next one in the chain it was last pushed in (a driver-side copy:
    /// freeing a chain never trusts what the device can see).
    chain_next: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
    /// Used lengths by head, for heads below the queue size, and the heads in the order they
    /// were collected (entries already taken by [`take_used`](Self::take_used) are skipped).
    completed: Vec<Option<u32>>,
    completed_heads: Vec<u16>,
    /// Used entries whose id is not a descriptor of this queue (a broken device).
    stray: Vec<(u16, u32)>,
    next_unique: u64,
    scratch_buf: Vec<u8>,
    /// VIRTIO_RING_F_EVENT_IDX was negotiated: see the module documentation.
    event_idx: bool,
    /// Interrupts are suppressed ([`disable_interrupts`](Self::disable_interrupts)); Linux's
    /// `VRING_AVAIL_F_NO_INTERRUPT` bit of `avail_flags_shadow`.
    interrupts_off: bool,
    /// `avail->flags` as this driver last wrote it.
    avail_flags: u16,
    /// An interrupt came since the last re-arm (Linux's `event_triggered`): with EVENT_IDX the
    /// device will not interrupt again before `used_event` is moved, so disabling needs no
    /// write.
    event_triggered: bool,
    /// `avail->idx` when [`kick_if_needed`](Self::kick_if_needed) last decided.
    kick_checked: u16,
}

impl Queue {
    /// A queue over `layout` in `ram`, its rings zeroed, with fresh eventfds.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when an eventfd or epoll cannot be created, [`Error::Memory`] when the
    /// layout is outside `ram`.
    pub fn new(index: usize, ram: Arc<GuestRam>, layout: QueueLayout) -> Result<Queue, Error> {
        let zero = vec![0u8; usize::try_from(layout.slots - layout.desc).unwrap_or(0)];
        ram.write(layout.desc, &zero)?;
        let kick = EventFd::new(EFD_NONBLOCK)?;
        let call = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            std::os::fd::AsRawFd::as_raw_fd(&call),
            EpollEvent::new(EventSet::IN, 0),
        )?;
        Ok(Queue {
            index,
            ram,
            free: (0..layout.size).rev().collect(),
            chain_next: vec![0; usize::from(layout.size)],
            completed: vec![None; usize::from(layout.size)],
            completed_heads: Vec::with_capacity(2 * usize::from(layout.size)),
            stray: Vec::new(),
            layout,
            kick,
            call,
            epoll,
            avail_idx: 0,
            last_used: 0,
            next_unique: (u64::try_from(index).unwrap_or(0) << 48) | 1,
            scratch_buf: Vec::new(),
            event_idx: false,
            interrupts_off: false,
            avail_flags: 0,
            event_triggered: false,
            kick_checked: 0,
        })
    }

    /// The queue's index (0 is virtio-fs's hiprio queue, 1.. the request queues).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Where its parts lie.
    pub fn layout(&self) -> &QueueLayout {
        &self.layout
    }

    /// The guest RAM it lives in.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    /// The kick eventfd (sent with SET_VRING_KICK).
    pub fn kick_fd(&self) -> &EventFd {
        &self.kick
    }

    /// The call eventfd (sent with SET_VRING_CALL).
    pub fn call_fd(&self) -> &EventFd {
        &self.call
    }

    /// Replaces the kick eventfd; the caller sends the new one with SET_VRING_KICK.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the eventfd cannot be created.
    pub fn new_kick(&mut self) -> Result<&EventFd, Error> {
        self.kick = EventFd::new(EFD_NONBLOCK)?;
        Ok(&self.kick)
    }

    /// Replaces the call eventfd (and what [`wait`](Self::wait) sleeps on); the caller sends
    /// the new one with SET_VRING_CALL.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the eventfd cannot be created or watched.
    pub fn new_call(&mut self) -> Result<&EventFd, Error> {
        let call = EventFd::new(EFD_NONBLOCK)?;
        let _ = self.epoll.ctl(
            ControlOperation::Delete,
            std::os::fd::AsRawFd::as_raw_fd(&self.call),
            EpollEvent::default(),
        );
        self.epoll.ctl(
            ControlOperation::Add,
            std::os::fd::AsRawFd::as_raw_fd(&call),
            EpollEvent::new(EventSet::IN, 0),
        )?;
        self.call = call;
        Ok(&self.call)
    }

    /// Free descriptors left for [`send`](Self::send).
    pub fn free_descriptors(&self) -> usize {
        self.free.len()
    }

    /// Takes `n` descriptors out of the free list for raw use; they are never handed out by
    /// [`send`](Self::send) again (their slots are the caller's too).
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] when fewer than `n` are free.
    pub fn reserve_descriptors(&mut self, n: usize) -> Result<Vec<u16>, Error> {
        if self.free.len() < n {
            return Err(Error::QueueFull(self.index));
        }
        let at = self.free.len() - n;
        Ok(self.free.split_off(at))
    }

    /// Sends `request` with room for a reply of `reply_capacity` bytes, and kicks.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push), and [`Error::Io`] when the kick fails.
    pub fn send(&mut self, request: &Request, reply_capacity: usize) -> Result<Pending, Error> {
        let pending = self.push(request, reply_capacity)?;
        self.kick()?;
        Ok(pending)
    }

    /// Makes `request` available without kicking (to batch several under one kick): the
    /// request is written into the slots of as many readable descriptors as it needs, then
    /// writable descriptors for `reply_capacity` bytes (none for 0), chained, and the head is
    /// published in the available ring.
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] when not enough descriptors are free, [`Error::Memory`] on a guest
    /// memory access outside the RAM.
    pub fn push(&mut self, request: &Request, reply_capacity: usize) -> Result<Pending, Error> {
        let unique = self.take_unique();
        let mut bytes = std::mem::take(&mut self.scratch_buf);
        request.encode_into(unique, &mut bytes);
        let result = self.push_chain(&bytes, reply_capacity, unique, Instant::now());
        self.scratch_buf = bytes;
        result
    }

    /// [`push`](Self::push) of raw request bytes (a header that lies, garbage, nothing).
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn push_bytes(
        &mut self,
        bytes: &[u8],
        reply_capacity: usize,
        unique: u64,
    ) -> Result<Pending, Error> {
        self.push_chain(bytes, reply_capacity, unique, Instant::now())
    }

    /// [`push`](Self::push) of a request the caller encoded once and keeps (a load generator
    /// re-sending the same request): this queue's next `unique` is written into the bytes'
    /// `fuse_in_header.unique` (bytes 8..16; bytes shorter than a header are sent as they
    /// are), and `sent` is the caller's clock reading, so a caller that stamps a whole batch
    /// at once reads the clock once. Neither allocates.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn push_encoded(
        &mut self,
        bytes: &mut [u8],
        reply_capacity: usize,
        sent: Instant,
    ) -> Result<Pending, Error> {
        let unique = self.take_unique();
        if let Some(field) = bytes.get_mut(8..16) {
            field.copy_from_slice(&unique.to_le_bytes());
        }
        self.push_chain(bytes, reply_capacity, unique, sent)
    }

    fn take_unique(&mut self) -> u64 {
        let unique = self.next_unique;
        self.next_unique = self.next_unique.wrapping_add(1);
        unique
    }

    /// Builds the chain for `bytes` and `reply_capacity` from the top of the free stack and
    /// publishes its head. The free stack is only shortened once every write succeeded.
    fn push_chain(
        &mut self,
        bytes: &[u8],
        reply_capacity: usize,
        unique: u64,
        sent: Instant,
    ) -> Result<Pending, Error> {
        let slot = usize::try_from(self.layout.slot_size).unwrap_or(usize::MAX);
        let n_in = bytes.len().div_ceil(slot).max(1);
        let n_out = reply_capacity.div_ceil(slot);
        let n = n_in + n_out;
        if self.free.len() < n {
            return Err(Error::QueueFull(self.index));
        }
        let (Ok(count), Ok(readable)) = (u16::try_from(n), u16::try_from(n_in)) else {
            return Err(Error::QueueFull(self.index));
        };
        let at = self.free.len() - n;
        let mut left = reply_capacity;
        for i in 0..n {
            let d = self.free[at + i];
            let addr = self.layout.slot(d);
            let mut desc = if i < n_in {
                let chunk = bytes.get(i * slot..).unwrap_or_default();
                let chunk = chunk.get(..slot.min(chunk.len())).unwrap_or_default();
                self.ram.write(addr, chunk)?;
                Descriptor::readable(addr, u32::try_from(chunk.len()).unwrap_or(u32::MAX))
            } else {
                let len = left.min(slot);
                left -= len;
                Descriptor::writable(addr, u32::try_from(len).unwrap_or(u32::MAX))
            };
            if i + 1 < n {
                let next = self.free[at + i + 1];
                desc = desc.then(next);
                self.chain_next[usize::from(d)] = next;
            }
            self.write_descriptor(d, desc)?;
        }
        let head = self.free[at];
        self.push_head(head)?;
        self.free.truncate(at);
        Ok(Pending {
            head,
            count,
            readable,
            reply_capacity,
            unique,
            sent,
        })
    }

    /// Signals the kick eventfd.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the write fails.
    pub fn kick(&self) -> Result<(), Error> {
        self.kick.write(1)?;
        Ok(())
    }

    /// Kicks if the device wants to be told about the entries published since the last call,
    /// as Linux's `virtqueue_kick_prepare_split` decides: a full fence between the `avail->idx`
    /// just stored and the read of what the device asked (so a device that re-enables
    /// notifications and then looks at the ring cannot miss the request), then with EVENT_IDX
    /// [`need_event`] of the device's `avail_event` over those entries, without it unless the
    /// device set VRING_USED_F_NO_NOTIFY (which kicks even when nothing was published, as
    /// this frontend always did). Returns whether it kicked.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the used ring cannot be read, [`Error::Io`] when the write fails.
    pub fn kick_if_needed(&mut self) -> Result<bool, Error> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let (old, new) = (self.kick_checked, self.avail_idx);
        self.kick_checked = new;
        let needed = if self.event_idx {
            need_event(self.avail_event()?, new, old)
        } else {
            self.used_flags()? & USED_F_NO_NOTIFY == 0
        };
        if needed {
            self.kick()?;
        }
        Ok(needed)
    }

    /// Turns this queue's EVENT_IDX handling on or off: on only when the feature was
    /// negotiated (the device then reads `used_event` and writes `avail_event`).
    pub fn set_event_idx(&mut self, on: bool) {
        self.event_idx = on;
    }

    /// Whether EVENT_IDX handling is on.
    pub fn event_idx(&self) -> bool {
        self.event_idx
    }

    /// Asks the device not to interrupt while the driver drains the used ring (Linux's
    /// `virtqueue_disable_cb_split`). With EVENT_IDX: nothing to write when an interrupt came
    /// since the last re-arm (the device does not interrupt again until `used_event` moves),
    /// otherwise `used_event` = 0, which the device passes only when `used->idx` wraps; without
    /// EVENT_IDX, VRING_AVAIL_F_NO_INTERRUPT. Best effort, as in the spec: an interrupt may
    /// still come.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the avail ring cannot be written.
    pub fn disable_interrupts(&mut self) -> Result<(), Error> {
        if self.interrupts_off {
            return Ok(());
        }
        self.interrupts_off = true;
        if self.event_idx {
            if !self.event_triggered {
                self.set_used_event(0)?;
            }
        } else {
            self.set_avail_flags(self.avail_flags | AVAIL_F_NO_INTERRUPT)?;
        }
        Ok(())
    }

    /// Re-arms interrupts after the driver collected everything it saw (Linux's
    /// `virtqueue_enable_cb`): clears VRING_AVAIL_F_NO_INTERRUPT (without EVENT_IDX) or writes
    /// `used_event` = the last used index collected (with it), then, after a full fence, reads
    /// `used->idx` again. Returns `true` when nothing new was published (sleeping on the call
    /// eventfd is safe: the device will interrupt for the next entry), `false` when an entry
    /// came meanwhile (the driver collects it instead of sleeping; interrupts stay armed).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when a ring cannot be accessed.
    pub fn enable_interrupts(&mut self) -> Result<bool, Error> {
        self.event_triggered = false;
        if self.interrupts_off {
            self.interrupts_off = false;
            if !self.event_idx {
                self.set_avail_flags(self.avail_flags & !AVAIL_F_NO_INTERRUPT)?;
            }
        }
        if self.event_idx {
            self.set_used_event(self.last_used)?;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        Ok(!self.used_pending()?)
    }

    /// Whether the device published used entries this driver has not collected (Linux's
    /// `virtqueue_poll`, without the fence: for a polling loop).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the used ring cannot be read.
    pub fn used_pending(&self) -> Result<bool, Error> {
        Ok(self.used_idx()? != self.last_used)
    }

    /// Waits up to `timeout` for `pending`'s reply and returns it; its descriptors are free
    /// again. On [`Error::Timeout`] the descriptors stay with the device (never reused).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or [`Error::Memory`] on a guest memory access outside the RAM.
    pub fn wait(&mut self, pending: Pending, timeout: Duration) -> Result<Reply, Error> {
        let used_len = self.wait_used(pending.head, timeout)?;
        self.finish(pending, used_len)
    }

    /// The reply of `pending`, whose used entry (`used_len`) was taken with
    /// [`drain_used`](Self::drain_used) or [`take_used`](Self::take_used); its descriptors are
    /// free again.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] on a guest memory access outside the RAM.
    pub fn finish(&mut self, pending: Pending, used_len: u32) -> Result<Reply, Error> {
        let mut bytes = Vec::new();
        self.finish_into(pending, used_len, usize::MAX, &mut bytes)?;
        Ok(Reply { used_len, bytes })
    }

    /// [`finish`](Self::finish) into the caller's buffer, reading at most `limit` bytes of
    /// the reply (16 for only the `fuse_out_header`): `out` is cleared, then holds what the
    /// device wrote, up to `used_len`, the writable part's size and `limit`. The descriptors
    /// are free again even when a read fails. Allocates only when `out` must grow.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] on a guest memory access outside the RAM.
    pub fn finish_into(
        &mut self,
        pending: Pending,
        used_len: u32,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        out.clear();
        let slot = usize::try_from(self.layout.slot_size).unwrap_or(usize::MAX);
        let mut left = usize::try_from(used_len).unwrap_or(usize::MAX).min(limit);
        let mut capacity = pending.reply_capacity;
        let mut result = Ok(());
        let count = usize::from(pending.count);
        let base = self.free.len();
        self.free.resize(base + count, 0);
        let mut d = pending.head;
        for k in 0..count {
            // Freed in reverse chain order, the head last (on top), as a driver returns them.
            self.free[base + count - 1 - k] = d;
            if k >= usize::from(pending.readable) && capacity > 0 {
                let len = capacity.min(slot);
                capacity -= len;
                let take = left.min(len);
                if take > 0 && result.is_ok() {
                    let start = out.len();
                    out.resize(start + take, 0);
                    result = self.ram.read(self.layout.slot(d), &mut out[start..]);
                    left -= take;
                }
            }
            d = self.chain_next[usize::from(d)];
        }
        result
    }

    /// [`send`](Self::send) then [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// As both.
    pub fn call(
        &mut self,
        request: &Request,
        reply_capacity: usize,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let pending = self.send(request, reply_capacity)?;
        self.wait(pending, timeout)
    }

    /// Waits up to `timeout` for a used-ring entry with id `head` and returns its length.
    /// Sleeps on the call eventfd, but also looks at the used ring every few milliseconds, so
    /// a device that does not interrupt (or is told not to) is still seen.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or [`Error::Memory`] when the used ring cannot be read.
    pub fn wait_used(&mut self, head: u16, timeout: Duration) -> Result<u32, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            self.collect_used()?;
            if let Some(len) = self.take_used(head) {
                return Ok(len);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(timeout));
            }
            self.wait_call((deadline - now).min(Duration::from_millis(20)))?;
        }
    }

    /// Sleeps until the device signals the call eventfd or `timeout` (at least 1 ms) passes;
    /// returns whether it signalled (an interrupt: with EVENT_IDX the device will not signal
    /// again before `used_event` is moved, which [`disable_interrupts`](Self::disable_interrupts)
    /// relies on).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when epoll fails.
    pub fn wait_call(&mut self, timeout: Duration) -> Result<bool, Error> {
        let mut events = [EpollEvent::default(); 1];
        let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
        if self.epoll.wait(ms, &mut events)? > 0 {
            let _ = self.call.read();
            self.event_triggered = self.event_idx;
            return Ok(true);
        }
        Ok(false)
    }

    /// Moves every used entry collected so far (head, used length) into `out`, in the order
    /// the device published them (an entry collected twice for one head appears once, with
    /// the later length).
    pub fn drain_used(&mut self, out: &mut Vec<(u16, u32)>) {
        for head in self.completed_heads.drain(..) {
            if let Some(len) = self
                .completed
                .get_mut(usize::from(head))
                .and_then(Option::take)
            {
                out.push((head, len));
            }
        }
        out.append(&mut self.stray);
    }

    /// Reads every used-ring entry published since the last look into the completed set;
    /// returns how many there were.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the used ring cannot be read.
    pub fn collect_used(&mut self) -> Result<u16, Error> {
        let idx = self.used_idx()?;
        let new = idx.wrapping_sub(self.last_used);
        if new == 0 {
            return Ok(0);
        }
        // Heads taken with `take_used` stay listed until a drain; keep the list bounded for a
        // caller that never drains.
        if self.completed_heads.len() >= 2 * usize::from(self.layout.size) {
            let completed = &self.completed;
            self.completed_heads
                .retain(|&h| completed.get(usize::from(h)).is_some_and(Option::is_some));
        }
        for _ in 0..new.min(self.layout.size) {
            let slot = u64::from(self.last_used % self.layout.size);
            // `struct virtq_used_elem`: id then len, one little-endian 8-byte read.
            let elem: u64 = self.ram.read_obj(self.layout.used + 4 + 8 * slot)?;
            let id = u16::try_from(elem & 0xffff_ffff).unwrap_or(u16::MAX);
            let len = u32::try_from(elem >> 32).unwrap_or(u32::MAX);
            self.record_used(id, len);
            self.last_used = self.last_used.wrapping_add(1);
        }
        self.last_used = idx;
        Ok(new)
    }

    fn record_used(&mut self, id: u16, len: u32) {
        match self.completed.get_mut(usize::from(id)) {
            Some(entry) => {
                if entry.replace(len).is_none() {
                    self.completed_heads.push(id);
                }
            }
            None => match self.stray.iter_mut().find(|(h, _)| *h == id) {
                Some(entry) => entry.1 = len,
                None => self.stray.push((id, len)),
            },
        }
    }

    /// Takes the used length of `head` if the device has returned it (after
    /// [`collect_used`](Self::collect_used)).
    pub fn take_used(&mut self, head: u16) -> Option<u32> {
        if let Some(entry) = self.completed.get_mut(usize::from(head)) {
            return entry.take();
        }
        let at = self.stray.iter().position(|&(h, _)| h == head)?;
        Some(self.stray.swap_remove(at).1)
    }

    // -----------------------------------------------------------------------------------------
    // Raw access: anything a hostile driver can write.

    /// Writes descriptor `index` of the table (`index` < size; an out-of-range *reference* is
    /// made with [`push_head`](Self::push_head) or a descriptor's `next`).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when `index` is outside the table.
    pub fn write_descriptor(&self, index: u16, desc: Descriptor) -> Result<(), Error> {
        if index >= self.layout.size {
            return Err(Error::Memory(format!(
                "descriptor {index} outside the table"
            )));
        }
        self.ram
            .write(self.layout.desc + 16 * u64::from(index), &desc.to_bytes())
    }

    /// Writes a descriptor table of `descs` at guest address `addr` (for an indirect
    /// descriptor to point at).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the range is outside the RAM.
    pub fn write_table(&self, addr: u64, descs: &[Descriptor]) -> Result<(), Error> {
        let bytes: Vec<u8> = descs.iter().flat_map(|d| d.to_bytes()).collect();
        self.ram.write(addr, &bytes)
    }

    /// Puts `head` (any value, `≥ size` included) in the next available-ring entry and
    /// publishes it by advancing `avail->idx` by one. Does not kick.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be written.
    pub fn push_head(&mut self, head: u16) -> Result<(), Error> {
        let slot = u64::from(self.avail_idx % self.layout.size);
        self.ram.write_obj(head, self.layout.avail + 4 + 2 * slot)?;
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ram.store_u16(self.avail_idx, self.layout.avail + 2)
    }

    /// Stores `avail->idx` = `idx` (any value: far ahead, behind) without writing ring entries;
    /// later pushes continue from `idx`. Does not kick.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be written.
    pub fn set_avail_idx(&mut self, idx: u16) -> Result<(), Error> {
        self.avail_idx = idx;
        self.ram.store_u16(idx, self.layout.avail + 2)
    }

    /// The `avail->idx` this driver published last.
    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Writes `avail->flags` ([`AVAIL_F_NO_INTERRUPT`] is 1).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be written.
    pub fn set_avail_flags(&mut self, flags: u16) -> Result<(), Error> {
        self.avail_flags = flags;
        self.ram.store_u16(flags, self.layout.avail)
    }

    /// Writes `used_event` (`avail->ring[size]`, read by a device with EVENT_IDX): interrupt
    /// once the used entry at this index is published.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be written.
    pub fn set_used_event(&self, idx: u16) -> Result<(), Error> {
        let at = self.layout.avail + 4 + 2 * u64::from(self.layout.size);
        self.ram.store_u16(idx, at)
    }

    /// The device's `avail_event` (`used->ring[size]`, written by a device with EVENT_IDX):
    /// kick once the available entry at this index is published.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be read.
    pub fn avail_event(&self) -> Result<u16, Error> {
        let at = self.layout.used + 4 + 8 * u64::from(self.layout.size);
        self.ram.load_u16(at)
    }

    /// The device's `used->idx`.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be read.
    pub fn used_idx(&self) -> Result<u16, Error> {
        self.ram.load_u16(self.layout.used + 2)
    }

    /// The device's `used->flags` ([`USED_F_NO_NOTIFY`]).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be read.
    pub fn used_flags(&self) -> Result<u16, Error> {
        self.ram.load_u16(self.layout.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_parts_are_aligned_and_do_not_overlap() {
        let l = QueueLayout::new(0x10000, 256, 65536, 4096);
        assert_eq!(l.desc, 0x10000);
        assert_eq!(l.avail, l.desc + 16 * 256);
        assert_eq!(l.used % PAGE, 0);
        assert!(l.used >= l.avail + 6 + 2 * 256);
        assert!(l.slots >= l.used + 6 + 8 * 256);
        assert_eq!(l.slot(3), l.slots + 3 * 65536);
        assert_eq!(l.scratch, l.slot(255) + 65536);
        assert!(l.end >= l.scratch + 4096 && l.end % PAGE == 0);
    }

    /// A queue of 16 descriptors with 4 KiB slots in its own RAM.
    fn queue() -> Queue {
        let layout = QueueLayout::new(0, 16, 4096, 0);
        let ram = Arc::new(GuestRam::new(layout.end).unwrap());
        Queue::new(1, ram, layout).unwrap()
    }

    /// Plays the device: publishes a used entry for `head` with `len`.
    fn device_returns(q: &Queue, head: u16, len: u32) {
        let idx = q.used_idx().unwrap();
        let slot = u64::from(idx % q.layout.size);
        let elem = u64::from(head) | (u64::from(len) << 32);
        q.ram.write_obj(elem, q.layout.used + 4 + 8 * slot).unwrap();
        q.ram
            .store_u16(idx.wrapping_add(1), q.layout.used + 2)
            .unwrap();
    }

    fn used_event(q: &Queue) -> u16 {
        q.ram
            .load_u16(q.layout.avail + 4 + 2 * u64::from(q.layout.size))
            .unwrap()
    }

    fn set_avail_event(q: &Queue, idx: u16) {
        let at = q.layout.used + 4 + 8 * u64::from(q.layout.size);
        q.ram.store_u16(idx, at).unwrap();
    }

    #[test]
    fn need_event_is_the_spec_rule_across_the_wrap() {
        assert!(need_event(0, 1, 0));
        assert!(!need_event(1, 1, 0), "entry 1 not published yet");
        assert!(need_event(5, 8, 3));
        assert!(!need_event(8, 8, 3));
        assert!(!need_event(2, 8, 3), "already passed before old");
        assert!(need_event(0xffff, 2, 0xfffe));
        assert!(!need_event(5, 5, 5), "nothing published");
    }

    #[test]
    fn event_idx_kicks_only_when_avail_event_is_passed() {
        let mut q = queue();
        q.set_event_idx(true);
        // A fresh ring: avail_event 0, the first request passes it.
        let _a = q.push_bytes(&[0; 40], 16, 1).unwrap();
        assert!(q.kick_if_needed().unwrap());
        // The device asks for a kick at entry 3 only.
        set_avail_event(&q, 3);
        let _b = q.push_bytes(&[0; 40], 16, 2).unwrap();
        assert!(
            !q.kick_if_needed().unwrap(),
            "entry 1 is before avail_event"
        );
        let _c = q.push_bytes(&[0; 40], 16, 3).unwrap();
        let _d = q.push_bytes(&[0; 40], 16, 4).unwrap();
        assert!(
            q.kick_if_needed().unwrap(),
            "entries 2 and 3 pass avail_event 3"
        );
        assert!(!q.kick_if_needed().unwrap(), "nothing new");
        // Without EVENT_IDX the flag decides, whatever avail_event says.
        q.set_event_idx(false);
        assert!(q.kick_if_needed().unwrap());
        q.ram.store_u16(USED_F_NO_NOTIFY, q.layout.used).unwrap();
        assert!(!q.kick_if_needed().unwrap());
    }

    #[test]
    fn interrupts_are_suppressed_while_draining_and_rearmed_at_the_last_used_index() {
        let mut q = queue();
        q.set_event_idx(true);
        q.set_used_event(7).unwrap();
        q.disable_interrupts().unwrap();
        assert_eq!(
            used_event(&q),
            0,
            "no interrupt came: used_event moved out of the way"
        );
        assert_eq!(
            q.ram.load_u16(q.layout.avail).unwrap(),
            0,
            "flags untouched"
        );
        let p = q.push_bytes(&[0; 40], 16, 1).unwrap();
        device_returns(&q, p.head(), 16);
        assert_eq!(q.collect_used().unwrap(), 1);
        assert!(
            q.enable_interrupts().unwrap(),
            "nothing pending after the re-arm"
        );
        assert_eq!(used_event(&q), 1, "re-armed at the last used index");
        // An interrupt: disabling then writes nothing (used_event stays where it was).
        q.call.write(1).unwrap();
        assert!(q.wait_call(Duration::from_millis(1)).unwrap());
        q.disable_interrupts().unwrap();
        assert_eq!(used_event(&q), 1);
        // Without EVENT_IDX: the no-interrupt flag, cleared on re-arm.
        let mut q = queue();
        q.disable_interrupts().unwrap();
        assert_eq!(
            q.ram.load_u16(q.layout.avail).unwrap(),
            AVAIL_F_NO_INTERRUPT
        );
        assert!(q.enable_interrupts().unwrap());
        assert_eq!(q.ram.load_u16(q.layout.avail).unwrap(), 0);
    }

    #[test]
    fn rearming_reports_an_entry_published_before_it() {
        let mut q = queue();
        q.set_event_idx(true);
        q.disable_interrupts().unwrap();
        let p = q.push_bytes(&[0; 40], 16, 1).unwrap();
        // Published after the driver's last look, before it re-arms: must not be slept on.
        device_returns(&q, p.head(), 16);
        assert!(!q.enable_interrupts().unwrap());
        assert!(q.used_pending().unwrap());
        assert_eq!(
            used_event(&q),
            0,
            "armed at what was collected, not at used->idx"
        );
    }

    #[test]
    fn used_entries_drain_in_order_once_per_head() {
        let mut q = queue();
        device_returns(&q, 5, 10);
        device_returns(&q, 2, 20);
        device_returns(&q, 5, 30);
        device_returns(&q, 300, 40);
        assert_eq!(q.collect_used().unwrap(), 4);
        let mut out = Vec::new();
        q.drain_used(&mut out);
        assert_eq!(out, [(5, 30), (2, 20), (300, 40)]);
        device_returns(&q, 2, 50);
        q.collect_used().unwrap();
        assert_eq!(q.take_used(2), Some(50));
        out.clear();
        q.drain_used(&mut out);
        assert!(
            out.is_empty(),
            "taken entries are not drained again: {out:?}"
        );
    }

    #[test]
    fn finish_reads_up_to_the_limit_and_frees_the_chain() {
        let mut q = queue();
        let free = q.free_descriptors();
        // One readable descriptor, two writable (4096 + 904 bytes).
        let mut request = [0u8; 40];
        let p = q.push_encoded(&mut request, 5000, Instant::now()).unwrap();
        assert_eq!(
            u64::from_le_bytes(request[8..16].try_into().unwrap()),
            p.unique()
        );
        assert_eq!(q.free_descriptors(), free - 3);
        let mut out = Vec::new();
        q.finish_into(p, 4100, 16, &mut out).unwrap();
        assert_eq!(out.len(), 16, "the limit");
        assert_eq!(q.free_descriptors(), free);
        let p = q.push_bytes(&[0; 40], 5000, 9).unwrap();
        let second = q
            .layout
            .slot(q.chain_next[usize::from(q.chain_next[usize::from(p.head())])]);
        q.ram.write(second, &[7; 8]).unwrap();
        q.finish_into(p, 4100, usize::MAX, &mut out).unwrap();
        assert_eq!(
            out.len(),
            4100,
            "the used length, across both writable descriptors"
        );
        assert_eq!(&out[4096..], &[7; 4]);
    }

    #[test]
    fn descriptors_are_little_endian_virtq_desc() {
        let d = Descriptor::readable(0x1122_3344_5566_7788, 0x99aa_bbcc).then(0x0102);
        let b = d.to_bytes();
        assert_eq!(&b[..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[8..12], &0x99aa_bbccu32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([b[12], b[13]]), DESC_F_NEXT);
        assert_eq!(u16::from_le_bytes([b[14], b[15]]), 0x0102);
        assert_eq!(Descriptor::writable(0, 1).flags, DESC_F_WRITE);
    }
}
