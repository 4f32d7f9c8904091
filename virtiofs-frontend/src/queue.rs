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

use std::collections::HashMap;
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

/// A request on the ring whose reply has not been collected yet.
#[derive(Debug)]
#[must_use = "a pending request holds descriptors until it is waited for"]
pub struct Pending {
    head: u16,
    descs: Vec<u16>,
    reply: Vec<(u64, u32)>,
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

    /// When it was made available to the device.
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
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
    completed: HashMap<u16, u32>,
    next_unique: u64,
    scratch_buf: Vec<u8>,
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
            layout,
            kick,
            call,
            epoll,
            avail_idx: 0,
            last_used: 0,
            completed: HashMap::new(),
            next_unique: (u64::try_from(index).unwrap_or(0) << 48) | 1,
            scratch_buf: Vec::new(),
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
        let unique = self.next_unique;
        self.next_unique = self.next_unique.wrapping_add(1);
        let mut bytes = std::mem::take(&mut self.scratch_buf);
        request.encode_into(unique, &mut bytes);
        let result = self.push_bytes(&bytes, reply_capacity, unique);
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
        let slot = usize::try_from(self.layout.slot_size).unwrap_or(usize::MAX);
        let n_in = bytes.len().div_ceil(slot).max(1);
        let n_out = reply_capacity.div_ceil(slot);
        let n = n_in + n_out;
        if self.free.len() < n {
            return Err(Error::QueueFull(self.index));
        }
        let at = self.free.len() - n;
        let descs = self.free.split_off(at);
        let mut reply = Vec::with_capacity(n_out);
        let mut left = reply_capacity;
        for (i, &d) in descs.iter().enumerate() {
            let addr = self.layout.slot(d);
            let mut desc = if i < n_in {
                let chunk = bytes.get(i * slot..).unwrap_or_default();
                let chunk = chunk.get(..slot.min(chunk.len())).unwrap_or_default();
                self.ram.write(addr, chunk)?;
                Descriptor::readable(addr, u32::try_from(chunk.len()).unwrap_or(u32::MAX))
            } else {
                let len = left.min(slot);
                left -= len;
                let len = u32::try_from(len).unwrap_or(u32::MAX);
                reply.push((addr, len));
                Descriptor::writable(addr, len)
            };
            if let Some(&next) = descs.get(i + 1) {
                desc = desc.then(next);
            }
            self.write_descriptor(d, desc)?;
        }
        let head = descs.first().copied().unwrap_or_default();
        self.push_head(head)?;
        Ok(Pending {
            head,
            descs,
            reply,
            unique,
            sent: Instant::now(),
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

    /// Kicks unless the device asked not to be (VRING_USED_F_NO_NOTIFY), as Linux's
    /// `virtqueue_kick_prepare` decides after publishing (this frontend does not negotiate
    /// EVENT_IDX): a full fence between the avail index just stored and the flags read, so a
    /// device that re-enables notifications and then looks at the ring cannot miss the
    /// request. Returns whether it kicked.
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the used ring cannot be read, [`Error::Io`] when the write fails.
    pub fn kick_if_needed(&self) -> Result<bool, Error> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if self.used_flags()? & USED_F_NO_NOTIFY != 0 {
            return Ok(false);
        }
        self.kick()?;
        Ok(true)
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
        let mut left = usize::try_from(used_len).unwrap_or(usize::MAX);
        for &(addr, len) in &pending.reply {
            let take = left.min(usize::try_from(len).unwrap_or(0));
            if take == 0 {
                break;
            }
            let start = bytes.len();
            bytes.resize(start + take, 0);
            self.ram.read(addr, &mut bytes[start..])?;
            left -= take;
        }
        self.free.extend(pending.descs.iter().rev());
        Ok(Reply { used_len, bytes })
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
            if let Some(len) = self.completed.remove(&head) {
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
    /// returns whether it signalled.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when epoll fails.
    pub fn wait_call(&mut self, timeout: Duration) -> Result<bool, Error> {
        let mut events = [EpollEvent::default(); 1];
        let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
        if self.epoll.wait(ms, &mut events)? > 0 {
            let _ = self.call.read();
            return Ok(true);
        }
        Ok(false)
    }

    /// Moves every used entry collected so far (head, used length) into `out`, in no order.
    pub fn drain_used(&mut self, out: &mut Vec<(u16, u32)>) {
        out.extend(self.completed.drain());
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
        for _ in 0..new.min(self.layout.size) {
            let slot = u64::from(self.last_used % self.layout.size);
            let entry = self.layout.used + 4 + 8 * slot;
            let id: u32 = self.ram.read_obj(entry)?;
            let len: u32 = self.ram.read_obj(entry + 4)?;
            self.completed
                .insert(u16::try_from(id).unwrap_or(u16::MAX), len);
            self.last_used = self.last_used.wrapping_add(1);
        }
        self.last_used = idx;
        Ok(new)
    }

    /// Takes the used length of `head` if the device has returned it (after
    /// [`collect_used`](Self::collect_used)).
    pub fn take_used(&mut self, head: u16) -> Option<u32> {
        self.completed.remove(&head)
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

    /// Writes `avail->flags` (`VIRTQ_AVAIL_F_NO_INTERRUPT` is 1).
    ///
    /// # Errors
    ///
    /// [`Error::Memory`] when the ring cannot be written.
    pub fn set_avail_flags(&self, flags: u16) -> Result<(), Error> {
        self.ram.store_u16(flags, self.layout.avail)
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
