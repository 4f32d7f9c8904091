//! Serving the virtqueues: the transport walks and checks each chain and the reply, the server
//! answers, and this module adds what is virtio-fs specific (the hiprio queue takes FORGET only
//! and never replies; request queues answer on the queue the request came from) and who runs
//! what.
//!
//! # The control plane never waits on a request
//!
//! A kick only *dispatches*: with the ring locked for a moment, [`QueueCore::kick`] takes the
//! available heads off the avail ring (indices checked by
//! [`RingState`](virtiofs_transport::RingState); a queue with impossible indices is broken
//! until it is reset) and puts each on the queue's bounded job channel, carrying an owned handle
//! to guest memory and to the ring. The queue's own worker threads (a small pool per queue,
//! owned by the device) take jobs, walk the chain and call the server without any lock held,
//! and then lock the ring again for a moment to put the used element and signal the driver.
//! Requests therefore complete out of order: a slow one occupies one worker while the others go
//! on, and whoever holds the vring (a vhost-user message, a kick, a disconnect) waits only for
//! those short critical sections, never for a request.
//!
//! Every job carries the queue's *generation*. Stopping a queue (vhost-user GET_VRING_BASE,
//! device reset, a frontend's disconnect, a new activation) bumps it, so a request that
//! completes afterwards is discarded and never touches the ring of a dead connection. Jobs are
//! plain values in a preallocated channel: nothing is allocated per request.
//!
//! Both the in-process device and the vhost-user backend use this machinery; they differ in
//! what a ring is ([`Ring`]) and how kicks arrive.
//!
//! # Inline serving
//!
//! A queue made with no workers (the in-process device's
//! [`DeviceConfigBuilder::inline`](crate::DeviceConfigBuilder::inline)) has the same channel,
//! but whoever calls [`QueueCore::kick`] drains it: every request the kick found is served on
//! the caller's thread, in ring order, before `kick` returns. The generation, the ring checks
//! and the used-ring step are the same code as the workers'.

use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;

use fuse_abi::Opcode;
use fuse_server::{FileSystem, Reader, Server, ZeroCopyReader};
use log::debug;
use virtio_queue::{Queue, QueueT};
use virtiofs_transport::{
    ChainBuffers, ChainReader, ChainWriter, DescTable, Pop, QueueStats, RingState, add_used,
    serve_chain,
};
use vm_memory::{GuestAddressSpace, GuestMemory};

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
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A worker's reusable state: the transport's chain buffers.
#[derive(Debug, Default)]
pub(crate) struct WorkerBuffers {
    chains: ChainBuffers,
}

/// One virtqueue's ring as the device shares it with whoever configures it: lock it briefly
/// to touch the queue, and signal the driver.
pub(crate) trait Ring: Clone + Send + 'static {
    /// Runs `f` on the queue with the ring locked; signals the driver afterwards when `f`
    /// returns `true` as its second value.
    fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> (T, bool)) -> T;
}

/// One request taken off a ring, on its way to a worker.
struct Job<A, R> {
    ring: R,
    mem: A,
    generation: u64,
    table: DescTable,
    head: u16,
}

/// What the ring lock and the workers share about a queue.
struct Control<A, R> {
    generation: u64,
    ring: RingState,
    /// The channel was full when heads were still available: the worker that frees a slot
    /// dispatches again.
    starved: bool,
    /// The ring and memory of the last kick, for that re-dispatch.
    current: Option<(R, A)>,
}

/// The receiving end of an inline queue's channel and the buffers its caller serves with.
struct Inline<A, R> {
    jobs: Receiver<Job<A, R>>,
    buffers: WorkerBuffers,
}

/// One queue: its role, its control state and the sending end of its workers' channel.
pub(crate) struct QueueCore<F, A, R> {
    index: usize,
    role: QueueRole,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    served: AtomicU64,
    control: Mutex<Control<A, R>>,
    jobs: SyncSender<Job<A, R>>,
    /// `Some` for a queue without workers: [`kick`](Self::kick) serves what it dispatched.
    inline: Option<Mutex<Inline<A, R>>>,
}

impl<F, A, R> QueueCore<F, A, R>
where
    F: FileSystem + 'static,
    A: GuestAddressSpace + Clone + Send + 'static,
    R: Ring,
{
    /// Queue `index` with `workers` threads and room for `depth` requests waiting for them;
    /// with `workers == 0`, no thread: each [`kick`](Self::kick) serves on its caller's thread.
    ///
    /// # Errors
    ///
    /// Spawning a worker failed (the ones already started stop with the queue).
    pub(crate) fn new(
        index: usize,
        server: Arc<Server<F>>,
        stats: Arc<Stats>,
        workers: usize,
        depth: usize,
    ) -> std::io::Result<Arc<Self>> {
        let (jobs, rx) = sync_channel(depth.max(1));
        // No workers: the caller serves on its own thread (inline), from the same channel.
        let (inline, rx) = if workers == 0 {
            let inline = Inline {
                jobs: rx,
                buffers: WorkerBuffers::default(),
            };
            (Some(Mutex::new(inline)), None)
        } else {
            (None, Some(rx))
        };
        let core = Arc::new(QueueCore {
            index,
            role: QueueRole::of_index(index),
            server,
            stats,
            served: AtomicU64::new(0),
            control: Mutex::new(Control {
                generation: 0,
                ring: RingState::new(false),
                starved: false,
                current: None,
            }),
            jobs,
            inline,
        });
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
        Ok(core)
    }

    fn control(&self) -> MutexGuard<'_, Control<A, R>> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the queue: every request in flight is discarded when it completes, the queue is no
    /// longer broken, and `indirect` is the negotiated VIRTIO_RING_F_INDIRECT_DESC from now on.
    pub(crate) fn restart(&self, indirect: bool) {
        let mut control = self.control();
        control.generation = control.generation.wrapping_add(1);
        control.ring.reset();
        control.ring.set_indirect(indirect);
        control.starved = false;
        control.current = None;
    }

    /// Requests completed since the last call (for the per-connection log line).
    #[cfg(all(feature = "vhost-user", target_os = "linux"))]
    pub(crate) fn take_served(&self) -> u64 {
        self.served.swap(0, Ordering::Relaxed)
    }

    /// The driver kicked: hands every available chain to the workers, holding the ring only
    /// while taking heads off it. A queue without workers serves them before returning.
    pub(crate) fn kick(&self, ring: &R, mem: &A) {
        self.take_available(ring, mem);
        self.serve_inline();
    }

    /// On a queue without workers: serves every dispatched request on this thread, including
    /// those a full channel held back (each `run` dispatches them again). One caller at a time;
    /// another waits for it and then finds the channel empty.
    fn serve_inline(&self) {
        let Some(inline) = &self.inline else {
            return;
        };
        let mut inline = inline.lock().unwrap_or_else(PoisonError::into_inner);
        let Inline { jobs, buffers } = &mut *inline;
        while let Ok(job) = jobs.try_recv() {
            self.run(job, buffers);
        }
    }

    /// Takes every available head off the ring onto the channel.
    fn take_available(&self, ring: &R, mem: &A) {
        ring.with_queue(|queue| {
            // A queue the device stopped (reset) is not polled, whoever still holds it.
            if !queue.ready() {
                return ((), false);
            }
            let mut control = self.control();
            control.current = Some((ring.clone(), mem.clone()));
            control.starved = false;
            let guard = mem.memory();
            self.dispatch(queue, &mut control, ring, mem, &*guard);
            ((), false)
        });
    }

    fn dispatch(
        &self,
        queue: &mut Queue,
        control: &mut Control<A, R>,
        ring: &R,
        mem: &A,
        guard: &A::M,
    ) {
        loop {
            if let Err(e) = queue.disable_notification(guard) {
                control
                    .ring
                    .mark_broken(queue, &virtiofs_transport::Error::Queue(e));
                return;
            }
            loop {
                let head = match control.ring.pop(queue, guard) {
                    Pop::Head(head) => head,
                    Pop::Empty => break,
                    Pop::Broken => {
                        // Never leave VRING_USED_F_NO_NOTIFY set on a broken queue.
                        let _ = queue.enable_notification(guard);
                        return;
                    }
                };
                let job = Job {
                    ring: ring.clone(),
                    mem: mem.clone(),
                    generation: control.generation,
                    table: control.ring.table(queue),
                    head,
                };
                match self.jobs.try_send(job) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        // Every slot is taken: give the head back. The worker that frees a
                        // slot dispatches again; notifications stay off meanwhile.
                        queue.set_next_avail(queue.next_avail().wrapping_sub(1));
                        control.starved = true;
                        return;
                    }
                }
            }
            match queue.enable_notification(guard) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    control
                        .ring
                        .mark_broken(queue, &virtiofs_transport::Error::Queue(e));
                    return;
                }
            }
        }
    }

    /// Dispatches again if a kick found the channel full.
    fn redispatch(&self) {
        let current = {
            let control = self.control();
            if !control.starved {
                return;
            }
            control.current.clone()
        };
        if let Some((ring, mem)) = current {
            // Not `kick`: an inline queue is being drained by the caller of this `run`.
            self.take_available(&ring, &mem);
        }
    }

    /// Serves one job on a worker thread: no lock is held while the server runs.
    fn run(&self, job: Job<A, R>, buffers: &mut WorkerBuffers) {
        if self.control().generation != job.generation {
            Stats::add(&self.stats.discarded, 1);
            self.redispatch();
            return;
        }
        let guard = job.mem.memory();
        let mem: &A::M = &guard;
        let mut stats = QueueStats::default();
        let mut refused = 0u64;
        let WorkerBuffers { chains } = buffers;
        let role = self.role;
        let server = &*self.server;
        let completion = serve_chain(
            mem,
            job.table,
            job.head,
            chains,
            &mut |reader: &mut ChainReader<'_, A::M>, writer: &mut ChainWriter<'_, A::M>| {
                let answered = match role {
                    QueueRole::Request => server.handle_message(reader, writer).map(|_| ()),
                    QueueRole::Hiprio => serve_hiprio(server, reader, writer),
                };
                if let Err(e) = answered {
                    debug!("{role:?} queue: request not answered: {e:?}");
                    refused += 1;
                }
            },
            &mut stats,
        );
        Stats::add(&self.stats.dropped, refused + stats.bad_replies);
        Stats::add(&self.stats.malformed, stats.malformed);
        let (used, signaled) = job.ring.with_queue(|queue| {
            let mut control = self.control();
            // A queue stopped meanwhile (GET_VRING_BASE, reset, disconnect) never sees it.
            if control.generation != job.generation || !queue.ready() {
                return ((false, false), false);
            }
            if control.ring.is_broken(queue) {
                return ((true, false), false);
            }
            let signal = add_used(queue, mem, job.head, completion).and_then(|()| {
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
            Stats::add(&self.stats.completed, stats.completed);
            Stats::add(&self.stats.notifications, u64::from(signaled));
            self.served.fetch_add(1, Ordering::Relaxed);
        } else {
            Stats::add(&self.stats.discarded, 1);
        }
        self.redispatch();
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

/// A worker: takes jobs until the queue is gone (its channel's sender is dropped with it).
fn work<F, A, R>(core: &Weak<QueueCore<F, A, R>>, rx: &Mutex<Receiver<Job<A, R>>>)
where
    F: FileSystem + 'static,
    A: GuestAddressSpace + Clone + Send + 'static,
    R: Ring,
{
    let mut buffers = WorkerBuffers::default();
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
        core.run(job, &mut buffers);
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
