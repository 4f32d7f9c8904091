//! `virtiofs-device`: the vhost-user virtio-fs daemon (a drop-in for virtiofsd's main options),
//! or a host FUSE mount of the same backend with `--fuse-mount`.

mod cli;
mod sys;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use fuse_server::{Capabilities, FileSystem};
use log::{info, warn};
use vhost::vhost_user::Listener;
use virtiofs_device::DeviceConfig;
use virtiofs_device::vhost_user::{VhostUserFs, serve};

use crate::cli::{Backend, Cli, Sandbox};

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
        println!("{{\n  \"type\": \"fs\",\n  \"features\": []\n}}");
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::new()
        .filter_level(cli.log_level)
        .parse_default_env()
        .format_timestamp_millis()
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` puts the whole context chain on one line.
            eprintln!("virtiofs-device: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let shared_dir = cli
        .shared_dir
        .as_deref()
        .context("--shared-dir is required")?;
    check_directory("--shared-dir", shared_dir)?;
    let config = DeviceConfig::builder(&cli.tag)
        .request_queues(cli.queues)
        .queue_size(cli.queue_size)
        .build()?;
    match cli.sandbox {
        Sandbox::None => {}
        Sandbox::Namespace | Sandbox::Chroot => {
            bail!(
                "--sandbox {}: not implemented; use --sandbox none",
                sandbox_name(cli.sandbox)
            )
        }
    }
    if cli.backend == Backend::MacosLogic {
        bail!("--backend macos-logic: the macOS backend's logic is not available on Linux yet");
    }
    if cli.xattrmap.is_some() {
        bail!("--xattrmap: not supported yet");
    }
    if cli.thread_pool_size > 0 {
        info!(
            "--thread-pool-size {}: requests are served on one worker per request queue",
            cli.thread_pool_size
        );
    }
    if !cli.fuse_option.is_empty() && cli.fuse_mount.is_none() {
        bail!("--fuse-option needs --fuse-mount");
    }
    let fs = PlaceholderFs;

    if let Some(mountpoint) = &cli.fuse_mount {
        check_directory("--fuse-mount", mountpoint)?;
        bail!("--fuse-mount: the /dev/fuse transport is not available yet");
    }

    let mut listener = listen(cli)?;
    let backend = VhostUserFs::new(config, fs);
    info!(
        "serving {} as tag {:?} with {} request queue(s)",
        shared_dir.display(),
        backend.config().tag().as_str(),
        backend.config().request_queues()
    );
    serve(&backend, &mut listener)?;
    Ok(())
}

/// The vhost-user listener: an inherited descriptor, or a fresh socket at --socket-path.
fn listen(cli: &Cli) -> Result<Listener> {
    if let Some(fd) = cli.fd {
        let listener = sys::listener_from_fd(fd).with_context(|| format!("--fd {fd}"))?;
        return Ok(Listener::from(listener));
    }
    let path = cli
        .socket_path
        .as_deref()
        .context("--socket-path or --fd is required")?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "--socket-path {}: socket in use by another process",
                path.display()
            );
        }
        warn!("replacing stale socket {}", path.display());
        std::fs::remove_file(path)
            .with_context(|| format!("--socket-path {}: cannot remove", path.display()))?;
    }
    Listener::new(path, false)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("--socket-path {}: cannot listen", path.display()))
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

/// Stand-in backend until passthrough-linux lands.
struct PlaceholderFs;

impl FileSystem for PlaceholderFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
}

fn sandbox_name(sandbox: Sandbox) -> &'static str {
    match sandbox {
        Sandbox::Namespace => "namespace",
        Sandbox::Chroot => "chroot",
        Sandbox::None => "none",
    }
}
