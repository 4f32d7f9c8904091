//! `passthrough-macos`: a FUSE backend serving a host directory on macOS to a Linux guest (see
//! the repository's `ARCHITECTURE.md` and `reference/macos.md`).
//!
//! ```text
//! fuse-server::FileSystem  ◄──  PassthroughFs<H: Host>  ──►  Host (the seam)
//!                                (all the logic)               ├─ DarwinHost  cfg(macos): nix/libc, volfs paths
//!                                                              └─ LinuxHost   cfg(linux): behaves like macOS
//! ```
//!
//! # Design
//!
//! - **Inodes** are host identities `(dev, ino)`, reopened through `/.vol/<dev>/<ino>`: nothing
//!   is kept open per inode on macOS (the Linux adapter keeps an `O_PATH` descriptor per
//!   identity), except a descriptor opened just before an inode the guest still uses loses its
//!   last name (unlink, rmdir, rename over it), kept until the guest forgets it.
//! - **Ownership and mode** the guest sets live in the `user.containers.override_stat` xattr
//!   (libkrun's format, so existing shares keep their metadata; hidden from the guest). Host
//!   objects are created `0600`/`0700` and never chowned. Device nodes, FIFOs and sockets are
//!   host regular files with their type in the override (a device's number in
//!   `user.virtiofs.rdev`); READDIR reports their guest type.
//! - **Confinement**: a guest name is one component, never `.` or `..`; the host layer never
//!   follows a symlink (`O_NOFOLLOW`, `XATTR_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `linkat` without
//!   follow).
//! - **One open path**: every descriptor the backend does I/O through (OPEN, OPENDIR, CREATE
//!   also when the name already exists, SETATTR of the size, the per-owner lock descriptions,
//!   the descriptor kept for an unlinked inode, and so the handles READ, WRITE, FSYNC,
//!   FALLOCATE, LSEEK, COPY_FILE_RANGE and READDIR use) is an `IoFd`, which only one function
//!   makes (`open::open_io`): it `lstat`s the node first and refuses anything but a regular
//!   file or directory (`ENXIO` for a device node, FIFO or socket, `ELOOP` for a symlink)
//!   without opening it, has the [`Host`] open it (whose contract, [`Host::open`], is the same
//!   rule and never to block), and `fstat`s the result before use. A device node or FIFO a
//!   host user leaves in the share is listed, stat'ed, renamed and removed, never opened.
//!   (Extended attributes, `chmod` and timestamps act by path or on `O_PATH` descriptors and
//!   open nothing.)
//! - **Budgets** ([`fuse_server::limits::Budget`], `ENFILE` when spent, never a panic):
//!   descriptors ([`Config::max_fds`], by default three quarters of `RLIMIT_NOFILE` at start:
//!   each handle, each directory stream, each lock description, each descriptor kept for an
//!   unlinked inode, and each identity the Linux adapter keeps an `O_PATH` descriptor for),
//!   inodes ([`Config::max_inodes`], 2¹⁸ by default: about 40 MiB of table), and the directory
//!   streams handles keep between READDIRs ([`Config::max_dir_streams`], 1024 by default:
//!   about 4.5 MiB of buffers on Linux; past it a handle reads through a stream opened for
//!   the one READDIR).
//!
//!   What a hostile guest can make the backend hold, from the structures' sizes (allocator
//!   overhead aside): per descriptor unit at most about 200 bytes (a directory's handle: 48 B
//!   handle, 64 B state, their boxes and table entry; a file's handle, a lock description or
//!   a registry identity take less), per inode about 160 bytes, per kept directory stream
//!   about 5 KiB (buffer and one pending name). At the defaults that is about
//!   `max_fds` × 200 B + 40 MiB + 5 MiB: under 10 MiB with a 1024 or 65 536 descriptor limit
//!   besides the inode table, about 200 MiB with a limit of 2²⁰.
//! - **Directory handles** keep a host directory stream of their own and the index of the next
//!   entry; a READDIR at that offset continues the stream, offset 0 rewinds it, any other
//!   offset rewinds and skips (offsets are index + 1, no `telldir` needed). A handle's memory
//!   is the stream's fixed buffer (4 KiB on Linux, libc's on macOS) and at most one name,
//!   whatever the directory's size; nothing is copied per entry
//!   ([`PassthroughFs::dir_handle_footprint`]).
//! - **Security labels** (SECURITY_CTX, only with [`Config::security_label`]): stored only as
//!   a `security.*` attribute through SETXATTR's name handling; others are ignored.
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
//! * [`access`]: ACCESS decided from the guest's view; [`volfs`]: `/.vol/<dev>/<ino>` paths,
//!   built in place in a [`cstr::CStrBuf`] as every path and name a host call takes;
//! * [`capabilities`]: exactly the INIT flags the backend honours (never `POSIX_ACL` or
//!   `ALLOW_IDMAP`).

pub mod access;
pub mod at_flags;
pub mod capabilities;
pub mod cstr;
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
mod open;

pub use config::{CachePolicy, CasePolicy, Config};
pub use fs::PassthroughFs;
pub use host::{DirStream, DirentRef, Host, HostDirent, HostId, HostResult, Node, SyncMode};
