//! The in-process device a VMM embeds: config space, activation with the guest's queues, one
//! worker thread per queue, and reset.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use fuse_server::{FileSystem, NegotiationConfig, Server};
use log::{error, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddressSpace;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::config::DeviceConfig;
use crate::error::{Error, Result};
use crate::queue::{QueueRole, Stats, WorkerBuffers, serve_queue};

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
/// Lifecycle: [`new`](Self::new) → the guest reads [`read_config`](Self::read_config) →
/// [`activate`](Self::activate) with `1 + request_queues` queues (queue 0 is hiprio) → serving
/// on one thread per queue → [`reset`](Self::reset) (the driver wrote status 0) stops the
/// workers and clears all backend state → `activate` again.
pub struct VirtioFs<F: FileSystem, M: GuestAddressSpace> {
    config: DeviceConfig,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    workers: Vec<Worker>,
    _memory: std::marker::PhantomData<fn(M)>,
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
            workers: Vec::new(),
            _memory: std::marker::PhantomData,
        }
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
        warn!(
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
                !q.queue.is_valid(&*guard) || q.queue.size() > self.config.queue_size()
            }) {
                return Err(Error::InvalidQueue { index });
            }
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

    /// Device reset: stops the workers and clears all backend state (every node id but the
    /// root and every open handle), so a rebooted guest starts afresh.
    pub fn reset(&mut self) {
        self.stop_workers();
        self.server.reset();
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
        let context = WorkerContext {
            index,
            role: QueueRole::of_index(index),
            server: Arc::clone(&self.server),
            stats: Arc::clone(&self.stats),
            mem,
            resources,
            buffers: WorkerBuffers::default(),
            epoll,
            _stop: stop_consumer,
        };
        let thread = thread::Builder::new()
            .name(format!("virtiofs-q{index}"))
            .spawn(move || context.run())
            .map_err(Error::SpawnWorker)?;
        Ok(Worker { stop, thread })
    }
}

impl<F: FileSystem, M: GuestAddressSpace> Drop for VirtioFs<F, M> {
    fn drop(&mut self) {
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

struct WorkerContext<F, M> {
    index: usize,
    role: QueueRole,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    mem: M,
    resources: QueueResources,
    buffers: WorkerBuffers,
    epoll: Epoll,
    _stop: EventConsumer,
}

impl<F: FileSystem, M: GuestAddressSpace> WorkerContext<F, M> {
    fn run(mut self) {
        // The driver may have queued requests before activation.
        self.serve();
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
                        // A failed read means a spurious wake-up; serving is harmless.
                        let _ = self.resources.kick.consume();
                        self.serve();
                    }
                }
            }
        }
    }

    fn serve(&mut self) {
        let guard = self.mem.memory();
        let call = &self.resources.call;
        if let Err(e) = serve_queue(
            &self.server,
            self.role,
            &*guard,
            &mut self.resources.queue,
            &mut self.buffers,
            &self.stats,
            || call.notify(),
        ) {
            error!("queue {}: {e}; waiting for a reset", self.index);
        }
    }
}
