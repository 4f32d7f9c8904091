//! The few system calls the standard library, `vm-memory` and `vmm-sys-util` do not wrap: the
//! only `unsafe` code in this crate.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Creates an anonymous memory file (`memfd_create(2)`, close-on-exec), empty; size it with
/// [`File::set_len`]. A memfd is what a VMM shares with a vhost-user backend as guest RAM.
///
/// # Errors
///
/// The system call's error.
pub(crate) fn memfd_create(name: &CStr) -> io::Result<File> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call; the flags
    // are a valid combination; the call touches no memory of ours besides reading `name`.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(File::from(owned))
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `utime` and
/// `stime` in `/proc/PID/stat`; 100 if the call fails.
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}
