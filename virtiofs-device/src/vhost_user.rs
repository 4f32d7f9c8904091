//! The vhost-user backend: QEMU's `vhost-user-fs-pci` (and Cloud Hypervisor, crosvm) drive the
//! device over a Unix socket while the rings live in shared guest memory.
//!
//! [`VhostUserFs`] implements `vhost_user_backend::VhostUserBackend`: vhost-user-backend's epoll
//! thread per queue serves the queue itself, and hands requests that may block (and the excess
//! of a burst) to the backend's own workers (a pool per queue, kept across connections); the
//! vhost-user control thread never waits for a request. [`serve`] accepts frontends one after
//! the other on a listener, so the daemon outlives a frontend's disconnect, even while a
//! request of the old one is stuck (on a worker or on an epoll thread: the old connection's
//! rings are stopped and its threads left to end after it). Nothing a frontend does at the
//! socket ends serving (connecting and closing at once, garbage, a message cut short), nor
//! costs a descriptor; a set-up that fails for want of descriptors, memory or threads is
//! retried after a pause (see [`serve`]).
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
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fuse_server::{FileSystem, NegotiationConfig, Server, guest_warn};
use log::{error, info};
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
use vmm_sys_util::eventfd::{EFD_CLOEXEC, EFD_NONBLOCK, EventFd};

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
/// The first pause after a transient failure to set up a connection (see [`serve`]).
pub const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
/// The longest pause after transient failures in a row (see [`serve`]).
pub const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// VIRTIO_RING_F_INDIRECT_DESC.
const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_RING_F_EVENT_IDX.
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// VIRTIO_F_VERSION_1.
const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// Why serving stopped: a failure that would repeat at every attempt (see [`serve`]).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The vhost-user machinery refuses the device's configuration.
    #[error("cannot set up the vhost-user daemon: {0}")]
    Daemon(String),
    /// The listening socket is unusable (not open, not a socket, not listening).
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

    // No `exit_event`: vhost-user-backend would lose its descriptor; each connection's stop
    // event ends the epoll threads instead (see `Connection`).

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Vring],
        thread_id: usize,
    ) -> io::Result<()> {
        if u64::from(device_event) == stop_event_id(self.num_queues()) {
            // The connection is over: an error ends this epoll thread (see `Connection`).
            return Err(io::Error::other("the connection is over"));
        }
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

/// One frontend's vhost-user machinery: vhost-user-backend's daemon (an epoll thread per queue
/// and, once a frontend is accepted, the connection's own thread) and the event that ends the
/// epoll threads.
///
/// vhost-user-backend 0.24 asks the backend for an exit event per epoll thread
/// (`VhostUserBackend::exit_event`), keeps the consumer's descriptor with `into_raw_fd` and never
/// closes it: a descriptor lost per queue and per connection, until setting up the next
/// connection fails with EMFILE (a frontend that connects and closes in a loop ended the daemon
/// that way). So the backend offers no exit event; each connection registers an eventfd of its
/// own with every epoll thread as a custom listener (id [`stop_event_id`]), and the backend's
/// `handle_event` ends the thread when it fires. Dropping a connection fires it, then joins the
/// threads (vhost-user-backend's drop), then closes it.
struct Connection<F: FileSystem + 'static> {
    daemon: VhostUserDaemon<VhostUserFs<F>>,
    stop: EventFd,
}

/// The epoll id of a connection's stop event: past the queues' ids (`0..num_queues`) and the one
/// vhost-user-backend keeps for its own events (`num_queues`).
fn stop_event_id(num_queues: usize) -> u64 {
    u64::try_from(num_queues).map_or(u64::MAX, |n| n + 1)
}

impl<F: FileSystem + 'static> Connection<F> {
    fn new(backend: &VhostUserFs<F>) -> Result<Connection<F>, Failure> {
        // The event first: without it, the daemon's epoll threads could never be ended.
        let stop = EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC)
            .map_err(|e| Failure::Transient(format!("cannot create a stop event: {e}")))?;
        let daemon = VhostUserDaemon::new(
            String::from("virtiofs-device"),
            backend.clone(),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
        .map_err(|e| match e {
            // Only a queue size the vring refuses: the configuration's own, refused at every
            // attempt.
            vhost_user_backend::Error::NewVhostUserHandler(
                vhost_user_backend::VhostUserHandlerError::CreateVring(_),
            ) => Failure::Fatal(ServeError::Daemon(e.to_string())),
            // An epoll instance, an eventfd or a thread: descriptors, memory or threads short.
            e => Failure::Transient(format!("cannot set up the vhost-user daemon: {e}")),
        })?;
        let id = stop_event_id(backend.num_queues());
        for handler in daemon.get_epoll_handlers() {
            if let Err(e) = handler.register_listener(stop.as_raw_fd(), EventSet::IN, id) {
                // A thread that cannot be told to end cannot be joined: end the others and
                // leave this daemon be rather than wait forever for it.
                let _ = stop.write(1);
                std::mem::forget(daemon);
                std::mem::forget(stop);
                return Err(Failure::Transient(format!(
                    "cannot register a stop event with an epoll thread: {e}"
                )));
            }
        }
        Ok(Connection { daemon, stop })
    }
}

impl<F: FileSystem + 'static> Drop for Connection<F> {
    fn drop(&mut self) {
        // The fields are dropped after this: the daemon (which joins its threads), then the
        // event.
        if let Err(e) = self.stop.write(1) {
            error!("cannot end the epoll threads of a connection: {e}");
        }
    }
}

/// What a failure to set up or accept a connection means for serving.
enum Failure {
    /// Serving cannot go on: the same step would fail the same way at every attempt.
    Fatal(ServeError),
    /// Short of descriptors, memory or threads, or one connection's failure: wait and retry.
    Transient(String),
}

/// Whether `e`, an error of accept(2), says that the listening socket itself is unusable: not
/// open (EBADF), not a socket (ENOTSOCK), not listening or shut down (EINVAL), not a socket
/// that accepts (EOPNOTSUPP), or a bad address (EFAULT, a bug). Each fails the same way at
/// every attempt, so serving ends. Every other error concerns the one connection or the
/// resources of the moment and passes: the frontend left before it was accepted
/// (ECONNABORTED; vhost retries it, as EINTR), descriptors (EMFILE, ENFILE), kernel memory
/// (ENOBUFS, ENOMEM), a security module refusing this peer (EPERM), a protocol error (EPROTO).
fn listener_is_broken(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

/// Classifies an error of `VhostUserDaemon::start`: the accept, then the connection's thread.
fn start_failure(e: vhost_user_backend::Error) -> Failure {
    match e {
        vhost_user_backend::Error::CreateBackendListener(VhostUserError::SocketError(io))
            if listener_is_broken(&io) =>
        {
            Failure::Fatal(ServeError::Accept(io.to_string()))
        }
        vhost_user_backend::Error::CreateBackendListener(e) => {
            Failure::Transient(format!("cannot accept a vhost-user frontend: {e}"))
        }
        // The accepted connection's clone of its socket or its thread: it is dropped (the
        // frontend sees the socket close).
        e => Failure::Transient(format!("cannot serve the frontend that connected: {e}")),
    }
}

/// The pause after a transient failure: [`BACKOFF_MIN`], doubled at each failure in a row up
/// to [`BACKOFF_MAX`], back to the minimum once a frontend is served.
struct Backoff(std::time::Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(BACKOFF_MIN)
    }

    fn wait(&mut self, why: &str) {
        guest_warn!("{why}; retrying in {:?}", self.0);
        std::thread::sleep(self.0);
        self.0 = self.0.saturating_mul(2).min(BACKOFF_MAX);
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

/// Serves frontends on `listener` one after the other, forever: each connection gets fresh
/// vrings and epoll threads; a disconnect (guest shutdown, QEMU exit) resets the backend
/// state and waits for the next frontend.
///
/// Nothing a frontend does ends serving: a frontend that connects and closes at once, sends
/// garbage or leaves mid-message ends its own connection only. Setting up the next connection
/// may fail for want of descriptors, memory or threads (EMFILE, ENFILE, ENOMEM, EAGAIN, from
/// its epoll threads, the accept, or the connection's thread): that is waited out, with a
/// rate-limited warning and a pause of [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`].
///
/// # Errors
///
/// [`ServeError`] only when the same failure would repeat at every attempt: the listening
/// socket is unusable (EBADF, ENOTSOCK, EINVAL, EOPNOTSUPP from accept), or the device's
/// queue size is refused by the vrings. Never because of what a frontend or guest sends.
pub fn serve<F: FileSystem + 'static>(
    backend: &VhostUserFs<F>,
    listener: &mut Listener,
) -> Result<(), ServeError> {
    let mut backoff = Backoff::new();
    loop {
        let mut connection = match Connection::new(backend) {
            Ok(connection) => connection,
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(why)) => {
                backoff.wait(&why);
                continue;
            }
        };
        match connection.daemon.start(listener) {
            Ok(()) => {
                backoff.reset();
                frontend_info!("vhost-user frontend connected");
            }
            Err(e) => match start_failure(e) {
                Failure::Fatal(e) => return Err(e),
                Failure::Transient(why) => {
                    // No frontend is connected: its epoll threads end at once.
                    drop(connection);
                    backoff.wait(&why);
                    continue;
                }
            },
        }
        match connection.daemon.wait() {
            Ok(())
            | Err(vhost_user_backend::Error::HandleRequest(
                VhostUserError::Disconnected | VhostUserError::PartialMessage,
            )) => frontend_info!("vhost-user frontend disconnected"),
            Err(e) => guest_warn!("vhost-user frontend connection ended: {e}"),
        }
        // The epoll threads serve requests themselves, and dropping the connection joins them:
        // stop their rings first, and wait only briefly (one inside a request ends after it).
        backend.stop_rings();
        let (ended, wait) = std::sync::mpsc::channel::<()>();
        let reaper = std::thread::Builder::new()
            .name(String::from("virtiofs-reaper"))
            .spawn(move || {
                drop(connection);
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
