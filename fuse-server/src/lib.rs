//! The contract between a FUSE server and its backends, the dispatcher, and FUSE_INIT
//! negotiation.
//!
//! ```text
//! fuse-abi  ◄──  fuse-server  ◄──  virtiofs-transport, passthrough-linux, passthrough-macos
//! ```
//!
//! - [`FileSystem`]: what a backend implements, one method per operation, ENOSYS by default;
//! - [`Capabilities`]: what a backend declares it can honour; nothing else is ever negotiated;
//! - [`io`]: the [`Reader`]/[`Writer`] a transport implements, with the zero-copy pair
//!   [`ZeroCopyReader`]/[`ZeroCopyWriter`] for file data.
//!
//! This crate knows nothing of virtqueues or `/dev/fuse`.
#![forbid(unsafe_code)]

mod capabilities;
mod filesystem;
pub mod io;
mod types;

pub use capabilities::Capabilities;
pub use filesystem::{FileSystem, FsResult};
pub use io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
pub use types::*;
