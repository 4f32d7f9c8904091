//! `virtiofs-device`: the vhost-user virtio-fs daemon (a drop-in for virtiofsd's main options),
//! or a host FUSE mount of the same backend with `--fuse-mount`.
//!
//! Two backends: `--backend linux` (`passthrough_linux`, the default) and `--backend
//! macos-logic` (`passthrough_macos` over its Linux adapter, which behaves like macOS). Both are
//! served by the same generic code ([`serve_backend`]).

mod cli;
mod lockdown;
mod privileges;
mod sandbox;
mod sys;

use std::os::unix::fs::FileTypeExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use fuse_server::{
    CachePolicy as NegotiatedCache, FileSystem, NegotiationConfig, PosixAcl, Server, ServerConfig,
    TransportFacts,
};
use log::{info, warn};
use passthrough_linux::{CachePolicy, Config, FileHandleMode, PassthroughFs, XattrMap};
use passthrough_macos::host::LinuxHost;
use vhost::vhost_user::Listener;
use virtiofs_device::DeviceConfig;
use virtiofs_device::vhost_user::{VhostUserFs, serve};
use virtiofs_transport::dev_fuse::{self, ChannelConfig, FuseMount, MountOptions};

use crate::sandbox::Started;

use crate::cli::{Backend, Cache, CapabilityProfile, Cli, FileHandles, Sandbox, Tristate};

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err((msg, 0)) => {
            print!("{msg}");
            return ExitCode::SUCCESS;
        }
        Err((msg, _)) => {
            eprintln!("virtiofs-device: {msg}");
            return ExitCode::from(2);
        }
    };
    if cli.print_capabilities {
        print!("{PRINT_CAPABILITIES}");
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::new()
        .filter_level(cli.log_level)
        .parse_default_env()
        .format_timestamp_millis()
        .init();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` puts the whole context chain on one line.
            eprintln!("virtiofs-device: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `--print-capabilities` prints: the vhost-user backend description libvirt reads
/// (QEMU's docs/interop/vhost-user.json). `separate-options`: options are given one by one
/// (`--socket-path`, `--fd`, `--cache`...), not as virtiofsd's old `-o` list. No
/// `migrate-precopy`: the daemon cannot migrate.
const PRINT_CAPABILITIES: &str =
    "{\n  \"type\": \"fs\",\n  \"features\": [\n    \"separate-options\"\n  ]\n}\n";

/// The backend's configuration, checked before anything is made.
enum BackendConfig {
    Linux(Config),
    Macos(passthrough_macos::Config),
}

/// Where the daemon serves: the vhost-user listener, or a FUSE mount on the host.
enum Endpoint {
    VhostUser(Listener),
    Fuse(FuseMount),
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let shared_dir = cli
        .shared_dir
        .as_deref()
        .context("--shared-dir is required")?;
    check_directory("--shared-dir", shared_dir)?;
    let mut config = DeviceConfig::builder(&cli.tag)
        .request_queues(cli.queues)
        .queue_size(cli.queue_size)
        .poll_us(cli.poll_us);
    if cli.thread_pool_size > 0 {
        config = config.workers_per_queue(cli.thread_pool_size);
    }
    let config = config
        .build()
        .context("--thread-pool-size, --queues, --queue-size or --poll-us")?;
    if !cli.fuse_option.is_empty() && cli.fuse_mount.is_none() {
        bail!("--fuse-option needs --fuse-mount");
    }
    // Every option is checked before anything is made.
    let backend_config = match cli.backend {
        Backend::Linux => BackendConfig::Linux(linux_config(cli, shared_dir)?),
        Backend::MacosLogic => BackendConfig::Macos(macos_config(cli, shared_dir)?),
    };
    let negotiation = negotiation(cli);
    let socket_group = match &cli.socket_group {
        Some(group) => Some(sandbox::resolve_group(group)?),
        None => None,
    };
    let host_fcaps = match &backend_config {
        BackendConfig::Linux(config) => config.passes_file_capabilities(),
        BackendConfig::Macos(_) => false,
    };
    let mut capabilities = privileges::needed(cli, host_fcaps);
    if let Some(spec) = &cli.modcaps {
        privileges::modify(&mut capabilities, spec)?;
    }
    let root = nix::unistd::geteuid().is_root();
    let nofile = sandbox::set_nofile(cli.rlimit_nofile)?;
    // The socket (or the host mount) is made in the caller's namespaces, with its privileges.
    let endpoint = match &cli.fuse_mount {
        Some(mountpoint) => Endpoint::Fuse(fuse_mount(cli, mountpoint)?),
        None => Endpoint::VhostUser(listen(cli, socket_group)?),
    };
    // Every option was good and the endpoint exists: only now what the operator should know.
    for warning in passthrough_linux::share_mount_warnings(shared_dir) {
        warn!("{warning}");
    }
    if cli.preserve_noatime {
        warn!(
            "--preserve-noatime: the guest's O_NOATIME is not passed to the host (atime is kept)"
        );
    }
    if cli.killpriv_v2 && cli.readonly {
        warn!("--killpriv-v2 has no effect with --readonly: nothing is written");
    }
    if cli.sandbox == Sandbox::Namespace {
        // No thread exists yet: the process can fork into its PID namespace.
        match sandbox::enter_pid_namespace(!root)? {
            Started::Parent(parent) => {
                if let Endpoint::Fuse(mount) = &endpoint {
                    // The daemon child serves and unmounts; the parent only closes its copy.
                    mount.disown();
                }
                drop(endpoint);
                // The parent only waits and forwards signals: no capability (its child's uid
                // is its own, so `kill` needs none), and its own small filter.
                privileges::keep_only(&caps::CapsHashSet::new())
                    .context("the waiting parent: dropping capabilities")?;
                lockdown::lock_down_parent(cli.seccomp).context("the waiting parent")?;
                return Ok(parent.wait());
            }
            Started::Child => sandbox::isolate_mounts(shared_dir)?,
        }
    }
    let sandboxed = Sandboxed {
        cli,
        shared_dir,
        capabilities,
        root,
        nofile,
    };
    let share = || format!("--shared-dir {}", shared_dir.display());
    match backend_config {
        BackendConfig::Linux(fs_config) => {
            let fs = PassthroughFs::new(fs_config).with_context(share)?;
            serve_backend(&sandboxed, config, endpoint, fs, negotiation)?;
        }
        BackendConfig::Macos(fs_config) => {
            // `Default` rather than a unit-struct literal: the adapter may gain state.
            let fs =
                passthrough_macos::PassthroughFs::<LinuxHost>::new(Default::default(), fs_config)
                    .with_context(share)?;
            serve_backend(&sandboxed, config, endpoint, fs, negotiation)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the sandbox is made of, once the backend is open.
struct Sandboxed<'a> {
    cli: &'a Cli,
    shared_dir: &'a Path,
    /// The capabilities to keep when root (in the caller's user namespace).
    capabilities: caps::CapsHashSet,
    /// Started as root (else: a user namespace, or no privileges at all).
    root: bool,
    /// What `--rlimit-nofile` did, to log.
    nofile: String,
}

impl Sandboxed<'_> {
    /// Enters the chosen root (pivot or chroot), drops capabilities, and logs each layer.
    fn enter(&self) -> Result<()> {
        let cli = self.cli;
        let share = self.shared_dir.display();
        match cli.sandbox {
            Sandbox::Namespace => {
                sandbox::pivot_into(self.shared_dir)?;
                let user = if self.root {
                    ""
                } else {
                    ", user (uid and gid mapped to themselves)"
                };
                info!(
                    "sandbox: namespace: mount, PID, IPC, UTS and network namespaces{user}; \
                     pivot_root into {share}, the old root detached"
                );
            }
            Sandbox::Chroot => {
                sandbox::chroot_into(self.shared_dir)?;
                info!("sandbox: chroot into {share}");
            }
            Sandbox::None => info!("sandbox: none (the whole host filesystem is reachable)"),
        }
        if self.root {
            privileges::keep_only(&self.capabilities)?;
        } else if cli.sandbox == Sandbox::Namespace {
            // The user namespace gave every capability over it; the daemon needs none of them
            // (as an unprivileged daemon without the sandbox, it acts with the caller's rights).
            privileges::keep_only(&caps::CapsHashSet::new())?;
        }
        info!(
            "capabilities: effective {}",
            privileges::names(&privileges::effective())
        );
        info!("{}", self.nofile);
        // Landlock, no_new_privs and seccomp last: after this only the serving remains. The
        // share is the root now unless there is no sandbox.
        let share = match cli.sandbox {
            Sandbox::None => self.shared_dir.to_owned(),
            Sandbox::Namespace | Sandbox::Chroot => std::path::PathBuf::from("/"),
        };
        lock_down(cli, share)
    }
}

/// Enters the sandbox, then serves `fs` through /dev/fuse (`--fuse-mount`) or over vhost-user
/// until the end.
fn serve_backend<F: FileSystem + 'static>(
    sandboxed: &Sandboxed<'_>,
    config: DeviceConfig,
    endpoint: Endpoint,
    fs: F,
    negotiation: NegotiationConfig,
) -> Result<()> {
    let cli = sandboxed.cli;
    match endpoint {
        Endpoint::Fuse(mount) => {
            // The channels open /dev/fuse: before the sandbox hides it.
            let channels = mount
                .channels(usize::from(cli.queues).max(1))
                .context("/dev/fuse")?;
            sandboxed.enter()?;
            if cli.sandbox != Sandbox::None {
                // The mount point's path means nothing (or something else) from here; the
                // host's unmount ends the serving.
                mount.disown();
            }
            serve_fuse(cli, &mount, channels, fs, negotiation)
        }
        Endpoint::VhostUser(mut listener) => {
            // Before VhostUserFs::new, which starts the queue workers: capabilities, Landlock
            // and seccomp are per thread, and a thread inherits them only from its creator.
            sandboxed.enter()?;
            let backend = VhostUserFs::new(config, fs, negotiation);
            info!(
                "serving {} as tag {:?} with {} request queue(s) of {} worker(s), poll window \
                 {} us, backend {}",
                sandboxed.shared_dir.display(),
                backend.config().tag().as_str(),
                backend.config().request_queues(),
                backend.config().workers_per_queue(),
                backend.config().poll_us(),
                backend_name(cli.backend)
            );
            serve(&backend, &mut listener)?;
            Ok(())
        }
    }
}

/// The passthrough backend the options describe.
#[cfg(test)]
fn backend(cli: &Cli, shared_dir: &Path) -> Result<PassthroughFs> {
    PassthroughFs::new(linux_config(cli, shared_dir)?)
        .with_context(|| format!("--shared-dir {}", shared_dir.display()))
}

/// The passthrough backend's configuration the options describe.
fn linux_config(cli: &Cli, shared_dir: &Path) -> Result<Config> {
    let posix_acl = cli.posix_acl != Tristate::Never;
    let security_label = cli.security_label != Tristate::Never;
    let mut builder = Config::builder(shared_dir)
        .cache(match cli.cache {
            Cache::Never => CachePolicy::Never,
            Cache::Metadata => CachePolicy::Metadata,
            Cache::Auto => CachePolicy::Auto,
            Cache::Always => CachePolicy::Always,
        })
        .writeback(cli.writeback)
        .flock_locks(cli.flock)
        .xattr(cli.xattr || posix_acl || security_label)
        .posix_acl(posix_acl)
        .security_label(security_label)
        .allow_mmap(cli.allow_mmap)
        .readonly(cli.readonly)
        .file_handles(match cli.inode_file_handles {
            FileHandles::Never => FileHandleMode::Never,
            FileHandles::Prefer => FileHandleMode::Prefer,
            FileHandles::Mandatory => FileHandleMode::Mandatory,
        })
        .announce_submounts(cli.announce_submounts)
        .allow_direct_io(cli.allow_direct_io)
        .killpriv_v2(cli.killpriv_v2)
        .readdirplus(!cli.no_readdirplus)
        .declare_at_most(declare_at_most(cli.capabilities));
    if let Some(rules) = &cli.xattrmap {
        let map = XattrMap::parse(rules).context("--xattrmap")?;
        builder = builder.xattrmap(map);
    }
    builder.build().context("invalid options")
}

/// The macOS backend's configuration the options describe; refuses the options it cannot
/// honour rather than ignore them.
fn macos_config(cli: &Cli, shared_dir: &Path) -> Result<passthrough_macos::Config> {
    const WHY: &str = "--backend macos-logic";
    if cli.posix_acl != Tristate::Never {
        bail!("{WHY}: POSIX ACLs are not supported (--posix-acl=never only)");
    }
    if cli.xattrmap.is_some() {
        bail!("{WHY}: --xattrmap is not supported");
    }
    if cli.inode_file_handles != FileHandles::Never {
        bail!(
            "{WHY}: inodes are host identities reopened by path, never file handles \
             (--inode-file-handles=never only)"
        );
    }
    if cli.no_announce_submounts {
        bail!("{WHY}: submounts are always announced (--no-announce-submounts is refused)");
    }
    if cli.readonly {
        bail!("{WHY}: --readonly is not supported");
    }
    if cli.killpriv_v2 {
        bail!(
            "{WHY}: --killpriv-v2 is not supported (the backend does not clear set-uid/set-gid \
             on writes; the guest kernel does)"
        );
    }
    if cli.allow_mmap {
        bail!("{WHY}: --allow-mmap is not supported (DIRECT_IO_ALLOW_MMAP is never declared)");
    }
    if cli.allow_direct_io {
        bail!(
            "{WHY}: --allow-direct-io is not supported (O_DIRECT opens bypass the host cache only)"
        );
    }
    let (cache, timeout) = match cli.cache {
        Cache::Never => (
            passthrough_macos::CachePolicy::Never,
            CachePolicy::Never.timeout(),
        ),
        Cache::Auto => (
            passthrough_macos::CachePolicy::Auto,
            CachePolicy::Auto.timeout(),
        ),
        Cache::Always => (
            passthrough_macos::CachePolicy::Always,
            CachePolicy::Always.timeout(),
        ),
        Cache::Metadata => {
            bail!("{WHY}: --cache=metadata is not supported (never, auto or always)")
        }
    };
    let mut config = passthrough_macos::Config::new(shared_dir);
    config.cache = cache;
    config.entry_timeout = timeout;
    config.attr_timeout = timeout;
    config.writeback = cli.writeback;
    config.flock_locks = cli.flock;
    config.security_label = cli.security_label != Tristate::Never;
    config.xattr = cli.xattr || config.security_label;
    Ok(config)
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Linux => "linux",
        Backend::MacosLogic => "macos-logic",
    }
}

/// The most INIT flags the backend declares under `profile`.
fn declare_at_most(profile: CapabilityProfile) -> fuse_abi::InitFlags {
    match profile {
        CapabilityProfile::All => fuse_abi::InitFlags::all(),
        CapabilityProfile::Macos => {
            // WRITEBACK_CACHE on: the operator's --writeback still decides whether it is
            // declared.
            let options = passthrough_macos::capabilities::CapabilityOptions {
                writeback_cache: true,
                ..Default::default()
            };
            passthrough_macos::capabilities::capabilities(&options).flags
        }
    }
}

/// The operator's FUSE_INIT policy.
fn negotiation(cli: &Cli) -> NegotiationConfig {
    NegotiationConfig {
        posix_acl: match cli.posix_acl {
            Tristate::Never => PosixAcl::Never,
            Tristate::Auto => PosixAcl::Auto,
            Tristate::Always => PosixAcl::Always,
        },
        writeback_cache: cli.writeback,
        cache: match cli.cache {
            Cache::Never => NegotiatedCache::Never,
            Cache::Metadata | Cache::Auto => NegotiatedCache::Auto,
            Cache::Always => NegotiatedCache::Always,
        },
        readdirplus: if cli.no_readdirplus {
            fuse_server::Readdirplus::Never
        } else {
            fuse_server::Readdirplus::Auto
        },
        ..NegotiationConfig::default()
    }
}

/// Mounts the FUSE filesystem at `mountpoint` (served later by [`serve_fuse`]).
fn fuse_mount(cli: &Cli, mountpoint: &Path) -> Result<FuseMount> {
    check_directory("--fuse-mount", mountpoint)?;
    let options = mount_options(cli)?;
    let mount = FuseMount::mount(mountpoint, &options, ChannelConfig::default())
        .with_context(|| format!("--fuse-mount {}", mountpoint.display()))?;
    info!("mounted at {} (/dev/fuse)", mountpoint.display());
    Ok(mount)
}

/// The `--fuse-option`s.
fn mount_options(cli: &Cli) -> Result<MountOptions> {
    let mut options = MountOptions::default();
    for option in cli.fuse_option.iter().flat_map(|o| o.split(',')) {
        match option.split_once('=') {
            None if option == "default_permissions" => options.default_permissions = true,
            None if option == "allow_other" => options.allow_other = true,
            None if option.is_empty() => {}
            Some(("fsname", v)) => options.fsname = v.to_owned(),
            Some(("subtype", v)) => options.subtype = Some(v.to_owned()),
            Some(("max_read", v)) => {
                options.max_read = Some(
                    v.parse()
                        .with_context(|| format!("--fuse-option {option}"))?,
                );
            }
            _ => bail!(
                "--fuse-option {option}: unknown (default_permissions, allow_other, fsname=, subtype=, max_read=)"
            ),
        }
    }
    Ok(options)
}

/// Serves the backend through the host kernel's /dev/fuse on `channels` until unmounted.
fn serve_fuse<F: FileSystem>(
    cli: &Cli,
    mount: &FuseMount,
    channels: Vec<dev_fuse::FuseChannel>,
    fs: F,
    negotiation: NegotiationConfig,
) -> Result<()> {
    // Parsed when mounting already: this cannot fail differently.
    let kernel_checks = mount_options(cli)?.kernel_checks_permissions();
    let transport = TransportFacts::dev_fuse(
        kernel_checks,
        u32::try_from(mount.config().request_buffer()).unwrap_or(u32::MAX),
    );
    let server = Server::new(
        fs,
        ServerConfig {
            transport,
            negotiation,
        },
    );
    info!("serving through /dev/fuse");
    dev_fuse::serve_channels(channels, |r, w| match server.handle_message(r, w) {
        Ok(completion) => completion == fuse_server::Completion::Pending,
        Err(e) => {
            log::debug!("request not answered: {e:?}");
            false
        }
    })
    .context("/dev/fuse")?;
    info!("unmounted");
    Ok(())
}

/// Landlock and seccomp (`lockdown`), once, after start-up and before any worker thread.
fn lock_down(cli: &Cli, share: std::path::PathBuf) -> Result<()> {
    let config = lockdown::LockDown {
        share,
        landlock: cli.landlock,
        seccomp: cli.seccomp,
        profile: lockdown::Profile {
            macos_logic: cli.backend == Backend::MacosLogic,
            fuse_mount: cli.fuse_mount.is_some(),
            file_handles: cli.inode_file_handles != FileHandles::Never,
            xattr: cli.xattr
                || cli.posix_acl != Tristate::Never
                || cli.security_label != Tristate::Never,
        },
    };
    lockdown::lock_down(&config)?;
    Ok(())
}

/// The vhost-user listener: an inherited descriptor, or a fresh socket at --socket-path.
fn listen(cli: &Cli, socket_group: Option<nix::unistd::Gid>) -> Result<Listener> {
    if let Some(fd) = cli.fd {
        let listener = sys::listener_from_fd(fd).with_context(|| format!("--fd {fd}"))?;
        // vhost's accept loop retries at once on EAGAIN: an inherited non-blocking listener
        // would spin a core while no frontend is connected.
        listener
            .set_nonblocking(false)
            .with_context(|| format!("--fd {fd}: cannot make it blocking"))?;
        return Ok(Listener::from(listener));
    }
    let path = cli
        .socket_path
        .as_deref()
        .context("--socket-path or --fd is required")?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Only a socket nobody listens on is stale: connecting is refused. Anything else at
        // the path (a file, a socket we may not connect to) is left alone. The probe is a
        // frontend that connects and closes at once, which a daemon serving there survives.
        if !meta.file_type().is_socket() {
            bail!(
                "--socket-path {}: exists and is not a socket",
                path.display()
            );
        }
        match UnixStream::connect(path) {
            Ok(_) => bail!(
                "--socket-path {}: socket in use by another process",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => bail!(
                "--socket-path {}: cannot tell whether it is in use: {e}",
                path.display()
            ),
        }
        warn!("replacing stale socket {}", path.display());
        std::fs::remove_file(path)
            .with_context(|| format!("--socket-path {}: cannot remove", path.display()))?;
    }
    // A plain listener, wrapped: vhost's `Listener::new` removes its path when dropped, which
    // the sandbox's parent would do at once, and the sandboxed daemon would do to whatever
    // the path names in the share. A stale socket is replaced at the next start (above).
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("--socket-path {}: cannot listen", path.display()))?;
    let listener = Listener::from(listener);
    if let Some(gid) = socket_group {
        sandbox::set_socket_group(path, gid)?;
    }
    Ok(listener)
}

fn check_directory(option: &str, dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{option} {}: not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{option} {}: no such directory", dir.display())
        }
        Err(e) => bail!("{option} {}: {e}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fuse_abi::InitFlags;

    use super::*;

    #[test]
    fn macos_profile_declares_what_macos_honours() {
        let mask = declare_at_most(CapabilityProfile::Macos);
        assert!(mask.contains(InitFlags::WRITEBACK_CACHE | InitFlags::SUBMOUNTS));
        assert!(
            !mask.intersects(
                InitFlags::POSIX_ACL | InitFlags::ALLOW_IDMAP | InitFlags::EXPORT_SUPPORT
            )
        );
        assert_eq!(declare_at_most(CapabilityProfile::All), InitFlags::all());
    }

    fn macos_cli(extra: &[&str]) -> Cli {
        let args = [
            "virtiofs-device",
            "--fd=3",
            "--shared-dir=/d",
            "--backend=macos-logic",
        ];
        cli::parse(args.iter().chain(extra)).unwrap()
    }

    #[test]
    fn macos_logic_config_from_the_options() {
        let dir = Path::new("/d");
        let config = macos_config(&macos_cli(&[]), dir).unwrap();
        assert_eq!(config.root, dir);
        assert_eq!(config.cache, passthrough_macos::CachePolicy::Auto);
        assert!(!config.writeback && !config.xattr);
        assert!(!config.posix_locks && !config.flock_locks);
        assert_eq!(config.entry_timeout, Duration::from_secs(1));
        assert_eq!(config.attr_timeout, Duration::from_secs(1));

        let cli = macos_cli(&[
            "--writeback",
            "--xattr",
            "--cache=always",
            "--announce-submounts",
        ]);
        let config = macos_config(&cli, dir).unwrap();
        assert!(config.writeback && config.xattr);
        assert_eq!(config.cache, passthrough_macos::CachePolicy::Always);
        // The timeouts the linux backend gives the same policy.
        assert_eq!(config.entry_timeout, CachePolicy::Always.timeout());
        assert_eq!(config.attr_timeout, Duration::from_secs(86_400));

        let config = macos_config(&macos_cli(&["--cache=never"]), dir).unwrap();
        assert_eq!(config.cache, passthrough_macos::CachePolicy::Never);
        assert_eq!(config.entry_timeout, Duration::ZERO);
        assert_eq!(config.attr_timeout, Duration::ZERO);

        // Options that say nothing to this backend are accepted.
        let cli = macos_cli(&["--capabilities=macos", "--thread-pool-size=4", "--queues=2"]);
        macos_config(&cli, dir).unwrap();
    }

    #[test]
    fn macos_logic_refuses_what_it_cannot_honour() {
        let refused: &[(&[&str], &str)] = &[
            (&["--posix-acl"], "--posix-acl"),
            (&["--posix-acl=auto"], "--posix-acl"),
            (&["--xattrmap=:map::user.virtiofs.:"], "--xattrmap"),
            (&["--inode-file-handles"], "--inode-file-handles"),
            (&["--inode-file-handles=mandatory"], "--inode-file-handles"),
            (&["--no-announce-submounts"], "--no-announce-submounts"),
            (&["--readonly"], "--readonly"),
            (&["--allow-direct-io"], "--allow-direct-io"),
            (&["--cache=metadata"], "--cache=metadata"),
            (&["--killpriv-v2"], "--killpriv-v2"),
            (&["--allow-mmap"], "--allow-mmap"),
        ];
        for (args, named) in refused {
            let err = macos_config(&macos_cli(args), Path::new("/d")).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.starts_with("--backend macos-logic: ") && msg.contains(named),
                "{args:?}: {msg}"
            );
        }
        // The defaults of those options are accepted.
        let cli = macos_cli(&[
            "--posix-acl=never",
            "--inode-file-handles=never",
            "--no-killpriv-v2",
        ]);
        macos_config(&cli, Path::new("/d")).unwrap();
    }

    #[test]
    fn macos_profile_restricts_the_linux_backend() {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = format!("--shared-dir={}", dir.path().display());
        let args = [
            "virtiofs-device",
            "--fd=3",
            &dir_arg,
            "--writeback",
            "--announce-submounts",
            "--posix-acl",
            "--capabilities=macos",
        ];
        let cli = cli::parse(args).unwrap();
        let fs = backend(&cli, dir.path()).unwrap();
        let flags = fs.declared_flags();
        assert!(flags.contains(InitFlags::WRITEBACK_CACHE | InitFlags::SUBMOUNTS));
        assert!(!flags.intersects(InitFlags::POSIX_ACL | InitFlags::ALLOW_IDMAP));
    }

    /// The flags the backend built for `--fd=3 --shared-dir=DIR EXTRA...` declares.
    fn declared(dir: &std::path::Path, extra: &[&str]) -> InitFlags {
        let dir_arg = format!("--shared-dir={}", dir.display());
        let args = ["virtiofs-device", "--fd=3", &dir_arg];
        let cli = cli::parse(args.iter().chain(extra)).unwrap();
        backend(&cli, dir).unwrap().declared_flags()
    }

    #[test]
    fn flock_locks_are_remote_only_with_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let flags = |extra: &[&str]| declared(dir.path(), extra);
        assert!(!flags(&[]).contains(InitFlags::FLOCK_LOCKS));
        assert!(flags(&[]).contains(InitFlags::POSIX_LOCKS));
        assert!(flags(&["--flock"]).contains(InitFlags::FLOCK_LOCKS));
    }

    #[test]
    fn killpriv_v2_is_declared_only_with_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let flags = |extra: &[&str]| declared(dir.path(), extra);
        assert!(!flags(&[]).contains(InitFlags::HANDLE_KILLPRIV_V2));
        assert!(flags(&["--killpriv-v2"]).contains(InitFlags::HANDLE_KILLPRIV_V2));
        let off = flags(&["--killpriv-v2", "--no-killpriv-v2"]);
        assert!(!off.contains(InitFlags::HANDLE_KILLPRIV_V2));
        // Nothing is written on a read-only share: nothing to clear.
        let readonly = flags(&["--killpriv-v2", "--readonly"]);
        assert!(!readonly.contains(InitFlags::HANDLE_KILLPRIV_V2));
    }

    #[test]
    fn no_readdirplus_declares_neither_readdirplus_flag() {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = format!("--shared-dir={}", dir.path().display());
        let flags = |extra: &[&str]| declared(dir.path(), extra);
        let both = InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO;
        assert!(flags(&[]).contains(both));
        assert!(!flags(&["--no-readdirplus"]).intersects(both));
        let cli = |extra: &[&str]| {
            let args = ["virtiofs-device", "--fd=3", &dir_arg];
            cli::parse(args.iter().chain(extra)).unwrap()
        };
        // The operator's policy says so too, whatever the backend declares.
        let policy = negotiation(&cli(&["--no-readdirplus"])).readdirplus;
        assert_eq!(policy, fuse_server::Readdirplus::Never);
        assert_eq!(
            negotiation(&cli(&[])).readdirplus,
            fuse_server::Readdirplus::Auto
        );
        // Nothing for the macOS backend to turn off.
        macos_config(&macos_cli(&["--no-readdirplus"]), Path::new("/d")).unwrap();
    }

    #[test]
    fn allow_mmap_and_security_label_reach_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = format!("--shared-dir={}", dir.path().display());
        let config = |extra: &[&str]| {
            let args = ["virtiofs-device", "--fd=3", &dir_arg, "--cache=never"];
            let cli = cli::parse(args.iter().chain(extra)).unwrap();
            linux_config(&cli, dir.path()).unwrap()
        };
        let plain = config(&[]);
        assert!(!plain.allow_mmap && !plain.security_label);
        let fs = backend_of(config(&["--allow-mmap"]));
        assert!(
            fs.declared_flags()
                .contains(InitFlags::DIRECT_IO_ALLOW_MMAP)
        );
        let labels = config(&["--security-label=auto"]);
        assert!(labels.security_label && labels.xattr);
        let fs = backend_of(labels);
        assert!(fs.declared_flags().contains(InitFlags::SECURITY_CTX));
        assert!(!config(&["--security-label=never"]).security_label);

        let macos = macos_config(&macos_cli(&["--security-label=auto"]), Path::new("/d")).unwrap();
        assert!(macos.security_label && macos.xattr);
    }

    fn backend_of(config: Config) -> PassthroughFs {
        PassthroughFs::new(config).unwrap()
    }
}
