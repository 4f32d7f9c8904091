//! The seccomp allow-list: named groups of system calls, composed per backend and option, and
//! compiled with `seccompiler` for x86_64 or aarch64.
//!
//! Every name is checked at compile time against both architectures' tables (the `syscalls`
//! crate has both on every host), so the list builds for an architecture this host cannot run.
//! A call that only one architecture has (x86_64's legacy `open`, `stat`, `poll` ...) is in
//! that architecture's part of a group.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use syscalls::{aarch64, x86_64};

/// What the filter does with a call that is not allowed (`--seccomp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SeccompMode {
    /// The process is killed (SIGSYS).
    Kill,
    /// The call goes through and is reported by name.
    Log,
    /// SIGSYS: the daemon reports the call by name and exits.
    Trap,
    /// No filter.
    None,
}

impl SeccompMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SeccompMode::Kill => "kill",
            SeccompMode::Log => "log",
            SeccompMode::Trap => "trap",
            SeccompMode::None => "none",
        }
    }
}

/// What the daemon does after start-up, which decides the groups it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    /// `--backend macos-logic` rather than linux.
    pub(crate) macos_logic: bool,
    /// `--fuse-mount` rather than vhost-user.
    pub(crate) fuse_mount: bool,
    /// `--inode-file-handles` prefer or mandatory.
    pub(crate) file_handles: bool,
    /// `--xattr` or `--posix-acl` other than never.
    pub(crate) xattr: bool,
}

impl Profile {
    /// The backend's name as `--backend` spells it.
    pub(crate) fn backend_name(self) -> &'static str {
        if self.macos_logic {
            "macos-logic"
        } else {
            "linux"
        }
    }
}

/// A named set of system calls, on each architecture, and the `ioctl` requests it needs (the
/// filter allows `ioctl` with those requests only, and not at all when no group has one).
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: &'static str,
    x86_64: &'static [x86_64::Sysno],
    aarch64: &'static [aarch64::Sysno],
    ioctls: &'static [u64],
}

/// `group!(NAME = "name" { calls on both } x86_64 { only there } aarch64 { only there })`
/// (a call the two tables name differently, x86_64's `newfstatat` and aarch64's `fstatat`, is
/// in both arch-only parts).
macro_rules! group {
    ($(#[$doc:meta])* $konst:ident = $name:literal { $($call:ident),* $(,)? }
     $(x86_64 { $($x86:ident),* $(,)? })? $(aarch64 { $($arm:ident),* $(,)? })?
     $(ioctl { $($request:expr),* $(,)? })?) => {
        $(#[$doc])*
        const $konst: Group = Group {
            name: $name,
            x86_64: &[$(x86_64::Sysno::$call,)* $($(x86_64::Sysno::$x86,)*)?],
            aarch64: &[$(aarch64::Sysno::$call,)* $($(aarch64::Sysno::$arm,)*)?],
            ioctls: &[$($($request,)*)?],
        };
    };
}

/// [`fuse_abi::DEV_IOC_CLONE`] as a seccomp argument.
const FUSE_DEV_IOC_CLONE: u64 = fuse_abi::DEV_IOC_CLONE as u64;

group!(
    /// The process itself: memory, threads, signals, time, exit. `unshare` is allowed only
    /// with CLONE_FS (see [`rules`]); `prctl` only names threads.
    PROCESS = "process" {
        brk, mmap, munmap, mremap, mprotect, madvise,
        clone, clone3, set_robust_list, rseq, futex, sched_getaffinity,
        gettid, getpid, exit, exit_group, tgkill,
        rt_sigaction, rt_sigprocmask, rt_sigreturn, sigaltstack,
        clock_gettime, clock_nanosleep, nanosleep, getrandom,
        prctl, unshare,
        // Reachable though no tier happened to call them: std's channels back off with
        // `thread::yield_now` under contention (the queue job channel is one), and the kernel
        // restarts a sleep or futex wait interrupted by SIGSTOP/SIGCONT with restart_syscall.
        sched_yield, restart_syscall,
    }
);

group!(
    /// Descriptors the daemon already holds: read, write, poll, close.
    DESCRIPTORS = "descriptors" {
        read, write, readv, writev, close, fcntl, dup, fstat, lseek,
        epoll_create1, epoll_ctl, epoll_pwait, eventfd2,
    }
    x86_64 { epoll_wait }
);

group!(
    /// The vhost-user socket: accept a frontend, messages with descriptors, guest memory.
    VHOST_USER = "vhost-user" {
        accept4, recvmsg, sendmsg, shutdown, getsockopt, fstatfs,
    }
);

group!(
    /// The linux passthrough backend: the requests on the share.
    PASSTHROUGH = "passthrough" {
        openat, openat2, statx, getdents64, readlinkat, faccessat, faccessat2,
        mkdirat, mknodat, symlinkat, linkat, unlinkat, renameat, renameat2,
        fchmod, fchmodat, fchownat, fchown, utimensat, ftruncate, fallocate,
        pread64, pwrite64, preadv, pwritev, copy_file_range,
        fsync, fdatasync, syncfs, flock, statfs, fstatfs, umask,
        setresuid, setresgid, setgroups,
    }
    x86_64 { newfstatat }
    aarch64 { fstatat }
);

group!(
    /// `--inode-file-handles`.
    FILE_HANDLES = "file-handles" { name_to_handle_at, open_by_handle_at }
);

group!(
    /// `--xattr`, `--posix-acl`: the `*xattrat` calls of Linux 6.13, and the classic ones on
    /// `/proc/self/fd/N` or an open descriptor.
    XATTR = "xattr" {
        getxattrat, setxattrat, listxattrat, removexattrat,
        getxattr, lgetxattr, fgetxattr, setxattr, lsetxattr, fsetxattr,
        listxattr, llistxattr, flistxattr, removexattr, lremovexattr, fremovexattr,
    }
);

group!(
    /// `--backend macos-logic`: ownership and modes kept in xattrs, paths beneath the root,
    /// FS_IOC_GETFLAGS for the immutable flags.
    // `libc::Ioctl` is `c_ulong` here, `c_int` on musl: the cast is needed there.
    #[allow(clippy::unnecessary_cast)]
    MACOS_LOGIC = "macos-logic" {
        // The Linux host reaches /proc/self/fd/N relative to a descriptor (Linux 6.13's
        // `*xattrat`), the classic calls on older kernels.
        getxattrat, setxattrat, listxattrat, removexattrat,
        getxattr, lgetxattr, fgetxattr, setxattr, lsetxattr, fsetxattr,
        listxattr, llistxattr, flistxattr, removexattr, lremovexattr, fremovexattr,
    }
    ioctl { libc::FS_IOC_GETFLAGS as u64 }
);

group!(
    /// `--fuse-mount`: more channels on /dev/fuse, waiting on a channel (non-blocking, in
    /// `poll(2)`, which glibc makes `poll` on x86_64 and `ppoll` elsewhere) while it holds a
    /// parked SETLKW, and the unmount at the end.
    FUSE_MOUNT = "fuse-mount" { openat, umount2, ppoll }
    x86_64 { poll }
    ioctl { FUSE_DEV_IOC_CLONE }
);

group!(
    /// `--seccomp log`: the supervisor thread reads the notifications and answers them.
    #[allow(clippy::unnecessary_cast)] // as above
    LOG_SUPERVISOR = "log-supervisor" {}
    ioctl { libc::SECCOMP_IOCTL_NOTIF_RECV as u64, libc::SECCOMP_IOCTL_NOTIF_SEND as u64 }
);

group!(
    /// The namespace sandbox's waiting parent (`sandbox::Parent::wait`): reap the daemon,
    /// forward termination signals to it, report a failure, and end as it ended (an exit
    /// code, or the same signal raised again). Memory calls for the allocator and the exit
    /// path's unmapping; nothing that opens, creates or maps a file.
    PARENT = "parent" {
        wait4, waitid, kill, tgkill, getpid, gettid,
        rt_sigaction, rt_sigprocmask, rt_sigreturn, sigaltstack, restart_syscall,
        write, close, brk, mmap, munmap, madvise, futex, exit, exit_group,
    }
);

/// The groups of the namespace sandbox's waiting parent (whatever the backend and options).
pub(crate) fn parent_groups() -> Vec<&'static Group> {
    vec![&PARENT]
}

/// The groups `profile` needs under `mode`.
pub(crate) fn groups(profile: Profile, mode: SeccompMode) -> Vec<&'static Group> {
    let mut groups = vec![&PROCESS, &DESCRIPTORS, &PASSTHROUGH];
    if mode == SeccompMode::Log {
        groups.push(&LOG_SUPERVISOR);
    }
    if profile.fuse_mount {
        groups.push(&FUSE_MOUNT);
    } else {
        groups.push(&VHOST_USER);
    }
    if profile.macos_logic {
        groups.push(&MACOS_LOGIC);
    } else {
        if profile.file_handles {
            groups.push(&FILE_HANDLES);
        }
        if profile.xattr {
            groups.push(&XATTR);
        }
    }
    groups
}

/// The architectures the allow-list is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// This host's, if the allow-list has it.
    pub(crate) const HOST: Option<Arch> = if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Aarch64)
    } else {
        None
    };

    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }

    /// The name of system call `nr` on this architecture. A `const fn` over static strings:
    /// callable from a signal handler.
    pub(crate) const fn syscall_name(self, nr: i32) -> Option<&'static str> {
        // Negative numbers are no system call (`as` would wrap them).
        if nr < 0 {
            return None;
        }
        #[allow(clippy::cast_sign_loss)]
        let nr = nr as usize;
        match self {
            Arch::X86_64 => match x86_64::Sysno::new(nr) {
                Some(s) => Some(s.name()),
                None => None,
            },
            Arch::Aarch64 => match aarch64::Sysno::new(nr) {
                Some(s) => Some(s.name()),
                None => None,
            },
        }
    }
}

/// The allowed system calls of `groups` on `arch`: number and name, sorted by number, each once.
pub(crate) fn allowed(groups: &[&Group], arch: Arch) -> BTreeMap<i64, &'static str> {
    let mut calls = BTreeMap::new();
    for group in groups {
        match arch {
            Arch::X86_64 => {
                for s in group.x86_64 {
                    calls.insert(i64::from(s.id()), s.name());
                }
            }
            Arch::Aarch64 => {
                for s in group.aarch64 {
                    calls.insert(i64::from(s.id()), s.name());
                }
            }
        }
        if !group.ioctls.is_empty() {
            let ioctl = match arch {
                Arch::X86_64 => (x86_64::Sysno::ioctl.id(), x86_64::Sysno::ioctl.name()),
                Arch::Aarch64 => (aarch64::Sysno::ioctl.id(), aarch64::Sysno::ioctl.name()),
            };
            calls.insert(i64::from(ioctl.0), ioctl.1);
        }
    }
    calls
}

/// The `ioctl` requests `groups` allow.
fn ioctls(groups: &[&Group]) -> Vec<u64> {
    let mut requests: Vec<u64> = groups
        .iter()
        .flat_map(|g| g.ioctls.iter().copied())
        .collect();
    requests.sort_unstable();
    requests.dedup();
    requests
}

/// The `SECCOMP_RET_TRACE` data the log mode's filter is compiled with; [`program`] turns those
/// returns into `SECCOMP_RET_USER_NOTIF` (which seccompiler has no action for).
const NOTIFY_MARK: u32 = 0x5ec;

/// Errors building the filter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FilterError {
    #[error("seccompiler")]
    Backend(#[from] seccompiler::BackendError),
    #[error("--seccomp none has no filter")]
    NoFilter,
}

/// The filter for `groups` on `arch`: allowed calls go through, any other gets `mode`'s action.
/// `Log` with `notify` asks the daemon's supervisor (`SECCOMP_RET_USER_NOTIF`), without it the
/// kernel's audit log (`SECCOMP_RET_LOG`).
pub(crate) fn program(
    groups: &[&Group],
    arch: Arch,
    mode: SeccompMode,
    notify: bool,
) -> Result<BpfProgram, FilterError> {
    let mismatch = match mode {
        SeccompMode::Kill => SeccompAction::KillProcess,
        SeccompMode::Trap => SeccompAction::Trap,
        SeccompMode::Log if notify => SeccompAction::Trace(NOTIFY_MARK),
        SeccompMode::Log => SeccompAction::Log,
        SeccompMode::None => return Err(FilterError::NoFilter),
    };
    let ioctls = ioctls(groups);
    let rules = allowed(groups, arch)
        .into_iter()
        .map(|(nr, name)| Ok((nr, rules(name, &ioctls)?)))
        .collect::<Result<BTreeMap<_, _>, FilterError>>()?;
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch.target())?;
    let mut program: BpfProgram = filter.try_into()?;
    if mode == SeccompMode::Log && notify {
        let trace = u32::from(SeccompAction::Trace(NOTIFY_MARK));
        for insn in &mut program {
            if insn.code == BPF_RET_K && insn.k == trace {
                insn.k = libc::SECCOMP_RET_USER_NOTIF;
            }
        }
    }
    Ok(program)
}

/// `BPF_RET | BPF_K`: return a constant.
const BPF_RET_K: u16 = 0x06;

/// The argument conditions of `name` (empty: any arguments); `ioctls`, the requests `ioctl`
/// may make.
fn rules(name: &str, ioctls: &[u64]) -> Result<Vec<SeccompRule>, FilterError> {
    let eq = |arg: u8, value: u64| -> Result<SeccompRule, FilterError> {
        let condition =
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)?;
        Ok(SeccompRule::new(vec![condition])?)
    };
    Ok(match name {
        // Per-thread umask for the creating requests: nothing else to unshare.
        "unshare" => vec![eq(0, u64::from(libc::CLONE_FS.unsigned_abs()))?],
        // Thread names (std and the workers): no other process control.
        "prctl" => vec![
            eq(0, u64::from(libc::PR_SET_NAME.unsigned_abs()))?,
            eq(0, u64::from(libc::PR_GET_NAME.unsigned_abs()))?,
        ],
        "ioctl" => ioctls
            .iter()
            .map(|&request| eq(1, request))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    })
}

/// Writes `seccomp: forbidden system call NAME (NR)` into `buf` without allocating (for the
/// SIGSYS handler); the length written.
pub(crate) fn forbidden_message(arch: Option<Arch>, nr: i32, buf: &mut [u8]) -> usize {
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if let Some(slot) = buf.get_mut(len) {
                *slot = b;
                len += 1;
            }
        }
    };
    put(b"virtiofs-device: seccomp: forbidden system call ");
    match arch.and_then(|a| a.syscall_name(nr)) {
        Some(name) => put(name.as_bytes()),
        None => put(b"?"),
    }
    put(b" (");
    let mut digits = [0u8; 12];
    let mut n = i64::from(nr).unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            #[allow(clippy::cast_possible_truncation)]
            let digit = (n % 10) as u8;
            *d = b'0' + digit;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    if nr < 0 {
        put(b"-");
    }
    put(digits.get(i..).unwrap_or_default());
    put(b")\n");
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the options that change the groups.
    fn profiles() -> Vec<Profile> {
        let mut all = Vec::new();
        for bits in 0..16u8 {
            all.push(Profile {
                macos_logic: bits & 1 != 0,
                fuse_mount: bits & 2 != 0,
                file_handles: bits & 4 != 0,
                xattr: bits & 8 != 0,
            });
        }
        all
    }

    #[test]
    fn filter_builds_for_both_architectures_and_every_profile() {
        for profile in profiles() {
            for arch in [Arch::X86_64, Arch::Aarch64] {
                let groups = groups(profile, SeccompMode::Kill);
                let allowed = allowed(&groups, arch);
                for mode in [SeccompMode::Kill, SeccompMode::Log, SeccompMode::Trap] {
                    for notify in [false, true] {
                        let program = program(&groups, arch, mode, notify).unwrap();
                        // One comparison at least per allowed call, each on its own number.
                        assert!(program.len() > allowed.len(), "{profile:?} {arch:?}");
                        for nr in allowed.keys() {
                            let nr = u32::try_from(*nr).unwrap();
                            assert!(
                                program.iter().any(|i| i.code == 0x15 && i.k == nr),
                                "{profile:?} {arch:?}: {nr} not compared"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The sizes for the record (`--nocapture` prints them); each option's group only adds.
    #[test]
    fn allow_list_sizes() {
        for profile in profiles() {
            let x86 = allowed(&groups(profile, SeccompMode::Kill), Arch::X86_64).len();
            let arm = allowed(&groups(profile, SeccompMode::Kill), Arch::Aarch64).len();
            println!("{profile:?}: x86_64 {x86}, aarch64 {arm}");
            // aarch64 lacks x86_64's legacy calls only.
            assert!(arm <= x86 && x86 - arm <= 2, "{profile:?}: {x86} {arm}");
            let base = Profile {
                file_handles: false,
                xattr: false,
                ..profile
            };
            assert!(x86 >= allowed(&groups(base, SeccompMode::Kill), Arch::X86_64).len());
        }
    }

    #[test]
    fn the_parent_list_is_small_and_builds() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let groups = parent_groups();
            let allowed = allowed(&groups, arch);
            println!("parent: {} {}", arch.name(), allowed.len());
            let names: Vec<&str> = allowed.values().copied().collect();
            for needed in ["wait4", "kill", "rt_sigreturn", "exit_group", "tgkill"] {
                assert!(names.contains(&needed), "{arch:?}: {needed}");
            }
            // Nothing that names a file, makes a process or a socket, or changes privileges.
            for never in [
                "openat",
                "execve",
                "clone",
                "socket",
                "connect",
                "setresuid",
                "ioctl",
            ] {
                assert!(!names.contains(&never), "{arch:?}: {never}");
            }
            assert!(allowed.len() < 25, "{arch:?}: {}", allowed.len());
            for mode in [SeccompMode::Kill, SeccompMode::Log, SeccompMode::Trap] {
                assert!(program(&groups, arch, mode, false).unwrap().len() > allowed.len());
            }
        }
    }

    #[test]
    fn numbers_are_each_architectures_own() {
        let groups = groups(
            Profile {
                macos_logic: false,
                fuse_mount: false,
                file_handles: true,
                xattr: true,
            },
            SeccompMode::Kill,
        );
        let x86 = allowed(&groups, Arch::X86_64);
        let arm = allowed(&groups, Arch::Aarch64);
        let nr = |map: &BTreeMap<i64, &str>, name: &str| {
            map.iter().find(|(_, n)| **n == name).map(|(nr, _)| *nr)
        };
        // Numbers from the two kernels' tables (arch/x86/entry/syscalls/syscall_64.tbl and
        // the generic table aarch64 uses).
        assert_eq!(nr(&x86, "read"), Some(0));
        assert_eq!(nr(&arm, "read"), Some(63));
        assert_eq!(nr(&x86, "openat"), Some(257));
        assert_eq!(nr(&arm, "openat"), Some(56));
        assert_eq!(nr(&x86, "getxattrat"), Some(464));
        assert_eq!(nr(&arm, "getxattrat"), Some(464));
        // x86_64's legacy calls are not on aarch64, and the generic table names fstatat what
        // x86_64 calls newfstatat.
        assert!(nr(&x86, "epoll_wait").is_some());
        assert!(nr(&arm, "epoll_wait").is_none());
        assert_eq!(nr(&x86, "newfstatat"), Some(262));
        assert_eq!(nr(&arm, "fstatat"), Some(79));
        assert!(arm.len() < x86.len());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn host_numbers_agree_with_libc() {
        let groups = groups(
            Profile {
                macos_logic: false,
                fuse_mount: true,
                file_handles: true,
                xattr: true,
            },
            SeccompMode::Kill,
        );
        let host = allowed(&groups, Arch::X86_64);
        for (name, nr) in [
            ("read", libc::SYS_read),
            ("openat", libc::SYS_openat),
            ("clone3", libc::SYS_clone3),
            ("open_by_handle_at", libc::SYS_open_by_handle_at),
            ("umount2", libc::SYS_umount2),
            ("epoll_wait", libc::SYS_epoll_wait),
            ("newfstatat", libc::SYS_newfstatat),
            ("setresuid", libc::SYS_setresuid),
            ("fgetxattr", libc::SYS_fgetxattr),
        ] {
            assert_eq!(host.get(&nr).copied(), Some(name));
        }
    }

    #[test]
    fn groups_follow_the_options() {
        let base = Profile {
            macos_logic: false,
            fuse_mount: false,
            file_handles: false,
            xattr: false,
        };
        let names = |p: Profile| {
            groups(p, SeccompMode::Kill)
                .iter()
                .map(|g| g.name)
                .collect::<Vec<_>>()
        };
        assert!(!names(base).contains(&"file-handles") && !names(base).contains(&"xattr"));
        assert!(
            names(Profile {
                file_handles: true,
                ..base
            })
            .contains(&"file-handles")
        );
        assert!(
            names(Profile {
                xattr: true,
                ..base
            })
            .contains(&"xattr")
        );
        assert!(
            names(Profile {
                fuse_mount: true,
                ..base
            })
            .contains(&"fuse-mount")
        );
        assert!(
            !names(Profile {
                fuse_mount: true,
                ..base
            })
            .contains(&"vhost-user")
        );
        assert!(
            names(Profile {
                macos_logic: true,
                ..base
            })
            .contains(&"macos-logic")
        );
        // Without file handles the daemon cannot open by handle.
        let calls = allowed(&groups(base, SeccompMode::Kill), Arch::X86_64);
        assert!(
            !calls
                .values()
                .any(|n| *n == "open_by_handle_at" || *n == "fgetxattr")
        );
        for forbidden in [
            "execve", "ptrace", "mount", "chroot", "socket", "connect", "bind",
        ] {
            assert!(!calls.values().any(|n| *n == forbidden), "{forbidden}");
        }
    }

    #[test]
    fn ioctl_only_where_a_group_needs_it_and_only_its_requests() {
        let base = Profile {
            macos_logic: false,
            fuse_mount: false,
            file_handles: true,
            xattr: true,
        };
        let has_ioctl = |p: Profile, mode| {
            allowed(&groups(p, mode), Arch::X86_64)
                .values()
                .any(|n| *n == "ioctl")
        };
        assert!(!has_ioctl(base, SeccompMode::Kill));
        assert!(has_ioctl(base, SeccompMode::Log));
        let fuse = Profile {
            fuse_mount: true,
            ..base
        };
        assert!(has_ioctl(fuse, SeccompMode::Kill));
        assert_eq!(
            ioctls(&groups(fuse, SeccompMode::Kill)),
            [FUSE_DEV_IOC_CLONE]
        );
        let macos = Profile {
            macos_logic: true,
            file_handles: false,
            xattr: false,
            ..fuse
        };
        assert_eq!(ioctls(&groups(macos, SeccompMode::Kill)).len(), 2);
        // The request is compared (argument 1, low word): a rule per request.
        let program = program(
            &groups(fuse, SeccompMode::Kill),
            Arch::Aarch64,
            SeccompMode::Kill,
            false,
        )
        .unwrap();
        assert!(program.iter().any(|i| i.k == 0x8004_e500));
    }

    #[test]
    fn log_mode_notifies_only_when_asked() {
        let groups = groups(
            Profile {
                macos_logic: false,
                fuse_mount: false,
                file_handles: false,
                xattr: false,
            },
            SeccompMode::Log,
        );
        let returns =
            |p: &BpfProgram, k: u32| p.iter().filter(|i| i.code == BPF_RET_K && i.k == k).count();
        let notify = program(&groups, Arch::X86_64, SeccompMode::Log, true).unwrap();
        assert!(returns(&notify, libc::SECCOMP_RET_USER_NOTIF) > 0);
        assert_eq!(returns(&notify, libc::SECCOMP_RET_LOG), 0);
        let log = program(&groups, Arch::X86_64, SeccompMode::Log, false).unwrap();
        assert_eq!(returns(&log, libc::SECCOMP_RET_USER_NOTIF), 0);
        assert!(returns(&log, libc::SECCOMP_RET_LOG) > 0);
        let kill = program(&groups, Arch::X86_64, SeccompMode::Kill, false).unwrap();
        assert!(returns(&kill, libc::SECCOMP_RET_KILL_PROCESS) > 0);
        assert!(program(&groups, Arch::X86_64, SeccompMode::None, false).is_err());
    }

    #[test]
    fn forbidden_message_names_the_call() {
        let mut buf = [0u8; 128];
        let n = forbidden_message(Some(Arch::X86_64), 165, &mut buf);
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "virtiofs-device: seccomp: forbidden system call mount (165)\n"
        );
        let n = forbidden_message(Some(Arch::Aarch64), 40, &mut buf);
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .contains(" mount (40)")
        );
        let n = forbidden_message(Some(Arch::X86_64), 100_000, &mut buf);
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .contains(" ? (100000)")
        );
        // A short buffer is cut, never overrun.
        let mut short = [0u8; 8];
        assert_eq!(forbidden_message(None, 1, &mut short), 8);
    }
}
