//! Serving the virtqueues: the transport walks and checks each chain and the reply, the server
//! answers, and this module adds what is virtio-fs specific (the hiprio queue takes FORGET only
//! and never replies; request queues answer on the queue the request came from) and who runs
//! what.
//!
//! # Inline first, the pool for requests that may block
//!
//! Whoever kicks a queue (vhost-user-backend's epoll thread for the queue, the in-process
//! device's kick thread, a VMM thread in `process_queue`) *serves* it: [`QueueCore::kick`]
//! takes the available heads off the avail ring one at a time (indices checked by
//! [`RingState`]; a queue with impossible indices is broken
//! until it is reset), walks each chain and calls the server on its own thread, with no hand-off
//! to another thread on the fast path. Two kinds of request go to the queue's pool of worker
//! threads instead (a bounded channel of owned jobs: an owned handle to guest memory and to the
//! ring; the worker walks the chain again):
//!
//! - requests that may block, known from the opcode the transport copied while walking the
//!   chain ([`ChainReader::request_head`], no second guest read): FSYNC, FSYNCDIR, FLUSH,
//!   COPY_FILE_RANGE, FALLOCATE and SYNCFS ([`may_block`]). Not SETLKW: the backend tries it
//!   once, and one whose lock is held is *parked* ([`crate::park`]), not waited for;
//! - the rest of a batch of slow requests: once a batch (what the thread takes until it finds
//!   the ring empty) has kept the serving thread busy for more than [`INLINE_BUDGET`] (200 µs,
//!   about two thread wake-ups here) *and* its requests took more than [`HAND_OFF`] (40 µs)
//!   each on average, the rest goes to the pool, in ring order. Requests that cost more than a
//!   hand-off (a slow host filesystem, heads that piled up behind one) are served in parallel;
//!   quick ones stay on the serving thread however long the burst, since a driver that keeps
//!   the ring full makes one endless batch. (A count rule — more heads waiting than served —
//!   and then a time rule alone sent most of every batch at depth 16 to the pool: each hand-off
//!   cost a futex wake, and both lost to virtiofsd's inline serving.)
//!
//! A request that blocks where it was not expected to cannot stop its queue either: while the
//! serving thread has been inside one request for a whole tick (1 ms), the queue's watchdog
//! ([`crate::watch`]) takes the heads waiting on the ring and hands them all to the pool.
//!
//! # The control plane never waits on a request
//!
//! The ring lock is held only to take a head and to put used elements, never while the server
//! runs, so whoever holds the vring (a vhost-user message, a kick, a disconnect) waits only for
//! those short critical sections. Requests complete out of order. A thread that stops a queue
//! (device reset, a frontend's disconnect) does not wait for a serving thread stuck in a request
//! (it stops the ring first); see the kick threads and `vhost_user::serve`.
//!
//! Every request carries the queue's *generation*. Stopping a queue (vhost-user GET_VRING_BASE,
//! device reset, a frontend's disconnect, a new activation) bumps it, so a request that
//! completes afterwards is discarded and never touches the ring of a dead connection, and a
//! serving thread that comes back from a request takes no more heads. Jobs are plain values in a
//! preallocated channel and each thread has its own chain buffers: nothing is allocated per
//! request.
//!
//! # Batched notifications
//!
//! A thread that completes several requests of one batch puts each used element as it
//! completes, but asks the driver (`needs_notification`: EVENT_IDX, or the no-interrupt flag)
//! whether to interrupt only once — when it has no more requests at hand, or every
//! [`SIGNAL_BATCH`] completions — and signals once. The serving thread and the pool workers do
//! the same (a worker counts the jobs already waiting for it as its batch).
//!
//! # Polling before sleeping
//!
//! A request queue configured with a poll window
//! ([`DeviceConfigBuilder::poll_us`](crate::DeviceConfigBuilder::poll_us), the daemon's
//! `--poll-us`) keeps the thread that kicked it for up to that long after it drains the ring:
//! instead of re-enabling notifications and returning, [`QueueCore::serve`] signals the
//! completions it has, leaves the driver told not to kick (VRING_USED_F_NO_NOTIFY; with
//! EVENT_IDX the avail event stays behind the requests the driver adds) and, with no lock
//! held, reads the avail index with `std::hint::spin_loop` between reads (no system call; the
//! clock is read every [`POLL_CLOCK_EVERY`] spins). A request that arrives is taken and served
//! at once, as a new batch, and the next empty ring starts a new window. When a window ends
//! the thread re-enables notifications and looks at the ring once more under the lock (virtio's
//! lost-wakeup rule: a request published just before notifications came back on is served,
//! not left for a kick that never comes). The window stops early when the queue's generation
//! changes (reset, GET_VRING_BASE, disconnect, a new activation), so a thread that stops a
//! queue never waits for a poller; it is bounded by [`MAX_POLL_US`](crate::MAX_POLL_US)
//! (1 ms), which is also the longest the vhost-user epoll thread that polls leaves its exit
//! event unread. Only the serving thread of a kick that took at least one request polls: not
//! the hiprio queue, not the pool, not the watchdog, not a kick that found nothing (a stale
//! kick would otherwise buy a window of its own).
//!
//! Both the in-process device and the vhost-user backend use this machinery; they differ in
//! what a ring is ([`Ring`]) and how kicks arrive. A queue made with no workers (the in-process
//! device's [`DeviceConfigBuilder::inline`](crate::DeviceConfigBuilder::inline)) has no pool
//! and no watchdog: every request is served by whoever calls [`QueueCore::kick`], in ring
//! order, before `kick` returns.

use std::cell::RefCell;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use fuse_abi::{InHeaderPrefix, Opcode};
use fuse_server::{FileSystem, Reader, Server, ZeroCopyReader};
use log::debug;
use virtio_queue::{Queue, QueueT};
use virtiofs_transport::{
    ChainBuffers, ChainReader, ChainRequest, ChainWriter, CheckedCompletion, DescTable, Pop,
    QueueStats, RingState, add_used, drop_malformed, serve_request_or_pend,
};
use vm_memory::{Address, Bytes, GuestAddress, GuestAddressSpace, GuestMemory};

use crate::park::{Hub, Parked, ParkedSet, Timer, Wake};
use crate::watch::Watch;

/// The largest message accepted on the hiprio queue: a BATCH_FORGET of ~4000 entries.
const HIPRIO_MAX: usize = 64 * 1024;

/// Which virtio-fs queue a worker serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRole {
    /// Queue 0: FORGET only, never a reply.
    Hiprio,
    /// Queues 1..=N: every other request, each answered on the queue it came from.
    Request,
}

impl QueueRole {
    /// The role of virtqueue `index`.
    pub fn of_index(index: usize) -> QueueRole {
        if index == 0 {
            QueueRole::Hiprio
        } else {
            QueueRole::Request
        }
    }
}

/// Counters a device keeps across its queues (monotonic; read them for logs or metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Chains completed: a checked reply, or none for FORGET.
    pub completed: AtomicU64,
    /// Malformed chains, returned with used length 0.
    pub malformed: AtomicU64,
    /// Requests without a valid reply (the server could not write one, or the transport
    /// refused it), and non-FORGET requests on the hiprio queue; used length 0.
    pub dropped: AtomicU64,
    /// Interrupts requested from the driver.
    pub notifications: AtomicU64,
    /// Requests whose queue was stopped (reset, GET_VRING_BASE, disconnect) before they
    /// completed: discarded, never put on a ring.
    pub discarded: AtomicU64,
    /// Requests handed to a queue's pool rather than served by the thread that took them off
    /// the ring: those that may block (FSYNC, FLUSH, ...) and the excess of a backlog.
    pub pooled: AtomicU64,
    /// Requests parked: a SETLKW whose lock was held, kept (its head owned by the device)
    /// and served again later (counted once per request).
    pub parked: AtomicU64,
    /// Attempts at parked requests that found the lock still held.
    pub reparked: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Completions a thread puts on the used ring before it asks the driver's EVENT_IDX (or flags)
/// whether to interrupt, while more requests of its batch are waiting; when it runs out of
/// requests it asks at once. Small enough that a driver keeping 16 requests in flight gets
/// completions back, and refills the ring, while the rest of its batch is served: with 8 (half
/// of 16) the driver woke only after the batch's first half, found the ring drained by the
/// time it refilled it, and both sides slept once per batch. Where a thread wake-up costs
/// ~50 µs that halved depth 16 (load generator, 1 queue: getattr 232 k/s and read-4k 218 k/s
/// with 8, 396 k and 389 k with 4, virtiofsd 376-399 k); where it costs ~2 µs, 8 and 4
/// measured alike and 16 halved read-4k.
const SIGNAL_BATCH: u32 = 4;

/// Time a serving thread may spend on the requests of one batch before it hands the rest of
/// the batch to the pool (see [`QueueCore::serve`]): about two thread wake-ups on a virtual
/// machine, the price of a hand-off.
const INLINE_BUDGET: Duration = Duration::from_micros(200);

/// The mean time per request above which the rest of a batch that has spent its
/// [`INLINE_BUDGET`] goes to the pool: a little less than a thread wake-up here (~50 µs), the
/// price of handing a request to a worker. Below it, serving inline is cheaper than any
/// parallelism the pool could add: with the budget alone, a driver keeping 16 or 128 requests
/// in flight made one endless batch, and after 200 µs every request went through the pool's
/// futex (load generator, 1 queue, with an fstests guest on the other core: write-4k at depth
/// 16 134 k/s and 6.6 µs of daemon CPU per request, getattr 545 k/s and 1.2 µs; served inline,
/// 147-154 k/s and 5.7 µs, 622-644 k/s and 0.9 µs; 2 queues read-4k at depth 128 went from
/// 423-477 k/s to 742-802 k/s).
const HAND_OFF: Duration = Duration::from_micros(40);

/// Spins between two reads of the clock while a serving thread polls an empty ring: the avail
/// index is read every spin, the clock (`Instant::now`, vDSO) only this often.
const POLL_CLOCK_EVERY: u32 = 16;

/// Whether a request may block the thread serving it for long (a disk flush, a lock that
/// waits for another owner, a large copy): such requests go to the queue's pool, never onto
/// the thread that takes heads off the ring. `head` is the transport's copy of the request's
/// first 16 bytes ([`ChainReader::request_head`]), so this costs no guest read.
pub(crate) fn may_block(head: Option<InHeaderPrefix>) -> bool {
    let Some(opcode) = head.and_then(|h| Opcode::try_from(h.opcode.get()).ok()) else {
        return false;
    };
    matches!(
        opcode,
        Opcode::Fsync
            | Opcode::Fsyncdir
            | Opcode::Flush
            | Opcode::CopyFileRange
            | Opcode::Fallocate
            | Opcode::Syncfs
    )
}

/// What a thread that serves requests keeps between them: the transport's chain buffers.
/// One per thread (a kick thread, a vhost-user epoll thread, a worker, a VMM thread that calls
/// `process_queue`), so threads never wait for each other's buffers.
#[derive(Debug, Default)]
struct Serving {
    chains: ChainBuffers,
}

thread_local! {
    static SERVING: RefCell<Serving> = RefCell::new(Serving::default());
}

/// Runs `f` with this thread's buffers (fresh ones if the thread is already inside, which only
/// an [`Interrupt`](crate::Interrupt) that calls back into the device would do).
fn with_serving<T>(f: impl FnOnce(&mut ChainBuffers) -> T) -> T {
    SERVING.with(|cell| match cell.try_borrow_mut() {
        Ok(mut serving) => f(&mut serving.chains),
        Err(_) => f(&mut ChainBuffers::default()),
    })
}

/// One virtqueue's ring as the device shares it with whoever configures it: lock it briefly
/// to touch the queue, and signal the driver.
pub(crate) trait Ring: Clone + Send + 'static {
    /// Runs `f` on the queue with the ring locked; signals the driver afterwards when `f`
    /// returns `true` as its second value.
    fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> (T, bool)) -> T;
}

/// One request taken off a ring, on its way to the pool.
struct Job<A, R> {
    ring: R,
    mem: A,
    generation: u64,
    table: DescTable,
    head: u16,
}

/// What the ring lock, the serving threads and the pool share about a queue.
struct Control<A, R> {
    generation: u64,
    ring: RingState,
    /// The pool's channel was full when a head was due there: the worker that frees a slot
    /// serves the ring again.
    starved: bool,
    /// The ring and memory of the last kick, for that and for the watchdog.
    current: Option<(R, A)>,
}

/// What the serving thread does with the head it took off the ring.
// A value on the serving thread's stack for one head at a time, never stored or moved in bulk:
// boxing the large variant would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Take<'b, M: GuestMemory> {
    /// Serve it on this thread (the chain as walked, or why it could not be).
    Inline(
        u16,
        DescTable,
        Result<ChainRequest<'b, M>, virtiofs_transport::Error>,
    ),
    /// It went to the pool.
    Pooled,
    /// The ring is empty and this thread polls it (see [`QueueCore::poll`]): notifications are
    /// still off.
    Idle(Idle),
    /// Nothing more to take: the ring is empty with notifications on, broken or stopped, the
    /// queue was restarted, or the pool is full.
    Stop,
}

/// Where a poller looks: the avail ring's index field and the index it is waiting to move.
#[derive(Clone, Copy)]
struct Idle {
    avail_idx: GuestAddress,
    next_avail: u16,
}

/// Where one thread's pass over a ring stands (see [`QueueCore::serve`]).
struct Pass {
    /// Requests may be served on this thread (not for the watchdog).
    inline: bool,
    /// Time spent serving the current batch on this thread...
    busy: Duration,
    /// ... and the requests it served there.
    served: u32,
    /// The rest of the current batch goes to the pool.
    offloading: bool,
    /// This thread polls an empty ring before it re-enables notifications (a kick's serving
    /// thread on a request queue with a poll window).
    poll: bool,
    /// A head was taken since the last window ended (or since the pass began): the next
    /// empty ring opens a window.
    took: bool,
}

/// A completion on its way to the used ring, and the stats of the request.
struct Done {
    head: u16,
    completion: CheckedCompletion,
    stats: QueueStats,
}

/// What became of one request served: done (a completion for the used ring) or pending (to
/// park), and the node whose parked requests to wake (a request that may have freed a lock).
struct Served {
    head: u16,
    /// `None`: pending (nothing written; the head stays with the device).
    completion: Option<CheckedCompletion>,
    stats: QueueStats,
    nodeid: Option<u64>,
    frees_locks: bool,
}

impl Served {
    fn done(&self) -> Option<Done> {
        self.completion.map(|completion| Done {
            head: self.head,
            completion,
            stats: self.stats,
        })
    }
}

/// One queue: its role, its control state, the sending end of its pool's channel and the
/// watchdog's state.
pub(crate) struct QueueCore<F, A, R> {
    index: usize,
    role: QueueRole,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    served: AtomicU64,
    control: Mutex<Control<A, R>>,
    /// `control.generation`, for a poller to read without the lock.
    epoch: AtomicU64,
    /// The poll window ([`Duration::ZERO`]: none).
    poll: Duration,
    /// `None` for a queue without a pool: everything is served by whoever kicks.
    pool: Option<SyncSender<Job<A, R>>>,
    watch: Arc<Watch>,
    /// Requests waiting for a lock ([`crate::park`]).
    parked: Mutex<ParkedSet>,
    /// The retry thread's alarm (queues with a pool; the others are driven by their callers).
    timer: Option<Arc<Timer>>,
    /// The device's queues, for wake-ups across them.
    hub: Arc<Hub>,
}

impl<F, A, R> QueueCore<F, A, R>
where
    F: FileSystem + 'static,
    A: GuestAddressSpace + Clone + Send + 'static,
    R: Ring,
{
    /// Queue `index` with a pool of `workers` threads (and a watchdog) and room for `depth`
    /// requests waiting for them; with `workers == 0`, no thread: each [`kick`](Self::kick)
    /// serves everything on its caller's thread. `poll` is the poll window of a request queue
    /// (ignored on hiprio; [`Duration::ZERO`]: off).
    ///
    /// # Errors
    ///
    /// Spawning a thread failed (the ones already started stop with the queue).
    pub(crate) fn new(
        index: usize,
        server: Arc<Server<F>>,
        stats: Arc<Stats>,
        hub: &Arc<Hub>,
        workers: usize,
        depth: usize,
        poll: Duration,
    ) -> std::io::Result<Arc<Self>> {
        let (pool, rx) = if workers == 0 {
            (None, None)
        } else {
            let (tx, rx) = sync_channel(depth.max(1));
            (Some(tx), Some(rx))
        };
        let role = QueueRole::of_index(index);
        let core = Arc::new(QueueCore {
            index,
            role,
            server,
            stats,
            served: AtomicU64::new(0),
            control: Mutex::new(Control {
                generation: 0,
                ring: RingState::new(false),
                starved: false,
                current: None,
            }),
            epoch: AtomicU64::new(0),
            poll: if role == QueueRole::Request {
                poll
            } else {
                Duration::ZERO
            },
            pool,
            watch: Arc::new(Watch::default()),
            parked: Mutex::new(ParkedSet::with_capacity(depth)),
            timer: (workers > 0).then(|| Arc::new(Timer::default())),
            hub: Arc::clone(hub),
        });
        let weak: Weak<dyn Wake> = Arc::downgrade(&core) as Weak<dyn Wake>;
        hub.register(weak);
        let Some(rx) = rx else {
            return Ok(core);
        };
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let weak = Arc::downgrade(&core);
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("virtiofs-q{index}.{n}"))
                .spawn(move || work(&weak, &rx))?;
        }
        let weak = Arc::downgrade(&core);
        let watch = Arc::clone(&core.watch);
        thread::Builder::new()
            .name(format!("virtiofs-q{index}.watch"))
            .spawn(move || {
                watch.run(|| {
                    if let Some(core) = weak.upgrade() {
                        core.take_over();
                    }
                });
            })?;
        if let Some(timer) = &core.timer {
            let weak = Arc::downgrade(&core);
            let timer = Arc::clone(timer);
            thread::Builder::new()
                .name(format!("virtiofs-q{index}.retry"))
                .spawn(move || {
                    timer.run(|| {
                        let core = weak.upgrade()?;
                        with_serving(|chains| core.retry_parked(chains))
                    });
                })?;
        }
        Ok(core)
    }

    fn control(&self) -> MutexGuard<'_, Control<A, R>> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn parked(&self) -> MutexGuard<'_, ParkedSet> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a pending request's head (see [`crate::park`]); its retry is due after the first
    /// pause.
    fn park(&self, p: Parked) {
        let due = p.due;
        self.parked().park(p);
        if let Some(timer) = &self.timer {
            timer.arm(due);
        }
    }

    /// When a parked request is next due, if any is parked.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.parked().next_due()
    }

    /// [`retry_parked`](Self::retry_parked) with this thread's buffers.
    pub(crate) fn retry_parked_here(&self) -> Option<Instant> {
        with_serving(|chains| self.retry_parked(chains))
    }

    /// Requests parked now.
    pub(crate) fn parked_now(&self) -> usize {
        self.parked().len()
    }

    /// Serves the parked requests that are due (or woken) again, on this thread: each is
    /// granted (completed), or parked again with a longer pause, or dropped if the queue
    /// restarted since it was parked. Returns when the next one is due.
    pub(crate) fn retry_parked(&self, chains: &mut ChainBuffers) -> Option<Instant> {
        let now = Instant::now();
        loop {
            // Taken out before it is served: no other thread can serve it twice.
            let Some(p) = self.parked().take_due(now) else {
                break;
            };
            self.retry_one(p, chains);
        }
        self.next_retry()
    }

    fn retry_one(&self, p: Parked, chains: &mut ChainBuffers) {
        let current = {
            let control = self.control();
            if control.generation == p.generation {
                control.current.clone()
            } else {
                None
            }
        };
        let Some((ring, mem)) = current else {
            Stats::add(&self.stats.discarded, 1);
            return;
        };
        let guard = mem.memory();
        let m: &A::M = &guard;
        let served = self.serve_one(p.head, chains.parse(m, p.table, p.head));
        match served.done() {
            None => {
                Stats::add(&self.stats.reparked, 1);
                self.park(p.again(Instant::now()));
            }
            Some(d) => {
                let mut unsignaled = 0;
                self.complete(&ring, m, p.generation, d, &mut unsignaled, false);
            }
        }
    }

    /// Stops the queue: every request in flight is discarded when it completes, a thread still
    /// serving it stops taking heads, the queue is no longer broken, and `indirect` is the
    /// negotiated VIRTIO_RING_F_INDIRECT_DESC from now on.
    pub(crate) fn restart(&self, indirect: bool) {
        let mut control = self.control();
        control.generation = control.generation.wrapping_add(1);
        self.epoch.store(control.generation, Ordering::SeqCst);
        control.ring.reset();
        control.ring.set_indirect(indirect);
        control.starved = false;
        control.current = None;
        // Parked requests belong to the old generation: dropped, never answered.
        let dropped = self.parked().clear();
        Stats::add(&self.stats.discarded, dropped as u64);
    }

    /// The ring of the last kick, if any (the vhost-user backend stops it at a disconnect).
    #[cfg(all(feature = "vhost-user", target_os = "linux"))]
    pub(crate) fn current_ring(&self) -> Option<R> {
        self.control()
            .current
            .as_ref()
            .map(|(ring, _)| ring.clone())
    }

    /// Requests completed since the last call (for the per-connection log line).
    #[cfg(all(feature = "vhost-user", target_os = "linux"))]
    pub(crate) fn take_served(&self) -> u64 {
        self.served.swap(0, Ordering::Relaxed)
    }

    /// The driver kicked: serves the ring on this thread until it is empty, handing requests
    /// that may block (and the excess of a backlog) to the pool. See the module docs.
    pub(crate) fn kick(&self, ring: &R, mem: &A) {
        self.watch.kicked(self.pool.is_some());
        let poll = !self.poll.is_zero();
        with_serving(|chains| self.serve(ring, mem, chains, true, poll));
    }

    /// The watchdog found the serving thread inside one request for a whole tick: takes the
    /// heads waiting on the ring meanwhile and hands them all to the pool.
    fn take_over(&self) {
        let current = self.control().current.clone();
        if let Some((ring, mem)) = current {
            with_serving(|chains| self.serve(&ring, &mem, chains, false, false));
        }
    }

    /// Takes heads off the ring one at a time until it is empty (notifications re-enabled) and
    /// serves them here, except those that go to the pool (all of them unless `inline`). Each
    /// ring lock puts the previous inline completion on the used ring and takes the next head;
    /// the driver is asked whether it wants an interrupt once per [`SIGNAL_BATCH`] completions
    /// and when the ring is empty, and signalled at most that often.
    ///
    /// The backlog rule: once this thread has spent more than [`INLINE_BUDGET`] serving the
    /// current batch (the heads taken since the ring was last found empty), and more than
    /// [`HAND_OFF`] per request on average, the rest of the batch goes to the pool, in ring
    /// order. Quick requests are served inline with no hand-off, however many; slow ones (a
    /// slow host filesystem, or heads that piled up behind one) spread over the pool.
    ///
    /// With `poll` (a kick on a request queue with a poll window), an empty ring is polled
    /// before notifications are re-enabled; see the module docs and [`poll`](Self::poll).
    fn serve(&self, ring: &R, mem: &A, chains: &mut ChainBuffers, inline: bool, poll: bool) {
        let guard = mem.memory();
        let m: &A::M = &guard;
        let mut generation = None;
        let mut done: Option<Done> = None;
        let mut unsignaled = 0u32;
        let mut pass = Pass {
            inline,
            busy: Duration::ZERO,
            served: 0,
            offloading: false,
            poll,
            took: false,
        };
        loop {
            let first = generation.is_none();
            let mut put = false;
            let mut discarded = false;
            let (take, signaled) = ring.with_queue(|queue| {
                let mut control = self.control();
                let generation = *generation.get_or_insert(control.generation);
                if control.generation != generation || !queue.ready() {
                    // Restarted (or stopped) since this thread began: not ours any more.
                    discarded = done.is_some();
                    return ((Take::Stop, false), false);
                }
                if first && inline {
                    control.current = Some((ring.clone(), mem.clone()));
                }
                control.starved = false;
                if let Some(d) = &done {
                    put = true;
                    if !control.ring.is_broken(queue) {
                        match add_used(queue, m, d.head, d.completion) {
                            Ok(()) => unsignaled += 1,
                            Err(e) => {
                                control.ring.mark_broken(queue, &e);
                                let _ = queue.enable_notification(m);
                            }
                        }
                    }
                }
                let take = self.take(queue, &mut control, (ring, mem, m), chains, &mut pass);
                let signal = if unsignaled > 0
                    && (matches!(take, Take::Stop | Take::Idle(_)) || unsignaled >= SIGNAL_BATCH)
                {
                    unsignaled = 0;
                    match queue.needs_notification(m) {
                        Ok(signal) => signal,
                        Err(e) => {
                            control
                                .ring
                                .mark_broken(queue, &virtiofs_transport::Error::Queue(e));
                            let _ = queue.enable_notification(m);
                            false
                        }
                    }
                } else {
                    false
                };
                ((take, signal), signal)
            });
            if let Some(d) = done.take() {
                if put {
                    Stats::add(&self.stats.completed, d.stats.completed);
                    self.served.fetch_add(1, Ordering::Relaxed);
                } else if discarded {
                    Stats::add(&self.stats.discarded, 1);
                }
            }
            Stats::add(&self.stats.notifications, u64::from(signaled));
            match take {
                Take::Stop => return,
                Take::Idle(idle) => {
                    let Some(generation) = generation else {
                        return;
                    };
                    if self.poll(m, idle, generation) {
                        // A request came: a new batch (and, once it is drained, a new window),
                        // and for the watchdog as good as a kick.
                        self.watch.kicked(self.pool.is_some());
                        pass.offloading = false;
                        pass.busy = Duration::ZERO;
                        pass.served = 0;
                    } else {
                        // The window ended (or the queue stopped): notifications back on, and
                        // one more look at the ring under the lock.
                        pass.took = false;
                    }
                }
                Take::Pooled => Stats::add(&self.stats.pooled, 1),
                Take::Inline(head, table, request) => {
                    let started = Instant::now();
                    self.watch.inline_begins();
                    let served = self.serve_one(head, request);
                    self.watch.inline_ends();
                    pass.busy = pass.busy.saturating_add(started.elapsed());
                    pass.served = pass.served.saturating_add(1);
                    done = served.done();
                    if done.is_none() {
                        let generation = generation.unwrap_or_default();
                        Stats::add(&self.stats.parked, 1);
                        self.park(Parked::new(head, table, generation, served.nodeid, started));
                    }
                    self.wake_after(&served, chains);
                }
            }
        }
    }

    /// Polls an empty ring with no lock held: reads the avail index until the driver moves it
    /// (`true`), or the window ends or the queue is stopped (`false`). No system call: a
    /// `spin_loop` hint between reads, the clock read every [`POLL_CLOCK_EVERY`] spins.
    fn poll(&self, m: &A::M, idle: Idle, generation: u64) -> bool {
        let deadline = Instant::now() + self.poll;
        let mut spins = 0u32;
        loop {
            match m.load::<u16>(idle.avail_idx, Ordering::Acquire) {
                Ok(idx) if u16::from_le(idx) != idle.next_avail => return true,
                Ok(_) => {}
                // The ring's memory went away: leave it to the lock and `pop`.
                Err(_) => return false,
            }
            if self.epoch.load(Ordering::Acquire) != generation {
                return false;
            }
            spins = spins.wrapping_add(1);
            if spins % POLL_CLOCK_EVERY == 0 && Instant::now() >= deadline {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Under the ring lock: the next head and where it goes (see [`serve`](Self::serve)).
    fn take<'b>(
        &self,
        queue: &mut Queue,
        control: &mut Control<A, R>,
        (ring, mem, m): (&R, &A, &'b A::M),
        chains: &'b mut ChainBuffers,
        pass: &mut Pass,
    ) -> Take<'b, A::M> {
        let head = loop {
            if let Err(e) = queue.disable_notification(m) {
                control
                    .ring
                    .mark_broken(queue, &virtiofs_transport::Error::Queue(e));
                let _ = queue.enable_notification(m);
                return Take::Stop;
            }
            match control.ring.pop(queue, m) {
                Pop::Head(head) => break head,
                Pop::Broken => {
                    // Never leave VRING_USED_F_NO_NOTIFY set on a broken queue.
                    let _ = queue.enable_notification(m);
                    return Take::Stop;
                }
                Pop::Empty if pass.poll && pass.took => {
                    // Notifications stay off while this thread polls (see `poll`).
                    let Some(avail_idx) = GuestAddress(queue.avail_ring()).checked_add(2) else {
                        pass.took = false;
                        continue;
                    };
                    return Take::Idle(Idle {
                        avail_idx,
                        next_avail: queue.next_avail(),
                    });
                }
                Pop::Empty => match queue.enable_notification(m) {
                    // The driver added chains meanwhile: look again, a new batch.
                    Ok(true) => {
                        pass.offloading = false;
                        pass.busy = Duration::ZERO;
                        pass.served = 0;
                    }
                    Ok(false) => return Take::Stop,
                    Err(e) => {
                        control
                            .ring
                            .mark_broken(queue, &virtiofs_transport::Error::Queue(e));
                        return Take::Stop;
                    }
                },
            }
        };
        pass.took = true;
        let table = control.ring.table(queue);
        let Some(pool) = &self.pool else {
            return Take::Inline(head, table, chains.parse(m, table, head));
        };
        // The backlog rule, then the opcode the transport copied while walking the chain.
        pass.offloading = pass.offloading
            || (pass.busy > INLINE_BUDGET && pass.busy > HAND_OFF * pass.served.max(1));
        let backlog = !pass.inline || pass.offloading;
        if !backlog {
            let mut request = chains.parse(m, table, head);
            let blocks = self.role == QueueRole::Request
                && request
                    .as_mut()
                    .is_ok_and(|r| may_block(r.reader().request_head()));
            if !blocks {
                return Take::Inline(head, table, request);
            }
        }
        let job = Job {
            ring: ring.clone(),
            mem: mem.clone(),
            generation: control.generation,
            table,
            head,
        };
        match pool.try_send(job) {
            Ok(()) => Take::Pooled,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                // Every slot is taken: give the head back. The worker that frees a slot serves
                // the ring again; notifications stay off meanwhile.
                queue.set_next_avail(queue.next_avail().wrapping_sub(1));
                control.starved = true;
                Take::Stop
            }
        }
    }

    /// Serves one walked chain (or reports why it could not be walked).
    fn serve_one(
        &self,
        head: u16,
        request: Result<ChainRequest<'_, A::M>, virtiofs_transport::Error>,
    ) -> Served {
        let mut stats = QueueStats::default();
        let mut refused = 0u64;
        let mut nodeid = None;
        let mut opcode = None;
        let role = self.role;
        let server = &*self.server;
        let completion = match request {
            Ok(request) => serve_request_or_pend(
                request,
                &mut |reader: &mut ChainReader<'_, A::M>, writer: &mut ChainWriter<'_, A::M>| {
                    nodeid = reader.request_nodeid();
                    opcode = reader
                        .request_head()
                        .and_then(|h| Opcode::try_from(h.opcode.get()).ok());
                    let answered = match role {
                        QueueRole::Request => server.handle_message(reader, writer),
                        QueueRole::Hiprio => serve_hiprio(server, reader, writer)
                            .map(|()| fuse_server::Completion::NoReply),
                    };
                    match answered {
                        Ok(completion) => completion == fuse_server::Completion::Pending,
                        Err(e) => {
                            debug!("{role:?} queue: request not answered: {e:?}");
                            refused += 1;
                            false
                        }
                    }
                },
                &mut stats,
            ),
            Err(e) => Some(drop_malformed(head, &e, &mut stats)),
        };
        Stats::add(&self.stats.dropped, refused + stats.bad_replies);
        Stats::add(&self.stats.malformed, stats.malformed);
        Served {
            head,
            frees_locks: completion.is_some() && opcode.is_some_and(fuse_server::may_free_locks),
            completion,
            stats,
            nodeid,
        }
    }

    /// After `served` completed: wakes the parked requests of its node on every queue of the
    /// device if it may have freed a lock.
    fn wake_after(&self, served: &Served, chains: &mut ChainBuffers) {
        if let (true, Some(nodeid)) = (served.frees_locks, served.nodeid) {
            self.hub.wake(nodeid, chains);
        }
    }

    /// Serves the ring again if a head was held back because the pool was full.
    fn redispatch(&self, chains: &mut ChainBuffers) {
        let current = {
            let control = self.control();
            if !control.starved {
                return;
            }
            control.current.clone()
        };
        if let Some((ring, mem)) = current {
            self.serve(&ring, &mem, chains, true, false);
        }
    }

    /// Serves one job on a pool worker: no lock is held while the server runs. Then takes the
    /// next job (`next`: one already waiting, if any) and returns it; the driver is asked about
    /// an interrupt when there is none (or it is another ring's), or every [`SIGNAL_BATCH`]
    /// completions (`unsignaled` counts them).
    fn run(
        &self,
        job: Job<A, R>,
        chains: &mut ChainBuffers,
        unsignaled: &mut u32,
        next: impl FnOnce() -> Option<Job<A, R>>,
    ) -> Option<Job<A, R>> {
        if self.control().generation != job.generation {
            Stats::add(&self.stats.discarded, 1);
            self.redispatch(chains);
            return next();
        }
        let guard = job.mem.memory();
        let mem: &A::M = &guard;
        let served = self.serve_one(job.head, chains.parse(mem, job.table, job.head));
        let next = next();
        match served.done() {
            None => {
                Stats::add(&self.stats.parked, 1);
                self.park(Parked::new(
                    job.head,
                    job.table,
                    job.generation,
                    served.nodeid,
                    Instant::now(),
                ));
            }
            Some(d) => {
                let more = next
                    .as_ref()
                    .is_some_and(|n| n.generation == job.generation);
                self.complete(&job.ring, mem, job.generation, d, unsignaled, more);
            }
        }
        self.wake_after(&served, chains);
        self.redispatch(chains);
        next
    }

    /// Puts a completion of generation `generation` on `ring` (discarded if the queue was
    /// stopped since); asks the driver about an interrupt unless `more` completions follow and
    /// fewer than [`SIGNAL_BATCH`] are unsignaled.
    fn complete(
        &self,
        ring: &R,
        mem: &A::M,
        generation: u64,
        d: Done,
        unsignaled: &mut u32,
        more: bool,
    ) {
        let (used, signaled) = ring.with_queue(|queue| {
            let mut control = self.control();
            // A queue stopped meanwhile (GET_VRING_BASE, reset, disconnect) never sees it.
            if control.generation != generation || !queue.ready() {
                return ((false, false), false);
            }
            if control.ring.is_broken(queue) {
                return ((true, false), false);
            }
            let signal = add_used(queue, mem, d.head, d.completion).and_then(|()| {
                *unsignaled += 1;
                if more && *unsignaled < SIGNAL_BATCH {
                    return Ok(false);
                }
                *unsignaled = 0;
                queue
                    .needs_notification(mem)
                    .map_err(virtiofs_transport::Error::Queue)
            });
            match signal {
                Ok(signal) => ((true, signal), signal),
                Err(e) => {
                    control.ring.mark_broken(queue, &e);
                    let _ = queue.enable_notification(mem);
                    ((true, false), false)
                }
            }
        });
        if used {
            Stats::add(&self.stats.completed, d.stats.completed);
            Stats::add(&self.stats.notifications, u64::from(signaled));
            self.served.fetch_add(1, Ordering::Relaxed);
        } else {
            Stats::add(&self.stats.discarded, 1);
        }
    }
}

impl<F, A, R> Wake for QueueCore<F, A, R>
where
    F: FileSystem + 'static,
    A: GuestAddressSpace + Clone + Send + 'static,
    R: Ring,
{
    fn wake(&self, nodeid: u64, chains: &mut ChainBuffers) {
        if !self.parked().wake(nodeid, Instant::now()) {
            return;
        }
        match &self.timer {
            Some(timer) => timer.arm(Instant::now()),
            None => {
                self.retry_parked(chains);
            }
        }
    }
}

impl<F, A, R> std::fmt::Debug for QueueCore<F, A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueCore")
            .field("index", &self.index)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<F, A, R> Drop for QueueCore<F, A, R> {
    fn drop(&mut self) {
        self.watch.stop();
        if let Some(timer) = &self.timer {
            timer.stop();
        }
    }
}

/// A pool worker: takes jobs until the queue is gone (its channel's sender is dropped with it).
/// After each job it takes the next one without waiting if there is one, so that the
/// completions of a batch share one interrupt.
fn work<F, A, R>(core: &Weak<QueueCore<F, A, R>>, rx: &Mutex<Receiver<Job<A, R>>>)
where
    F: FileSystem + 'static,
    A: GuestAddressSpace + Clone + Send + 'static,
    R: Ring,
{
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let Some(core) = core.upgrade() else {
            return;
        };
        with_serving(|chains| {
            let mut unsignaled = 0;
            let mut job = job;
            // Another worker waiting in `recv` holds the lock: the channel is empty.
            let next = || rx.try_lock().ok().and_then(|rx| rx.try_recv().ok());
            while let Some(n) = core.run(job, chains, &mut unsignaled, next) {
                job = n;
            }
        });
    }
}

/// A hiprio message: FORGET or BATCH_FORGET go to the server (no reply); anything else is
/// dropped, never executed. The opcode is the one the transport copied when it walked the
/// chain, and the server reads that same copy ([`CheckedHead`]), so a guest that rewrites the
/// header meanwhile cannot get another operation executed here.
fn serve_hiprio<F, M>(
    server: &Server<F>,
    reader: &mut ChainReader<'_, M>,
    writer: &mut ChainWriter<'_, M>,
) -> Result<(), fuse_server::server::Error>
where
    F: FileSystem,
    M: GuestMemory,
{
    let len = reader.remaining();
    if len > HIPRIO_MAX {
        fuse_server::guest_warn!("hiprio queue: dropping a {len}-byte message");
        return Ok(());
    }
    let head = reader.request_head();
    let opcode = head.map(|h| h.opcode.get());
    match (head, opcode.and_then(|op| Opcode::try_from(op).ok())) {
        (Some(head), Some(Opcode::Forget | Opcode::BatchForget)) => {
            let mut checked = CheckedHead {
                head: zerocopy::transmute!(head),
                pos: 0,
                rest: reader,
            };
            let completion = server.handle_message(&mut checked, writer)?;
            if completion != fuse_server::Completion::NoReply {
                fuse_server::guest_warn!("hiprio queue: the server replied to a FORGET");
            }
        }
        _ => fuse_server::guest_warn!(
            "hiprio queue: dropping opcode {opcode:?}: only FORGET and BATCH_FORGET belong here"
        ),
    }
    Ok(())
}

/// A hiprio request as the server reads it: the chain's bytes, except that its first 16 come
/// from the copy the transport took when it walked the chain (the opcode checked above).
struct CheckedHead<'r, R> {
    head: [u8; 16],
    /// Bytes consumed so far.
    pos: usize,
    rest: &'r mut R,
}

impl<R: Read> Read for CheckedHead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.rest.read(buf)?;
        // The part of what was read that lies in the header: replaced by the checked copy.
        if let Some(head) = self.head.get(self.pos..) {
            let k = head.len().min(n);
            if let (Some(dst), Some(src)) = (buf.get_mut(..k), head.get(..k)) {
                dst.copy_from_slice(src);
            }
        }
        self.pos = self.pos.saturating_add(n);
        Ok(n)
    }
}

impl<R: ZeroCopyReader> ZeroCopyReader for CheckedHead<'_, R> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        // FORGETs carry no file data; the header never leaves through here.
        if self.pos < self.head.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "zero-copy read inside the request header",
            ));
        }
        let n = self.rest.read_to(fd, count, off)?;
        self.pos = self.pos.saturating_add(n);
        Ok(n)
    }
}

impl<R: Reader> Reader for CheckedHead<'_, R> {
    fn remaining(&self) -> usize {
        self.rest.remaining()
    }
}

#[cfg(test)]
mod tests {
    use fuse_server::mem::MemReader;

    use super::*;

    /// The server reads the head the opcode was checked on, whatever the buffer says now.
    #[test]
    fn the_server_reads_the_checked_head() {
        let mut now = [0xaau8; 40];
        now[4..8].copy_from_slice(&(Opcode::Unlink as u32).to_le_bytes());
        let mut checked = [0x11u8; 16];
        checked[4..8].copy_from_slice(&(Opcode::Forget as u32).to_le_bytes());
        let mut rest = MemReader::new(&now);
        let mut r = CheckedHead {
            head: checked,
            pos: 0,
            rest: &mut rest,
        };
        // In pieces that straddle the end of the head.
        let mut got = [0u8; 40];
        r.read_exact(&mut got[..10]).unwrap();
        assert_eq!(r.remaining(), 30);
        r.read_exact(&mut got[10..]).unwrap();
        assert_eq!(got[..16], checked);
        assert_eq!(got[16..], now[16..]);
        assert_eq!(r.remaining(), 0);
    }
}
