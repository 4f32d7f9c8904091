//! A raw vhost-user virtio-fs frontend of the project's own, for testing daemons.
//!
//! It plays the VMM and the guest driver at once: it connects to a daemon's vhost-user
//! socket, negotiates like QEMU's `vhost-user-fs-pci`, shares guest RAM (a memfd), lays out
//! split virtqueues in that RAM itself, and sends FUSE requests built from [`fuse_abi`]'s
//! structs, as the guest kernel would. Because this crate writes every descriptor and ring
//! index itself, it can also write what no driver would: an available index far ahead, a head
//! beyond the queue, descriptor loops, chains without a writable part, indirect tables, a
//! memory region larger than its file. It is used by:
//!
//! - the hostile tier, `virtiofs-hostile` (this crate's binary, run by `cargo xtask hostile`),
//!   which drives the release daemon through malformed chains, impossible ring indices,
//!   special files, budget exhaustion and log floods;
//! - the load generator, `virtiofs-load` (run by `cargo xtask bench --against virtiofsd`):
//!   a chosen number of requests in flight per queue, one client thread per queue
//!   ([`Frontend::queues_mut`]), [`Queue::push_encoded`] to batch under one kick without
//!   allocating, [`Queue::drain_used`] and [`Queue::finish_into`] to take replies in any
//!   order, [`Config::event_idx`] with [`Queue::disable_interrupts`],
//!   [`Queue::enable_interrupts`] and [`Queue::kick_if_needed`] for Linux's notification
//!   suppression, and [`process::CpuSample`] for the daemon's CPU per request.
//!
//! # Shape
//!
//! - [`Frontend::connect`] with a [`Config`]: the vhost-user handshake and queue setup; the
//!   control-plane messages a test times ([`Frontend::set_vring_call`],
//!   [`Frontend::get_vring_base`], ...). Every message asks for an acknowledgement and has a
//!   timeout, so a daemon that does not answer is a test failure, never a hang.
//! - [`Queue`]: [`Queue::send`] a [`Request`] with a reply capacity, get a [`Pending`],
//!   [`Queue::wait`] for its [`Reply`] with a timeout; replies may complete in any order. The
//!   raw methods write descriptors and ring fields directly.
//! - [`fuse`]: typed request builders (INIT, LOOKUP, MKNOD, CREATE, OPEN, READ, WRITE,
//!   RELEASE, OPENDIR, READDIR, GETATTR, ...) and a reply parser that checks
//!   `out_header.len` against the used length.
//! - [`GuestRam`]: the memfd and its mapping.
//! - [`process::Daemon`]: the daemon as a child process, with its log, CPU time and RSS.
//!
//! Linux only (memfd, eventfd, epoll, `/proc`). It has no `unsafe` code: the system calls the
//! standard library and vmm-sys-util lack go through `nix` (the private `sys` module).

pub mod frontend;
pub mod fuse;
pub mod memory;
pub mod process;
pub mod queue;
mod sys;

use std::time::Duration;

pub use frontend::{Config, Frontend};
pub use fuse::{Reply, Request};
pub use fuse_abi::Errno;
pub use memory::GuestRam;
pub use queue::{Descriptor, Pending, Queue, QueueLayout};

/// What can go wrong talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vhost-user message failed: refused, not acknowledged in time, or the socket broke.
    #[error("vhost-user: {0}")]
    VhostUser(vhost::Error),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A guest memory access or mapping failed.
    #[error("guest memory: {0}")]
    Memory(String),
    /// No reply within the time allowed.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// Not enough free descriptors on the queue.
    #[error("queue {0} has no free descriptors left")]
    QueueFull(usize),
    /// The daemon answered with an errno.
    #[error("the daemon answered {0}")]
    Errno(Errno),
    /// The reply is malformed.
    #[error("malformed reply: {0}")]
    BadReply(String),
    /// The daemon lacks something this frontend needs.
    #[error("the daemon does not offer {0}")]
    Unsupported(&'static str),
}

impl From<vhost::Error> for Error {
    fn from(e: vhost::Error) -> Self {
        Error::VhostUser(e)
    }
}
