//! `cargo xtask host-tier`: the daemon's `--fuse-mount` on the host kernel, under pjdfstest and
//! fsx.
//!
//! Builds `virtiofs-device` (release), serves a fresh directory through `/dev/fuse` with
//! `default_permissions` and `allow_other`, runs pjdfstest (utimensat, UTIME_NOW and
//! posix_fallocate enabled; any failure fails the tier) and fsx on the mount, then unmounts
//! and stops the daemon. Every step has a time limit, and the mount is always taken down
//! (`umount`, then `umount -l`). Needs root and `/dev/fuse`. The tools come from the e2e cache
//! (`provision::ensure_tools`); the work directory is `<cache>/host-tier`.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::provision;
use crate::util::{self, display, step};

const USAGE: &str = "\
usage: cargo xtask host-tier [--fsx-ops N]

Serves a fresh directory with `virtiofs-device --fuse-mount` on the host kernel (root, /dev/fuse)
and runs pjdfstest and fsx on the mount.
  --fsx-ops N   fsx operations (default 10000, at least 3000)
";

/// pjdfstest's configuration: the features this host has, and its two unprivileged users.
const PJDFSTEST_TOML: &str = "\
[features]
posix_fallocate = {}
utime_now = {}
utimensat = {}
[settings]
naptime = 0.01
[dummy_auth]
entries = [[\"nobody\", \"nogroup\"], [\"daemon\", \"daemon\"]]
";

/// Time limits.
const MOUNT_LIMIT: Duration = Duration::from_secs(20);
const PJDFSTEST_LIMIT: Duration = Duration::from_secs(900);
const FSX_LIMIT: Duration = Duration::from_secs(600);
const STOP_LIMIT: Duration = Duration::from_secs(10);
const DEFAULT_FSX_OPS: u32 = 10_000;
const MIN_FSX_OPS: u32 = 3000;
const FSX_SEED: &str = "20240501";

/// `cargo xtask host-tier [--fsx-ops N]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut fsx_ops = DEFAULT_FSX_OPS;
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("fsx-ops") => {
                let v = p.value()?;
                fsx_ops = v
                    .parse()
                    .with_context(|| format!("--fsx-ops: `{v}` is not a number"))?;
                if fsx_ops < MIN_FSX_OPS {
                    bail!("--fsx-ops {fsx_ops}: at least {MIN_FSX_OPS}");
                }
            }
            other => return Err(p.unexpected(other)),
        }
    }
    host_tier(fsx_ops)
}

/// The CI step: the host tier with the default fsx length.
pub(crate) fn run_ci() -> Result<()> {
    host_tier(DEFAULT_FSX_OPS)
}

fn host_tier(fsx_ops: u32) -> Result<()> {
    let started = Instant::now();
    if !Path::new("/dev/fuse").exists() {
        bail!("the host tier needs /dev/fuse");
    }
    let cache = provision::cache_dir()?;
    let tools = provision::ensure_tools(&cache)?;
    let tool = |name: &str| -> Result<PathBuf> {
        tools
            .binaries
            .iter()
            .find(|b| b.file_name().is_some_and(|n| n == name))
            .cloned()
            .with_context(|| format!("{name} is not among the provisioned tools"))
    };
    let (pjdfstest, fsx) = (tool("pjdfstest")?, tool("fsx")?);

    let daemon = crate::e2e::build_our_daemon()?;

    let work = cache.join("host-tier");
    let (shared, mnt) = (work.join("shared"), work.join("mnt"));
    take_down(&mnt); // a mount left by an interrupted run
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot clear {}", work.display()))?;
    }
    for dir in [&shared, &mnt] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let pjdfstest_toml = work.join("pjdfstest.toml");
    fs::write(&pjdfstest_toml, PJDFSTEST_TOML)?;

    step("virtiofs-device --fuse-mount on the host kernel");
    let log = work.join("daemon.log");
    let daemon_log = File::create(&log)?;
    let mut cmd = Command::new(&daemon);
    cmd.arg("--shared-dir")
        .arg(&shared)
        .arg("--fuse-mount")
        .arg(&mnt)
        .args(["--fuse-option", "default_permissions"])
        .args(["--fuse-option", "allow_other"])
        .stdin(Stdio::null())
        .stdout(daemon_log.try_clone()?)
        .stderr(daemon_log);
    println!("$ {}", display(&cmd));
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", daemon.display()))?;
    let mut mounted = Mounted {
        mnt: mnt.clone(),
        daemon: Some(child),
    };
    mounted.wait_mounted(&log)?;

    step("pjdfstest on the mount");
    let t = Instant::now();
    let mut cmd = Command::new(&pjdfstest);
    cmd.arg("-c")
        .arg(&pjdfstest_toml)
        .arg("-p")
        .arg(&mnt)
        .current_dir(&work);
    let pjd_log = work.join("pjdfstest.log");
    let status = run_limited(cmd, PJDFSTEST_LIMIT, &pjd_log)?;
    let pjd_time = t.elapsed();
    let text = fs::read_to_string(&pjd_log).unwrap_or_default();
    let counts = summary(&text);
    for line in text
        .lines()
        .filter(|l| l.ends_with("FAILED") || l.ends_with("PASSED UNEXPECTEDLY"))
    {
        println!("  {line}");
    }

    step(&format!("fsx ({fsx_ops} operations) on the mount"));
    let t = Instant::now();
    let fsx_dir = mnt.join("fsx");
    fs::create_dir_all(&fsx_dir)?;
    let mut cmd = Command::new(&fsx);
    cmd.arg("-N")
        .arg(fsx_ops.to_string())
        .args(["-S", FSX_SEED, "-f"])
        .arg(util::root().join("xtask/guest/fsx.toml"))
        .arg("-P")
        .arg(&work)
        .arg(fsx_dir.join("testfile"))
        .current_dir(&work);
    let fsx_log = work.join("fsx.log");
    let fsx_status = run_limited(cmd, FSX_LIMIT, &fsx_log)?;
    let fsx_time = t.elapsed();

    step("unmounting");
    let daemon_status = mounted.finish()?;

    let mut table = String::new();
    let _ = writeln!(table, "\n==> host tier ({})", kernel_release());
    let _ = writeln!(
        table,
        "  {:<10} {:>7} {:>7} {:>7} {:>8}",
        "suite", "passed", "failed", "skipped", "time"
    );
    let (p, f, s) = counts.unwrap_or((0, 0, 0));
    let _ = writeln!(
        table,
        "  {:<10} {p:>7} {f:>7} {s:>7} {:>7.1}s",
        "pjdfstest",
        pjd_time.as_secs_f64()
    );
    let fsx_ok = fsx_status.as_ref().is_some_and(ExitStatus::success);
    let _ = writeln!(
        table,
        "  {:<10} {:>7} {:>7} {:>7} {:>7.1}s  ({fsx_ops} ops, seed {FSX_SEED})",
        "fsx",
        u8::from(fsx_ok),
        u8::from(!fsx_ok),
        0,
        fsx_time.as_secs_f64()
    );
    let _ = write!(table, "  total {:.1}s", started.elapsed().as_secs_f64());
    println!("{table}");

    let mut problems = Vec::new();
    match (counts, status) {
        (None, _) => problems.push(format!(
            "pjdfstest printed no summary ({}); log {}",
            describe(status),
            pjd_log.display()
        )),
        (Some((_, failed, _)), _) if failed > 0 => problems.push(format!(
            "pjdfstest: {failed} failed; log {}",
            pjd_log.display()
        )),
        _ => {}
    }
    if !fsx_ok {
        problems.push(format!(
            "fsx: {}; log {}:\n{}",
            describe(fsx_status),
            fsx_log.display(),
            tail(&fsx_log, 30)
        ));
    }
    if !daemon_status.is_some_and(|s| s.success()) {
        problems.push(format!(
            "the daemon did not exit cleanly after the unmount ({}); log {}:\n{}",
            describe(daemon_status),
            log.display(),
            tail(&log, 20)
        ));
    }
    if !problems.is_empty() {
        bail!("host tier failed:\n  {}", problems.join("\n  "));
    }
    println!("host tier passed");
    Ok(())
}

/// The mount and its daemon; dropping it takes both down whatever happened.
struct Mounted {
    mnt: PathBuf,
    daemon: Option<Child>,
}

impl Mounted {
    /// Waits until the mount shows in mountinfo, or fails if the daemon exits or time runs out.
    fn wait_mounted(&mut self, log: &Path) -> Result<()> {
        let deadline = Instant::now() + MOUNT_LIMIT;
        while !is_mounted(&self.mnt) {
            if let Some(child) = &mut self.daemon
                && let Some(status) = child.try_wait()?
            {
                self.daemon = None;
                bail!(
                    "the daemon exited before mounting ({status}); log {}:\n{}",
                    log.display(),
                    tail(log, 20)
                );
            }
            if Instant::now() >= deadline {
                bail!("no mount at {} within {MOUNT_LIMIT:?}", self.mnt.display());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Unmounts and waits for the daemon to exit; its exit status if it did in time.
    fn finish(&mut self) -> Result<Option<ExitStatus>> {
        take_down(&self.mnt);
        let Some(mut child) = self.daemon.take() else {
            return Ok(None);
        };
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Whether `dir` is a mount point (per /proc/self/mountinfo).
fn is_mounted(dir: &Path) -> bool {
    let target = dir.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|l| l.split(' ').nth(4) == Some(target.as_ref()))
    })
}

/// Unmounts `dir` if mounted: `umount`, then `umount -l` if that fails.
fn take_down(dir: &Path) {
    if !is_mounted(dir) {
        return;
    }
    for lazy in [false, true] {
        let mut cmd = Command::new("umount");
        if lazy {
            cmd.arg("-l");
        }
        cmd.arg(dir);
        let done = run_limited(cmd, STOP_LIMIT, Path::new("/dev/null"))
            .is_ok_and(|s| s.is_some_and(|s| s.success()));
        if done || !is_mounted(dir) {
            return;
        }
    }
}

/// Runs `cmd` with stdout and stderr to `log`, killing it after `limit`; `None` if killed.
fn run_limited(mut cmd: Command, limit: Duration, log: &Path) -> Result<Option<ExitStatus>> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let shown = display(&cmd);
    println!("$ {shown}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to start `{shown}`"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            println!("`{shown}` ran out of time ({limit:?}); killed");
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// pjdfstest's `Summary: F failed, S skipped, P passed, ...` line as (passed, failed, skipped).
fn summary(log: &str) -> Option<(u32, u32, u32)> {
    let line = log.lines().rev().find(|l| l.starts_with("Summary:"))?;
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let count = |what: &str| -> Option<u32> {
        let i = words.iter().position(|w| *w == what)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    Some((count("passed")?, count("failed")?, count("skipped")?))
}

fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(
        || "killed after its time limit".to_owned(),
        |s| s.to_string(),
    )
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| "kernel ?".to_owned(),
        |r| format!("kernel {}", r.trim()),
    )
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn parses_the_pjdfstest_summary() {
        let log = "chmod::foo ok\nSummary: 0 failed, 23 skipped, 375 passed, 0 expected failures, 398 total\n";
        assert_eq!(summary(log), Some((375, 0, 23)));
        assert_eq!(summary("no summary"), None);
    }
}
