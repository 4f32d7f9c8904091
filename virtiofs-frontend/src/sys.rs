//! The few system calls the standard library, `vm-memory` and `vmm-sys-util` do not wrap, through
//! `nix`: no `unsafe` code is left in this crate.

use std::ffi::CStr;
use std::fs::File;
use std::io;

use nix::sys::memfd::{MemFdCreateFlag, memfd_create as nix_memfd_create};
use nix::unistd::{SysconfVar, sysconf};

/// Creates an anonymous memory file (`memfd_create(2)`, close-on-exec), empty; size it with
/// [`File::set_len`]. A memfd is what a VMM shares with a vhost-user backend as guest RAM.
///
/// # Errors
///
/// The system call's error.
pub(crate) fn memfd_create(name: &CStr) -> io::Result<File> {
    Ok(File::from(nix_memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC,
    )?))
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `utime` and
/// `stime` in `/proc/PID/stat`; 100 if the call fails.
pub(crate) fn clock_ticks_per_second() -> u64 {
    let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten();
    ticks
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}
