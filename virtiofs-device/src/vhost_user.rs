//! The vhost-user backend: QEMU's `vhost-user-fs-pci` (and Cloud Hypervisor, crosvm) drive the
//! device over a Unix socket while the rings live in shared guest memory.
//!
//! [`VhostUserFs`] implements `vhost_user_backend::VhostUserBackend` with one worker thread per
//! queue (`queues_per_thread` gives each queue its own thread), and [`serve`] accepts frontends
//! one after the other on a listener, so the daemon outlives a frontend's disconnect.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fuse_server::{FileSystem, NegotiationConfig, Server};
use log::{info, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Error as VhostUserError, Listener};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringMutex, VringT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::config::DeviceConfig;
use crate::queue::{QueueRole, Stats, WorkerBuffers, serve_queue};

/// The guest memory a vhost-user frontend shares (no dirty-page bitmap).
pub type GuestMemory = GuestMemoryAtomic<GuestMemoryMmap<()>>;
/// The vring type the backend uses.
pub type Vring = VringMutex<GuestMemory>;

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

struct Inner<F> {
    config: DeviceConfig,
    server: Arc<Server<F>>,
    stats: Stats,
    event_idx: AtomicBool,
    mem: Mutex<Option<GuestMemory>>,
    /// One per queue, used only by that queue's worker thread (never contended).
    buffers: Vec<Mutex<WorkerBuffers>>,
    /// Requests completed per queue on the current connection.
    served: Vec<AtomicU64>,
}

/// The virtio-fs device as a vhost-user backend. Cheap to clone (shared state).
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
    pub fn new(config: DeviceConfig, fs: F, negotiation: NegotiationConfig) -> VhostUserFs<F> {
        let server = Server::new(fs, config.server_config(negotiation));
        let buffers = (0..config.num_queues())
            .map(|_| Mutex::new(WorkerBuffers::default()))
            .collect();
        VhostUserFs {
            inner: Arc::new(Inner {
                buffers,
                served: (0..config.num_queues())
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                config,
                server: Arc::new(server),
                stats: Stats::default(),
                event_idx: AtomicBool::new(false),
                mem: Mutex::new(None),
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

    /// Forgets the connection: backend state and the guest memory mapping.
    fn disconnect(&self) {
        let served: Vec<u64> = self
            .inner
            .served
            .iter()
            .map(|n| n.swap(0, Ordering::Relaxed))
            .collect();
        info!("requests served per queue (hiprio first): {served:?}");
        self.inner.server.reset();
        *self
            .inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn memory(&self) -> Option<GuestMemory> {
        self.inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
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

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        info!("device reset: clearing backend state");
        self.inner.server.reset();
    }

    fn set_event_idx(&self, enabled: bool) {
        self.inner.event_idx.store(enabled, Ordering::Relaxed);
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        match (usize::try_from(offset), usize::try_from(size)) {
            (Ok(offset), Ok(size)) => self.inner.config.read_config(offset, size),
            _ => Vec::new(),
        }
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        warn!(
            "frontend wrote {} bytes to the read-only config space at {offset}",
            buf.len()
        );
        Err(io::ErrorKind::PermissionDenied.into())
    }

    fn update_memory(&self, mem: GuestMemory) -> io::Result<()> {
        *self
            .inner
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(mem);
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
            warn!("queue {thread_id}: unexpected event set {evset:?}");
        }
        // One queue per thread: the event is that thread's only vring, and the thread's index
        // is the queue's index.
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            warn!("queue {thread_id}: event {device_event} for an unknown vring");
            return Ok(());
        };
        let Some(mem) = self.memory() else {
            warn!("queue {thread_id}: kicked before the memory table was set");
            return Ok(());
        };
        let Some(buffers) = self.inner.buffers.get(thread_id) else {
            warn!("event on unknown queue {thread_id}");
            return Ok(());
        };
        let mut buffers = buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let role = QueueRole::of_index(thread_id);
        let guard = mem.memory();
        let mut state = vring.get_mut();
        // The vring's lock is held while serving, so the interrupt is raised once the batch is
        // done (through the same guard) rather than from inside the loop.
        let mut pending = false;
        let served = serve_queue(
            &self.inner.server,
            role,
            &*guard,
            state.get_queue_mut(),
            &mut buffers,
            &self.inner.stats,
            || {
                pending = true;
                Ok(())
            },
        );
        if let (Ok(n), Some(count)) = (&served, self.inner.served.get(thread_id)) {
            count.fetch_add(*n, Ordering::Relaxed);
        }
        if let Err(e) = served {
            // A broken ring is the guest's fault: log it and leave the queue alone until the
            // frontend resets it; the daemon keeps serving the other queues.
            warn!("queue {thread_id}: {e}");
        }
        if pending {
            state.signal_used_queue()?;
        }
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
            Ok(()) => info!("vhost-user frontend connected"),
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
            )) => info!("vhost-user frontend disconnected"),
            Err(e) => warn!("vhost-user frontend connection ended: {e}"),
        }
        drop(daemon);
        backend.disconnect();
        info!("waiting for the next frontend");
    }
}
