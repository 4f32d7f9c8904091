//! The command line: virtiofsd's main options plus ours (`--queues`, `--poll-us`,
//! `--fuse-mount`, `--backend`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// A vhost-user virtio-fs daemon: serves a host directory to a VM (QEMU `vhost-user-fs-pci`,
/// Cloud Hypervisor, crosvm), or mounts it on the host through /dev/fuse with --fuse-mount.
///
/// Layers after start-up, on every thread: Landlock (--landlock, default auto: files only
/// beneath the share where the kernel has it), then no_new_privs and a seccomp allow-list
/// (--seccomp, default kill). The start-up log names each active layer.
#[derive(Debug, Parser)]
#[command(
    name = "virtiofs-device",
    version,
    after_help = "Sandbox layers active by default: --sandbox namespace (new mount, PID, IPC, UTS and \
network namespaces, plus a user namespace when not started as root; pivot_root into the shared \
directory, the old root detached), capabilities reduced to what the options need when started \
as root (--modcaps adjusts), RLIMIT_NOFILE raised (--rlimit-nofile). --sandbox chroot is for \
containers without CAP_SYS_ADMIN; --sandbox none disables the namespaces and the chroot. The \
daemon logs each active layer at start (info level)."
)]
pub(crate) struct Cli {
    /// vhost-user socket path to listen on (created; a stale socket is replaced).
    #[arg(long, alias = "socket", value_name = "PATH",
          required_unless_present_any = ["fd", "fuse_mount", "print_capabilities"],
          conflicts_with_all = ["fd", "fuse_mount"])]
    pub(crate) socket_path: Option<PathBuf>,

    /// An inherited, listening vhost-user socket file descriptor.
    #[arg(long, value_name = "FD", conflicts_with = "fuse_mount")]
    pub(crate) fd: Option<i32>,

    /// The host directory to share.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "print_capabilities"
    )]
    pub(crate) shared_dir: Option<PathBuf>,

    /// The virtio-fs tag the guest mounts by (1 to 36 bytes, no newline).
    #[arg(long, default_value = "virtiofs")]
    pub(crate) tag: String,

    /// Worker threads in each request queue's pool (1 to 64). The thread that takes requests
    /// off a queue serves them itself, except those that may block (FSYNC, FSYNCDIR,
    /// FLUSH, COPY_FILE_RANGE, FALLOCATE, SYNCFS) and the excess of a burst, which go to the
    /// pool and complete out of order; a request stuck on the serving thread for over a
    /// millisecond hands the queue to the pool too. 0 (the default) means 4. Accepted as
    /// virtiofsd's flag; 1 is still a pool of one beside the serving thread.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) thread_pool_size: usize,

    /// Poll window, in microseconds (0, the default, is off; at most 1000). After the thread
    /// serving a request queue drains it, it keeps polling the ring for up to N us, with the
    /// guest told not to kick, before it sleeps: a request that arrives meanwhile is served at
    /// once, with no kick and no thread wake-up, and starts a new window. Costs up to N us of
    /// a core after each burst of requests; the queue's control events (disconnect) wait at
    /// most one window.
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(virtiofs_device::MAX_POLL_US)))]
    pub(crate) poll_us: u32,

    /// Enable extended attributes.
    #[arg(long)]
    pub(crate) xattr: bool,

    /// POSIX ACLs: never, auto (when the kernel supports them), always (fail INIT otherwise);
    /// a bare --posix-acl means always. Implies --xattr.
    #[arg(long, require_equals = true, num_args = 0..=1, default_value = "never",
          default_missing_value = "always", value_name = "never|auto|always")]
    pub(crate) posix_acl: Tristate,

    /// Extended-attribute name mapping rules (virtiofsd syntax), replacing the default map
    /// (the guest's trusted.* and security.capability stored as user.virtiofs.*, the guest's
    /// own user.virtiofs.* refused).
    #[arg(long, value_name = "RULES")]
    pub(crate) xattrmap: Option<String>,

    /// Cache policy: never, metadata (metadata cached, data not), auto or always;
    /// --backend macos-logic refuses metadata.
    #[arg(long, default_value = "auto")]
    pub(crate) cache: Cache,

    /// Refuse every write to the share.
    #[arg(long)]
    pub(crate) readonly: bool,

    /// Tell the guest about submounts in the share (SUBMOUNTS).
    #[arg(long, overrides_with = "no_announce_submounts")]
    pub(crate) announce_submounts: bool,

    /// Do not announce submounts (the default).
    #[arg(long, overrides_with = "announce_submounts")]
    pub(crate) no_announce_submounts: bool,

    /// Refer to inodes by file handles: never, prefer (fall back to O_PATH fds), mandatory.
    #[arg(long, require_equals = true, num_args = 0..=1, default_value = "never",
          default_missing_value = "prefer", value_name = "never|prefer|mandatory")]
    pub(crate) inode_file_handles: FileHandles,

    /// Enable the guest's writeback cache (WRITEBACK_CACHE).
    #[arg(long)]
    pub(crate) writeback: bool,

    /// Take the guest's flock(2) locks on the host files (FLOCK_LOCKS: coherent with host
    /// processes and other guests). Default, as virtiofsd: the guest kernel keeps them itself
    /// (and lists them in its /proc/locks). POSIX locks are taken on the host either way.
    #[arg(long)]
    pub(crate) flock: bool,

    /// Honour the guest's O_DIRECT opens (FOPEN_DIRECT_IO) instead of caching.
    #[arg(long)]
    pub(crate) allow_direct_io: bool,

    /// Do not declare READDIRPLUS (DO_READDIRPLUS, READDIRPLUS_AUTO): the guest lists
    /// directories with plain READDIR and looks names up one by one. The macos-logic backend
    /// never declares it.
    #[arg(long)]
    pub(crate) no_readdirplus: bool,

    /// Declare DIRECT_IO_ALLOW_MMAP: the guest may map shared the files it opens for direct
    /// I/O (--cache=never or metadata). Their pages then sit in the guest's page cache, which
    /// nothing keeps coherent with other writers: only for a share no one else writes, as
    /// with virtiofsd. Refused by --backend macos-logic.
    #[arg(long)]
    pub(crate) allow_mmap: bool,

    /// Security labels (SECURITY_CTX): the LSM label the guest sends with a creation is set
    /// on the new file as its security.* attribute. never, or auto (when the guest kernel
    /// offers it); implies --xattr. always (virtiofsd: fail INIT otherwise), and so a bare
    /// --security-label, is refused.
    #[arg(long, require_equals = true, num_args = 0..=1, default_value = "never",
          default_missing_value = "always", value_name = "never|auto|always")]
    pub(crate) security_label: Tristate,

    /// Accepted for virtiofsd's command line; the guest's O_NOATIME is dropped either way
    /// (never passed to the host), which the daemon logs at start.
    #[arg(long)]
    pub(crate) preserve_noatime: bool,

    /// Declare HANDLE_KILLPRIV_V2: the daemon, not the guest kernel, clears set-uid and
    /// set-gid when a caller without CAP_FSETID writes, truncates or chowns a file (the host
    /// kernel clears security.capability itself). Off by default, as in virtiofsd; the last of
    /// --killpriv-v2 and --no-killpriv-v2 wins. No effect with --readonly; refused by
    /// --backend macos-logic.
    #[arg(long, overrides_with = "no_killpriv_v2")]
    pub(crate) killpriv_v2: bool,

    /// Do not declare HANDLE_KILLPRIV_V2 (the default).
    #[arg(long, overrides_with = "killpriv_v2")]
    pub(crate) no_killpriv_v2: bool,

    /// Sandbox: namespace (new mount, PID, IPC, UTS and network namespaces, and a user
    /// namespace when not root; pivot_root into the shared directory), chroot (chroot into the
    /// shared directory, for containers without CAP_SYS_ADMIN) or none.
    #[arg(long, default_value = "namespace")]
    pub(crate) sandbox: Sandbox,

    /// Seccomp filter on every thread after start-up (with no_new_privs): an allow-list for the
    /// backend and options; any other system call kills the daemon (kill), is reported by name
    /// and exits (trap), is reported by name and let through (log, for finding a missing call),
    /// or no filter (none).
    #[arg(long, default_value = "kill", value_name = "kill|log|trap|none")]
    pub(crate) seccomp: crate::lockdown::SeccompMode,

    /// Landlock after start-up: files only beneath --shared-dir (--fuse-mount opens its
    /// /dev/fuse channels before), no TCP, no signal or abstract socket outside the daemon;
    /// holds under any --sandbox. auto: where the kernel has Landlock (logged otherwise); on: refuse to start
    /// without it; off.
    #[arg(long, default_value = "auto", value_name = "auto|on|off")]
    pub(crate) landlock: crate::lockdown::LandlockMode,

    /// Add or remove capabilities from the set kept when started as root, e.g.
    /// --modcaps=+sys_admin,-mknod (`:` separates too, as in virtiofsd).
    #[arg(long, value_name = "[+-]CAP,...", allow_hyphen_values = true)]
    pub(crate) modcaps: Option<String>,

    /// RLIMIT_NOFILE to set (soft and hard); 0 leaves it unchanged. Default: raised to
    /// min(1000000, fs.nr_open), or to the hard limit when that cannot be raised.
    #[arg(long, value_name = "N")]
    pub(crate) rlimit_nofile: Option<u64>,

    /// Group (name or number) to own the vhost-user socket file, made mode 0660, for a VMM
    /// that is not the daemon's user.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["fd", "fuse_mount"])]
    pub(crate) socket_group: Option<String>,

    /// Log level: error, warn, info, debug, trace or off (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    pub(crate) log_level: log::LevelFilter,

    /// Number of request queues offered (1 to 63; Linux 6.11+ uses up to one per vCPU).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) queues: u16,

    /// Largest virtqueue size accepted (a power of two, 64 to 32768).
    #[arg(long, default_value_t = virtiofs_device::DEFAULT_QUEUE_SIZE, value_name = "N")]
    pub(crate) queue_size: u16,

    /// Serve the share through the host kernel's /dev/fuse, mounted at DIR, instead of
    /// vhost-user.
    #[arg(long, value_name = "DIR")]
    pub(crate) fuse_mount: Option<PathBuf>,

    /// A mount option for --fuse-mount (repeatable, e.g. default_permissions). allow_other
    /// implies default_permissions: neither backend checks permissions itself, so without it
    /// every host user could read what the daemon can.
    #[arg(long, value_name = "OPT")]
    pub(crate) fuse_option: Vec<String>,

    /// The backend: linux (passthrough on this host) or macos-logic (the macOS backend's
    /// logic on Linux: ownership and modes kept in xattrs, submounts always announced; it
    /// refuses --posix-acl, --xattrmap, --inode-file-handles other than never, --readonly,
    /// --allow-direct-io, --cache=metadata, --no-announce-submounts, --killpriv-v2 and
    /// --allow-mmap).
    #[arg(long, default_value = "linux")]
    pub(crate) backend: Backend,

    /// Declare only what a backend honours: `macos` declares only what the macOS backend
    /// honours (for testing guests against that profile); `all` (the default) what this
    /// backend honours.
    #[arg(long, default_value = "all", value_name = "all|macos")]
    pub(crate) capabilities: CapabilityProfile,

    /// virtiofsd's --uid-map: refused (no user-namespace id maps).
    #[arg(long, hide = true, value_name = "MAP")]
    pub(crate) uid_map: Vec<String>,

    /// virtiofsd's --gid-map: refused (no user-namespace id maps).
    #[arg(long, hide = true, value_name = "MAP")]
    pub(crate) gid_map: Vec<String>,

    /// virtiofsd's --translate-uid: refused (no id translation).
    #[arg(long, hide = true, value_name = "MAP")]
    pub(crate) translate_uid: Vec<String>,

    /// virtiofsd's --translate-gid: refused (no id translation).
    #[arg(long, hide = true, value_name = "MAP")]
    pub(crate) translate_gid: Vec<String>,

    /// virtiofsd's --migration-mode: refused (no live migration).
    #[arg(long, hide = true, value_name = "MODE")]
    pub(crate) migration_mode: Option<String>,

    /// virtiofsd's --migration-on-error: refused (no live migration).
    #[arg(long, hide = true, value_name = "MODE")]
    pub(crate) migration_on_error: Option<String>,

    /// virtiofsd's --migration-verify-handles: refused (no live migration).
    #[arg(long, hide = true)]
    pub(crate) migration_verify_handles: bool,

    /// virtiofsd's --migration-confirm-paths: refused (no live migration).
    #[arg(long, hide = true)]
    pub(crate) migration_confirm_paths: bool,

    /// virtiofsd's --syslog: refused (the daemon logs to stderr only).
    #[arg(long, hide = true)]
    pub(crate) syslog: bool,

    /// Print the vhost-user backend capabilities as JSON and exit (libvirt uses this).
    #[arg(long)]
    pub(crate) print_capabilities: bool,
}

/// never / auto / always.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Tristate {
    /// Never.
    Never,
    /// When possible.
    Auto,
    /// Required.
    Always,
}

/// Cache policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Cache {
    /// No caching in the guest beyond a request.
    Never,
    /// Metadata only; accepted as auto.
    Metadata,
    /// Short timeouts, cache invalidated on open.
    Auto,
    /// Long timeouts, the guest keeps its cache.
    Always,
}

/// Inode file-handle policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FileHandles {
    /// O_PATH fds only.
    Never,
    /// File handles where possible.
    Prefer,
    /// File handles or fail.
    Mandatory,
}

/// Sandbox mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sandbox {
    /// Namespaces and pivot_root into the shared directory.
    Namespace,
    /// chroot into the shared directory.
    Chroot,
    /// No sandbox.
    None,
}

/// Backend choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// Passthrough on a Linux host.
    Linux,
    /// The macOS backend's portable logic, run on Linux.
    MacosLogic,
}

/// The capability profile the backend declares at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CapabilityProfile {
    /// Everything this backend honours.
    All,
    /// Only what the macOS backend honours (no POSIX_ACL, ALLOW_IDMAP, EXPORT_SUPPORT...).
    Macos,
}

/// Parses `args`; on failure returns the message to print: one line for errors, the full text
/// for --help and --version (with `Ok`-like exit status `0`).
pub(crate) fn parse<I, T>(args: I) -> Result<Cli, (String, i32)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => match cli.refused() {
            Some(why) => Err((why.to_owned(), 2)),
            None => Ok(cli),
        },
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    Err((e.render().to_string(), 0))
                }
                _ => Err((one_line(&e.render().to_string()), 2)),
            }
        }
    }
}

impl Cli {
    /// The first virtiofsd option given that this daemon does not implement, with why: refused
    /// at start rather than accepted and ignored.
    fn refused(&self) -> Option<&'static str> {
        let refusals = [
            (
                self.syslog,
                "--syslog: not supported; the daemon logs to stderr (a service manager's journal \
                 keeps it)",
            ),
            (
                self.security_label == Tristate::Always,
                "--security-label=always (or a bare --security-label): not supported, nothing \
                 fails INIT without SECURITY_CTX; --security-label=auto sets labels when the \
                 guest kernel offers them",
            ),
            (
                !self.uid_map.is_empty(),
                "--uid-map: not supported (the daemon maps only its own uid into its user \
                 namespace)",
            ),
            (
                !self.gid_map.is_empty(),
                "--gid-map: not supported (the daemon maps only its own gid into its user \
                 namespace)",
            ),
            (
                !self.translate_uid.is_empty(),
                "--translate-uid: not supported (guest and host uids are the same)",
            ),
            (
                !self.translate_gid.is_empty(),
                "--translate-gid: not supported (guest and host gids are the same)",
            ),
            (
                self.migration_mode.is_some(),
                "--migration-mode: live migration is not supported",
            ),
            (
                self.migration_on_error.is_some(),
                "--migration-on-error: live migration is not supported",
            ),
            (
                self.migration_verify_handles,
                "--migration-verify-handles: live migration is not supported",
            ),
            (
                self.migration_confirm_paths,
                "--migration-confirm-paths: live migration is not supported",
            ),
        ];
        refusals
            .iter()
            .find(|(given, _)| *given)
            .map(|(_, why)| *why)
    }
}

/// Folds clap's multi-line error (message, hints, usage) into its message on one line.
fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Cli {
        parse(std::iter::once("virtiofs-device").chain(args.iter().copied())).unwrap()
    }

    fn parse_err(args: &[&str]) -> String {
        let (msg, code) =
            parse(std::iter::once("virtiofs-device").chain(args.iter().copied())).unwrap_err();
        assert_eq!(code, 2, "{msg}");
        assert!(!msg.contains('\n'), "not one line: {msg:?}");
        msg
    }

    #[test]
    fn virtiofsd_command_line() {
        let cli = parse_ok(&[
            "--socket-path=/tmp/vfs.sock",
            "--shared-dir",
            "/srv",
            "--tag",
            "myfs",
            "--cache=always",
            "--xattr",
            "--posix-acl",
            "--announce-submounts",
            "--inode-file-handles=mandatory",
            "--sandbox",
            "none",
            "--thread-pool-size=4",
            "--writeback",
            "--flock",
            "--allow-direct-io",
            "--readonly",
            "--log-level",
            "debug",
        ]);
        assert_eq!(
            cli.socket_path.as_deref(),
            Some(std::path::Path::new("/tmp/vfs.sock"))
        );
        assert_eq!(cli.posix_acl, Tristate::Always);
        assert_eq!(cli.cache, Cache::Always);
        assert_eq!(cli.inode_file_handles, FileHandles::Mandatory);
        assert!(cli.announce_submounts && cli.xattr && cli.writeback && cli.readonly);
        assert!(cli.flock);
        assert_eq!(cli.log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn defaults() {
        let cli = parse_ok(&["--socket", "/s", "--shared-dir", "/d"]);
        assert_eq!(cli.posix_acl, Tristate::Never);
        assert_eq!(cli.cache, Cache::Auto);
        assert_eq!(cli.sandbox, Sandbox::Namespace);
        assert_eq!(cli.rlimit_nofile, None);
        assert!(cli.modcaps.is_none() && cli.socket_group.is_none());
        assert_eq!(cli.queues, 1);
        assert_eq!(cli.backend, Backend::Linux);
        assert!(!cli.announce_submounts);
        assert_eq!(cli.capabilities, CapabilityProfile::All);
        assert_eq!(cli.seccomp, crate::lockdown::SeccompMode::Kill);
        assert_eq!(cli.landlock, crate::lockdown::LandlockMode::Auto);
        assert!(!cli.killpriv_v2);
    }

    #[test]
    fn killpriv_v2_last_one_wins() {
        let on = |args: &[&str]| {
            let base = ["--fd=3", "--shared-dir=/d"];
            parse_ok(&[&base[..], args].concat()).killpriv_v2
        };
        assert!(!on(&[]));
        assert!(on(&["--killpriv-v2"]));
        assert!(!on(&["--no-killpriv-v2"]));
        assert!(!on(&["--killpriv-v2", "--no-killpriv-v2"]));
        assert!(on(&["--no-killpriv-v2", "--killpriv-v2"]));
    }

    #[test]
    fn lock_down_options() {
        use crate::lockdown::{LandlockMode, SeccompMode};
        let cli = parse_ok(&[
            "--fd=3",
            "--shared-dir=/d",
            "--seccomp=trap",
            "--landlock",
            "on",
        ]);
        assert_eq!(
            (cli.seccomp, cli.landlock),
            (SeccompMode::Trap, LandlockMode::On)
        );
        let cli = parse_ok(&[
            "--fd=3",
            "--shared-dir=/d",
            "--seccomp",
            "log",
            "--landlock=off",
        ]);
        assert_eq!(
            (cli.seccomp, cli.landlock),
            (SeccompMode::Log, LandlockMode::Off)
        );
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--seccomp=none"]);
        assert_eq!(cli.seccomp, SeccompMode::None);
        let msg = parse_err(&["--fd=3", "--shared-dir=/d", "--seccomp=allow"]);
        assert!(msg.contains("allow") && msg.contains("kill"), "{msg}");
        parse_err(&["--fd=3", "--shared-dir=/d", "--landlock=maybe"]);
    }

    #[test]
    fn sandbox_options() {
        let cli = parse_ok(&[
            "--socket-path=/s",
            "--shared-dir=/d",
            "--sandbox=chroot",
            "--modcaps=-mknod,+sys_admin",
            "--rlimit-nofile=0",
            "--socket-group=kvm",
        ]);
        assert_eq!(cli.sandbox, Sandbox::Chroot);
        assert_eq!(cli.modcaps.as_deref(), Some("-mknod,+sys_admin"));
        assert_eq!(cli.rlimit_nofile, Some(0));
        assert_eq!(cli.socket_group.as_deref(), Some("kvm"));
        // A leading '-' is a value, not an option.
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--modcaps", "-chown"]);
        assert_eq!(cli.modcaps.as_deref(), Some("-chown"));
        let msg = parse_err(&["--fd=3", "--shared-dir=/d", "--socket-group=kvm"]);
        assert!(msg.contains("cannot be used with"), "{msg}");
        let msg = parse_err(&["--fd=3", "--shared-dir=/d", "--sandbox=jail"]);
        assert!(msg.contains("jail"), "{msg}");
    }

    #[test]
    fn capabilities_profile() {
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--capabilities", "macos"]);
        assert_eq!(cli.capabilities, CapabilityProfile::Macos);
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--capabilities=all"]);
        assert_eq!(cli.capabilities, CapabilityProfile::All);
        let msg = parse_err(&["--fd=3", "--shared-dir=/d", "--capabilities=windows"]);
        assert!(msg.contains("windows"), "{msg}");
    }

    #[test]
    fn posix_acl_values_and_submount_override() {
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--posix-acl=auto"]);
        assert_eq!(cli.posix_acl, Tristate::Auto);
        let cli = parse_ok(&[
            "--fd=3",
            "--shared-dir=/d",
            "--announce-submounts",
            "--no-announce-submounts",
        ]);
        assert!(!cli.announce_submounts);
    }

    #[test]
    fn fuse_mount_mode() {
        let cli = parse_ok(&[
            "--shared-dir=/d",
            "--fuse-mount=/mnt",
            "--fuse-option=default_permissions",
            "--backend=macos-logic",
        ]);
        assert_eq!(cli.fuse_option, ["default_permissions"]);
        assert_eq!(cli.backend, Backend::MacosLogic);
    }

    #[test]
    fn macos_logic_backend() {
        let cli = parse_ok(&[
            "--socket-path=/s",
            "--shared-dir=/d",
            "--backend",
            "macos-logic",
            "--writeback",
            "--xattr",
        ]);
        assert_eq!(cli.backend, Backend::MacosLogic);
        assert!(cli.writeback && cli.xattr);
        // Only an explicit --no-announce-submounts (the last word) is recorded as such.
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--no-announce-submounts"]);
        assert!(cli.no_announce_submounts);
        let cli = parse_ok(&[
            "--fd=3",
            "--shared-dir=/d",
            "--no-announce-submounts",
            "--announce-submounts",
        ]);
        assert!(cli.announce_submounts && !cli.no_announce_submounts);
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d"]);
        assert!(!cli.no_announce_submounts);
        let msg = parse_err(&["--fd=3", "--shared-dir=/d", "--backend=darwin"]);
        assert!(
            msg.contains("darwin") && msg.contains("macos-logic"),
            "{msg}"
        );
    }

    #[test]
    fn poll_window() {
        assert_eq!(parse_ok(&["--fd=3", "--shared-dir=/d"]).poll_us, 0);
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d", "--poll-us=50"]);
        assert_eq!(cli.poll_us, 50);
        assert_eq!(
            parse_ok(&["--fd=3", "--shared-dir=/d", "--poll-us", "1000"]).poll_us,
            1000
        );
        let msg = parse_err(&["--fd=3", "--shared-dir=/d", "--poll-us=1001"]);
        assert!(
            msg.contains("--poll-us") && msg.contains("1001") && msg.contains("0..=1000"),
            "{msg}"
        );
        parse_err(&["--fd=3", "--shared-dir=/d", "--poll-us=-1"]);
    }

    #[test]
    fn implemented_virtiofsd_options() {
        let cli = parse_ok(&["--fd=3", "--shared-dir=/d"]);
        assert!(!cli.allow_mmap && !cli.preserve_noatime);
        assert_eq!(cli.security_label, Tristate::Never);
        let cli = parse_ok(&[
            "--fd=3",
            "--shared-dir=/d",
            "--allow-mmap",
            "--preserve-noatime",
            "--security-label=auto",
        ]);
        assert!(cli.allow_mmap && cli.preserve_noatime);
        assert_eq!(cli.security_label, Tristate::Auto);
    }

    #[test]
    fn socket_is_an_alias_of_socket_path() {
        let cli = parse_ok(&["--socket=/s", "--shared-dir=/d"]);
        assert_eq!(cli.socket_path.as_deref(), Some(std::path::Path::new("/s")));
        let msg = parse_err(&["--socket=/s", "--fd=3", "--shared-dir=/d"]);
        assert!(msg.contains("cannot be used with"), "{msg}");
    }

    #[test]
    fn virtiofsd_options_not_implemented_are_refused_by_name() {
        let refused: &[(&[&str], &str)] = &[
            (&["--syslog"], "--syslog: not supported"),
            (&["--security-label"], "--security-label=always"),
            (&["--security-label=always"], "--security-label=always"),
            (&["--uid-map=:0:100000:65536:"], "--uid-map: not supported"),
            (
                &["--gid-map", ":0:100000:65536:"],
                "--gid-map: not supported",
            ),
            (
                &["--translate-uid=map:0:1000:1"],
                "--translate-uid: not supported",
            ),
            (
                &["--translate-gid=guest:0:1000:1"],
                "--translate-gid: not supported",
            ),
            (
                &["--migration-mode=find-paths"],
                "--migration-mode: live migration",
            ),
            (
                &["--migration-on-error", "abort"],
                "--migration-on-error: live migration",
            ),
            (
                &["--migration-verify-handles"],
                "--migration-verify-handles: live",
            ),
            (
                &["--migration-confirm-paths"],
                "--migration-confirm-paths: live",
            ),
        ];
        for (args, why) in refused {
            let base = ["--socket-path=/s", "--shared-dir=/d"];
            let msg = parse_err(&[&base[..], args].concat());
            assert!(msg.starts_with(why), "{args:?}: {msg}");
        }
    }

    #[test]
    fn bad_options_are_one_line() {
        let msg = parse_err(&["--shared-dir=/d"]);
        assert!(msg.contains("--socket-path"), "{msg}");
        let msg = parse_err(&["--socket-path=/s"]);
        assert!(msg.contains("--shared-dir"), "{msg}");
        let msg = parse_err(&["--socket-path=/s", "--shared-dir=/d", "--cache=sometimes"]);
        assert!(
            msg.contains("sometimes") && msg.contains("possible values"),
            "{msg}"
        );
        let msg = parse_err(&["--socket-path=/s", "--fd=3", "--shared-dir=/d"]);
        assert!(msg.contains("cannot be used with"), "{msg}");
        let msg = parse_err(&["--socket-path=/s", "--shared-dir=/d", "--queues=x"]);
        assert!(msg.contains("--queues"), "{msg}");
        parse_err(&["--socket-path=/s", "--shared-dir=/d", "--bogus"]);
    }
}
