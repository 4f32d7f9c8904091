//! The crate's error type.

use std::io;

/// What went wrong in the device.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tag breaks a rule the Linux driver enforces at probe.
    #[error("invalid virtio-fs tag {tag:?}: {reason} (1 to 36 bytes, no newline)")]
    InvalidTag {
        /// The tag given.
        tag: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The request queue count is out of range.
    #[error("invalid number of request queues {0}: must be 1 to 63")]
    InvalidRequestQueues(u16),
    /// The queue size is not a power of two in range.
    #[error("invalid queue size {0}: must be a power of two from 64 to 32768")]
    InvalidQueueSize(u16),
    /// The worker count per queue is out of range.
    #[error("invalid number of workers per queue {0}: must be 1 to 64")]
    InvalidWorkers(usize),
    /// The poll window is too long.
    #[error("invalid poll window {0} us: must be 0 (off) to 1000")]
    InvalidPoll(u32),
    /// `activate` was given the wrong number of queues.
    #[error(
        "activation needs hiprio and 1 to {max_request_queues} request queues, got {got} queues"
    )]
    QueueCount {
        /// Request queues the configuration offers.
        max_request_queues: u16,
        /// Queues handed over.
        got: usize,
    },
    /// A queue handed over at activation is not valid for the guest memory.
    #[error("queue {index} is not valid (size or ring addresses)")]
    InvalidQueue {
        /// The queue's index (0 is hiprio).
        index: usize,
    },
    /// `process_queue` named a queue that is not active (out of range, not handed over at
    /// activation, or the device was reset).
    #[error("queue {index} is not active")]
    QueueNotActive {
        /// The queue's index (0 is hiprio).
        index: usize,
    },
    /// `activate` on an active device.
    #[error("the device is already active; reset it first")]
    AlreadyActive,
    /// Creating a kick thread's epoll instance or stop event failed (Linux).
    #[error("failed to set up the worker's event loop")]
    WorkerEvents(#[source] io::Error),
    /// Spawning a worker thread failed.
    #[error("failed to spawn a queue worker thread")]
    SpawnWorker(#[source] io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
