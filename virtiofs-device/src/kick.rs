//! Linux's built-in kick threads: one per queue, waiting (epoll) for the driver's kick eventfd
//! and calling the queue's [`QueueHandle::process`], the same entry point a VMM's own event
//! loop calls. A kick thread serves the requests that do not block itself, so stopping one
//! waits for it only briefly ([`STOP_WAIT`]): one still inside a request is left to finish
//! it (its completion is discarded, its queue stopped) and then ends on its own. A kick thread
//! that polls its drained ring (a poll window, `DeviceConfigBuilder::poll_us`) stops polling
//! as soon as a reset stops its queue, well within that wait. A kick thread also drives its
//! queue's parked requests ([`crate::park`]): its wait ends when the next one is due.

use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fuse_server::FileSystem;
use log::{debug, error};
use vm_memory::GuestAddressSpace;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::device::QueueHandle;
use crate::error::{Error, Result};

const KICK: u64 = 0;
const STOP: u64 = 1;

/// How long stopping a kick thread waits for it to end.
const STOP_WAIT: Duration = Duration::from_millis(200);

/// A running kick thread and how to stop it.
pub(crate) struct KickThread {
    stop: EventNotifier,
    thread: JoinHandle<()>,
    /// Disconnected when the thread ends.
    ended: Receiver<()>,
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
        let (alive, ended) = channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("virtiofs-kick{index}"))
            .spawn(move || {
                let _alive = alive;
                context.run();
            })
            .map_err(Error::SpawnWorker)?;
        Ok(KickThread {
            stop,
            thread,
            ended,
        })
    }

    /// Stops the threads, waiting at most [`STOP_WAIT`] in all for them: a thread still
    /// inside a request (stop its queue first) ends by itself once the request returns.
    pub(crate) fn stop_all(threads: impl IntoIterator<Item = KickThread>) {
        let threads: Vec<KickThread> = threads
            .into_iter()
            .filter(|t| match t.stop.notify() {
                Ok(()) => true,
                Err(e) => {
                    error!("cannot stop a kick thread: {e}");
                    false
                }
            })
            .collect();
        let deadline = Instant::now() + STOP_WAIT;
        for t in threads {
            let left = deadline.saturating_duration_since(Instant::now());
            match t.ended.recv_timeout(left) {
                Err(RecvTimeoutError::Timeout) => {
                    debug!("a kick thread is still inside a request: it ends after it");
                }
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    if t.thread.join().is_err() {
                        error!("a kick thread panicked");
                    }
                }
            }
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
            // Parked requests (a SETLKW waiting for a lock) are tried again when due: the
            // wait ends then (an inline device has no retry thread of its own).
            let timeout = self.handle.next_retry().map_or(-1, |at| {
                let left = at.saturating_duration_since(Instant::now());
                // Rounded up: waking before it is due would spin.
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            });
            let n = match self.epoll.wait(timeout, &mut events) {
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
            if self
                .handle
                .next_retry()
                .is_some_and(|at| at <= Instant::now())
            {
                self.handle.retry_parked();
            }
        }
    }
}
