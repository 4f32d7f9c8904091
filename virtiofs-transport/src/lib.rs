//! Moves FUSE messages between a FUSE client and [`fuse_server`]: descriptor chains on a
//! virtqueue in guest memory (virtio-fs), and the host kernel's `/dev/fuse` channel.
//!
//! ```text
//! fuse-abi ◄── fuse-server ◄── virtiofs-transport ◄── virtiofs-device
//!                 (Reader, Writer, ZeroCopy*)      (vm-memory, virtio-queue, /dev/fuse)
//! ```
//!
//! # Virtqueues
//!
//! A worker owns one [`ChainBuffers`]. For each chain it pops,
//! [`ChainBuffers::parse`] walks the descriptors — direct or through one indirect table — and
//! checks every index, address and length the guest supplied (overflow, outside guest memory,
//! readable after writable, loops, longer than the table): a malformed chain is a typed
//! [`Error`], never a panic. The [`ChainRequest`] it returns holds a [`ChainReader`] over the
//! device-readable buffers and a [`ChainWriter`] over the device-writable ones; both implement
//! fuse-server's I/O traits, file data moves with one `preadv`/`pwritev` over iovecs of the
//! guest buffers, and every byte written into guest memory is marked dirty in vm-memory's
//! bitmap. [`ChainRequest::finish`] checks the reply (`out_header.len` == bytes written,
//! `unique` echoed, error in range) — the out header as the writer recorded it while writing,
//! never read back from memory the guest can rewrite — and is the only source of the used
//! length: a [`CheckedCompletion`], fuse-server's [`Completion`](fuse_server::Completion) once
//! checked.
//! [`RingState::pop`] takes chain heads off the avail ring after checking the driver's indices
//! itself (`avail->idx` at most the queue size ahead, every head inside the table): a queue whose
//! indices are impossible is broken, logged once and not polled again until it is reset or set up
//! anew. Indirect descriptors are accepted only when VIRTIO_RING_F_INDIRECT_DESC was negotiated
//! ([`DescTable::indirect`]). [`process_queue`] is the whole synchronous loop, with EVENT_IDX
//! notification suppression; a device that completes requests on other threads uses
//! [`RingState::pop`], [`serve_chain`] and [`add_used`] itself. Every log line a guest can
//! trigger goes through `fuse_server::guest_warn!`.
//!
//! Guest memory is only reached through vm-memory's `Bytes` and `VolatileSlice` APIs; no Rust
//! reference into guest memory is ever formed, since the guest may change it at any time.
//!
//! # `/dev/fuse`
//!
//! See `dev_fuse` (Linux, feature `dev-fuse`): mount with options, one request per `read()`,
//! replies with `writev`, several reader threads on cloned descriptors, unmount on drop.
//!
//! # Platforms
//!
//! Everything but `dev_fuse` is portable Unix code: the chain reader and writer, the ring
//! checks and the zero-copy file I/O (`preadv`/`pwritev` through `libc`, in macOS since 11)
//! build for Linux and macOS alike. `dev_fuse` (mount(2), `/dev/fuse`, `FUSE_DEV_IOC_CLONE`)
//! exists only on Linux with the `dev-fuse` feature. `cargo xtask check-macos` type-checks and
//! lints the crate for `aarch64-apple-darwin` and `x86_64-apple-darwin`; its logic is tested on
//! Linux only.
//!
//! # Unsafe code
//!
//! Only in the private `sys` module: one system call per `unsafe` block, each with its proof.
//!
//! # Cargo features
//!
//! - `dev-fuse` (default): the `dev_fuse` module, on Linux (without effect elsewhere);
//! - `fuzzing`: `fuzzing`, which builds chains in mock guest memory from raw bytes (the
//!   `transport_chain` fuzz target and its regression tests).
#![deny(unsafe_code)]

mod chain;
#[cfg(all(feature = "dev-fuse", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "dev-fuse", target_os = "linux"))))]
pub mod dev_fuse;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod queue;
mod reader;
mod reply;
#[allow(unsafe_code)]
mod sys;
mod writer;

pub use chain::{ChainBuffers, ChainRequest, DescTable};
pub use error::{Error, Result};
pub use queue::{
    Pop, QueueStats, RingState, add_used, drop_malformed, process_queue, serve_chain,
    serve_request, serve_request_or_pend,
};
pub use reader::ChainReader;
pub use reply::CheckedCompletion;
pub use writer::ChainWriter;
