//! One boot of the Debian guest root ([`crate::guest_root`]) under QEMU (TCG) with virtio-fs
//! shares from daemons the host started: what `cargo xtask fstests` and the guest part of
//! `cargo xtask bench --against virtiofsd` share. The daemons' start ([`Share::start`]), QEMU's
//! command line ([`qemu`]) and the console, read live ([`run`]).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::e2e::{self, Guarded};
use crate::guest_root::GuestRoot;
use crate::provision::Kernel;
use crate::util::display;

/// Guest kernel command line words of every boot: TCG is slow enough for the soft-lockup and
/// RCU stall detectors to fire on a healthy guest, and fstests' check counts their warnings
/// in dmesg as test failures.
pub(crate) const KERNEL_ARGS: &[&str] = &[
    "console=ttyS0",
    "panic=-1",
    "nowatchdog",
    "rcupdate.rcu_cpu_stall_suppress=1",
];

/// One virtio-fs share of a boot: a daemon serving a host directory on a socket.
pub(crate) struct Share {
    /// What the share is called in messages (`test`, `scratch`, `bench`).
    pub(crate) name: &'static str,
    pub(crate) tag: String,
    pub(crate) socket: PathBuf,
    pub(crate) daemon: Guarded,
}

impl Share {
    /// Starts `daemon` serving `dir` under `tag` on `socket` (a stale one is removed first),
    /// its output to `log`, and waits for the socket ([`e2e::start_daemon`]).
    pub(crate) fn start(
        name: &'static str,
        daemon: &Path,
        dir: &Path,
        tag: &str,
        args: &[String],
        socket: PathBuf,
        log: &Path,
    ) -> Result<Share> {
        let _ = fs::remove_file(&socket);
        let daemon = e2e::start_daemon(daemon, &socket, dir, tag, args, log)?;
        Ok(Share {
            name,
            tag: tag.to_owned(),
            socket,
            daemon,
        })
    }
}

/// QEMU booting `kernel` (command line `append`) with `cpus` vCPUs and `memory`, the guest
/// root over virtio-blk (`snapshot=on`: the image is never written), one `vhost-user-fs-pci`
/// device per share, the serial console on stdout (for [`run`]) and QEMU's own output in
/// `qemu_log`.
#[allow(clippy::too_many_arguments)] // one machine's every input
pub(crate) fn qemu(
    kernel: &Kernel,
    initramfs: &Path,
    root: &GuestRoot,
    append: &str,
    memory: &str,
    cpus: u32,
    shares: &[Share],
    qemu_log: &Path,
) -> Result<Command> {
    let mut qemu = e2e::qemu_machine(kernel, initramfs, append, memory, cpus);
    qemu.arg("-drive").arg(format!(
        "file={},format=raw,if=virtio,snapshot=on,cache=unsafe",
        root.image.display()
    ));
    for (i, share) in shares.iter().enumerate() {
        e2e::add_vhost_user_fs(&mut qemu, &format!("char{i}"), &share.socket, &share.tag);
    }
    qemu.args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(qemu_log)?);
    Ok(qemu)
}

/// How a boot ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// From QEMU's start to its end.
    pub(crate) total: Duration,
    /// What went wrong with the boot itself: a timeout, a daemon that exited before the
    /// guest was done, a daemon's failing exit status.
    pub(crate) problems: Vec<String>,
}

/// Starts `qemu` and hands every console line (without its line end) to `on_line` as it
/// arrives, also writing it to `console`. Runs until QEMU exits, `bound` passes (QEMU is
/// killed) or a share's daemon exits: that is a problem unless the guest had printed a line
/// starting with `done` and QEMU exits within 10 s (virtiofsd exits when QEMU disconnects at
/// power-off). Then stops the daemons (3 s to exit on their own) and removes their sockets.
pub(crate) fn run(
    mut qemu: Command,
    console: &Path,
    shares: &mut [Share],
    bound: Duration,
    done: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Ended> {
    println!("$ {}", display(&qemu));
    let started = Instant::now();
    let mut qemu_child = Guarded {
        name: "QEMU",
        child: qemu
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
        status: None,
    };
    let stdout = qemu_child.child.stdout.take().context("QEMU's stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let log_path = console.to_path_buf();
    let reader = thread::spawn(move || -> Result<()> {
        use std::io::Write as _;
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
            let _ = tx.send(line.trim_end_matches(['\r', '\n']).to_owned());
        }
    });

    let mut problems = Vec::new();
    let mut finished = false;
    let mut drain = |finished: &mut bool| {
        while let Ok(line) = rx.try_recv() {
            if line.starts_with(done) {
                *finished = true;
            }
            on_line(&line);
        }
    };
    loop {
        drain(&mut finished);
        if qemu_child.poll().is_some() {
            break;
        }
        if started.elapsed() > bound {
            problems.push(format!("timeout: QEMU killed after {} s", bound.as_secs()));
            let _ = qemu_child.child.kill();
            let _ = qemu_child.child.wait();
            break;
        }
        if let Some(i) = shares.iter_mut().position(|s| s.daemon.poll().is_some()) {
            let share = &shares[i];
            let exited = e2e::wait_for(&mut qemu_child, Duration::from_secs(10)).is_some();
            drain(&mut finished);
            if !exited || !finished {
                problems.push(format!(
                    "the {} daemon exited during the run ({:?})",
                    share.name, share.daemon.status
                ));
            }
            let _ = qemu_child.child.kill();
            let _ = qemu_child.child.wait();
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let total = started.elapsed();
    if reader.join().is_err() {
        problems.push("the console reader panicked".to_owned());
    }
    drain(&mut finished);
    for share in shares.iter_mut() {
        let (status, signalled) = share.daemon.stop(Duration::from_secs(3));
        if !signalled
            && let Some(status) = status
            && !status.success()
        {
            problems.push(format!("the {} daemon exited with {status}", share.name));
        }
    }
    for share in shares.iter() {
        let _ = fs::remove_file(&share.socket);
    }
    Ok(Ended { total, problems })
}

/// A kernel message on the console: `[   12.345678] ...` (a script's own lines, even those
/// that start with `[not run]`, are not).
pub(crate) fn is_kernel_line(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .is_some_and(|(stamp, _)| {
            let stamp = stamp.trim();
            !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines() {
        assert!(is_kernel_line(
            "[   12.137554] virtio_blk virtio2: [vda] 3014656 blocks"
        ));
        assert!(!is_kernel_line("[not run] O_TMPFILE is not supported"));
        assert!(!is_kernel_line(
            "generic/002        [   70.194644] run fstests"
        ));
        assert!(!is_kernel_line("Ran: generic/001"));
    }
}
