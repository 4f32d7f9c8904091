//! The vhost-user backend: QEMU's `vhost-user-fs-pci` (and Cloud Hypervisor, crosvm) drive the
//! device over a Unix socket while the rings live in shared guest memory.
//!
//! [`VhostUserFs`] implements `vhost_user_backend::VhostUserBackend`: vhost-user-backend's epoll
//! thread per queue serves the queue itself, and hands requests that may block (and the excess
//! of a burst) to the backend's own workers (a pool per queue, kept across connections); the
//! vhost-user control thread never waits for a request. [`serve`] accepts frontends one after
//! the other on a listener, so the daemon outlives a frontend's disconnect, even while a
//! request of the old one is stuck (on a worker or on an epoll thread: the old connection's
//! rings are stopped and its threads left to end after it).
//!
//! With a poll window (`--poll-us`, [`DeviceConfig::poll`]) the epoll thread of a request
//! queue polls the drained ring before it goes back to `epoll_wait`. That thread also watches
//! the queue's exit event, which it then reads up to one window late: the window is bounded
//! by [`MAX_POLL_US`](crate::MAX_POLL_US) (1 ms), and a disconnect or GET_VRING_BASE ends it at
//! once (the queue's generation changes), so neither waits for a poller.
//!
//! What the frontend supplies is checked: a memory table whose regions run past the end of their
//! backing file is refused (SET_MEM_TABLE and ADD_MEM_REG fail and the connection ends), a
//! SET_VRING_NUM that is not a power of two leaves the queue unserved (see [`Vring`]), and
//! indirect descriptors are taken only when VIRTIO_RING_F_INDIRECT_DESC was acked.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fuse_server::{FileSystem, NegotiationConfig, Server, guest_warn};
use log::{error, info, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Error as VhostUserError, Listener};
use vhost_user_backend::{
    VhostUserBackend, VhostUserDaemon, VringMutex, VringStateGuard, VringStateMutGuard, VringT,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{
    GuestAddressSpace, GuestMemoryAtomic, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::config::DeviceConfig;
use crate::queue::{QueueCore, Ring, Stats};

/// The guest memory a vhost-user frontend shares (no dirty-page bitmap).
pub type GuestMemory = GuestMemoryAtomic<GuestMemoryMmap<()>>;
/// The vring type the backend uses: vhost-user-backend's [`VringMutex`], plus the size the
/// frontend asked for when it is not one a split ring can have.
///
/// vhost-user-backend 0.24 validates SET_VRING_NUM only against `1..=max_queue_size`, gives
/// the backend no say, and acks it; virtio-queue then ignores a size that is not a power of
/// two (logging it) and keeps the previous one, so the device and the driver would disagree on
/// the ring's layout. This wrapper records such a size, and a queue with one is never served
/// (each kick is refused with a rate-limited warning) until the frontend sets a valid size.
#[derive(Clone)]
pub struct Vring {
    inner: VringMutex<GuestMemory>,
    refused_size: Arc<AtomicU16>,
}

impl std::fmt::Debug for Vring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vring")
            .field("refused_size", &self.refused_size())
            .finish_non_exhaustive()
    }
}

impl Vring {
    /// The invalid size the frontend last set (0: none, the queue's size is valid).
    pub fn refused_size(&self) -> u16 {
        self.refused_size.load(Ordering::Relaxed)
    }
}

impl<'a> VringStateGuard<'a, GuestMemory> for Vring {
    type G = <VringMutex<GuestMemory> as VringStateGuard<'a, GuestMemory>>::G;
}

impl<'a> VringStateMutGuard<'a, GuestMemory> for Vring {
    type G = <VringMutex<GuestMemory> as VringStateMutGuard<'a, GuestMemory>>::G;
}

impl VringT<GuestMemory> for Vring {
    fn new(mem: GuestMemory, max_queue_size: u16) -> Result<Self, virtio_queue::Error> {
        Ok(Vring {
            inner: VringMutex::new(mem, max_queue_size)?,
            refused_size: Arc::new(AtomicU16::new(0)),
        })
    }

    fn get_ref(&self) -> <Self as VringStateGuard<'_, GuestMemory>>::G {
        self.inner.get_ref()
    }

    fn get_mut(&self) -> <Self as VringStateMutGuard<'_, GuestMemory>>::G {
        self.inner.get_mut()
    }

    fn add_used(&self, desc_index: u16, len: u32) -> Result<(), virtio_queue::Error> {
        self.inner.add_used(desc_index, len)
    }

    fn signal_used_queue(&self) -> io::Result<()> {
        self.inner.signal_used_queue()
    }

    fn enable_notification(&self) -> Result<bool, virtio_queue::Error> {
        self.inner.enable_notification()
    }

    fn disable_notification(&self) -> Result<(), virtio_queue::Error> {
        self.inner.disable_notification()
    }

    fn needs_notification(&self) -> Result<bool, virtio_queue::Error> {
        self.inner.needs_notification()
    }

    fn set_enabled(&self, enabled: bool) {
        self.inner.set_enabled(enabled);
    }

    fn set_queue_info(
        &self,
        desc_table: u64,
        avail_ring: u64,
        used_ring: u64,
    ) -> Result<(), virtio_queue::Error> {
        self.inner.set_queue_info(desc_table, avail_ring, used_ring)
    }

    fn queue_next_avail(&self) -> u16 {
        self.inner.queue_next_avail()
    }

    fn set_queue_next_avail(&self, base: u16) {
        self.inner.set_queue_next_avail(base);
    }

    fn set_queue_next_used(&self, idx: u16) {
        self.inner.set_queue_next_used(idx);
    }

    fn queue_used_idx(&self) -> Result<u16, virtio_queue::Error> {
        self.inner.queue_used_idx()
    }

    fn set_queue_size(&self, num: u16) {
        if num.is_power_of_two() {
            self.refused_size.store(0, Ordering::Relaxed);
            self.inner.set_queue_size(num);
        } else {
            guest_warn!("SET_VRING_NUM {num} is not a power of two: the queue is not served");
            self.refused_size.store(num, Ordering::Relaxed);
        }
    }

    fn set_queue_event_idx(&self, enabled: bool) {
        self.inner.set_queue_event_idx(enabled);
    }

    fn set_queue_ready(&self, ready: bool) {
        self.inner.set_queue_ready(ready);
    }

    fn set_kick(&self, file: Option<File>) {
        self.inner.set_kick(file);
    }

    fn read_kick(&self) -> io::Result<bool> {
        self.inner.read_kick()
    }

    fn set_call(&self, file: Option<File>) {
        self.inner.set_call(file);
    }

    fn set_err(&self, file: Option<File>) {
        self.inner.set_err(file);
    }
}

/// `info!` for a line a frontend can repeat at will (connecting, resetting), under the shared
/// rate-limit policy of `fuse_server::limits` (one limit per call site, as `guest_warn!`).
macro_rules! frontend_info {
    ($($arg:tt)+) => {{
        static LIMIT: fuse_server::limits::RateLimit = fuse_server::limits::RateLimit::new();
        if LIMIT.admit().is_some() {
            info!($($arg)+);
        }
    }};
}

/// A checked snapshot of the frontend's memory table, owned by the requests that use it.
type Snapshot = Arc<GuestMemoryMmap<()>>;

/// How long a disconnect waits for the old connection's epoll threads.
const DISCONNECT_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// VIRTIO_RING_F_INDIRECT_DESC.
const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_RING_F_EVENT_IDX.
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1.
const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The vhost-user machinery could not be set up for a new frontend.
    #[error("cannot set up the vhost-user daemon: {0}")]
    Daemon(String),
    /// Accepting a frontend on the listener failed.
    #[error("cannot accept a vhost-user frontend: {0}")]
    Accept(String),
}

impl Ring for Vring {
    fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> (T, bool)) -> T {
        let mut state = self.get_mut();
        let (value, signal) = f(state.get_queue_mut());
        if signal {
            if let Err(e) = state.signal_used_queue() {
                guest_warn!("cannot signal the frontend's call eventfd: {e}");
            }
        }
        value
    }
}

struct Inner<F> {
    config: DeviceConfig,
    server: Arc<Server<F>>,
    stats: Arc<Stats>,
    /// VIRTIO_RING_F_INDIRECT_DESC was acked.
    indirect: AtomicBool,
    /// The last memory table that passed [`check_memory`]; requests carry clones.
    mem: Mutex<Option<Snapshot>>,
    /// One per queue (hiprio first), with its own workers; they outlive connections.
    queues: Vec<Arc<QueueCore<F, Snapshot, Vring>>>,
}

/// The virtio-fs device as a vhost-user backend. Cheap to clone (shared state).
///
/// vhost-user-backend's epoll threads serve their queue: a kick takes the available chains off
/// the ring, the vring locked only to take a head or put used elements, and serves them on the
/// epoll thread; requests that may block and the excess of a burst run on the backend's own
/// worker threads (`workers_per_queue` per request queue, one for hiprio). No vhost-user
/// message and no reconnect waits for a request; a request that completes after its queue was
/// stopped is discarded (see the `queue` module of this crate).
pub struct VhostUserFs<F> {
    inner: Arc<Inner<F>>,
}

impl<F> Clone for VhostUserFs<F> {
    fn clone(&self) -> Self {
        VhostUserFs {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F> std::fmt::Debug for VhostUserFs<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserFs")
            .field("config", &self.inner.config)
            .field("stats", &self.inner.stats)
            .finish_non_exhaustive()
    }
}

impl<F: FileSystem + 'static> VhostUserFs<F> {
    /// A backend serving `fs` with `config`; `negotiation` is the operator's FUSE_INIT policy.
    /// Starts the queues' worker threads (a queue whose workers cannot be started is logged
    /// and never served).
    pub fn new(config: DeviceConfig, fs: F, negotiation: NegotiationConfig) -> VhostUserFs<F> {
        let server = Arc::new(Server::new(fs, config.server_config(negotiation)));
        let stats = Arc::new(Stats::default());
        let hub = Arc::new(crate::park::Hub::default());
        let queues = (0..config.num_queues())
            .filter_map(|index| {
                let workers = if index == 0 {
                    1
                } else {
                    config.workers_per_queue()
                };
                match QueueCore::new(
                    index,
                    Arc::clone(&server),
                    Arc::clone(&stats),
                    &hub,
                    workers,
                    usize::from(config.queue_size()),
                    config.poll(),
                ) {
                    Ok(core) => Some(core),
                    Err(e) => {
                        error!("queue {index}: cannot start its workers: {e}");
                        None
                    }
                }
            })
            .collect();
        VhostUserFs {
            inner: Arc::new(Inner {
                config,
                server,
                stats,
                indirect: AtomicBool::new(false),
                mem: Mutex::new(None),
                queues,
            }),
        }
    }

    /// The device configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.inner.config
    }

    /// The server (for its negotiated state and counters).
    pub fn server(&self) -> &Server<F> {
        &self.inner.server
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    fn restart_queues(&self) {
        let indirect = self.inner.indirect.load(Ordering::Relaxed);
        for queue in &self.inner.queues {
            queue.restart(indirect);
        }
    }

    /// Stops the rings of a connection that ended: a thread still serving one (an epoll
    /// thread inside a request) takes no more heads off it and never writes to it.
    fn stop_rings(&self) {
        for queue in &self.inner.queues {
            if let Some(ring) = queue.current_ring() {
                ring.with_queue(|queue| {
                    queue.set_ready(false);
                    ((), false)
                });
            }
        }
        self.restart_queues();
    }

    /// Forgets the connection: requests in flight are discarded, backend state and the guest
    /// memory mapping are dropped.
    fn disconnect(&self) {
        self.inner.indirect.store(false, Ordering::Relaxed);
        self.restart_queues();
        let served: Vec<u64> = self.inner.queues.iter().map(|q| q.take_served()).collect();
        frontend_info!("requests served per queue (hiprio first): {served:?}");
        self.inner.server.reset();
        *self
            .inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn memory(&self) -> Option<Snapshot> {
        self.inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Refuses a memory table with a region that its backing file does not cover: touching such a
/// region past the file's end would kill the daemon with SIGBUS.
fn check_memory(mem: &GuestMemoryMmap<()>) -> io::Result<()> {
    for region in mem.iter() {
        let Some(file_offset) = region.file_offset() else {
            continue;
        };
        let meta = file_offset.file().metadata()?;
        if !meta.is_file() {
            // Only regular files (memfd, hugetlbfs, tmpfs) have an end to map past.
            continue;
        }
        let end = file_offset.start().checked_add(region.len());
        if end.is_none_or(|end| end > meta.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "memory region at guest address {:#x}: {} bytes at file offset {} but the \
                     file has {} bytes",
                    region.start_addr().0,
                    region.len(),
                    file_offset.start(),
                    meta.len()
                ),
            ));
        }
    }
    Ok(())
}

impl<F: FileSystem + 'static> VhostUserBackend for VhostUserFs<F> {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        self.inner.config.num_queues()
    }

    fn max_queue_size(&self) -> usize {
        usize::from(self.inner.config.queue_size())
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_INDIRECT_DESC
            | VIRTIO_RING_F_EVENT_IDX
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        self.inner.indirect.store(
            features & VIRTIO_RING_F_INDIRECT_DESC != 0,
            Ordering::Relaxed,
        );
        self.restart_queues();
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        frontend_info!("device reset: clearing backend state");
        self.inner.indirect.store(false, Ordering::Relaxed);
        self.restart_queues();
        self.inner.server.reset();
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        // GET_VRING_BASE: the ring is stopped; requests still running are discarded.
        let queue = usize::try_from(queue_index)
            .ok()
            .and_then(|i| self.inner.queues.get(i));
        if let Some(queue) = queue {
            queue.restart(self.inner.indirect.load(Ordering::Relaxed));
        }
        Ok(())
    }

    fn set_event_idx(&self, _enabled: bool) {
        // vhost-user-backend sets EVENT_IDX on the queues themselves.
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        match (usize::try_from(offset), usize::try_from(size)) {
            (Ok(offset), Ok(size)) => self.inner.config.read_config(offset, size),
            _ => Vec::new(),
        }
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        guest_warn!(
            "frontend wrote {} bytes to the read-only config space at {offset}",
            buf.len()
        );
        Err(io::ErrorKind::PermissionDenied.into())
    }

    fn update_memory(&self, mem: GuestMemory) -> io::Result<()> {
        let snapshot = mem.memory().into_inner();
        if let Err(e) = check_memory(&snapshot) {
            guest_warn!("refusing the frontend's memory table: {e}");
            // vhost-user-backend has already installed the table in its own handle (the vrings
            // read their used index through it): put the last good table back, or none.
            let previous = self.memory();
            let restore = previous.as_deref().cloned().unwrap_or_default();
            match mem.lock() {
                Ok(guard) => guard.replace(restore),
                Err(poisoned) => poisoned.into_inner().replace(restore),
            }
            return Err(e);
        }
        *self
            .inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
        Ok(())
    }

    fn queues_per_thread(&self) -> Vec<u64> {
        (0..self.num_queues()).map(|queue| 1u64 << queue).collect()
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok(pair) => Some(pair),
            Err(e) => {
                warn!("cannot create a worker exit event: {e}");
                None
            }
        }
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Vring],
        thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            guest_warn!("queue {thread_id}: unexpected event set {evset:?}");
        }
        // One queue per thread: the event is that thread's only vring, and the thread's index
        // is the queue's index.
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            guest_warn!("queue {thread_id}: event {device_event} for an unknown vring");
            return Ok(());
        };
        let Some(mem) = self.memory() else {
            guest_warn!("queue {thread_id}: kicked before the memory table was set");
            return Ok(());
        };
        let Some(queue) = self.inner.queues.get(thread_id) else {
            guest_warn!("event on unknown queue {thread_id}");
            return Ok(());
        };
        let refused = vring.refused_size();
        if refused != 0 {
            guest_warn!("queue {thread_id}: kicked with the invalid size {refused}: not served");
            return Ok(());
        }
        // Serves the ring here; requests that may block go to the queue's workers.
        queue.kick(vring, &mem);
        Ok(())
    }
}

/// Serves frontends on `listener` one after the other, forever: each connection gets fresh
/// vrings and worker threads; a disconnect (guest shutdown, QEMU exit) resets the backend
/// state and waits for the next frontend.
///
/// # Errors
///
/// [`ServeError`] when the daemon cannot be set up or the listener fails; never because of
/// what a frontend or guest sends.
pub fn serve<F: FileSystem + 'static>(
    backend: &VhostUserFs<F>,
    listener: &mut Listener,
) -> Result<(), ServeError> {
    loop {
        let mut daemon = VhostUserDaemon::new(
            String::from("virtiofs-device"),
            backend.clone(),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
        .map_err(|e| ServeError::Daemon(e.to_string()))?;
        match daemon.start(listener) {
            Ok(()) => frontend_info!("vhost-user frontend connected"),
            Err(vhost_user_backend::Error::CreateBackendListener(VhostUserError::SocketError(
                e,
            ))) => {
                return Err(ServeError::Accept(e.to_string()));
            }
            Err(e) => return Err(ServeError::Accept(e.to_string())),
        }
        match daemon.wait() {
            Ok(())
            | Err(vhost_user_backend::Error::HandleRequest(
                VhostUserError::Disconnected | VhostUserError::PartialMessage,
            )) => frontend_info!("vhost-user frontend disconnected"),
            Err(e) => guest_warn!("vhost-user frontend connection ended: {e}"),
        }
        // The epoll threads serve requests themselves, and dropping the daemon joins them:
        // stop their rings first, and wait only briefly (one inside a request ends after it).
        backend.stop_rings();
        let (ended, wait) = std::sync::mpsc::channel::<()>();
        let reaper = std::thread::Builder::new()
            .name(String::from("virtiofs-reaper"))
            .spawn(move || {
                drop(daemon);
                drop(ended);
            });
        match reaper {
            Ok(_) => {
                if wait.recv_timeout(DISCONNECT_WAIT)
                    == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                {
                    frontend_info!("a request of the old frontend is still running: not waiting");
                }
            }
            Err(e) => error!("cannot start a thread to end the old connection: {e}"),
        }
        backend.disconnect();
        let stats = backend.stats();
        frontend_info!(
            "requests served since start: {} (pooled {}, interrupts {})",
            backend.server().served(),
            stats.pooled.load(Ordering::Relaxed),
            stats.notifications.load(Ordering::Relaxed)
        );
        frontend_info!("waiting for the next frontend");
    }
}
