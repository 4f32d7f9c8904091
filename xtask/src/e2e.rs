//! `cargo xtask e2e`: real Linux guests mount a share from a vhost-user-fs daemon.
//!
//! For each selected kernel: provision (see [`crate::provision`]), start the daemon on a fresh
//! shared directory, boot QEMU (TCG) with `vhost-user-fs-pci`, let the guest's init
//! (`xtask/guest/init`) mount the share and run the suites, then parse the `E2E-*` lines of
//! the serial console. Everything has a time bound; QEMU and the daemon are killed at the end
//! whatever happens. The console, daemon and QEMU logs of each kernel stay in
//! `<cache>/runs/<kernel>/` (`console.log`, `daemon.log`, `qemu.log`) until the next run.
//!
//! A [`Profile`] names a daemon configuration with its own defaults, checks and expected
//! failures: `macos` (our linux backend declaring only the macOS set), `macos-logic` (the
//! macOS backend itself, over its Linux adapter) and `userns` (the daemon started as an
//! unprivileged account, so that its default sandbox adds a user namespace).
//!
//! Each report gives the CPU time of the serving daemon process (behind a namespace sandbox's
//! waiting parent), sampled from `/proc/PID/stat` until it exits: printed, never judged.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::daemon_proc::{self, Account};
use crate::provision::{self, Kernel, KernelSpec};
use crate::util::{self, display, step};

const USAGE: &str = "\
usage: cargo xtask e2e [--kernel K]... [--suite S]... [--daemon PATH|virtiofsd]
                       [--daemon-arg ARG]... [--kernel-arg ARG]... [--fsx-ops N]
                       [--tag TAG] [--limit SECS] [--daemon-user USER]
                       [--keep] [--provision-only] [--profile macos|macos-logic|userns]

Boots Debian guest kernels under QEMU (TCG) against a vhost-user-fs daemon and runs test
suites on the virtio-fs mount. K and S may be comma-separated lists.
  --kernel K        6.1 | 6.12 | 7.3 | all (default: all)
  --suite S         smoke | pjdfstest | fsx | all (default: all)
  --daemon PATH     the vhost-user-fs daemon (default: our virtiofs-device, built with
                    `cargo build --release -p virtiofs-device`); `virtiofsd` installs and uses
                    virtiofsd from crates.io as a stand-in
  --daemon-arg ARG  one more argument for the daemon, after --socket-path, --shared-dir and
                    --tag (repeatable; e.g. --daemon-arg=--backend --daemon-arg=macos-logic)
  --kernel-arg ARG  one more word for the guest kernel's command line (repeatable; e.g.
                    --kernel-arg=slub_debug=FZPU to catch guest memory corruption early)
  --fsx-ops N       fsx operations (default 10000)
  --tag TAG         the virtio-fs tag (default e2efs)
  --limit SECS      time bound of each suite in the guest (default: smoke 180, pjdfstest
                    and fsx 600); QEMU is killed after their sum plus 120 s
  --daemon-user USER
                    start the daemon as this unprivileged account (xtask runs as root):
                    the shared directory and a copy of the daemon binary are put in
                    <tmp>/virtiofs-e2e-<pid>-<kernel>/, the share owned by USER; the
                    serving process must run as USER with no capability, in a user
                    namespace of its own (checked from /proc, the `daemon-user` check)
  --keep            keep each run's shared directory even when it passed
  --provision-only  provision kernels, tools and initramfs images, boot nothing
  --profile macos   our daemon declaring only what the macOS backend honours
                    (--capabilities macos --writeback --announce-submounts); kernels
                    default to 6.12,7.3 and suites to smoke; the daemon log must show
                    every FUSE_INIT negotiating WRITEBACK_CACHE and SUBMOUNTS, never
                    POSIX_ACL or ALLOW_IDMAP
  --profile macos-logic
                    our daemon serving the macOS backend's logic over its Linux adapter
                    (--backend macos-logic --xattr); kernels default to 6.12,7.3 and
                    suites to all; the flag check of --profile macos, except that
                    WRITEBACK_CACHE must be negotiated only with --daemon-arg=--writeback;
                    pjdfstest cases that cannot pass by this backend's design are expected
                    failures (listed in the summary)
  --profile userns  our daemon with its defaults (--sandbox namespace, seccomp, Landlock)
                    started as an unprivileged account: --daemon-user virtiofs-e2e (a
                    system account, created when missing) unless --daemon-user is given;
                    kernels default to 6.12 and suites to smoke,fsx; smoke's chown is an
                    expected failure, and so are, with --suite all, the 53 pjdfstest cases
                    that an unprivileged daemon cannot pass (other owners, device nodes,
                    the creator's credentials: listed in the summary)

The cache is .cache/e2e/ at the repository root (VIRTIOFS_CACHE overrides it); the logs of a
run are in <cache>/runs/<kernel>/: console.log, daemon.log, qemu.log.
";

/// Every suite, in the order the guest runs them.
const SUITES: &[&str] = &["smoke", "pjdfstest", "fsx"];

/// Time bound of each suite in the guest (seconds); the host adds [`BOOT_BOUND`] per boot.
/// Measured with virtiofsd on TCG, every suite takes under a minute on each kernel.
fn suite_limit(suite: &str, options: &Options) -> u64 {
    if let Some(limit) = options.limit {
        return limit;
    }
    match suite {
        "pjdfstest" | "fsx" => 600,
        _ => 180,
    }
}

/// Time for QEMU to boot, mount and power off, on top of the suites' bounds.
const BOOT_BOUND: Duration = Duration::from_secs(120);

/// What the guest's kernel command line carries in `e2e_tag=`.
const DEFAULT_TAG: &str = "e2efs";

/// What the host seeds in the shared directory and the smoke suite reads.
const HOST_SEED: &str = "hello from the host\n";
/// What the smoke suite leaves in the shared directory for the host to check.
const GUEST_WITNESS: &str = "written by the guest\n";

/// The daemon to test.
#[derive(Debug, Clone)]
enum Daemon {
    /// Ours, built by cargo.
    Ours,
    /// virtiofsd from crates.io (a stand-in while ours is being written).
    StandIn,
    /// Any binary with virtiofsd's command line.
    Path(PathBuf),
}

#[derive(Debug)]
struct Options {
    kernels: Vec<&'static KernelSpec>,
    suites: Vec<&'static str>,
    daemon: Daemon,
    daemon_args: Vec<String>,
    /// `--kernel-arg`: more words for the guest kernel's command line.
    kernel_args: Vec<String>,
    fsx_ops: u64,
    /// Overrides [`suite_limit`].
    limit: Option<u64>,
    tag: String,
    keep: bool,
    provision_only: bool,
    /// `--profile`: its daemon arguments, defaults, flag check and expected failures.
    profile: Option<Profile>,
    /// `--daemon-user`: the unprivileged account the daemon runs as.
    daemon_user: Option<String>,
}

/// A named daemon configuration with its own defaults and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Our linux backend declaring only what the macOS backend honours.
    Macos,
    /// The macOS backend's logic over its Linux adapter (`--backend macos-logic`).
    MacosLogic,
    /// Our daemon with its defaults, started as an unprivileged account.
    Userns,
}

/// The daemon arguments of `--profile macos`.
const MACOS_PROFILE_ARGS: &[&str] = &[
    "--capabilities",
    "macos",
    "--writeback",
    "--announce-submounts",
];
/// The daemon arguments of `--profile macos-logic`. Submounts are always announced by that
/// backend; `--xattr` exercises its extended-attribute paths. No `--writeback`: with the
/// writeback cache the guest stamps mtime from its own clock, which lags the host's by up to a
/// second under TCG, so pjdfstest's `utimensat::utime_now` fails with any backend (seen with
/// `--backend linux --writeback` too); `--daemon-arg=--writeback` adds it.
const MACOS_LOGIC_PROFILE_ARGS: &[&str] = &["--backend", "macos-logic", "--xattr"];
/// The kernels `--profile macos` and `--profile macos-logic` boot by default.
const MACOS_PROFILE_KERNELS: &[&str] = &["6.12", "7.3"];
/// The kernel `--profile userns` boots by default.
const USERNS_PROFILE_KERNELS: &[&str] = &["6.12"];
/// The suites `--profile userns` runs by default: pjdfstest only when asked (`--suite all`),
/// as it doubles the run (over two minutes on TCG, 53 of its cases expected to fail).
const USERNS_PROFILE_SUITES: &[&str] = &["smoke", "fsx"];

/// A check that fails by design under a profile: its failure is counted as expected (`xfail`),
/// not as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExpectedFailure {
    /// The suite reporting it (`E2E-FAIL <suite> <check> ...`).
    suite: &'static str,
    /// The check's name: a pjdfstest test's name as pjdfstest prints it.
    check: &'static str,
    /// Why it cannot pass with this configuration.
    why: &'static str,
}

/// The expected failures of `--profile macos-logic`. An entry is added only after it was seen
/// failing, for a reason inherent to the macOS backend's design.
const MACOS_LOGIC_EXPECTED: &[ExpectedFailure] = &[];

/// Why `--profile userns` cannot give a file to another owner: its user namespace maps only
/// the daemon's own uid and gid, so `fchownat` to any other id is EINVAL.
const USERNS_CHOWN: &str = "an unprivileged daemon can give a file to no other owner: its user \
                            namespace maps only its own uid and gid (fchownat: EINVAL)";
/// Why `--profile userns` makes no block or character device (but the whiteout, 0:0).
const USERNS_DEVICE: &str = "mknod of a block or character device needs CAP_MKNOD in the \
                             host's user namespace (EPERM); pjdfstest makes one first";
/// Why a file a guest user creates is not theirs under `--profile userns`.
const USERNS_OWNER: &str = "a new file is the daemon account's, whoever creates it: an \
                            unprivileged daemon cannot switch to the caller's credentials";

/// The expected failures of `--profile userns`: smoke's chown, and the pjdfstest cases seen
/// failing (6.12, every one for one of the three reasons above; `--suite all` runs them).
/// Any other failure fails the run.
const USERNS_EXPECTED: &[ExpectedFailure] = &[
    ExpectedFailure {
        suite: "smoke",
        check: "chown",
        why: USERNS_CHOWN,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chmod::change_perm::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chmod::clear_isgid_bit",
        why: USERNS_CHOWN,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chmod::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chmod::failed_chmod_unchanged_ctime::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chmod::update_ctime::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chown::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "chown::lchown::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::changed_ctime_success::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::eexist_dest_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::enotdir_component_either::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::remove_link::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::share_metadata::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::share_metadata::char",
        why: USERNS_CHOWN,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::share_metadata::fifo",
        why: USERNS_CHOWN,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::share_metadata::regular",
        why: USERNS_CHOWN,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::share_metadata::socket",
        why: USERNS_CHOWN,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "link::unchanged_ctime_fails::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mkdir::eexist_file_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mkdir::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mkdir::uid_gid_eq_euid_egid",
        why: USERNS_OWNER,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mkfifo::eexist_file_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mkfifo::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mkfifo::uid_gid_eq_euid_egid",
        why: USERNS_OWNER,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::changed_times_success::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::changed_times_success::char",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::device_files::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::device_files::char",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::eexist_file_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::enotdir_comp_char_block::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::privileged::eexist_file_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "mknod::uid_gid_eq_euid_egid",
        why: USERNS_OWNER,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "open::eexist_file_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "open::uid_gid_eq_euid_egid",
        why: USERNS_OWNER,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::eexist_enotempty_to_non_empty::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::eisdir_to_dir_from_not_dir::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::enotdir_component_either::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::enotdir_from_dir_to_not_dir::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::preserve_metadata::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::to_multiply_linked::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rename::unchanged_ctime_failed::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rmdir::eexist_enotempty_non_empty_dir::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "rmdir::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "symlink::create_symlink::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "symlink::eexist_file_exists::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "symlink::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "truncate::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "unlink::enotdir_component::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "unlink::remove_type::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "unlink::unchanged_ctime_failed::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "unlink::update_ctime_success::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "unlink::update_mtime_ctime_success_folder::block",
        why: USERNS_DEVICE,
    },
    ExpectedFailure {
        suite: "pjdfstest",
        check: "utimensat::changes_timestamps::block",
        why: USERNS_DEVICE,
    },
];

impl Profile {
    fn parse(name: &str) -> Result<Profile> {
        match name {
            "macos" => Ok(Profile::Macos),
            "macos-logic" => Ok(Profile::MacosLogic),
            "userns" => Ok(Profile::Userns),
            _ => bail!("--profile: unknown profile `{name}` (macos, macos-logic, userns)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Profile::Macos => "macos",
            Profile::MacosLogic => "macos-logic",
            Profile::Userns => "userns",
        }
    }

    fn daemon_args(self) -> &'static [&'static str] {
        match self {
            Profile::Macos => MACOS_PROFILE_ARGS,
            Profile::MacosLogic => MACOS_LOGIC_PROFILE_ARGS,
            Profile::Userns => &[],
        }
    }

    /// The kernels booted when `--kernel` is not given.
    fn kernels(self) -> &'static [&'static str] {
        match self {
            Profile::Macos | Profile::MacosLogic => MACOS_PROFILE_KERNELS,
            Profile::Userns => USERNS_PROFILE_KERNELS,
        }
    }

    /// Whether the daemon log's negotiated flags are checked against the macOS set.
    fn checks_macos_flags(self) -> bool {
        matches!(self, Profile::Macos | Profile::MacosLogic)
    }

    /// The suites run when `--suite` is not given.
    fn suites(self) -> &'static [&'static str] {
        match self {
            Profile::Macos => &["smoke"],
            Profile::MacosLogic => SUITES,
            Profile::Userns => USERNS_PROFILE_SUITES,
        }
    }

    fn expected_failures(self) -> &'static [ExpectedFailure] {
        match self {
            Profile::Macos => &[],
            Profile::MacosLogic => MACOS_LOGIC_EXPECTED,
            Profile::Userns => USERNS_EXPECTED,
        }
    }
}

fn parse(args: &[String]) -> Result<Options> {
    let mut kernels: Vec<&'static KernelSpec> = Vec::new();
    let mut suites: Vec<&'static str> = Vec::new();
    let mut options = Options {
        kernels: Vec::new(),
        suites: Vec::new(),
        daemon: Daemon::Ours,
        daemon_args: Vec::new(),
        kernel_args: Vec::new(),
        fsx_ops: 10000,
        limit: None,
        tag: DEFAULT_TAG.to_owned(),
        keep: false,
        provision_only: false,
        profile: None,
        daemon_user: None,
    };
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("kernel") => {
                for k in p.string()?.split(',') {
                    if k == "all" {
                        kernels.extend(provision::KERNELS.iter());
                    } else {
                        let spec = provision::KERNELS
                            .iter()
                            .find(|s| s.label == k)
                            .with_context(|| format!("unknown kernel `{k}` (6.1, 6.12, 7.3)"))?;
                        kernels.push(spec);
                    }
                }
            }
            Arg::Long("suite") => {
                for s in p.string()?.split(',') {
                    if s == "all" {
                        suites.extend(SUITES.iter().copied());
                    } else {
                        let suite =
                            SUITES.iter().copied().find(|x| *x == s).with_context(|| {
                                format!("unknown suite `{s}` ({})", SUITES.join(", "))
                            })?;
                        suites.push(suite);
                    }
                }
            }
            Arg::Long("daemon") => {
                let v = p.string()?;
                options.daemon = if v == "virtiofsd" {
                    Daemon::StandIn
                } else {
                    let path = PathBuf::from(&v);
                    Daemon::Path(if path.is_relative() && path.components().count() > 1 {
                        std::env::current_dir()?.join(path)
                    } else {
                        path
                    })
                };
            }
            Arg::Long("daemon-arg") => options.daemon_args.push(p.string()?),
            Arg::Long("kernel-arg") => options.kernel_args.push(p.string()?),
            Arg::Long("fsx-ops") => {
                let v = p.string()?;
                options.fsx_ops = v
                    .parse()
                    .with_context(|| format!("--fsx-ops: `{v}` is not a number"))?;
            }
            Arg::Long("limit") => {
                let v = p.string()?;
                options.limit = Some(
                    v.parse()
                        .with_context(|| format!("--limit: `{v}` is not a number"))?,
                );
            }
            Arg::Long("tag") => {
                let v = p.string()?;
                if v.is_empty() || v.len() > 36 || v.contains(char::is_whitespace) {
                    bail!("--tag: 1 to 36 characters, no white space");
                }
                options.tag = v;
            }
            Arg::Long("profile") => options.profile = Some(Profile::parse(&p.string()?)?),
            Arg::Long("daemon-user") => options.daemon_user = Some(p.string()?),
            Arg::Long("keep") => options.keep = true,
            Arg::Long("provision-only") => options.provision_only = true,
            other => return Err(p.unexpected(other)),
        }
    }
    if let Some(profile) = options.profile {
        if !matches!(options.daemon, Daemon::Ours) {
            bail!(
                "--profile {} needs our daemon ({})",
                profile.name(),
                profile.daemon_args().join(" ")
            );
        }
        options
            .daemon_args
            .extend(profile.daemon_args().iter().map(|a| (*a).to_owned()));
        if kernels.is_empty() {
            kernels.extend(
                provision::KERNELS
                    .iter()
                    .filter(|k| profile.kernels().contains(&k.label)),
            );
        }
        if suites.is_empty() {
            suites.extend(profile.suites().iter().copied());
        }
        if profile == Profile::Userns && options.daemon_user.is_none() {
            options.daemon_user = Some(daemon_proc::DEFAULT_USER.to_owned());
        }
    }
    if kernels.is_empty() {
        kernels.extend(provision::KERNELS.iter());
    }
    if suites.is_empty() {
        suites.extend(SUITES.iter().copied());
    }
    // Dedup, keeping the canonical order.
    options.kernels = provision::KERNELS
        .iter()
        .filter(|k| kernels.iter().any(|x| x.label == k.label))
        .collect();
    options.suites = SUITES
        .iter()
        .copied()
        .filter(|s| suites.contains(s))
        .collect();
    Ok(options)
}

/// Entry point of `cargo xtask e2e`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let cache = provision::cache_dir()?;
    // One e2e run per cache at a time: runs share the run directories and the initramfs
    // images, and two TCG guests on two cores would only slow each other down.
    let _lock = RunLock::acquire(&cache)?;
    step("provisioning");
    println!("cache: {}", cache.display());
    provision::ensure_host_packages()?;
    let tools = provision::ensure_tools(&cache)?;
    let mut kernels = Vec::new();
    for spec in &options.kernels {
        kernels.push(provision::ensure_kernel(&cache, spec)?);
    }
    if options.provision_only {
        for kernel in &kernels {
            let image = provision::build_initramfs(&cache, kernel, &tools)?;
            println!(
                "{}: {} {}",
                kernel.label,
                kernel.vmlinuz.display(),
                image.display()
            );
        }
        return Ok(());
    }
    let daemon = match &options.daemon {
        Daemon::Ours => build_our_daemon()?,
        Daemon::StandIn => provision::ensure_stand_in(&cache)?,
        Daemon::Path(path) => path.clone(),
    };
    if !daemon.is_file() {
        bail!("daemon {} does not exist", daemon.display());
    }
    let account = match &options.daemon_user {
        Some(name) => {
            let account = daemon_proc::ensure_account(name)?;
            println!(
                "the daemon runs as {} (uid {}, gid {})",
                account.name, account.uid, account.gid
            );
            Some(account)
        }
        None => None,
    };

    let mut reports = Vec::new();
    for kernel in &kernels {
        step(&format!("kernel {} ({})", kernel.label, kernel.release));
        let initramfs = provision::build_initramfs(&cache, kernel, &tools)?;
        let boot_once = || {
            boot(
                &cache,
                kernel,
                &initramfs,
                &daemon,
                account.as_ref(),
                &options,
            )
        };
        let mut report = boot_once()?;
        if report.died_before_userland() {
            // Under TCG a guest kernel now and then oopses in early boot (seen: int3 in
            // sched_clock_cpu while patching static keys, on 7.3). Before its userland ran,
            // nothing had mounted the share, so no request of ours can be the cause: the
            // failed boot is printed and the kernel gets one more boot, which must pass.
            report.print();
            println!(
                "{}: the guest kernel oopsed before its userland started; booting it once more",
                report.label
            );
            report = boot_once()?;
        }
        report.print();
        reports.push(report);
    }

    step("e2e summary");
    println!(
        "daemon: {} {}{}",
        daemon.display(),
        options.daemon_args.join(" "),
        account
            .as_ref()
            .map_or_else(String::new, |a| format!(" (as {}, uid {})", a.name, a.uid))
    );
    let (mut passed, mut failed, mut skipped, mut xfailed) = (0, 0, 0, 0);
    for report in &reports {
        report.print();
        for r in &report.results {
            passed += r.pass;
            failed += r.fail;
            skipped += r.skip;
            xfailed += r.xfail;
        }
        // A timeout, a missing result or a daemon crash counts as one failure each.
        failed += report.problems.len() as u64;
    }
    if let Some(profile) = options.profile {
        // Only those of the suites that ran.
        let expected: Vec<&ExpectedFailure> = profile
            .expected_failures()
            .iter()
            .filter(|e| options.suites.contains(&e.suite))
            .collect();
        println!(
            "\nexpected failures of --profile {}: {}",
            profile.name(),
            if expected.is_empty() {
                "none".to_owned()
            } else {
                expected.len().to_string()
            }
        );
        for e in expected {
            println!("  {} {}: {}", e.suite, e.check, e.why);
        }
    }
    let failures: Vec<&Report> = reports.iter().filter(|r| !r.ok()).collect();
    println!(
        "e2e: {passed} passed, {failed} failed, {xfailed} expected failures, {skipped} skipped"
    );
    if !failures.is_empty() {
        for report in &failures {
            println!(
                "{}: FAILED; console log {}",
                report.label,
                report.console.display()
            );
        }
        bail!(
            "e2e failed on kernel(s) {}",
            failures
                .iter()
                .map(|r| r.label)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Builds our daemon (release) and returns its path.
pub(crate) fn build_our_daemon() -> Result<PathBuf> {
    step("building our daemon");
    let mut cmd = util::cargo();
    cmd.args(["build", "--release", "-p", "virtiofs-device"]);
    util::run(cmd)?;
    Ok(util::target_dir().join("release/virtiofs-device"))
}

/// `<cache>/e2e.lock`, holding the pid of the e2e run that owns the cache; removed on drop.
/// A lock whose process is gone is taken over.
pub(crate) struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// How long to wait for another run before giving up.
    const WAIT: Duration = Duration::from_secs(45 * 60);

    pub(crate) fn acquire(cache: &Path) -> Result<Self> {
        let path = cache.join("e2e.lock");
        let me = std::process::id().to_string();
        let deadline = Instant::now() + Self::WAIT;
        let mut told = false;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(me.as_bytes())?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).context(format!("cannot create {}", path.display())),
            }
            let owner = fs::read_to_string(&path).unwrap_or_default();
            let owner = owner.trim();
            let alive = !owner.is_empty() && Path::new("/proc").join(owner).exists();
            if !alive {
                // Stale (or being written this instant: then the owner's pid shows up on the
                // next look, and create_new above fails again).
                if !owner.is_empty() {
                    println!("taking over the stale lock of pid {owner}");
                    let _ = fs::remove_file(&path);
                }
            } else if !told {
                println!(
                    "waiting for the e2e run of pid {owner} to finish ({})",
                    path.display()
                );
                told = true;
            }
            if Instant::now() >= deadline {
                bail!(
                    "another e2e run (pid {owner}) still holds {} after {} min",
                    path.display(),
                    Self::WAIT.as_secs() / 60
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let mine = fs::read_to_string(&self.path)
            .is_ok_and(|owner| owner.trim() == std::process::id().to_string());
        if mine {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// One suite's figures, from an `E2E-RESULT` line.
#[derive(Debug, Clone, PartialEq)]
struct SuiteResult {
    suite: String,
    pass: u64,
    fail: u64,
    skip: u64,
    /// Checks that failed once and passed when run again (counted in `pass`).
    flaky: u64,
    /// The profile's expected failures that failed (not counted in `fail`).
    xfail: u64,
    secs: f64,
}

/// What one boot produced.
#[derive(Debug)]
struct Report {
    label: &'static str,
    release: String,
    console: PathBuf,
    /// Host time from QEMU's start to the guest's init.
    boot: Option<Duration>,
    total: Duration,
    results: Vec<SuiteResult>,
    /// Failures the guest could not report: timeouts, missing results, daemon crash...
    problems: Vec<String>,
    /// `E2E-FAIL` and `E2E-FLAKY` lines, for the table.
    failures: Vec<String>,
    /// The ends of the console and daemon logs when something failed (CI shows only stdout).
    logs: String,
    /// Remarks that are not failures: expected failures that passed.
    notes: Vec<String>,
    /// The run's directory (its daemon.log and qemu.log).
    run_dir: PathBuf,
    /// The serving daemon process and its last user and system CPU-time sample.
    daemon_cpu: Option<(u32, (Duration, Duration))>,
}

impl Report {
    fn ok(&self) -> bool {
        self.problems.is_empty() && self.results.iter().all(|r| r.fail == 0)
    }

    /// The run failed because the guest kernel oopsed before the initramfs's userland started
    /// (no boot marker, an oops in the console): before the share was mounted.
    fn died_before_userland(&self) -> bool {
        !self.ok()
            && self.boot.is_none()
            && kernel_oops(&self.run_dir.join("console.log")).is_some()
    }

    fn print(&self) {
        let boot = self
            .boot
            .map_or_else(|| "-".to_owned(), |b| format!("{:.1} s", b.as_secs_f64()));
        println!(
            "\nkernel {} ({}): boot {boot}, total {:.1} s, {}",
            self.label,
            self.release,
            self.total.as_secs_f64(),
            if self.ok() { "ok" } else { "FAILED" }
        );
        println!(
            "  {:<12} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9}",
            "suite", "pass", "fail", "skip", "flaky", "xfail", "secs"
        );
        for r in &self.results {
            println!(
                "  {:<12} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9.1}  {}",
                r.suite,
                r.pass,
                r.fail,
                r.skip,
                r.flaky,
                r.xfail,
                r.secs,
                if r.fail == 0 { "ok" } else { "FAILED" }
            );
        }
        for line in self.failures.iter().take(30) {
            println!("  {line}");
        }
        for problem in &self.problems {
            println!("  problem: {problem}");
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
        if let Some((pid, (user, system))) = self.daemon_cpu {
            println!(
                "  daemon CPU: {:.2} s (user {:.2} s, system {:.2} s; pid {pid}, /proc/{pid}/stat)",
                (user + system).as_secs_f64(),
                user.as_secs_f64(),
                system.as_secs_f64()
            );
        }
        if !self.ok() {
            print!("{}", self.logs);
            println!("  console log: {}", self.console.display());
            println!(
                "  daemon log:  {}",
                self.run_dir.join("daemon.log").display()
            );
        }
    }
}

/// Parses `E2E-RESULT <suite> pass N fail N skip N secs S`.
fn parse_result(line: &str) -> Option<SuiteResult> {
    let mut words = line.strip_prefix("E2E-RESULT ")?.split_whitespace();
    let suite = words.next()?.to_owned();
    let mut result = SuiteResult {
        suite,
        pass: 0,
        fail: 0,
        skip: 0,
        flaky: 0,
        xfail: 0,
        secs: 0.0,
    };
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        match key {
            "pass" => result.pass = value.parse().ok()?,
            "fail" => result.fail = value.parse().ok()?,
            "skip" => result.skip = value.parse().ok()?,
            "flaky" => result.flaky = value.parse().ok()?,
            "secs" => result.secs = value.parse().ok()?,
            _ => {}
        }
    }
    Some(result)
}

/// Checks the guest's results against what was asked: every suite (and the mount) reported.
fn judge(lines: &[String], suites: &[&str]) -> (Vec<SuiteResult>, Vec<String>, Vec<String>) {
    let results: Vec<SuiteResult> = lines.iter().filter_map(|l| parse_result(l)).collect();
    let failures: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("E2E-FAIL ") || l.starts_with("E2E-FLAKY "))
        .cloned()
        .collect();
    let mut problems = Vec::new();
    let mounted = results.iter().any(|r| r.suite == "mount" && r.fail == 0);
    for suite in std::iter::once(&"mount").chain(suites) {
        if !results.iter().any(|r| r.suite == *suite) && (mounted || *suite == "mount") {
            problems.push(format!("no result for {suite}"));
        }
    }
    if mounted && !lines.iter().any(|l| l == "E2E-DONE") {
        problems.push("the guest did not finish (no E2E-DONE)".to_owned());
    }
    (results, failures, problems)
}

/// A child process that is killed when dropped (QEMU, the daemon).
pub(crate) struct Guarded {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    pub(crate) status: Option<ExitStatus>,
}

impl Guarded {
    pub(crate) fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `grace` for a clean exit, then SIGTERM, then SIGKILL. Returns the status
    /// and whether we had to signal it.
    pub(crate) fn stop(&mut self, grace: Duration) -> (Option<ExitStatus>, bool) {
        if let Some(status) = wait_for(self, grace) {
            return (Some(status), false);
        }
        let _ = util::cmd("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if let Some(status) = wait_for(self, Duration::from_secs(5)) {
            return (Some(status), true);
        }
        println!("{} did not stop on SIGTERM: killing it", self.name);
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        (self.status, true)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.poll().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn wait_for(child: &mut Guarded, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.poll() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the vhost-user-fs `daemon` serving `shared` on `socket` (output to `log`) and waits
/// up to 20 s for the socket to appear.
pub(crate) fn start_daemon(
    daemon: &Path,
    socket: &Path,
    shared: &Path,
    tag: &str,
    extra_args: &[String],
    log: &Path,
) -> Result<Guarded> {
    start_daemon_as(daemon, socket, shared, tag, extra_args, log, None)
}

/// [`start_daemon`], as `account` (its uid and gid, no supplementary group) when given.
fn start_daemon_as(
    daemon: &Path,
    socket: &Path,
    shared: &Path,
    tag: &str,
    extra_args: &[String],
    log: &Path,
    account: Option<&Account>,
) -> Result<Guarded> {
    use std::os::unix::process::CommandExt;
    let daemon_log = File::create(log)?;
    let mut cmd = Command::new(daemon);
    if let Some(account) = account {
        // std calls setgroups(0) before setuid when root drops to another uid.
        cmd.uid(account.uid).gid(account.gid);
        println!(
            "(as {}: uid {}, gid {})",
            account.name, account.uid, account.gid
        );
    }
    cmd.arg("--socket-path")
        .arg(socket)
        .arg("--shared-dir")
        .arg(shared)
        .arg("--tag")
        .arg(tag)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(daemon_log.try_clone()?)
        .stderr(daemon_log);
    println!("$ {}", display(&cmd));
    let mut child = Guarded {
        name: "the daemon",
        child: cmd
            .spawn()
            .with_context(|| format!("cannot start {}", daemon.display()))?,
        status: None,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if let Some(status) = child.poll() {
            bail!(
                "the daemon exited before creating its socket ({status}); log {}:\n{}",
                log.display(),
                tail(log, 20)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "the daemon created no socket at {} within 20 s",
                socket.display()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

/// QEMU (TCG, 1 GiB of shared memfd memory, 2 CPUs) booting `kernel` with `initramfs` and a
/// `vhost-user-fs-pci` device on `socket`. The caller adds the serial console and stdio.
pub(crate) fn qemu_command(
    kernel: &Kernel,
    initramfs: &Path,
    append: &str,
    socket: &Path,
    tag: &str,
) -> Command {
    let mut qemu = qemu_base(kernel, initramfs, append, "1G");
    add_vhost_user_fs(&mut qemu, "char0", socket, tag);
    qemu
}

/// QEMU (TCG, 2 CPUs, `memory` of shared memfd memory as vhost-user needs) booting `kernel`
/// with `initramfs`, no devices yet.
pub(crate) fn qemu_base(kernel: &Kernel, initramfs: &Path, append: &str, memory: &str) -> Command {
    qemu_machine(kernel, initramfs, append, memory, 2)
}

/// [`qemu_base`] with `cpus` vCPUs.
pub(crate) fn qemu_machine(
    kernel: &Kernel,
    initramfs: &Path,
    append: &str,
    memory: &str,
    cpus: u32,
) -> Command {
    let mut qemu = util::cmd("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", "max", "-m", memory])
        .arg("-smp")
        .arg(cpus.to_string())
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(append)
        .arg("-object")
        .arg(format!(
            "memory-backend-memfd,id=mem,size={memory},share=on"
        ))
        .args(["-numa", "node,memdev=mem"]);
    qemu
}

/// Adds a `vhost-user-fs-pci` device with tag `tag` on the daemon socket `socket` (`id` names
/// its chardev, one per device).
pub(crate) fn add_vhost_user_fs(qemu: &mut Command, id: &str, socket: &Path, tag: &str) {
    qemu.arg("-chardev")
        .arg(format!("socket,id={id},path={}", socket.display()))
        .arg("-device")
        .arg(format!(
            "vhost-user-fs-pci,chardev={id},tag={tag},queue-size=1024"
        ));
}

/// Boots `kernel` once with every selected suite.
fn boot(
    cache: &Path,
    kernel: &Kernel,
    initramfs: &Path,
    daemon: &Path,
    account: Option<&Account>,
    options: &Options,
) -> Result<Report> {
    let run_dir = cache.join("runs").join(kernel.label);
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir)
            .with_context(|| format!("cannot clear {}", run_dir.display()))?;
    }
    fs::create_dir_all(&run_dir)?;
    let staging = match account {
        Some(account) => Some(daemon_proc::Staging::new(kernel.label, daemon, account)?),
        None => None,
    };
    let (daemon, shared) = match &staging {
        Some(staging) => {
            println!("shared directory: {}", staging.shared.display());
            (staging.daemon.clone(), staging.shared.clone())
        }
        None => (daemon.to_path_buf(), run_dir.join("shared")),
    };
    fs::create_dir_all(&shared)?;
    fs::write(shared.join("host-seed.txt"), HOST_SEED)?;
    if let Some(account) = account {
        std::os::unix::fs::chown(
            shared.join("host-seed.txt"),
            Some(account.uid),
            Some(account.gid),
        )?;
    }
    let console = run_dir.join("console.log");
    // A socket path must fit in sun_path (108 bytes): keep it short, outside the cache.
    let socket = std::env::temp_dir().join(format!(
        "virtiofs-e2e-{}-{}.sock",
        std::process::id(),
        kernel.label
    ));
    let _ = fs::remove_file(&socket);

    let mut daemon_child = start_daemon_as(
        &daemon,
        &socket,
        &shared,
        &options.tag,
        &options.daemon_args,
        &run_dir.join("daemon.log"),
        account,
    )?;
    let ticks = daemon_proc::clock_ticks();
    // The serving process, found once the guest has mounted (the sandbox is in place by
    // then: the daemon answers FUSE_INIT only after it), and its last CPU-time sample.
    let mut serving: Option<u32> = None;
    let mut daemon_cpu: Option<(Duration, Duration)> = None;
    let mut identity: Option<Result<String, String>> = None;

    let limits: Vec<String> = options
        .suites
        .iter()
        .map(|s| format!("{s}:{}", suite_limit(s, options)))
        .collect();
    let mut append = format!(
        "console=ttyS0 panic=-1 e2e_tag={} e2e_suites={} e2e_limits={} e2e_fsx_ops={}",
        options.tag,
        options.suites.join(","),
        limits.join(","),
        options.fsx_ops
    );
    for arg in &options.kernel_args {
        append.push(' ');
        append.push_str(arg);
    }
    let mut qemu = qemu_command(kernel, initramfs, &append, &socket, &options.tag);
    qemu.args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(run_dir.join("qemu.log"))?);
    println!("$ {}", display(&qemu));
    let bound = BOOT_BOUND
        + options
            .suites
            .iter()
            .map(|s| Duration::from_secs(suite_limit(s, options)))
            .sum::<Duration>();
    let started = Instant::now();
    let mut qemu_child = Guarded {
        name: "QEMU",
        child: qemu
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
        status: None,
    };
    let stdout = qemu_child.child.stdout.take().context("QEMU's stdout")?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let log_path = console.clone();
    let reader = thread::spawn(move || -> Result<()> {
        let mut log = File::create(&log_path)?;
        let mut stdout = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if stdout.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            log.write_all(&buf)?;
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(at) = line.find("E2E-") {
                let _ = tx.send((Instant::now(), line[at..].to_owned()));
            }
        }
    });

    let mut lines = Vec::new();
    let mut boot_time = None;
    let mut problems = Vec::new();
    loop {
        while let Ok((at, line)) = rx.try_recv() {
            if line.starts_with("E2E-BOOTED") {
                boot_time = Some(at - started);
            }
            if line.starts_with("E2E-RESULT mount ") && serving.is_none() {
                let pid = daemon_proc::serving_pid(daemon_child.child.id());
                serving = Some(pid);
                if let Some(account) = account {
                    let verdict = daemon_proc::check_identity(pid, account);
                    match &verdict {
                        Ok(seen) => println!("[{}] daemon identity: {seen}", kernel.label),
                        Err(e) => println!("[{}] daemon identity: {e}", kernel.label),
                    }
                    identity = Some(verdict);
                }
            }
            if !line.starts_with("    ") {
                println!("[{}] {line}", kernel.label);
            }
            lines.push(line);
        }
        if let Some(pid) = serving
            && let Some(cpu) = daemon_proc::cpu_time(pid, ticks)
        {
            daemon_cpu = Some(cpu);
        }
        if qemu_child.poll().is_some() {
            break;
        }
        if started.elapsed() > bound {
            problems.push(format!("timeout: QEMU killed after {} s", bound.as_secs()));
            let _ = qemu_child.child.kill();
            let _ = qemu_child.child.wait();
            break;
        }
        if let Some(status) = daemon_child.poll() {
            // virtiofsd exits when the guest powers off and QEMU disconnects: that is only
            // a problem if QEMU does not follow shortly, or the guest had not finished.
            let exited = wait_for(&mut qemu_child, Duration::from_secs(10)).is_some();
            while let Ok((_, line)) = rx.try_recv() {
                lines.push(line);
            }
            if !exited || !lines.iter().any(|l| l == "E2E-DONE") {
                problems.push(format!("the daemon exited during the run ({status})"));
            }
            let _ = qemu_child.child.kill();
            let _ = qemu_child.child.wait();
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let total = started.elapsed();
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("reading the console: {e:#}")),
        Err(_) => problems.push("the console reader panicked".to_owned()),
    }
    while let Ok((_, line)) = rx.try_recv() {
        lines.push(line);
    }
    if let Some(status) = qemu_child.status
        && !status.success()
        && problems.is_empty()
    {
        problems.push(format!(
            "QEMU exited with {status}; see {}",
            run_dir.join("qemu.log").display()
        ));
    }
    let (daemon_status, signalled) = daemon_child.stop(Duration::from_secs(3));
    if !signalled
        && let Some(status) = daemon_status
        && !status.success()
    {
        problems.push(format!(
            "the daemon exited with {status}; see {}",
            run_dir.join("daemon.log").display()
        ));
    }
    let _ = fs::remove_file(&socket);

    let (mut results, mut failures, mut guest_problems) = judge(&lines, &options.suites);
    problems.append(&mut guest_problems);
    let mut notes = Vec::new();
    if let Some(profile) = options.profile {
        let expected = profile.expected_failures();
        apply_expected(&mut results, &mut failures, expected);
        let log = fs::read_to_string(&console).unwrap_or_default();
        notes = stale_expected(&log, &failures, expected);
    }
    if options.profile.is_some_and(Profile::checks_macos_flags) {
        let log = fs::read_to_string(run_dir.join("daemon.log")).unwrap_or_default();
        let writeback = options.daemon_args.iter().any(|a| a == "--writeback");
        let verdict = check_macos_flags(&log, writeback);
        if let Err(e) = &verdict {
            failures.push(format!("E2E-FAIL negotiated-flags: {e}"));
        }
        results.push(SuiteResult {
            suite: "macos-flags".to_owned(),
            pass: u64::from(verdict.is_ok()),
            fail: u64::from(verdict.is_err()),
            skip: 0,
            flaky: 0,
            xfail: 0,
            secs: 0.0,
        });
    }
    if let Some(account) = account {
        let mounted = results.iter().any(|r| r.suite == "mount" && r.fail == 0);
        let verdict = identity.unwrap_or_else(|| {
            Err(format!(
                "not checked: the guest {}",
                if mounted {
                    "mounted, but no mount line was seen"
                } else {
                    "did not mount"
                }
            ))
        });
        if let Err(e) = &verdict {
            failures.push(format!("E2E-FAIL daemon-user {}: {e}", account.name));
        }
        results.push(SuiteResult {
            suite: "daemon-user".to_owned(),
            pass: u64::from(verdict.is_ok()),
            fail: u64::from(verdict.is_err()),
            skip: 0,
            flaky: 0,
            xfail: 0,
            secs: 0.0,
        });
    }
    if options.suites.contains(&"smoke") && results.iter().any(|r| r.suite == "smoke") {
        // The other direction: what the guest wrote is on the host.
        let witness = fs::read_to_string(shared.join("guest-witness.txt")).unwrap_or_default();
        let ok = witness == GUEST_WITNESS;
        results.push(SuiteResult {
            suite: "host-check".to_owned(),
            pass: u64::from(ok),
            fail: u64::from(!ok),
            skip: 0,
            flaky: 0,
            xfail: 0,
            secs: 0.0,
        });
    }
    let mut report = Report {
        label: kernel.label,
        release: kernel.release.clone(),
        console,
        boot: boot_time,
        total,
        results,
        problems,
        failures,
        logs: String::new(),
        notes,
        run_dir: run_dir.clone(),
        daemon_cpu: serving.zip(daemon_cpu),
    };
    if !report.ok() {
        if let Some(text) = kernel_oops(&run_dir.join("console.log")) {
            report
                .logs
                .push_str("  --- the guest kernel's first oops (console.log):\n");
            for line in text.lines() {
                report.logs.push_str(&format!("  | {line}\n"));
            }
        }
        for (name, lines) in [("console.log", 40), ("daemon.log", 20), ("qemu.log", 10)] {
            let text = tail(&run_dir.join(name), lines);
            if !text.trim().is_empty() {
                report
                    .logs
                    .push_str(&format!("  --- last lines of {name}:\n"));
                for line in text.lines() {
                    report.logs.push_str(&format!("  | {line}\n"));
                }
            }
        }
    }
    if report.ok() && !options.keep {
        let _ = fs::remove_dir_all(&shared);
    }
    if let Some(staging) = &staging {
        staging.finish();
    }
    Ok(report)
}

/// The `E2E-FAIL <suite> <check> ...` lines of `expected` checks become `E2E-XFAIL` lines, and
/// count in their suite's `xfail` instead of `fail`. pjdfstest's own `PASSED UNEXPECTEDLY`
/// is never expected.
fn apply_expected(
    results: &mut [SuiteResult],
    failures: &mut [String],
    expected: &[ExpectedFailure],
) {
    for line in failures.iter_mut() {
        let Some(rest) = line.strip_prefix("E2E-FAIL ") else {
            continue;
        };
        let Some((suite, detail)) = rest.split_once(' ') else {
            continue;
        };
        if detail.ends_with("PASSED UNEXPECTEDLY") {
            continue;
        }
        let Some(e) = expected.iter().find(|e| {
            e.suite == suite
                && detail
                    .strip_prefix(e.check)
                    .is_some_and(|after| after.is_empty() || after.starts_with(' '))
        }) else {
            continue;
        };
        let Some(result) = results.iter_mut().find(|r| r.suite == suite && r.fail > 0) else {
            continue;
        };
        result.fail -= 1;
        result.xfail += 1;
        *line = format!("E2E-XFAIL {suite} {} (expected: {})", e.check, e.why);
    }
}

/// Expected failures that passed in this run (`console` is the console log, where the guest
/// copies pjdfstest's output, one `<test> ... ok` line per test; a smoke check passed when the
/// suite reported and the check did not fail): the list may be stale.
fn stale_expected(console: &str, failures: &[String], expected: &[ExpectedFailure]) -> Vec<String> {
    let mut notes = Vec::new();
    for e in expected
        .iter()
        .filter(|e| e.suite == "pjdfstest" || e.suite == "smoke")
    {
        let xfailed = failures
            .iter()
            .any(|l| l.starts_with(&format!("E2E-XFAIL {} {} ", e.suite, e.check)));
        let passed = if e.suite == "smoke" {
            console.lines().any(|l| l.contains("E2E-RESULT smoke "))
        } else {
            console.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(e.check) && l.trim_end().ends_with(" ok")
            })
        };
        if !xfailed && passed {
            notes.push(format!(
                "expected failure {} {} passed: is its entry stale?",
                e.suite, e.check
            ));
        }
    }
    notes
}

/// The INIT flags each FUSE_INIT negotiated, from the daemon log: the `InitFlags(...)` of every
/// line that says `negotiated` (the linux backend logs `negotiated flags InitFlags(A | B)`,
/// the macOS backend `negotiated InitFlags(A | B)`).
fn negotiated_flags(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("negotiated"))
        .filter_map(|l| {
            let (_, flags) = l.split_once("InitFlags(")?;
            Some(flags.split_once(')').map_or(flags, |(f, _)| f))
        })
        .collect()
}

/// Checks the daemon log of a `--profile macos` or `macos-logic` run: at least one FUSE_INIT,
/// and each one negotiated SUBMOUNTS but neither POSIX_ACL nor ALLOW_IDMAP, and
/// WRITEBACK_CACHE exactly when the daemon had `--writeback` (the backends log the negotiated
/// flags at info level).
fn check_macos_flags(log: &str, writeback: bool) -> Result<(), String> {
    let inits = negotiated_flags(log);
    if inits.is_empty() {
        return Err("no negotiated `InitFlags(...)` line in the daemon log".to_owned());
    }
    let (wanted, unwanted): (&[&str], &[&str]) = if writeback {
        (
            &["WRITEBACK_CACHE", "SUBMOUNTS"],
            &["POSIX_ACL", "ALLOW_IDMAP"],
        )
    } else {
        (
            &["SUBMOUNTS"],
            &["POSIX_ACL", "ALLOW_IDMAP", "WRITEBACK_CACHE"],
        )
    };
    for flags in inits {
        let names: Vec<&str> = flags
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for wanted in wanted {
            if !names.contains(wanted) {
                return Err(format!("{wanted} not negotiated: {flags}"));
            }
        }
        for unwanted in unwanted {
            if names.contains(unwanted) {
                return Err(format!("{unwanted} negotiated: {flags}"));
            }
        }
    }
    Ok(())
}

/// Prints why a guest-root boot did not finish: the guest kernel's first oops, if any, and
/// the last 30 lines of its `console`.
pub(crate) fn print_unfinished_boot(console: &Path) {
    if let Some(oops) = kernel_oops(console) {
        println!("  --- the guest kernel's first oops (console.log):");
        for line in oops.lines() {
            println!("  | {line}");
        }
    }
    println!("  --- last lines of console.log:");
    for line in tail(console, 30).lines() {
        println!("  | {line}");
    }
}

/// The guest kernel's first oops, warning or panic in a console log, from a few lines before
/// it: what a CI log must show when a guest dies (the tail alone shows only the end of the
/// backtrace).
pub(crate) fn kernel_oops(path: &Path) -> Option<String> {
    const MARKERS: &[&str] = &[
        "BUG:",
        "Oops:",
        "general protection fault",
        "WARNING: CPU:",
        "Kernel panic",
        "slab error",
        "Redzone",
        "Poison overwritten",
        "Object corrupt",
    ];
    let text = fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| MARKERS.iter().any(|m| l.contains(m)))?;
    let start = first.saturating_sub(5);
    let end = (first + 80).min(lines.len());
    Some(lines[start..end].join("\n"))
}

/// The last `n` lines of a file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn kernel_oops_starts_before_the_first_marker() {
        let path = std::env::temp_dir().join(format!("xtask-oops-{}.log", std::process::id()));
        let mut text: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
        text.push("[   12.3] BUG: unable to handle page fault".to_owned());
        text.extend((0..200).map(|i| format!("trace {i}")));
        text.push("[   12.4] Kernel panic - not syncing".to_owned());
        fs::write(&path, text.join("\n")).unwrap();
        let oops = kernel_oops(&path).unwrap();
        assert!(oops.starts_with("line 5\n"), "{oops}");
        assert!(oops.contains("BUG: unable"));
        assert_eq!(oops.lines().count(), 85);
        fs::write(&path, "boot\nE2E-RESULT smoke pass 1\n").unwrap();
        assert_eq!(kernel_oops(&path), None);
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn macos_profile_defaults_and_daemon_args() {
        let o = parse(&["--profile".to_owned(), "macos".to_owned()]).unwrap();
        assert_eq!(o.profile, Some(Profile::Macos));
        let labels: Vec<&str> = o.kernels.iter().map(|k| k.label).collect();
        assert_eq!(labels, ["6.12", "7.3"]);
        assert_eq!(o.suites, ["smoke"]);
        assert_eq!(o.daemon_args, MACOS_PROFILE_ARGS);
        let o = parse(&["--profile=macos".to_owned(), "--kernel=6.1".to_owned()]).unwrap();
        assert_eq!(o.kernels.len(), 1);
        assert!(parse(&["--profile=linux".to_owned()]).is_err());
        assert!(
            parse(&[
                "--daemon=virtiofsd".to_owned(),
                "--profile=macos".to_owned()
            ])
            .is_err()
        );
    }

    #[test]
    fn macos_logic_profile_defaults_and_daemon_args() {
        let o = parse(&["--profile=macos-logic".to_owned()]).unwrap();
        assert_eq!(o.profile, Some(Profile::MacosLogic));
        let labels: Vec<&str> = o.kernels.iter().map(|k| k.label).collect();
        assert_eq!(labels, ["6.12", "7.3"]);
        assert_eq!(o.suites, SUITES);
        assert_eq!(o.daemon_args, MACOS_LOGIC_PROFILE_ARGS);
        assert!(
            o.daemon_args
                .windows(2)
                .any(|w| w == ["--backend", "macos-logic"])
        );
        // No --writeback by default (the flag check then forbids WRITEBACK_CACHE).
        assert!(!o.daemon_args.iter().any(|a| a == "--writeback"));
        // The user's own daemon arguments come first, the suites can be narrowed.
        let o = parse(&[
            "--daemon-arg=--cache=never".to_owned(),
            "--profile".to_owned(),
            "macos-logic".to_owned(),
            "--suite=smoke".to_owned(),
        ])
        .unwrap();
        assert_eq!(o.daemon_args[0], "--cache=never");
        assert_eq!(o.suites, ["smoke"]);
        let err = parse(&[
            "--daemon=virtiofsd".to_owned(),
            "--profile=macos-logic".to_owned(),
        ])
        .unwrap_err();
        assert!(format!("{err}").contains("macos-logic"), "{err}");
        let err = parse(&["--profile=macos_logic".to_owned()]).unwrap_err();
        assert!(format!("{err}").contains("macos-logic"), "{err}");
    }

    #[test]
    fn userns_profile_defaults() {
        let o = parse(&["--profile=userns".to_owned()]).unwrap();
        assert_eq!(o.profile, Some(Profile::Userns));
        let labels: Vec<&str> = o.kernels.iter().map(|k| k.label).collect();
        assert_eq!(labels, ["6.12"]);
        assert_eq!(o.suites, ["smoke", "fsx"]);
        // The daemon's own defaults: the sandbox is what is under test.
        assert!(o.daemon_args.is_empty());
        assert_eq!(o.daemon_user.as_deref(), Some(daemon_proc::DEFAULT_USER));
        assert!(!Profile::Userns.checks_macos_flags());
        let o = parse(&[
            "--daemon-user=someone".to_owned(),
            "--profile=userns".to_owned(),
            "--suite=all".to_owned(),
        ])
        .unwrap();
        assert_eq!(o.daemon_user.as_deref(), Some("someone"));
        assert_eq!(o.suites, SUITES);
        assert!(
            parse(&[
                "--daemon=virtiofsd".to_owned(),
                "--profile=userns".to_owned()
            ])
            .is_err()
        );
        // --daemon-user alone: any daemon, no profile.
        let o = parse(&["--daemon-user".to_owned(), "nobody".to_owned()]).unwrap();
        assert_eq!(
            (o.profile, o.daemon_user.as_deref()),
            (None, Some("nobody"))
        );
    }

    #[test]
    fn a_smoke_expected_failure() {
        let result = SuiteResult {
            suite: "smoke".to_owned(),
            pass: 28,
            fail: 1,
            skip: 0,
            flaky: 0,
            xfail: 0,
            secs: 1.0,
        };
        let mut results = vec![result];
        let mut failures = lines("E2E-FAIL smoke chown\n");
        apply_expected(&mut results, &mut failures, USERNS_EXPECTED);
        assert_eq!((results[0].fail, results[0].xfail), (0, 1));
        assert!(
            failures[0].starts_with("E2E-XFAIL smoke chown "),
            "{failures:?}"
        );
        let console = "[  3.0] E2E-RESULT smoke pass 28 fail 1 skip 0 secs 1.0\n";
        assert!(stale_expected(console, &failures, USERNS_EXPECTED).is_empty());
        // The suite ran and chown did not fail: the daemon could chown.
        let notes = stale_expected(console, &[], USERNS_EXPECTED);
        assert_eq!(notes.len(), 1, "{notes:?}");
        // The suite did not run: nothing to say.
        assert!(stale_expected("", &[], USERNS_EXPECTED).is_empty());
    }

    #[test]
    fn expected_list_is_well_formed() {
        for profile in [Profile::Macos, Profile::MacosLogic, Profile::Userns] {
            let list = profile.expected_failures();
            for (i, e) in list.iter().enumerate() {
                assert!(SUITES.contains(&e.suite), "{e:?}");
                assert!(!e.check.is_empty() && !e.check.contains(' '), "{e:?}");
                assert!(e.why.len() > 20, "give a reason: {e:?}");
                assert!(
                    !list[..i]
                        .iter()
                        .any(|x| x.suite == e.suite && x.check == e.check),
                    "twice: {e:?}"
                );
            }
        }
        assert!(Profile::Macos.expected_failures().is_empty());
    }

    #[test]
    fn expected_failures_are_not_failures() {
        const EXPECTED: &[ExpectedFailure] = &[ExpectedFailure {
            suite: "pjdfstest",
            check: "chown::by_design",
            why: "the host never changes ownership",
        }];
        let result = |suite: &str, fail| SuiteResult {
            suite: suite.to_owned(),
            pass: 10,
            fail,
            skip: 0,
            flaky: 0,
            xfail: 0,
            secs: 1.0,
        };
        let mut results = vec![result("smoke", 1), result("pjdfstest", 3)];
        let mut failures = lines(
            "E2E-FAIL smoke chown::by_design\n\
             E2E-FAIL pjdfstest chown::by_design FAILED (and on 2 reruns)\n\
             E2E-FAIL pjdfstest chown::by_design_too FAILED (and on 2 reruns)\n\
             E2E-FAIL pjdfstest chown::by_design PASSED UNEXPECTEDLY\n",
        );
        apply_expected(&mut results, &mut failures, EXPECTED);
        // Only the pjdfstest line of that exact test.
        assert_eq!((results[0].fail, results[0].xfail), (1, 0));
        assert_eq!((results[1].fail, results[1].xfail), (2, 1));
        assert_eq!(
            failures[1],
            "E2E-XFAIL pjdfstest chown::by_design (expected: the host never changes ownership)"
        );
        assert!(failures[2].starts_with("E2E-FAIL "));
        assert!(failures[3].starts_with("E2E-FAIL "));
        // It failed: nothing stale.
        assert!(stale_expected("    chown::by_design   FAILED", &failures, EXPECTED).is_empty());
        // It passed: the entry may be stale.
        let console = "    chown::by_design_too    ok\n    chown::by_design            ok\n";
        let notes = stale_expected(console, &[], EXPECTED);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("chown::by_design passed"), "{notes:?}");
        assert!(stale_expected("    chown::by_design_too  ok", &[], EXPECTED).is_empty());
    }

    #[test]
    fn negotiated_flags_of_both_backends() {
        let log = "[INFO passthrough_linux::ops] FUSE_INIT 7.45: negotiated flags \
                   InitFlags(ASYNC_READ | SUBMOUNTS)\n\
                   [INFO passthrough_macos::fs] macOS backend: negotiated \
                   InitFlags(WRITEBACK_CACHE | SUBMOUNTS) (minor 45)\n\
                   [INFO x] InitFlags(POSIX_ACL) offered\n";
        assert_eq!(
            negotiated_flags(log),
            ["ASYNC_READ | SUBMOUNTS", "WRITEBACK_CACHE | SUBMOUNTS"]
        );
        let macos = "[INFO passthrough_macos::fs] macOS backend: negotiated \
                     InitFlags(ASYNC_READ | WRITEBACK_CACHE | SUBMOUNTS) (minor 45)";
        assert_eq!(check_macos_flags(macos, true), Ok(()));
        assert!(check_macos_flags(macos, false).is_err());
        let no_wb = "[INFO passthrough_macos::fs] macOS backend: negotiated \
                     InitFlags(ASYNC_READ | SUBMOUNTS | NO_EXPORT_SUPPORT) (minor 41)";
        assert_eq!(check_macos_flags(no_wb, false), Ok(()));
        assert!(check_macos_flags(no_wb, true).is_err());
    }

    #[test]
    fn macos_flags_check() {
        let good = "[INFO passthrough_linux::ops] FUSE_INIT 7.45: negotiated flags \
                    InitFlags(ASYNC_READ | POSIX_LOCKS | WRITEBACK_CACHE | SUBMOUNTS)";
        assert_eq!(check_macos_flags(good, true), Ok(()));
        assert!(check_macos_flags("nothing here", true).is_err());
        let acl = "negotiated flags InitFlags(WRITEBACK_CACHE | SUBMOUNTS | POSIX_ACL)";
        assert!(
            check_macos_flags(acl, true)
                .unwrap_err()
                .contains("POSIX_ACL")
        );
        let idmap = "negotiated flags InitFlags(WRITEBACK_CACHE | SUBMOUNTS | ALLOW_IDMAP)";
        assert!(check_macos_flags(idmap, true).is_err());
        let no_wb = "negotiated flags InitFlags(SUBMOUNTS)";
        assert!(
            check_macos_flags(no_wb, true)
                .unwrap_err()
                .contains("WRITEBACK_CACHE")
        );
        // Every INIT counts.
        assert!(check_macos_flags(&format!("{good}\n{acl}"), true).is_err());
    }

    #[test]
    fn parses_result_lines() {
        let r = parse_result("E2E-RESULT pjdfstest pass 375 fail 0 skip 23 secs 412.5");
        assert_eq!(
            r,
            Some(SuiteResult {
                suite: "pjdfstest".to_owned(),
                pass: 375,
                fail: 0,
                skip: 23,
                flaky: 0,
                xfail: 0,
                secs: 412.5
            })
        );
        assert_eq!(parse_result("E2E-RESULT smoke pass x fail 0"), None);
        assert_eq!(parse_result("E2E-FAIL smoke chmod"), None);
    }

    #[test]
    fn missing_results_are_problems() {
        let log = lines(
            "E2E-BOOTED 1.0\nE2E-RESULT mount pass 1 fail 0 skip 0 secs 0.1\n\
             E2E-RESULT smoke pass 10 fail 0 skip 0 secs 2.0\n",
        );
        let (results, failures, problems) = judge(&log, &["smoke", "fsx"]);
        assert_eq!(results.len(), 2);
        assert!(failures.is_empty());
        assert_eq!(
            problems,
            vec![
                "no result for fsx".to_owned(),
                "the guest did not finish (no E2E-DONE)".to_owned()
            ]
        );
    }

    #[test]
    fn a_failed_mount_is_reported_once() {
        let log = lines(
            "E2E-FAIL mount mount -t virtiofs e2efs /mnt: no such device\n\
             E2E-RESULT mount pass 0 fail 1 skip 0 secs 20.0\nE2E-DONE\n",
        );
        let (results, failures, problems) = judge(&log, &["smoke"]);
        assert_eq!(results[0].fail, 1);
        assert_eq!(failures.len(), 1);
        assert!(problems.is_empty());
    }

    #[test]
    fn options_default_to_everything() -> Result<()> {
        let o = parse(&[])?;
        assert_eq!(o.kernels.len(), 3);
        assert_eq!(o.suites, SUITES);
        let o = parse(&[
            "--kernel=6.12".to_owned(),
            "--suite".to_owned(),
            "fsx,smoke".to_owned(),
            "--daemon-arg=--backend".to_owned(),
            "--daemon-arg".to_owned(),
            "macos-logic".to_owned(),
        ])?;
        assert_eq!(o.kernels[0].label, "6.12");
        assert_eq!(o.suites, ["smoke", "fsx"]);
        assert_eq!(o.daemon_args, ["--backend", "macos-logic"]);
        assert!(parse(&["--kernel".to_owned(), "5.10".to_owned()]).is_err());
        Ok(())
    }
}
