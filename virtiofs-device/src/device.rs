//! The in-process device a VMM embeds: config space, activation with the guest's queues, a
//! kick thread and a small pool of request workers per queue, and reset.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use fuse_server::{FileSystem, NegotiationConfig, Server, guest_warn};
use log::error;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddressSpace;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::config::DeviceConfig;
use crate::error::{Error, Result};
use crate::queue::{QueueCore, Ring, Stats};

/// VIRTIO_RING_F_INDIRECT_DESC.
const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_RING_F_EVENT_IDX.
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1.
const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// One queue's dispatch state and workers.
type LocalQueue<F, M> = Arc<QueueCore<F, M, Arc<LocalRing>>>;

/// A queue handed over at activation, shared by its kick thread and its workers.
struct LocalRing {
    queue: Mutex<Queue>,
    call: EventNotifier,
}

impl Ring for Arc<LocalRing> {
    fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> (T, bool)) -> T {
        let (value, signal) = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut queue)
        };
        if signal {
            if let Err(e) = self.call.notify() {
                guest_warn!("cannot signal the driver: {e}");
            }
        }
        value
    }
}

/// One virtqueue as the VMM hands it over at activation: the queue (addresses, size, ready,
/// EVENT_IDX set by the VMM from the negotiated features), the eventfd the driver kicks, and
/// the eventfd the device signals (the VMM routes it to the guest's interrupt).
#[derive(Debug)]
pub struct QueueResources {
    /// The queue.
    pub queue: Queue,
    /// Readable when the driver has kicked the queue.
    pub kick: EventConsumer,
    /// Written by the device when the driver needs an interrupt.
    pub call: EventNotifier,
}

struct Worker {
    stop: EventNotifier,
    thread: JoinHandle<()>,
}

/// A virtio-fs device: generic over the guest memory `M` the VMM hands over and the backend `F`.
///
/// Lifecycle: [`new`](Self::new) → the guest reads [`read_config`](Self::read_config) → the
/// VMM passes the driver's features to [`ack_features`](Self::ack_features) →
/// [`activate`](Self::activate) with `1 + request_queues` queues (queue 0 is hiprio) → serving
/// → [`reset`](Self::reset) (the driver wrote status 0) stops serving and clears all backend
/// state → `activate` again.
///
/// Each queue has a kick thread that only takes chains off the ring, and a small pool of
/// workers ([`DeviceConfig::workers_per_queue`]; one for hiprio) that serve them and complete
/// them out of order. [`reset`](Self::reset) never waits for a request: one still running is
/// discarded when it completes, never written to the ring.
pub struct VirtioFs<F: FileSystem, M: GuestAddressSpace> {
    config: DeviceConfig,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    indirect: bool,
    queues: Vec<LocalQueue<F, M>>,
    workers: Vec<Worker>,
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
            indirect: false,
            queues: Vec::new(),
            workers: Vec::new(),
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

    /// Whether the workers are running.
    pub fn is_active(&self) -> bool {
        !self.workers.is_empty()
    }

    /// Starts serving: one worker thread per queue. `queues[0]` is hiprio, `queues[1..]` the
    /// request queues the driver set up, in order (at least one; Linux 6.11+ uses at most one
    /// per vCPU, so fewer than configured is normal).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyActive`], [`Error::QueueCount`], [`Error::InvalidQueue`], or a failure to
    /// set up a worker ([`Error::WorkerEvents`], [`Error::SpawnWorker`]; the workers already
    /// started are stopped again).
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
        for (index, resources) in queues.into_iter().enumerate() {
            match self.spawn_worker(index, mem.clone(), resources) {
                Ok(worker) => self.workers.push(worker),
                Err(e) => {
                    self.stop_workers();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Device reset: stops serving the queues and clears all backend state (every node id but
    /// the root and every open handle), so a rebooted guest starts afresh. Requests still
    /// running are discarded when they complete.
    pub fn reset(&mut self) {
        self.stop_workers();
        for queue in &self.queues {
            queue.restart(false);
        }
        self.indirect = false;
        self.server.reset();
    }

    /// The queues' request workers, started at the first activation and kept until the device
    /// is dropped.
    fn start_queues(&self) -> Result<Vec<LocalQueue<F, M>>> {
        (0..self.config.num_queues())
            .map(|index| {
                let workers = if index == 0 {
                    1
                } else {
                    self.config.workers_per_queue()
                };
                QueueCore::new(
                    index,
                    Arc::clone(&self.server),
                    Arc::clone(&self.stats),
                    workers,
                    usize::from(self.config.queue_size()),
                )
                .map_err(Error::SpawnWorker)
            })
            .collect()
    }

    fn stop_workers(&mut self) {
        for worker in self.workers.drain(..) {
            if let Err(e) = worker.stop.notify() {
                error!("cannot stop a queue worker: {e}");
                continue;
            }
            if worker.thread.join().is_err() {
                error!("a queue worker panicked");
            }
        }
    }

    fn spawn_worker(&self, index: usize, mem: M, resources: QueueResources) -> Result<Worker> {
        let (stop_consumer, stop) =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
                .map_err(Error::WorkerEvents)?;
        let epoll = Epoll::new().map_err(Error::WorkerEvents)?;
        epoll
            .ctl(
                ControlOperation::Add,
                resources.kick.as_raw_fd(),
                EpollEvent::new(EventSet::IN, KICK),
            )
            .map_err(Error::WorkerEvents)?;
        epoll
            .ctl(
                ControlOperation::Add,
                stop_consumer.as_raw_fd(),
                EpollEvent::new(EventSet::IN, STOP),
            )
            .map_err(Error::WorkerEvents)?;
        let Some(core) = self.queues.get(index) else {
            return Err(Error::QueueCount {
                max_request_queues: self.config.request_queues(),
                got: index + 1,
            });
        };
        let QueueResources { queue, kick, call } = resources;
        let context = WorkerContext {
            index,
            core: Arc::clone(core),
            ring: Arc::new(LocalRing {
                queue: Mutex::new(queue),
                call,
            }),
            mem,
            kick,
            epoll,
            _stop: stop_consumer,
        };
        let thread = thread::Builder::new()
            .name(format!("virtiofs-kick{index}"))
            .spawn(move || context.run())
            .map_err(Error::SpawnWorker)?;
        Ok(Worker { stop, thread })
    }
}

impl<F: FileSystem, M: GuestAddressSpace> Drop for VirtioFs<F, M> {
    fn drop(&mut self) {
        // The kick threads never wait for a request, so joining them is prompt; the request
        // workers end once their queue is gone (after the request they may be running).
        for worker in self.workers.drain(..) {
            let _ = worker.stop.notify();
            let _ = worker.thread.join();
        }
    }
}

impl<F: FileSystem, M: GuestAddressSpace> std::fmt::Debug for VirtioFs<F, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioFs")
            .field("config", &self.config)
            .field("active_workers", &self.workers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

const KICK: u64 = 0;
const STOP: u64 = 1;

struct WorkerContext<F, M: GuestAddressSpace> {
    index: usize,
    core: LocalQueue<F, M>,
    ring: Arc<LocalRing>,
    mem: M,
    kick: EventConsumer,
    epoll: Epoll,
    _stop: EventConsumer,
}

impl<F, M> WorkerContext<F, M>
where
    F: FileSystem + 'static,
    M: GuestAddressSpace + Clone + Send + 'static,
{
    fn run(self) {
        // The driver may have queued requests before activation.
        self.core.kick(&self.ring, &self.mem);
        let mut events = [EpollEvent::default(); 2];
        loop {
            let n = match self.epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("queue {}: epoll failed, worker stops: {e}", self.index);
                    return;
                }
            };
            for event in events.iter().take(n) {
                match event.data() {
                    STOP => return,
                    _ => {
                        // A failed read means a spurious wake-up; dispatching is harmless.
                        let _ = self.kick.consume();
                        self.core.kick(&self.ring, &self.mem);
                    }
                }
            }
        }
    }
}
