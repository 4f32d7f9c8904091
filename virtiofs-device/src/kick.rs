//! Linux's built-in kick threads: one per queue, waiting (epoll) for the driver's kick eventfd
//! and calling the queue's [`QueueHandle::process`], the same entry point a VMM's own event
//! loop calls. They only take chains off the ring, so stopping one is prompt.

use std::os::fd::AsRawFd;
use std::thread::{self, JoinHandle};

use fuse_server::FileSystem;
use log::error;
use vm_memory::GuestAddressSpace;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::device::QueueHandle;
use crate::error::{Error, Result};

const KICK: u64 = 0;
const STOP: u64 = 1;

/// A running kick thread and how to stop it.
pub(crate) struct KickThread {
    stop: EventNotifier,
    thread: JoinHandle<()>,
}

impl KickThread {
    /// Starts a thread that processes `handle`'s queue now and on every event of `kick`.
    pub(crate) fn spawn<F, M>(handle: QueueHandle<F, M>, kick: EventConsumer) -> Result<KickThread>
    where
        F: FileSystem + 'static,
        M: GuestAddressSpace + Clone + Send + Sync + 'static,
    {
        let (stop_consumer, stop) =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
                .map_err(Error::WorkerEvents)?;
        let epoll = Epoll::new().map_err(Error::WorkerEvents)?;
        epoll
            .ctl(
                ControlOperation::Add,
                kick.as_raw_fd(),
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
        let index = handle.index();
        let context = Context {
            handle,
            kick,
            epoll,
            _stop: stop_consumer,
        };
        let thread = thread::Builder::new()
            .name(format!("virtiofs-kick{index}"))
            .spawn(move || context.run())
            .map_err(Error::SpawnWorker)?;
        Ok(KickThread { stop, thread })
    }

    /// Stops the thread and waits for it (prompt: it never waits for a request).
    pub(crate) fn stop(self) {
        if let Err(e) = self.stop.notify() {
            error!("cannot stop a kick thread: {e}");
            return;
        }
        if self.thread.join().is_err() {
            error!("a kick thread panicked");
        }
    }
}

struct Context<F: FileSystem, M: GuestAddressSpace> {
    handle: QueueHandle<F, M>,
    kick: EventConsumer,
    epoll: Epoll,
    _stop: EventConsumer,
}

impl<F, M> Context<F, M>
where
    F: FileSystem + 'static,
    M: GuestAddressSpace + Clone + Send + 'static,
{
    fn run(self) {
        // The driver may have queued requests before activation.
        self.handle.process();
        let mut events = [EpollEvent::default(); 2];
        loop {
            let n = match self.epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!(
                        "queue {}: epoll failed, kick thread stops: {e}",
                        self.handle.index()
                    );
                    return;
                }
            };
            for event in events.iter().take(n) {
                match event.data() {
                    STOP => return,
                    _ => {
                        // A failed read means a spurious wake-up; processing is harmless.
                        let _ = self.kick.consume();
                        self.handle.process();
                    }
                }
            }
        }
    }
}
