//! Serving a virtqueue: take chain heads off the avail ring with every index checked, hand the
//! chains to the server, report checked used lengths, and notify the guest only when the ring's
//! notification suppression (EVENT_IDX or the NO_INTERRUPT flag) asks for it.
//!
//! [`RingState`] is the one place a head is taken from a ring: it checks the driver's indices
//! itself (`avail->idx` at most the queue size ahead of the device, every head inside the
//! table) and marks a queue whose indices are impossible **broken**: logged once, never polled
//! again until the queue is reset or set up anew. [`process_queue`] is the synchronous loop over
//! it; a device that completes requests on other threads calls [`RingState::pop`] and
//! [`add_used`] itself.

use std::io;
use std::num::Wrapping;
use std::sync::atomic::Ordering;

use virtio_queue::QueueT;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory};

use crate::chain::{ChainBuffers, ChainRequest, DescTable};
use crate::error::{Error, Result};
use crate::reader::ChainReader;
use crate::reply::CheckedCompletion;
use crate::writer::ChainWriter;

/// What one [`process_queue`] pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Chains answered with a checked completion (a reply, or none for FORGET).
    pub completed: u64,
    /// Malformed chains, dropped with used length 0.
    pub malformed: u64,
    /// Requests whose reply broke a rule (length, unique, errno), reported with used length 0.
    pub bad_replies: u64,
    /// Guest notifications sent.
    pub notifications: u64,
}

/// What [`RingState::pop`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop {
    /// The head of the next available chain (already checked to be inside the table).
    Head(u16),
    /// No chain is available (or the queue is not ready).
    Empty,
    /// The queue is broken: its indices are impossible, or its rings are not in guest memory.
    /// Nothing more is taken from it until [`RingState::reset`] or until it is set up anew.
    Broken,
}

/// Where a queue's rings are and how large it is: a queue that is set up anew (new addresses
/// or size) is no longer the one that broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingId {
    desc: u64,
    avail: u64,
    used: u64,
    size: u16,
}

impl RingId {
    fn of(queue: &impl QueueT) -> Self {
        Self {
            desc: queue.desc_table(),
            avail: queue.avail_ring(),
            used: queue.used_ring(),
            size: queue.size(),
        }
    }
}

/// The device's own view of one queue: whether indirect descriptors were negotiated, and
/// whether the queue is broken.
///
/// Keep one per queue, next to the queue, for as long as the queue is configured; call
/// [`reset`](Self::reset) when the driver resets or re-activates the device.
#[derive(Clone, Debug, Default)]
pub struct RingState {
    indirect: bool,
    broken: Option<RingId>,
}

/// Bytes before the first entry of the avail ring (`flags`, `idx`).
const AVAIL_HEADER: u64 = 4;

impl RingState {
    /// A queue that is not broken; `indirect` says whether the driver negotiated
    /// VIRTIO_RING_F_INDIRECT_DESC.
    pub fn new(indirect: bool) -> Self {
        Self {
            indirect,
            broken: None,
        }
    }

    /// Records the negotiated VIRTIO_RING_F_INDIRECT_DESC.
    pub fn set_indirect(&mut self, indirect: bool) {
        self.indirect = indirect;
    }

    /// Whether the driver negotiated VIRTIO_RING_F_INDIRECT_DESC.
    pub fn indirect(&self) -> bool {
        self.indirect
    }

    /// The descriptor table of `queue`, with the negotiated indirect flag.
    pub fn table(&self, queue: &impl QueueT) -> DescTable {
        DescTable::of_queue(queue, self.indirect)
    }

    /// Forgets that the queue broke (device reset, the driver set the queue up again).
    pub fn reset(&mut self) {
        self.broken = None;
    }

    /// Whether `queue` is broken (and will not be polled). A queue whose addresses or size
    /// changed since it broke has been set up anew and is no longer broken.
    pub fn is_broken(&mut self, queue: &impl QueueT) -> bool {
        match self.broken {
            Some(id) if id == RingId::of(queue) => true,
            Some(_) => {
                self.broken = None;
                false
            }
            None => false,
        }
    }

    /// Marks `queue` broken because of `why` (logged, under the shared rate limit).
    pub fn mark_broken(&mut self, queue: &impl QueueT, why: &Error) {
        if self.broken.is_none() {
            fuse_server::guest_warn!("virtqueue broken until it is reset: {why}");
        }
        self.broken = Some(RingId::of(queue));
    }

    /// Takes the next available chain head off `queue`'s avail ring, checking the driver's
    /// indices first: `avail->idx` may be at most the queue size ahead of the device, and the
    /// head must name an entry of the descriptor table. A queue that breaks either rule, or
    /// whose avail ring is not in guest memory, becomes [`Pop::Broken`].
    ///
    /// Notification state is not touched; see [`process_queue`] for the loop around it.
    pub fn pop<Q: QueueT, M: GuestMemory>(&mut self, queue: &mut Q, mem: &M) -> Pop {
        if self.is_broken(queue) {
            return Pop::Broken;
        }
        let size = queue.size();
        if !queue.ready() || size == 0 {
            return Pop::Empty;
        }
        let avail = match queue.avail_idx(mem, Ordering::Acquire) {
            Ok(idx) => idx,
            Err(e) => {
                self.mark_broken(queue, &Error::Queue(e));
                return Pop::Broken;
            }
        };
        let next = Wrapping(queue.next_avail());
        let pending = (avail - next).0;
        if pending > size {
            let why = Error::AvailIndex {
                avail: avail.0,
                next_avail: next.0,
                size,
            };
            self.mark_broken(queue, &why);
            return Pop::Broken;
        }
        if pending == 0 {
            return Pop::Empty;
        }
        // Cannot overflow: the slot is below 2^16 and the ring address was checked when the
        // queue was set up; checked anyway, a wrap is a broken ring.
        let slot = u64::from(next.0 % size) * 2 + AVAIL_HEADER;
        let head = GuestAddress(queue.avail_ring())
            .checked_add(slot)
            .ok_or(Error::AddressOverflow {
                addr: queue.avail_ring(),
                len: 2,
            })
            .and_then(|addr| {
                mem.load::<u16>(addr, Ordering::Acquire)
                    .map_err(Error::GuestMemory)
            });
        let head = match head {
            Ok(head) => u16::from_le(head),
            Err(e) => {
                self.mark_broken(queue, &e);
                return Pop::Broken;
            }
        };
        if head >= size {
            // The used ring cannot take such a head back, so the chain cannot even be
            // returned as malformed.
            self.mark_broken(queue, &Error::HeadIndex { head, size });
            return Pop::Broken;
        }
        queue.set_next_avail((next + Wrapping(1)).0);
        Pop::Head(head)
    }
}

/// Puts `head` into the used ring with the completion's used length.
///
/// # Errors
///
/// The queue's error (used ring outside guest memory, ...).
pub fn add_used<Q: QueueT, M: GuestMemory>(
    queue: &mut Q,
    mem: &M,
    head: u16,
    completion: CheckedCompletion,
) -> Result<()> {
    queue
        .add_used(mem, head, completion.used_len())
        .map_err(Error::Queue)
}

/// Serves every available chain of `queue` until the ring is empty with notifications
/// re-enabled (the EVENT_IDX-safe loop: disable notifications, drain, re-enable, and drain again
/// if the guest added chains meanwhile). Heads come from [`RingState::pop`]: a queue with
/// impossible indices is marked broken in `ring`, and a broken queue is not polled at all.
///
/// `handle` gets each request's reader and writer (it calls the server); the reply is then
/// checked ([`ChainRequest::finish`](crate::ChainRequest::finish)) and its used length reported. A
/// malformed chain or a reply that breaks a rule is reported with used length 0, logged (under
/// the shared rate limit) and counted, never fatal. `notify` signals the guest (an irqfd or
/// vhost-user call) whenever the queue says a notification is due.
///
/// On every return, notifications from the driver are enabled again (a broken queue never
/// leaves `VRING_USED_F_NO_NOTIFY` set).
///
/// This loop completes every chain it takes: it has no place to keep a pending request
/// ([`Completion::Pending`](fuse_server::Completion::Pending), a SETLKW whose lock is held),
/// which it would report as a missing reply. A device whose server may leave requests pending
/// takes heads itself and serves them with [`serve_request_or_pend`], as `virtiofs-device`
/// does.
///
/// # Errors
///
/// Only failures of the queue itself (the queue is then broken) or of `notify`.
pub fn process_queue<Q, M, H, N>(
    queue: &mut Q,
    mem: &M,
    ring: &mut RingState,
    buffers: &mut ChainBuffers,
    mut handle: H,
    mut notify: N,
) -> Result<QueueStats>
where
    Q: QueueT,
    M: GuestMemory,
    H: FnMut(&mut ChainReader<'_, M>, &mut ChainWriter<'_, M>),
    N: FnMut() -> io::Result<()>,
{
    let mut stats = QueueStats::default();
    if ring.is_broken(queue) {
        return Ok(stats);
    }
    let result = drain(
        queue,
        mem,
        ring,
        buffers,
        &mut handle,
        &mut notify,
        &mut stats,
    );
    if let Err(e) = &result {
        ring.mark_broken(queue, e);
    }
    if result.is_err() || ring.is_broken(queue) {
        // Leave the driver able to kick (its notifications are ignored while broken); the
        // avail index it reports is meaningless here.
        let _ = queue.enable_notification(mem);
    }
    result.map(|()| stats)
}

fn drain<Q, M, H, N>(
    queue: &mut Q,
    mem: &M,
    ring: &mut RingState,
    buffers: &mut ChainBuffers,
    handle: &mut H,
    notify: &mut N,
    stats: &mut QueueStats,
) -> Result<()>
where
    Q: QueueT,
    M: GuestMemory,
    H: FnMut(&mut ChainReader<'_, M>, &mut ChainWriter<'_, M>),
    N: FnMut() -> io::Result<()>,
{
    loop {
        queue.disable_notification(mem).map_err(Error::Queue)?;
        loop {
            let head = match ring.pop(queue, mem) {
                Pop::Head(head) => head,
                Pop::Empty => break,
                Pop::Broken => return Ok(()),
            };
            let table = ring.table(queue);
            let completion = serve_chain(mem, table, head, buffers, handle, stats);
            add_used(queue, mem, head, completion)?;
            if queue.needs_notification(mem).map_err(Error::Queue)? {
                notify().map_err(Error::Notify)?;
                stats.notifications += 1;
            }
        }
        if !queue.enable_notification(mem).map_err(Error::Queue)? {
            return Ok(());
        }
    }
}

/// Walks the chain at `head`, lets `handle` answer it and checks the reply: the completion to
/// report. A malformed chain or a refused reply is logged (rate-limited), counted in `stats`,
/// and completes without a reply.
pub fn serve_chain<M, H>(
    mem: &M,
    table: DescTable,
    head: u16,
    buffers: &mut ChainBuffers,
    handle: &mut H,
    stats: &mut QueueStats,
) -> CheckedCompletion
where
    M: GuestMemory,
    H: FnMut(&mut ChainReader<'_, M>, &mut ChainWriter<'_, M>),
{
    match buffers.parse(mem, table, head) {
        Ok(request) => serve_request(request, handle, stats),
        Err(e) => drop_malformed(head, &e, stats),
    }
}

/// The second half of [`serve_chain`], for a caller that walked the chain itself (to look at
/// its [`request_head`](ChainReader::request_head) first): lets `handle` answer `request` and
/// checks the reply. A refused reply is logged (rate-limited), counted in `stats`, and completes
/// without a reply.
pub fn serve_request<M, H>(
    request: ChainRequest<'_, M>,
    handle: &mut H,
    stats: &mut QueueStats,
) -> CheckedCompletion
where
    M: GuestMemory + ?Sized,
    H: FnMut(&mut ChainReader<'_, M>, &mut ChainWriter<'_, M>),
{
    serve_request_or_pend(
        request,
        &mut |r: &mut ChainReader<'_, M>, w: &mut ChainWriter<'_, M>| {
            handle(r, w);
            false
        },
        stats,
    )
    .unwrap_or(CheckedCompletion::NO_REPLY)
}

/// [`serve_request`] for a server that may leave a request pending
/// ([`Completion::Pending`](fuse_server::Completion::Pending): a SETLKW whose lock is held).
/// `handle` returns `true` when the request is pending: nothing was written, so the reply is
/// not checked and `None` comes back; the caller keeps the chain's head (it must not put it on
/// the used ring) and serves the chain again later, from the start (the chain is still in
/// guest memory, unchanged as far as the device is concerned). Otherwise the reply is checked
/// as by [`serve_request`].
pub fn serve_request_or_pend<M, H>(
    mut request: ChainRequest<'_, M>,
    handle: &mut H,
    stats: &mut QueueStats,
) -> Option<CheckedCompletion>
where
    M: GuestMemory + ?Sized,
    H: FnMut(&mut ChainReader<'_, M>, &mut ChainWriter<'_, M>) -> bool,
{
    let head = request.head_index();
    let (reader, writer) = request.io();
    if handle(reader, writer) && writer.bytes_written() == 0 {
        return None;
    }
    Some(match request.finish() {
        Ok(c) => {
            stats.completed += 1;
            c
        }
        Err(e) => {
            fuse_server::guest_warn!("chain {head}: reply refused: {e}");
            stats.bad_replies += 1;
            CheckedCompletion::NO_REPLY
        }
    })
}

/// What [`serve_chain`] reports for the chain at `head` that [`ChainBuffers::parse`] refused
/// with `error`: logged (rate-limited), counted in `stats`, completed without a reply.
pub fn drop_malformed(head: u16, error: &Error, stats: &mut QueueStats) -> CheckedCompletion {
    fuse_server::guest_warn!("chain {head}: dropped: {error}");
    stats.malformed += 1;
    CheckedCompletion::NO_REPLY
}
