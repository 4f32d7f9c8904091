//! `cargo xtask demo`: one command from a checkout to a Linux guest that mounts a host directory
//! over virtio-fs.
//!
//! Provisions what `cargo xtask e2e` provisions (QEMU, busybox, a Debian guest kernel), builds
//! and starts our `virtiofs-device` daemon on the shared directory, and boots the guest under
//! QEMU (TCG) with the share mounted at `/mnt`. On a terminal the user gets the guest's shell on
//! the console; without one (CI, a pipe) a short tour runs in the guest (`xtask/guest/
//! suite-demo.sh`) and the host checks the file the guest wrote. QEMU and the daemon are killed
//! when the command ends, whatever happens.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::e2e::{self, Guarded};
use crate::provision::{self, KernelSpec};
use crate::util::{self, display, step};

const USAGE: &str = "\
usage: cargo xtask demo [--shared-dir D] [--kernel K]

Boots a Linux guest (QEMU, TCG) whose /mnt is the host directory D, served over virtio-fs by
our virtiofs-device daemon. On a terminal you get the guest's shell (exit it, or type Ctrl-A X,
to quit); without a terminal a short tour runs in the guest and the host reads back the file
the guest wrote.
  --shared-dir D  the host directory to share (default: .cache/demo/share, with a README.txt)
  --kernel K      the guest kernel: 6.1 | 6.12 | 7.3 (default 6.12)
";

/// The virtio-fs tag the guest mounts.
const TAG: &str = "demo";

/// What the guest writes in the tour, and the host reads back.
const GUEST_FILE: &str = "hello-from-guest.txt";

/// Seeded in the default shared directory.
const README: &str = "\
This directory is on the host. The guest sees it at /mnt over virtio-fs, served by the
virtiofs-device daemon (cargo xtask demo). Files written here show up in the guest, and
files the guest writes show up here.
";

/// Bound of the whole tour: boot, tour, power off (TCG boots take 5-30 s).
const TOUR_BOUND: Duration = Duration::from_secs(300);

/// Bound of the tour script in the guest (seconds).
const TOUR_LIMIT: u64 = 60;

struct Options {
    shared: Option<PathBuf>,
    kernel: &'static KernelSpec,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut shared = None;
    let mut label = "6.12".to_owned();
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("shared-dir") => shared = Some(PathBuf::from(p.value()?)),
            Arg::Long("kernel") => label = p.string()?,
            other => return Err(p.unexpected(other)),
        }
    }
    let kernel = provision::KERNELS
        .iter()
        .find(|s| s.label == label)
        .with_context(|| format!("unknown kernel `{label}` (6.1, 6.12, 7.3)"))?;
    Ok(Options { shared, kernel })
}

/// Entry point of `cargo xtask demo`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let demo_dir = util::root().join(".cache").join("demo");
    let shared = match &options.shared {
        Some(dir) => {
            if !dir.is_dir() {
                bail!("--shared-dir {}: no such directory", dir.display());
            }
            fs::canonicalize(dir)?
        }
        None => {
            let dir = demo_dir.join("share");
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            fs::write(dir.join("README.txt"), README)?;
            dir
        }
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();

    step("provisioning");
    let cache = provision::cache_dir()?;
    println!("cache: {}", cache.display());
    provision::ensure_host_packages()?;
    // No test binaries in the demo's guest: pjdfstest and fsx would cost a fresh machine
    // minutes of `cargo install`.
    let tools = provision::Tools {
        binaries: Vec::new(),
    };
    let kernel = provision::ensure_kernel(&cache, options.kernel)?;
    // The demo's own image: an e2e run may be rebuilding the cache's at the same time.
    let initramfs = provision::build_initramfs_in(&demo_dir.join("initramfs"), &kernel, &tools)?;
    let daemon = e2e::build_our_daemon()?;

    step(&format!("starting the daemon on {}", shared.display()));
    // A socket path must fit in sun_path (108 bytes): keep it short, outside the cache.
    let socket = std::env::temp_dir().join(format!("virtiofs-demo-{}.sock", std::process::id()));
    let _ = fs::remove_file(&socket);
    let daemon_log = demo_dir.join("daemon.log");
    let mut daemon_child = e2e::start_daemon(&daemon, &socket, &shared, TAG, &[], &daemon_log)?;
    let result = if interactive {
        shell(&kernel, &initramfs, &socket)
    } else {
        tour(&kernel, &initramfs, &socket, &shared)
    };
    let _ = daemon_child.stop(Duration::from_secs(2));
    let _ = fs::remove_file(&socket);
    if result.is_err() {
        println!("daemon log: {}", daemon_log.display());
    }
    result
}

/// The guest's shell on this terminal; returns when QEMU exits.
fn shell(kernel: &provision::Kernel, initramfs: &Path, socket: &Path) -> Result<()> {
    let append = format!("console=ttyS0 panic=-1 quiet e2e_tag={TAG} e2e_suites= e2e_shell=1");
    let mut qemu = e2e::qemu_command(kernel, initramfs, &append, socket, TAG);
    qemu.args(["-serial", "mon:stdio"]);
    step(&format!("booting Linux {} (QEMU, TCG)", kernel.release));
    println!("$ {}", display(&qemu));
    println!("The guest's shell comes up in a few seconds; the share is at /mnt.");
    println!("Exit the shell to power the guest off, or type Ctrl-A X to kill QEMU.");
    let mut qemu = Guarded {
        name: "QEMU",
        child: qemu
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
        status: None,
    };
    // Interactive: no time bound but the user's; QEMU is killed if we are unwound.
    let status = qemu.child.wait()?;
    qemu.status = Some(status);
    println!("\nQEMU exited ({status}).");
    Ok(())
}

/// The tour without a terminal: the guest lists the share, writes a file and reads the
/// README; then the host reads the guest's file back.
fn tour(kernel: &provision::Kernel, initramfs: &Path, socket: &Path, shared: &Path) -> Result<()> {
    let witness = shared.join(GUEST_FILE);
    if witness.exists() {
        fs::remove_file(&witness)
            .with_context(|| format!("cannot remove the old {}", witness.display()))?;
    }
    let append = format!(
        "console=ttyS0 panic=-1 quiet e2e_tag={TAG} e2e_suites=demo e2e_limits=demo:{TOUR_LIMIT}"
    );
    let mut qemu = e2e::qemu_command(kernel, initramfs, &append, socket, TAG);
    qemu.args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null());
    step(&format!(
        "touring Linux {} (no terminal: a scripted tour instead of a shell)",
        kernel.release
    ));
    println!("$ {}", display(&qemu));
    let started = Instant::now();
    let mut qemu = Guarded {
        name: "QEMU",
        child: qemu
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
        status: None,
    };
    let Some(status) = e2e::wait_for(&mut qemu, TOUR_BOUND) else {
        let _ = qemu.child.kill();
        let _ = qemu.child.wait();
        bail!(
            "the guest did not power off within {} s: QEMU killed",
            TOUR_BOUND.as_secs()
        );
    };
    println!(
        "QEMU exited ({status}) after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    step("back on the host");
    println!("$ cat {}", witness.display());
    let text = fs::read_to_string(&witness).with_context(|| {
        format!(
            "the guest's file {} is not on the host: the round trip failed",
            witness.display()
        )
    })?;
    print!("{text}");
    if !text.starts_with("hello from the guest") {
        bail!("{} holds unexpected text", witness.display());
    }
    println!("demo: the guest wrote {GUEST_FILE}, the host read it back.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() -> Result<()> {
        let o = parse(&[])?;
        assert_eq!(o.kernel.label, "6.12");
        assert!(o.shared.is_none());
        let o = parse(&[
            "--kernel=7.3".to_owned(),
            "--shared-dir".to_owned(),
            "/tmp".to_owned(),
        ])?;
        assert_eq!(o.kernel.label, "7.3");
        assert_eq!(o.shared.as_deref(), Some(Path::new("/tmp")));
        assert!(parse(&["--kernel".to_owned(), "5.10".to_owned()]).is_err());
        assert!(parse(&["--bogus".to_owned()]).is_err());
        Ok(())
    }
}
