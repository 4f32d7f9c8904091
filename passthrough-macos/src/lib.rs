//! `passthrough-macos`: a FUSE backend serving a host directory on macOS to a Linux guest (see
//! the repository's `ARCHITECTURE.md` and `reference/macos.md`). This crate is being built.
//!
//! Its logic compiles on every OS so that it can be tested on Linux; only the host layer that
//! calls macOS is `cfg(target_os = "macos")`. `cargo xtask check-macos` type-checks the crate for
//! the Apple targets on Linux, which also evaluates the compile-time checks of every Darwin
//! constant against the `libc` crate's Apple values.
//!
//! Translations between the guest (Linux numbering) and the host (Darwin numbering), each a pure,
//! table-tested module:
//!
//! * [`darwin_abi`]: the Darwin constants, checked against `libc` on Apple targets;
//! * [`errno`]: host errors ([`errno::DarwinErrno`]) to guest errors ([`fuse_abi::Errno`]);
//! * [`open_flags`]: guest open flags (per guest architecture) to host open flags;
//! * [`seek`], [`lock`], [`at_flags`], [`rename`], [`time`] (`UTIME_NOW`/`UTIME_OMIT`),
//!   [`dev`] (device numbers), [`fallocate`] (modes to host operations);
//! * [`xattr`]: flags, the name policy (hidden names), list buffers and replies;
//! * [`override_stat`]: the `user.containers.override_stat` codec (libkrun's format) and how the
//!   guest's mode is composed; [`ownership`]: the override values the backend writes;
//! * [`stat`]: host `stat` to `fuse_attr`; [`statfs`]: host `statfs` to the STATFS reply;
//! * [`access`]: ACCESS decided from the guest's view; [`volfs`]: `/.vol/<dev>/<ino>` paths;
//! * [`capabilities`]: exactly the INIT flags the backend honours (never `POSIX_ACL` or
//!   `ALLOW_IDMAP`).

pub mod access;
pub mod at_flags;
pub mod capabilities;
pub mod darwin_abi;
pub mod dev;
pub mod errno;
pub mod fallocate;
pub mod host;
pub mod lock;
pub mod open_flags;
pub mod override_stat;
pub mod ownership;
pub mod rename;
pub mod seek;
pub mod stat;
pub mod statfs;
pub mod time;
pub mod volfs;
pub mod xattr;

mod config;
mod fs;
mod inode;

pub use config::{CachePolicy, CasePolicy, Config};
pub use fs::PassthroughFs;
pub use host::{Host, HostDirent, HostId, HostResult, Node, SyncMode};
