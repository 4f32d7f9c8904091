//! `passthrough-macos`: a FUSE backend serving a host directory on macOS to a Linux guest (see
//! the repository's `ARCHITECTURE.md` and `reference/macos.md`).
//!
//! ```text
//! fuse-server::FileSystem  ◄──  PassthroughFs<H: Host>  ──►  Host (the seam)
//!                                (all the logic)               ├─ DarwinHost  cfg(macos): libc, volfs paths
//!                                                              └─ LinuxHost   cfg(linux): behaves like macOS
//! ```
//!
//! # Design
//!
//! - **Inodes** are host identities `(dev, ino)`, reopened through `/.vol/<dev>/<ino>`: nothing
//!   is kept open per inode, except a descriptor opened just before an inode the guest still
//!   uses loses its last name (unlink, rmdir, rename over it), kept until the guest forgets it.
//! - **Ownership and mode** the guest sets live in the `user.containers.override_stat` xattr
//!   (libkrun's format, so existing shares keep their metadata; hidden from the guest). Host
//!   objects are created `0600`/`0700` and never chowned. Device nodes, FIFOs and sockets are
//!   host regular files with their type in the override (a device's number in
//!   `user.virtiofs.rdev`); READDIR reports their guest type.
//! - **Confinement**: a guest name is one component, never `.` or `..`; the host layer never
//!   follows a symlink (`O_NOFOLLOW`, `XATTR_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `linkat` without
//!   follow). Only regular files and directories are opened on the host.
//! - **Errors**: the [`Host`] returns [`errno::DarwinErrno`]; the only way to a guest error is
//!   [`errno::DarwinErrno::to_linux`], so a missed translation does not compile.
//! - **Case-insensitive volumes** (APFS's default) are detected per volume
//!   (`_PC_CASE_SENSITIVE`) and handled by [`CasePolicy`]: by default a name resolves only in
//!   its stored spelling, so the guest's dentry cache never holds two names for one inode.
//! - **Locks**: POSIX locks as open-file-description locks, one host description per (inode,
//!   guest lock owner); `flock` on the open file; a blocking request retries for a second, then
//!   answers `EINTR` (a worker never blocks in the host kernel). Both only when configured.
//! - **FSYNC** is `fsync` or, with [`SyncMode::Full`], `F_FULLFSYNC`.
//! - **Capabilities**: exactly what it honours ([`capabilities`]): never `POSIX_ACL`,
//!   `ALLOW_IDMAP` or `EXPORT_SUPPORT`; `WRITEBACK_CACHE` only when configured.
//!
//! The logic compiles on every OS and is tested on Linux against `host::LinuxHost` (Darwin
//! errno numbers, identities that resolve only while named, ownership only in the override,
//! xattrs on symlinks); the same adapter lets `virtiofs-device --backend macos-logic` serve a
//! real guest with this backend. `cargo xtask check-macos` type-checks the crate, `DarwinHost`
//! included, for the Apple targets on Linux, which also evaluates the compile-time checks of
//! every Darwin constant against the `libc` crate's Apple values.
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
