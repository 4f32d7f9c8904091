//! The daemon's last start-up step: Landlock, then no_new_privs and the seccomp filter, on the
//! main thread before any worker thread exists (both layers are inherited by the threads it
//! starts later). Independent of the namespace sandbox, which runs before: it receives the
//! share as the backend sees it (after a pivot into the share, `/`).
//!
//! - **Landlock** (`--landlock auto|on|off`, default auto): files only beneath the share (and
//!   nothing else: `--fuse-mount` opens its /dev/fuse channels before), no TCP
//!   bind or connect, no abstract UNIX socket connect, no signal to another process. It holds
//!   under `--sandbox none` and `chroot` too. A kernel without Landlock is logged (auto) or
//!   refused (on).
//! - **seccomp** (`--seccomp kill|log|trap|none`, default kill): an allow-list composed of named
//!   groups for the backend and options ([`seccomp::groups`]); any other call kills the process
//!   (kill), is reported by name and exits (trap: SIGSYS handler), or is reported by name and let
//!   through (log: a user-notification filter whose supervisor thread answers CONTINUE; on a
//!   kernel without it, SECCOMP_RET_LOG to the kernel's audit log, by number).

pub(crate) mod landlock;
pub(crate) mod seccomp;
mod sys;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use log::{info, warn};

pub(crate) use self::landlock::LandlockMode;
use self::landlock::{ExtraFile, Outcome};
use self::seccomp::{Arch, allowed, groups, parent_groups, program};
pub(crate) use self::seccomp::{Profile, SeccompMode};

/// What [`lock_down`] applies.
#[derive(Clone, Debug)]
pub(crate) struct LockDown {
    /// The shared directory as the backend sees it.
    pub(crate) share: PathBuf,
    pub(crate) landlock: LandlockMode,
    pub(crate) seccomp: SeccompMode,
    pub(crate) profile: Profile,
}

/// What [`lock_down`] put in place: one line per layer, as logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) landlock: Option<String>,
    pub(crate) seccomp: Option<String>,
}

/// Errors of the lock-down: the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockDownError {
    #[error("landlock")]
    Landlock(#[from] landlock::LandlockError),
    #[error("seccomp: building the filter")]
    Filter(#[from] seccomp::FilterError),
    #[error("seccomp: installing the filter")]
    Install(#[from] seccompiler::Error),
    #[error("seccomp")]
    Io(#[from] std::io::Error),
    #[error("seccomp: no allow-list for {0}; use --seccomp=none")]
    Architecture(&'static str),
    #[error("landlock: {0} threads already run, it would restrict only this one")]
    Threads(usize),
}

/// Applies the layers `config` asks for to this process, logs each, and reports them.
pub(crate) fn lock_down(config: &LockDown) -> Result<Report, LockDownError> {
    let mut report = Report::default();
    let threads = thread_count();
    if config.landlock != LandlockMode::Off {
        if threads > 1 {
            return Err(LockDownError::Threads(threads));
        }
        // `--fuse-mount` opens all its /dev/fuse channels before the sandbox (after a pivot
        // there is no /dev/fuse to name), so nothing outside the share is needed any more.
        let extra: Vec<ExtraFile> = Vec::new();
        let line = match landlock::restrict(&config.share, &extra, config.landlock)? {
            Outcome::Enforced { abi, full } => {
                let mut line = format!(
                    "landlock: ABI v{abi}, fs access beneath {}",
                    config.share.display()
                );
                for file in &extra {
                    line.push_str(&format!(" and {}", file.path.display()));
                }
                if !full {
                    line.push_str(" (partly: an older ABI)");
                }
                info!("{line}");
                line
            }
            Outcome::Unavailable(why) => {
                let line = format!("landlock: unavailable ({why}), layer not active");
                warn!("{line}");
                line
            }
        };
        report.landlock = Some(line);
    }
    if config.seccomp != SeccompMode::None {
        let line = install_seccomp(config.seccomp, config.profile, threads)?;
        info!("{line}");
        report.seccomp = Some(line);
    }
    Ok(report)
}

/// The namespace sandbox's waiting parent, right after the fork: the filter of
/// [`seccomp::parent_groups`] under `mode` (`log` reports to the kernel's audit log: the parent
/// runs no supervisor thread), none with `--seccomp none`. Logs it (before installing it)
/// and returns the line.
///
/// # Errors
///
/// No allow-list for this architecture, or the filter refused.
pub(crate) fn lock_down_parent(mode: SeccompMode) -> Result<Option<String>, LockDownError> {
    if mode == SeccompMode::None {
        return Ok(None);
    }
    let arch = Arch::HOST.ok_or(LockDownError::Architecture(std::env::consts::ARCH))?;
    let groups = parent_groups();
    if mode == SeccompMode::Trap {
        sys::install_sigsys_handler()?;
    }
    let program = program(&groups, arch, mode, false)?;
    let line = format!(
        "seccomp: {}, {} syscalls allowed ({}, the waiting parent)",
        mode.name(),
        allowed(&groups, arch).len(),
        arch.name()
    );
    // Logged first: the logger may make calls the parent's filter does not allow.
    info!("{line}");
    seccompiler::apply_filter(&program)?;
    Ok(Some(line))
}

/// Installs the filter; the log line.
fn install_seccomp(
    mode: SeccompMode,
    profile: Profile,
    threads: usize,
) -> Result<String, LockDownError> {
    let arch = Arch::HOST.ok_or(LockDownError::Architecture(std::env::consts::ARCH))?;
    let groups = groups(profile, mode);
    let count = allowed(&groups, arch).len();
    let mut how = mode.name().to_owned();
    match mode {
        SeccompMode::Log if threads == 1 => {
            let listener = program(&groups, arch, mode, true)
                .map_err(LockDownError::from)
                .and_then(|p| sys::install_with_listener(&p).map_err(LockDownError::from));
            match listener {
                Ok(listener) => {
                    supervise(listener, arch)?;
                    how.push_str(", forbidden calls reported by name and let through");
                }
                Err(e) => {
                    warn!("seccomp: no user notification ({e}): the kernel's audit log gets them");
                    let program = program(&groups, arch, mode, false)?;
                    seccompiler::apply_filter_all_threads(&program)?;
                    how.push_str(", forbidden calls let through, by number in the audit log");
                }
            }
        }
        _ => {
            if mode == SeccompMode::Trap {
                sys::install_sigsys_handler()?;
            }
            let program = program(&groups, arch, mode, false)?;
            // TSYNC: every thread, should one already run; sets no_new_privs.
            seccompiler::apply_filter_all_threads(&program)?;
            if mode == SeccompMode::Log {
                how.push_str(", forbidden calls let through, by number in the audit log");
            }
        }
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name).collect();
    Ok(format!(
        "seccomp: {how}, {count} syscalls allowed ({}, backend {}; groups {})",
        arch.name(),
        profile.backend_name(),
        names.join(", ")
    ))
}

/// Starts the thread that reports the calls the log-mode filter notifies, once each by name,
/// and lets them through. It runs under the filter too: it uses allowed calls only.
fn supervise(listener: OwnedFd, arch: Arch) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("seccomp-log".to_owned())
        .spawn(move || {
            let mut seen = BTreeSet::new();
            loop {
                match sys::receive(listener.as_fd()) {
                    Ok(n) => {
                        if seen.insert(n.nr) {
                            warn!(
                                "seccomp: system call {} ({}) is not in the allow-list \
                                 (thread {}); let through",
                                arch.syscall_name(n.nr).unwrap_or("?"),
                                n.nr,
                                n.pid
                            );
                        }
                        // ENOENT: the caller died meanwhile.
                        let _ = sys::let_through(listener.as_fd(), n.id);
                    }
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOENT)) => {}
                    Err(e) => {
                        warn!("seccomp: the log supervisor stops: {e}");
                        return;
                    }
                }
            }
        })
        .map(drop)
}

/// The threads of this process.
pub(crate) fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::path::Path;
    use std::process::{Command, Output};

    use super::*;

    /// Set in the child [`child`] runs as: what to lock down and try.
    const CHILD: &str = "VIRTIOFS_LOCKDOWN_CHILD";
    const CHILD_SHARE: &str = "VIRTIOFS_LOCKDOWN_SHARE";

    /// Runs this test binary again with only [`child`], which locks itself down as `mode` says.
    fn run_child(mode: &str, share: &Path) -> Output {
        let exe = std::env::current_exe().unwrap();
        Command::new(exe)
            .args(["--exact", "lockdown::tests::child", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD, mode)
            .env(CHILD_SHARE, share)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn profile() -> Profile {
        Profile {
            macos_logic: false,
            fuse_mount: false,
            file_handles: false,
            xattr: false,
        }
    }

    /// The child: does nothing unless run by [`run_child`]. libtest runs it on a thread of its
    /// own, so it calls the layers as `lock_down` does on the daemon's only thread: Landlock
    /// restricts this thread, the filter is installed as for one thread.
    #[test]
    fn child() {
        let Ok(mode) = std::env::var(CHILD) else {
            return;
        };
        let _ = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Info)
            .try_init();
        let share = PathBuf::from(std::env::var_os(CHILD_SHARE).unwrap());
        if mode == "landlock" {
            let outcome = landlock::restrict(&share, &[], LandlockMode::On).unwrap();
            println!("outcome {outcome:?}");
            let inside = std::fs::read_to_string(share.join("inside.txt"));
            println!("inside {:?}", inside.map_err(|e| e.raw_os_error()));
            let outside = std::fs::read_to_string(share.with_extension("outside"));
            println!("outside {:?}", outside.map_err(|e| e.raw_os_error()));
            let created = std::fs::write(share.join("new.txt"), "x");
            println!("create inside {:?}", created.map_err(|e| e.raw_os_error()));
            let created = std::fs::write(share.with_extension("new"), "x");
            println!("create outside {:?}", created.map_err(|e| e.raw_os_error()));
            return;
        }
        let seccomp = match mode.as_str() {
            "kill" => SeccompMode::Kill,
            "trap" => SeccompMode::Trap,
            "log" => SeccompMode::Log,
            other => panic!("{other}"),
        };
        let line = install_seccomp(seccomp, profile(), 1).unwrap();
        println!("installed {line}");
        // Not in any group: the daemon never changes its root after start-up.
        let result = std::os::unix::fs::chroot("/");
        println!("after chroot {:?}", result.map_err(|e| e.raw_os_error()));
    }

    fn stdout(out: &Output) -> String {
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn kill_mode_kills_on_a_forbidden_call() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_child("kill", dir.path());
        assert!(stdout(&out).contains("installed seccomp: kill"), "{out:?}");
        assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
        assert!(!stdout(&out).contains("after chroot"), "{out:?}");
    }

    #[test]
    fn trap_mode_names_the_call_and_exits() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_child("trap", dir.path());
        assert_eq!(out.status.code(), Some(sys::TRAP_EXIT), "{out:?}");
        let name = Arch::HOST
            .and_then(|a| a.syscall_name(i32::try_from(libc::SYS_chroot).unwrap()))
            .unwrap();
        assert_eq!(name, "chroot");
        let expected = format!(
            "virtiofs-device: seccomp: forbidden system call chroot ({})\n",
            libc::SYS_chroot
        );
        assert!(stderr(&out).contains(&expected), "{out:?}");
        assert!(!stdout(&out).contains("after chroot"), "{out:?}");
    }

    #[test]
    fn log_mode_names_the_call_and_lets_it_through() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_child("log", dir.path());
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout(&out).contains("forbidden calls reported by name and let through"),
            "{out:?}"
        );
        let expected = format!(
            "system call chroot ({}) is not in the allow-list",
            libc::SYS_chroot
        );
        assert!(stderr(&out).contains(&expected), "{out:?}");
        // Let through: chroot ran (and as root succeeded, or failed with EPERM otherwise).
        assert!(stdout(&out).contains("after chroot "), "{out:?}");
        assert!(
            !stdout(&out).contains("after chroot Err(Some(38))"),
            "{out:?}"
        );
    }

    #[test]
    fn landlock_keeps_the_thread_beneath_the_share() {
        let base = tempfile::tempdir().unwrap();
        let share = base.path().join("share");
        std::fs::create_dir(&share).unwrap();
        std::fs::write(share.join("inside.txt"), "in").unwrap();
        std::fs::write(share.with_extension("outside"), "out").unwrap();
        let out = run_child("landlock", &share);
        let text = stdout(&out);
        if stderr(&out).contains("--landlock=on requires it") {
            eprintln!("skipped: this kernel has no Landlock");
            return;
        }
        assert!(out.status.success(), "{out:?}");
        assert!(text.contains("outcome Enforced"), "{text}");
        assert!(text.contains("inside Ok(\"in\")"), "{text}");
        assert!(
            text.contains(&format!("outside Err(Some({}))", libc::EACCES)),
            "{text}"
        );
        assert!(text.contains("create inside Ok(())"), "{text}");
        assert!(
            text.contains(&format!("create outside Err(Some({}))", libc::EACCES)),
            "{text}"
        );
        // The parent, not restricted, still reads outside.
        assert_eq!(
            std::fs::read_to_string(share.with_extension("outside")).unwrap(),
            "out"
        );
        assert!(!share.with_extension("new").exists());
    }
}
