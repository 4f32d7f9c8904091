//! The virtio-fs device: config space, the hiprio queue and N request queues with a small pool
//! of workers each, and the `virtiofs-device` daemon's vhost-user backend.
//!
//! ```text
//! fuse-server, virtiofs-transport, passthrough-*  ◄──  virtiofs-device
//! ```
//!
//! A VMM embeds [`VirtioFs`]: it builds a [`DeviceConfig`] (tag, request queues, queue size,
//! workers per queue), answers the driver's config reads with [`VirtioFs::read_config`], passes
//! the driver's features to [`VirtioFs::ack_features`], hands over guest memory and the queues
//! with their kick and call eventfds at [`VirtioFs::activate`], and calls [`VirtioFs::reset`]
//! when the driver resets the device. Requests are answered on the queue they came from; queue 0
//! (hiprio) carries FORGET only and never gets a reply.
//!
//! A kick only takes chains off the ring (with every index checked: a queue whose indices are
//! impossible is broken until reset); the queue's workers serve them and complete them out of
//! order, so neither a reset nor a vhost-user message (GET_VRING_BASE, SET_VRING_CALL,
//! SET_MEM_TABLE, a disconnect) ever waits for a slow request, and a request that completes after
//! its queue was stopped is discarded. A vhost-user memory table whose regions run past the end of
//! their backing file is refused (touching it would be SIGBUS).
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
//! auto|on|off`, `--queues N`, `--queue-size N`, and
//! `--fuse-mount DIR` (serve the same backend through the host's `/dev/fuse` at DIR, with
//! `--fuse-option` mount options). The daemon serves one frontend after another on its socket
//! (a QEMU exit or guest shutdown is not the end), and a guest reboot's second FUSE_INIT
//! starts a fresh session; no request makes it exit.
//!
//! # Cargo features
//!
//! - `vhost-user`: [`vhost_user::VhostUserFs`], the `VhostUserBackend` implementation;
//! - `daemon` (default): the `virtiofs-device` binary (implies `vhost-user`).
//!
//! # Safety
//!
//! No unsafe code. Guest memory is reached only through `vm-memory` and `virtio-queue`; every
//! guest-supplied length is checked by them and by the server.
#![forbid(unsafe_code)]

mod config;
mod device;
mod error;
mod queue;
#[cfg(feature = "vhost-user")]
#[cfg_attr(docsrs, doc(cfg(feature = "vhost-user")))]
pub mod vhost_user;

pub use config::{
    DEFAULT_QUEUE_SIZE, DEFAULT_WORKERS_PER_QUEUE, DeviceConfig, DeviceConfigBuilder,
    MAX_QUEUE_SIZE, MAX_REQUEST_QUEUES, MAX_WORKERS_PER_QUEUE, TAG_LEN, Tag, VirtioFsConfig,
};
pub use device::{QueueResources, VirtioFs};
pub use error::{Error, Result};
pub use queue::{QueueRole, Stats};
