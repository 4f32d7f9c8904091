//! The daemon's unsafe operations: adopting an inherited socket descriptor (`--fd`), `fork`
//! into the new PID namespace, and the signal handlers of the namespace sandbox (the parent
//! forwards termination signals to the daemon; the daemon, PID 1 of its namespace, exits on
//! them).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

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

/// The termination signals the sandbox's parent forwards and its child exits on.
pub(crate) const TERMINATION: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The set of [`TERMINATION`] signals.
pub(crate) fn termination_set() -> SigSet {
    let mut set = SigSet::empty();
    for sig in TERMINATION {
        set.add(sig);
    }
    set
}

/// `fork`: `Some(child)` in the parent, `None` in the child.
///
/// # Errors
///
/// The `fork` error.
pub(crate) fn fork() -> io::Result<Option<Pid>> {
    // SAFETY: called while the process has a single thread (the sandbox is entered before any
    // thread is started, see `sandbox::enter_pid_namespace`), so the child's copy of the
    // address space holds no lock another thread owned, and may allocate.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => Ok(Some(child)),
        ForkResult::Child => Ok(None),
    }
}

/// The daemon's PID (in the parent's PID namespace), for the forwarding handler.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last signal forwarded (0: none).
static FORWARDED: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    FORWARDED.store(sig, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // kill is async-signal-safe (nix's wrapper allocates nothing); `child` is our own
        // child's PID, not yet reaped (the parent reaps it only after the handlers are reset).
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = signal::kill(Pid::from_raw(child), sig);
        }
    }
}

extern "C" fn exit_on(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and ends the process at once (no destructor runs,
    // which is what a default-action signal did before the daemon became a PID 1).
    unsafe { libc::_exit(128 + sig) };
}

fn install(handler: SigHandler) -> io::Result<()> {
    let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    for sig in TERMINATION {
        // SAFETY: the handlers installed here (`forward`, `exit_on`, or the default action)
        // only make async-signal-safe calls and touch atomics.
        unsafe { signal::sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    Ok(())
}

/// In the parent: forwards the termination signals to `child` from now on.
///
/// # Errors
///
/// The `sigaction` error.
pub(crate) fn forward_termination_to(child: Pid) -> io::Result<()> {
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    install(SigHandler::Handler(forward))
}

/// The last termination signal the parent forwarded.
pub(crate) fn forwarded() -> Option<Signal> {
    Signal::try_from(FORWARDED.load(Ordering::SeqCst)).ok()
}

/// In the daemon (PID 1 of its namespace, where a signal without a handler is ignored):
/// exits with status 128 + the signal's number on a termination signal.
///
/// # Errors
///
/// The `sigaction` error.
pub(crate) fn exit_on_termination() -> io::Result<()> {
    install(SigHandler::Handler(exit_on))
}

/// Ends the process by `sig` with its default action (as the daemon ended).
pub(crate) fn die_by(sig: Signal) -> ! {
    let _ = install_default(sig);
    let _ = signal::sigprocmask(
        signal::SigmaskHow::SIG_UNBLOCK,
        Some(&SigSet::from(sig)),
        None,
    );
    let _ = signal::raise(sig);
    std::process::exit(128 + sig as i32)
}

fn install_default(sig: Signal) -> io::Result<()> {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: restoring the default action installs no handler.
    unsafe { signal::sigaction(sig, &action) }.map_err(io::Error::from)?;
    Ok(())
}
