//! The in-process device a VMM embeds: config space, activation with the guest's queues, the
//! VMM-driven entry point ([`VirtioFs::process_queue`], which serves the queue on the caller's
//! thread), a small pool of workers per queue for requests that may block (none when inline),
//! optional kick threads (Linux), and reset.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use fuse_server::{FileSystem, NegotiationConfig, Server, guest_warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddressSpace;
use vmm_sys_util::event::EventNotifier;

use crate::config::DeviceConfig;
use crate::error::{Error, Result};
use crate::park::Hub;
use crate::queue::{QueueCore, Ring, Stats};

/// VIRTIO_RING_F_INDIRECT_DESC.
const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_RING_F_EVENT_IDX.
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1.
const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// How the device interrupts the guest: the VMM implements it (an irqfd or eventfd write, an
/// MSI-X or GIC injection through its hypervisor API, an interrupt status bit and a wake-up of
/// its vCPU loop).
///
/// The device calls [`signal`](Self::signal) after it put used elements on a queue and the
/// driver asked to be told (VRING_AVAIL_F_NO_INTERRUPT and EVENT_IDX are already taken into
/// account), once for the completions of a batch. It is called from whichever thread completed
/// the requests: the thread inside [`VirtioFs::process_queue`] (or a kick thread), one of the
/// queue's pool workers, or its watchdog. It must not block for long and must not call back
/// into the device.
///
/// [`EventNotifier`] implements it (an eventfd on Linux, a pipe elsewhere), and so does any
/// `Fn(usize) -> io::Result<()> + Send + Sync` closure.
pub trait Interrupt: Send + Sync {
    /// Interrupts the driver for virtqueue `queue` (0 is hiprio).
    ///
    /// # Errors
    ///
    /// Whatever stopped the interrupt; the device logs it (rate-limited) and goes on.
    fn signal(&self, queue: usize) -> io::Result<()>;
}

impl Interrupt for EventNotifier {
    fn signal(&self, _queue: usize) -> io::Result<()> {
        self.notify()
    }
}

impl<T: Fn(usize) -> io::Result<()> + Send + Sync> Interrupt for T {
    fn signal(&self, queue: usize) -> io::Result<()> {
        self(queue)
    }
}

/// One queue's dispatch state and workers.
type LocalQueue<F, M> = Arc<QueueCore<F, M, Arc<LocalRing>>>;

/// A queue handed over at activation, shared by whoever processes it and its workers.
struct LocalRing {
    queue: Mutex<Queue>,
    index: usize,
    interrupt: Arc<dyn Interrupt>,
}

impl LocalRing {
    /// Stops the ring for good: a kick through a handle kept past a reset takes nothing off it,
    /// and a request completing afterwards never touches it.
    fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_ready(false);
    }
}

impl Ring for Arc<LocalRing> {
    fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> (T, bool)) -> T {
        let (value, signal) = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut queue)
        };
        if signal {
            if let Err(e) = self.interrupt.signal(self.index) {
                guest_warn!("cannot interrupt the driver for queue {}: {e}", self.index);
            }
        }
        value
    }
}

/// One virtqueue as the VMM hands it over at activation: the queue (addresses, size, ready,
/// EVENT_IDX set by the VMM from the negotiated features) and how the device interrupts the
/// driver for it.
pub struct QueueResources {
    /// The queue.
    pub queue: Queue,
    /// Called when the driver needs an interrupt for this queue.
    pub interrupt: Arc<dyn Interrupt>,
}

impl QueueResources {
    /// `queue`, interrupted through `interrupt` (e.g. the call [`EventNotifier`] of the queue).
    pub fn new(queue: Queue, interrupt: impl Interrupt + 'static) -> QueueResources {
        QueueResources {
            queue,
            interrupt: Arc::new(interrupt),
        }
    }
}

impl std::fmt::Debug for QueueResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueResources")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// One active queue, as a kick needs it: what [`VirtioFs::process_queue`] calls, and what a VMM
/// that processes queues on threads of its own keeps (it is `Clone`, `Send` and `Sync`).
///
/// A handle kept past [`VirtioFs::reset`] (or past the device) is inert: its queue was stopped,
/// and [`process`](Self::process) takes nothing off it.
pub struct QueueHandle<F: FileSystem, M: GuestAddressSpace> {
    core: LocalQueue<F, M>,
    ring: Arc<LocalRing>,
    mem: M,
}

impl<F, M> QueueHandle<F, M>
where
    F: FileSystem + 'static,
    M: GuestAddressSpace + Clone + Send + 'static,
{
    /// The driver kicked this queue (or the VMM polls it): takes every available chain off the
    /// ring, with every index checked, serves it on this thread and returns when the ring is
    /// empty. Requests that may block (FSYNC, FLUSH, ...) and the excess of a burst go
    /// to the queue's pool instead, which completes them out of order; the completions of a
    /// batch share one interrupt. Inline
    /// ([`DeviceConfigBuilder::inline`](crate::DeviceConfigBuilder::inline)) there is no pool:
    /// every request is served here. A queue whose indices are impossible is broken (logged
    /// once) and costs nothing until it is reset.
    pub fn process(&self) {
        self.core.kick(&self.ring, &self.mem);
    }

    /// When a parked request of this queue (a SETLKW waiting for a lock) is next due to be
    /// tried again, if any is parked; see [`VirtioFs::next_retry`].
    pub fn next_retry(&self) -> Option<Instant> {
        self.core.next_retry()
    }

    /// Tries this queue's parked requests that are due, on this thread; see
    /// [`VirtioFs::retry_parked`]. Returns when the next one is due.
    pub fn retry_parked(&self) -> Option<Instant> {
        self.core.retry_parked_here()
    }

    /// The queue's index (0 is hiprio).
    pub fn index(&self) -> usize {
        self.ring.index
    }
}

impl<F: FileSystem, M: GuestAddressSpace + Clone> Clone for QueueHandle<F, M> {
    fn clone(&self) -> Self {
        QueueHandle {
            core: Arc::clone(&self.core),
            ring: Arc::clone(&self.ring),
            mem: self.mem.clone(),
        }
    }
}

impl<F: FileSystem, M: GuestAddressSpace> std::fmt::Debug for QueueHandle<F, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle")
            .field("index", &self.ring.index)
            .finish_non_exhaustive()
    }
}

/// A virtio-fs device: generic over the guest memory `M` the VMM hands over and the backend `F`.
///
/// Lifecycle: [`new`](Self::new) → the guest reads [`read_config`](Self::read_config) → the
/// VMM passes the driver's features to [`ack_features`](Self::ack_features) →
/// [`activate`](Self::activate) with `1 + request_queues` queues (queue 0 is hiprio) → the VMM
/// calls [`process_queue`](Self::process_queue) whenever the driver kicks a queue (or, on
/// Linux, lets [`spawn_kick_threads`](Self::spawn_kick_threads) wait for the kick eventfds and
/// call it) → [`reset`](Self::reset) (the driver wrote status 0) stops serving and clears all
/// backend state → `activate` again.
///
/// The device owns no event loop. A kick serves the queue on the kicking thread; each queue's
/// small pool of workers ([`DeviceConfig::workers_per_queue`]; one for hiprio) takes the
/// requests that may block and the excess of a burst, and a watchdog hands the ring to the pool
/// while the kicking thread is stuck in one request; requests complete out of order,
/// interrupting the driver through the queue's [`Interrupt`]. With
/// [`DeviceConfigBuilder::inline`](crate::DeviceConfigBuilder::inline) there is no pool:
/// `process_queue` serves everything on the caller's thread. [`reset`](Self::reset) never waits
/// for a request: one still running is discarded when it completes, never written to the ring.
pub struct VirtioFs<F: FileSystem, M: GuestAddressSpace> {
    config: DeviceConfig,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    hub: Arc<Hub>,
    indirect: bool,
    queues: Vec<LocalQueue<F, M>>,
    active: Vec<QueueHandle<F, M>>,
    #[cfg(target_os = "linux")]
    kick_threads: Vec<crate::kick::KickThread>,
}

impl<F, M> VirtioFs<F, M>
where
    F: FileSystem + 'static,
    M: GuestAddressSpace + Clone + Send + 'static,
{
    /// A device serving `fs` with `config`; `negotiation` is the operator's FUSE_INIT policy
    /// (it can only remove what the backend declares and virtio-fs allows).
    pub fn new(config: DeviceConfig, fs: F, negotiation: NegotiationConfig) -> VirtioFs<F, M> {
        let server = Server::new(fs, config.server_config(negotiation));
        VirtioFs {
            config,
            server: Arc::new(server),
            stats: Arc::new(Stats::default()),
            hub: Arc::new(Hub::default()),
            indirect: false,
            queues: Vec::new(),
            active: Vec::new(),
            #[cfg(target_os = "linux")]
            kick_threads: Vec::new(),
        }
    }

    /// The device features to offer the driver: VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC
    /// and VIRTIO_RING_F_EVENT_IDX.
    pub fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX
    }

    /// The features the driver acked (call before [`activate`](Self::activate)). Without
    /// VIRTIO_RING_F_INDIRECT_DESC an indirect descriptor makes its chain malformed; EVENT_IDX
    /// is the VMM's to set on each queue.
    pub fn ack_features(&mut self, features: u64) {
        self.indirect = features & VIRTIO_RING_F_INDIRECT_DESC != 0;
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Reads the config space at `offset` into `data`; bytes beyond its end read as 0.
    pub fn read_config(&self, offset: u64, data: &mut [u8]) {
        let bytes = usize::try_from(offset)
            .map(|offset| self.config.read_config(offset, data.len()))
            .unwrap_or_default();
        data.fill(0);
        for (dst, src) in data.iter_mut().zip(bytes) {
            *dst = src;
        }
    }

    /// The virtio-fs config space is read-only; writes are ignored (and logged).
    pub fn write_config(&self, offset: u64, data: &[u8]) {
        guest_warn!(
            "ignoring a write of {} bytes to the read-only config space at {offset}",
            data.len()
        );
    }

    /// The server (for its negotiated state and counters).
    pub fn server(&self) -> &Server<F> {
        &self.server
    }

    /// The device's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the device is active (between [`activate`](Self::activate) and
    /// [`reset`](Self::reset)).
    pub fn is_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// Starts serving. `queues[0]` is hiprio, `queues[1..]` the request queues the driver set
    /// up, in order (at least one; Linux 6.11+ uses at most one per vCPU, so fewer than
    /// configured is normal). Nothing is taken off a ring until the VMM calls
    /// [`process_queue`](Self::process_queue) (call it once per queue right away if the driver
    /// may have queued requests before activation) or starts the kick threads.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyActive`], [`Error::QueueCount`], [`Error::InvalidQueue`], or a failure to
    /// start the request workers at the first activation ([`Error::SpawnWorker`]).
    pub fn activate(&mut self, mem: M, queues: Vec<QueueResources>) -> Result<()> {
        if self.is_active() {
            return Err(Error::AlreadyActive);
        }
        // Linux 6.11+ sets up only as many request queues as it has CPUs.
        if queues.len() < 2 || queues.len() > self.config.num_queues() {
            return Err(Error::QueueCount {
                max_request_queues: self.config.request_queues(),
                got: queues.len(),
            });
        }
        {
            let guard = mem.memory();
            if let Some(index) = queues.iter().position(|q| {
                !q.queue.is_valid(&*guard)
                    || !q.queue.size().is_power_of_two()
                    || q.queue.size() > self.config.queue_size()
            }) {
                return Err(Error::InvalidQueue { index });
            }
        }
        if self.queues.is_empty() {
            self.queues = self.start_queues()?;
        }
        for queue in &self.queues {
            queue.restart(self.indirect);
        }
        self.active = self
            .queues
            .iter()
            .zip(queues)
            .enumerate()
            .map(|(index, (core, resources))| QueueHandle {
                core: Arc::clone(core),
                ring: Arc::new(LocalRing {
                    queue: Mutex::new(resources.queue),
                    index,
                    interrupt: resources.interrupt,
                }),
                mem: mem.clone(),
            })
            .collect();
        Ok(())
    }

    /// The VMM-driven entry point: the driver kicked queue `index` (0 is hiprio), or the VMM
    /// polls it. Takes every available chain off the ring and serves it on this thread (those
    /// that may block go to the queue's pool), returning when the ring is empty; see
    /// [`QueueHandle::process`]. Call it from the VMM's event loop on every kick; calls for
    /// different queues, or for the same queue from several threads, may run concurrently.
    ///
    /// # Errors
    ///
    /// [`Error::QueueNotActive`]: the device is not active, or `index` was not handed over at
    /// activation. A guest's malformed request or impossible ring is never an error here.
    pub fn process_queue(&self, index: usize) -> Result<()> {
        let handle = self
            .active
            .get(index)
            .ok_or(Error::QueueNotActive { index })?;
        handle.process();
        Ok(())
    }

    /// When a parked request is next due to be tried again, if any is parked.
    ///
    /// A SETLKW whose lock is held is *parked*: the device keeps its chain (nothing goes on
    /// the used ring) and tries it again when a request that may free a lock completes on any
    /// queue (at once, on the thread that served that request), and on a backoff timer (1 ms
    /// doubling to 200 ms per request) for locks held outside the guest. A device with pools
    /// has a retry thread per queue for the timer, and the kick threads of
    /// [`spawn_kick_threads`](Self::spawn_kick_threads) wait no longer than this; a VMM that
    /// calls [`process_queue`](Self::process_queue) itself on an inline device
    /// ([`DeviceConfigBuilder::inline`](crate::DeviceConfigBuilder::inline)) arms a timer in
    /// its event loop for this instant and calls [`retry_parked`](Self::retry_parked) when it
    /// fires (ask again after every `process_queue` and `retry_parked`). `None` when nothing
    /// is parked, or the device is not active.
    pub fn next_retry(&self) -> Option<Instant> {
        self.active.iter().filter_map(QueueHandle::next_retry).min()
    }

    /// Tries the parked requests that are due, on this thread (see
    /// [`next_retry`](Self::next_retry)); each is granted and completed, or parked again with a
    /// longer pause. Returns when the next one is due. Harmless at any time, and from any
    /// thread.
    pub fn retry_parked(&self) -> Option<Instant> {
        self.active
            .iter()
            .filter_map(QueueHandle::retry_parked)
            .min()
    }

    /// Requests parked now (SETLKW waiting for a lock), over all queues.
    pub fn parked(&self) -> usize {
        self.queues.iter().map(|q| q.parked_now()).sum()
    }

    /// A handle on active queue `index`, for a VMM that processes queues on threads of its own
    /// (the handle's [`process`](QueueHandle::process) is what
    /// [`process_queue`](Self::process_queue) calls); `None` if the queue is not active.
    pub fn queue_handle(&self, index: usize) -> Option<QueueHandle<F, M>> {
        self.active.get(index).cloned()
    }

    /// Linux convenience on top of [`process_queue`](Self::process_queue): one thread per
    /// active queue that waits (epoll) for the driver's kicks on `kicks[i]`, the eventfd of
    /// queue `i`, and processes the queue on each, and once right away (the driver may have
    /// queued requests before activation). The threads stop at [`reset`](Self::reset) and when
    /// the device is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::QueueNotActive`] if the device is not active, [`Error::QueueCount`] if `kicks`
    /// does not have one eventfd per active queue, [`Error::AlreadyActive`] if the threads are
    /// running, [`Error::WorkerEvents`] or [`Error::SpawnWorker`] (the threads already started
    /// are stopped again).
    #[cfg(target_os = "linux")]
    #[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
    pub fn spawn_kick_threads(
        &mut self,
        kicks: Vec<vmm_sys_util::event::EventConsumer>,
    ) -> Result<()>
    where
        M: Sync,
    {
        if !self.is_active() {
            return Err(Error::QueueNotActive { index: 0 });
        }
        if !self.kick_threads.is_empty() {
            return Err(Error::AlreadyActive);
        }
        if kicks.len() != self.active.len() {
            return Err(Error::QueueCount {
                max_request_queues: self.config.request_queues(),
                got: kicks.len(),
            });
        }
        for (handle, kick) in self.active.iter().zip(kicks) {
            match crate::kick::KickThread::spawn(handle.clone(), kick) {
                Ok(thread) => self.kick_threads.push(thread),
                Err(e) => {
                    self.stop_kick_threads();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Device reset: stops serving the queues and clears all backend state (every node id but
    /// the root and every open handle), so a rebooted guest starts afresh. Requests still
    /// running are discarded when they complete; [`QueueHandle`]s kept by the VMM become inert.
    pub fn reset(&mut self) {
        // Rings first: a kick thread inside a request stops taking heads when it returns.
        for handle in self.active.drain(..) {
            handle.ring.stop();
        }
        for queue in &self.queues {
            queue.restart(false);
        }
        self.stop_kick_threads();
        self.indirect = false;
        self.server.reset();
    }

    /// The queues' pools and watchdogs (none when inline), started at the first activation and
    /// kept until the device is dropped.
    fn start_queues(&self) -> Result<Vec<LocalQueue<F, M>>> {
        (0..self.config.num_queues())
            .map(|index| {
                let workers = if self.config.is_inline() {
                    0
                } else if index == 0 {
                    1
                } else {
                    self.config.workers_per_queue()
                };
                QueueCore::new(
                    index,
                    Arc::clone(&self.server),
                    Arc::clone(&self.stats),
                    &self.hub,
                    workers,
                    usize::from(self.config.queue_size()),
                    self.config.poll(),
                )
                .map_err(Error::SpawnWorker)
            })
            .collect()
    }

    fn stop_kick_threads(&mut self) {
        #[cfg(target_os = "linux")]
        crate::kick::KickThread::stop_all(self.kick_threads.drain(..));
    }
}

impl<F: FileSystem, M: GuestAddressSpace> Drop for VirtioFs<F, M> {
    fn drop(&mut self) {
        // Rings first, then the kick threads (briefly waited for: one inside a request ends
        // after it); the pool workers end once their queue is gone (after the request they
        // may be running).
        for handle in self.active.drain(..) {
            handle.ring.stop();
        }
        #[cfg(target_os = "linux")]
        crate::kick::KickThread::stop_all(self.kick_threads.drain(..));
    }
}

impl<F: FileSystem, M: GuestAddressSpace> std::fmt::Debug for VirtioFs<F, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioFs")
            .field("config", &self.config)
            .field("active_queues", &self.active.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
