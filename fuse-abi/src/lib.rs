//! The FUSE wire protocol, as the Linux kernel speaks it, up to protocol 7.46.
//!
//! ```text
//! fuse-abi  ◄──  fuse-server  ◄──  virtiofs-transport / passthrough-* / virtiofs-device
//! ```
//!
//! This crate is the bottom of the stack: plain data, no I/O, no allocation, `no_std`, and no
//! `unsafe` (it is forbidden). Every `struct fuse_*` of the kernel's `include/uapi/linux/fuse.h`
//! is a `#[repr(C)]` type with [`zerocopy`] derives (`FromBytes`, `IntoBytes`, `KnownLayout`,
//! `Immutable`, `Unaligned`) and little-endian field types, so a message can be decoded from any
//! byte offset by copying, never by forming a reference into guest memory.
//!
//! # Naming
//!
//! `struct fuse_foo_bar` is [`FooBar`](crate) here, with the same fields in the same order and
//! the same names, except that C `type` is `typ` and leading underscores (`__reserved`) are
//! dropped. Flexible array members (`name[]`, `groups[]`) are not part of the Rust types; the
//! helpers in [`dirent`] and [`ext`] deal with the variable parts. Each type has a compile-time
//! size assertion, and `tests/c_layout.rs` compares every size and offset with the C header.
//!
//! # Main items
//!
//! - the wire structs ([`InHeader`], [`OutHeader`], [`InitIn`], [`InitOut`], [`EntryOut`], ...);
//! - [`Opcode`]: every opcode up to 53 (COPY_FILE_RANGE_64) and CUSE_INIT; decoding any `u32`
//!   never panics;
//! - [`InitFlags`]: the 64-bit FUSE_INIT flag word with [`InitFlags::from_wire`] and
//!   [`InitFlags::to_wire`], which apply the INIT_EXT rule;
//! - the other flag words ([`OpenOutFlags`], [`SetattrValid`], [`AttrFlags`], ...);
//! - [`Errno`]: error numbers in Linux numbering, independent of the host's libc;
//! - [`compat`]: the sizes the kernel uses for a negotiated minor version;
//! - [`limits`]: every kernel limit a server enforces or sizes by (`PATH_MAX`,
//!   `XATTR_SIZE_MAX`, `FUSE_MIN_READ_BUFFER`, the default and per-chain page counts, ...).
//!
//! # Cargo features
//!
//! None.
#![no_std]
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::arithmetic_side_effects))]

#[cfg(test)]
extern crate std;

#[macro_use]
mod macros;

pub mod compat;
pub mod dirent;
mod errno;
pub mod ext;
mod flags;
pub mod limits;
pub mod mode;
mod opcode;
mod structs;

pub use errno::Errno;
pub use flags::*;
pub use opcode::{Opcode, UnknownOpcode};
pub use structs::*;
/// Little-endian integer types used by every wire struct.
pub use zerocopy::little_endian::{I32, I64, U16, U32, U64};

/// The protocol major version this crate speaks (`FUSE_KERNEL_VERSION`).
pub const KERNEL_VERSION: u32 = 7;
/// The newest protocol minor version this crate describes (`FUSE_KERNEL_MINOR_VERSION`).
pub const KERNEL_MINOR_VERSION: u32 = 46;
/// The node id of the root directory (`FUSE_ROOT_ID`).
pub const ROOT_ID: u64 = 1;
/// The uid/gid the kernel sends when it cannot map the caller's ids (`FUSE_INVALID_UIDGID`); with
/// ALLOW_IDMAP every request that does not create an inode carries it.
pub const INVALID_UIDGID: u32 = u32::MAX;
/// Bit 63 of `unique`: a request the kernel resent after NOTIFY_RESEND (`FUSE_UNIQUE_RESEND`).
pub const UNIQUE_RESEND: u64 = 1 << 63;
/// `FUSE_DEV_IOC_CLONE`, `_IOR(229, 0, uint32_t)`: the `/dev/fuse` ioctl that attaches a newly
/// opened descriptor to an existing connection (the same number on x86-64 and arm64).
pub const DEV_IOC_CLONE: u32 = 0x8004_e500;
/// `FUSE_URING_IN_OUT_HEADER_SZ`.
pub const URING_IN_OUT_HEADER_SZ: usize = 128;
/// `FUSE_URING_OP_IN_OUT_SZ`.
pub const URING_OP_IN_OUT_SZ: usize = 128;
