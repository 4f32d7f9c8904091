//! `cargo xtask ci`: everything CI runs, in order, stopping at the first failure.
//!
//! The run is the list [`STEPS`]; a new tier is one line there. For local use, `--only` and
//! `--skip` pick steps by name, and `--list` shows them.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::args::{Arg, Parser};
use crate::util::{self, cargo, step};
use crate::{e2e, fstests, fuzz, host_tier, hostile, layout, macos, tidy};

/// One named CI step.
struct Step {
    /// The name `--only`/`--skip` use.
    name: &'static str,
    /// One line for `--list`.
    about: &'static str,
    /// Runs the step; prints every command it runs.
    run: fn() -> Result<()>,
}

/// Everything CI runs, in order. A new tier is one line here (and one in the README).
const STEPS: &[Step] = &[
    Step::new("fmt", "cargo fmt --check on the whole workspace", fmt),
    Step::new(
        "tidy",
        "house rules: unsafe only in sys modules, SAFETY comments, causes printed once",
        tidy::run,
    ),
    Step::new("clippy", "clippy on all targets, warnings denied", clippy),
    Step::new("doc", "rustdoc for the workspace, warnings denied", doc),
    Step::new("test", "unit, property and doc tests (no privileges)", test),
    Step::new(
        "features",
        "clippy with no default features and with all; the library-only device's tests",
        features,
    ),
    Step::new(
        "layout",
        "fuse-abi vs C fuse.h (system + newest Debian)",
        layout::run_all,
    ),
    Step::new(
        "check-macos",
        "clippy of passthrough-macos, virtiofs-transport, virtiofs-device for Apple targets",
        macos::run_all,
    ),
    Step::new(
        "fuzz",
        "cargo-fuzz smoke: every fuzz target for 20 s",
        fuzz::smoke,
    ),
    Step::new("miri", "Miri on the syscall-free transport tests", miri),
    Step::new(
        "root",
        "root tier: ignored tests that mount via /dev/fuse",
        root,
    ),
    Step::new(
        "hostile",
        "a raw vhost-user frontend as a hostile guest, both backends",
        hostile::run_ci,
    ),
    Step::new(
        "host-tier",
        "daemon --fuse-mount on the host kernel: pjdfstest, fsx",
        host_tier::run_ci,
    ),
    Step::new(
        "e2e",
        "real guests 6.1, 6.12, 7.3 over vhost-user-fs (smoke, pjdfstest, fsx)",
        e2e_all,
    ),
    Step::new(
        "e2e-chroot",
        "guest 7.3 against the daemon under --sandbox chroot (smoke, pjdfstest)",
        e2e_chroot,
    ),
    Step::new(
        "e2e-userns",
        "guest 6.12 against the daemon started unprivileged: user namespace (smoke, fsx)",
        e2e_userns,
    ),
    Step::new(
        "e2e-macos-profile",
        "guests 6.12, 7.3 against a daemon declaring only the macOS set (smoke)",
        e2e_macos_profile,
    ),
    Step::new(
        "e2e-macos-logic",
        "guests 6.12, 7.3 against --backend macos-logic (smoke, pjdfstest, fsx)",
        e2e_macos_logic,
    ),
    Step::new(
        "fstests",
        "fstests in a Debian guest root, kernel 6.12, the CI selection (22 tests)",
        fstests_ci,
    ),
];

impl Step {
    const fn new(name: &'static str, about: &'static str, run: fn() -> Result<()>) -> Self {
        Self { name, about, run }
    }
}

const USAGE: &str = "\
usage: cargo xtask ci [--only STEP]... [--skip STEP]... [--list]

Runs every CI step in order and stops at the first failure. STEP may be a comma-separated list.
  --only STEP   run only these steps (still in CI order)
  --skip STEP   run all steps but these
  --list        list the steps and exit
";

fn fmt() -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["fmt", "--all", "--", "--check"]);
    util::run(cmd)
}

fn clippy() -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    util::run(cmd)
}

fn doc() -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["doc", "--locked", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    util::run(cmd)
}

fn test() -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "--locked", "--workspace"]);
    util::run(cmd)
}

/// The other feature sets: clippy over the workspace with `--no-default-features` (the
/// library-only device, the transport without `/dev/fuse`) and with `--all-features`
/// (`fuzzing`, `test-utils` and the rest), then the tests whose code the first set changes:
/// the device library and the transport without their default features. (`--all-features`
/// only adds code the fuzz targets and tests already build; its tests are the `test` step's.)
fn features() -> Result<()> {
    for set in ["--no-default-features", "--all-features"] {
        let mut cmd = cargo();
        cmd.args(["clippy", "--locked", "--workspace", "--all-targets", set])
            .args(["--", "-D", "warnings"]);
        util::run(cmd)?;
    }
    let mut cmd = cargo();
    cmd.args(["test", "--locked", "--no-default-features"])
        .args(["-p", "virtiofs-device", "-p", "virtiofs-transport"]);
    util::run(cmd)
}

/// `cargo +nightly miri test` on virtiofs-transport's unit tests and chain tests (syscall
/// tests are `#[cfg_attr(miri, ignore)]`). Needs the nightly `miri` and `rust-src` components.
fn miri() -> Result<()> {
    let mut cmd = util::cmd("cargo");
    cmd.args([
        "+nightly",
        "miri",
        "test",
        "--locked",
        "-p",
        "virtiofs-transport",
    ])
    .args(["--lib", "--test", "chain"]);
    util::run(cmd)
}

/// Packages whose `#[ignore = "needs root ..."]` tests the root tier runs.
const ROOT_TESTS: &[&str] = &["virtiofs-transport", "virtiofs-device"];

/// The root tier: each package's ignored tests (mounts through /dev/fuse); CI runs as root.
fn root() -> Result<()> {
    for package in ROOT_TESTS {
        let mut cmd = cargo();
        cmd.args(["test", "--locked", "-p", package, "--", "--ignored"]);
        util::run(cmd)?;
    }
    Ok(())
}

/// The guest tier: `cargo xtask e2e` with its defaults (every kernel, every suite).
fn e2e_all() -> Result<()> {
    e2e::run(&[])
}

/// `cargo xtask e2e --kernel 7.3 --daemon-arg=--sandbox=chroot`: the sandbox for containers
/// without CAP_SYS_ADMIN, under a real guest (the other e2e steps run the default, namespace).
fn e2e_chroot() -> Result<()> {
    e2e::run(&[
        "--kernel".to_owned(),
        "7.3".to_owned(),
        "--suite".to_owned(),
        "smoke,pjdfstest".to_owned(),
        "--daemon-arg=--sandbox=chroot".to_owned(),
    ])
}

/// `cargo xtask e2e --profile userns`: the daemon started as an unprivileged account, its
/// default sandbox then in a user namespace of its own, checked from /proc.
fn e2e_userns() -> Result<()> {
    e2e::run(&["--profile".to_owned(), "userns".to_owned()])
}

/// `cargo xtask e2e --profile macos`: the daemon declares only what the macOS backend honours.
fn e2e_macos_profile() -> Result<()> {
    e2e::run(&["--profile".to_owned(), "macos".to_owned()])
}

/// `cargo xtask e2e --profile macos-logic`: the macOS backend's logic over its Linux adapter.
fn e2e_macos_logic() -> Result<()> {
    e2e::run(&["--profile".to_owned(), "macos-logic".to_owned()])
}

/// `cargo xtask fstests` with its defaults: the CI selection on 6.12 against our daemon.
fn fstests_ci() -> Result<()> {
    fstests::run(&[])
}

/// `cargo xtask ci [--only STEP]... [--skip STEP]... [--list]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut only: Vec<&str> = Vec::new();
    let mut skip: Vec<&str> = Vec::new();
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        let list = match arg {
            Arg::Long("only") => &mut only,
            Arg::Long("skip") => &mut skip,
            Arg::Long("list") => {
                for s in STEPS {
                    println!("{:<17} {}", s.name, s.about);
                }
                return Ok(());
            }
            other => return Err(p.unexpected(other)),
        };
        let names = p.value()?;
        for name in names.split(',').filter(|n| !n.is_empty()) {
            if !STEPS.iter().any(|s| s.name == name) {
                let known: Vec<&str> = STEPS.iter().map(|s| s.name).collect();
                bail!("unknown step `{name}`; the steps are: {}", known.join(", "));
            }
            list.push(name);
        }
    }
    let chosen: Vec<&Step> = STEPS
        .iter()
        .filter(|s| (only.is_empty() || only.contains(&s.name)) && !skip.contains(&s.name))
        .collect();
    if chosen.is_empty() {
        bail!("no step left to run");
    }

    let started = Instant::now();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (i, s) in chosen.iter().enumerate() {
        step(&format!(
            "[{}/{}] {}: {}",
            i + 1,
            chosen.len(),
            s.name,
            s.about
        ));
        let t = Instant::now();
        if let Err(err) = (s.run)() {
            summary(&done);
            return Err(err.context(format!(
                "CI step `{}` failed after {:.1}s; rerun it alone with `cargo xtask ci --only {}`",
                s.name,
                t.elapsed().as_secs_f64(),
                s.name
            )));
        }
        done.push((s.name, t.elapsed()));
    }
    summary(&done);
    let skipped: Vec<&str> = STEPS
        .iter()
        .filter(|s| !done.iter().any(|(name, _)| *name == s.name))
        .map(|s| s.name)
        .collect();
    println!(
        "CI passed: {} step(s) in {:.1}s{}",
        done.len(),
        started.elapsed().as_secs_f64(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" (not run: {})", skipped.join(", "))
        }
    );
    Ok(())
}

fn summary(done: &[(&str, Duration)]) {
    if done.is_empty() {
        return;
    }
    println!("\n==> passed steps");
    for (name, took) in done {
        println!("  {name:<17} {:>7.1}s", took.as_secs_f64());
    }
}
