//! `passthrough-macos`: see the repository's `ARCHITECTURE.md`. This crate is being built.
//!
//! Its logic compiles on every OS so that it can be tested on Linux; only the host layer that
//! calls macOS is `cfg(target_os = "macos")`. `cargo xtask check-macos` type-checks the crate for
//! the Apple targets on Linux.

pub mod access;
pub mod at_flags;
pub mod capabilities;
pub mod darwin_abi;
pub mod dev;
pub mod errno;
pub mod fallocate;
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
