//! The vhost-user side: connect to a daemon's socket, negotiate, share guest RAM, set up the
//! virtqueues, and the control-plane messages a test wants to time.

use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuse_abi::InitOut;
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend as VuFrontend, VhostUserFrontend};
use vhost::{VhostBackend, VringConfigData};

use crate::Error;
use crate::fuse::Request;
use crate::memory::GuestRam;
use crate::queue::{Queue, QueueLayout};

/// `VIRTIO_F_VERSION_1`.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// `VIRTIO_RING_F_INDIRECT_DESC`.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_RING_F_EVENT_IDX`: `used_event` and `avail_event` replace the ring flags for
/// notification suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// `VHOST_USER_F_PROTOCOL_FEATURES`.
pub const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;

/// How a [`Frontend`] sets itself up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Request queues (virtio-fs adds the hiprio queue, index 0, in front of them).
    pub request_queues: usize,
    /// Descriptors per queue (a power of two the daemon accepts).
    pub queue_size: u16,
    /// Bytes of buffer per descriptor.
    pub slot_size: u64,
    /// Bytes of scratch area per queue, for raw tests.
    pub scratch_size: u64,
    /// Negotiate `VIRTIO_RING_F_INDIRECT_DESC` when the daemon offers it.
    pub indirect: bool,
    /// Negotiate `VIRTIO_RING_F_EVENT_IDX` when the daemon offers it, and then have every
    /// [`Queue`] handle notifications with it ([`Queue::set_event_idx`]), as Linux does.
    pub event_idx: bool,
    /// How long any vhost-user message may take to be answered, and connecting may take.
    pub timeout: Duration,
    /// Bytes the memory region declares beyond the memfd's size (0 for an honest VMM).
    pub overstate_memory: u64,
}

impl Config {
    /// `request_queues` request queues of 256 descriptors, 64 KiB per descriptor, 1 MiB of
    /// scratch, indirect descriptors on, EVENT_IDX off (the hostile tier writes the rings'
    /// flags itself), a 5 s timeout, honest memory.
    pub fn new(request_queues: usize) -> Config {
        Config {
            request_queues,
            queue_size: 256,
            slot_size: 64 * 1024,
            scratch_size: 1024 * 1024,
            indirect: true,
            event_idx: false,
            timeout: Duration::from_secs(5),
            overstate_memory: 0,
        }
    }
}

/// A connected, set-up vhost-user frontend: guest RAM shared, every queue enabled.
pub struct Frontend {
    vu: VuFrontend,
    watchdog: Watchdog,
    ram: Arc<GuestRam>,
    queues: Vec<Queue>,
    features: u64,
    protocol: VhostUserProtocolFeatures,
    config: Config,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("queues", &self.queues.len())
            .field("features", &format_args!("{:#x}", self.features))
            .field("protocol", &self.protocol)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct WatchState {
    deadline: Option<Instant>,
    fired: bool,
    quit: bool,
}

/// Bounds every vhost-user exchange in time. The `vhost` crate retries a receive that times
/// out, so a socket timeout cannot end a wait for an answer that never comes; instead this
/// thread shuts the socket down when an armed deadline passes, which ends the wait with an
/// error (and the connection: a daemon that does not answer has failed the test anyway).
struct Watchdog {
    state: Arc<(Mutex<WatchState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn new(sock: UnixStream) -> Watchdog {
        let state = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*shared;
            let mut st = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !st.quit {
                st = match st.deadline {
                    None => cv.wait(st).unwrap_or_else(PoisonError::into_inner),
                    Some(d) if Instant::now() >= d => {
                        let _ = sock.shutdown(Shutdown::Both);
                        st.fired = true;
                        st.deadline = None;
                        st
                    }
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        cv.wait_timeout(st, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                };
            }
        });
        Watchdog {
            state,
            thread: Some(thread),
        }
    }
}

/// Runs `f` with the deadline `timeout` from now armed in `state`; also says whether the
/// watchdog fired (the socket is then shut down).
fn watched<T>(
    state: &(Mutex<WatchState>, Condvar),
    timeout: Duration,
    f: impl FnOnce() -> T,
) -> (T, bool) {
    {
        let (lock, cv) = state;
        let mut st = lock.lock().unwrap_or_else(PoisonError::into_inner);
        st.deadline = Some(Instant::now() + timeout);
        cv.notify_all();
    }
    let out = f();
    let mut st = state.0.lock().unwrap_or_else(PoisonError::into_inner);
    st.deadline = None;
    (out, st.fired)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap_or_else(PoisonError::into_inner).quit = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `path`, retrying while the socket is missing or refuses, until `deadline`.
fn connect_socket(path: &Path, deadline: Instant) -> Result<UnixStream, Error> {
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

impl Frontend {
    /// Connects to the daemon listening on `path` and sets everything up as QEMU does:
    /// SET_OWNER, features, protocol features (MQ, REPLY_ACK, CONFIG), SET_MEM_TABLE with the
    /// memfd, then for every queue SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE 0,
    /// SET_VRING_CALL, SET_VRING_KICK and SET_VRING_ENABLE. With REPLY_ACK every later message
    /// asks for an acknowledgement, so a message the daemon does not serve times out instead
    /// of passing silently.
    ///
    /// # Errors
    ///
    /// [`Error::VhostUser`] for a message refused or not answered in `config.timeout`,
    /// [`Error::Io`] when the socket cannot be reached in that time, [`Error::Memory`] when the
    /// RAM cannot be set up.
    pub fn connect(path: impl AsRef<Path>, config: Config) -> Result<Frontend, Error> {
        let deadline = Instant::now() + config.timeout;
        let sock = connect_socket(path.as_ref(), deadline)?;
        let total = config.request_queues + 1;
        let mut layouts = Vec::with_capacity(total);
        let mut base = 0;
        for _ in 0..total {
            let layout = QueueLayout::new(
                base,
                config.queue_size,
                config.slot_size,
                config.scratch_size,
            );
            base = layout.end;
            layouts.push(layout);
        }
        let ram = Arc::new(GuestRam::new(base)?);
        let mut queues = Vec::with_capacity(total);
        for (i, layout) in layouts.into_iter().enumerate() {
            queues.push(Queue::new(i, Arc::clone(&ram), layout)?);
        }
        let vu = VuFrontend::from_stream(sock.try_clone()?, u64::try_from(total).unwrap_or(1));
        let mut frontend = Frontend {
            vu,
            watchdog: Watchdog::new(sock),
            ram,
            queues,
            features: 0,
            protocol: VhostUserProtocolFeatures::empty(),
            config,
        };
        frontend.guard(Frontend::negotiate)?;
        for i in 0..total {
            frontend.guard(|f| f.setup_queue(i))?;
        }
        Ok(frontend)
    }

    /// Runs `f` under the watchdog: past the timeout the socket is shut down and the result
    /// is [`Error::Timeout`].
    fn guard<T>(&mut self, f: impl FnOnce(&mut Frontend) -> Result<T, Error>) -> Result<T, Error> {
        let timeout = self.config.timeout;
        let state = Arc::clone(&self.watchdog.state);
        let (result, fired) = watched(&state, timeout, || f(self));
        if fired {
            return Err(Error::Timeout(timeout));
        }
        result
    }

    fn negotiate(&mut self) -> Result<(), Error> {
        self.vu.set_owner()?;
        let offered = self.vu.get_features()?;
        if offered & VHOST_USER_F_PROTOCOL_FEATURES == 0 {
            return Err(Error::Unsupported("VHOST_USER_F_PROTOCOL_FEATURES"));
        }
        let mut wanted = VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES;
        if self.config.indirect {
            wanted |= VIRTIO_RING_F_INDIRECT_DESC;
        }
        if self.config.event_idx {
            wanted |= VIRTIO_RING_F_EVENT_IDX;
        }
        self.features = offered & wanted;
        let event_idx = self.features & VIRTIO_RING_F_EVENT_IDX != 0;
        for q in &mut self.queues {
            q.set_event_idx(event_idx);
        }
        self.vu.set_features(self.features)?;
        let protocol = self.vu.get_protocol_features()?;
        self.protocol = protocol
            & (VhostUserProtocolFeatures::MQ
                | VhostUserProtocolFeatures::REPLY_ACK
                | VhostUserProtocolFeatures::CONFIG);
        self.vu.set_protocol_features(self.protocol)?;
        let queues = self.vu.get_queue_num()?;
        if queues < u64::try_from(self.queues.len()).unwrap_or(u64::MAX) {
            return Err(Error::Unsupported("as many queues as configured"));
        }
        if self.protocol.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            self.vu.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        let region = self
            .ram
            .region(self.ram.size() + self.config.overstate_memory);
        self.vu.set_mem_table(&[region])?;
        Ok(())
    }

    fn setup_queue(&mut self, i: usize) -> Result<(), Error> {
        let user = self.ram.user_base();
        let layout = *self.queues[i].layout();
        self.vu.set_vring_num(i, layout.size)?;
        let addrs = VringConfigData {
            queue_max_size: layout.size,
            queue_size: layout.size,
            flags: 0,
            desc_table_addr: user + layout.desc,
            used_ring_addr: user + layout.used,
            avail_ring_addr: user + layout.avail,
            log_addr: None,
        };
        self.vu.set_vring_addr(i, &addrs)?;
        self.vu.set_vring_base(i, 0)?;
        self.vu.set_vring_call(i, self.queues[i].call_fd())?;
        self.vu.set_vring_kick(i, self.queues[i].kick_fd())?;
        self.vu.set_vring_enable(i, true)?;
        Ok(())
    }

    /// The virtio features negotiated.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// The vhost-user protocol features negotiated.
    pub fn protocol_features(&self) -> VhostUserProtocolFeatures {
        self.protocol
    }

    /// The configuration it was set up with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shared guest RAM.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    /// Number of queues (hiprio included).
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Queue `i` (0 is hiprio, 1.. the request queues).
    ///
    /// # Panics
    ///
    /// When `i` ≥ [`num_queues`](Self::num_queues).
    pub fn queue(&mut self, i: usize) -> &mut Queue {
        &mut self.queues[i]
    }

    /// The first request queue.
    pub fn requests(&mut self) -> &mut Queue {
        &mut self.queues[1]
    }

    /// Every queue, to drive them from several threads (a load generator moves each into
    /// its own thread; control-plane messages stay with the frontend).
    pub fn queues_mut(&mut self) -> &mut [Queue] {
        &mut self.queues
    }

    /// FUSE_INIT on the first request queue, as a kernel does at mount.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no reply comes within the configured timeout, [`Error::Errno`]
    /// or [`Error::BadReply`] for a refused or malformed reply.
    pub fn init(&mut self) -> Result<InitOut, Error> {
        let timeout = self.config.timeout;
        let reply = self.requests().call(&Request::init(), 4096, timeout)?;
        reply.init()
    }

    /// How long a vhost-user message may take from now on.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the socket option cannot be set.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.config.timeout = timeout;
        Ok(())
    }

    /// Sends queue `i` a new call eventfd (SET_VRING_CALL, acknowledged) and returns how long
    /// the daemon took to acknowledge it.
    ///
    /// # Errors
    ///
    /// [`Error::VhostUser`] when it is refused or not acknowledged within the timeout.
    pub fn set_vring_call(&mut self, i: usize) -> Result<Duration, Error> {
        let started = Instant::now();
        self.queues[i].new_call()?;
        self.guard(|f| Ok(f.vu.set_vring_call(i, f.queues[i].call_fd())?))?;
        Ok(started.elapsed())
    }

    /// Sends queue `i` a new kick eventfd (SET_VRING_KICK, acknowledged) and returns how long
    /// the acknowledgement took.
    ///
    /// # Errors
    ///
    /// [`Error::VhostUser`] when it is refused or not acknowledged within the timeout.
    pub fn set_vring_kick(&mut self, i: usize) -> Result<Duration, Error> {
        let started = Instant::now();
        self.queues[i].new_kick()?;
        self.guard(|f| Ok(f.vu.set_vring_kick(i, f.queues[i].kick_fd())?))?;
        Ok(started.elapsed())
    }

    /// GET_VRING_BASE of queue `i` (stops the ring, as QEMU does at VM stop): the daemon's
    /// next available index, and how long the answer took.
    ///
    /// # Errors
    ///
    /// [`Error::VhostUser`] when it is refused or not answered within the timeout.
    pub fn get_vring_base(&mut self, i: usize) -> Result<(u32, Duration), Error> {
        let started = Instant::now();
        let base = self.guard(|f| Ok(f.vu.get_vring_base(i)?))?;
        Ok((base, started.elapsed()))
    }

    /// Stops queue `i` and starts it again as QEMU does across a VM stop and start:
    /// GET_VRING_BASE, then SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE (the index the
    /// daemon returned), and new SET_VRING_KICK and SET_VRING_CALL eventfds, SET_VRING_ENABLE.
    /// Returns the base and how long the whole exchange took. Requests in flight stay on the
    /// ring and are served after the restart.
    ///
    /// # Errors
    ///
    /// [`Error::VhostUser`] when a message is refused, [`Error::Timeout`] when one is not
    /// answered within the timeout.
    pub fn restart_queue(&mut self, i: usize) -> Result<(u32, Duration), Error> {
        let size = self.queues[i].layout().size;
        self.restart_queue_as(i, size)
    }

    /// [`restart_queue`](Self::restart_queue), but telling the daemon the queue has `size`
    /// entries (SET_VRING_NUM and SET_VRING_ADDR) while this frontend keeps its own layout: a
    /// hostile frontend's disagreement about the ring.
    ///
    /// # Errors
    ///
    /// As [`restart_queue`](Self::restart_queue).
    pub fn restart_queue_as(&mut self, i: usize, size: u16) -> Result<(u32, Duration), Error> {
        let started = Instant::now();
        let base = self.guard(|f| Ok(f.vu.get_vring_base(i)?))?;
        self.queues[i].new_kick()?;
        self.queues[i].new_call()?;
        let user = self.ram.user_base();
        let layout = *self.queues[i].layout();
        let next = u16::try_from(base & 0xffff).unwrap_or_default();
        self.guard(|f| {
            f.vu.set_vring_num(i, size)?;
            let addrs = VringConfigData {
                queue_max_size: layout.size,
                queue_size: size,
                flags: 0,
                desc_table_addr: user + layout.desc,
                used_ring_addr: user + layout.used,
                avail_ring_addr: user + layout.avail,
                log_addr: None,
            };
            f.vu.set_vring_addr(i, &addrs)?;
            f.vu.set_vring_base(i, next)?;
            f.vu.set_vring_kick(i, f.queues[i].kick_fd())?;
            f.vu.set_vring_call(i, f.queues[i].call_fd())?;
            f.vu.set_vring_enable(i, true)?;
            Ok(())
        })?;
        Ok((base, started.elapsed()))
    }

    /// SET_VRING_ENABLE of queue `i`.
    ///
    /// # Errors
    ///
    /// [`Error::VhostUser`] when it is refused or not acknowledged within the timeout.
    pub fn set_vring_enable(&mut self, i: usize, enable: bool) -> Result<(), Error> {
        self.guard(|f| Ok(f.vu.set_vring_enable(i, enable)?))
    }

    /// The underlying `vhost` frontend, for any other message (not bounded in time: wrap a
    /// message that may not be answered in [`Frontend::bounded`]).
    pub fn vhost(&mut self) -> &mut VuFrontend {
        &mut self.vu
    }

    /// Runs `f` on the `vhost` frontend bounded by the timeout: past it the connection is
    /// shut down and the result is [`Error::Timeout`].
    ///
    /// # Errors
    ///
    /// `f`'s error, or [`Error::Timeout`].
    pub fn bounded<T>(
        &mut self,
        f: impl FnOnce(&mut VuFrontend) -> Result<T, vhost::Error>,
    ) -> Result<T, Error> {
        self.guard(|fe| Ok(f(&mut fe.vu)?))
    }
}
