//! The virtio-fs device: config space, the hiprio queue and N request queues, each served by the
//! thread that kicks it with a small pool of workers for requests that may block, and the
//! `virtiofs-device` daemon's vhost-user backend.
//!
//! ```text
//! fuse-server, virtiofs-transport, passthrough-*  ◄──  virtiofs-device
//! ```
//!
//! A VMM embeds [`VirtioFs`]: it builds a [`DeviceConfig`] (tag, request queues, queue size,
//! pool workers per queue), answers the driver's config reads with [`VirtioFs::read_config`], passes
//! the driver's features to [`VirtioFs::ack_features`], hands over guest memory and the queues,
//! each with its [`Interrupt`], at [`VirtioFs::activate`], calls [`VirtioFs::process_queue`]
//! whenever the driver kicks a queue, and calls [`VirtioFs::reset`] when the driver resets the
//! device. The device owns no event loop: the VMM's loop drives it. Requests are answered on the
//! queue they came from; queue 0 (hiprio) carries FORGET only and never gets a reply.
//!
//! A kick takes chains off the ring (with every index checked: a queue whose indices are
//! impossible is broken until reset) and serves them on the kicking thread, except requests that
//! may block (FSYNC, FLUSH, ...) and the excess of a burst, which go to the queue's pool
//! of workers; requests complete out of order, the completions of a batch share one interrupt,
//! and a watchdog hands the ring to the pool while the kicking thread is stuck in one request.
//! Neither a reset nor a vhost-user message (GET_VRING_BASE, SET_VRING_CALL, SET_MEM_TABLE, a
//! disconnect) ever waits for a slow request, and a request that completes after its queue was
//! stopped is discarded. With [`DeviceConfigBuilder::inline`] there is no pool and
//! `process_queue` serves everything on the caller's thread.
//!
//! A SETLKW whose lock is held waits on no thread: the backend tries it once, and the device
//! *parks* the chain (its head stays with the device, nothing goes on the used ring) and serves
//! it again when a request that may free a lock completes on any queue, and on a per-request
//! backoff timer (1 ms doubling to 200 ms) for locks held outside the guest. A device with pools
//! runs the timer on a retry thread per queue (and the kick threads wait no longer than it);
//! a VMM driving an inline device arms its own timer for [`VirtioFs::next_retry`] and calls
//! [`VirtioFs::retry_parked`] when it fires. A reset drops parked requests; a queue never has
//! more than its size of them ([`Stats::parked`] counts them). A vhost-user memory table whose regions
//! run past the end of their backing file is refused (touching it would be SIGBUS).
//!
//! # Embedding on macOS
//!
//! The library builds for macOS with `default-features = false` (the daemon and `vhost-user`
//! are Linux-only; so are [`VirtioFs::spawn_kick_threads`], epoll threads that wait for kick
//! eventfds and call the same `process_queue`). The backend is `passthrough-macos`'s
//! `PassthroughFs<DarwinHost>`; the request workers are plain threads and exist on macOS too.
//! `examples/embed.rs` is a minimal VMM-side loop. What was verified: `cargo xtask check-macos`
//! type-checks and lints this crate (library and example), `virtiofs-transport` and
//! `passthrough-macos` for `aarch64-apple-darwin` and `x86_64-apple-darwin`; the logic is tested
//! on Linux (`tests/embed_macos.rs` plays the VMM with the macOS backend over its Linux adapter,
//! through `process_queue` on mock rings); none of it has run on a Mac.
//!
//! QEMU, Cloud Hypervisor and crosvm instead connect to the `virtiofs-device` binary over
//! vhost-user (`vhost_user` module, feature `vhost-user`).
//!
//! # The daemon
//!
//! ```text
//! virtiofs-device --socket-path /tmp/vfs.sock --shared-dir /srv/share [--queues N] &
//! qemu-system-x86_64 ... \
//!   -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \
//!   -chardev socket,id=char0,path=/tmp/vfs.sock \
//!   -device vhost-user-fs-pci,chardev=char0,tag=myfs,queue-size=1024[,num-request-queues=N]
//! # in the guest: mount -t virtiofs myfs /mnt
//! ```
//!
//! The options are virtiofsd's main ones (`--socket-path`, `--fd`, `--shared-dir`, `--tag`,
//! `--cache`, `--xattr`, `--posix-acl`, `--xattrmap`, `--readonly`, `--announce-submounts`,
//! `--inode-file-handles`, `--writeback`, `--allow-direct-io`, `--sandbox none`,
//! `--log-level`, `--thread-pool-size`, `--seccomp kill|log|trap|none`), plus `--landlock
//! auto|on|off`, `--queues N`, `--queue-size N`, `--poll-us N` (a request queue's serving
//! thread polls the drained ring for up to N µs, at most 1000, before it sleeps:
//! [`DeviceConfigBuilder::poll_us`] for embedders), and
//! `--fuse-mount DIR` (serve the same backend through the host's `/dev/fuse` at DIR, with
//! `--fuse-option` mount options). The daemon serves one frontend after another on its socket
//! (a QEMU exit or guest shutdown is not the end), and a guest reboot's second FUSE_INIT
//! starts a fresh session; no request makes it exit.
//!
//! # Cargo features
//!
//! - `vhost-user`: `vhost_user::VhostUserFs`, the `VhostUserBackend` implementation (Linux;
//!   without effect elsewhere);
//! - `daemon` (default): the `virtiofs-device` binary (implies `vhost-user`; Linux only).
//!
//! # Safety
//!
//! No unsafe code. Guest memory is reached only through `vm-memory` and `virtio-queue`; every
//! guest-supplied length is checked by them and by the server.
#![forbid(unsafe_code)]

mod config;
mod device;
mod error;
#[cfg(target_os = "linux")]
mod kick;
mod park;
mod queue;
#[cfg(all(feature = "vhost-user", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "vhost-user", target_os = "linux"))))]
pub mod vhost_user;
mod watch;

pub use config::{
    DEFAULT_QUEUE_SIZE, DEFAULT_WORKERS_PER_QUEUE, DeviceConfig, DeviceConfigBuilder, MAX_POLL_US,
    MAX_QUEUE_SIZE, MAX_REQUEST_QUEUES, MAX_WORKERS_PER_QUEUE, TAG_LEN, Tag, VirtioFsConfig,
};
pub use device::{Interrupt, QueueHandle, QueueResources, VirtioFs};
pub use error::{Error, Result};
pub use queue::{QueueRole, Stats};
