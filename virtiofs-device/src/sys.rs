//! The daemon's only unsafe operation: adopting an inherited socket descriptor (`--fd`).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;

/// Takes ownership of the inherited descriptor `fd`, which must be an open socket.
///
/// # Errors
///
/// `InvalidInput` if `fd` is negative, one of stdin/stdout/stderr, not open, or not a socket.
pub(crate) fn listener_from_fd(fd: RawFd) -> io::Result<UnixListener> {
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "must be 3 or above",
        ));
    }
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not an open descriptor"))?;
    if !target.to_string_lossy().starts_with("socket:") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
    }
    // SAFETY: `fd` is open (checked through /proc just above) and refers to a socket; it was
    // inherited for this daemon to listen on, and this is the only place that takes ownership
    // of it (called once, from `main`), so no other owner will close it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    Ok(listener)
}
