//! The sandbox (`--sandbox namespace|chroot|none`), the descriptor limit (`--rlimit-nofile`)
//! and the socket's group (`--socket-group`).
//!
//! `namespace`, in order (see `main::run`):
//!
//! 1. [`enter_pid_namespace`], while the process has one thread: `unshare` a PID namespace
//!    (and, when not started as root, a user namespace first, mapping the caller's uid and gid
//!    to themselves), then `fork`. The parent stays behind: it forwards SIGTERM, SIGINT and
//!    SIGHUP to the child, reaps it and exits with its status, with no capability and under
//!    its own seccomp filter (`lockdown::lock_down_parent`, installed by `main::run`). The
//!    child is PID 1 of the new namespace; it dies with the parent (`PR_SET_PDEATHSIG`).
//! 2. [`isolate_mounts`] in the child: new mount, IPC, UTS and network namespaces; the mount
//!    tree made a recursive slave (the host's mounts and unmounts still reach the copy, nothing
//!    made here reaches the host); a fresh `/proc` for the new PID namespace; the shared
//!    directory bind-mounted onto itself (recursively), so that it is a mount to pivot into.
//! 3. The backend is built: it opens the share and its `/proc/self/fd` descriptor.
//! 4. [`pivot_into`]: `pivot_root` into the share and the old root detached, so nothing else of
//!    the host's filesystem can be named; the `/proc` mount goes with it (the backends hold
//!    their `/proc/self/fd` descriptor).
//!
//! The vhost-user socket (or the `--fuse-mount` mount) is made before step 1, in the caller's
//! namespaces, and the descriptors cross every step.

use std::ffi::CString;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use log::info;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigmaskHow, sigprocmask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Group, Pid, chdir, chroot, getgid, getuid, pivot_root};

use crate::sys;

/// The default `--rlimit-nofile` target, as virtiofsd's: at most a million.
const DEFAULT_NOFILE: u64 = 1_000_000;

/// Where [`enter_pid_namespace`] returns.
#[derive(Debug)]
pub(crate) enum Started {
    /// In the parent, which only waits: [`Parent::wait`].
    Parent(Parent),
    /// In the daemon, PID 1 of the new namespace.
    Child,
}

/// The parent left behind by [`enter_pid_namespace`].
#[derive(Debug)]
pub(crate) struct Parent {
    child: Pid,
}

impl Parent {
    /// Waits for the daemon and ends as it ended: its exit code, or the signal that ended it
    /// (a forwarded termination signal it exited on included), raised again here.
    pub(crate) fn wait(self) -> ExitCode {
        loop {
            match waitpid(self.child, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    if let Some(sig) = sys::forwarded() {
                        if code == 128 + sig as i32 {
                            sys::die_by(sig);
                        }
                    }
                    return ExitCode::from(u8::try_from(code).unwrap_or(1));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => sys::die_by(sig),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("virtiofs-device: waiting for the sandboxed daemon: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
}

/// Step 1 of the namespace sandbox (see the module documentation). `user` adds the user
/// namespace (not started as root). Must be called while the process has one thread.
///
/// # Errors
///
/// `unshare` refused (no user namespaces, a container without CAP_SYS_ADMIN: `--sandbox
/// chroot` or `none` then), the id maps, or `fork`.
pub(crate) fn enter_pid_namespace(user: bool) -> Result<Started> {
    let (uid, gid) = (getuid(), getgid());
    let mut flags = CloneFlags::CLONE_NEWPID;
    if user {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    unshare(flags).map_err(|e| {
        anyhow::anyhow!(
            "--sandbox namespace: cannot create the {} namespace ({e}); \
             try --sandbox chroot or --sandbox none",
            if user { "user and PID" } else { "PID" }
        )
    })?;
    if user {
        write_id_maps(uid.as_raw(), gid.as_raw())?;
    }
    // Termination signals stay pending across the fork until each side has its handlers.
    let termination = sys::termination_set();
    let mut previous = nix::sys::signal::SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&termination),
        Some(&mut previous),
    )
    .context("blocking signals")?;
    let forked = sys::fork().context("fork")?;
    match forked {
        Some(child) => {
            sys::forward_termination_to(child).context("forwarding signals")?;
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)
                .context("unblocking signals")?;
            Ok(Started::Parent(Parent { child }))
        }
        None => {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .context("PR_SET_PDEATHSIG")?;
            sys::exit_on_termination().context("signal handlers")?;
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)
                .context("unblocking signals")?;
            Ok(Started::Child)
        }
    }
}

/// Maps `uid` and `gid` to themselves in the new user namespace (`setgroups` denied first, as
/// an unprivileged process must).
fn write_id_maps(uid: u32, gid: u32) -> Result<()> {
    let write = |file: &str, text: String| {
        std::fs::write(file, text).with_context(|| format!("--sandbox namespace: {file}"))
    };
    write("/proc/self/setgroups", "deny".to_owned())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    Ok(())
}

/// Step 2 of the namespace sandbox (see the module documentation).
///
/// # Errors
///
/// A refused `unshare` or `mount`.
pub(crate) fn isolate_mounts(share: &Path) -> Result<()> {
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET;
    unshare(flags).context("--sandbox namespace: unshare(mount, IPC, UTS, network)")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("--sandbox namespace: making the mount tree a slave")?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .context("--sandbox namespace: mounting /proc")?;
    mount(
        Some(share),
        share,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("--sandbox namespace: bind-mounting {}", share.display()))?;
    Ok(())
}

/// Step 4 of the namespace sandbox: `pivot_root` into `share` (the bind mount of
/// [`isolate_mounts`]), the old root stacked on it and detached.
///
/// # Errors
///
/// A refused `chdir`, `pivot_root` or `umount2`.
pub(crate) fn pivot_into(share: &Path) -> Result<()> {
    chdir(share).with_context(|| format!("--sandbox namespace: chdir {}", share.display()))?;
    pivot_root(".", ".").context("--sandbox namespace: pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).context("--sandbox namespace: detaching the old root")?;
    chdir("/").context("--sandbox namespace: chdir /")?;
    Ok(())
}

/// `--sandbox chroot`: `chroot` into `share`, then `chdir("/")`.
///
/// # Errors
///
/// A refused `chroot` (it needs CAP_SYS_CHROOT).
pub(crate) fn chroot_into(share: &Path) -> Result<()> {
    chroot(share).map_err(|e| {
        anyhow::anyhow!(
            "--sandbox chroot: chroot {}: {e} (it needs CAP_SYS_CHROOT: run as root, or use \
             --sandbox namespace)",
            share.display()
        )
    })?;
    chdir("/").context("--sandbox chroot: chdir /")?;
    Ok(())
}

/// `fs.nr_open`, the most `RLIMIT_NOFILE` can be.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A `(soft, hard)` limit pair.
type Limits = (u64, u64);

/// What `--rlimit-nofile` asks of a process whose limits are `(soft, hard)`, with `fs.nr_open`
/// `max`: the `(soft, hard)` to try first, and a fallback if that is refused (the default,
/// unprivileged: the soft limit raised to the hard one). `None`: nothing to change.
pub(crate) fn nofile_plan(
    requested: Option<u64>,
    (soft, hard): (u64, u64),
    max: u64,
) -> Result<Option<(Limits, Option<Limits>)>> {
    match requested {
        Some(0) => Ok(None),
        Some(n) if n > max => bail!("--rlimit-nofile {n}: above fs.nr_open ({max})"),
        Some(n) => Ok(Some(((n, n), None))),
        None => {
            let target = DEFAULT_NOFILE.min(max);
            if soft >= target {
                return Ok(None);
            }
            let fallback = (soft < hard).then_some((hard, hard));
            Ok(Some(((target, target.max(hard)), fallback)))
        }
    }
}

/// Applies `--rlimit-nofile` (see [`nofile_plan`]); returns what to log once the daemon
/// starts (the limit).
///
/// # Errors
///
/// An explicit limit that cannot be set.
pub(crate) fn set_nofile(requested: Option<u64>) -> Result<String> {
    let current = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
    let max = nr_open().unwrap_or(current.1.max(DEFAULT_NOFILE));
    let Some((first, fallback)) = nofile_plan(requested, current, max)? else {
        return Ok(format!("rlimit-nofile: {} (unchanged)", current.0));
    };
    let set = |(soft, hard): Limits| setrlimit(Resource::RLIMIT_NOFILE, soft, hard);
    Ok(match (set(first), fallback) {
        (Ok(()), _) => format!("rlimit-nofile: {}", first.0),
        (Err(_), Some(fallback)) if set(fallback).is_ok() => {
            format!("rlimit-nofile: {} (the hard limit)", fallback.0)
        }
        (Err(e), _) if requested.is_some() => bail!("--rlimit-nofile {}: {e}", first.0),
        (Err(e), _) => format!("rlimit-nofile: {} (cannot raise: {e})", current.0),
    })
}

/// `--socket-group`'s group: a name, or a number.
///
/// # Errors
///
/// An unknown group.
pub(crate) fn resolve_group(group: &str) -> Result<Gid> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    Ok(Group::from_name(group)
        .with_context(|| format!("--socket-group {group}"))?
        .with_context(|| format!("--socket-group {group}: no such group"))?
        .gid)
}

/// `--socket-group`: `gid` owns the socket file `path`, mode 0660.
///
/// # Errors
///
/// A refused `chown`/`chmod`.
pub(crate) fn set_socket_group(path: &Path, gid: Gid) -> Result<()> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .context("--socket-path contains a NUL byte")?;
    nix::unistd::chown(cpath.as_c_str(), None, Some(gid))
        .with_context(|| format!("--socket-group: chown {}", path.display()))?;
    std::fs::set_permissions(path, Permissions::from_mode(0o660))
        .with_context(|| format!("--socket-group: chmod {}", path.display()))?;
    info!(
        "socket {}: group {}, mode 0660",
        path.display(),
        gid.as_raw()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_follows_virtiofsd() {
        // 0 leaves it alone; an explicit limit sets both, and is checked against nr_open.
        assert!(
            nofile_plan(Some(0), (1024, 4096), 1 << 20)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            nofile_plan(Some(5000), (1024, 4096), 1 << 20).unwrap(),
            Some(((5000, 5000), None))
        );
        let err = nofile_plan(Some(2 << 20), (1024, 4096), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("nr_open"), "{err}");
        // The default: a million (at most nr_open), else the hard limit.
        assert_eq!(
            nofile_plan(None, (1024, 4096), 1 << 20).unwrap(),
            Some(((1_000_000, 1_000_000), Some((4096, 4096))))
        );
        assert_eq!(
            nofile_plan(None, (1024, 4096), 65536).unwrap(),
            Some(((65536, 65536), Some((4096, 4096))))
        );
        // Never lowered: a hard limit above the target stays.
        assert_eq!(
            nofile_plan(None, (1024, 2_000_000), 1 << 22).unwrap(),
            Some(((1_000_000, 2_000_000), Some((2_000_000, 2_000_000))))
        );
        assert!(
            nofile_plan(None, (1_000_000, 1_000_000), 1 << 20)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            nofile_plan(None, (1024, 1024), 1 << 20).unwrap(),
            Some(((1_000_000, 1_000_000), None))
        );
    }
}
