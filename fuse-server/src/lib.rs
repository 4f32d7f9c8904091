//! The contract between a FUSE server and its backends, the dispatcher, and FUSE_INIT
//! negotiation.
//!
//! ```text
//! fuse-abi  ◄──  fuse-server  ◄──  virtiofs-transport, passthrough-linux, passthrough-macos
//! ```
//!
//! - [`FileSystem`]: what a backend implements, one method per operation, ENOSYS by default,
//!   with its contract (validation, lookup counts, Linux values, errnos) and a minimal backend;
//!   `Box<F>` and `Arc<F>` implement it by forwarding; the operations with many fields take
//!   `#[non_exhaustive]` argument structs ([`ReadArgs`], [`WriteArgs`], [`CreateArgs`], ...),
//!   so a field a later FUSE minor adds is not a breaking change;
//! - [`Capabilities`]: what a backend declares it can honour; nothing else is ever negotiated;
//! - [`HandleTable`]: the table of open files and directories a backend hands out
//!   [`Handle`]s from (never 0, never reused while open, EBADF for unknown ones);
//! - [`io`]: the [`Reader`]/[`Writer`] a transport implements, with the zero-copy pair
//!   [`ZeroCopyReader`]/[`ZeroCopyWriter`] for file data; [`mem`] has host-memory versions;
//! - [`Server`]: bytes in, bytes out, every opcode ([`server`] documents the server-side
//!   handling and the buffers);
//! - [`negotiate`]: FUSE_INIT negotiation as a pure function;
//! - [`limits`]: the [`Budget`](limits::Budget)s of what a guest can make a server hold and
//!   the one rate-limit policy ([`guest_warn!`]) for every log line a guest can trigger.
//!
//! This crate knows nothing of virtqueues or `/dev/fuse`.
//!
//! # Cargo features
//!
//! - `test-utils`: `fuse_server::test_utils`, a recording test backend and a null backend for other
//!   crates' tests and for fuzzing.
#![forbid(unsafe_code)]

mod capabilities;
mod filesystem;
mod handles;
pub mod io;
pub mod limits;
pub mod mem;
pub mod negotiate;
pub mod server;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
#[cfg(test)]
mod tests;
mod types;

pub use capabilities::Capabilities;
pub use filesystem::{
    CopyFileRangeArgs, CreateArgs, FileSystem, FsResult, IoctlArgs, LockArgs, OpenArgs, ReadArgs,
    ReleaseArgs, SetupMappingArgs, SetxattrArgs, TmpfileArgs, WriteArgs,
};
pub use handles::HandleTable;
pub use io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
pub use negotiate::{
    CachePolicy, NegotiationConfig, NegotiationError, PosixAcl, Readdirplus, TransportFacts,
    TransportKind,
};
pub use server::{
    Completion, Error, OpcodeCounts, Server, ServerBuffers, ServerConfig, may_free_locks,
};
pub use types::*;
