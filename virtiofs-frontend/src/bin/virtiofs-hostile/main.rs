//! `virtiofs-hostile`: the hostile tier. Drives a virtio-fs vhost-user daemon binary as a
//! hostile guest would, and fails on an escape, a death, a hang, or unbounded CPU, memory or
//! log growth.
//!
//! Every scenario gets a fresh daemon (`DAEMON --socket-path S --shared-dir D --backend B
//! --queues 1` plus every `--daemon-arg`) on a fresh share, with files outside the share as
//! oracles; after the scenario the daemon must still be running. Each scenario prints one
//! `PASS`/`FAIL` line with its figures; the run ends with `N passed, N failed` and exits
//! non-zero on any failure. Every loop is bounded in count and in time. Needs root (device
//! nodes, a loop device). `cargo xtask hostile` builds the daemon and this binary and runs it.

mod scenarios;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use virtiofs_frontend::process::{CpuSample, Daemon};
use virtiofs_frontend::{Config, Frontend};

const USAGE: &str = "\
usage: virtiofs-hostile --daemon PATH [--backend linux|macos-logic]... [--scenario NAME]...
                        [--daemon-arg ARG]... [--work-dir DIR] [--list]

Runs the hostile scenarios against a virtio-fs vhost-user daemon (needs root).
  --daemon PATH       the daemon binary (virtiofs-device)
  --backend B         a --backend value to test (repeatable; default: linux and macos-logic)
  --scenario NAME     run only these scenarios (repeatable; --list shows them)
  --daemon-arg ARG    one more argument for the daemon (repeatable)
  --work-dir DIR      where shares and logs go (default: a temporary directory, removed after)
  --list              list the scenarios and exit
";

/// How long any reply or vhost-user acknowledgement that must come may take.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the daemon may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a scenario works with: its daemon, share, and a directory outside the share.
pub(crate) struct Ctx {
    pub(crate) daemon: Daemon,
    pub(crate) socket: PathBuf,
    pub(crate) share: PathBuf,
    pub(crate) outside: PathBuf,
}

impl Ctx {
    /// A frontend with one request queue, set up and past FUSE_INIT.
    pub(crate) fn connect(&self) -> Result<Frontend> {
        self.connect_with(Config::new(1))
    }

    /// A frontend with `config`, set up and past FUSE_INIT.
    pub(crate) fn connect_with(&self, mut config: Config) -> Result<Frontend> {
        config.timeout = REPLY_TIMEOUT;
        let mut f = Frontend::connect(&self.socket, config).context("vhost-user setup")?;
        f.init().context("FUSE_INIT")?;
        Ok(f)
    }
}

/// What a scenario found: failures (none = PASS), figures and notes for its line.
#[derive(Default)]
pub(crate) struct Report {
    failures: Vec<String>,
    figures: Vec<String>,
}

impl Report {
    /// A failure.
    pub(crate) fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }

    /// A failure unless `ok`.
    pub(crate) fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.fail(why());
        }
    }

    /// A figure or note for the line.
    pub(crate) fn note(&mut self, what: impl Into<String>) {
        self.figures.push(what.into());
    }
}

/// One scenario: its name, a line of what it does, and the function.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) run: fn(&mut Ctx, &mut Report) -> Result<()>,
}

struct Args {
    daemon: PathBuf,
    backends: Vec<String>,
    scenarios: Vec<String>,
    daemon_args: Vec<String>,
    work_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>> {
    let mut daemon = None;
    let mut backends = Vec::new();
    let mut scenarios = Vec::new();
    let mut daemon_args = Vec::new();
    let mut work_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("`{arg}` needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--daemon" => daemon = Some(PathBuf::from(value()?)),
            "--backend" => backends.push(value()?),
            "--scenario" => scenarios.push(value()?),
            "--daemon-arg" => daemon_args.push(value()?),
            "--work-dir" => work_dir = Some(PathBuf::from(value()?)),
            "--list" => {
                for s in scenarios::ALL {
                    println!("{:<22} {}", s.name, s.about);
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let Some(daemon) = daemon else {
        bail!("--daemon is required\n{USAGE}");
    };
    if backends.is_empty() {
        backends = vec!["linux".to_owned(), "macos-logic".to_owned()];
    }
    for name in &scenarios {
        if !scenarios::ALL.iter().any(|s| s.name == name) {
            let known: Vec<&str> = scenarios::ALL.iter().map(|s| s.name).collect();
            bail!(
                "unknown scenario `{name}`; the scenarios are: {}",
                known.join(", ")
            );
        }
    }
    Ok(Some(Args {
        daemon,
        backends,
        scenarios,
        daemon_args,
        work_dir,
    }))
}

fn mib(bytes: u64) -> String {
    // Display only: two decimals of MiB.
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / (1024.0 * 1024.0);
    format!("{m:.1} MiB")
}

/// Starts the daemon for one scenario and waits for its socket.
fn start(args: &Args, backend: &str, dir: &Path) -> Result<Ctx> {
    let share = dir.join("share");
    let outside = dir.join("outside");
    std::fs::create_dir_all(&share)?;
    std::fs::create_dir_all(&outside)?;
    let socket = dir.join("vhost.sock");
    let mut cmd = Command::new(&args.daemon);
    cmd.arg("--socket-path")
        .arg(&socket)
        .arg("--shared-dir")
        .arg(&share)
        .args(["--backend", backend, "--queues", "1"])
        .args(&args.daemon_args)
        .env_remove("RUST_LOG");
    let mut daemon = Daemon::spawn(cmd, &dir.join("daemon.log"))
        .with_context(|| format!("cannot start {}", args.daemon.display()))?;
    daemon.wait_for_socket(&socket, START_TIMEOUT)?;
    Ok(Ctx {
        daemon,
        socket,
        share,
        outside,
    })
}

/// Runs one scenario on a fresh daemon; returns whether it passed.
fn run_one(args: &Args, backend: &str, scenario: &Scenario, dir: &Path) -> bool {
    let started = Instant::now();
    let mut report = Report::default();
    let mut figures = String::new();
    match start(args, backend, dir) {
        Err(e) => report.fail(format!("setup: {e:#}")),
        Ok(mut ctx) => {
            let cpu = CpuSample::start(&ctx.daemon).ok();
            if let Err(e) = (scenario.run)(&mut ctx, &mut report) {
                report.fail(format!("{e:#}"));
            }
            // The daemon never dies and never exits, whatever the guest did.
            match ctx.daemon.exit_status() {
                Some(status) => report.fail(format!("the daemon died: {status}")),
                None => {
                    let cpu = cpu.and_then(|c| c.used(&ctx.daemon).ok());
                    let rss = ctx.daemon.rss_bytes().unwrap_or(0);
                    let _ = write!(
                        figures,
                        "cpu {:.2}s, rss {}, ",
                        cpu.unwrap_or_default().as_secs_f64(),
                        mib(rss)
                    );
                }
            }
            let _ = write!(figures, "log {} B", ctx.daemon.log_bytes());
            if !report.failures.is_empty() {
                let tail = ctx.daemon.log_tail(300);
                if let Some(last) = tail.lines().rfind(|l| !l.is_empty()) {
                    report.note(format!("log ends: {}", last.trim()));
                }
            }
            ctx.daemon.stop();
        }
    }
    let passed = report.failures.is_empty();
    let mut line = format!(
        "{} {backend}/{} ({:.1}s): {figures}",
        if passed { "PASS" } else { "FAIL" },
        scenario.name,
        started.elapsed().as_secs_f64()
    );
    for f in &report.figures {
        let _ = write!(line, "; {f}");
    }
    for f in &report.failures {
        let _ = write!(line, "\n    FAILED: {f}");
    }
    println!("{line}");
    passed
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("virtiofs-hostile: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let Some(args) = parse_args()? else {
        return Ok(ExitCode::SUCCESS);
    };
    let euid = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_default();
    if euid != "0" {
        bail!("the hostile tier needs root (device nodes, loop devices, a daemon as root)");
    }
    let temp;
    let work = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("virtiofs-hostile.")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let chosen: Vec<&Scenario> = scenarios::ALL
        .iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s.name))
        .collect();
    let (mut passed, mut failed) = (0u32, 0u32);
    for backend in &args.backends {
        for scenario in &chosen {
            let dir = work.join(format!("{backend}-{}", scenario.name));
            if run_one(&args, backend, scenario, &dir) {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
