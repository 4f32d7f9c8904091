//! The lock-down's unsafe operations: the SIGSYS handler of `--seccomp trap`, and the
//! user-notification filter and its listener of `--seccomp log`. One operation per unsafe block.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use seccompiler::BpfProgram;

use super::seccomp::{Arch, forbidden_message};

/// The exit status after a forbidden call under `--seccomp trap` (128 + SIGSYS, as a shell
/// reports a death by SIGSYS).
pub(crate) const TRAP_EXIT: i32 = 128 + libc::SIGSYS;

/// The head of `siginfo_t` for SIGSYS (`_sigsys` in the kernel's `siginfo.h`): the union starts
/// at offset 16 on 64-bit targets.
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// The SIGSYS handler: writes the forbidden call's name to stderr and exits. Only
/// async-signal-safe work: a static table lookup, a stack buffer, write(2) and _exit(2).
extern "C" fn on_sigsys(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let info = info.cast::<SigsysInfo>().cast_const();
    // SAFETY: the kernel passes a valid siginfo_t for SIGSYS to an SA_SIGINFO handler; its
    // `_sigsys` member is laid out as `SigsysInfo` on the 64-bit targets this daemon filters.
    let nr = unsafe { (*info).syscall };
    let mut buf = [0u8; 160];
    let len = forbidden_message(Arch::HOST, nr, &mut buf);
    // SAFETY: `buf` holds `len` initialised bytes; write(2) is async-signal-safe. Its result
    // does not matter: the process exits either way.
    let _ = unsafe { libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len) };
    // SAFETY: _exit(2) is async-signal-safe and ends the process without running destructors
    // or atexit handlers (the state the forbidden call left may be broken).
    unsafe { libc::_exit(TRAP_EXIT) }
}

/// Installs [`on_sigsys`] for SIGSYS (before a `SECCOMP_RET_TRAP` filter).
pub(crate) fn install_sigsys_handler() -> io::Result<()> {
    let action = SigAction::new(
        SigHandler::SigAction(on_sigsys),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    // SAFETY: `on_sigsys` does async-signal-safe work only (see there); the old action is
    // dropped.
    unsafe { signal::sigaction(Signal::SIGSYS, &action) }?;
    Ok(())
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: no execve can gain privileges (and a seccomp filter may be
/// installed without CAP_SYS_ADMIN).
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    Ok(nix::sys::prctl::set_no_new_privs()?)
}

/// Installs `program` on every thread (TSYNC is refused with a listener, so the caller must be
/// the only thread) with `SECCOMP_FILTER_FLAG_NEW_LISTENER`: the descriptor its
/// `SECCOMP_RET_USER_NOTIF` returns are read from. Sets no_new_privs first.
pub(crate) fn install_with_listener(program: &BpfProgram) -> io::Result<OwnedFd> {
    set_no_new_privs()?;
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        // seccompiler's `sock_filter` is `#[repr(C)]` with the kernel's layout, as libc's.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points to `len` valid instructions that outlive the call (the kernel
    // copies them); the flags ask for a new listener descriptor as the result.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &raw const fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One notification: its id, the calling thread and the system call number.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Notification {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    pub(crate) nr: i32,
}

/// Waits for the next notification on `listener`.
pub(crate) fn receive(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    // SAFETY: all-zero is a valid `seccomp_notif`, and the kernel requires it zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `listener` is a seccomp listener; the ioctl fills the valid `notif` it points to.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &raw mut notif,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Notification {
        id: notif.id,
        pid: notif.pid,
        nr: notif.data.nr,
    })
}

/// Lets notification `id`'s call go through (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
pub(crate) fn let_through(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: u32::try_from(libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE).unwrap_or(1),
    };
    // SAFETY: `listener` is a seccomp listener; the ioctl reads the valid `resp`.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &raw mut resp,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
